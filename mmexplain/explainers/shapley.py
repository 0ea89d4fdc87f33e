"""Sample-level modality Shapley values (Wei et al., 2024)."""

from __future__ import annotations

import warnings
from math import factorial
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain.data.sources import DatasetSource
from mmexplain.explainers._engine import EvaluationEngine, Perturbation
from mmexplain.explainers._interactions import interaction_weights
from mmexplain.explainers._stats import make_stat
from mmexplain.explainers.base import (
    BaseModalityExplainer,
    ExplainContext,
    image_size,
    normalize_shares,
)
from mmexplain.modules.contract import require
from mmexplain.results import ShapleyExplanation
from mmexplain.statistics import normalize_rows

__all__ = ["ModalityShapley", "shapley_weights"]

_STAT_OF_VALUE = {
    "correct": "correct",
    "probability": "probability",
    "neg_loss": "loss",
    "prediction": "prediction",
}

_VALUES = ("auto", "probability", "neg_loss", "correct", "prediction")
_BASELINES = ("auto", "zeros", "mean", "zero_input", "mean_input")
#: most modalities computed exactly: 2^16 coalitions per row
MAX_EXACT = 16


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

    - ``value='probability'`` (the default for classifiers and segmenters):
      the true-class probability (mean over pixels for segmentation). A
      modality the model ignores gets exactly 0.
    - ``value='prediction'`` (the default for regression models): the
      prediction itself (the mean over the targets when there are several),
      as shap explains a regressor's output; needs no ``y``. For an additive
      model ``f = sum_m g_m(x_m)`` the value of ``m`` is exactly
      ``g_m(x_m) - g_m(baseline)``.
    - ``value='neg_loss'``: minus the loss (mean over pixels, or over the
      targets of a regression).
    - ``value='correct'`` (the paper's code, used by
      :class:`~mmexplain.balancers.SampleValuation`): ``v(S) = |S| *
      1[prediction from S is correct]`` with ``v(empty) = 0``; for
      segmentation the correctness is the sample's pixel accuracy. With two
      modalities this gives ``phi_a = (v(a) + v(a, v) - v(v)) / 2``. The
      ``|S|`` factor credits a modality for being *present*: a modality the
      model ignores still gets a positive value whenever the prediction is
      correct, so use it to reproduce the paper's re-sampling, not to
      measure use.

    Baselines for absent modalities: ``'zeros'`` (zeroed embedding, the
    paper's choice) and ``'mean'`` (mean embedding over ``reference``) need an
    ``encode``/``fuse`` model; ``'zero_input'`` and ``'mean_input'`` replace
    the inputs and work for any model; ``'auto'`` (default) is ``'zeros'``
    for encode/fuse models and ``'zero_input'`` otherwise.

    With ``M <= max_exact`` modalities and ``n_samples=None`` the values are
    exact (all ``2^M`` coalitions, each evaluated once) and satisfy
    efficiency, ``sum_m phi_m = v(all) - v(empty)``, to float precision.
    Otherwise ``n_samples`` random modality orderings are drawn (Monte-Carlo
    permutation sampling, seeded by ``random_state``; a ``UserWarning`` says
    when this switch happens automatically); each ordering's marginal
    contributions telescope, so efficiency still holds exactly, and
    ``standard_errors`` (N, M) gives the standard error of each estimate.
    Values are computed block by block over rows, ``batch_size // 2^M``
    rows per block (at least one), so that a block's coalition values hold
    at most ``max(batch_size, 2^M)`` entries: memory is
    ``O(max(batch_size, 2^M) * M + N * M)`` whatever ``N``.

    ``shares`` are the signed mean values, negative ones counted as 0,
    normalized to 100 (as the other explainers' shares): a modality whose
    values only move predictions both ways averages out near 0. shap's
    ``plots.bar`` ranks by the mean *absolute* value instead, which credits
    such movement; it is ``mean_abs_values`` on the result. With
    ``value='prediction'`` (regression) the shares are of the mean absolute
    values: a prediction moves both ways around the baseline's by design.

    Parameters
    ----------
    value : {'auto', 'probability', 'prediction', 'neg_loss', 'correct'}, default='auto'
        The value of a coalition (above); 'auto' is 'prediction' for a
        regression model and 'probability' otherwise. The value used is
        recorded in the result's ``params``.
    baseline : {'auto', 'zeros', 'mean', 'zero_input', 'mean_input'}, default='auto'
    n_samples : int or None, default=None
        Orderings for Monte-Carlo estimation; None is exact (or 200 orderings
        when ``M > max_exact``).
    max_exact : int, default=10
        Largest number of modalities computed exactly (2^M coalitions); at
        most 16 (65536 coalitions per row).
    reference : mapping or None, default=None
        Data for the 'mean' baselines (default: the data explained).
    random_state, batch_size, device, target, show_progress, loss_fn :
        As in :class:`PermutationModalityImportance`.
    interactions : bool, default=False
        Also the Shapley interaction index of every pair of modalities
        (Grabisch & Roubens, 1999), per sample, from the same 2^M coalition
        values (no extra model call): ``interaction_values`` (N, M, M) and
        their mean ``interactions`` (M, M). Exact computation only (refused
        with ``n_samples`` or beyond ``max_exact`` modalities).
    per_class : bool, default=False
        Also the mean Shapley value of each modality over the samples of each
        true class: ``class_values`` (C, M) and ``class_shares`` (percent).

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
    _result_class = ShapleyExplanation

    @classmethod
    def for_report(
        cls,
        *,
        n_modalities: int,
        n_repeats: int = 10,
        random_state: Any = 0,
        show_progress: bool = True,
    ) -> BaseModalityExplainer:
        """The instance the modality report runs (see the base class)."""
        # the report describes the true-class probability with absent modalities
        # zeroed (embeddings, or inputs for other models): said explicitly rather
        # than left to the defaults. The paper's |S| x correct value credits a
        # modality for being present, so it is not used to report use.
        return cls(
            value="auto",  # the true-class probability; a regressor's prediction
            baseline="auto",
            n_samples=None if n_modalities <= 10 else 100,
            random_state=random_state,
            show_progress=show_progress,
        )

    def __init__(
        self,
        value: str = "auto",
        baseline: str = "auto",
        n_samples: int | None = None,
        max_exact: int = 10,
        random_state: Any = None,
        reference: Any = None,
        batch_size: int | str = "auto",
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
        loss_fn: Any = None,
        interactions: bool = False,
        per_class: bool = False,
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
        self.interactions = interactions
        self.per_class = per_class

    _parameter_constraints: ClassVar[dict[str, list[Any] | str]] = {
        **BaseModalityExplainer._parameter_constraints,
        "value": [StrOptions(set(_VALUES))],
        "baseline": [StrOptions(set(_BASELINES))],
        "n_samples": [Interval(Integral, 2, None, closed="left"), None],
        "max_exact": [Interval(Integral, 1, MAX_EXACT, closed="both")],
        "random_state": ["random_state"],
        "reference": "no_validation",
        "loss_fn": [callable, None],
        "interactions": ["boolean"],
        "per_class": ["boolean"],
    }

    def _needs_y(self) -> bool:
        # 'auto' checks for y once the model's task is known (_resolve_value)
        return self.value not in ("auto", "prediction")

    def _resolve_value(self, ctx: ExplainContext) -> str:
        """``value``, with 'auto' resolved and the model's task checked."""
        regression = ctx.adapter.regression
        value = self.value
        if value == "auto":
            value = "prediction" if regression else "probability"
        if regression and value in ("probability", "correct"):
            raise ValueError(
                f"value={value!r} needs classes, but the model is a regression model; "
                "use value='prediction' (the default for regressors) or 'neg_loss'"
            )
        if not regression and value == "prediction":
            raise ValueError(
                "value='prediction' is for regression models (real-valued outputs); "
                "for a classifier use value='probability' or 'neg_loss'"
            )
        if value != "prediction" and ctx.y is None:
            if not (isinstance(ctx.X, DatasetSource) and ctx.X.has_targets):
                raise ValueError(
                    f"ModalityShapley(value={value!r}) needs y (targets) to score "
                    "the model"
                )
            # a Dataset's own targets, read once the value is known to need them
            ctx.y_raw = ctx.X.targets()
            ctx.y = ctx.adapter.encode_y(
                ctx.y_raw, len(ctx.X), spatial=image_size(ctx.X)
            )
        return value

    def _resolve_baseline(self, ctx: ExplainContext) -> str:
        if self.baseline == "auto":
            return "zeros" if ctx.adapter.split else "zero_input"
        if self.baseline in ("zeros", "mean"):
            require(
                ctx.adapter.module,
                "encode_fuse",
                f"baseline={self.baseline!r} (it replaces embeddings)",
                error=ValueError,
                hint="use baseline='zero_input' or 'mean_input'",
            )
        return self.baseline

    def _explain(self, ctx: ExplainContext) -> ShapleyExplanation:
        modalities = ctx.modalities
        M = len(modalities)
        value = self._resolve_value(ctx)
        baseline = self._resolve_baseline(ctx)
        on_embeddings = baseline in ("zeros", "mean")
        reference = self._reference(ctx)
        # input baselines run on the embeddings too when the model has encode/fuse
        # (the encoded constant input is a constant embedding row: exact)
        engine = self._engine(
            ctx,
            fast=on_embeddings or ctx.adapter.split,
            desc="modality Shapley",
            needs_index=False,
        )
        absent = {
            m: engine.baseline(m, baseline, reference=reference) for m in modalities
        }
        exact = self.n_samples is None and M <= self.max_exact
        if self.n_samples is None and not exact:
            warnings.warn(
                f"{M} modalities exceed max_exact={self.max_exact}: estimating the "
                "Shapley values by Monte-Carlo with 200 random orderings (pass "
                "n_samples to choose)",
                UserWarning,
                stacklevel=3,
            )
        if self.interactions and not exact:
            raise ValueError(
                "interactions=True needs the exact computation (all 2^M coalitions): "
                f"n_samples=None and at most max_exact={self.max_exact} modalities "
                f"(here {M})"
            )
        orderings = prefix_masks = None
        if exact:
            masks = np.arange(1 << M)
        else:
            orderings, prefix_masks = self._orderings(M)
            masks = np.unique(prefix_masks)
        out = self._block_values(
            engine, modalities, masks, absent, orderings, prefix_masks, value
        )
        values, standard_errors, v_empty, v_full, interaction_values = out
        gap = (
            float(np.max(np.abs(values.sum(axis=1) - (v_full - v_empty))))
            if len(values)
            else 0.0
        )
        mean_values = values.mean(axis=0)
        class_values = class_shares = class_labels = None
        if self.per_class:
            if ctx.y is None or ctx.y.ndim != 1 or ctx.adapter.regression:
                raise ValueError(
                    "per_class needs one class per sample (a classifier with y); "
                    "a regression model has no classes"
                )
            classes = ctx.adapter.classes
            n_classes = len(classes) if classes is not None else int(ctx.y.max()) + 1
            counts = np.bincount(ctx.y, minlength=n_classes).astype(float)
            sums = np.zeros((n_classes, len(modalities)))
            np.add.at(sums, ctx.y, values)
            with np.errstate(invalid="ignore", divide="ignore"):
                class_values = sums / counts[:, None]  # NaN for a class without rows
            class_shares = normalize_rows(class_values)
            class_labels = (
                np.asarray(classes) if classes is not None else np.arange(n_classes)
            )
        return ShapleyExplanation(
            modalities=modalities,
            method="shapley",
            params={
                "value": value,
                "baseline": baseline,
                "exact": exact,
                "n_samples": None if orderings is None else int(len(orderings)),
                "n_coalitions": int(len(masks)),
                "random_state": self.random_state,
                "efficiency_gap": gap,
                "path": engine.path,
                "model_calls": engine.head_calls,
            },
            # a prediction's values move it both ways around the baseline's
            # prediction: its shares are of the mean absolute values (shap's
            # global importance); performance values (probability, loss) are
            # signed, so a modality that hurts on average gets no share
            shares=normalize_shares(
                np.abs(values).mean(axis=0) if value == "prediction" else mean_values,
                what="Shapley",
            ),
            values=values,
            base_values=v_empty,
            mean_values=mean_values,
            standard_errors=standard_errors,
            interaction_values=interaction_values,
            interactions=None
            if interaction_values is None
            else interaction_values.mean(axis=0),
            class_values=class_values,
            class_shares=class_shares,
            classes=class_labels,
        )

    def _block_values(
        self,
        engine: EvaluationEngine,
        modalities: tuple[str, ...],
        masks: np.ndarray,
        absent: dict,
        orderings: np.ndarray | None,
        prefix_masks: np.ndarray | None,
        value: str,
    ) -> tuple[
        np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray | None
    ]:
        """Shapley values (N, M), their standard errors, v(empty), v(all), interactions.

        Each block of rows is reduced to its values as soon as its coalition
        values are known, so only ``(2^M, block)`` statistics exist at a time.
        """
        M = len(modalities)
        stat = make_stat(_STAT_OF_VALUE[value], engine.adapter)
        evaluated = [int(mk) for mk in masks if not (value == "correct" and mk == 0)]
        perturbations = [
            Perturbation(
                {
                    m: (None if mk >> j & 1 else absent[m])
                    for j, m in enumerate(modalities)
                }
            )
            for mk in evaluated
        ]
        col = {int(mk): j for j, mk in enumerate(masks)}
        dev = engine.device
        # coalition values V (rows, len(masks)): column of each evaluated mask and
        # its scale (|S| for 'correct', -1 for 'neg_loss'); v(empty) stays 0 for
        # 'correct', which does not evaluate it
        where = torch.tensor([col[mk] for mk in evaluated], device=dev)
        scale = torch.tensor(
            [
                bin(mk).count("1")
                if value == "correct"
                else (-1.0 if value == "neg_loss" else 1.0)
                for mk in evaluated
            ],
            dtype=torch.float64,
            device=dev,
        )
        pairs = None
        if orderings is None:
            weights = torch.from_numpy(shapley_weights(M)).to(dev)
            if self.interactions:
                pairs = torch.from_numpy(
                    interaction_weights(M).reshape(1 << M, M * M)
                ).to(dev)
        else:
            cols = torch.from_numpy(np.vectorize(col.__getitem__)(prefix_masks)).to(dev)
            order = torch.from_numpy(orderings).to(dev)
        empty, full = col[0], col[(1 << M) - 1]

        def block(sl: slice, st: torch.Tensor) -> tuple[torch.Tensor, ...]:
            st = st.double()
            per = torch.nan_to_num(st[..., 0] / st[..., 1])  # no valid pixel: 0
            V = torch.zeros((st.shape[1], len(col)), dtype=torch.float64, device=dev)
            V[:, where] = (per * scale[:, None]).T
            if orderings is None:
                # elementwise products summed over the coalitions: each row's
                # sum runs in the same order whatever the block's rows (a
                # one-row matrix product takes another BLAS path than a
                # many-row one, and rounds differently); rows x 2^M x M
                # float64 stay within batch_size x M values (rows_per_block)
                vals = (V.unsqueeze(2) * weights).sum(dim=1)
                se = vals.new_zeros((len(vals), 0))  # not a view: V must be freed
            else:
                vals, se = self._monte_carlo(V, cols, order)
            inter = (
                V @ pairs if pairs is not None else V.new_zeros((len(V), 0))
            )  # (rows, M * M): every pair's interaction index, same coalition values
            # copies: a view would keep the block's whole (rows, 2^M) matrix alive
            return vals, se, V[:, empty].clone(), V[:, full].clone(), inter

        # rows per block from the number of coalitions: a block's (K, rows)
        # statistics and its (rows, 2^M) values stay within batch_size rows of
        # coalitions (with 2^M = 65536, min(N, batch_size) rows per block took
        # 3 GB at N = 800); a row's values come from its own coalition values
        # alone, so the blocks change nothing (but the model's own rounding,
        # which can depend on which rows share its calls)
        rows_per_block = max(1, engine.batch_size // len(perturbations))
        values, se, v_empty, v_full, inter = (
            t.cpu().numpy()
            for t in engine.map_blocks(
                perturbations, stat, block, rows_per_block=rows_per_block
            )
        )
        interactions = inter.reshape(len(inter), M, M) if pairs is not None else None
        return (
            values,
            (se if orderings is not None else None),
            v_empty,
            v_full,
            interactions,
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
        V: torch.Tensor, cols: torch.Tensor, orderings: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean marginal contributions over the orderings and their standard errors.

        ``cols`` (P, M + 1): the column of ``V`` of each prefix coalition of each
        ordering; ``orderings`` (P, M): the modality at each position.
        """
        marg = V[:, cols[:, 1:]] - V[:, cols[:, :-1]]  # (N, P, M) in ordering positions
        contrib = torch.zeros_like(marg).scatter_(
            2, orderings[None].expand(marg.shape), marg
        )
        values = contrib.mean(dim=1)
        return values, contrib.std(dim=1, unbiased=True) / np.sqrt(contrib.shape[1])
