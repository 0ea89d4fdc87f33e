"""Synthetic multimodal data: classification and MCubeS-like segmentation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from mmexplain.data import ModalityDict

__all__ = [
    "make_multimodal_classification",
    "make_multimodal_segmentation",
    "SEGMENTATION_CLASSES",
]

RandomStateLike = int | np.random.Generator | np.random.RandomState | None


def _check_rng(random_state: Any) -> np.random.Generator:
    """A local :class:`numpy.random.Generator` for ``random_state``.

    ``None`` gives fresh OS entropy, an int (or ``SeedSequence``) a seeded
    generator, a ``Generator`` is used as is (and advanced), a legacy
    ``RandomState`` seeds a new generator from one draw. Global NumPy state is
    never used.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(np.iinfo(np.int32).max)))
    if random_state is None or isinstance(
        random_state, Integral | np.random.SeedSequence | np.random.BitGenerator
    ):
        if isinstance(random_state, bool):
            raise TypeError(
                "random_state must be None, an int or a Generator, not bool"
            )
        # numpy's annotations take an int, not any numbers.Integral (same seed)
        seed = int(random_state) if isinstance(random_state, Integral) else random_state
        return np.random.default_rng(seed)
    raise TypeError(
        "random_state must be None, an int, a numpy Generator or RandomState, "
        f"got {type(random_state).__name__}"
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value: Any, low: float, high: float = np.inf) -> float:
    if (
        not isinstance(value, Real)
        or isinstance(value, bool)
        or not low <= float(value) <= high
    ):
        bounds = f"in [{low}, {high}]" if np.isfinite(high) else f">= {low}"
        raise ValueError(f"{name} must be a number {bounds}, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------
_SPEC_KEYS = ("n_features", "informativeness", "noise")


def _per_modality(name: str, value: Any, n_modalities: int) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        return [value] * n_modalities
    values = list(value)
    if len(values) != n_modalities:
        raise ValueError(
            f"{name} has {len(values)} entries but there are {n_modalities} modalities; "
            "pass one value per modality or a single value for all"
        )
    return values


def _orthonormal_projection(rng: np.random.Generator, k: int, f: int) -> np.ndarray:
    """A ``(k, f)`` matrix with orthonormal rows (f >= k) or columns (f < k)."""
    q, r = np.linalg.qr(rng.standard_normal((max(k, f), min(k, f))))
    q = q * np.sign(np.diag(r))  # unique (Haar) orthonormal basis
    return q.T if f >= k else q


def _modality_settings(
    modalities: Any, n_features: Any, informativeness: Any, noise: Any
) -> tuple[list[str], list[Any], list[Any], list[Any]]:
    """Names and per-modality (features, informativeness, noise), checked."""
    if modalities is None:
        modalities = ("a", "b")
    elif isinstance(modalities, Integral) and not isinstance(modalities, bool):
        modalities = tuple(
            f"m{i}" for i in range(_check_int("modalities", modalities, 1))
        )
    if isinstance(modalities, str):
        modalities = (modalities,)
    overrides: Mapping[str, Mapping[str, float]] = (
        modalities if isinstance(modalities, Mapping) else {}
    )
    names = list(modalities)
    if not names:
        raise ValueError("modalities is empty; give at least one modality name")
    if len(set(names)) != len(names):
        raise ValueError(f"modality names must be unique, got {names}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"modality names must be strings, got {name!r}")
        spec = overrides.get(name, {})
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"settings of modality {name!r} must be a mapping with keys "
                f"{list(_SPEC_KEYS)}, got {spec!r}"
            )
        bad = [key for key in spec if key not in _SPEC_KEYS]
        if bad:
            raise ValueError(
                f"unknown setting {bad[0]!r} for modality {name!r}; "
                f"allowed keys are {list(_SPEC_KEYS)}"
            )
    n_mod = len(names)
    feats = _per_modality("n_features", n_features, n_mod)
    infos = _per_modality("informativeness", informativeness, n_mod)
    noises = _per_modality("noise", noise, n_mod)
    for j, name in enumerate(names):
        spec = overrides.get(name, {})
        feats[j] = _check_int(
            f"n_features of {name!r}", spec.get("n_features", feats[j]), 1
        )
        infos[j] = _check_real(
            f"informativeness of {name!r}", spec.get("informativeness", infos[j]), 0.0
        )
        noises[j] = _check_real(f"noise of {name!r}", spec.get("noise", noises[j]), 0.0)
    return names, feats, infos, noises


def make_multimodal_classification(
    n_samples: int = 500,
    *,
    n_classes: int = 2,
    modalities: Sequence[str] | Mapping[str, Mapping[str, float]] | int | None = None,
    n_features: int | Sequence[int] = 10,
    informativeness: float | Sequence[float] = 1.0,
    noise: float | Sequence[float] = 0.5,
    shared: float = 0.5,
    random_state: RandomStateLike = None,
) -> tuple[ModalityDict, np.ndarray]:
    r"""Generate a tabular multimodal classification problem.

    Each modality is a noisy linear view of latent class evidence. How much a
    modality tells about the label (``informativeness``) and whether the
    modalities carry the same or complementary evidence (``shared``) are set
    per data set and per modality, so that the "right" utilization of each
    modality is known.

    **Generative model.** With ``K = n_classes`` classes, for every sample
    ``i`` draw a *shared* evidence vector :math:`g_i \sim N(0, I_K)` and, for
    every modality ``m``, a *private* evidence vector
    :math:`g^m_i \sim N(0, I_K)`, all independent. With :math:`w_m` the
    informativeness of modality ``m``, :math:`\hat w = w / \|w\|` and
    :math:`s` = ``shared``:

    .. math::

        y_i &= \arg\max_k \big(\sqrt{s}\, g_i
                + \sqrt{1-s}\, \textstyle\sum_m \hat w_m g^m_i\big)_k \\
        x^m_i &= w_m \big(\sqrt{s}\, g_i + \sqrt{1-s}\, g^m_i\big) A_m
                + \sigma_m \varepsilon^m_i,
                \quad \varepsilon^m_i \sim N(0, I_{F_m})

    where :math:`A_m` is a random ``(K, F_m)`` matrix with orthonormal rows
    (``F_m = n_features`` of ``m``; with ``F_m < K`` it has orthonormal
    columns and part of the evidence is lost) and :math:`\sigma_m` is
    ``noise``. Hence:

    * ``shared=1``: every modality sees the same evidence that decides the
      label; each one alone suffices up to its noise (redundant modalities).
    * ``shared=0``: the label is decided by the sum of the modalities' private
      evidence; a modality alone sees only its share (weighted by
      :math:`\hat w_m`) and a model needs all of them (complementary
      modalities). Intermediate values mix both.
    * ``informativeness`` scales a modality's signal-to-noise ratio and, for
      the private part, its weight in the label; ``0`` makes it pure noise.

    Classes are balanced in expectation (not exactly). If all
    informativenesses are 0 the label is drawn from :math:`g_i` alone and no
    modality is informative.

    Parameters
    ----------
    n_samples : int, default=500
        Number of samples.
    n_classes : int, default=2
        Number of classes ``K`` (>= 2).
    modalities : sequence of str, int or mapping, optional
        Modality names (default ``('a', 'b')``); an int ``M`` names them
        ``'m0' ... 'm{M-1}'``. A mapping ``{name: {'n_features': ...,
        'informativeness': ..., 'noise': ...}}`` gives per-modality settings
        that override the arguments below (missing keys use them).
    n_features : int or sequence of int, default=10
        Number of features of each modality (one value for all, or one per
        modality).
    informativeness : float or sequence of float, default=1.0
        Signal scale :math:`w_m >= 0` of each modality.
    noise : float or sequence of float, default=0.5
        Standard deviation :math:`\sigma_m >= 0` of the Gaussian feature
        noise of each modality.
    shared : float, default=0.5
        Fraction ``s`` in [0, 1] of the label evidence that is common to all
        modalities (1: redundant, 0: complementary).
    random_state : int, Generator, RandomState or None, default=None
        Seed for reproducible output.

    Returns
    -------
    X : ModalityDict
        ``{name: float32 array of shape (n_samples, F_m)}``.
    y : ndarray of shape (n_samples,), dtype int64
        Labels in ``0 .. n_classes - 1``.

    Raises
    ------
    ValueError
        Invalid sizes, negative informativeness or noise, ``shared`` outside
        [0, 1], mismatched per-modality lists or unknown per-modality keys.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(
    ...     1000, modalities=["strong", "weak"], informativeness=[1.0, 0.1],
    ...     shared=1.0, random_state=0)
    >>> X
    ModalityDict(n_samples=1000, {'strong': ndarray(1000, 10), 'weak': ndarray(1000, 10)})
    >>> acc = {m: LogisticRegression().fit(X[m][:700], y[:700]).score(X[m][700:], y[700:])
    ...        for m in X}
    >>> bool(acc["strong"] > acc["weak"] + 0.15)
    True
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    n_classes = _check_int("n_classes", n_classes, 2)
    shared = _check_real("shared", shared, 0.0, 1.0)

    names, feats, infos, noises = _modality_settings(
        modalities, n_features, informativeness, noise
    )
    n_mod = len(names)

    rng = _check_rng(random_state)
    k = n_classes
    g_shared = rng.standard_normal((n_samples, k))
    g_private = rng.standard_normal((n_mod, n_samples, k))
    w = np.asarray(infos, dtype=np.float64)
    norm = float(np.linalg.norm(w))
    if norm > 0:
        evidence = np.sqrt(shared) * g_shared + np.sqrt(1.0 - shared) * np.tensordot(
            w / norm, g_private, axes=1
        )
    else:
        evidence = g_shared
    y = np.argmax(evidence, axis=1).astype(np.int64)

    X = ModalityDict()
    for j, name in enumerate(names):
        latent = np.sqrt(shared) * g_shared + np.sqrt(1.0 - shared) * g_private[j]
        proj = _orthonormal_projection(rng, k, feats[j])
        x = infos[j] * (latent @ proj) + noises[j] * rng.standard_normal(
            (n_samples, feats[j])
        )
        X[name] = x.astype(np.float32)
    return X, y


# ----------------------------------------------------------------------------
# segmentation
# ----------------------------------------------------------------------------
#: Material names of :func:`make_multimodal_segmentation`, by class index.
SEGMENTATION_CLASSES: tuple[str, ...] = (
    "asphalt",
    "vegetation",
    "metal",
    "plastic",
    "water",
    "fabric",
)
# per material: rgb reflectance, degree of linear polarization, angle of
# linear polarization (NaN: unpolarized, angle uniformly random), NIR
_RGB = np.array(
    [
        [0.40, 0.40, 0.40],  # asphalt (background)
        [0.20, 0.55, 0.20],  # vegetation
        [0.70, 0.20, 0.20],  # metal (painted car body)
        [0.70, 0.20, 0.20],  # plastic (same colour as metal)
        [0.40, 0.40, 0.40],  # water (same colour as asphalt)
        [0.25, 0.25, 0.65],  # fabric
    ]
)
_DOLP = np.array([0.10, 0.10, 0.70, 0.10, 0.45, 0.10])
_AOLP = np.array([np.nan, np.nan, 0.25, np.nan, 0.75, np.nan])
_NIR = np.array([0.25, 0.85, 0.45, 0.45, 0.02, 0.65])
_SEG_MODALITIES = ("rgb", "aolp", "dolp", "nir")


def _segmentation_names(modalities: Sequence[str]) -> list[str]:
    """The requested modalities, checked against :data:`_SEG_MODALITIES`."""
    if isinstance(modalities, str):
        modalities = (modalities,)
    names = list(modalities)
    unknown = [m for m in names if m not in _SEG_MODALITIES]
    if unknown:
        raise ValueError(
            f"unknown modality {unknown[0]!r}; available modalities are {list(_SEG_MODALITIES)}"
        )
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"modalities must be a non-empty list of unique names, got {names}"
        )
    return names


def _segmentation_noise(noise: Any, names: list[str]) -> dict[str, float]:
    """Noise standard deviation of each requested modality, checked."""
    if isinstance(noise, Mapping):
        bad = [m for m in noise if m not in _SEG_MODALITIES]
        if bad:
            raise ValueError(f"noise names unknown modality {bad[0]!r}")
        sigma = {
            m: _check_real(f"noise of {m!r}", noise.get(m, 0.05), 0.0) for m in names
        }
    else:
        s = _check_real("noise", noise, 0.0)
        sigma = dict.fromkeys(names, s)
    return sigma


def _paint_scenes(
    rng: np.random.Generator,
    n_samples: int,
    h: int,
    w: int,
    lo: int,
    hi: int,
    n_classes: int,
) -> np.ndarray:
    """Class map (n_samples, h, w): objects painted one after the other on asphalt."""
    y = np.zeros((n_samples, h, w), dtype=np.int64)
    count = rng.integers(lo, hi + 1, size=n_samples)
    yy = (np.arange(h) + 0.5)[None, :, None] / h
    xx = (np.arange(w) + 0.5)[None, None, :] / w
    for obj in range(hi):
        cy, cx = rng.uniform(0.0, 1.0, size=(2, n_samples, 1, 1))
        ry, rx = rng.uniform(0.08, 0.3, size=(2, n_samples, 1, 1))
        ellipse = rng.random((n_samples, 1, 1)) < 0.5
        material = rng.integers(1, n_classes, size=(n_samples, 1, 1))
        dy, dx = np.abs(yy - cy) / ry, np.abs(xx - cx) / rx
        inside = np.where(ellipse, dy**2 + dx**2 <= 1.0, (dy <= 1.0) & (dx <= 1.0))
        inside &= (obj < count)[:, None, None]
        y = np.where(inside, material, y)
    return y


def _render_modalities(
    rng: np.random.Generator, y: np.ndarray, sigma: dict[str, float]
) -> ModalityDict:
    """Each modality of ``sigma``: its material cue per pixel plus noise, in [0, 1]."""
    illum = rng.uniform(0.8, 1.2, size=(len(y), 1, 1, 1))
    X = ModalityDict()
    for name in _SEG_MODALITIES:  # fixed order: same draws for any subset
        if name == "rgb":
            img = np.moveaxis(_RGB[y], -1, 1) * illum
        elif name == "dolp":
            img = _DOLP[y][:, None]
        elif name == "nir":
            img = _NIR[y][:, None] * illum
        else:  # aolp
            img = _AOLP[y][:, None]
            img = np.where(np.isnan(img), rng.random(img.shape), img)
        img = img + sigma.get(name, 0.0) * rng.standard_normal(img.shape)
        if name in sigma:
            X[name] = np.clip(img, 0.0, 1.0).astype(np.float32)
    return X


def make_multimodal_segmentation(
    n_samples: int = 64,
    *,
    image_size: int | tuple[int, int] = (32, 32),
    n_classes: int = 4,
    modalities: Sequence[str] = _SEG_MODALITIES,
    n_objects: int | tuple[int, int] = (2, 6),
    noise: float | Mapping[str, float] = 0.05,
    random_state: RandomStateLike = None,
) -> tuple[ModalityDict, np.ndarray]:
    """Generate MCubeS-like material segmentation scenes.

    Each image is an asphalt background (class 0) with ``n_objects`` random
    axis-aligned rectangles and ellipses of other materials painted over it
    (later objects cover earlier ones). Every pixel of every modality shows
    its material's cue plus Gaussian noise; no single modality separates all
    materials, as in the MCubeS data set (RGB, angle and degree of linear
    polarization, near-infrared), so a good model must fuse them.

    Material cues (class: name, RGB, DoLP, AoLP, NIR)::

        0  asphalt     (0.40, 0.40, 0.40)  0.10  random  0.25
        1  vegetation  (0.20, 0.55, 0.20)  0.10  random  0.85
        2  metal       (0.70, 0.20, 0.20)  0.70  0.25    0.45
        3  plastic     (0.70, 0.20, 0.20)  0.10  random  0.45
        4  water       (0.40, 0.40, 0.40)  0.45  0.75    0.02
        5  fabric      (0.25, 0.25, 0.65)  0.10  random  0.65

    What each modality separates:

    * ``'rgb'`` (3 channels): colour separates asphalt/water, vegetation,
      metal/plastic and fabric, but confuses **metal with plastic** and
      **asphalt with water**. RGB and NIR are multiplied by a per-image
      illumination factor drawn from U(0.8, 1.2).
    * ``'dolp'`` (1 channel, degree of polarization): high for metal (0.70)
      and water (0.45), low (0.10) for the rest; separates metal from
      plastic and water from asphalt.
    * ``'aolp'`` (1 channel, angle of polarization / pi): 0.25 for metal,
      0.75 for water, uniformly random for the unpolarized materials;
      separates metal from water, otherwise only through its randomness.
    * ``'nir'`` (1 channel, near-infrared): separates asphalt (0.25),
      vegetation (0.85), metal/plastic (0.45), water (0.02) and fabric
      (0.65); confuses metal with plastic, like RGB.

    With the default 4 classes (asphalt, vegetation, metal, plastic) RGB and
    NIR are redundant and only the polarization modalities tell metal from
    plastic.

    Parameters
    ----------
    n_samples : int, default=64
        Number of images.
    image_size : int or (int, int), default=(32, 32)
        Height and width ``(H, W)`` in pixels (each >= 8).
    n_classes : int, default=4
        Number of materials, 2 to 6: classes ``0 .. n_classes - 1`` of the
        table above.
    modalities : sequence of str, default=('rgb', 'aolp', 'dolp', 'nir')
        Modalities to return, in this order (a subset of the default).
    n_objects : int or (int, int), default=(2, 6)
        Number of objects per image, or an inclusive range it is drawn from
        uniformly. Object materials are drawn uniformly from classes
        ``1 .. n_classes - 1``.
    noise : float or mapping, default=0.05
        Standard deviation of the per-pixel Gaussian noise, for all
        modalities or as ``{modality: std}`` (missing modalities get 0.05).
    random_state : int, Generator, RandomState or None, default=None
        Seed for reproducible output.

    Returns
    -------
    X : ModalityDict
        ``{modality: float32 array (n_samples, C, H, W)}`` with values in
        [0, 1]; ``C`` is 3 for ``'rgb'`` and 1 otherwise.
    y : ndarray of shape (n_samples, H, W), dtype int64
        Material class of every pixel.

    Raises
    ------
    ValueError
        Invalid sizes, ``n_classes`` outside 2..6, unknown or repeated
        modalities, negative noise.

    Examples
    --------
    >>> from mmexplain.datasets import make_multimodal_segmentation
    >>> X, y = make_multimodal_segmentation(random_state=0)
    >>> X
    ModalityDict(n_samples=64, {'rgb': ndarray(64, 3, 32, 32), 'aolp': ndarray(64, 1, 32, 32), 'dolp': ndarray(64, 1, 32, 32), 'nir': ndarray(64, 1, 32, 32)})
    >>> y.shape, sorted(set(y.ravel().tolist()))
    ((64, 32, 32), [0, 1, 2, 3])
    >>> dolp = X["dolp"][:, 0]
    >>> bool(dolp[y == 2].mean() > dolp[y == 3].mean() + 0.4)  # metal vs plastic
    True
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    if isinstance(image_size, Integral):
        image_size = (image_size, image_size)
    if not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise ValueError(
            f"image_size must be an int or (height, width), got {image_size!r}"
        )
    h = _check_int("image height", image_size[0], 8)
    w = _check_int("image width", image_size[1], 8)
    n_classes = _check_int("n_classes", n_classes, 2)
    if n_classes > len(SEGMENTATION_CLASSES):
        raise ValueError(
            f"n_classes must be between 2 and {len(SEGMENTATION_CLASSES)}, got {n_classes}"
        )
    names = _segmentation_names(modalities)
    if isinstance(n_objects, Integral):
        n_objects = (n_objects, n_objects)
    if not isinstance(n_objects, Sequence) or len(n_objects) != 2:
        raise ValueError(f"n_objects must be an int or (low, high), got {n_objects!r}")
    lo = _check_int("n_objects (low)", n_objects[0], 0)
    hi = _check_int("n_objects (high)", n_objects[1], lo)
    sigma = _segmentation_noise(noise, names)

    rng = _check_rng(random_state)
    y = _paint_scenes(rng, n_samples, h, w, lo, hi, n_classes)
    X = _render_modalities(rng, y, sigma)
    return ModalityDict({name: X[name] for name in names}), y
