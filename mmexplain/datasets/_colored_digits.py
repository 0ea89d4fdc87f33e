"""Colored-and-gray digits: a small Colored-and-gray-MNIST built on sklearn's digits."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mmexplain.data import ModalityDict
from mmexplain.datasets._synthetic import RandomStateLike, _check_real, _check_rng

__all__ = ["make_colored_digits", "DIGIT_COLORS"]

#: Default mean colour (RGB in [0, 1]) of each digit class 0..9; every pair
#: is at least 0.5 apart.
DIGIT_COLORS: np.ndarray = np.array(
    [
        [1.0, 0.0, 0.0],  # 0 red
        [0.0, 1.0, 0.0],  # 1 green
        [0.0, 0.0, 1.0],  # 2 blue
        [1.0, 1.0, 0.0],  # 3 yellow
        [1.0, 0.0, 1.0],  # 4 magenta
        [0.0, 1.0, 1.0],  # 5 cyan
        [1.0, 0.5, 0.0],  # 6 orange
        [0.5, 0.0, 1.0],  # 7 violet
        [0.0, 0.5, 1.0],  # 8 azure
        [1.0, 1.0, 1.0],  # 9 white
    ]
)
DIGIT_COLORS.setflags(write=False)


def _colorize(
    gray: np.ndarray,
    y: np.ndarray,
    correlation: float,
    colors: np.ndarray,
    color_noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Monochromatic images: each digit's ink in a colour tied to its label."""
    n, k = len(y), len(colors)
    keep = rng.random(n) < correlation
    # another class, uniformly among the k - 1 others
    other = (y + rng.integers(1, k, size=n)) % k
    color_class = np.where(keep, y, other)
    rgb = colors[color_class] + color_noise * rng.standard_normal((n, 3))
    rgb = np.clip(rgb, 0.0, 1.0)
    return (gray[:, None] * rgb[:, :, None, None]).astype(np.float32)


def make_colored_digits(
    *,
    val_fraction: float = 0.3,
    train_correlation: float = 1.0,
    val_correlation: float = 0.1,
    color_noise: float = 0.02,
    gray_noise: float = 0.0,
    colors: ArrayLike | None = None,
    random_state: RandomStateLike = None,
) -> tuple[ModalityDict, np.ndarray, ModalityDict, np.ndarray]:
    """Colored-and-gray digits: colour predicts the label in training only.

    A small version of Colored-and-gray-MNIST (Kim et al., 2019, as used by
    Wu et al., 2022, to show greedy multimodal learning) built from the 1797
    8x8 images of :func:`sklearn.datasets.load_digits`. Every sample has two
    modalities showing the same digit:

    * ``'color'``: the digit's ink painted in one colour (a monochromatic
      image). In the training split the colour is that of the digit's class
      with probability ``train_correlation`` (default 1: colour determines the
      label); in the validation split with probability ``val_correlation``
      (default 0.1, which with 10 classes means colour is independent of the
      label). Otherwise the colour of a uniformly drawn *other* class is used.
      Each sample's colour is jittered by Gaussian noise (``color_noise``).
    * ``'gray'``: the gray-scale digit, optionally with pixel noise
      (``gray_noise``); as predictive in validation as in training.

    A network trained on both learns the easy colour shortcut first and
    under-uses the gray modality, then generalizes poorly: the colour
    modality's unimodal validation accuracy comes from the digit shape alone.

    Parameters
    ----------
    val_fraction : float, default=0.3
        Fraction of the 1797 images put in the validation split (stratified
        by class; 0 < val_fraction < 1).
    train_correlation : float, default=1.0
        Probability in [0, 1] that a training digit is painted in its own
        class's colour.
    val_correlation : float, default=0.1
        The same for validation digits. ``0.1`` (= 1 / 10 classes) makes the
        colour independent of the label; ``0`` makes it always wrong.
    color_noise : float, default=0.02
        Standard deviation of the Gaussian jitter added to each sample's RGB
        colour (clipped to [0, 1]). Class colours are >= 0.5 apart, so
        colours stay identifiable up to about 0.1.
    gray_noise : float, default=0.0
        Standard deviation of Gaussian pixel noise added to the gray image
        (clipped to [0, 1]); the colour image is built from the clean digit.
    colors : array-like of shape (10, 3), optional
        Mean RGB colour in [0, 1] of each class; default
        :data:`DIGIT_COLORS` (red, green, blue, yellow, magenta, cyan,
        orange, violet, azure, white).
    random_state : int, Generator, RandomState or None, default=None
        Seed of the split, the colours and the noise.

    Returns
    -------
    X_train : ModalityDict
        ``{'color': float32 (n_train, 3, 8, 8), 'gray': float32 (n_train, 1,
        8, 8)}`` with values in [0, 1].
    y_train : ndarray of shape (n_train,), dtype int64
        Digit labels 0..9.
    X_val : ModalityDict
        The same for the validation split.
    y_val : ndarray of shape (n_val,), dtype int64

    Raises
    ------
    ValueError
        A probability outside [0, 1], ``val_fraction`` outside (0, 1), a
        negative noise level or ``colors`` of the wrong shape or range.

    Notes
    -----
    With the defaults and ``random_state=0``, a nearest-class-mean rule on
    each image's colour predicts the label with accuracy 1.0 on the training
    split and about 0.1 (chance) on the validation split, while a logistic
    regression on the gray modality reaches about 0.95 on validation.

    References
    ----------
    B. Kim, H. Kim, K. Kim, S. Kim and J. Kim, "Learning Not to Learn:
    Training Deep Neural Networks with Biased Data", CVPR 2019.
    N. Wu, S. Jastrzebski, K. Cho and K. J. Geras, "Characterizing and
    Overcoming the Greedy Nature of Learning in Multi-modal Deep Neural
    Networks", ICML 2022.

    Examples
    --------
    >>> from mmexplain.datasets import make_colored_digits
    >>> X_tr, y_tr, X_va, y_va = make_colored_digits(random_state=0)
    >>> X_tr
    ModalityDict(n_samples=1257, {'color': ndarray(1257, 3, 8, 8), 'gray': ndarray(1257, 1, 8, 8)})
    >>> len(X_va), y_va.dtype
    (540, dtype('int64'))
    """
    val_fraction = _check_real("val_fraction", val_fraction, 0.0, 1.0)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be strictly between 0 and 1, got {val_fraction}"
        )
    train_correlation = _check_real("train_correlation", train_correlation, 0.0, 1.0)
    val_correlation = _check_real("val_correlation", val_correlation, 0.0, 1.0)
    color_noise = _check_real("color_noise", color_noise, 0.0)
    gray_noise = _check_real("gray_noise", gray_noise, 0.0)
    palette = check_palette(colors)

    from sklearn.datasets import load_digits  # deferred: keeps the import light
    from sklearn.model_selection import train_test_split

    rng = _check_rng(random_state)
    digits: Any = load_digits()
    gray = (digits.images / 16.0).astype(np.float64)  # (1797, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    split_seed = int(rng.integers(np.iinfo(np.int32).max))
    idx_train, idx_val = train_test_split(
        np.arange(len(y)), test_size=val_fraction, stratify=y, random_state=split_seed
    )

    def build(idx: np.ndarray, correlation: float) -> tuple[ModalityDict, np.ndarray]:
        clean = gray[idx]
        color = _colorize(clean, y[idx], correlation, palette, color_noise, rng)
        noisy = clean + gray_noise * rng.standard_normal(clean.shape)
        gray_img = np.clip(noisy, 0.0, 1.0)[:, None].astype(np.float32)
        return ModalityDict(color=color, gray=gray_img), y[idx]

    X_train, y_train = build(idx_train, train_correlation)
    X_val, y_val = build(idx_val, val_correlation)
    return X_train, y_train, X_val, y_val


def check_palette(colors: Any) -> np.ndarray:
    """The (10, 3) RGB palette of the digits: ``colors`` checked, or the default."""
    if colors is None:
        return np.asarray(DIGIT_COLORS, dtype=np.float64)
    palette = np.asarray(colors, dtype=np.float64)
    if palette.shape != (10, 3):
        raise ValueError(f"colors must have shape (10, 3), got {palette.shape}")
    if not (np.isfinite(palette).all() and palette.min() >= 0 and palette.max() <= 1):
        raise ValueError("colors must be RGB values in [0, 1]")
    return palette
