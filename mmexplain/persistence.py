"""Save and load fitted models without pickle.

:func:`save_model` writes an estimator or a scikit-learn ``Pipeline`` to a
zip file that :func:`load_model` reads back **without executing code from the
file**: the structure is JSON (class names from a fixed allow-list,
parameters, fitted attributes) and the network weights are tensors read with
``torch.load(..., weights_only=True)``. Pickles are loaded only on request
(``load_model(path, trust_pickle=True)``), with a warning.

File format (version 1), a zip archive:

``mmexplain-model.json``
    ``{"format": "mmexplain-model", "format_version": 1, "versions": {...},
    "root": <object>, "files": {<member>: {"sha256": ..., "size": ...}}}``.
    An ``<object>`` is ``{"__object__": {"class": <allow-listed name>,
    "params": {...}, "fitted": {...}, "tensors": <member>, "history": [...]}}``:
    ``params`` are the estimator's ``get_params(deep=False)``, ``fitted`` its
    fitted attributes (``classes_``, ``modalities_``, ``input_shapes_``,
    ``seed_``; a scaler's ``mean_``, ``scale_``, ...). Other values are JSON
    with tags for what JSON lacks: ``{"__tuple__": [...]}``,
    ``{"__ndarray__": {"dtype", "shape", "data"}}``, ``{"__scalar__": ...}``,
    ``{"__float__": "nan"}``, ``{"__dict__": [[key, value], ...]}``,
    ``{"__class__": <allow-listed name>}`` and, for encoder instances given
    as parameters (``module__encoders`` of ``module=LateFusionNet``),
    ``{"__module__": {"class", "params", "tensors"}}``.
``tensors/<k>.pt``
    ``torch.save`` of ``{"module": state_dict, "optimizer": state_dict,
    "criterion": state_dict}`` of a fitted network (or ``{"module":
    state_dict}`` of an encoder parameter); its SHA-256 is in the header, so
    corrupted weights are detected.

What can be described safely: :class:`~mmexplain.MultimodalClassifier` and
:class:`~mmexplain.MultimodalSegmenter` with ``module=None`` or a module
class of :mod:`mmexplain.modules` (for ``LateFusionNet``, ``MLPEncoder`` /
``ConvEncoder`` instances as ``module__encoders``), mmexplain balancers and
callbacks, torch losses and optimizers, :class:`~mmexplain.ModalityTransformer` with the
scikit-learn scalers in :data:`SAFE_CLASSES`, and ``Pipeline``. Anything else
(your own module class, a module instance, custom callables) raises a
``TypeError`` naming the object.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "SAFE_CLASSES", "load_model", "save_model"]

#: version of the file format written by :func:`save_model`
FORMAT_VERSION = 1
_FORMAT = "mmexplain-model"
_HEADER = "mmexplain-model.json"
_ZIP_MAGIC = b"PK\x03\x04"

# Allow-list: canonical name -> (modules where the class may live, role).
# Roles: "net" (skorch estimator: params, fitted attributes, weights),
# "module" (an encoder instance given as a parameter, e.g. the encoders of
# module=LateFusionNet: constructor arguments and weights),
# "fitted" (params and public fitted attributes), "params" (constructor
# parameters only), "class" (only referenced as a class, never instantiated
# from the file).
_ALLOWED: dict[str, tuple[tuple[str, ...], str]] = {
    "mmexplain.MultimodalClassifier": (("mmexplain",), "net"),
    "mmexplain.MultimodalSegmenter": (("mmexplain",), "net"),
    "mmexplain.ModalityTransformer": (("mmexplain",), "fitted"),
    "mmexplain.LateFusionNet": (("mmexplain",), "class"),
    "mmexplain.LateFusionSegNet": (("mmexplain",), "class"),
    "mmexplain.MMTMNet": (("mmexplain",), "class"),
    "mmexplain.MLPEncoder": (("mmexplain",), "module"),
    "mmexplain.ConvEncoder": (("mmexplain",), "module"),
    "mmexplain.data.TensorBatchIterator": (
        ("mmexplain.data", "mmexplain.estimators"),
        "class",
    ),
    "mmexplain.data.ModalityDataset": (
        ("mmexplain.data", "mmexplain.estimators"),
        "class",
    ),
    "mmexplain.balancers.ModalityDropout": (("mmexplain.balancers",), "params"),
    "mmexplain.balancers.GreedyBalancer": (("mmexplain.balancers",), "params"),
    "mmexplain.balancers.OGMGE": (("mmexplain.balancers",), "params"),
    "mmexplain.balancers.UtilizationTarget": (("mmexplain.balancers",), "params"),
    "mmexplain.balancers.AttributionRegularizer": (
        ("mmexplain.balancers",),
        "params",
    ),
    "mmexplain.balancers.SampleValuation": (("mmexplain.balancers",), "params"),
    "mmexplain.callbacks.EpochProgressBar": (("mmexplain.callbacks",), "params"),
    "mmexplain.callbacks.ConditionalLearningSpeed": (
        ("mmexplain.callbacks",),
        "params",
    ),
    "sklearn.pipeline.Pipeline": (("sklearn.pipeline",), "params"),
    "sklearn.preprocessing.StandardScaler": (("sklearn.preprocessing",), "fitted"),
    "sklearn.preprocessing.MinMaxScaler": (("sklearn.preprocessing",), "fitted"),
    "sklearn.preprocessing.MaxAbsScaler": (("sklearn.preprocessing",), "fitted"),
    "sklearn.preprocessing.RobustScaler": (("sklearn.preprocessing",), "fitted"),
    "sklearn.preprocessing.Normalizer": (("sklearn.preprocessing",), "fitted"),
    "skorch.dataset.ValidSplit": (("skorch.dataset",), "params"),
    "skorch.callbacks.GradientNormClipping": (("skorch.callbacks",), "params"),
    "torch.utils.data.DataLoader": (("torch.utils.data",), "class"),
    **{
        f"torch.nn.{name}": (("torch.nn",), "class")
        for name in (
            "CrossEntropyLoss",
            "NLLLoss",
            "BCEWithLogitsLoss",
            "MSELoss",
            "L1Loss",
        )
    },
    **{
        f"torch.optim.{name}": (("torch.optim",), "class")
        for name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad")
    },
}

#: names of the classes a safe model file may refer to (nothing else is ever
#: imported or constructed by :func:`load_model` without ``trust_pickle``)
SAFE_CLASSES: tuple[str, ...] = tuple(sorted(_ALLOWED))

# fitted attributes of the skorch estimators kept in the file
_NET_FITTED = (
    "classes_inferred_",
    "modalities_",
    "input_shapes_",
    "seed_",
    "n_classes_",
)
_ATTR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_$")
_TAGS = (
    "__object__",
    "__module__",
    "__class__",
    "__tuple__",
    "__ndarray__",
    "__scalar__",
    "__float__",
    "__dict__",
)
_HOW_TO = (
    "Save the weights with net.save_params(f_params='weights.pt') and rebuild the "
    "estimator in code (net.initialize(); net.load_params(f_params='weights.pt')), "
    "or pickle the model yourself and load it with "
    "mmexplain.persistence.load_model(path, trust_pickle=True) (CLI: --trust-pickle), "
    "only for files you trust."
)


def _resolve(name: str) -> type | None:
    """The allow-listed class called ``name`` (None when it cannot be imported)."""
    modules, _ = _ALLOWED[name]
    attr = name.rsplit(".", 1)[1]
    for module_name in modules:
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
        if isinstance(obj, type):
            return obj
    return None


def _allowed_name(cls: type) -> str | None:
    """Canonical allow-list name of ``cls`` (exact class, not subclasses)."""
    prefix = cls.__module__.split(".", 1)[0]
    for name in _ALLOWED:
        if name.split(".", 1)[0] == prefix and _resolve(name) is cls:
            return name
    return None


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__} object"


def _unsafe(where: str, obj: Any, why: str = "") -> TypeError:
    return TypeError(
        f"cannot save {where} = {_describe(obj)} in the safe model format{why}: "
        "it stores only JSON-like values and the classes listed in "
        "mmexplain.persistence.SAFE_CLASSES, so that loading never runs code. "
        + _HOW_TO
    )


def _init_params(obj: Any) -> dict[str, Any]:
    """Constructor parameters of ``obj`` (``get_params(deep=False)`` or its signature)."""
    if hasattr(obj, "get_params"):
        return dict(obj.get_params(deep=False))
    import inspect

    names = [
        p.name
        for p in inspect.signature(type(obj)).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return {n: getattr(obj, n) for n in names if hasattr(obj, n)}


def _encoder_init_params(module: Any) -> dict[str, Any] | None:
    """Constructor arguments of an MLPEncoder / ConvEncoder, read from its layers.

    The caller checks that ``type(module)(**params)`` has the same structure.
    """
    from torch import nn

    from mmexplain import ConvEncoder, MLPEncoder

    layers = list(module.modules())
    if type(module) is MLPEncoder:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        drops = [m.p for m in layers if isinstance(m, nn.Dropout)]
        return {
            "in_features": int(module.in_features),
            "out_features": int(module.out_features),
            "hidden": tuple(int(m.out_features) for m in linears[:-1]),
            "dropout": float(drops[0]) if drops else 0.0,
        }
    if type(module) is ConvEncoder:
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        if not convs:
            return None
        return {
            "in_channels": int(module.in_channels),
            "out_features": int(module.out_features),
            "channels": tuple(int(m.out_channels) for m in convs),
            "kernel_size": int(convs[0].kernel_size[0]),
        }
    return None


# ----------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------
class _Encoder:
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
                len(obj) == 1 and next(iter(obj)) in _TAGS
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
                raise _unsafe(where, obj)
            return {"__scalar__": {"dtype": arr.dtype.str, "value": arr.item()}}
        if isinstance(obj, type):
            name = _allowed_name(obj)
            if name is None:
                raise _unsafe(where, obj)
            return {"__class__": name}
        name = _allowed_name(type(obj))
        if name is None or _ALLOWED[name][1] == "class":
            raise _unsafe(where, obj)
        if _ALLOWED[name][1] == "module":
            return {"__module__": self._module(obj, name, where)}
        return {"__object__": self._object(obj, name, where)}

    def _tensor_file(self, state: dict[str, Any]) -> str:
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        member = f"tensors/{len(self.files)}.pt"
        self.files[member] = buf.getvalue()
        return member

    def _module(self, module: Any, name: str, where: str) -> dict[str, Any]:
        params = _encoder_init_params(module)
        rebuilt = None if params is None else type(module)(**params)
        if rebuilt is None or repr(rebuilt) != repr(module):
            raise _unsafe(
                where, module, " (its constructor arguments cannot be recovered)"
            )
        return {
            "class": name,
            "params": {k: self.value(v, f"{where}.{k}") for k, v in params.items()},
            "tensors": self._tensor_file({"module": module.state_dict()}),
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
            raise _unsafe(
                where, arr, f" (arrays of dtype {arr.dtype} are not supported)"
            )
        dtype = "object" if kind == "O" else arr.dtype.str
        return {"dtype": dtype, "shape": list(arr.shape), "data": data}

    def _object(self, obj: Any, name: str, where: str) -> dict[str, Any]:
        role = _ALLOWED[name][1]
        label = where or type(obj).__name__
        params = _init_params(obj)
        if role == "net":
            import torch

            module = params.get("module")
            if isinstance(module, torch.nn.Module):
                raise _unsafe(
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
        if role == "fitted":
            fitted = {
                k: v
                for k, v in vars(obj).items()
                if _ATTR_NAME.match(k) and k not in params
            }
            if fitted:
                out["fitted"] = {
                    k: self.value(v, f"{label}.{k}") for k, v in sorted(fitted.items())
                }
        elif role == "net":
            self._net(obj, out, label)
        return out

    def _net(self, net: Any, out: dict[str, Any], label: str) -> None:

        if not getattr(net, "initialized_", False):
            return
        out["fitted"] = {
            k: self.value(getattr(net, k), f"{label}.{k}")
            for k in _NET_FITTED
            if hasattr(net, k) and k in vars(net)
        }
        state = {
            "module": net.module_.state_dict(),
            "criterion": net.criterion_.state_dict(),
        }
        optimizer = getattr(net, "optimizer_", None)
        if optimizer is not None and hasattr(optimizer, "state_dict"):
            state["optimizer"] = optimizer.state_dict()
        out["tensors"] = self._tensor_file(state)
        out["history"] = self.value(list(net.history.to_list()), f"{label}.history")


# ----------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------
class _Decoder:
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
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
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
        return self._lookup(name)

    def _lookup(self, name: Any) -> type:
        if not isinstance(name, str) or name not in _ALLOWED:
            raise ValueError(
                f"class {name!r} is not in the allow-list of classes a model file may "
                "use (mmexplain.persistence.SAFE_CLASSES)"
            )
        cls = _resolve(name)
        if cls is None:
            raise ValueError(f"class {name!r} cannot be imported in this installation")
        return cls

    def _module(self, body: dict[str, Any]) -> Any:
        name = body["class"]
        cls = self._lookup(name)
        if _ALLOWED[name][1] != "module" or set(body) != {"class", "params", "tensors"}:
            raise ValueError(f"bad module entry for {name}")
        params = self.value(body["params"])
        if not isinstance(params, dict):
            raise ValueError(f"params of {name} must be a mapping")
        module = cls(**params)
        module.load_state_dict(self._tensors(body["tensors"])["module"])
        return module

    def _object(self, body: dict[str, Any]) -> Any:
        name = body["class"]
        cls = self._lookup(name)
        role = _ALLOWED[name][1]
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
            if not _ATTR_NAME.match(key):
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
            if key not in _NET_FITTED:
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


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    out = {}
    for name in ("mmexplain", "torch", "sklearn", "skorch", "numpy"):
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):  # pragma: no cover
            pass
    return out


def save_model(estimator_or_pipeline: Any, path: str | os.PathLike[str]) -> Path:
    """Save a (fitted or unfitted) model in mmexplain's safe file format.

    The file is a zip holding a JSON description of the estimator (class
    names from :data:`SAFE_CLASSES`, ``get_params`` values, fitted attributes
    such as ``classes_``, ``modalities_``, ``input_shapes_``, ``seed_`` and the
    training ``history``) and the networks' ``state_dict`` tensors. Loading it
    with :func:`load_model` never executes code from the file. Any file name
    works; ``.mmx`` is the convention.

    Parameters
    ----------
    estimator_or_pipeline : estimator or sklearn Pipeline
        A :class:`~mmexplain.MultimodalClassifier` /
        :class:`~mmexplain.MultimodalSegmenter` (``module=None`` or a module
        class such as :class:`~mmexplain.MMTMNet`), a
        :class:`~mmexplain.ModalityTransformer` with scikit-learn scalers, or a
        ``Pipeline`` of those.
    path : str or path-like
        Where to write. The file is written to a temporary name and renamed,
        so an existing file is replaced only by a complete one.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If part of the model cannot be described without pickle (your own
        module class, a module instance, a custom callable or transformer); the
        message names it and says how to save such a model instead. Nothing
        is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.persistence import load_model, save_model
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> path = save_model(clf, os.path.join(tempfile.mkdtemp(), "model.mmx"))
    >>> bool((load_model(path).predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    encoder = _Encoder()
    root_name = _allowed_name(type(estimator_or_pipeline))
    if root_name is None or _ALLOWED[root_name][1] == "class":
        raise _unsafe("the model", estimator_or_pipeline)
    root = encoder.value(estimator_or_pipeline, type(estimator_or_pipeline).__name__)
    header = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "root": root,
        "files": {
            member: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for member, data in encoder.files.items()
        },
    }
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            archive.writestr(_HEADER, text, compress_type=zipfile.ZIP_DEFLATED)
            for member, data in encoder.files.items():
                archive.writestr(member, data, compress_type=zipfile.ZIP_STORED)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_model(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """Load a model written by :func:`save_model` (or, on request, a pickle).

    The safe format is recognized by its content, whatever the file name.
    Only classes in :data:`SAFE_CLASSES` are imported and constructed, and the
    weights are read with ``torch.load(..., weights_only=True)``: nothing in
    the file can execute code. Networks saved on a CUDA device load on the
    CPU (with a warning) when CUDA is not available.

    Parameters
    ----------
    path : str or path-like
        The model file.
    trust_pickle : bool, default=False
        Also accept a pickle file (e.g. ``model.pkl`` from ``pickle.dump``).
        **Unpickling runs any code the file contains**: pass True only for
        files you created or trust. A ``UserWarning`` says so each time.

    Returns
    -------
    estimator or Pipeline
        Fitted as it was saved: ``predict_proba`` gives the same values.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is a pickle and ``trust_pickle`` is False, or is not a
        model file, or is truncated, corrupted or tampered with (unknown
        classes, bad structure, checksum mismatch).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmexplain import ModalityTransformer, MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.persistence import load_model, save_model
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> pipe = make_pipeline(
    ...     ModalityTransformer({m: StandardScaler() for m in X}),
    ...     MultimodalClassifier(max_epochs=2, random_state=0),
    ... ).fit(X, y)
    >>> path = save_model(pipe, os.path.join(tempfile.mkdtemp(), "pipe.mmx"))
    >>> loaded = load_model(path)
    >>> [name for name, _ in loaded.steps]
    ['modalitytransformer', 'multimodalclassifier']
    >>> bool((loaded.predict(X) == pipe.predict(X)).all())
    True
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == _ZIP_MAGIC:
        return _load_safe(path)
    if not head:
        raise ValueError(f"{path} is empty, not a model file")
    looks_pickled = head[:1] == b"\x80" or path.suffix.lower() in (".pkl", ".pickle")
    if not trust_pickle:
        if looks_pickled:
            raise ValueError(
                f"{path} is a pickle file. Loading a pickle can execute arbitrary code, "
                "so load_model refuses it by default. If you trust the file, load it "
                "with load_model(path, trust_pickle=True) (CLI: --trust-pickle) and "
                "re-save it with mmexplain.persistence.save_model to get a safe file."
            )
        raise ValueError(
            f"{path} is not an mmexplain model file (expected the zip written by "
            "mmexplain.persistence.save_model)"
        )
    warnings.warn(
        f"loading the pickle {path}: unpickling executes any code the file contains; "
        "do this only for files you trust, and re-save the model with "
        "mmexplain.persistence.save_model",
        UserWarning,
        stacklevel=2,
    )
    with open(path, "rb") as fh:
        try:
            return pickle.load(fh)  # noqa: S301 - explicitly trusted by the caller
        except (pickle.UnpicklingError, EOFError, ImportError, AttributeError) as exc:
            raise ValueError(
                f"cannot unpickle {path}: {type(exc).__name__}: {exc}"
            ) from exc


def _load_safe(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                raw = archive.read(_HEADER)
            except KeyError:
                raise ValueError(
                    f"{path} is a zip file but not an mmexplain model file (it has no "
                    f"{_HEADER})"
                ) from None
            header = json.loads(raw.decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != _FORMAT:
                raise ValueError(f"{path} is not an mmexplain model file")
            version = header.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ValueError(
                    f"{path} has format version {version!r}; this mmexplain reads "
                    f"versions up to {FORMAT_VERSION} (upgrade mmexplain)"
                )
            files = header.get("files", {})
            if not isinstance(files, dict) or not all(
                isinstance(v, dict) for v in files.values()
            ):
                raise ValueError("bad 'files' entry")
            root = header.get("root")
            if not (isinstance(root, dict) and set(root) == {"__object__"}):
                raise ValueError("the root entry must describe an object")
            return _Decoder(archive, files).value(root)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"{path} is a corrupted or modified model file: {exc}"
        ) from exc
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RuntimeError,
        UnicodeDecodeError,
        OverflowError,
        zlib.error,
        pickle.UnpicklingError,
    ) as exc:
        raise ValueError(
            f"{path} is a truncated, corrupted or modified model file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
