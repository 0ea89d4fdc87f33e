"""Multimodal regression data: a generator with known contributions, and diabetes in two views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.data import ModalityDict
from mmexplain.datasets._synthetic import (
    _check_int,
    _check_real,
    _check_rng,
    _modality_settings,
)

__all__ = [
    "DIABETES_VIEWS",
    "load_diabetes_views",
    "make_multimodal_regression",
]


def make_multimodal_regression(
    n_samples: int = 500,
    *,
    n_targets: int = 1,
    modalities: Sequence[str] | Mapping[str, Mapping[str, float]] | int | None = None,
    n_features: int | Sequence[int] = 10,
    informativeness: float | Sequence[float] = 1.0,
    noise: float = 0.1,
    bias: float = 0.0,
    random_state: Any = None,
    return_contributions: bool = False,
) -> tuple[ModalityDict, np.ndarray] | tuple[ModalityDict, np.ndarray, dict]:
    r"""Generate a multimodal regression problem with known modality contributions.

    Each modality ``m`` has ``F_m`` independent standard normal features
    :math:`x^m_i \sim N(0, I_{F_m})`, and contributes a linear term of
    standard deviation :math:`w_m` (its ``informativeness``) to every target:

    .. math::

        c^m_{i} = w_m\, x^m_i \beta_m, \qquad
        y_i = b + \textstyle\sum_m c^m_i + \sigma \varepsilon_i,
        \quad \varepsilon_i \sim N(0, I_T)

    where :math:`\beta_m` is a random ``(F_m, T)`` matrix with unit-norm
    columns (``T = n_targets``), :math:`b` is ``bias`` and :math:`\sigma` is
    ``noise``. The modalities are independent, so the model that predicts
    best is additive, each modality's contribution is known exactly
    (``return_contributions=True``) and its share of the explained variance
    is :math:`w_m^2 / \sum_k w_k^2`. For the least-squares model, permuting
    modality ``m`` raises the mean squared error by :math:`2 w_m^2` in
    expectation (the variance of the difference of two independent draws of
    :math:`c^m`).

    Parameters
    ----------
    n_samples : int, default=500
        Number of samples.
    n_targets : int, default=1
        Number of targets ``T``. With 1, ``y`` is ``(n_samples,)``.
    modalities : sequence of str, int or mapping, optional
        Modality names (default ``('a', 'b')``); an int ``M`` names them
        ``'m0' ... 'm{M-1}'``. A mapping ``{name: {'n_features': ...,
        'informativeness': ...}}`` gives per-modality settings.
    n_features : int or sequence of int, default=10
        Features of each modality (one value for all, or one per modality).
    informativeness : float or sequence of float, default=1.0
        Standard deviation :math:`w_m >= 0` of each modality's contribution;
        0 makes a modality pure noise (unrelated to ``y``).
    noise : float, default=0.1
        Standard deviation :math:`\sigma >= 0` of the target noise.
    bias : float, default=0.0
        Constant :math:`b` added to every target.
    random_state : int, Generator, RandomState or None, default=None
        Seed for reproducible output.
    return_contributions : bool, default=False
        Also return each modality's contribution :math:`c^m`.

    Returns
    -------
    X : ModalityDict
        ``{name: float32 array of shape (n_samples, F_m)}``.
    y : ndarray of float32, shape (n_samples,) or (n_samples, n_targets)
        Targets.
    contributions : dict of str to ndarray
        Only with ``return_contributions=True``: ``{name: c^m}`` of ``y``'s
        shape (float64), so that ``y = bias + sum(contributions) + noise``.

    Raises
    ------
    ValueError
        Invalid sizes, negative informativeness or noise, mismatched
        per-modality lists.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.datasets import make_multimodal_regression
    >>> X, y, c = make_multimodal_regression(
    ...     2000, modalities=["strong", "weak"], informativeness=[2.0, 0.5],
    ...     random_state=0, return_contributions=True)
    >>> X
    ModalityDict(n_samples=2000, {'strong': ndarray(2000, 10), 'weak': ndarray(2000, 10)})
    >>> [round(float(np.std(c[m])), 1) for m in X]
    [2.0, 0.5]
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    n_targets = _check_int("n_targets", n_targets, 1)
    noise = _check_real("noise", noise, 0.0)
    bias = _check_real("bias", bias, -np.inf)
    names, feats, infos, _ = _modality_settings(
        modalities, n_features, informativeness, 0.0
    )
    if isinstance(modalities, Mapping) and any(
        "noise" in spec for spec in modalities.values() if isinstance(spec, Mapping)
    ):
        raise ValueError(
            "make_multimodal_regression has one target noise (noise=...), not a "
            "noise per modality; the modalities' features are noise-free"
        )
    rng = _check_rng(random_state)
    X = ModalityDict()
    contributions: dict[str, np.ndarray] = {}
    total = np.full((n_samples, n_targets), float(bias))
    for j, name in enumerate(names):
        x = rng.standard_normal((n_samples, feats[j]))
        beta = rng.standard_normal((feats[j], n_targets))
        beta /= np.linalg.norm(beta, axis=0, keepdims=True)
        # float32 inputs: the contribution is computed from what the model sees
        x = x.astype(np.float32)
        c = infos[j] * (x.astype(np.float64) @ beta)
        X[name] = x
        contributions[name] = c
        total += c
    y = total + noise * rng.standard_normal((n_samples, n_targets))
    if n_targets == 1:
        y = y[:, 0]
        contributions = {m: c[:, 0] for m, c in contributions.items()}
    y = y.astype(np.float32)
    if return_contributions:
        return X, y, contributions
    return X, y


#: The two views of :func:`load_diabetes_views` and scikit-learn's feature names in each.
DIABETES_VIEWS: dict[str, tuple[str, ...]] = {
    "clinical": ("age", "sex", "bmi", "bp"),
    "serum": ("s1", "s2", "s3", "s4", "s5", "s6"),
}


def load_diabetes_views(
    *, scaled: bool = True, return_feature_names: bool = False
) -> tuple[ModalityDict, np.ndarray] | tuple[ModalityDict, np.ndarray, dict]:
    """scikit-learn's diabetes data in two views: a clinical exam and a blood test.

    **Data set characteristics**

    =================  ==================================================
    Samples            442 diabetes patients
    Target             a quantitative measure of disease progression one
                       year after baseline (25 .. 346)
    Modalities         ``clinical`` (4 features), ``serum`` (6 features)
    Source             Efron, Hastie, Johnstone and Tibshirani (2004),
                       "Least Angle Regression", *Annals of Statistics*
                       32(2); shipped with scikit-learn
                       (:func:`sklearn.datasets.load_diabetes`), read from
                       its installed files (no download)
    =================  ==================================================

    **Why these two views.** The ten baseline variables come from two
    acquisition processes, as modalities do: ``clinical`` is what a visit
    measures without a lab (age, sex, body mass index ``bmi``, average
    blood pressure ``bp``); ``serum`` is one blood sample's six lab
    measurements (``s1`` total cholesterol, ``s2`` LDL, ``s3`` HDL, ``s4``
    total/HDL ratio, ``s5`` log triglycerides, ``s6`` glucose). Each view can
    be missing or noisy on its own (a skipped blood test, a bad lab run),
    and both carry signal: ``bmi``/``bp`` and ``s5`` are the strongest
    single predictors in the original study.

    Parameters
    ----------
    scaled : bool, default=True
        scikit-learn's scaling (each feature mean-centred and scaled by its
        standard deviation times the square root of the number of samples);
        False returns the original values. The target is never scaled: use
        ``sklearn.compose.TransformedTargetRegressor`` (or scale ``y``) when
        training a network on it.
    return_feature_names : bool, default=False
        Also return ``{view: feature names}``.

    Returns
    -------
    X : ModalityDict
        ``{'clinical': (442, 4), 'serum': (442, 6)}``, float32.
    y : ndarray of float32, shape (442,)
        Disease progression.
    feature_names : dict of str to list of str
        Only with ``return_feature_names=True``.

    Examples
    --------
    >>> from mmexplain.datasets import load_diabetes_views
    >>> X, y = load_diabetes_views()
    >>> X
    ModalityDict(n_samples=442, {'clinical': ndarray(442, 4), 'serum': ndarray(442, 6)})
    >>> float(y.min()), float(y.max())
    (25.0, 346.0)
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=scaled)
    names = list(bunch.feature_names)
    X = ModalityDict()
    for view, cols in DIABETES_VIEWS.items():
        idx = [names.index(c) for c in cols]
        X[view] = np.asarray(bunch.data[:, idx], dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.float32)
    if return_feature_names:
        return X, y, {v: list(c) for v, c in DIABETES_VIEWS.items()}
    return X, y
