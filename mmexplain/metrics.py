"""Metrics: segmentation IoU and distances between modality shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any, overload

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["check_target", "confusion_counts", "mean_iou", "utilization_distance"]


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "n_classes": [Interval(Integral, 1, None, closed="left")],
        "ignore_index": [Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def confusion_counts(
    y_true: Any, y_pred: Any, n_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Confusion matrix ``(n_classes, n_classes)`` over all pixels (rows: truth).

    Parameters
    ----------
    y_true : array-like of int
        True labels (any shape, e.g. masks ``(N, H, W)``).
    y_pred : array-like of int
        Predicted labels, the same size as ``y_true``.
    n_classes : int
        Number of classes; labels must lie in ``[0, n_classes)``.
    ignore_index : int or None, default=None
        Pixels whose true label is this are not counted.

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
        ``counts[i, j]``: pixels of true class ``i`` predicted as ``j``.

    Examples
    --------
    >>> from mmexplain.metrics import confusion_counts
    >>> confusion_counts([0, 1, 1, 2], [0, 1, 2, 2], n_classes=3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in size: {t.shape} vs {p.shape}")
    keep = np.ones(t.shape, dtype=bool) if ignore_index is None else t != ignore_index
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    if t.size and (
        t.min() < 0 or t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes
    ):
        raise ValueError(f"labels must lie in [0, {n_classes}) (except ignore_index)")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "n_classes": [Interval(Integral, 1, None, closed="left"), None],
        "ignore_index": [Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def mean_iou(
    y_true: Any,
    y_pred: Any,
    n_classes: int | None = None,
    ignore_index: int | None = None,
) -> float:
    """Mean intersection over union across classes.

    Classes absent from both ``y_true`` and ``y_pred`` are left out of the
    mean (their IoU is undefined); pixels labelled ``ignore_index`` are
    ignored.

    Parameters
    ----------
    y_true : array-like of int
        True labels (e.g. masks ``(N, H, W)``).
    y_pred : array-like of int
        Predicted labels, the same size as ``y_true``.
    n_classes : int or None, default=None
        Number of classes; None is one more than the largest label in
        ``y_true`` (outside ``ignore_index``) and ``y_pred``.
    ignore_index : int or None, default=None
        Pixels whose true label is this are left out.

    Returns
    -------
    float
        The mean IoU over the classes present, NaN when none is.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.metrics import mean_iou
    >>> mean_iou(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]))
    0.5833333333333333
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if n_classes is None:
        valid = t if ignore_index is None else t[t != ignore_index]
        n_classes = int(max(valid.max(initial=0), p.max(initial=0))) + 1
    cm = confusion_counts(t, p, n_classes, ignore_index)
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    present = union > 0
    if not present.any():
        return float("nan")
    return float(np.mean(inter[present] / union[present]))


@validate_params(
    {"shares": [dict, "array-like"], "target": [dict, "array-like", None]},
    prefer_skip_nested_validation=True,
)
def utilization_distance(
    shares: Mapping[str, float] | Sequence[float] | np.ndarray,
    target: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
) -> float:
    """Total-variation distance between two share vectors (in [0, 1]).

    ``shares`` and ``target`` may be percentages or fractions (each is
    normalized to sum to 1); ``target=None`` is the uniform distribution.
    Mappings are aligned by modality name.

    Parameters
    ----------
    shares : mapping of str to float, or array-like of shape (M,)
        Non-negative shares with a positive sum (e.g. an explanation's
        ``shares``).
    target : mapping of str to float, array-like of shape (M,) or None, default=None
        The shares to compare with; a mapping when ``shares`` is one, with
        the same modality names.

    Returns
    -------
    float
        Half the sum of absolute differences of the normalized shares.

    Examples
    --------
    >>> from mmexplain.metrics import utilization_distance
    >>> utilization_distance([75, 25])
    0.25
    >>> round(utilization_distance({"a": 60, "b": 40}, {"b": 0.5, "a": 0.5}), 6)
    0.1
    """
    t: np.ndarray | None
    if isinstance(shares, Mapping):
        names = list(shares)
        s = np.array([float(shares[m]) for m in names])
        if isinstance(target, Mapping):
            missing = [m for m in names if m not in target]
            if missing or len(target) != len(names):
                raise ValueError(
                    f"target modalities {list(target)} do not match {names}"
                )
            t = np.array([float(target[m]) for m in names])
        else:
            t = None if target is None else np.asarray(target, dtype=float)
    else:
        s = np.asarray(shares, dtype=float)
        t = None if target is None else np.asarray(target, dtype=float)
    if t is None:
        t = np.ones_like(s)
    if s.shape != t.shape:
        raise ValueError(f"shares and target differ in length: {s.shape} vs {t.shape}")
    if (s < 0).any() or (t < 0).any() or s.sum() <= 0 or t.sum() <= 0:
        raise ValueError("shares and target must be non-negative with a positive sum")
    return float(0.5 * np.abs(s / s.sum() - t / t.sum()).sum())


@overload
def check_target(
    target: Mapping[str, float], modalities: tuple[str, ...], *, atol: float = ...
) -> dict[str, float]: ...


@overload
def check_target(
    target: Mapping[str, float] | None,
    modalities: tuple[str, ...],
    *,
    atol: float = ...,
) -> dict[str, float] | None: ...


def check_target(
    target: Mapping[str, float] | None,
    modalities: tuple[str, ...],
    *,
    atol: float = 1e-6,
) -> dict[str, float] | None:
    """Validate a utilization target ``{modality: share}`` that must sum to 1.

    Returns the target in modality order; ``None`` stays ``None``.

    Parameters
    ----------
    target : mapping of str to float or None
        A share in ``[0, 1]`` for every modality, summing to 1.
    modalities : tuple of str
        The model's modalities, in order.
    atol : float, default=1e-6
        How far from 1 the sum may be.

    Returns
    -------
    dict of str to float or None

    Raises
    ------
    TypeError
        ``target`` is not a mapping.
    ValueError
        Unknown or missing modalities, negative or non-finite shares, a sum
        other than 1.

    Examples
    --------
    >>> from mmexplain.metrics import check_target
    >>> check_target({"b": 0.25, "a": 0.75}, ("a", "b"))
    {'a': 0.75, 'b': 0.25}
    >>> check_target({"a": 0.5, "b": 0.6}, ("a", "b"))
    Traceback (most recent call last):
        ...
    ValueError: target shares must sum to 1, got 1.1 from {'a': 0.5, 'b': 0.6}
    """
    if target is None:
        return None
    if not isinstance(target, Mapping):
        raise TypeError(
            f"target must be a dict {{modality: share}}, got {type(target).__name__}"
        )
    unknown = [m for m in target if m not in modalities]
    if unknown:
        raise ValueError(
            f"target names unknown modality {unknown[0]!r}; modalities are {list(modalities)}"
        )
    missing = [m for m in modalities if m not in target]
    if missing:
        raise ValueError(
            f"target is missing modality {missing[0]!r}; give a share for each of {list(modalities)}"
        )
    values = np.array([float(target[m]) for m in modalities])
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"target shares must be finite and >= 0, got {dict(target)}")
    if abs(values.sum() - 1.0) > atol:
        raise ValueError(
            f"target shares must sum to 1, got {values.sum():.6g} from {dict(target)}"
        )
    return {m: float(v) for m, v in zip(modalities, values)}
