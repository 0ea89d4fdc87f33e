"""Which members a class page of the API reference shows.

The class template (``doc/_templates/autosummary/class.rst``) documents the
members listed here for each public class, by its public path:

- the public methods and properties that mmexplain's own classes define,
  except :data:`INTERNAL_METHODS`: the hooks skorch calls while it trains
  and predicts, which mmexplain overrides but a user never calls;
- of the methods inherited from skorch, scikit-learn, torch or ``dict``,
  only :data:`INHERITED_METHODS` (``score``, ``save_params``, ...) and
  :data:`INHERITED_ATTRIBUTES` (``history``): what a user of the class calls.

``tests/test_api_docs.py`` checks both lists.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

#: skorch hooks (and helpers of them) that mmexplain's estimators override:
#: skorch calls them during ``fit`` / ``predict``; not on the public page
INTERNAL_METHODS = (
    "check_data",
    "check_is_fitted",
    "get_dataset",
    "get_iterator",
    "get_loss",
    "get_split_datasets",
    "infer",
    "initialize_criterion",
    "initialize_module",
    "notify_balancer",
    "on_epoch_begin",
    "on_epoch_end",
    "run_single_epoch",
    "train_step_single",
)

#: methods inherited from skorch / scikit-learn that users call
INHERITED_METHODS = (
    "fit",
    "partial_fit",
    "predict",
    "predict_proba",
    "score",
    "transform",
    "fit_transform",
    "get_feature_names_out",
    "set_output",
    "forward",
    "initialize",
    "save_params",
    "load_params",
    "trim_for_prediction",
    "get_params",
    "set_params",
)

#: properties inherited from skorch that users read
INHERITED_ATTRIBUTES = ("history",)


def _own(cls: type, name: str) -> bool:
    """Whether ``name`` is defined by a class of mmexplain in ``cls``'s MRO."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass.__module__.startswith("mmexplain")
    return False


def shown_members(cls: type) -> tuple[list[str], list[str]]:
    """``(methods, attributes)`` the page of ``cls`` documents, in a stable order.

    Own members come first in definition order (the MRO from ``cls`` up),
    then the inherited user-facing ones in the order of the lists above.
    """
    methods: list[str] = []
    attributes: list[str] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("mmexplain"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen or name in INTERNAL_METHODS:
                continue
            seen.add(name)
            if isinstance(value, property):
                attributes.append(name)
            elif inspect.isfunction(value) or isinstance(
                value, (classmethod, staticmethod)
            ):
                methods.append(name)
    for name in INHERITED_METHODS:
        if name not in seen and callable(getattr(cls, name, None)):
            if not _own(cls, name):
                methods.append(name)
    for name in INHERITED_ATTRIBUTES:
        if name not in seen and isinstance(
            inspect.getattr_static(cls, name, None), property
        ):
            attributes.append(name)
    return methods, attributes


def _public_paths() -> dict[str, type]:
    """Every public class by every public path it is exported at."""
    import mmexplain

    names = ["mmexplain"] + [
        f"mmexplain.{info.name}"
        for info in pkgutil.iter_modules(mmexplain.__path__)
        if not info.name.startswith("_")
    ]
    out: dict[str, type] = {}
    for module_name in names:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) and obj.__module__.startswith("mmexplain"):
                out[f"{module_name}.{name}"] = obj
    return out


def autosummary_context() -> dict[str, Any]:
    """The ``autosummary_context`` of ``conf.py``: member lists by class path."""
    shown = {path: shown_members(cls) for path, cls in _public_paths().items()}
    return {
        "shown_methods": {path: m for path, (m, _) in shown.items()},
        "shown_attributes": {path: a for path, (_, a) in shown.items()},
    }
