"""Corrupt one modality: blackouts and additive Gaussian noise.

Both functions return a new :class:`~mmexplain.data.ModalityDict`: the
corrupted modality is a new array (or tensor) and the other modalities are
the caller's own arrays, shared, not copied. The caller's arrays are never
modified. NumPy arrays and torch tensors (any device) are supported; the
random draws come from NumPy, so the same seed corrupts the same samples and
adds the same noise whichever container is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np
import torch

from mmexplain.data import ModalityDict
from mmexplain.datasets._synthetic import RandomStateLike, _check_rng

__all__ = ["blackout", "add_gaussian_noise"]


def _get_modality(X: Mapping[str, Any], modality: str) -> Any:
    if not isinstance(X, Mapping):
        raise TypeError(
            f"X must be a mapping {{modality: array}}, got {type(X).__name__}"
        )
    if modality not in X:
        raise ValueError(f"unknown modality {modality!r}; X has modalities {list(X)}")
    value = X[modality]
    if not isinstance(value, np.ndarray | torch.Tensor):
        value = np.asarray(value)
    if value.ndim == 0:
        raise ValueError(f"modality {modality!r} has no sample dimension")
    return value


def _with(X: Mapping[str, Any], modality: str, value: Any) -> ModalityDict:
    return ModalityDict({k: (value if k == modality else v) for k, v in X.items()})


def blackout(
    X: Mapping[str, Any],
    modality: str,
    p: float = 1.0,
    *,
    value: float = 0.0,
    random_state: RandomStateLike = None,
) -> ModalityDict:
    """Black out one modality in a random fraction ``p`` of the samples.

    Every value of the chosen modality in ``round(p * N)`` samples, drawn
    without replacement, is replaced by ``value``; this is the modality
    blackout sweep of Singh et al. (EO images blacked out with probability
    0, 0.25, ..., 1) used to check that a utilization metric follows the
    information a modality carries.

    Parameters
    ----------
    X : mapping of str to array or tensor
        ``{modality: array}`` with a shared first (sample) dimension.
    modality : str
        The modality to black out.
    p : float, default=1.0
        Fraction of the samples to black out, in [0, 1].
    value : float, default=0.0
        The value written into blacked-out samples.
    random_state : int, Generator, RandomState or None, default=None
        Seed of the choice of samples.

    Returns
    -------
    ModalityDict
        A new mapping; the blacked-out modality is a new array (same type,
        dtype and device), the other modalities are the caller's arrays.

    Raises
    ------
    ValueError
        Unknown modality or ``p`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.datasets import blackout
    >>> X = {"eo": np.ones((8, 2)), "sar": np.ones((8, 3))}
    >>> Xb = blackout(X, "eo", p=0.25, random_state=0)
    >>> int((Xb["eo"] == 0).all(axis=1).sum()), bool(X["eo"].all())
    (2, True)
    >>> Xb["sar"] is X["sar"]
    True
    """
    data = _get_modality(X, modality)
    if not isinstance(p, Real) or isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ValueError(f"value must be a number, got {value!r}")
    rng = _check_rng(random_state)
    n = int(data.shape[0])
    rows = np.sort(rng.choice(n, size=int(round(float(p) * n)), replace=False))
    if isinstance(data, torch.Tensor):
        out = data.clone()
        out[torch.as_tensor(rows, dtype=torch.long, device=data.device)] = value
    else:
        out = data.copy()
        out[rows] = value
    return _with(X, modality, out)


def add_gaussian_noise(
    X: Mapping[str, Any],
    modality: str,
    variance: float,
    *,
    random_state: RandomStateLike = None,
    clip: tuple[float, float] | None = None,
) -> ModalityDict:
    """Add zero-mean Gaussian noise of a given variance to one modality.

    Parameters
    ----------
    X : mapping of str to array or tensor
        ``{modality: array}`` with a shared first (sample) dimension.
    modality : str
        The modality to corrupt.
    variance : float
        Variance (>= 0) of the i.i.d. noise added to every value; its
        standard deviation is ``sqrt(variance)``.
    random_state : int, Generator, RandomState or None, default=None
        Seed of the noise.
    clip : (float, float), optional
        Clip the noisy values to ``[low, high]`` (e.g. ``(0, 1)`` for
        images).

    Returns
    -------
    ModalityDict
        A new mapping; the noisy modality is a new array (same type and
        device; floating dtypes are kept, integer inputs become float32),
        the other modalities are the caller's arrays.

    Raises
    ------
    ValueError
        Unknown modality, negative variance or an invalid ``clip``.
    TypeError
        A complex-valued modality.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.datasets import add_gaussian_noise
    >>> X = {"rgb": np.zeros((1000, 50)), "depth": np.zeros((1000, 4))}
    >>> Xn = add_gaussian_noise(X, "rgb", variance=0.25, random_state=0)
    >>> round(float(Xn["rgb"].var()), 2), float(np.abs(X["rgb"]).max())
    (0.25, 0.0)
    """
    data = _get_modality(X, modality)
    if data.is_complex() if isinstance(data, torch.Tensor) else data.dtype.kind == "c":
        raise TypeError(
            f"modality {modality!r} has complex dtype {data.dtype}: Gaussian noise is "
            "defined here for real-valued modalities"
        )
    if (
        not isinstance(variance, Real)
        or isinstance(variance, bool)
        or not np.isfinite(variance)
        or variance < 0
    ):
        raise ValueError(f"variance must be a finite number >= 0, got {variance!r}")
    if clip is not None:
        try:
            low, high = (float(c) for c in clip)
        except (TypeError, ValueError):
            raise ValueError(
                f"clip must be None or (low, high), got {clip!r}"
            ) from None
        if not low <= high:
            raise ValueError(f"clip must satisfy low <= high, got {clip!r}")
    rng = _check_rng(random_state)
    noise = np.sqrt(float(variance)) * rng.standard_normal(tuple(data.shape))
    if isinstance(data, torch.Tensor):
        dtype = data.dtype if data.is_floating_point() else torch.float32
        out = data.to(dtype) + torch.from_numpy(noise).to(
            device=data.device, dtype=dtype
        )
        if clip is not None:
            out = out.clamp(low, high)
    else:
        dtype = data.dtype if data.dtype.kind in "fc" else np.dtype(np.float32)
        out = (data + noise).astype(dtype, copy=False)
        if clip is not None:
            np.clip(out, low, high, out=out)
    return _with(X, modality, out)
