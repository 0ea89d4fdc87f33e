"""Parameter validation as scikit-learn does it, honouring its skip switch."""

from __future__ import annotations

from typing import Any

from sklearn import get_config
from sklearn.utils._param_validation import validate_parameter_constraints

__all__ = ["validate_params"]


def validate_params(estimator: Any) -> None:
    """Check ``estimator.get_params(deep=False)`` against its ``_parameter_constraints``.

    The same check as scikit-learn's ``BaseEstimator._validate_params``
    (``InvalidParameterError``, a ``ValueError`` and ``TypeError``, naming
    the class, the parameter and what it accepts), except that it is skipped
    under ``sklearn.config_context(skip_parameter_validation=True)``, as
    scikit-learn's own estimators skip it in ``fit``.

    Examples
    --------
    >>> from mmexplain._core.params import validate_params
    >>> from mmexplain.balancers import ModalityDropout
    >>> validate_params(ModalityDropout(fill="noise"))
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'fill' parameter of ModalityDropout must be a str among {...}. Got 'noise' instead.
    """
    if get_config().get("skip_parameter_validation", False):
        return
    validate_parameter_constraints(
        getattr(estimator, "_parameter_constraints", {}),
        estimator.get_params(deep=False),
        caller_name=type(estimator).__name__,
    )
