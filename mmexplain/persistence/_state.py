"""Tensor state in a safe model file: safetensors members and the JSON that refers to them.

A network's ``state_dict``s (module, criterion, optimizer) and its fitted
balancer's state are JSON trees in the header in which every tensor is a
reference ``{"__tensor__": key}`` to a tensor of a safetensors member (no
pickle, and each tensor's dtype and shape are checked by safetensors against
the member's bytes before anything is allocated).

A fitted balancer's state (its attributes ending in ``_``) may also hold, with
these tags:

``{"__parameter__": name}``
    a parameter of the network (``module_.named_parameters()``), restored as
    that same parameter of the loaded network;
``{"__generator__": {"device", "state"}}``
    a ``torch.Generator`` and its state;
``{"__random_state__": [...]}``
    a NumPy ``RandomState`` (``get_state()``);
``{"__slice__": [start, stop, step]}``
    a ``slice`` of integers;
``{"__state_object__": {"class", "state"}}``
    an object of one of the classes in :data:`STATE_CLASSES` (helpers that
    balancers keep, such as the conditional learning-speed meter), restored
    by setting its attributes, without calling any of its code.

State that cannot be written this way is left out and listed, and the loaded
model then refuses to continue training (``partial_fit``) with a message
naming it. A generator saved on another device type than the loaded network's
is not restored (its random stream cannot continue there; balancers draw
their generators when training starts).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmexplain.persistence._format import PLAIN_TAGS, TAGS

#: classes of helper objects a balancer's state may hold: name -> import path
STATE_CLASSES: dict[str, str] = {
    "mmexplain.balancers.ConditionalSpeedMeter": (
        "mmexplain.balancers.speed.ConditionalSpeedMeter"
    ),
    "mmexplain.balancers.base.DeviceMean": "mmexplain.balancers.base.DeviceMean",
}
STATE_TAGS = (
    "__tensor__",
    "__parameter__",
    "__generator__",
    "__random_state__",
    "__slice__",
    "__state_object__",
)
_ALL_TAGS = (*TAGS, *STATE_TAGS)
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class Unencodable(Exception):  # noqa: N818 - an outcome, not a failure of the caller
    """A value of a state tree that the safe format cannot hold."""

    def __init__(self, where: str, value: Any) -> None:
        super().__init__(
            f"{where} = {type(value).__module__}.{type(value).__qualname__}"
        )
        self.where = where


class NotRestorable(Exception):  # noqa: N818
    """A saved state value that cannot be restored here (e.g. on another device)."""


@functools.cache
def _state_classes() -> dict[str, type]:
    out = {}
    for name, path in STATE_CLASSES.items():
        module, attr = path.rsplit(".", 1)
        out[name] = getattr(importlib.import_module(module), attr)
    return out


def _state_class_name(obj: Any) -> str | None:
    for name, cls in _state_classes().items():
        if type(obj) is cls:
            return name
    return None


# -- writing ------------------------------------------------------------------
class TensorStore:
    """The tensors of one safetensors member, by key."""

    def __init__(self) -> None:
        self.tensors: dict[str, Any] = {}

    def ref(self, tensor: Any, key: str) -> dict[str, str]:
        """Store a CPU copy of ``tensor`` under ``key`` (made unique); its reference."""
        name, n = key or "tensor", 1
        while name in self.tensors:
            n += 1
            name = f"{key}#{n}"
        # a copy: safetensors refuses tensors that share storage (tied weights, views)
        self.tensors[name] = tensor.detach().cpu().contiguous().clone()
        return {"__tensor__": name}

    def pack(self) -> bytes:
        """The safetensors bytes of the member."""
        from safetensors.torch import save

        return save(self.tensors, metadata={"format": "mmexplain-model"})


def encode_state(
    obj: Any,
    key: str,
    store: TensorStore,
    plain: Any,
    *,
    parameters: Mapping[int, str] | None = None,
) -> Any:
    """The JSON tree of ``obj``; tensors go to ``store``.

    ``plain(value, where)`` encodes NumPy values. With ``parameters``
    (``{id(parameter): name}`` of the network), the balancer-state tags are
    used too. Raises :class:`Unencodable` for anything else; ``store`` is
    then left as it was.
    """
    added = set(store.tensors)
    try:
        return _encode(obj, key, store, plain, parameters)
    except Unencodable:
        for name in set(store.tensors) - added:
            del store.tensors[name]
        raise


def _join(key: str, part: Any) -> str:
    return f"{key}.{part}" if key else str(part)


def _encode(obj: Any, key: str, store: TensorStore, plain: Any, parameters: Any) -> Any:
    import torch

    def again(value: Any, part: Any) -> Any:
        return _encode(value, _join(key, part), store, plain, parameters)

    if obj is None or isinstance(obj, bool | int | float | str):
        return plain(obj, key)
    if isinstance(obj, np.ndarray | np.generic):
        try:
            return plain(obj, key)
        except TypeError:
            raise Unencodable(key, obj) from None
    if isinstance(obj, torch.nn.Parameter):
        if parameters is None or id(obj) not in parameters:
            raise Unencodable(key, obj)
        return {"__parameter__": parameters[id(obj)]}
    if isinstance(obj, torch.Tensor):
        if obj.is_sparse or obj.layout != torch.strided:
            raise Unencodable(key, obj)
        return store.ref(obj, key)
    if isinstance(obj, tuple):
        return {"__tuple__": [again(v, i) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [again(v, i) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not (
            len(obj) == 1 and next(iter(obj)) in _ALL_TAGS
        ):
            return {k: again(v, k) for k, v in obj.items()}
        return {
            "__dict__": [
                [_encode(k, key, store, plain, None), again(v, k)]
                for k, v in obj.items()
            ]
        }
    if parameters is None:
        raise Unencodable(key, obj)
    if isinstance(obj, torch.Generator):
        state = store.ref(obj.get_state(), _join(key, "state"))
        return {"__generator__": {"device": obj.device.type, "state": state}}
    if isinstance(obj, np.random.RandomState):
        return {"__random_state__": plain(tuple(obj.get_state(legacy=True)), key)}
    if isinstance(obj, slice):
        parts = [obj.start, obj.stop, obj.step]
        if not all(
            p is None or (isinstance(p, int) and not isinstance(p, bool)) for p in parts
        ):
            raise Unencodable(key, obj)
        return {"__slice__": parts}
    name = _state_class_name(obj)
    if name is not None:
        attrs = vars(obj)
        if not all(isinstance(k, str) and _ATTRIBUTE.match(k) for k in attrs):
            raise Unencodable(key, obj)
        return {
            "__state_object__": {
                "class": name,
                "state": {k: again(v, k) for k, v in attrs.items()},
            }
        }
    raise Unencodable(key, obj)


# -- reading ------------------------------------------------------------------
def read_tensors(data: bytes, member: str) -> dict[str, Any]:
    """The tensors of a safetensors member (ValueError when it is not one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except SafetensorError as exc:
        raise ValueError(
            f"{member!r} is not a valid safetensors member ({exc})"
        ) from None


class StateDecoder:
    """Rebuild a state tree from its JSON and the tensors of its member.

    Parameters
    ----------
    tensors : dict
        The member's tensors; each may be referenced once (:meth:`unused`
        lists the others).
    plain : callable
        ``plain(raw, where)`` decodes NumPy values and floats.
    parameters : mapping of str to Parameter or None
        The loaded network's parameters by name: enables the balancer-state
        tags.
    device : torch.device or None
        Where the balancer-state tensors go.
    """

    def __init__(
        self,
        tensors: dict[str, Any],
        plain: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
        device: Any = None,
    ) -> None:
        self.tensors = tensors
        self.plain = plain
        self.parameters = parameters
        self.device = device
        self.used: set[str] = set()

    def unused(self) -> list[str]:
        return sorted(set(self.tensors) - self.used)

    def value(self, raw: Any, where: str) -> Any:
        if raw is None or isinstance(raw, bool | int | float | str):
            return raw
        if isinstance(raw, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(raw)]
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: unexpected JSON value {type(raw).__name__}")
        if len(raw) == 1 and next(iter(raw)) in _ALL_TAGS:
            tag, body = next(iter(raw.items()))
            if tag == "__tuple__":
                if not isinstance(body, list):
                    raise ValueError(f"{where}: bad tuple")
                return tuple(self.value(v, f"{where}[{i}]") for i, v in enumerate(body))
            if tag == "__dict__":
                return self._dict(body, where)
            if tag in PLAIN_TAGS:
                return self.plain(raw, where)
            if tag == "__tensor__":
                return self._tensor(body, where, move=self.parameters is not None)
            if self.parameters is None or tag not in STATE_TAGS:
                raise ValueError(f"{where}: {tag} is not allowed here")
            return getattr(self, "_" + tag.strip("_"))(body, where)
        return {k: self.value(v, f"{where}.{k}") for k, v in raw.items()}

    def _dict(self, body: Any, where: str) -> dict[Any, Any]:
        if not isinstance(body, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in body
        ):
            raise ValueError(f"{where}: bad mapping")
        out = {}
        for k, v in body:
            key = self.plain(k, f"{where} key")
            if not isinstance(key, str | int | float | bool | tuple | type(None)):
                raise ValueError(f"{where}: bad mapping key {key!r}")
            if key in out:
                raise ValueError(f"{where}: repeated key {key!r}")
            out[key] = self.value(v, f"{where}[{key!r}]")
        return out

    def _tensor(self, name: Any, where: str, move: bool) -> Any:
        if not isinstance(name, str) or name not in self.tensors:
            raise ValueError(f"{where}: tensor {name!r} is not in the tensor member")
        if name in self.used:
            raise ValueError(f"{where}: tensor {name!r} is referenced twice")
        self.used.add(name)
        tensor = self.tensors[name]
        return tensor.to(self.device) if move and self.device is not None else tensor

    def _parameter(self, name: Any, where: str) -> Any:
        assert self.parameters is not None
        if not isinstance(name, str) or name not in self.parameters:
            raise ValueError(f"{where}: the network has no parameter {name!r}")
        return self.parameters[name]

    def _generator(self, body: Any, where: str) -> Any:
        import torch

        if not (isinstance(body, dict) and set(body) == {"device", "state"}):
            raise ValueError(f"{where}: bad generator")
        state = self._tensor(
            body["state"].get("__tensor__")
            if isinstance(body["state"], dict)
            else None,
            where,
            move=False,
        )
        device = torch.device(self.device or "cpu")
        if body["device"] != device.type:
            raise NotRestorable(
                f"{where} is a {body['device']} generator, the network is on {device}"
            )
        if state.dtype != torch.uint8 or state.dim() != 1:
            raise ValueError(f"{where}: a generator state is a 1-D uint8 tensor")
        generator = torch.Generator(device=device)
        try:
            generator.set_state(state)
        except RuntimeError as exc:
            raise ValueError(f"{where}: bad generator state ({exc})") from None
        return generator

    def _random_state(self, body: Any, where: str) -> np.random.RandomState:
        state = self.plain(body, where)
        if not (
            isinstance(state, tuple)
            and len(state) == 5
            and state[0] == "MT19937"
            and isinstance(state[1], np.ndarray)
            and state[1].dtype == np.uint32
            and state[1].shape == (624,)
            and isinstance(state[2], int)
            and 0 <= state[2] <= 624
            and state[3] in (0, 1)
            and isinstance(state[4], float)
        ):
            raise ValueError(f"{where}: bad RandomState state")
        rng = np.random.RandomState()
        rng.set_state(state)
        return rng

    def _slice(self, body: Any, where: str) -> slice:
        if not (
            isinstance(body, list)
            and len(body) == 3
            and all(
                p is None or (isinstance(p, int) and not isinstance(p, bool))
                for p in body
            )
        ):
            raise ValueError(f"{where}: bad slice")
        return slice(*body)

    def _state_object(self, body: Any, where: str) -> Any:
        if not (isinstance(body, dict) and set(body) == {"class", "state"}):
            raise ValueError(f"{where}: bad state object")
        # a helper class (its own ``__new__``, if any, is called below)
        cls: Any = _state_classes().get(body["class"])
        if cls is None:
            raise ValueError(
                f"{where}: class {body['class']!r} is not one of the helper classes a "
                f"balancer's state may hold ({sorted(STATE_CLASSES)})"
            )
        state = body["state"]
        if not isinstance(state, dict):
            raise ValueError(f"{where}: bad state object")
        for key in state:
            if not _ATTRIBUTE.match(key) or hasattr(cls, key):
                raise ValueError(
                    f"{where}: bad attribute name {key!r} for {body['class']}"
                )
        obj = cls.__new__(cls)  # no constructor call: only the attributes are set
        vars(obj).update({k: self.value(v, f"{where}.{k}") for k, v in state.items()})
        return obj


class ContinuationRefused:
    """Stands in for a balancer's ``fit_started``: the state to continue was not saved."""

    def __init__(self, names: list[str], reason: str) -> None:
        self.names = list(names)
        self.reason = reason

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError(self.reason)
