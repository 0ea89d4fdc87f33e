"""Encoding a model as the JSON header and tensor members of a safe model file."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import numpy as np

from mmexplain.persistence._format import (
    ATTR_NAME,
    NET_FITTED,
    TAGS,
    RefusedValue,
    unsafe,
)
from mmexplain.persistence._modules import encoder_init_params
from mmexplain.persistence._policy import (
    check_fitted,
    check_identity_transformer,
    check_params,
)
from mmexplain.persistence._state import (
    ContinuationRefused,
    TensorStore,
    Unencodable,
    encode_state,
)
from mmexplain.persistence.allowlist import allowed, allowed_name, kind_of


def _init_params(obj: Any) -> dict[str, Any]:
    """Constructor parameters of ``obj`` (``get_params(deep=False)`` or its signature)."""
    if hasattr(obj, "get_params"):
        return dict(obj.get_params(deep=False))
    names = [
        p.name
        for p in inspect.signature(type(obj)).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return {n: getattr(obj, n) for n in names if hasattr(obj, n)}


class Encoder:
    """Describe objects as JSON values; collect the tensor members in ``files``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def value(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, bool | str):
            return obj
        if isinstance(obj, int) and not isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, float) and not isinstance(obj, np.floating):
            if math.isfinite(obj):
                return float(obj)
            return {"__float__": repr(float(obj))}
        if isinstance(obj, tuple):
            return {
                "__tuple__": [self.value(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            }
        if isinstance(obj, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            plain = all(isinstance(k, str) for k in obj) and not (
                len(obj) == 1 and next(iter(obj)) in TAGS
            )
            if plain:
                return {k: self.value(v, f"{where}[{k!r}]") for k, v in obj.items()}
            return {
                "__dict__": [
                    [self.value(k, f"{where} key"), self.value(v, f"{where}[{k!r}]")]
                    for k, v in obj.items()
                ]
            }
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self._array(obj, where)}
        if isinstance(obj, np.generic):
            arr = np.asarray(obj)
            if arr.dtype.kind not in "biufU":
                raise unsafe(where, obj)
            item = arr.item()
            if isinstance(item, float) and not math.isfinite(item):
                item = repr(item)
            return {"__scalar__": {"dtype": arr.dtype.str, "value": item}}
        if isinstance(obj, type):
            name = allowed_name(obj)
            if name is None:
                raise unsafe(where, obj)
            return {"__class__": name}
        name = allowed_name(type(obj))
        if name is None or allowed()[name][1] == "class":
            raise unsafe(where, obj)
        if allowed()[name][1] == "module":
            return {"__module__": self._module(obj, name, where)}
        return {"__object__": self._object(obj, name, where)}

    def _member(self, store: TensorStore) -> str:
        member = f"tensors/{len(self.files)}.safetensors"
        self.files[member] = store.pack()
        return member

    def _state(self, state: Any, store: TensorStore, where: str) -> Any:
        try:
            return encode_state(state, "", store, self.value)
        except Unencodable as exc:
            raise unsafe(f"{where} state {exc.where}", state) from None

    def _module(self, module: Any, name: str, where: str) -> dict[str, Any]:
        params = encoder_init_params(module)
        rebuilt = None if params is None else type(module)(**params)
        if params is None or rebuilt is None or repr(rebuilt) != repr(module):
            raise unsafe(
                where, module, " (its constructor arguments cannot be recovered)"
            )
        store = TensorStore()
        state = self._state({"module": module.state_dict()}, store, where)
        return {
            "class": name,
            "params": {k: self.value(v, f"{where}.{k}") for k, v in params.items()},
            "tensors": self._member(store),
            "state": state,
        }

    def _array(self, arr: np.ndarray, where: str) -> dict[str, Any]:
        kind = arr.dtype.kind
        if kind in "biu" or kind == "f":
            data = [
                v if not isinstance(v, float) or math.isfinite(v) else repr(v)
                for v in arr.ravel().tolist()
            ]
        elif kind == "U":
            data = arr.ravel().tolist()
        elif kind == "O" and all(
            isinstance(v, str | bool | int | float) for v in arr.ravel().tolist()
        ):
            data = [self.value(v, where) for v in arr.ravel().tolist()]
        else:
            raise unsafe(
                where, arr, f" (arrays of dtype {arr.dtype} are not supported)"
            )
        dtype = "object" if kind == "O" else arr.dtype.str
        return {"dtype": dtype, "shape": list(arr.shape), "data": data}

    def _object(self, obj: Any, name: str, where: str) -> dict[str, Any]:
        role = allowed()[name][1]
        label = where or type(obj).__name__
        params = _init_params(obj)
        kind = kind_of(name)
        if kind == "target_regressor":  # func=np.log: refused by name, not as a class
            check_params(kind, type(obj), params, label, saving=True)
        if role == "net":
            import torch

            module = params.get("module")
            if isinstance(module, torch.nn.Module):
                raise unsafe(
                    f"{label}.module",
                    module,
                    " (a module instance; pass the class, e.g. module=MMTMNet, with "
                    "module__<arg> parameters)",
                )
        out: dict[str, Any] = {
            "class": name,
            "params": {
                k: self.value(v, f"{label}.{k}") for k, v in sorted(params.items())
            },
        }
        if kind is not None:  # what loading would refuse is not written
            check_params(kind, type(obj), params, label, saving=True)
        if kind == "target_regressor":
            self._target_regressor(obj, out, label)
        elif role == "fitted":
            fitted = {
                k: v
                for k, v in vars(obj).items()
                if ATTR_NAME.match(k) and k not in params
            }
            if fitted:
                out["fitted"] = {
                    k: self.value(v, f"{label}.{k}") for k, v in sorted(fitted.items())
                }
        elif role == "net":
            self._net(obj, out, label)
        return out

    def _target_regressor(self, obj: Any, out: dict[str, Any], label: str) -> None:
        """A ``TransformedTargetRegressor``'s ``regressor_``, ``transformer_``, ``_training_dim``.

        Its identity ``transformer_`` (``transformer=None``) is not stored:
        loading rebuilds it. Checked as loading checks it, before anything is
        written.
        """
        if "regressor_" not in vars(obj):
            return
        fitted = {
            "regressor_": obj.regressor_,
            "_training_dim": getattr(obj, "_training_dim", None),
        }
        if obj.transformer is not None:
            fitted["transformer_"] = getattr(obj, "transformer_", None)
        try:
            check_fitted("target_regressor", obj, fitted, label)
        except ValueError as exc:
            raise RefusedValue(
                f"cannot save {label} in a safe model file: {exc} (was it changed "
                "after fitting? fit again)"
            ) from None
        if obj.transformer is None:
            check_identity_transformer(obj, label)
        out["fitted"] = {
            k: self.value(v, f"{label}.{k}") for k, v in sorted(fitted.items())
        }

    def _net(self, net: Any, out: dict[str, Any], label: str) -> None:
        if not getattr(net, "initialized_", False):
            return
        out["fitted"] = {
            k: self.value(getattr(net, k), f"{label}.{k}")
            for k in NET_FITTED
            if hasattr(net, k) and k in vars(net)
        }
        store = TensorStore()
        state = {
            "module": net.module_.state_dict(),
            "criterion": net.criterion_.state_dict(),
        }
        optimizer = getattr(net, "optimizer_", None)
        if optimizer is not None and hasattr(optimizer, "state_dict"):
            state["optimizer"] = optimizer.state_dict()
        out["state"] = self._state(state, store, label)
        balancer = getattr(net, "balancer_", None)
        if balancer is not None:
            out["balancer_state"] = self._balancer(net, balancer, store, label)
        out["tensors"] = self._member(store)
        out["history"] = self.value(list(net.history.to_list()), f"{label}.history")

    def _balancer(
        self, net: Any, balancer: Any, store: TensorStore, label: str
    ) -> dict[str, Any]:
        """The fitted balancer's state (attributes ending in ``_``), and what is left out."""
        parameters = {id(p): n for n, p in net.module_.named_parameters()}
        params = balancer.get_params(deep=False)
        state = balancer.__getstate__() if hasattr(balancer, "__getstate__") else None
        state = state if isinstance(state, dict) else dict(vars(balancer))
        refused = vars(balancer).get("fit_started")
        unsaved = (
            list(refused.names) if isinstance(refused, ContinuationRefused) else []
        )
        saved = {}
        for key, value in sorted(state.items()):
            if not ATTR_NAME.match(key) or key in params:
                continue
            try:
                saved[key] = encode_state(
                    value,
                    f"balancer.{key}",
                    store,
                    self.value,
                    parameters=parameters,
                )
            except (Unencodable, TypeError):
                unsaved.append(key)
        if unsaved:
            warnings.warn(
                f"{label}.balancer_ holds state the safe model format cannot store "
                f"({', '.join(sorted(unsaved))}): the loaded model predicts the same, "
                "but refuses to continue training with partial_fit (fit retrains)",
                UserWarning,
                stacklevel=5,
            )
        return {"attributes": saved, "unsaved": sorted(unsaved)}
