"""How sure is a modality share? Bootstrap intervals, p-values, paired comparisons.

An explanation is measured on a finite set of samples; another draw of
samples from the same population would give another share. The bootstrap
estimates that variation by resampling the explained rows with replacement
(Efron & Tibshirani, 1993) and recomputing the statistic on each resample.
Every explainer's statistic is a function of per-row quantities the
explanation already has (the engine's additive per-row statistics for
permutation and conditional utilization, per-sample Shapley values, per-sample
attribution shares), so a resample costs no model call: only sums over rows
with resampling counts as weights.

What is resampled is the rows; the model, and for permutation utilization the
permutations, are held fixed. The intervals therefore describe sampling
variation of the explained data, not variation over trainings (for that, see
:func:`mmexplain.model_selection.cross_explain`), and for permutation
utilization not the spread over permutations (``importances_std``).

* :func:`bootstrap_counts`: the resampling counts, reproducible from a seed
  and the number of rows. Two explanations of the same rows with the same
  seed are resampled identically, which makes :func:`paired_comparison` a
  paired bootstrap.
* :func:`percentile_interval`: percentile bootstrap interval.
* :func:`p_value_not_used`: one-sided bootstrap p-value of "this modality is
  not used" (its raw value <= 0).
* :func:`paired_comparison`: two explanations of the same rows (a balancer
  against its control, two models), difference of their shares with an
  interval and a two-sided p-value.

The explanations expose the same through
:meth:`~mmexplain.ModalityExplanation.confidence_interval`,
:meth:`~mmexplain.ModalityExplanation.p_values` and
:meth:`~mmexplain.ModalityExplanation.replicates`.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np

from mmexplain.seeding import draw_seed, stream_seed

__all__ = [
    "DEFAULT_RESAMPLES",
    "bootstrap_counts",
    "bootstrap_means",
    "normalize_rows",
    "p_value_not_used",
    "paired_comparison",
    "percentile_interval",
]

#: resamples drawn when none are asked for (percentile intervals at 95% are
#: stable to about a tenth of their width with 1000; Efron & Tibshirani 1993)
DEFAULT_RESAMPLES = 1000

#: resamples per chunk of counts (memory: chunk x n integers)
_CHUNK = 64


def _check_resamples(n_resamples: Any) -> int:
    if (
        not isinstance(n_resamples, Integral)
        or isinstance(n_resamples, bool)
        or n_resamples < 1
    ):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def _check_level(level: Any) -> float:
    if not isinstance(level, Real) or not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")
    return float(level)


def resolve_seed(random_state: Any) -> int | None:
    """An int seed from ``random_state`` (an int is kept as is, None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return draw_seed(random_state)


def bootstrap_counts(
    n: int, n_resamples: int, seed: int | None, *, chunk: int = _CHUNK
) -> Iterator[np.ndarray]:
    """Resampling counts of ``n`` rows: chunks of shape (b, n), ``n_resamples`` rows in all.

    Resample ``i`` draws ``n`` row indices uniformly with replacement
    (``numpy.random.Generator.integers(0, n, n)`` from the generator seeded by
    ``stream_seed(seed, 'bootstrap', n)``, one resample after the other) and
    counts how often each row was drawn. The same ``seed`` and ``n`` give
    the same counts, so explanations of the same rows are resampled alike.

    Parameters
    ----------
    n : int
        Number of rows.
    n_resamples : int
    seed : int or None
        None: fresh entropy (not reproducible).
    chunk : int, default=64
        Resamples per yielded array.

    Yields
    ------
    ndarray of shape (b, n), float64
        Counts; every row sums to ``n``.

    Examples
    --------
    >>> from mmexplain.statistics import bootstrap_counts
    >>> [c.sum(axis=1).tolist() for c in bootstrap_counts(5, 3, seed=0)]
    [[5.0, 5.0, 5.0]]
    """
    n = int(n)
    if n < 1:
        raise ValueError("cannot resample an empty set of rows")
    n_resamples = _check_resamples(n_resamples)
    rng = np.random.default_rng(stream_seed(seed, "bootstrap", n))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap_means(
    values: np.ndarray, n_resamples: int, seed: int | None
) -> np.ndarray:
    """Bootstrap replicates of the column means of ``values`` (N, M), NaN rows left out.

    A row with a NaN in some column does not count for that column (as
    ``np.nanmean``); a resample with no finite row in a column gives NaN.

    Parameters
    ----------
    values : ndarray of shape (N, M)
        Per-row values (e.g. per-sample Shapley values).
    n_resamples : int
        Number of bootstrap resamples of the N rows.
    seed : int or None
        Seed of the resamples (:func:`bootstrap_counts`).

    Returns
    -------
    ndarray of shape (n_resamples, M)
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be (N, M), got shape {values.shape}")
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    out = []
    for counts in bootstrap_counts(len(values), n_resamples, seed):
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((counts @ filled) / (counts @ finite))
    return np.concatenate(out)


def normalize_rows(contributions: np.ndarray) -> np.ndarray:
    """Percent shares of each row of (B, M) contributions, negatives counted as 0.

    The explainers' normalization (:func:`~mmexplain.explainers.base.normalize_shares`)
    applied to every replicate; a row with no positive contribution is NaN.

    Parameters
    ----------
    contributions : ndarray of shape (B, M)
        Raw per-modality values, one row per replicate.

    Returns
    -------
    ndarray of shape (B, M)
        Shares in percent; each row sums to 100 or is NaN.
    """
    c = np.clip(np.asarray(contributions, dtype=float), 0.0, None)
    total = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = 100.0 * c / total
    bad = ~(np.isfinite(total[:, 0]) & (total[:, 0] > 0))
    shares[bad] = np.nan
    return shares


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile bootstrap interval of each column: (M, 2) lower and upper bounds.

    The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    replicates (NaN replicates left out; NaN bounds when all are NaN).

    Parameters
    ----------
    replicates : ndarray of shape (B, M)
        Bootstrap replicates of M statistics.
    level : float, default=0.95
        Confidence level, in ``(0, 1)``.

    Returns
    -------
    ndarray of shape (M, 2)
        Lower and upper bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.statistics import percentile_interval
    >>> reps = np.column_stack([np.arange(101.0), np.zeros(101)])
    >>> percentile_interval(reps, 0.9).round(6).tolist()
    [[5.0, 95.0], [0.0, 0.0]]
    """
    level = _check_level(level)
    reps = np.asarray(replicates, dtype=float)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    out = np.full((reps.shape[1], 2), np.nan)
    for j in range(reps.shape[1]):
        col = reps[:, j][np.isfinite(reps[:, j])]
        if len(col):
            out[j] = np.quantile(col, [lo, hi])
    return out


def p_value_not_used(replicates: np.ndarray) -> np.ndarray:
    """One-sided bootstrap p-value per column of H0 "the raw value is <= 0".

    ``(1 + #{replicates <= 0}) / (1 + B)``: the smallest ``alpha`` at which
    the one-sided ``1 - alpha`` percentile interval (bounded below) excludes
    0, with the +1 that keeps a p-value from being 0 with finitely many
    resamples (Davison & Hinkley, 1997). A modality the model ignores has
    every replicate exactly 0, so its p-value is 1.

    Parameters
    ----------
    replicates : ndarray of shape (B, M)
        Bootstrap replicates of the raw values (NaN replicates left out).

    Returns
    -------
    ndarray of shape (M,)

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.statistics import p_value_not_used
    >>> p_value_not_used(np.array([[0.2, 0.0], [0.1, 0.0], [-0.1, 0.0]])).tolist()
    [0.5, 1.0]
    """
    reps = np.asarray(replicates, dtype=float)
    finite = np.isfinite(reps)
    not_positive = (reps <= 0) & finite
    return (1 + not_positive.sum(axis=0)) / (1 + finite.sum(axis=0))


def paired_comparison(
    a: Any,
    b: Any,
    *,
    of: str = "shares",
    level: float = 0.95,
    n_resamples: int | None = None,
    random_state: Any = None,
) -> Any:
    """Difference ``a - b`` of two explanations of the same rows, per modality.

    A paired bootstrap: resample ``r`` uses the same rows for both (same
    seed, same number of rows), so what the two share (hard samples, the
    data's own noise) cancels in the difference. Use it for a balancer
    against its control, or two models, explained on the same data with the
    same explainer.

    Parameters
    ----------
    a, b : ModalityExplanation
        Same method, same modalities, same number of explained rows. For
        permutation and conditional utilization both must have been
        explained with the same ``n_bootstrap`` and ``random_state`` (their
        replicates are stored); Shapley and attribution results are
        resampled here.
    of : {'shares', 'values'}, default='shares'
        Compare the shares (percent) or the method's raw values.
    level : float, default=0.95
    n_resamples, random_state :
        For results resampled here (default 1000 and 0).

    Returns
    -------
    pandas.DataFrame
        Indexed by modality: ``a``, ``b``, ``difference``, ``low``, ``high``
        (percentile interval of the difference) and ``p_value`` (two-sided:
        ``min(1, 2 min(P(d* <= 0), P(d* >= 0)))`` with the +1 correction).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.statistics import paired_comparison
    >>> def shapley(values):
    ...     values = np.asarray(values, dtype=float)
    ...     return ModalityExplanation(
    ...         modalities=("a", "b"), method="shapley", params={},
    ...         shares=[50, 50], values=values, base_values=np.zeros(len(values)),
    ...         mean_values=values.mean(axis=0))
    >>> rng = np.random.default_rng(0)
    >>> v = rng.normal(1.0, 0.1, size=(200, 2))
    >>> table = paired_comparison(shapley(v * [2, 1]), shapley(v), of="values")
    >>> bool(table.loc["a", "p_value"] < 0.01), bool(table.loc["b", "p_value"] == 1.0)
    (True, True)
    """
    import pandas as pd

    if a.method != b.method:
        raise ValueError(
            f"cannot compare a {a.method} explanation with a {b.method} one"
        )
    if tuple(a.modalities) != tuple(b.modalities):
        raise ValueError(
            f"the explanations have different modalities: {a.modalities} vs {b.modalities}"
        )
    na, nb = a.n_rows(), b.n_rows()
    if na != nb:
        raise ValueError(
            f"a paired comparison needs the same rows: {na} vs {nb} explained rows"
        )
    ra, seed_a = a._replicates(of, n_resamples, random_state)
    rb, seed_b = b._replicates(of, n_resamples, random_state)
    if seed_a is None or seed_b is None:
        raise ValueError(
            "a paired comparison needs reproducible resamples: explain with an "
            "integer random_state"
        )
    if ra.shape != rb.shape or seed_a != seed_b:
        raise ValueError(
            "the explanations were resampled differently (n_bootstrap "
            f"{len(ra)} vs {len(rb)}, seed {seed_a} vs {seed_b}); explain both "
            "with the same n_bootstrap and integer random_state"
        )
    diff = ra - rb
    est = a.statistic(of) - b.statistic(of)
    interval = percentile_interval(diff, level)
    finite = np.isfinite(diff)
    le = ((diff <= 0) & finite).sum(axis=0)
    ge = ((diff >= 0) & finite).sum(axis=0)
    count = finite.sum(axis=0)
    p = np.minimum(1.0, 2 * (1 + np.minimum(le, ge)) / (1 + count))
    frame = pd.DataFrame(
        {
            "a": a.statistic(of),
            "b": b.statistic(of),
            "difference": est,
            "low": interval[:, 0],
            "high": interval[:, 1],
            "p_value": p,
        },
        index=pd.Index(a.modalities, name="modality"),
    )
    frame.attrs.update(
        {"method": a.method, "of": of, "level": level, "n_resamples": len(diff)}
    )
    return frame
