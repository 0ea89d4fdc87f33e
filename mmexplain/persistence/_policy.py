"""What values a model file may hold: parameter allow-lists and fitted-attribute checks.

Class names are only half of what makes a file safe to load: skorch and
scikit-learn parameters choose how files are deserialized
(``torch_load_kwargs``), where files are written (``Pipeline(memory=...)``),
which device and which compiler run (``device``, ``compile``), which
processes start (``iterator_train__multiprocessing_context``) and how
``predict_proba`` turns outputs into probabilities. So every parameter of a
class a file may name has a rule here, applied by
:func:`~mmexplain.persistence.save_model` (a ``ValueError`` before anything
is written) and by :func:`~mmexplain.persistence.load_model` (a
``ValueError`` before anything is built):

- a net's parameters each have a rule (:func:`net_rules`); one without a
  rule (a parameter added later) must keep its default value, so nothing
  new passes unchecked; ``<prefix>__<name>`` parameters only for the
  network, the loss, the optimizer, the iterators (batching options) and the
  callbacks, with plain values;
- a ``Pipeline`` holds only ``steps`` and ``verbose`` (no ``memory``);
- a ``TransformedTargetRegressor`` holds a ``MultimodalRegressor`` (or a
  ``Pipeline`` ending in one), a scaler or None as ``transformer``, and no
  functions (``func`` and ``inverse_func`` are None);
- every other class takes plain values (numbers, strings, tuples, arrays),
  checked by the class's own parameter validation where it has one.

The fitted attributes are checked for type, range and consistency with the
parameters (:func:`check_fitted`); consistency with the weights is checked
by the decoder, which compares them with the network the parameters describe
before building it.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mmexplain.persistence._format import (
    ATTR_NAME,
    MAX_ITEMS,
    MAX_SAMPLE_ELEMENTS,
    MAX_WORKERS,
    NET_FITTED,
    RefusedValue,
    short,
)
from mmexplain.persistence.allowlist import kind_of_class

# -- value tests ------------------------------------------------------------------
_DEVICE = re.compile(r"^(cpu|cuda|mps)(:\d{1,4})?$")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool | np.bool_)


def is_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is data: numbers, strings, None, arrays and containers of them."""
    if depth > 32:
        return False
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return not isinstance(value, np.generic) or value.dtype.kind in "biufU"
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufU" or (
            value.dtype.kind == "O" and all(is_plain(v, depth + 1) for v in value.flat)
        )
    if isinstance(value, list | tuple):
        return len(value) <= MAX_ITEMS and all(is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= MAX_ITEMS and all(
            is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items()
        )
    return False


Rule = Callable[[Any, Mapping[str, Any]], "str | None"]


def _test(ok: Callable[[Any], object], allowed: str) -> Rule:
    def rule(value: Any, params: Mapping[str, Any]) -> str | None:
        try:
            good = bool(ok(value))
        except (TypeError, ValueError):
            good = False
        return None if good else allowed

    return rule


def _kind(kind: str, what: str, nullable: bool = False) -> Rule:
    return _test(
        lambda v: (nullable and v is None) or kind_of_class(v) == kind,
        (f"None or {what}" if nullable else what),
    )


def _object(kind: str, what: str) -> Rule:
    return _test(
        lambda v: v is None or kind_of_class(type(v)) == kind, f"None or {what}"
    )


def _callbacks(value: Any, params: Mapping[str, Any]) -> str | None:
    allowed = (
        "None or a list of callbacks (or (name, callback) pairs) from "
        "mmexplain.persistence.SAFE_CLASSES"
    )
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
        return allowed
    for item in value:
        if (
            isinstance(item, tuple | list)
            and len(item) == 2
            and isinstance(item[0], str)
        ):
            item = item[1]
        if kind_of_class(type(item)) != "callback":
            return allowed
    return None


def _labels(value: Any, params: Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return "None or a 1-D list of class labels"
    if arr.ndim != 1 or len(arr) < 1 or not is_plain(arr):
        return "None or a 1-D list of class labels"
    if len(set(arr.tolist())) != len(arr):
        return "None or a list of distinct class labels"
    return None


def _torch_load_kwargs(value: Any, params: Mapping[str, Any]) -> str | None:
    allowed = (
        "None or {'weights_only': True} (a model file cannot make load_params "
        "unpickle: set it after loading if you trust your weights files)"
    )
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= {"weights_only", "mmap"}:
        return allowed
    if value.get("weights_only", True) is not True:
        return allowed
    if not _is_bool(value.get("mmap", False)):
        return allowed
    return None


@functools.cache
def net_rules() -> dict[str, Rule]:
    """The rule of each parameter of mmexplain's nets (value, params) -> problem or None."""
    import torch

    return {
        "module": _kind(
            "network", "a network class of mmexplain.modules (e.g. MMTMNet)", True
        ),
        "criterion": _test(
            lambda v: v is torch.nn.CrossEntropyLoss,
            "torch.nn.CrossEntropyLoss: mmexplain's networks output logits, which "
            "is what it takes and what predict_proba's softmax turns into "
            "probabilities",
        ),
        "optimizer": _kind("optimizer", "an optimizer class of torch.optim"),
        "iterator_train": _kind("iterator", "TensorBatchIterator or DataLoader"),
        "iterator_valid": _kind("iterator", "TensorBatchIterator or DataLoader"),
        "dataset": _kind("dataset", "mmexplain.data.ModalityDataset"),
        "balancer": _object("balancer", "an mmexplain balancer"),
        "train_split": _object("splitter", "skorch.dataset.ValidSplit"),
        "callbacks": _callbacks,
        "lr": _test(
            lambda v: _is_real(v) and math.isfinite(v) and v >= 0,
            "a finite number >= 0",
        ),
        "max_epochs": _test(lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "batch_size": _test(
            lambda v: _is_int(v) and (v >= 1 or v == -1), "an integer >= 1 or -1"
        ),
        "verbose": _test(
            lambda v: _is_bool(v) or (_is_int(v) and v >= 0), "an integer >= 0"
        ),
        "warm_start": _test(_is_bool, "True or False"),
        "use_caching": _test(
            lambda v: _is_bool(v) or v == "auto", "'auto', True or False"
        ),
        "predict_nonlinearity": _test(
            lambda v: v == "auto",
            "'auto' (the softmax that makes predict_proba return probabilities; set "
            "another one after loading)",
        ),
        "device": _test(
            lambda v: v is None or (isinstance(v, str) and _DEVICE.match(v)),
            "None, 'cpu', 'cuda', 'cuda:<index>' or 'mps'",
        ),
        "compile": _test(
            lambda v: v is False or v == 0,
            "False (torch.compile runs a compiler: set compile=True after loading)",
        ),
        "torch_load_kwargs": _torch_load_kwargs,
        "random_state": _test(
            lambda v: v is None or (_is_int(v) and 0 <= v < 2**32),
            "None or an integer in [0, 2**32)",
        ),
        "classes": _labels,
        "on_nonfinite": _test(lambda v: v in ("raise", "warn"), "'raise' or 'warn'"),
        "data_on_device": _test(
            lambda v: _is_bool(v) or v == "auto", "True, False or 'auto'"
        ),
        "n_classes": _test(
            lambda v: v is None or (_is_int(v) and v >= 1), "None or an integer >= 1"
        ),
        "ignore_index": _test(lambda v: v is None or _is_int(v), "None or an integer"),
    }


#: ``criterion__<name>`` parameters a file may set (``CrossEntropyLoss``;
#: ``beta`` and ``delta`` of the regression losses ``SmoothL1Loss``, ``HuberLoss``)
_CRITERION: dict[str, Callable[[Any], bool]] = {
    "ignore_index": _is_int,
    "reduction": lambda v: v in ("mean", "sum"),
    "label_smoothing": lambda v: _is_real(v) and 0 <= v <= 1,
    "beta": lambda v: _is_real(v) and math.isfinite(v) and v >= 0,
    "delta": lambda v: _is_real(v) and math.isfinite(v) and v > 0,
}

#: the losses a regressor's file may name: their outputs are the predictions
_REGRESSION_LOSSES = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")


def _regression_criterion(value: Any) -> str | None:
    import torch

    if any(value is getattr(torch.nn, name) for name in _REGRESSION_LOSSES):
        return None
    return "must be one of " + ", ".join(f"torch.nn.{n}" for n in _REGRESSION_LOSSES)


#: ``iterator_train__<name>`` / ``iterator_valid__<name>`` parameters a file may set
_ITERATOR: dict[str, Callable[[Any], bool]] = {
    "batch_size": lambda v: _is_int(v) and v >= 1,
    "shuffle": _is_bool,
    "drop_last": _is_bool,
    "pin_memory": _is_bool,
    "persistent_workers": _is_bool,
    "num_workers": lambda v: _is_int(v) and 0 <= v <= MAX_WORKERS,
    "prefetch_factor": lambda v: v is None or (_is_int(v) and v >= 1),
    "timeout": lambda v: _is_real(v) and v >= 0,
}


def _signature_names(cls: Any) -> tuple[set[str], bool]:
    """Keyword names of ``cls``'s constructor, and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return set(), False
    names = {
        p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _module_names(params: Mapping[str, Any]) -> tuple[set[str], bool]:
    module = params.get("module")
    if module is None:
        from mmexplain.modules import build_module

        names, _ = _signature_names(build_module)
        return names - {"input_shapes", "task"}, False
    return _signature_names(module)


def _dunder(key: str, value: Any, params: Mapping[str, Any]) -> str | None:
    """The problem with the net parameter ``<prefix>__<name>`` (None: allowed)."""
    prefix, _, name = key.partition("__")
    if prefix == "module":
        names, any_name = _module_names(params)
        if not (any_name or name in names):
            return f"is not an argument of the network (it takes {sorted(names)})"
        if name == "encoders" and isinstance(value, Mapping):
            if len(value) > MAX_ITEMS or not all(
                isinstance(k, str) and kind_of_class(type(v)) == "encoder"
                for k, v in value.items()
            ):
                return "must be a dict of MLPEncoder/ConvEncoder instances"
            return None
        return None if is_plain(value) else "must be plain values (numbers, tuples)"
    if prefix == "criterion":
        ok = _CRITERION.get(name)
        if ok is None:
            return f"is not one of the loss arguments a model file may set ({sorted(_CRITERION)})"
        return None if ok(value) else "is not a valid value"
    if prefix == "optimizer":
        names, _ = _signature_names(params.get("optimizer"))
        if name not in (names - {"params"}) | {"param_groups"}:
            return f"is not an argument of the optimizer (it takes {sorted(names - {'params'})})"
        return None if is_plain(value) else "must be plain values (numbers, tuples)"
    if prefix in ("iterator_train", "iterator_valid"):
        ok = _ITERATOR.get(name)
        if ok is None:
            return (
                "is not one of the batching options a model file may set "
                f"({sorted(_ITERATOR)}; set others after loading)"
            )
        return None if ok(value) else "is not a valid value"
    if prefix == "callbacks":
        cb, _, param = name.partition("__")
        if not cb:
            return "is not a callback parameter"
        if not param:
            problem = _object("callback", "a callback")(value, params)
            return None if problem is None else f"must be {problem}"
        if param == "sink" or "__" in param:
            return "is not a callback option a model file may set"
        plain = value is None or isinstance(value, bool | int | float | str)
        return None if plain else "must be a number, string, True/False or None"
    return (
        "is not a parameter a model file may set (only module__, criterion__, "
        "optimizer__, iterator_train__, iterator_valid__ and callbacks__ parameters)"
    )


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    try:
        return dict(cls().get_params(deep=False))
    except TypeError:
        return {
            p.name: p.default
            for p in inspect.signature(cls).parameters.values()
            if p.default is not inspect.Parameter.empty
        }


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # noqa: BLE001 - arrays and the like: not the default
        return False


def param_problems(
    kind: str, cls: type, params: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """``[(parameter, problem)]`` of ``params`` of the class ``cls`` (of ``kind``)."""
    out: list[tuple[str, str]] = []
    if kind == "estimator":
        rules = net_rules()
        defaults = _defaults(cls)
        for key, value in params.items():
            if "__" in key:
                problem = _dunder(key, value, params)
            elif key not in defaults:
                problem = "is not a parameter of this estimator"
            elif key == "criterion" and getattr(cls, "_task", None) == "regression":
                problem = _regression_criterion(value)
            elif key in rules:
                problem = rules[key](value, params)
                if problem is not None:
                    problem = f"must be {problem}"
            else:
                ok = _same(value, defaults[key])
                problem = (
                    None
                    if ok
                    else f"has no rule in the safe format: must be {defaults[key]!r}"
                )
            if problem is not None:
                out.append((key, problem))
        return out
    names, _ = _signature_names(cls)
    for key, value in params.items():
        if key not in names:
            out.append((key, "is not a parameter of this class"))
        elif kind == "pipeline":
            problem = _pipeline_param(key, value)
            if problem:
                out.append((key, problem))
        elif kind == "transformer" and key in ("transformers", "remainder"):
            problem = _transformer_param(cls, key, value)
            if problem:
                out.append((key, problem))
        elif kind == "target_regressor":
            problem = _target_param(cls, key, value)
            if problem:
                out.append((key, problem))
        elif not is_plain(value):
            out.append(
                (key, "must be a plain value (numbers, strings, tuples, arrays)")
            )
        elif kind == "splitter":
            problem = _split_param(key, value)
            if problem:
                out.append((key, problem))
    return out


def _pipeline_param(key: str, value: Any) -> str | None:
    if key == "verbose":
        return None if _is_bool(value) else "must be True or False"
    if key == "steps":
        if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
            return "must be a non-empty list of (name, estimator) pairs"
        names = []
        for step in value:
            if not (
                isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str)
            ):
                return "must be a list of (name, estimator) pairs"
            name, est = step
            if "__" in name or not name or name in names:
                return f"has a bad or repeated step name {name!r}"
            names.append(name)
            ok = (
                est is None
                or est == "passthrough"
                or kind_of_class(type(est))
                in (
                    "estimator",
                    "transformer",
                    "scaler",
                )
            )
            if not ok:
                return f"step {name!r} is not an estimator a model file may hold"
        return None
    return (
        "must not be set: a Pipeline in a model file holds only steps and verbose "
        "(memory would name a directory that a refit writes pickles to and reads "
        "them from; set it after loading)"
        if value is not None
        else None
    )


def _transformer_param(cls: type, key: str, value: Any) -> str | None:
    from mmexplain.preprocessing import ModalityTransformer

    if cls is not ModalityTransformer:
        if key == "remainder":
            return (
                None
                if value in ("drop", "passthrough")
                else "must be 'drop' or 'passthrough'"
            )
        return None if is_plain(value) else "must be a plain value"

    def one(v: Any) -> bool:
        return (
            v in ("drop", "passthrough")
            if isinstance(v, str)
            else (kind_of_class(type(v)) == "scaler")
        )

    if key == "remainder":
        return None if one(value) else "must be 'drop', 'passthrough' or a scaler"
    if not isinstance(value, Mapping) or len(value) > MAX_ITEMS:
        return "must be a dict {modality: scaler, 'passthrough' or 'drop'}"
    for m, v in value.items():
        if not isinstance(m, str) or not one(v):
            return f"has a bad entry for {m!r}: a scaler, 'passthrough' or 'drop'"
    return None


def final_regressor(value: Any) -> Any:
    """The ``MultimodalRegressor`` that ``value`` is, or that ends the ``Pipeline`` ``value``.

    None when ``value`` is neither (a classifier, scikit-learn's own
    regressors, a pipeline ending in something else).
    """

    def regression_net(v: Any) -> bool:
        return (
            kind_of_class(type(v)) == "estimator"
            and getattr(type(v), "_task", None) == "regression"
        )

    if regression_net(value):
        return value
    if kind_of_class(type(value)) == "pipeline":
        steps = getattr(value, "steps", None)
        last = steps[-1] if isinstance(steps, list) and steps else None
        if isinstance(last, tuple) and len(last) == 2 and regression_net(last[1]):
            return last[1]
    return None


def _invertible_scalers() -> list[str]:
    """The allowed scalers a target can be scaled with (they have ``inverse_transform``)."""
    from mmexplain.persistence.allowlist import allowed, kind_of, resolve

    return [
        name.rsplit(".", 1)[1]
        for name in allowed()
        if kind_of(name) == "scaler" and hasattr(resolve(name), "inverse_transform")
    ]


_REGRESSOR = "a MultimodalRegressor or a Pipeline ending in one"

#: why a TransformedTargetRegressor's func and inverse_func must be None
_NO_FUNCTION = (
    "None: a function cannot be stored in a safe model file (loading never runs "
    "code from the file); scale the target with transformer= one of the scalers "
    "of mmexplain.persistence.SAFE_CLASSES, or pickle the model and load it with "
    "load_model(path, trust_pickle=True), only if you trust the file"
)


def _target_param(cls: type, key: str, value: Any) -> str | None:
    """The problem with a ``TransformedTargetRegressor`` parameter (None: allowed)."""
    if key == "regressor":
        if final_regressor(value) is not None:
            return None
        return (
            f"must be {_REGRESSOR} (None would mean scikit-learn's LinearRegression, "
            "which a model file does not hold)"
        )
    if key == "transformer":
        ok = value is None or (
            kind_of_class(type(value)) == "scaler"
            and hasattr(value, "inverse_transform")
        )
        if ok:
            return None
        return (
            "must be None or a scaler with an inverse_transform ("
            + ", ".join(_invertible_scalers())
            + ")"
        )
    if key in ("func", "inverse_func"):
        return None if value is None else f"must be {_NO_FUNCTION}"
    if key == "check_inverse":
        return None if _is_bool(value) else "must be True or False"
    default = _defaults(cls).get(key)
    if _same(value, default):
        return None
    return f"has no rule in the safe format: must be {default!r}"


def _split_param(key: str, value: Any) -> str | None:
    if key == "cv":
        ok = (_is_int(value) and 2 <= value <= MAX_ITEMS) or (
            _is_real(value) and 0 < value < 1
        )
        return None if ok else "must be an integer >= 2 or a fraction in (0, 1)"
    if key == "stratified":
        return None if _is_bool(value) else "must be True or False"
    if key == "random_state":
        ok = value is None or (_is_int(value) and 0 <= value < 2**32)
        return None if ok else "must be None or an integer"
    return None


def check_params(
    kind: str, cls: type, params: Mapping[str, Any], where: str, saving: bool = False
) -> None:
    """Raise :class:`RefusedValue` for the first parameter a model file may not hold."""
    for key, problem in param_problems(kind, cls, params):
        value = short(params[key])
        if saving:
            raise RefusedValue(
                f"cannot save {where}.{key} = {value} in a safe model file: it {problem}"
            )
        raise RefusedValue(f"{where}.{key} = {value} is refused: it {problem}")


# -- fitted attributes -------------------------------------------------------------
def _fail(where: str, text: str) -> ValueError:
    return ValueError(f"{where}: {text}")


def check_shapes(shapes: Any, where: str) -> dict[str, tuple[int, ...]]:
    """``input_shapes_``: a dict of modality -> per-sample shape, within the limits."""
    if not isinstance(shapes, dict) or not 1 <= len(shapes) <= MAX_ITEMS:
        raise _fail(where, f"must be a dict of 1 to {MAX_ITEMS} modalities")
    for m, shape in shapes.items():
        if not (
            isinstance(m, str) and m and isinstance(shape, tuple) and len(shape) <= 8
        ):
            raise _fail(
                where, f"bad entry for {m!r}: a modality name and a shape tuple"
            )
        if not all(_is_int(d) and d >= 1 for d in shape):
            raise _fail(where, f"bad shape {shape!r} of {m!r}")
        if math.prod(int(d) for d in shape) > MAX_SAMPLE_ELEMENTS:
            raise _fail(where, f"shape {shape!r} of {m!r} is larger than any sample")
    return shapes


def _check_modalities(value: Any, where: str) -> None:
    if not (
        isinstance(value, tuple)
        and 1 <= len(value) <= MAX_ITEMS
        and all(isinstance(m, str) and m for m in value)
        and len(set(value)) == len(value)
    ):
        raise _fail(where, "must be a tuple of distinct modality names")


def _check_classes(value: Any, params: Mapping[str, Any], where: str) -> None:
    if not (isinstance(value, np.ndarray) and value.ndim == 1 and len(value) >= 1):
        raise _fail(where, "must be a 1-D array of class labels")
    if not is_plain(value):
        raise _fail(where, "must hold plain labels")
    labels = value.tolist()
    given = params.get("classes")
    if given is not None:
        if np.asarray(given).tolist() != labels:
            raise _fail(
                where, f"{short(labels)} is not the classes parameter {short(given)}"
            )
        return
    try:
        ordered = all(a < b for a, b in zip(labels, labels[1:], strict=False))
    except TypeError:
        ordered = False
    if not ordered:
        raise _fail(
            where,
            f"{short(labels)} is not sorted and distinct, as the labels found in y are "
            "(a model file's class order can only come from the classes parameter)",
        )


def check_net_fitted(
    cls: type, params: Mapping[str, Any], fitted: dict[str, Any], where: str
) -> None:
    """Types, ranges and consistency of a net's fitted attributes."""
    from mmexplain.seeding import MAX_SEED

    task = getattr(cls, "_task", "classification")
    own = {
        "segmentation": {"n_classes_"},
        "regression": {"n_outputs_", "y_ndim_"},
    }.get(task, {"classes_inferred_"})
    allowed = (
        set(NET_FITTED) - {"n_classes_", "classes_inferred_", "n_outputs_", "y_ndim_"}
    ) | own
    for key in fitted:
        if key not in allowed:
            raise _fail(where, f"unexpected fitted attribute {key!r}")
    if "seed_" in fitted and not (
        fitted["seed_"] is None
        or (_is_int(fitted["seed_"]) and 0 <= fitted["seed_"] < MAX_SEED)
    ):
        raise _fail(f"{where}.seed_", f"must be None or an integer in [0, {MAX_SEED})")
    if ("modalities_" in fitted) != ("input_shapes_" in fitted):
        raise _fail(where, "modalities_ and input_shapes_ come together")
    if "modalities_" in fitted:
        _check_modalities(fitted["modalities_"], f"{where}.modalities_")
        shapes = check_shapes(fitted["input_shapes_"], f"{where}.input_shapes_")
        if tuple(shapes) != fitted["modalities_"]:
            raise _fail(
                where, "input_shapes_ must list the modalities of modalities_, in order"
            )
    if "classes_inferred_" in fitted:
        _check_classes(
            fitted["classes_inferred_"], params, f"{where}.classes_inferred_"
        )
    if ("n_outputs_" in fitted) != ("y_ndim_" in fitted):
        raise _fail(where, "n_outputs_ and y_ndim_ come together")
    if "n_outputs_" in fitted:
        n, ndim = fitted["n_outputs_"], fitted["y_ndim_"]
        if not (_is_int(n) and 1 <= n <= 2**31):
            raise _fail(f"{where}.n_outputs_", "must be an integer >= 1")
        if ndim not in (1, 2) or (ndim == 1 and n != 1):
            raise _fail(
                f"{where}.y_ndim_", "must be 1 (one target, y of shape (N,)) or 2"
            )
    if "n_classes_" in fitted:
        n = fitted["n_classes_"]
        if not (_is_int(n) and 1 <= n <= 2**31):
            raise _fail(f"{where}.n_classes_", "must be an integer >= 1")
        if params.get("n_classes") is not None and int(params["n_classes"]) != n:
            raise _fail(f"{where}.n_classes_", f"{n} is not the n_classes parameter")


def _transformer_fitted(obj: Any, fitted: dict[str, Any], where: str) -> None:
    from sklearn.base import clone

    names = {"input_shapes_", "n_features_in_", "transformers_", "modalities_"}
    if set(fitted) != names:
        raise _fail(where, f"a fitted ModalityTransformer has exactly {sorted(names)}")
    _check_modalities(fitted["modalities_"], f"{where}.modalities_")
    shapes = check_shapes(fitted["input_shapes_"], f"{where}.input_shapes_")
    if tuple(shapes) != fitted["modalities_"]:
        raise _fail(
            where, "input_shapes_ must list the modalities of modalities_, in order"
        )
    sizes = {m: math.prod(s) for m, s in shapes.items()}
    if fitted["n_features_in_"] != sum(sizes.values()):
        raise _fail(
            f"{where}.n_features_in_", "is not the sum of the modalities' sizes"
        )
    spec = obj.transformers
    unknown = [m for m in spec if m not in shapes]
    if unknown:
        raise _fail(
            where, f"transformers name modality {unknown[0]!r}, not in modalities_"
        )
    got = fitted["transformers_"]
    if not isinstance(got, dict):
        raise _fail(f"{where}.transformers_", "must be a dict")
    want = [m for m in shapes if spec.get(m, obj.remainder) != "drop"]
    if list(got) != want:
        raise _fail(f"{where}.transformers_", f"must have the modalities {want}")
    for m in want:
        est, fit = spec.get(m, obj.remainder), got[m]
        if isinstance(est, str):
            if fit != est:
                raise _fail(f"{where}.transformers_[{m!r}]", f"must be {est!r}")
            continue
        if type(fit) is not type(est) or not _same_params(clone(est), fit):
            raise _fail(
                f"{where}.transformers_[{m!r}]",
                f"must be the fitted {type(est).__name__} of the transformers parameter",
            )
        if getattr(fit, "n_features_in_", None) != sizes[m]:
            raise _fail(
                f"{where}.transformers_[{m!r}]",
                f"must be fitted on the {sizes[m]} features of modality {m!r}",
            )


def _same_params(a: Any, b: Any) -> bool:
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    return pa.keys() == pb.keys() and all(_same(pa[k], pb[k]) for k in pa)


def _splitter_fitted(obj: Any, fitted: dict[str, Any], where: str) -> None:
    names = {"column_indices_", "modalities_", "n_features_in_"}
    if not names <= set(fitted) <= names | {"feature_names_in_"}:
        raise _fail(where, f"a fitted ModalitySplitter has {sorted(names)}")
    n = fitted["n_features_in_"]
    if not (_is_int(n) and 1 <= n <= MAX_SAMPLE_ELEMENTS):
        raise _fail(f"{where}.n_features_in_", "must be an integer >= 1")
    indices = fitted["column_indices_"]
    if not isinstance(indices, dict) or not indices or len(indices) > MAX_ITEMS:
        raise _fail(f"{where}.column_indices_", "must be a dict of modality -> columns")
    if tuple(indices) != fitted["modalities_"]:
        raise _fail(
            where, "modalities_ must be the modalities of column_indices_, in order"
        )
    _check_modalities(fitted["modalities_"], f"{where}.modalities_")
    seen: set[int] = set()
    for m, idx in indices.items():
        if not (
            isinstance(idx, np.ndarray) and idx.ndim == 1 and idx.dtype.kind in "iu"
        ):
            raise _fail(
                f"{where}.column_indices_[{m!r}]", "must be a 1-D integer array"
            )
        cols = idx.tolist()
        if (
            any(not 0 <= c < n for c in cols)
            or seen & set(cols)
            or len(set(cols)) != len(cols)
        ):
            raise _fail(
                f"{where}.column_indices_[{m!r}]",
                f"must be distinct columns in [0, {n}), in no other modality",
            )
        seen |= set(cols)
    columns = obj.columns if isinstance(obj.columns, Mapping) else {}
    missing = [m for m in columns if m not in indices]
    if missing:
        raise _fail(where, f"modality {missing[0]!r} of columns has no column_indices_")
    names_in = fitted.get("feature_names_in_")
    if names_in is not None and not (
        isinstance(names_in, np.ndarray)
        and names_in.shape == (n,)
        and all(isinstance(s, str) for s in names_in.tolist())
    ):
        raise _fail(f"{where}.feature_names_in_", f"must be {n} column names")


def _scaler_fitted(obj: Any, fitted: dict[str, Any], where: str) -> None:
    """Compare with the same scaler fitted on a tiny array: names, kinds and shapes."""
    from sklearn.base import clone

    n: Any = fitted.get("n_features_in_")  # checked to be an int below
    if not (_is_int(n) and 1 <= n <= MAX_SAMPLE_ELEMENTS):
        raise _fail(f"{where}.n_features_in_", "must be an integer >= 1")
    k = 3
    ref = clone(obj).fit(np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 5.0], [2.0, 2.0, 7.0]]))
    expected = {a: v for a, v in vars(ref).items() if ATTR_NAME.match(a)}
    names = fitted.get("feature_names_in_")  # fitted on a DataFrame
    if names is not None:
        if not (
            isinstance(names, np.ndarray)
            and names.shape == (n,)
            and all(isinstance(v, str) for v in names.tolist())
        ):
            raise _fail(f"{where}.feature_names_in_", f"must be {n} column names")
        expected["feature_names_in_"] = names
    if set(fitted) != set(expected):
        raise _fail(
            where, f"a fitted {type(obj).__name__} has exactly {sorted(expected)}"
        )
    for name, ref_value in expected.items():
        value, at = fitted[name], f"{where}.{name}"
        if name == "n_features_in_":
            continue
        if ref_value is None:
            if value is not None:
                raise _fail(at, "must be None with these parameters")
        elif isinstance(ref_value, np.ndarray) and ref_value.shape == (k,):
            if not (
                isinstance(value, np.ndarray)
                and value.shape == (n,)
                and value.dtype.kind == ref_value.dtype.kind
            ):
                raise _fail(
                    at, f"must be a {ref_value.dtype.kind}-array of shape ({n},)"
                )
        elif isinstance(ref_value, numbers.Real):  # a count (per feature with NaNs)
            ok = (_is_real(value) and value >= 0) or (
                isinstance(value, np.ndarray)
                and value.shape == (n,)
                and value.dtype.kind in "iuf"
            )
            if not ok:
                raise _fail(at, f"must be a count, or {n} counts")
        elif type(value) is not type(ref_value) or not _same(value, ref_value):
            raise _fail(at, f"must be {ref_value!r}")


def _structure(estimator: Any) -> Any:
    """The class of ``estimator``, or of each step of a ``Pipeline`` with its name."""
    steps = getattr(estimator, "steps", None)
    if kind_of_class(type(estimator)) == "pipeline" and isinstance(steps, list):
        return [
            (name, step if step is None or isinstance(step, str) else type(step))
            for name, step in steps
        ]
    return type(estimator)


def _target_fitted(obj: Any, fitted: dict[str, Any], where: str) -> None:
    """A ``TransformedTargetRegressor``: its regressor, transformer and target dimension.

    ``_training_dim`` (private in scikit-learn, which ``predict`` reads to
    return ``(N,)`` or ``(N, n_targets)``) is 1 or 2 and the ``y_ndim_`` of
    the fitted ``MultimodalRegressor`` (the allowed scalers keep the target's
    shape); ``regressor_`` is fitted, of the structure of ``regressor``;
    ``transformer_`` is the fitted ``transformer`` (no entry when it is None:
    the identity, rebuilt on loading), fitted on the regressor's targets.
    """
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    names = {"regressor_", "_training_dim"}
    if obj.transformer is not None:
        names.add("transformer_")
    if set(fitted) != names:
        with_ = "a transformer" if obj.transformer is not None else "transformer=None"
        raise _fail(
            where,
            f"a fitted {type(obj).__name__} with {with_} has exactly {sorted(names)}",
        )
    ndim = fitted["_training_dim"]
    if not (_is_int(ndim) and ndim in (1, 2)):
        raise _fail(
            f"{where}._training_dim",
            "must be 1 (y of shape (N,)) or 2 (y of shape (N, n_targets))",
        )
    regressor = fitted["regressor_"]
    net = final_regressor(regressor)
    if net is None:
        raise _fail(f"{where}.regressor_", f"must be {_REGRESSOR}")
    if _structure(regressor) != _structure(obj.regressor):
        raise _fail(
            f"{where}.regressor_",
            f"must be the fitted {type(obj.regressor).__name__} of the regressor "
            "parameter (the same class, or the same steps)",
        )
    state = vars(net)
    if not (
        state.get("initialized_", False)
        and "n_outputs_" in state
        and "y_ndim_" in state
    ):
        raise _fail(f"{where}.regressor_", "must be fitted")
    if net is not regressor:
        for name, step in regressor.steps[:-1]:
            if step is None or isinstance(step, str):
                continue
            try:
                check_is_fitted(step)
            except NotFittedError:
                raise _fail(f"{where}.regressor_[{name!r}]", "must be fitted") from None
    if net.y_ndim_ != ndim:
        raise _fail(
            f"{where}._training_dim",
            f"{ndim} is not the target dimension the fitted regressor was trained "
            f"on (its y_ndim_ is {net.y_ndim_})",
        )
    if "transformer_" in fitted:
        spec, got = obj.transformer, fitted["transformer_"]
        if type(got) is not type(spec) or not _same_params(clone(spec), got):
            raise _fail(
                f"{where}.transformer_",
                f"must be the fitted {type(spec).__name__} of the transformer parameter",
            )
        if getattr(got, "n_features_in_", None) != net.n_outputs_:
            raise _fail(
                f"{where}.transformer_",
                f"must be fitted on the {net.n_outputs_} targets the regressor predicts",
            )


def identity_transformer(check_inverse: bool, n_targets: int) -> Any:
    """The ``transformer_`` a ``TransformedTargetRegressor`` fits without a transformer.

    With ``transformer``, ``func`` and ``inverse_func`` None, scikit-learn
    fits this identity ``FunctionTransformer`` on the ``(N, n_targets)``
    target; a model file stores nothing of it, and loading rebuilds it.
    """
    from sklearn.preprocessing import FunctionTransformer

    identity = FunctionTransformer(validate=True, check_inverse=check_inverse)
    identity.set_output(transform="default")
    return identity.fit(np.zeros((1, n_targets)))


def check_identity_transformer(obj: Any, where: str) -> None:
    """Saving: without a transformer, ``transformer_`` must be what loading rebuilds."""
    net = final_regressor(obj.regressor_)
    expected = identity_transformer(obj.check_inverse, net.n_outputs_)
    got = getattr(obj, "transformer_", None)
    if type(got) is not type(expected) or not _same(vars(got), vars(expected)):
        raise RefusedValue(
            f"cannot save {where}.transformer_ = {short(got)} in a safe model file: "
            "with transformer=None, func=None and inverse_func=None it must be the "
            "identity scikit-learn fits (was the transformer changed after fitting? "
            "fit again)"
        )


def check_fitted(kind: str, obj: Any, fitted: dict[str, Any], where: str) -> None:
    """Raise ``ValueError`` when the fitted attributes of ``obj`` are not consistent."""
    if kind == "target_regressor":  # its _training_dim is private: checked by name
        if fitted:
            _target_fitted(obj, fitted, where)
        return
    for key in fitted:
        if not ATTR_NAME.match(key) or hasattr(type(obj), key):
            raise _fail(where, f"bad fitted attribute name {key!r}")
    if not fitted:
        return
    from mmexplain.preprocessing import ModalitySplitter, ModalityTransformer

    if kind == "scaler":
        _scaler_fitted(obj, fitted, where)
    elif type(obj) is ModalityTransformer:
        _transformer_fitted(obj, fitted, where)
    elif type(obj) is ModalitySplitter:
        _splitter_fitted(obj, fitted, where)
    elif kind == "transformer":  # an mmexplain transformer added later: plain data
        for key, value in fitted.items():
            if not is_plain(value):
                raise _fail(f"{where}.{key}", "must be plain data")
    else:
        raise _fail(where, f"a {kind} has no fitted state in a model file")
