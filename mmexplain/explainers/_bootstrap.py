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

__all__ = ["MAX_ROW_STATS", "bootstrap_scores", "class_sums"]

#: largest number of kept per-row statistics (perturbations x rows x values):
#: 2**27 float64 values, 1 GiB
MAX_ROW_STATS = 2**27


#: values per row of the engine's fixed-width statistics (see ``_stats.make_stat``)
_WIDTHS = {"loss": 2, "correct": 2, "probability": 2}


def _stat_width(kind: str, engine: Any, perturbations: list[Any], stat: Any) -> int:
    """Values per row of statistic ``kind`` (a one-row probe only for the others)."""
    if kind in _WIDTHS:
        return _WIDTHS[kind]
    return int(engine.probe_stats(perturbations, stat)[1].shape[-1])


def bootstrap_scores(
    engine: Any,
    perturbations: list[Any],
    scoring: Any,
    n_resamples: int,
    seed: int | None,
    n_classes: int | None = None,
    *,
    return_sums: bool = False,
) -> tuple[Any, ...]:
    """Scores of every perturbation and their bootstrap replicates.

    Returns
    -------
    scores : ndarray of shape (P,)
        Equal to :func:`~mmexplain.explainers.base.evaluate_scores`.
    replicates : ndarray of shape (n_resamples, P)
        The scores on resample ``b`` of the rows (the same resamples for
        every perturbation, from :func:`~mmexplain.statistics.bootstrap_counts`).
    class_sums : ndarray of shape (P, n_classes, K) or None
        With ``n_classes``: the statistics summed over the rows of each class
        (``engine.y``), for per-class scores.
    sums : ndarray of shape (P, K)
        Only with ``return_sums``: the statistics summed over all rows.
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
    width = _stat_width(scoring.stat, engine, perturbations, stat)
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
    class_sums = None
    if n_classes is not None:
        init = rows.new_zeros(n_p, int(n_classes), k)
        class_sums = init.index_add(1, engine.y.long(), rows).cpu().numpy()
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
    if return_sums:
        return scores, replicates, class_sums, sums
    return scores, replicates, class_sums


def class_sums(
    engine: Any, perturbations: list[Any], scoring: Any, n_classes: int
) -> np.ndarray:
    """The statistics of every perturbation summed over the rows of each class.

    One pass of the engine (the same model calls as the overall scores,
    whose sums are these summed over classes); memory (P, n_classes, K).

    Returns
    -------
    ndarray of shape (P, n_classes, K)
    """
    from mmexplain.explainers._stats import make_stat

    if scoring.estimator_scorer is not None or scoring.per_sample:
        raise ValueError(
            f"per_class needs a scoring that adds up over rows ('loss', "
            f"'accuracy'); scoring={scoring.name!r} is computed from all rows at once"
        )
    stat = make_stat(scoring.stat, engine.adapter)
    width = _stat_width(scoring.stat, engine, perturbations, stat)
    y = engine.y.long()

    def fold(acc: torch.Tensor, sl: slice, st: torch.Tensor) -> torch.Tensor:
        return acc.index_add(1, y[sl], st.to(torch.float64))

    init = torch.zeros(
        len(perturbations),
        int(n_classes),
        width,
        dtype=torch.float64,
        device=engine.device,
    )
    return engine.reduce_blocks(perturbations, stat, fold, init).cpu().numpy()
