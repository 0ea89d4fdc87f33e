"""Find every public estimator, explainer and balancer of mmexplain.

Modelled on :func:`sklearn.utils.discovery.all_estimators`: the library's own
tests run the scikit-learn API checks, the parameter-validation checks and a
save/load round trip over what this returns, so a new class is covered as soon
as it is exported, and the persistence allow-list (:mod:`mmexplain.persistence`)
is derived from the same walk.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["all_estimators", "public_classes"]

#: the public namespaces walked (each module's ``__all__``)
PUBLIC_MODULES = (
    "mmexplain",
    "mmexplain.balancers",
    "mmexplain.callbacks",
    "mmexplain.data",
    "mmexplain.estimators",
    "mmexplain.explainers",
    "mmexplain.modules",
)

_KINDS = ("estimator", "explainer", "balancer", "transformer")


def public_classes() -> dict[str, type]:
    """Every class exported by a public mmexplain namespace, by canonical name.

    The canonical name is the shortest public path of the class
    (``'mmexplain.MultimodalClassifier'``, ``'mmexplain.balancers.OGMGE'``).

    Examples
    --------
    >>> from mmexplain.discovery import public_classes
    >>> public_classes()["mmexplain.balancers.OGMGE"].__name__
    'OGMGE'
    """
    found: dict[type, str] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if inspect.isclass(obj) and obj.__module__.startswith("mmexplain"):
                path = f"{module_name}.{name}"
                if obj not in found or len(path) < len(found[obj]):
                    found[obj] = path
    return {path: cls for cls, path in sorted(found.items(), key=lambda kv: kv[1])}


def _kind(cls: type) -> str | None:
    from sklearn.base import BaseEstimator

    from mmexplain.balancers.base import Balancer
    from mmexplain.estimators.base import MultimodalNetMixin
    from mmexplain.explainers.base import BaseModalityExplainer

    if not issubclass(cls, BaseEstimator) and not issubclass(cls, MultimodalNetMixin):
        return None
    if issubclass(cls, MultimodalNetMixin):
        return "estimator"
    if issubclass(cls, BaseModalityExplainer):
        return "explainer"
    if issubclass(cls, Balancer):
        return "balancer"
    if hasattr(cls, "transform") and hasattr(cls, "fit"):
        return "transformer"
    return None


def all_estimators(
    type_filter: str | list[str] | None = None,
) -> list[tuple[str, type]]:
    """``(name, class)`` of every public, concrete mmexplain estimator.

    Parameters
    ----------
    type_filter : {'estimator', 'explainer', 'balancer', 'transformer'}, list of them or None
        Keep only these kinds: ``'estimator'`` are the trainable networks
        (:class:`~mmexplain.MultimodalClassifier`, ...), ``'explainer'`` the
        subclasses of :class:`~mmexplain.explainers.base.BaseModalityExplainer`,
        ``'balancer'`` those of :class:`~mmexplain.balancers.Balancer`,
        ``'transformer'`` the other scikit-learn transformers. None: all.

    Returns
    -------
    list of (str, type)
        Sorted by class name; abstract bases are left out.

    Examples
    --------
    >>> from mmexplain.discovery import all_estimators
    >>> [name for name, _ in all_estimators("explainer")]  # doctest: +NORMALIZE_WHITESPACE
    ['ConditionalUtilization', 'GradientModalityAttribution', 'ModalityShapley',
     'PermutationModalityImportance']
    """
    if type_filter is None:
        wanted = set(_KINDS)
    else:
        wanted = {type_filter} if isinstance(type_filter, str) else set(type_filter)
        unknown = wanted - set(_KINDS)
        if unknown:
            raise ValueError(
                f"unknown type_filter {sorted(unknown)}; use one of {list(_KINDS)}"
            )
    out: dict[str, Any] = {}
    for cls in public_classes().values():
        if inspect.isabstract(cls) or cls.__name__.startswith("Base"):
            continue
        if cls.__name__ in ("Balancer", "ForwardModel"):  # the protocol base, a wrapper
            continue
        if _kind(cls) in wanted:
            out[cls.__name__] = cls
    return sorted(out.items())
