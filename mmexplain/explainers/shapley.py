"""Sample-level modality Shapley values (Wei et al., 2024)."""

from __future__ import annotations

from math import factorial
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain.explainers._engine import EvaluationEngine, Perturbation
from mmexplain.explainers._stats import make_stat
from mmexplain.explainers.base import (
    BaseModalityExplainer,
    ExplainContext,
    normalize_shares,
)
from mmexplain.modules.contract import require
from mmexplain.results import ShapleyExplanation

__all__ = ["ModalityShapley", "shapley_weights"]

_VALUES = ("correct", "probability", "neg_loss")
_BASELINES = ("zeros", "mean", "zero_input", "mean_input")


def shapley_weights(n_players: int) -> np.ndarray:
    """Matrix ``W`` (2^M, M) with ``phi = V @ W`` for coalition values ``V`` (N, 2^M).

    Coalition ``S`` is encoded by the bitmask ``sum(1 << m for m in S)``.
    ``W[S, m] = w(|S| - 1)`` if ``m`` in ``S`` and ``-w(|S|)`` otherwise, with
    ``w(s) = s! (M - 1 - s)! / M!``.
    """
    M = n_players
    w = np.array([factorial(s) * factorial(M - 1 - s) / factorial(M) for s in range(M)])
    masks = np.arange(1 << M)
    members = (masks[:, None] >> np.arange(M)[None, :]) & 1
    size = members.sum(axis=1)
    W = np.where(
        members == 1,
        w[np.clip(size - 1, 0, M - 1)][:, None],
        -w[np.clip(size, 0, M - 1)][:, None],
    )
    W[(1 << M) - 1][members[(1 << M) - 1] == 0] = (
        0.0  # no absent player in the grand coalition
    )
    return W


class ModalityShapley(BaseModalityExplainer):
    """Shapley value of each modality for each sample (Wei et al., 2024).

    Players are the modalities; the value of a coalition ``S`` on a sample is
    the model's performance on that sample when the modalities outside ``S``
    are replaced by a baseline:

    - ``value='correct'`` (the paper's code): ``v(S) = |S| * 1[prediction from
      S is correct]`` with ``v(empty) = 0``; for segmentation the correctness is
      the sample's pixel accuracy. With two modalities this gives
      ``phi_a = (v(a) + v(a, v) - v(v)) / 2``.
    - ``value='probability'``: the true-class probability (mean over pixels).
    - ``value='neg_loss'``: minus the loss (mean over pixels).

    Baselines for absent modalities: ``'zeros'`` (zeroed embedding, the
    paper's choice) and ``'mean'`` (mean embedding over ``reference``) need an
    ``encode``/``fuse`` model; ``'zero_input'`` and ``'mean_input'`` replace
    the inputs and work for any model.

    With ``M <= max_exact`` modalities and ``n_samples=None`` the values are
    exact (all ``2^M`` coalitions, each evaluated once on the cached
    embeddings) and satisfy efficiency, ``sum_m phi_m = v(all) - v(empty)``,
    to float precision. Otherwise ``n_samples`` random modality orderings are
    drawn (Monte-Carlo permutation sampling, seeded by ``random_state``); each
    ordering's marginal contributions telescope, so efficiency still holds
    exactly, and ``standard_errors`` (N, M) gives the standard error of each
    estimate.

    Parameters
    ----------
    value : {'correct', 'probability', 'neg_loss'}, default='correct'
    baseline : {'zeros', 'mean', 'zero_input', 'mean_input'}, default='zeros'
    n_samples : int or None, default=None
        Orderings for Monte-Carlo estimation; None is exact (or 200 orderings
        when ``M > max_exact``).
    max_exact : int, default=10
        Largest number of modalities computed exactly (2^M coalitions).
    reference : mapping or None, default=None
        Data for the 'mean' baselines (default: the data explained).
    random_state, batch_size, device, target, show_progress, loss_fn :
        As in :class:`PermutationModalityImportance`.

    Attributes
    ----------
    explanation_, shapley_values_ : set by :meth:`fit` (``shapley_values_`` is
        the (N, M) array).

    References
    ----------
    .. [Wei2024] Y. Wei, R. Feng, Z. Wang and D. Hu, "Enhancing Multimodal
       Cooperation via Sample-level Modality Valuation", IEEE/CVF Conference on
       Computer Vision and Pattern Recognition (CVPR), 2024. :arxiv:`2309.06255`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import ModalityShapley
    >>> X, y = make_multimodal_classification(n_samples=300, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=10, random_state=0).fit(X, y)
    >>> expl = ModalityShapley().explain(clf, X, y)
    >>> expl.values.shape
    (300, 2)
    """

    _headline = "shapley_values_"
    _headline_field = "values"

    def __init__(
        self,
        value: str = "correct",
        baseline: str = "zeros",
        n_samples: int | None = None,
        max_exact: int = 10,
        random_state: Any = None,
        reference: Any = None,
        batch_size: int = 4096,
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
        loss_fn: Any = None,
    ) -> None:
        self.value = value
        self.baseline = baseline
        self.n_samples = n_samples
        self.max_exact = max_exact
        self.random_state = random_state
        self.reference = reference
        self.batch_size = batch_size
        self.device = device
        self.target = target
        self.show_progress = show_progress
        self.loss_fn = loss_fn

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "value": [StrOptions(set(_VALUES))],
        "baseline": [StrOptions(set(_BASELINES))],
        "n_samples": [Interval(Integral, 2, None, closed="left"), None],
        "max_exact": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "reference": "no_validation",
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": "no_validation",
        "target": [dict, None],
        "show_progress": ["boolean"],
        "loss_fn": [callable, None],
    }

    def _explain(self, ctx: ExplainContext) -> ShapleyExplanation:
        modalities = ctx.modalities
        M = len(modalities)
        on_embeddings = self.baseline in ("zeros", "mean")
        if on_embeddings:
            require(
                ctx.adapter.module,
                "encode_fuse",
                f"baseline={self.baseline!r} (it replaces embeddings)",
                error=ValueError,
                hint="use baseline='zero_input' or 'mean_input'",
            )
        reference = self._reference(ctx)
        engine = self._engine(ctx, fast=on_embeddings, desc="modality Shapley")
        kind = "zeros" if self.baseline in ("zeros", "zero_input") else "mean"
        absent = {m: engine.baseline(m, kind, reference=reference) for m in modalities}
        exact = self.n_samples is None and M <= self.max_exact
        if exact:
            masks, orderings, prefix_masks = np.arange(1 << M), None, None
        else:
            orderings, prefix_masks = self._orderings(M)
            masks = np.unique(prefix_masks)
        V = self._coalition_values(engine, modalities, masks, absent)  # (N, len(masks))
        col = {int(mk): j for j, mk in enumerate(masks)}
        v_full, v_empty = V[:, col[(1 << M) - 1]], V[:, col[0]]
        if exact:
            values, standard_errors = V @ shapley_weights(M), None
        else:
            values, standard_errors = self._monte_carlo(V, col, orderings, prefix_masks)
        gap = (
            float(np.max(np.abs(values.sum(axis=1) - (v_full - v_empty))))
            if len(values)
            else 0.0
        )
        mean_values = values.mean(axis=0)
        return ShapleyExplanation(
            modalities=modalities,
            method="shapley",
            params={
                "value": self.value,
                "baseline": self.baseline,
                "exact": exact,
                "n_samples": None if exact else int(len(orderings)),
                "n_coalitions": int(len(masks)),
                "random_state": self.random_state,
                "efficiency_gap": gap,
                "path": engine.path,
                "model_calls": engine.head_calls,
            },
            shares=normalize_shares(mean_values, what="Shapley"),
            values=values,
            base_values=v_empty,
            mean_values=mean_values,
            standard_errors=standard_errors,
        )

    def _orderings(self, M: int) -> tuple[np.ndarray, np.ndarray]:
        """Random modality orderings (P, M) and their prefix coalitions (P, M + 1)."""
        rng = check_random_state(self.random_state)
        n_orderings = self.n_samples if self.n_samples is not None else 200
        orderings = np.array([rng.permutation(M) for _ in range(n_orderings)])
        prefix_masks = np.zeros((n_orderings, M + 1), dtype=np.int64)
        for k in range(M):
            prefix_masks[:, k + 1] = prefix_masks[:, k] | (1 << orderings[:, k])
        return orderings, prefix_masks

    @staticmethod
    def _monte_carlo(
        V: np.ndarray,
        col: dict[int, int],
        orderings: np.ndarray,
        prefix_masks: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean marginal contributions over the orderings and their standard errors."""
        cols = np.vectorize(col.__getitem__)(prefix_masks)  # (P, M+1)
        marg = V[:, cols[:, 1:]] - V[:, cols[:, :-1]]  # (N, P, M) in ordering positions
        contrib = np.zeros_like(marg)
        np.put_along_axis(
            contrib, np.broadcast_to(orderings[None], marg.shape), marg, axis=2
        )
        values = contrib.mean(axis=1)
        return values, contrib.std(axis=1, ddof=1) / np.sqrt(contrib.shape[1])

    def _coalition_values(
        self,
        engine: EvaluationEngine,
        modalities: tuple[str, ...],
        masks: np.ndarray,
        absent: dict,
    ) -> np.ndarray:
        """Per-sample value of each coalition: array (N, len(masks))."""
        stat_kind = {
            "correct": "correct",
            "probability": "probability",
            "neg_loss": "loss",
        }[self.value]
        stat = make_stat(stat_kind, engine.adapter)
        evaluate = [
            int(mk) for mk in masks if not (self.value == "correct" and mk == 0)
        ]
        perturbations = [
            Perturbation(
                {
                    m: (None if mk >> j & 1 else absent[m])
                    for j, m in enumerate(modalities)
                }
            )
            for mk in evaluate
        ]
        out = np.zeros((engine.n, len(masks)))
        if perturbations:
            st = (
                engine.evaluate(perturbations, stat, per_sample=True)
                .double()
                .cpu()
                .numpy()
            )  # (K, N, 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                per = st[..., 0] / st[..., 1]
            per = np.nan_to_num(per)  # samples with no valid pixel contribute 0
            pos = {int(mk): j for j, mk in enumerate(masks)}
            for k, mk in enumerate(evaluate):
                v = per[k]
                if self.value == "correct":
                    v = bin(mk).count("1") * v
                elif self.value == "neg_loss":
                    v = -v
                out[:, pos[mk]] = v
        return out
