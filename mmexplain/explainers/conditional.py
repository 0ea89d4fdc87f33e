"""Conditional utilization rates (Wu et al., 2022)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from numbers import Integral
from typing import Any, ClassVar, cast

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain._core.rows import reduce_rows
from mmexplain._core.torch_state import auto_batch_size
from mmexplain.data.sources import as_source
from mmexplain.explainers._bootstrap import bootstrap_scores, class_sums
from mmexplain.explainers._engine import Perturbation
from mmexplain.explainers._stats import make_stat
from mmexplain.explainers.base import (
    BaseModalityExplainer,
    ExplainContext,
    evaluate_scores,
    normalize_shares,
    resolve_scoring,
)
from mmexplain.modules.contract import module_device, require, select_branches
from mmexplain.results import ConditionalExplanation, ModalityExplanation
from mmexplain.statistics import normalize_rows, resolve_seed

__all__ = ["ConditionalUtilization"]

_ABLATIONS = ("auto", "mean", "zeros", "mmtm", "input_mean")


def _other_branches(modality: str):
    """Output selector: mean logits of every branch except ``modality``'s."""

    def select(module: Any, logits: torch.Tensor) -> torch.Tensor:
        return torch.stack(select_branches(module, modality)).mean(dim=0)

    return select


class ConditionalUtilization(BaseModalityExplainer):
    """How much each modality adds given the others: u(m | rest) (Wu et al., 2022).

    ``u(m | rest) = (A(all) - A(rest)) / A(all)``, the relative score lost
    when modality ``m``'s sample-specific information is removed (``A`` is
    accuracy by default). For two modalities ``m0, m1``, ``rates`` holds
    ``[u(m0 | m1), u(m1 | m0)]`` and ``d_util = u(m1 | m0) - u(m0 | m1)``.
    ``u`` can be negative, so ``d_util`` is not bounded to [-1, 1]. For a
    loss (``scoring='loss'``) the rate is the relative loss *increase*.

    How a modality is removed (``ablation``, recorded in the result):

    - ``'mmtm'`` (:class:`~mmexplain.MMTMNet`, the paper's derivation): in
      every MMTM block the removed modality's squeeze vector is replaced by its
      average over ``reference``, computed with the model as it is (trained,
      in eval mode; ``MMTMNet.squeeze_averages``), and the score is that of
      the *other* branches' heads, so ``u(m1 | m0)`` compares branch m0's head
      with and without m1's information. ``score_reference`` holds those
      branches' full scores. Wu et al. (2022) average over the training split
      (``reference=X_train``); the running squeeze averages the model keeps
      while it trains are *not* used (they mix the whole weight trajectory).
    - ``'mean'``: replace the modality's embedding by its mean over
      ``reference`` (late-fusion models with ``encode``/``fuse``).
    - ``'zeros'``: replace the embedding by zeros.
    - ``'input_mean'``: replace the modality's input by its mean over
      ``reference`` (any model; full forward passes).
    - ``'auto'``: ``'mmtm'`` for MMTM models, ``'mean'`` for encode/fuse
      models, ``'input_mean'`` otherwise.

    Parameters
    ----------
    ablation : str, default='auto'
    reference : mapping, tuple (X_ref, y_ref) or None, default=None
        Data over which the replacement of a removed modality is averaged
        (squeeze vectors for ``'mmtm'``, embeddings for ``'mean'``, inputs for
        ``'input_mean'``). None uses the data being explained (recorded as
        ``params['reference'] = 'explained data'``). Wu et al. (2022) use the
        training split: pass ``reference=X_train``.
    scoring : str, default='auto'
        'accuracy', 'loss', 'miou', 'r2' or a scikit-learn scorer name.
        'auto' is 'accuracy' (the paper's) for classifiers and segmenters and
        'r2' for regression models, whose rate is then the share of the
        explained variance lost without the modality.
    batch_size, device, show_progress, loss_fn :
        As in :class:`PermutationModalityImportance`.
    target : dict or None
        Unused by :meth:`score` (kept for a uniform API); see below.
    n_bootstrap : int, default=0
        Bootstrap resamples of the explained rows for the result's
        :meth:`~mmexplain.ModalityExplanation.confidence_interval` and
        :meth:`~mmexplain.ModalityExplanation.p_values` (per-row statistics
        kept and resampled, no extra model call; see
        :mod:`mmexplain.statistics`). The ablation's replacement (averaged
        over ``reference``) stays fixed. Needs a scoring that adds up over
        rows ('accuracy', 'loss').
    random_state : int, RandomState or None, default=None
        Seeds the bootstrap resamples (the only randomness here).
    per_class : bool, default=False
        Also the rates within each class (classifiers), from the same model
        calls: ``class_rates`` (C, M) and ``class_shares`` (percent). Needs
        a scoring that adds up over rows.

    Notes
    -----
    :meth:`score` returns ``-(max(rates) - min(rates))``, i.e. ``-abs(d_util)``
    for two modalities: 0 when every modality adds the same.

    Attributes
    ----------
    explanation_, rates_ : set by :meth:`fit`.

    References
    ----------
    .. [Wu2022] N. Wu, S. Jastrzebski, K. Cho and K. J. Geras, "Characterizing and
       Overcoming the Greedy Nature of Learning in Multi-modal Deep Neural
       Networks", International Conference on Machine Learning (ICML), 2022.
       :arxiv:`2202.05306`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import ConditionalUtilization
    >>> X, y = make_multimodal_classification(n_samples=300, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=10, random_state=0).fit(X, y)
    >>> expl = ConditionalUtilization().explain(clf, X, y)
    >>> expl.params["ablation"], expl.rates.shape
    ('mean', (2,))
    """

    _headline = "rates_"
    _headline_field = "rates"
    _result_class = ConditionalExplanation

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
        return cls(ablation="auto", show_progress=show_progress)

    def __init__(
        self,
        ablation: str = "auto",
        reference: Any = None,
        scoring: str = "auto",
        batch_size: int | str = "auto",
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
        loss_fn: Any = None,
        n_bootstrap: int = 0,
        random_state: Any = None,
        per_class: bool = False,
    ) -> None:
        self.ablation = ablation
        self.reference = reference
        self.scoring = scoring
        self.batch_size = batch_size
        self.device = device
        self.target = target
        self.show_progress = show_progress
        self.loss_fn = loss_fn
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.per_class = per_class

    def _score_explanation(self, expl: ModalityExplanation) -> float:
        # this explainer's explanations are ConditionalExplanation
        rates = np.asarray(cast(ConditionalExplanation, expl).rates, dtype=float)
        if not np.all(np.isfinite(rates)):
            raise ValueError(
                "ConditionalUtilization cannot score this model: some rates are "
                "undefined (NaN) because a reference score is 0 (e.g. an accuracy of 0 "
                "on these data)"
            )
        return -float(rates.max() - rates.min())

    _parameter_constraints: ClassVar[dict[str, list[Any] | str]] = {
        **BaseModalityExplainer._parameter_constraints,
        "ablation": [StrOptions(set(_ABLATIONS))],
        "reference": "no_validation",
        "scoring": [str],
        "loss_fn": [callable, None],
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "per_class": ["boolean"],
    }

    def _resolve_ablation(self, ctx: ExplainContext) -> str:
        adapter, ablation = ctx.adapter, self.ablation
        if ablation == "auto":
            if adapter.is_mmtm:
                return "mmtm"
            return "mean" if adapter.split else "input_mean"
        if ablation == "mmtm":
            require(adapter.module, "ablating", "ablation='mmtm'", error=ValueError)
        if ablation in ("mean", "zeros"):
            require(
                adapter.module,
                "encode_fuse",
                f"ablation={ablation!r} (it replaces embeddings)",
                error=ValueError,
                hint="use ablation='input_mean'",
            )
        return ablation

    def _explain(self, ctx: ExplainContext) -> ConditionalExplanation:
        modalities = ctx.modalities
        if len(modalities) < 2:
            raise ValueError("conditional utilization needs at least two modalities")
        assert ctx.y is not None  # explain required y (_needs_y)
        ablation = self._resolve_ablation(ctx)
        reference = self._reference(ctx)
        name = self.scoring
        if name == "auto":
            name = "r2" if ctx.adapter.regression else "accuracy"
        scoring = resolve_scoring(
            name,
            ctx.adapter,
            classification=ctx.y.ndim == 1,
            y_labels=ctx.y_raw,
        )
        if scoring.estimator_scorer is not None:
            raise TypeError(
                "ConditionalUtilization needs a named scoring ('accuracy', 'loss', ...)"
            )
        # an input-mean ablation of an encode/fuse model runs on the embeddings:
        # the encoded mean input is a constant embedding row (exact)
        engine = self._engine(
            ctx,
            fast=ablation in ("mean", "zeros")
            or (ablation != "mmtm" and ctx.adapter.split),
            desc="conditional utilization",
            needs_index=False,
        )
        seed = resolve_seed(self.random_state) if self.n_bootstrap else None

        n_classes = None
        if self.per_class:
            if ctx.y.ndim != 1 or ctx.adapter.regression:
                raise ValueError(
                    "per_class needs one class per sample (a classifier); a "
                    "segmenter's rows hold pixels of many classes and a "
                    "regression model has none"
                )
            classes = ctx.adapter.classes
            n_classes = len(classes) if classes is not None else int(ctx.y.max()) + 1
        by_class: list[Any] = [None]
        per_target = scoring.finalize_outputs  # regression: each target's score
        target_sums: list[Any] = [None]

        def scores_of(perturbations: list[Perturbation]) -> tuple[Any, Any]:
            if self.n_bootstrap:
                scores, boot, by_class[0], target_sums[0] = bootstrap_scores(
                    engine,
                    perturbations,
                    scoring,
                    self.n_bootstrap,
                    seed,
                    n_classes,
                    return_sums=True,
                )
                return scores, boot
            if self.per_class:
                assert n_classes is not None  # set with per_class
                by_class[0] = class_sums(engine, perturbations, scoring, n_classes)
                sums = by_class[0].sum(axis=1)
                return np.array([scoring.finalize(t) for t in sums]), None
            if per_target is not None:  # the same model calls, summed once
                stat = make_stat(scoring.stat, engine.adapter)
                target_sums[0] = engine.evaluate(perturbations, stat).cpu().numpy()
                return np.array([scoring.finalize(t) for t in target_sums[0]]), None
            return evaluate_scores(engine, perturbations, scoring), None

        mmtm = ablation == "mmtm"
        if mmtm:
            averages = self._squeeze_averages(
                ctx.adapter.module, reference if reference is not None else ctx.X
            )
            perturbations = self._mmtm_perturbations(modalities, averages)
            scores, boot = scores_of(perturbations)
            score_full, score_ref, score_without = (
                float(scores[0]),
                scores[1::2],
                scores[2::2],
            )
            if boot is not None:
                boot_ref, boot_without = boot[:, 1::2], boot[:, 2::2]
        else:
            kind = {"zeros": "zeros", "mean": "mean", "input_mean": "mean_input"}[
                ablation
            ]
            perturbations = [Perturbation()] + [
                Perturbation({m: engine.baseline(m, kind, reference=reference)})
                for m in modalities
            ]
            scores, boot = scores_of(perturbations)
            score_full = float(scores[0])
            score_ref = np.full(len(modalities), score_full)
            score_without = scores[1:]
            if boot is not None:
                boot_ref = np.repeat(boot[:, :1], len(modalities), axis=1)
                boot_without = boot[:, 1:]
        rates = self._rates(score_ref, score_without, scoring.greater_is_better)
        boot_values = boot_shares = None
        if boot is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                boot_values = (
                    (boot_ref - boot_without) / boot_ref
                    if scoring.greater_is_better
                    else (boot_without - boot_ref) / boot_ref
                )
            boot_shares = normalize_rows(boot_values)
        target_rates = target_shares = None
        if per_target is not None and target_sums[0] is not None:
            per_t = np.array([per_target(t) for t in target_sums[0]])  # (P, T)
            if mmtm:
                ref_t, without_t = per_t[1::2], per_t[2::2]
            else:
                ref_t = np.repeat(per_t[:1], len(modalities), axis=0)
                without_t = per_t[1:]
            target_rates = self._rates(
                ref_t, without_t, scoring.greater_is_better
            ).T  # (T, M)
            target_shares = normalize_rows(target_rates)
        class_rates = class_shares = class_labels = None
        if by_class[0] is not None:
            sums = by_class[0]  # (P, C, K)
            per = np.array(
                [
                    [scoring.finalize(sums[p, c]) for c in range(sums.shape[1])]
                    for p in range(sums.shape[0])
                ]
            )  # (P, C)
            if mmtm:
                ref_c, without_c = per[1::2], per[2::2]
            else:
                ref_c, without_c = np.repeat(per[:1], len(modalities), axis=0), per[1:]
            with np.errstate(divide="ignore", invalid="ignore"):
                class_rates = (
                    (ref_c - without_c) / ref_c
                    if scoring.greater_is_better
                    else (without_c - ref_c) / ref_c
                ).T  # (C, M)
            class_shares = normalize_rows(class_rates)
            assert n_classes is not None  # per-class sums exist only with per_class
            classes = ctx.adapter.classes
            class_labels = (
                np.asarray(classes) if classes is not None else np.arange(n_classes)
            )
        return ConditionalExplanation(
            modalities=modalities,
            method="conditional",
            params={
                "ablation": ablation,
                "scoring": scoring.name,
                "reference": "given" if reference is not None else "explained data",
                "path": engine.path,
                "model_calls": engine.head_calls,
                "n_samples": len(ctx.X),
                "n_bootstrap": self.n_bootstrap,
                "bootstrap_seed": seed,
            },
            shares=normalize_shares(rates, what="conditional utilization"),
            score_full=score_full,
            score_without=np.asarray(score_without, dtype=float),
            score_reference=np.asarray(score_ref, dtype=float),
            rates=rates,
            d_util=float(rates[1] - rates[0]) if len(modalities) == 2 else None,
            scoring=scoring.name,
            bootstrap_values=boot_values,
            bootstrap_shares=boot_shares,
            class_rates=class_rates,
            class_shares=class_shares,
            classes=class_labels,
            target_rates=target_rates,
            target_shares=target_shares,
        )

    def _squeeze_averages(self, module: Any, X: Any) -> list[dict[str, torch.Tensor]]:
        """Per MMTM block, each modality's average squeeze vector over ``X``.

        Computed by the module (``squeeze_averages``) with its current weights
        in eval mode; its modes and buffers are left unchanged. ``X`` may be
        any row source (a Dataset, memmaps): it is streamed block by block,
        each block's averages weighted by its rows, and under
        ``torch.distributed`` each rank averages its share of the rows.
        """
        require(module, "squeeze_averages", "ablation='mmtm'", error=ValueError)
        source = as_source(X)
        step = auto_batch_size(
            self.batch_size, module_device(module), as_source(X).row_bytes()
        )
        device = module_device(module)

        def block_sums(
            rows: Mapping[str, torch.Tensor], sl: slice
        ) -> list[dict[str, torch.Tensor]]:
            w = float(sl.stop - sl.start)  # each block's averages weighted by its rows
            avg = module.squeeze_averages(rows, batch_size=step)
            return [{m: v.double() * w for m, v in a.items()} for a in avg]

        def zeros() -> list[dict[str, torch.Tensor]]:  # no rows on this rank
            first = source.take(slice(0, 1), device=device)
            return [
                {m: torch.zeros_like(v, dtype=torch.float64) for m, v in a.items()}
                for a in module.squeeze_averages(first, batch_size=1)
            ]

        totals = reduce_rows(
            source, block_sums, batch_size=step, device=device, empty=zeros
        )
        n = len(source)
        return [{m: (v / n).float() for m, v in t.items()} for t in totals]

    @staticmethod
    def _mmtm_perturbations(
        modalities: tuple[str, ...],
        averages: list[dict[str, torch.Tensor]],
    ) -> list[Perturbation]:
        """Full model, then per modality the other branches with and without it."""
        perturbations = [Perturbation()]
        for m in modalities:
            select = _other_branches(m)
            perturbations.append(Perturbation(output=select, context_key=("full", m)))

            def ablate(module: Any, m: str = m) -> Any:
                return module.ablating(m, squeeze=averages)

            perturbations.append(
                Perturbation(
                    context=ablate,
                    output=select,
                    context_key=("ablate", m),
                )
            )
        return perturbations

    @staticmethod
    def _rates(
        score_ref: np.ndarray, score_without: np.ndarray, greater_is_better: bool
    ) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if greater_is_better:
                rates = (score_ref - score_without) / score_ref
            else:
                rates = (score_without - score_ref) / score_ref
        rates = np.asarray(rates, dtype=float)
        if not np.all(np.isfinite(rates)):
            warnings.warn(
                "a reference score is 0, so some rates are undefined (NaN)",
                RuntimeWarning,
                stacklevel=4,
            )
        return rates
