"""Decoding a safe model file: only allow-listed classes, only weights-only tensors."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from typing import Any

import numpy as np

from mmexplain.persistence._format import ATTR_NAME, NET_FITTED, TAGS
from mmexplain.persistence.allowlist import allowed, canonical_name, resolve


class Decoder:
    """Rebuild the objects of a header; tensors are read from ``archive``."""

    def __init__(self, archive: zipfile.ZipFile, files: dict[str, Any]) -> None:
        self.archive = archive
        self.files = files

    def value(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if not isinstance(obj, dict):
            raise ValueError(f"unexpected JSON value {obj!r}")
        if len(obj) == 1 and next(iter(obj)) in TAGS:
            tag, body = next(iter(obj.items()))
            return getattr(self, "_" + tag.strip("_"))(body)
        return {k: self.value(v) for k, v in obj.items()}

    def _float(self, body: str) -> float:
        if body not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad float {body!r}")
        return float(body)

    def _tuple(self, body: list[Any]) -> tuple[Any, ...]:
        return tuple(self.value(v) for v in body)

    def _dict(self, body: list[list[Any]]) -> dict[Any, Any]:
        return {self._hashable(self.value(k)): self.value(v) for k, v in body}

    @staticmethod
    def _hashable(key: Any) -> Any:
        hash(key)
        return key

    def _ndarray(self, body: dict[str, Any]) -> np.ndarray:
        dtype, shape, data = body["dtype"], body["shape"], body["data"]
        if dtype == "object":
            arr = np.empty(len(data), dtype=object)
            arr[:] = [self.value(v) for v in data]
        else:
            dt = np.dtype(dtype)
            if dt.kind not in "biufU":
                raise ValueError(f"array dtype {dtype!r} is not allowed")
            arr = np.array(
                [
                    float(v) if isinstance(v, str) and dt.kind == "f" else v
                    for v in data
                ],
                dtype=dt,
            )
        return arr.reshape([int(s) for s in shape])

    def _scalar(self, body: dict[str, Any]) -> Any:
        dt = np.dtype(body["dtype"])
        if dt.kind not in "biufU":
            raise ValueError(f"scalar dtype {body['dtype']!r} is not allowed")
        return np.array(body["value"], dtype=dt)[()]

    def _class(self, name: str) -> type:
        return self._lookup(name)[1]

    def _lookup(self, name: Any) -> tuple[str, type]:
        """The canonical name and class of an allow-listed ``name``; else ValueError."""
        if isinstance(name, str):
            name = canonical_name(name)
        if not isinstance(name, str) or name not in allowed():
            raise ValueError(
                f"class {name!r} is not in the allow-list of classes a model file may "
                "use (mmexplain.persistence.SAFE_CLASSES)"
            )
        cls = resolve(name)
        if cls is None:
            raise ValueError(f"class {name!r} cannot be imported in this installation")
        return name, cls

    def _module(self, body: dict[str, Any]) -> Any:
        name, cls = self._lookup(body["class"])
        if allowed()[name][1] != "module" or set(body) != {
            "class",
            "params",
            "tensors",
        }:
            raise ValueError(f"bad module entry for {name}")
        params = self.value(body["params"])
        if not isinstance(params, dict):
            raise ValueError(f"params of {name} must be a mapping")
        module = cls(**params)
        module.load_state_dict(self._tensors(body["tensors"])["module"])
        return module

    def _object(self, body: dict[str, Any]) -> Any:
        name, cls = self._lookup(body["class"])
        role = allowed()[name][1]
        if role in ("class", "module"):
            raise ValueError(f"{name} cannot be described as an estimator")
        keys = {"class", "params", "fitted"}
        if role == "net":
            keys |= {"tensors", "history"}
        extra = set(body) - keys
        if extra:
            raise ValueError(f"unexpected entries {sorted(extra)} for {name}")
        if role == "params" and "fitted" in body:
            raise ValueError(f"{name} has no fitted state in a model file")
        params = self.value(body["params"])
        if not isinstance(params, dict):
            raise ValueError(f"params of {name} must be a mapping")
        if role == "net":
            return self._net(cls, name, params, body)
        obj = cls(**params)
        for key, value in self.value(body.get("fitted", {})).items():
            if not ATTR_NAME.match(key):
                raise ValueError(f"bad fitted attribute name {key!r} for {name}")
            setattr(obj, key, value)
        return obj

    def _net(
        self, cls: type, name: str, params: dict[str, Any], body: dict[str, Any]
    ) -> Any:
        import torch

        device = params.get("device")
        if (
            isinstance(device, str)
            and device.startswith("cuda")
            and not torch.cuda.is_available()
        ):
            warnings.warn(
                f"the {name.rsplit('.', 1)[1]} was saved with device={device!r} but CUDA "
                "is not available; loading it on the CPU",
                UserWarning,
                stacklevel=4,
            )
            params["device"] = "cpu"
        net = cls(**params)
        fitted = self.value(body.get("fitted", {}))
        for key in fitted:
            if key not in NET_FITTED:
                raise ValueError(f"unexpected fitted attribute {key!r} for {name}")
        for key, value in fitted.items():
            setattr(net, key, value)
        member = body.get("tensors")
        if member is None:
            return net
        state = self._tensors(member)
        net.initialize()
        for key, value in fitted.items():  # initialize() re-draws the seed
            setattr(net, key, value)
        net.module_.load_state_dict(state["module"])
        if "criterion" in state:
            net.criterion_.load_state_dict(state["criterion"])
        if "optimizer" in state and getattr(net, "optimizer_", None) is not None:
            net.optimizer_.load_state_dict(state["optimizer"])
        if "history" in body:
            from skorch.history import History

            net.history = History(self.value(body["history"]))
        return net

    def _tensors(self, member: Any) -> dict[str, Any]:
        import torch

        if not isinstance(member, str) or member not in self.files:
            raise ValueError(f"tensor file {member!r} is not listed in the header")
        try:
            data = self.archive.read(member)
        except KeyError:
            raise ValueError(
                f"tensor file {member!r} is missing from the archive"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.files[member].get("sha256"):
            raise ValueError(
                f"checksum mismatch for {member!r} (corrupted or modified weights)"
            )
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "module" not in state:
            raise ValueError(f"{member!r} does not hold a module state_dict")
        return state
