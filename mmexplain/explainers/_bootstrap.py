"""Bootstrap replicates of the engine's scores, from per-row statistics, with no model call.

The engine's statistics are additive over rows (loss sum and count, correct
count, confusion counts, true-class probability sum): a score is
``finalize(sum over rows)``. A bootstrap resample of the rows weights each row
by how often it was drawn, so the resampled score is ``finalize(counts @
rows)``: the per-row statistics of every perturbation are kept (on the model's
device) and every resample is one matrix product. See
:mod:`mmexplain.statistics` for what is resampled and why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmexplain.statistics import bootstrap_counts

__all__ = ["MAX_ROW_STATS", "bootstrap_scores"]

#: largest number of kept per-row statistics (perturbations x rows x values):
#: 2**27 float64 values, 1 GiB
MAX_ROW_STATS = 2**27


def bootstrap_scores(
    engine: Any,
    perturbations: list[Any],
    scoring: Any,
    n_resamples: int,
    seed: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every perturbation and their bootstrap replicates.

    Returns
    -------
    scores : ndarray of shape (P,)
        Equal to :func:`~mmexplain.explainers.base.evaluate_scores`.
    replicates : ndarray of shape (n_resamples, P)
        The scores on resample ``b`` of the rows (the same resamples for
        every perturbation, from :func:`~mmexplain.statistics.bootstrap_counts`).
    """
    from mmexplain.explainers._stats import make_stat

    if scoring.estimator_scorer is not None or scoring.per_sample:
        raise ValueError(
            f"n_bootstrap needs a scoring that adds up over rows ('loss', "
            f"'accuracy', 'miou'); scoring={scoring.name!r} is computed from all "
            "rows at once, so a resample would need it recomputed per resample: "
            "use scoring='loss' or 'accuracy', or n_bootstrap=0"
        )
    stat = make_stat(scoring.stat, engine.adapter)
    _, probe = engine.probe_stats(perturbations, stat)
    width = int(probe.shape[-1])
    size = len(perturbations) * engine.n * width
    if size > MAX_ROW_STATS:
        raise ValueError(
            f"n_bootstrap keeps every row's statistics: {len(perturbations)} "
            f"perturbations x {engine.n} rows x {width} values = {size:,} floats, "
            f"more than {MAX_ROW_STATS:,} (1 GiB); explain fewer rows "
            "(max_samples=...) or fewer repeats"
        )
    rows = engine.evaluate(perturbations, stat, per_sample=True)  # (P, N, K)
    rows = rows.to(torch.float64)
    n_p, n, k = rows.shape
    sums = rows.sum(dim=1).cpu().numpy()
    scores = np.array([scoring.finalize(s) for s in sums])
    flat = rows.permute(1, 0, 2).reshape(n, n_p * k)  # (N, P*K)
    out = []
    for counts in bootstrap_counts(n, n_resamples, seed):
        w = torch.as_tensor(counts, dtype=torch.float64, device=flat.device)
        out.append((w @ flat).reshape(len(counts), n_p, k).cpu().numpy())
    resampled = np.concatenate(out)  # (B, P, K)
    replicates = np.array(
        [
            [scoring.finalize(resampled[b, p]) for p in range(n_p)]
            for b in range(len(resampled))
        ]
    )
    return scores, replicates
