"""Validation of multimodal inputs and targets, shared by estimators and explainers.

One check per concept: :func:`check_X` (a mapping of arrays), :func:`check_X_fitted`
(against the modalities and per-sample shapes a model was fitted on),
:func:`check_y` (targets against a sample count) and :func:`encode_labels`
(labels to class indices). Errors are ``ValueError``/``TypeError`` naming the
modality and the problem.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from mmexplain.data._dict import ModalityDict

__all__ = [
    "check_X",
    "check_X_fitted",
    "check_class_labels",
    "check_label_types",
    "check_masks",
    "check_regression_targets",
    "check_y",
    "encode_labels",
]


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return (
        f"{type(value).__name__} of shape {tuple(shape)}"
        if shape is not None
        else type(value).__name__
    )


def _as_array(name: str, value: Any) -> Any:
    """Return a NumPy array or torch tensor for ``value`` (never copies arrays)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value
    if hasattr(value, "to_numpy") and callable(value.to_numpy):  # pandas
        return value.to_numpy()
    if hasattr(value, "toarray"):  # scipy sparse
        raise TypeError(
            f"modality {name!r} is a sparse matrix; pass a dense array (e.g. .toarray())"
        )
    if isinstance(value, list | tuple):
        try:
            return np.asarray(value)
        except ValueError as exc:
            raise ValueError(
                f"modality {name!r} could not be turned into an array: {exc}"
            ) from exc
    raise TypeError(
        f"modality {name!r} must be a NumPy array or torch tensor, got {type(value).__name__}"
    )


#: elements per finiteness check: bounds the temporary memory for large or
#: memory-mapped arrays (the check reads them chunk by chunk)
_CHECK_CHUNK = 1 << 22


def _row_chunks(value: Any) -> Iterator[slice]:
    n = int(value.shape[0])
    per_row = max(1, int(np.prod(value.shape[1:], dtype=np.int64)))
    step = max(1, _CHECK_CHUNK // per_row)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _check_finite_float32(name: str, value: Any) -> None:
    """Raise unless every value is finite *as float32*, the dtype models compute in.

    Checked after the cast, as scikit-learn's ``check_array(dtype=float32)``
    does: a float64 value beyond float32's range (about 3.4e38) becomes inf.
    """
    for sl in _row_chunks(value):
        chunk = value[sl]
        # one pass, in float32 (no copy when the data already are float32);
        # a failing chunk is looked at again only to say why
        if isinstance(chunk, torch.Tensor):
            ok = bool(torch.isfinite(chunk.to(torch.float32)).all())
            raw_ok = ok or bool(torch.isfinite(chunk).all())
        else:
            with np.errstate(over="ignore"):
                ok = bool(np.isfinite(chunk.astype(np.float32, copy=False)).all())
            raw_ok = ok or bool(np.isfinite(chunk).all())
        if not raw_ok:
            raise ValueError(f"modality {name!r} contains NaN or infinite values")
        if not ok:
            raise ValueError(
                f"modality {name!r} has values too large for float32 (|x| > "
                f"{float(np.finfo(np.float32).max):.3g}), the dtype the models compute "
                "in; rescale it (e.g. with ModalityTransformer and a StandardScaler)"
            )


def _check_numeric(name: str, value: Any, ensure_finite: bool) -> None:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise TypeError(f"modality {name!r} has complex dtype {value.dtype}")
        if ensure_finite and value.is_floating_point():
            _check_finite_float32(name, value)
        return
    kind = value.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"modality {name!r} has non-numeric dtype {value.dtype}; "
            "convert it to a float array first"
        )
    if ensure_finite and kind == "f":
        _check_finite_float32(name, value)


def check_X(
    X: Any,
    *,
    modalities: Iterable[str] | None = None,
    ndims: Mapping[str, int | Iterable[int]] | None = None,
    min_ndim: int = 2,
    ensure_finite: bool = True,
    min_samples: int = 1,
) -> ModalityDict:
    """Validate multimodal input and return it as a :class:`ModalityDict`.

    The arrays are not copied or modified; lists and pandas objects are
    converted to NumPy arrays.

    Parameters
    ----------
    X : mapping of str to array-like
        ``{modality: array}`` with a shared first dimension.
    modalities : iterable of str, optional
        The modalities a fitted model expects. Missing and unknown modalities
        raise; the result follows this order.
    ndims : mapping, optional
        Allowed number of dimensions (including the sample dimension) per
        modality, e.g. ``{'eo': 2, 'sar': 4}``.
    min_ndim : int, default=2
        Minimum number of dimensions of every modality, ``(N, features...)``.
    ensure_finite : bool, default=True
        Raise on NaN or infinite values.
    min_samples : int, default=1
        Minimum number of samples.

    Returns
    -------
    ModalityDict

    Raises
    ------
    TypeError
        ``X`` is not a mapping, a name is not a string, or a modality has a
        non-numeric dtype.
    ValueError
        Missing/unknown modality, sample-count mismatch, empty modality,
        NaN/inf values or a wrong number of dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import check_X
    >>> check_X({"eo": [[1, 2], [3, 4]], "sar": np.zeros((2, 1, 4, 4))})
    ModalityDict(n_samples=2, {'eo': ndarray(2, 2), 'sar': ndarray(2, 1, 4, 4)})
    >>> check_X({"eo": np.zeros((3, 2)), "sar": np.zeros((2, 2))})
    Traceback (most recent call last):
        ...
    ValueError: modality 'sar' has 2 samples but modality 'eo' has 3; ...
    """
    names = _check_names(X, modalities)
    arrays: dict[str, Any] = {}
    ref_name, ref_n = None, None
    for name in names:
        value = _check_modality(name, X[name], ndims, min_ndim, min_samples)
        n = int(value.shape[0])
        if ref_n is None:
            ref_name, ref_n = name, n
        elif n != ref_n:
            raise ValueError(
                f"modality {name!r} has {n} samples but modality {ref_name!r} has "
                f"{ref_n}; all modalities need the same number of rows"
            )
        _check_numeric(name, value, ensure_finite)
        arrays[name] = value
    return ModalityDict(arrays)


def _check_names(X: Any, modalities: Iterable[str] | None) -> list[str]:
    """The modality names of ``X``, in the expected order when ``modalities`` is given."""
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):  # scipy sparse (dok is a dict)
        raise TypeError(
            "X is a sparse matrix; pass a mapping {modality name: dense array}, e.g. "
            "{'eo': X_eo, 'sar': X_sar}"
        )
    if isinstance(X, np.ndarray | torch.Tensor) or not isinstance(X, Mapping):
        raise TypeError(
            "X must be a mapping {modality name: array}, e.g. "
            f"{{'eo': X_eo, 'sar': X_sar}}; got {_describe(X)}"
        )
    names = list(X.keys())
    if not names:
        raise ValueError("X has no modalities: pass at least one {name: array} entry")
    for key in names:
        if not isinstance(key, str):
            raise TypeError(
                f"modality names must be strings, got {key!r} ({type(key).__name__})"
            )
    if modalities is None:
        return names
    expected = list(modalities)
    missing = [m for m in expected if m not in X]
    unknown = [m for m in names if m not in expected]
    if missing:
        raise ValueError(
            f"missing modality {missing[0]!r}"
            + (f" (and {missing[1:]})" if len(missing) > 1 else "")
            + f"; expected modalities {expected}, got {names}"
        )
    if unknown:
        raise ValueError(
            f"unknown modality {unknown[0]!r}"
            + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
            + f"; expected modalities {expected}"
        )
    return expected


def _check_modality(
    name: str,
    value: Any,
    ndims: Mapping[str, int | Iterable[int]] | None,
    min_ndim: int,
    min_samples: int,
) -> Any:
    """One modality as an array: rank, allowed dimensions, non-empty."""
    value = _as_array(name, value)
    if value.ndim < min_ndim:
        raise ValueError(
            f"modality {name!r} has shape {tuple(value.shape)}; expected at least "
            f"{min_ndim} dimensions (samples, features...)"
            + (
                "; reshape a 1-D array with x[:, None]"
                if value.ndim == 1 and min_ndim == 2
                else ""
            )
        )
    if ndims is not None and name in ndims:
        spec = ndims[name]
        allowed: tuple[int, ...] = (
            (int(spec),) if isinstance(spec, int | Integral) else tuple(spec)
        )
        if value.ndim not in allowed:
            raise ValueError(
                f"modality {name!r} has {value.ndim} dimensions (shape "
                f"{tuple(value.shape)}) but the model expects "
                + " or ".join(str(a) for a in allowed)
            )
    n = int(value.shape[0])
    if n < min_samples:
        raise ValueError(
            f"modality {name!r} is empty: {n} samples (at least {min_samples} needed)"
        )
    if any(int(s) == 0 for s in value.shape[1:]):
        raise ValueError(f"modality {name!r} is empty: shape {tuple(value.shape)}")
    return value


def check_y(
    y: Any, n: int | None, *, ensure_finite: bool = True, name: str = "y"
) -> np.ndarray:
    """Validate targets against ``n`` samples; returns a NumPy array (no copy if possible).

    ``n=None`` checks ``y`` alone (e.g. before the samples are counted).

    Parameters
    ----------
    y : array-like, Tensor or pandas object
        The targets, one row per sample; None is refused.
    n : int or None
        Number of samples of ``X``; None skips the row-count check.
    ensure_finite : bool, default=True
        Refuse NaN and infinite float targets (missing values in an object
        array are always refused).
    name : str, default='y'
        The name the error messages give the targets.

    Returns
    -------
    ndarray
        ``y`` as a NumPy array (a tensor is copied to the host).

    Raises
    ------
    ValueError
        None, a scalar, a row count other than ``n``, non-finite or missing
        values.
    TypeError
        Complex targets.

    Examples
    --------
    >>> from mmexplain.data import check_y
    >>> check_y([0, 1, 1], 3)
    array([0, 1, 1])
    >>> check_y([0, 1], 3)
    Traceback (most recent call last):
        ...
    ValueError: y has 2 rows but X has 3 samples
    """
    if y is None:
        raise ValueError(f"{name} is required (got None)")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    elif hasattr(y, "to_numpy") and callable(y.to_numpy):
        y = y.to_numpy()
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{name} must be an array of length {n}, got a scalar")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} rows but X has {n} samples")
    if y.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {y.dtype}; targets must be real")
    if ensure_finite and y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if y.dtype.kind == "O":
        if any(
            v is None or (isinstance(v, float) and not np.isfinite(v))
            for v in y.ravel()
        ):
            raise ValueError(f"{name} contains missing values (None/NaN)")
    return y


def check_regression_targets(
    y: Any, n: int | None = None, *, name: str = "y"
) -> np.ndarray:
    """Validate real-valued regression targets; returns float32 of shape (N, T).

    ``y`` is ``(N,)`` (one target per sample, returned as ``(N, 1)``) or
    ``(N, T)`` (``T`` targets per sample). Booleans and integers are accepted
    as numbers; strings, objects, complex numbers, NaN, infinities and values
    beyond float32 are refused with a ``ValueError``/``TypeError`` naming the
    problem.

    Parameters
    ----------
    y : array-like of shape (N,) or (N, T)
        Targets.
    n : int or None, default=None
        The number of samples of ``X``; None checks ``y`` alone.
    name : str, default='y'
        How the messages name the targets.

    Returns
    -------
    ndarray of float32, shape (N, T)

    Examples
    --------
    >>> from mmexplain.data.validation import check_regression_targets
    >>> check_regression_targets([0.5, 1.5, -2.0]).shape
    (3, 1)
    >>> check_regression_targets(["a", "b"])
    Traceback (most recent call last):
        ...
    TypeError: y must hold real numbers for a regression model, got dtype <U1
    """
    y = check_y(y, n, name=name)
    if y.dtype.kind not in "biuf":
        if y.dtype.kind == "O":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} must hold real numbers for a regression model, got "
                    "objects that are not numbers"
                ) from None
        else:
            raise TypeError(
                f"{name} must hold real numbers for a regression model, got dtype "
                f"{y.dtype}"
            )
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    elif y.ndim != 2:
        raise ValueError(
            f"{name} must be (N,) or (N, n_targets) for a regression model, got "
            f"shape {y.shape}"
        )
    if y.shape[1] == 0:
        raise ValueError(f"{name} has shape {y.shape}: no targets per sample")
    if not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    big = float(np.abs(y).max()) if y.size else 0.0
    if big > float(np.finfo(np.float32).max):
        raise ValueError(
            f"{name} holds values up to {big:.3g}, beyond float32 (the network's "
            "precision); rescale the targets (e.g. TransformedTargetRegressor)"
        )
    return y.astype(np.float32)


def _label_kind(t: type) -> str:
    if issubclass(t, str | bytes | np.str_ | np.bytes_):
        return "string"
    if issubclass(t, Real | np.bool_ | bool) and not issubclass(t, np.datetime64):
        return "number"
    return "other"


def check_label_types(y: np.ndarray, *, name: str = "y") -> np.ndarray:
    """Refuse labels that cannot be sorted together: mixed numbers and strings, or objects.

    Only object arrays can hold them (a NumPy array of one numeric or string
    dtype always passes, at no cost); sorting them would otherwise fail in
    NumPy with ``'<' not supported between instances of ...``.

    Parameters
    ----------
    y : ndarray
    name : str, default='y'
        How the message names the labels.

    Returns
    -------
    ndarray
        ``y`` itself.

    Raises
    ------
    TypeError
        ``y`` mixes numbers and strings, or holds other objects (dicts,
        lists, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data.validation import check_label_types
    >>> check_label_types(np.array([1, "a", 2], dtype=object))
    Traceback (most recent call last):
    ...
    TypeError: y mixes label types int and str: class labels must be all numbers or all strings; convert them, e.g. y.astype(str)
    """
    if y.dtype.kind != "O" or y.size == 0:
        return y
    types = set(map(type, y.ravel().tolist()))  # one C-level pass
    kinds = {_label_kind(t) for t in types}
    names = " and ".join(sorted({t.__name__ for t in types}))
    if "other" in kinds:
        other = sorted(t.__name__ for t in types if _label_kind(t) == "other")
        raise TypeError(
            f"{name} holds {', '.join(other)} objects: class labels must be numbers "
            f"or strings (found {names})"
        )
    if len(kinds) > 1:
        raise TypeError(
            f"{name} mixes label types {names}: class labels must be all numbers or "
            "all strings; convert them, e.g. y.astype(str)"
        )
    return y


def check_class_labels(y: np.ndarray, *, name: str = "y") -> np.ndarray:
    """One label per sample, as scikit-learn's classifiers take them.

    ``(N, 1)`` is flattened with a ``DataConversionWarning`` (as
    ``column_or_1d`` does); a one-hot or multilabel indicator matrix, and
    continuous targets, are refused (as ``check_classification_targets`` does).

    Parameters
    ----------
    y : ndarray
        Checked by :func:`check_y`.
    name : str, default='y'
        The name the warning and error messages give the labels.

    Returns
    -------
    ndarray of shape (N,)

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import check_class_labels
    >>> check_class_labels(np.array([0.5, 1.5]))
    Traceback (most recent call last):
    ...
    ValueError: y has continuous values (e.g. 0.5): a classifier needs class labels; ...
    """
    from sklearn.exceptions import DataConversionWarning
    from sklearn.utils.multiclass import type_of_target

    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            f"{name} of shape {y.shape} was flattened to ({y.shape[0]},): pass a 1-D "
            "array of labels",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y.ravel()
    if y.ndim == 2:
        kind = type_of_target(y)
        what = (
            "a one-hot / multilabel indicator matrix"
            if kind == "multilabel-indicator"
            else "a 2-D array"
        )
        raise ValueError(
            f"{name} of shape {y.shape} is {what}; pass one class label per sample "
            "(for one-hot targets: y.argmax(axis=1))"
        )
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per sample), got shape {y.shape}"
        )
    check_label_types(y, name=name)
    if y.dtype.kind == "f" and y.size:
        frac = y[np.mod(y, 1) != 0]
        if frac.size:
            raise ValueError(
                f"{name} has continuous values (e.g. {frac[0]:g}): a classifier needs "
                "class labels; for regression targets use another estimator"
            )
    return y


def check_masks(
    y: np.ndarray,
    *,
    spatial: tuple[int, ...] | None = None,
    what: str = "the inputs",
    name: str = "y",
) -> np.ndarray:
    """Segmentation targets: integer class masks of shape ``(N, H, W)``.

    Parameters
    ----------
    y : ndarray
        Checked by :func:`check_y`.
    spatial : tuple of int, optional
        The ``(H, W)`` the masks must have (e.g. the model's output or the
        input images' size).
    what : str, default='the inputs'
        What ``spatial`` is the size of, for the message.
    name : str, default='y'

    Returns
    -------
    ndarray of int64, shape (N, H, W)

    Raises
    ------
    ValueError
        ``y`` is not 3-D (e.g. flattened masks), has another spatial size
        than ``spatial`` (e.g. transposed masks), or continuous values.
    TypeError
        ``y`` is not numeric.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data.validation import check_masks
    >>> check_masks(np.zeros((2, 4, 6)), spatial=(4, 6)).dtype
    dtype('int64')
    >>> check_masks(np.zeros((2, 6, 4)), spatial=(4, 6))
    Traceback (most recent call last):
    ...
    ValueError: y has masks of size (6, 4) but the inputs are of size (4, 6); masks must be (N, H, W) (transposed masks? use y.transpose(0, 2, 1))
    """
    spatial = None if spatial is None else tuple(int(s) for s in spatial)
    if y.ndim != 3:
        hint = ""
        if (
            y.ndim == 2
            and spatial is not None
            and y.shape[1] == int(np.prod(spatial, dtype=np.int64))
        ):
            hint = f" (flattened masks? use {name}.reshape(-1, {spatial[0]}, {spatial[1]}))"
        raise ValueError(
            f"{name} must be integer masks of shape (N, H, W), got shape "
            f"{y.shape}{hint}"
        )
    kind = y.dtype.kind
    if kind == "f":
        frac = y[np.mod(y, 1) != 0]
        if frac.size:
            raise ValueError(
                f"{name} has continuous values (e.g. {frac.flat[0]:g}): masks must "
                "hold integer class labels, one per pixel"
            )
    elif kind not in "iub":
        raise TypeError(
            f"{name} must hold integer class labels, one per pixel; got dtype {y.dtype}"
        )
    if spatial is not None and tuple(y.shape[1:]) != spatial:
        hint = (
            f" (transposed masks? use {name}.transpose(0, 2, 1))"
            if tuple(y.shape[1:]) == spatial[::-1]
            else ""
        )
        raise ValueError(
            f"{name} has masks of size {tuple(y.shape[1:])} but {what} are of size "
            f"{spatial}; masks must be (N, H, W){hint}"
        )
    return y.astype(np.int64, copy=False)


def check_X_fitted(
    X: Any, input_shapes: Mapping[str, tuple[int, ...]] | None
) -> ModalityDict:
    """Validate ``X`` against the modalities and per-sample shapes seen in ``fit``.

    ``input_shapes`` maps each modality to its per-sample shape (``None``
    checks ``X`` alone). Image modalities ``(C, H, W)`` must match in
    channels (the spatial size may differ, as convolutional encoders allow);
    every other modality (vectors ``(F,)``, sequences ``(L, F)``, ...) must
    match its per-sample shape exactly.

    Parameters
    ----------
    X : mapping of str to array-like
    input_shapes : mapping or None
        E.g. an estimator's ``input_shapes_``.

    Returns
    -------
    ModalityDict

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import check_X_fitted
    >>> check_X_fitted({"a": np.zeros((2, 3))}, {"a": (4,)})
    Traceback (most recent call last):
    ...
    ValueError: modality 'a' has 3 features per sample but the model was fitted on 4
    """
    if input_shapes is None:
        return check_X(X)
    Xv = check_X(
        X,
        modalities=list(input_shapes),
        ndims={m: len(s) + 1 for m, s in input_shapes.items()},
    )
    for m, s in input_shapes.items():
        got = tuple(int(d) for d in Xv[m].shape[1:])
        s = tuple(int(d) for d in s)
        if len(s) == 1 and got != s:
            raise ValueError(
                f"modality {m!r} has {got[0]} features per sample but the model "
                f"was fitted on {s[0]}"
            )
        if len(s) == 3:  # images (C, H, W): the spatial size may differ
            if got[0] != s[0]:
                raise ValueError(
                    f"modality {m!r} has {got[0]} channels but the model was fitted "
                    f"on {s[0]}"
                )
        elif got != s:  # sequences (L, F) and other layouts: the whole shape
            raise ValueError(
                f"modality {m!r} has per-sample shape {got} but the model was fitted "
                f"on {s}"
            )
    return Xv


def encode_labels(y: Any, classes: Any) -> np.ndarray:
    """Class indices of the labels ``y`` in ``classes`` (any sortable labels).

    Parameters
    ----------
    y : ndarray
        Labels, any shape.
    classes : array-like
        The known class labels (e.g. an estimator's ``classes_``).

    Returns
    -------
    ndarray of int64, same shape as ``y``

    Raises
    ------
    ValueError
        Some labels are not among ``classes``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import encode_labels
    >>> encode_labels(np.array(["b", "a", "b"]), ["a", "b"])
    array([1, 0, 1])
    """
    y = check_label_types(np.asarray(y))
    classes = check_label_types(np.asarray(classes), name="classes")
    try:
        sorter = np.argsort(classes, kind="stable")
        pos = np.searchsorted(classes, y, sorter=sorter)
    except TypeError:  # strings against numbers: none of them is a class
        raise ValueError(
            f"y contains labels not among the classes {classes.tolist()}: "
            f"{np.unique(y)[:5].tolist()} (of another type than the classes)"
        ) from None
    encoded = sorter[np.clip(pos, 0, len(classes) - 1)]
    bad = classes[encoded] != y
    if np.any(bad):
        raise ValueError(
            f"y contains labels not among the classes {classes.tolist()}: "
            f"{np.unique(y[bad])[:5].tolist()}"
        )
    return encoded.astype(np.int64)
