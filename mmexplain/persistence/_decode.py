"""Decoding a safe model file: allow-listed classes and values, checked before building.

Every value is decoded for the place it has (:func:`_slot`): plain data
(numbers, strings, tuples, arrays) everywhere but where a class of a given
kind may stand (``criterion=`` a loss, ``balancer=`` a balancer, ...). Its
value is then checked by ``_policy``. A network is first built on
PyTorch's ``meta`` device (no memory) and its parameter shapes, its output
width and the fitted attributes are compared with the tensors of the file;
only then is it built for real and its weights loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from mmexplain.persistence._format import (
    ATTR_NAME,
    MAX_EXPANSION,
    PLAIN_TAGS,
    TAGS,
    short,
)
from mmexplain.persistence._policy import (
    check_fitted,
    check_net_fitted,
    check_params,
    final_regressor,
    identity_transformer,
    is_plain,
)
from mmexplain.persistence._state import (
    ContinuationRefused,
    NotRestorable,
    StateDecoder,
    read_tensors,
)
from mmexplain.persistence.allowlist import allowed, canonical_name, kind_of, resolve

#: kinds of object a model file's root may be
ROOT_KINDS = (
    "estimator",
    "pipeline",
    "target_regressor",
    "transformer",
    "scaler",
    "balancer",
    "callback",
    "splitter",
)


def _slot(kind: str, name: str) -> Any:
    """How the parameter ``name`` of a class of ``kind`` is decoded."""
    if kind == "estimator":
        classes = {
            "module": ("class", ("network",)),
            "criterion": ("class", ("loss",)),
            "optimizer": ("class", ("optimizer",)),
            "iterator_train": ("class", ("iterator",)),
            "iterator_valid": ("class", ("iterator",)),
            "dataset": ("class", ("dataset",)),
            "balancer": ("object", ("balancer",)),
            "train_split": ("object", ("splitter",)),
            "callbacks": ("callbacks",),
            "module__encoders": ("encoders",),
        }
        if name in classes:
            return classes[name]
        prefix, _, rest = name.partition("__")
        if prefix == "callbacks" and rest and "__" not in rest:
            return ("object", ("callback",))
        return ("plain",)
    if kind == "pipeline" and name == "steps":
        return ("steps",)
    if kind == "target_regressor" and name in ("regressor", "regressor_"):
        return ("object", ("estimator", "pipeline"))
    if kind == "target_regressor" and name in ("transformer", "transformer_"):
        return ("object", ("scaler",))
    if kind == "transformer" and name in ("transformers", "transformers_"):
        return ("transformers",)
    if kind == "transformer" and name == "remainder":
        return ("transformer",)
    return ("plain",)


@contextlib.contextmanager
def _meta() -> Iterator[None]:
    """Build on the meta device (shapes only), leaving the caller's RNG untouched."""
    import torch

    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        yield


def _compare_state(expected: dict[str, Any], got: Any, where: str) -> None:
    """The file's ``state_dict`` must have the names, shapes and dtypes expected."""
    import torch

    if not isinstance(got, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in got.items()
    ):
        raise ValueError(f"{where}: the state must map names to tensors")
    if list(got) != list(expected):
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        raise ValueError(
            f"{where}: the tensors do not match the network the parameters describe "
            f"(missing {short(missing)}, unexpected {short(extra)})"
        )
    for key, want in expected.items():
        have = got[key]
        if tuple(have.shape) != tuple(want.shape) or have.dtype != want.dtype:
            raise ValueError(
                f"{where}: tensor {key!r} is {have.dtype} {tuple(have.shape)} but the "
                f"network the parameters describe has {want.dtype} {tuple(want.shape)}"
            )


def _fits_kind(value: Any, kind: str) -> bool:
    """Whether the JSON ``value`` is an element of an array of dtype kind ``kind``."""
    if kind == "b":
        return isinstance(value, bool)
    if kind in "iu":
        return isinstance(value, int) and not isinstance(value, bool)
    return (isinstance(value, int | float) and not isinstance(value, bool)) or (
        value in ("nan", "inf", "-inf")
    )


class Decoder:
    """Rebuild the objects of a header; tensors are read from ``archive``."""

    def __init__(
        self, archive: zipfile.ZipFile, files: dict[str, Any], version: int
    ) -> None:
        self.archive = archive
        self.files = files
        self.version = version
        self.read: set[str] = set()

    # -- plain values ------------------------------------------------------
    def plain(self, obj: Any, where: str) -> Any:
        """A JSON value that holds only data (no classes, objects or tensors)."""
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        if isinstance(obj, list):
            return [self.plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: unexpected JSON value {obj!r}")
        if len(obj) == 1 and next(iter(obj)) in TAGS:
            tag, body = next(iter(obj.items()))
            if tag not in PLAIN_TAGS:
                raise ValueError(f"{where}: {tag} is not allowed here (only data)")
            return getattr(self, "_" + tag.strip("_"))(body, where)
        return {k: self.plain(v, f"{where}.{k}") for k, v in obj.items()}

    def _float(self, body: Any, where: str) -> float:
        if body not in ("nan", "inf", "-inf"):
            raise ValueError(f"{where}: bad float {body!r}")
        return float(body)

    def _tuple(self, body: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(body, list):
            raise ValueError(f"{where}: bad tuple")
        return tuple(self.plain(v, f"{where}[{i}]") for i, v in enumerate(body))

    def _dict(self, body: Any, where: str) -> dict[Any, Any]:
        if not isinstance(body, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in body
        ):
            raise ValueError(f"{where}: bad mapping")
        out = {}
        for k, v in body:
            key = self.plain(k, f"{where} key")
            try:
                hash(key)
            except TypeError:
                raise ValueError(f"{where}: unhashable key {short(key)}") from None
            if key in out:
                raise ValueError(f"{where}: repeated key {short(key)}")
            out[key] = self.plain(v, f"{where}[{key!r}]")
        return out

    @staticmethod
    def _dtype(text: Any, where: str) -> np.dtype:
        if not isinstance(text, str) or len(text) > 16:
            raise ValueError(f"{where}: bad dtype {short(text)}")
        try:
            dt = np.dtype(text)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: bad dtype {text!r}") from None
        if dt.kind not in "biufU":
            raise ValueError(f"{where}: dtype {text!r} is not allowed")
        return dt

    @staticmethod
    def _budget(dt: np.dtype, values: list[Any], where: str) -> None:
        """Refuse a declared dtype that would allocate far more than the data hold."""
        text = sum(len(v) + 3 if isinstance(v, str) else 8 for v in values)
        if len(values) * dt.itemsize > MAX_EXPANSION * text + 4096:
            raise ValueError(
                f"{where}: dtype {dt.str} would take {len(values) * dt.itemsize} bytes "
                f"for {len(values)} values (the data are far smaller)"
            )

    def _ndarray(self, body: Any, where: str) -> np.ndarray:
        if not (isinstance(body, dict) and set(body) == {"dtype", "shape", "data"}):
            raise ValueError(f"{where}: bad array")
        dtype, shape, data = body["dtype"], body["shape"], body["data"]
        if not (
            isinstance(shape, list)
            and len(shape) <= 32
            and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
            )
            and isinstance(data, list)
            and math.prod(shape) == len(data)
        ):
            raise ValueError(f"{where}: the array's shape does not match its data")
        if dtype == "object":
            arr = np.empty(len(data), dtype=object)
            values = [self.plain(v, where) for v in data]
            if not all(isinstance(v, str | bool | int | float) for v in values):
                raise ValueError(f"{where}: object arrays hold numbers and strings")
            arr[:] = values
        else:
            dt = self._dtype(dtype, where)
            if dt.kind == "U":
                if not all(isinstance(v, str) for v in data):
                    raise ValueError(f"{where}: a string array holds strings")
            elif not all(_fits_kind(v, dt.kind) for v in data):
                raise ValueError(f"{where}: bad values for an array of dtype {dt.str}")
            self._budget(dt, data, where)
            if dt.kind != "U":
                data = [float(v) if isinstance(v, str) else v for v in data]
            arr = np.array(data, dtype=dt)
        return arr.reshape(shape)

    def _scalar(self, body: Any, where: str) -> Any:
        if not (isinstance(body, dict) and set(body) == {"dtype", "value"}):
            raise ValueError(f"{where}: bad scalar")
        dt = self._dtype(body["dtype"], where)
        value = body["value"]
        ok = isinstance(value, str) if dt.kind == "U" else _fits_kind(value, dt.kind)
        if not ok:
            raise ValueError(f"{where}: bad scalar value {short(value)}")
        self._budget(dt, [value], where)
        if isinstance(value, str) and dt.kind == "f":
            value = float(value)
        return np.array(value, dtype=dt)[()]

    # -- classes and objects ----------------------------------------------------
    def _lookup(
        self, name: Any, where: str, kinds: tuple[str, ...]
    ) -> tuple[str, type, str]:
        """The canonical name, class and kind of an allow-listed ``name``; else ValueError."""
        where = where or "the root"
        if isinstance(name, str):
            name = canonical_name(name)
        if not isinstance(name, str) or name not in allowed():
            raise ValueError(
                f"{where}: class {short(name)} is not in the allow-list of classes a model "
                "file may use (mmexplain.persistence.SAFE_CLASSES)"
            )
        cls = resolve(name)
        if cls is None:
            raise ValueError(
                f"{where}: class {name!r} cannot be imported in this installation"
            )
        kind = kind_of(name)
        if kind not in kinds:
            raise ValueError(
                f"{where}: {name} ({kind}) is not allowed here; expected a {' or '.join(kinds)}"
            )
        return name, cls, kind

    @staticmethod
    def _tag(raw: Any, tag: str, where: str) -> Any:
        where = where or "the root"
        if not (isinstance(raw, dict) and set(raw) == {tag}):
            raise ValueError(f"{where}: expected {tag}, got {short(raw)}")
        return raw[tag]

    def slot(self, slot: tuple[Any, ...], raw: Any, where: str) -> Any:
        """Decode ``raw`` for a place described by ``slot`` (see :func:`_slot`)."""
        what = slot[0]
        if what == "plain":
            value = self.plain(raw, where)
            return value
        if raw is None and what in ("class", "object", "callbacks"):
            return None
        if what == "class":
            return self._lookup(self._tag(raw, "__class__", where), where, slot[1])[1]
        if what == "object":
            return self.object(raw, where, slot[1])
        if what == "callbacks":
            if not isinstance(raw, list):
                raise ValueError(f"{where}: must be a list of callbacks")
            out = []
            for i, item in enumerate(raw):
                at = f"{where}[{i}]"
                if isinstance(item, dict) and set(item) == {"__tuple__"}:
                    pair = item["__tuple__"]
                    if not (
                        isinstance(pair, list)
                        and len(pair) == 2
                        and isinstance(pair[0], str)
                    ):
                        raise ValueError(f"{at}: expected (name, callback)")
                    out.append((pair[0], self.object(pair[1], at, ("callback",))))
                else:
                    out.append(self.object(item, at, ("callback",)))
            return out
        if what == "encoders":
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: must be a dict of encoders")
            return {m: self.encoder(v, f"{where}[{m!r}]") for m, v in raw.items()}
        if what == "steps":
            if not isinstance(raw, list):
                raise ValueError(f"{where}: must be a list of steps")
            steps = []
            for i, item in enumerate(raw):
                at = f"{where}[{i}]"
                pair = self._tag(item, "__tuple__", at)
                if not (
                    isinstance(pair, list)
                    and len(pair) == 2
                    and isinstance(pair[0], str)
                ):
                    raise ValueError(f"{at}: expected (name, estimator)")
                est = pair[1]
                if est is not None and not isinstance(est, str):
                    est = self.object(
                        est, f"{at}.{pair[0]}", ("estimator", "transformer", "scaler")
                    )
                steps.append((pair[0], est))
            return steps
        if what == "transformers":
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: must be a dict of modality -> transformer")
            return {
                m: self.slot(("transformer",), v, f"{where}[{m!r}]")
                for m, v in raw.items()
            }
        if what == "transformer":
            if isinstance(raw, str):
                return raw
            return self.object(raw, where, ("scaler",))
        raise AssertionError(slot)  # pragma: no cover

    def object(self, raw: Any, where: str, kinds: tuple[str, ...]) -> Any:
        """An allow-listed object of one of ``kinds``: parameters checked, then built."""
        body = self._tag(raw, "__object__", where)
        if not isinstance(body, dict):
            raise ValueError(f"{where}: bad object entry")
        name, cls, kind = self._lookup(body.get("class"), where, kinds)
        label = f"{where}.{name.rsplit('.', 1)[1]}" if where else name.rsplit(".", 1)[1]
        keys = {"class", "params"}
        if kind == "estimator":
            keys |= {"fitted", "tensors", "history"}
            if self.version >= 2:
                keys |= {"state", "balancer_state"}
        elif kind in ("transformer", "scaler", "target_regressor"):
            keys |= {"fitted"}
        extra = set(body) - keys
        if extra or "params" not in body:
            if extra & {"fitted"}:
                raise ValueError(
                    f"{label}: a {kind} has no fitted state in a model file"
                )
            raise ValueError(f"{label}: unexpected entries {sorted(extra)} for {name}")
        if not isinstance(body["params"], dict):
            raise ValueError(f"{label}: params must be a mapping")
        params = {
            k: self.slot(_slot(kind, k), v, f"{label}.{k}")
            for k, v in body["params"].items()
        }
        check_params(kind, cls, params, label)
        if kind == "estimator":
            return self._net(cls, params, body, label)
        obj = cls(**params)
        if kind in ("scaler", "target_regressor"):
            obj._validate_params()
        elif kind == "balancer":
            obj.validate()
        raw_fitted = body.get("fitted", {})
        if not isinstance(raw_fitted, dict):
            raise ValueError(f"{label}: fitted must be a mapping")
        fitted = {
            k: self.slot(_slot(kind, k), v, f"{label}.{k}")
            for k, v in raw_fitted.items()
        }
        check_fitted(kind, obj, fitted, label)
        for key, value in fitted.items():
            setattr(obj, key, value)
        if kind == "target_regressor" and fitted:
            _finish_target_regressor(obj)
        return obj

    # -- tensors -----------------------------------------------------------------
    def _member(self, member: Any, where: str) -> bytes:
        if not isinstance(member, str) or member not in self.files:
            raise ValueError(
                f"{where}: tensor file {short(member)} is not listed in the header"
            )
        if member in self.read:
            raise ValueError(f"{where}: tensor file {member!r} is used twice")
        self.read.add(member)
        data = self.archive.read(member)
        if hashlib.sha256(data).hexdigest() != self.files[member]["sha256"]:
            raise ValueError(
                f"checksum mismatch for {member!r} (corrupted or modified weights)"
            )
        return data

    def _state(self, body: dict[str, Any], where: str) -> tuple[dict[str, Any], Any]:
        """The ``state_dict``s of ``body``'s member, and the member's state decoder."""
        data = self._member(body.get("tensors"), where)
        if self.version == 1:
            import torch

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            decoder = None
        else:
            decoder = StateDecoder(read_tensors(data, body["tensors"]), self.plain)
            state = decoder.value(body.get("state"), f"{where} state")
        if not isinstance(state, dict) or "module" not in state:
            raise ValueError(
                f"{where}: the tensor file does not hold a module state_dict"
            )
        if not set(state) <= {"module", "criterion", "optimizer"}:
            raise ValueError(f"{where}: unexpected state entries {sorted(state)}")
        return state, decoder

    def encoder(self, raw: Any, where: str) -> Any:
        """An encoder instance (``module__encoders``): checked on meta, then its weights."""
        import torch

        body = self._tag(raw, "__module__", where)
        if not isinstance(body, dict):
            raise ValueError(f"{where}: bad module entry")
        name, cls, _ = self._lookup(body.get("class"), where, ("encoder",))
        keys = {"class", "params", "tensors"} | (
            {"state"} if self.version >= 2 else set()
        )
        if set(body) != keys:
            raise ValueError(f"{where}: bad module entry for {name}")
        params = self.plain(body["params"], f"{where}.params")
        if not isinstance(params, dict) or not is_plain(params):
            raise ValueError(
                f"{where}: params of {name} must be a mapping of plain values"
            )
        state, decoder = self._state(body, where)
        if decoder is not None and decoder.unused():
            raise ValueError(f"{where}: unreferenced tensors {short(decoder.unused())}")
        with _meta():
            expected = cls(**params).state_dict()
        _compare_state(expected, state["module"], where)
        with torch.random.fork_rng(devices=[]):
            module = cls(**params)
        module.load_state_dict(state["module"])
        return module

    # -- nets ---------------------------------------------------------------------
    def _net(
        self, cls: type, params: dict[str, Any], body: dict[str, Any], where: str
    ) -> Any:
        import torch

        device = params.get("device")
        dev = torch.device(device) if isinstance(device, str) else None
        mps = getattr(torch.backends, "mps", None)
        missing = dev is not None and (
            (dev.type == "cuda" and not torch.cuda.is_available())
            or (dev.type == "mps" and (mps is None or not mps.is_available()))
        )
        if missing and dev is not None:  # (missing implies a device)
            warnings.warn(
                f"the {cls.__name__} was saved with device={device!r} but "
                f"{'CUDA' if dev.type == 'cuda' else 'MPS'} is not available; loading "
                "it on the CPU",
                UserWarning,
                stacklevel=5,
            )
            params["device"] = "cpu"
        net = cls(**params)
        raw_fitted = body.get("fitted", {})
        if not isinstance(raw_fitted, dict):
            raise ValueError(f"{where}: fitted must be a mapping")
        fitted = {k: self.plain(v, f"{where}.{k}") for k, v in raw_fitted.items()}
        check_net_fitted(cls, params, fitted, where)
        for key, value in fitted.items():
            setattr(net, key, value)
        if "tensors" not in body:
            if set(body) & {"state", "balancer_state", "history"}:
                raise ValueError(f"{where}: state without a tensor file")
            return net
        state, decoder = self._state(body, where)
        self._check_module(net, params, fitted, state["module"], where)
        net.initialize()
        for key, value in fitted.items():  # initialize() re-draws the seed
            setattr(net, key, value)
        net.module_.load_state_dict(state["module"])
        if "criterion" in state:
            _compare_state(
                net.criterion_.state_dict(), state["criterion"], f"{where}.criterion_"
            )
            net.criterion_.load_state_dict(state["criterion"])
        optimizer = getattr(net, "optimizer_", None)
        if "optimizer" in state and optimizer is not None:
            _check_optimizer(
                optimizer, net.module_, state["optimizer"], f"{where}.optimizer_"
            )
            optimizer.load_state_dict(state["optimizer"])
        if "balancer_state" in body:
            self._balancer(net, body["balancer_state"], decoder, where)
        if decoder is not None and decoder.unused():
            raise ValueError(f"{where}: unreferenced tensors {short(decoder.unused())}")
        if "history" in body:
            from skorch.history import History

            net.history = History(
                _history(self.plain(body["history"], f"{where}.history"), where)
            )
        return net

    def _check_module(
        self,
        net: Any,
        params: dict[str, Any],
        fitted: dict[str, Any],
        got: Any,
        where: str,
    ) -> None:
        """Build the network on meta: its tensors and its output must fit the file."""
        import torch

        from mmexplain.estimators.base import build_estimator_module

        try:
            with _meta():
                module = build_estimator_module(net).to("meta")
        except Exception as exc:  # noqa: BLE001 - only allow-listed classes ran
            raise ValueError(
                f"{where}: its parameters do not describe a network ({type(exc).__name__}: "
                f"{exc})"
            ) from None
        _compare_state(module.state_dict(), got, f"{where}.module_")
        shapes = fitted.get("input_shapes_")
        classes = fitted.get("classes_inferred_")
        n = (
            len(classes)
            if classes is not None
            else fitted.get("n_classes_", fitted.get("n_outputs_"))
        )
        if shapes is None or n is None:
            return
        try:
            with _meta(), torch.no_grad():
                module.eval()
                out = module(**{m: torch.zeros((2, *s)) for m, s in shapes.items()})
        except Exception as exc:  # noqa: BLE001 - only allow-listed classes ran
            raise ValueError(
                f"{where}: the network does not run on input_shapes_ {short(shapes)} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        segmenter = "n_classes_" in fitted
        explicit = params.get("module__n_classes")
        width = (
            out.shape[1] if isinstance(out, torch.Tensor) and out.dim() >= 2 else None
        )
        ok = width is not None and out.dim() == (4 if segmenter else 2)
        if ok and segmenter:
            ok = tuple(out.shape[2:]) == tuple(next(iter(shapes.values()))[1:])
        if ok and width is not None:  # (ok implies a width)
            ok = width == n if explicit is None else (width == explicit and n <= width)
        if not ok:
            unit = "targets" if "n_outputs_" in fitted else "classes"
            what = f"{n} {unit}" + (
                "" if explicit is None else f" (module__n_classes={explicit})"
            )
            got_shape = (
                tuple(out.shape)
                if isinstance(out, torch.Tensor)
                else type(out).__name__
            )
            raise ValueError(
                f"{where}: the network outputs {got_shape} for 2 samples, which does not "
                f"fit {what}" + (" per pixel" if segmenter else "")
            )

    def _balancer(self, net: Any, raw: Any, decoder: Any, where: str) -> None:
        """Restore the fitted balancer's attributes; refuse continuing without them."""
        import torch

        at = f"{where}.balancer_"
        balancer = getattr(net, "balancer_", None)
        if not (isinstance(raw, dict) and set(raw) == {"attributes", "unsaved"}):
            raise ValueError(f"{at}: bad balancer state")
        attributes, unsaved = raw["attributes"], raw["unsaved"]
        if (
            balancer is None
            or not isinstance(attributes, dict)
            or not isinstance(unsaved, list)
        ):
            raise ValueError(f"{at}: balancer state without a balancer")
        if not all(isinstance(u, str) for u in unsaved):
            raise ValueError(f"{at}: bad list of unsaved attributes")
        params = balancer.get_params(deep=False)
        restorer = StateDecoder(
            decoder.tensors,
            self.plain,
            parameters=dict(net.module_.named_parameters()),
            device=torch.device(net.device or "cpu"),
        )
        restorer.used = decoder.used  # one member: every tensor used once in all
        for key, value in attributes.items():
            if (
                not ATTR_NAME.match(key)
                or key in params
                or hasattr(type(balancer), key)
            ):
                raise ValueError(f"{at}: bad attribute name {key!r}")
            try:
                setattr(balancer, key, restorer.value(value, f"{at}.{key}"))
            except NotRestorable:
                # a generator of another device type: its stream cannot go on
                # here anyway, and balancers draw theirs when training starts
                continue
        if unsaved:
            balancer.fit_started = ContinuationRefused(
                unsaved,
                "this model was loaded from a safe model file that could not hold "
                f"the state of its {type(balancer).__name__} "
                f"({', '.join(sorted(unsaved))}): partial_fit would not continue the "
                "training as the original would. Call fit to retrain, or continue the "
                "original model (or a pickle of it)",
            )


def _finish_target_regressor(obj: Any) -> None:
    """What a ``TransformedTargetRegressor``'s ``fit`` derives, rebuilt from what was read.

    The identity ``transformer_`` (``transformer=None``), and
    ``feature_names_in_`` when the fitted regressor has them.
    """
    if obj.transformer is None:
        net = final_regressor(obj.regressor_)
        obj.transformer_ = identity_transformer(obj.check_inverse, net.n_outputs_)
    names = getattr(obj.regressor_, "feature_names_in_", None)
    if names is not None:
        obj.feature_names_in_ = names


def _history(value: Any, where: str) -> list[dict[str, Any]]:
    """skorch's history: a list of epoch dicts, each with a list of batch dicts."""
    ok = isinstance(value, list) and all(
        isinstance(epoch, dict)
        and all(isinstance(k, str) for k in epoch)
        and isinstance(epoch.get("batches", []), list)
        and all(isinstance(b, dict) for b in epoch.get("batches", []))
        for epoch in value
    )
    if not ok:
        raise ValueError(
            f"{where}.history: must be a list of epochs (dicts with batches)"
        )
    return value


def _reference_state(optimizer: Any, group: dict[str, Any]) -> dict[str, str] | None:
    """What one step of this optimizer keeps per parameter: key -> 'param' or 'scalar'."""
    import torch

    hyper = {
        k: v
        for k, v in group.items()
        if k not in ("params", "param_names", "initial_lr")
    }
    try:
        p = torch.nn.Parameter(torch.zeros(3))
        opt = type(optimizer)([p], **hyper)
        p.grad = torch.ones(3)
        opt.step()
    except Exception:  # noqa: BLE001 - e.g. options for another device: shapes only
        return None
    out = {}
    for key, value in opt.state[p].items():
        if isinstance(value, torch.Tensor):
            out[key] = "param" if tuple(value.shape) == (3,) else "scalar"
        else:
            out[key] = type(value).__name__
    return out


def _check_optimizer(optimizer: Any, module: Any, saved: Any, where: str) -> None:
    """The saved optimizer state must be the one this optimizer keeps for these weights."""
    import torch

    fresh = optimizer.state_dict()
    if not (isinstance(saved, dict) and set(saved) == {"state", "param_groups"}):
        raise ValueError(f"{where}: must hold 'state' and 'param_groups'")
    groups, state = saved["param_groups"], saved["state"]
    if not (isinstance(groups, list) and len(groups) == len(fresh["param_groups"])):
        raise ValueError(
            f"{where}: must have {len(fresh['param_groups'])} parameter groups"
        )
    params = [p for g in optimizer.param_groups for p in g["params"]]
    owner: dict[int, dict[str, str] | None] = {}
    for i, (got, want) in enumerate(zip(groups, fresh["param_groups"], strict=True)):
        if not isinstance(got, dict) or set(got) != set(want):
            raise ValueError(f"{where}: group {i} must have the entries {sorted(want)}")
        for key, value in want.items():
            if key == "lr":
                lr = got[key]
                if not (
                    isinstance(lr, int | float)
                    and not isinstance(lr, bool)
                    and math.isfinite(lr)
                    and lr >= 0
                ):
                    raise ValueError(f"{where}: group {i} has a bad lr {short(lr)}")
            elif not _equal(got[key], value):
                raise ValueError(
                    f"{where}: group {i} has {key}={short(got[key])}, but the optimizer "
                    f"the parameters describe has {short(value)}"
                )
        reference = _reference_state(optimizer, want)
        for index in want["params"]:
            owner[index] = reference
    if not isinstance(state, dict):
        raise ValueError(f"{where}: bad state")
    for index, entry in state.items():
        if index not in owner or not isinstance(entry, dict):
            raise ValueError(f"{where}: state for unknown parameter {short(index)}")
        shape = tuple(params[index].shape)
        reference = owner[index]
        if reference is not None and set(entry) != set(reference):
            raise ValueError(
                f"{where}: parameter {index} has state {sorted(entry)}, expected "
                f"{sorted(reference)}"
            )
        for key, value in entry.items():
            kind = None if reference is None else reference[key]
            if isinstance(value, torch.Tensor):
                ok = (
                    tuple(value.shape) == shape
                    if kind == "param"
                    else value.dim() == 0
                    if kind == "scalar"
                    else tuple(value.shape) in (shape, ())
                )
            else:
                ok = kind is None or type(value).__name__ == kind
            if not ok:
                raise ValueError(
                    f"{where}: state {key!r} of parameter {index} does not fit its shape {shape}"
                )


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 - tensors and the like: not equal
        return False
