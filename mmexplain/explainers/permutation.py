"""Permutation modality utilization (Singh et al., 2023, Algorithm 1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions

from mmexplain.data import permute_rows, take_rows
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
from mmexplain.results import PermutationExplanation
from mmexplain.statistics import normalize_rows, resolve_seed

__all__ = ["PermutationModalityImportance"]


class PermutationModalityImportance(BaseModalityExplainer):
    """Modality utilization by whole-set permutation (Singh et al., 2023, Algorithm 1).

    For each modality ``i`` the rows of ``X[i]`` are permuted across the whole
    evaluation set (one shared row permutation for all of the modality's
    tensor), the other modalities are kept, and the model is scored again:
    ``MU_i = L_i - L_test`` for a loss (``score_test - score_i`` for a
    higher-is-better score), repeated with ``n_repeats`` permutations.
    Utilization (percent) is ``100 * MU_i / sum_j MU_j`` over the mean MU,
    with negative MU counted as 0 (a modality whose permutation *lowers* the
    loss is not used); if no modality has positive MU the utilization is NaN
    and a ``RuntimeWarning`` is emitted.

    For models with ``encode``/``fuse`` (e.g. :class:`~mmexplain.LateFusionNet`)
    each modality is encoded once and the permutations are applied to the
    embeddings, so only the fusion head runs ``1 + M * n_repeats`` times: the
    same numbers as full forward passes, at a fraction of the cost.

    Parameters
    ----------
    n_repeats : int, default=5
        Permutations of the rows; each one is applied to every modality in
        turn (one modality permuted per evaluation).
    scoring : str or callable, default='loss'
        'loss' (the model's criterion; per-pixel for segmenters), 'accuracy',
        'miou' (segmentation), a scikit-learn classification scorer name, or a
        callable ``scorer(estimator, X, y)`` (runs the estimator on permuted
        copies, without the fast path).
    random_state : int, RandomState or None, default=None
        Seeds the permutations: ``n_repeats`` draws ``rng.permutation(N)``,
        repeat ``r``'s shared by every modality (as scikit-learn's
        ``permutation_importance`` shares them across features; see
        doc/methods.md), after the optional ``max_samples`` subsample
        (``rng.choice(N, k, replace=False)``).
    max_samples : int, float or None, default=None
        Evaluate on a random subset: a count, or a fraction of N.
    batch_size : int or 'auto', default='auto'
        Rows per model call; memory stays bounded for any N. ``'auto'`` is
        4096 on the CPU and, on a GPU, the largest power of two (at most
        262144) whose rows fit comfortably in the memory free on it (a GPU is
        busy only with large calls); the value used is in the result's
        ``params['batch_size']``.
    device : str or None, default=None
        None runs on the model's device. Another device works on a copy.
    target : dict or None, default=None
        Target shares ``{modality: share}`` (sum 1) for :meth:`score`;
        None is uniform.
    show_progress : bool, default=False
        tqdm progress bar.
    fast : bool or 'auto', default='auto'
        Use the embedding cache for encode/fuse models ('auto': unless the
        cache would be larger than the inputs and 1 GiB); False forces full
        forward passes.
    loss_fn : callable or None, default=None
        Loss for ``scoring='loss'`` when the model is a plain ``nn.Module``
        (default cross-entropy); ignored for fitted estimators, which use
        their criterion.
    class_index : int or None, default=None
        Explain one class, like captum's ``target``: the index of a model
        output (for a :class:`~mmexplain.MultimodalClassifier`, the class
        ``classes_[class_index]``). Then ``MU_i`` is the mean absolute change
        of that output over the samples (pixels) when modality ``i`` is
        permuted, ``y`` is not needed and ``scoring`` is not used;
        ``baseline_score`` is the output's mean on the unpermuted data. The
        *absolute* change, because a whole-set permutation keeps each
        modality's distribution, so the signed mean of a class output barely
        moves even for a modality the model relies on.
    class_output : {'probability', 'logit'}, default='probability'
        With ``class_index``: explain the class probability (softmax over the
        outputs) or the raw output (logit).
    n_bootstrap : int, default=0
        Bootstrap resamples of the explained rows (e.g. 1000) for the
        result's :meth:`~mmexplain.ModalityExplanation.confidence_interval`
        and :meth:`~mmexplain.ModalityExplanation.p_values`: every
        perturbation's per-row statistics are kept (memory: (1 + M x
        n_repeats) x N x 2 floats) and resampled, with no extra model call.
        The permutations stay fixed; the resamples are seeded by
        ``random_state`` (see :mod:`mmexplain.statistics`). Needs a scoring
        that adds up over rows ('loss', 'accuracy').
    per_class : bool, default=False
        Also the utilization within each class (classifiers): the same
        permutations and model calls, their per-row statistics summed per
        true class, give ``class_importances`` (C, M: the score change on
        that class's samples) and ``class_shares`` (percent per class).
        Needs a scoring that adds up over rows ('loss', 'accuracy').

    Attributes
    ----------
    explanation_ : ModalityExplanation
        Set by :meth:`fit`.
    utilization_ : ndarray of shape (M,)
        Utilization in percent, set by :meth:`fit`.

    References
    ----------
    .. [Singh2023] S. Singh, P. P. Markopoulos, E. Saber, J. D. Lew and J. Heard,
       "Measuring Modality Utilization in Multi-Modal Neural Networks", IEEE
       Conference on Artificial Intelligence (CAI), 2023, pp. 11-14.
       :doi:`10.1109/CAI54212.2023.00014`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import PermutationModalityImportance
    >>> X, y = make_multimodal_classification(n_samples=300, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=10, random_state=0).fit(X, y)
    >>> expl = PermutationModalityImportance(n_repeats=3, random_state=0).explain(clf, X, y)
    >>> round(float(expl.utilization.sum()), 6)
    100.0
    """

    _headline = "utilization_"
    _headline_field = "shares"
    _result_class = PermutationExplanation

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
        return cls(
            n_repeats=n_repeats,
            scoring="loss",
            random_state=random_state,
            show_progress=show_progress,
        )

    def __init__(
        self,
        n_repeats: int = 5,
        scoring: Any = "loss",
        random_state: Any = None,
        max_samples: int | float | None = None,
        batch_size: int | str = "auto",
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
        fast: bool | str = "auto",
        loss_fn: Any = None,
        class_index: int | None = None,
        class_output: str = "probability",
        n_bootstrap: int = 0,
        per_class: bool = False,
    ) -> None:
        self.n_repeats = n_repeats
        self.scoring = scoring
        self.random_state = random_state
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.device = device
        self.target = target
        self.show_progress = show_progress
        self.fast = fast
        self.loss_fn = loss_fn
        self.class_index = class_index
        self.class_output = class_output
        self.n_bootstrap = n_bootstrap
        self.per_class = per_class

    _parameter_constraints: ClassVar[dict[str, list[Any] | str]] = {
        **BaseModalityExplainer._parameter_constraints,
        "n_repeats": [Interval(Integral, 1, None, closed="left")],
        "scoring": [str, callable],
        "random_state": ["random_state"],
        "max_samples": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
            None,
        ],
        "fast": ["boolean", StrOptions({"auto"})],
        "loss_fn": [callable, None],
        "class_index": [Interval(Integral, 0, None, closed="left"), None],
        "class_output": [StrOptions({"probability", "logit"})],
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        "per_class": ["boolean"],
    }

    def _needs_y(self) -> bool:
        return self.class_index is None

    def _explain(self, ctx: ExplainContext) -> PermutationExplanation:
        Xv, y_idx, y_raw = ctx.X, ctx.y, ctx.y_raw
        modalities = ctx.modalities
        rng = check_random_state(self.random_state)
        if self.max_samples is not None:
            rows = rng.choice(len(Xv), self._n_subsample(len(Xv)), replace=False)
            Xv = take_rows(Xv, rows) if isinstance(Xv, Mapping) else Xv.subset(rows)
            if y_idx is not None:
                y_idx, y_raw = y_idx[rows], np.asarray(y_raw)[rows]
        ctx = dataclasses.replace(ctx, X=Xv, y=y_idx, y_raw=y_raw)
        n = len(Xv)
        # int32 halves the memory of the M x n_repeats x N plan (same draws)
        index_dtype = np.int32 if n < 2**31 else np.int64
        # one permutation per repeat, shared by the modalities (each evaluation
        # permutes one modality only, so this is still Algorithm 1): R draws of
        # N rows instead of M * R, and one index upload per repeat and block
        shared = [rng.permutation(n).astype(index_dtype) for _ in range(self.n_repeats)]
        perms = [shared for _ in modalities]
        regression = ctx.adapter.regression
        # (without class_index y_idx is set: _needs_y; with it, y may be absent)
        if self.per_class and (regression or (y_idx is not None and y_idx.ndim != 1)):
            raise ValueError(
                "per_class needs one class per sample (a classifier); a segmenter's "
                "rows hold pixels of many classes and a regression model has none"
            )
        if self.class_index is not None and regression:
            raise ValueError(
                "class_index is for classifiers; a regression model's importances "
                "of each target are in the result's target_importances"
            )
        if self.class_index is not None:
            if self.per_class:
                raise ValueError("per_class and class_index cannot be combined")
            if self.n_bootstrap:
                raise ValueError(
                    "n_bootstrap is not available with class_index (the class "
                    "output's absolute change is not resampled); use n_bootstrap=0"
                )
            return self._explain_class(ctx, perms)
        assert y_idx is not None  # no class_index: explain required y (_needs_y)
        scoring = resolve_scoring(
            self.scoring, ctx.adapter, classification=y_idx.ndim == 1, y_labels=y_raw
        )
        boot_values = boot_shares = seed = by_class = sums = None
        n_classes = self._n_classes(ctx) if self.per_class else None
        if scoring.estimator_scorer is not None:
            if self.n_bootstrap or self.per_class:
                raise ValueError(
                    "n_bootstrap and per_class need a named scoring ('loss', "
                    "'accuracy'): a callable scorer(estimator, X, y) is not "
                    "additive over rows"
                )
            base, permuted = self._scorer_importances(ctx, scoring, perms)
            path, calls = "estimator", None
        else:
            engine = self._engine(ctx, fast=self.fast, desc="permutation importance")
            perturbations = [Perturbation()] + [
                Perturbation({m: perms[i][r]})
                for i, m in enumerate(modalities)
                for r in range(self.n_repeats)
            ]
            if self.n_bootstrap:
                seed = resolve_seed(self.random_state)
                scores, boot, by_class, sums = bootstrap_scores(
                    engine,
                    perturbations,
                    scoring,
                    self.n_bootstrap,
                    seed,
                    n_classes,
                    return_sums=True,
                )
                boot_permuted = boot[:, 1:].reshape(
                    len(boot), len(modalities), self.n_repeats
                )
                diff = (
                    boot[:, :1, None] - boot_permuted
                    if scoring.greater_is_better
                    else boot_permuted - boot[:, :1, None]
                )
                boot_values = diff.mean(axis=2)
                boot_shares = normalize_rows(boot_values)
            elif self.per_class:
                assert n_classes is not None  # set with per_class
                by_class = class_sums(engine, perturbations, scoring, n_classes)
                scores = np.array([scoring.finalize(s) for s in by_class.sum(axis=1)])
            elif scoring.finalize_outputs is not None:  # regression: per target too
                stat = make_stat(scoring.stat, engine.adapter)
                sums = engine.evaluate(perturbations, stat).cpu().numpy()
                scores = np.array([scoring.finalize(t) for t in sums])
            else:
                scores = evaluate_scores(engine, perturbations, scoring)
            base = float(scores[0])
            permuted = scores[1:].reshape(len(modalities), self.n_repeats)
            path, calls = engine.path, engine.head_calls
        importances = (
            (base - permuted) if scoring.greater_is_better else (permuted - base)
        )
        mean = importances.mean(axis=1)
        target_importances = target_shares = None
        if sums is not None and scoring.finalize_outputs is not None:
            per_target = np.array([scoring.finalize_outputs(t) for t in sums])  # (K, T)
            permuted_t = per_target[1:].reshape(len(modalities), self.n_repeats, -1)
            change = (
                per_target[0] - permuted_t
                if scoring.greater_is_better
                else permuted_t - per_target[0]
            )
            target_importances = change.mean(axis=1).T  # (T, M)
            target_shares = normalize_rows(target_importances)
        class_importances = class_shares = classes = None
        if by_class is not None:
            assert n_classes is not None  # per-class sums exist only with per_class
            class_importances = self._class_importances(by_class, scoring, modalities)
            class_shares = normalize_rows(class_importances)
            classes = self._class_labels(ctx, n_classes)
        return PermutationExplanation(
            modalities=modalities,
            method="permutation",
            params={
                "scoring": scoring.name,
                "n_repeats": self.n_repeats,
                "random_state": self.random_state,
                "max_samples": self.max_samples,
                "n_samples": n,
                "path": path,
                "model_calls": calls,
                "n_bootstrap": self.n_bootstrap,
                "bootstrap_seed": seed,
            },
            shares=normalize_shares(mean, what="utilization"),
            importances=importances,
            importances_mean=mean,
            importances_std=importances.std(axis=1),
            baseline_score=base,
            scoring=scoring.name,
            bootstrap_values=boot_values,
            bootstrap_shares=boot_shares,
            class_importances=class_importances,
            class_shares=class_shares,
            classes=classes,
            target_importances=target_importances,
            target_shares=target_shares,
        )

    @staticmethod
    def _n_classes(ctx: ExplainContext) -> int:
        classes = ctx.adapter.classes
        if classes is not None:
            return len(classes)
        y = ctx.y
        assert y is not None  # per_class: explain required y
        return int(np.max(y)) + 1 if len(y) else 0

    @staticmethod
    def _class_labels(ctx: ExplainContext, n_classes: int) -> np.ndarray:
        classes = ctx.adapter.classes
        return np.asarray(classes) if classes is not None else np.arange(n_classes)

    def _class_importances(
        self, by_class: np.ndarray, scoring: Any, modalities: tuple[str, ...]
    ) -> np.ndarray:
        """(C, M) mean score change per class from the per-class sums (P, C, K)."""
        n_p, n_c, _ = by_class.shape
        scores = np.array(
            [[scoring.finalize(by_class[p, c]) for c in range(n_c)] for p in range(n_p)]
        )  # (P, C); NaN for a class without samples
        permuted = scores[1:].reshape(len(modalities), self.n_repeats, n_c)
        diff = (
            scores[0][None, None] - permuted
            if scoring.greater_is_better
            else permuted - scores[0][None, None]
        )
        return diff.mean(axis=1).T  # (C, M)

    @staticmethod
    def _scorer_importances(
        ctx: ExplainContext, scoring: Any, perms: list[list[np.ndarray]]
    ) -> tuple[float, np.ndarray]:
        """Scores of a callable ``scorer(estimator, X, y)`` on permuted copies."""
        if ctx.adapter.net is None:
            raise TypeError(
                "a callable scoring(estimator, X, y) needs a fitted estimator as model"
            )
        # ctx.model is what ctx.X is fed to: a pipeline's last step on the
        # transformed inputs (permuting them equals transforming permuted inputs)
        if not isinstance(ctx.X, Mapping):
            raise TypeError(
                "a callable scoring(estimator, X, y) runs the estimator on permuted "
                "copies of X, which needs X in memory (a mapping of arrays); use a "
                "named scoring ('loss', 'accuracy', ...) for a Dataset"
            )
        score = scoring.estimator_scorer
        base = float(score(ctx.model, ctx.X, ctx.y_raw))
        permuted = np.array(
            [
                [
                    float(score(ctx.model, permute_rows(ctx.X, m, p), ctx.y_raw))
                    for p in ps
                ]
                for m, ps in zip(ctx.modalities, perms)
            ]
        )
        return base, permuted

    def _explain_class(
        self, ctx: ExplainContext, perms: list[list[np.ndarray]]
    ) -> PermutationExplanation:
        """``class_index``: mean absolute change of one class output per permutation."""
        assert self.class_index is not None  # called for class_index only
        modalities, n, c = ctx.modalities, len(ctx.X), int(self.class_index)
        probability = self.class_output == "probability"

        def stat(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if c >= logits.shape[1]:
                raise ValueError(
                    f"class_index={c} but the model outputs {logits.shape[1]} classes "
                    f"(indices 0..{logits.shape[1] - 1})"
                )
            out = (
                torch.softmax(logits.float(), dim=1) if probability else logits.float()
            )
            return out[:, c].reshape(out.shape[0], -1)

        # the engine's statistics take targets; the class output needs none
        ctx = dataclasses.replace(ctx, y=np.zeros(n, dtype=np.int64))
        engine = self._engine(ctx, fast=self.fast, desc="permutation importance")
        perturbations = [Perturbation()] + [
            Perturbation({m: perms[i][r]})
            for i, m in enumerate(modalities)
            for r in range(self.n_repeats)
        ]
        dev = engine.device

        def fold(acc: list, sl: slice, st: torch.Tensor) -> list:
            st = st.double()
            change, total = acc
            change = change + (st[1:] - st[:1]).abs().sum(dim=(1, 2))
            count = st.new_tensor(float(st[0].numel()))  # on the device: no sync
            return [change, total + torch.stack([st[0].sum(), count])]

        init = [
            torch.zeros(len(perturbations) - 1, dtype=torch.float64, device=dev),
            torch.zeros(2, dtype=torch.float64, device=dev),
        ]
        change, total = (
            t.cpu() for t in engine.reduce_blocks(perturbations, stat, fold, init)
        )
        importances = (change / total[1]).numpy().reshape(len(modalities), -1)
        mean = importances.mean(axis=1)
        name = f"class {c} {self.class_output}"
        return PermutationExplanation(
            modalities=modalities,
            method="permutation",
            params={
                "scoring": name,
                "class_index": c,
                "class_output": self.class_output,
                "n_repeats": self.n_repeats,
                "random_state": self.random_state,
                "max_samples": self.max_samples,
                "n_samples": n,
                "path": engine.path,
                "model_calls": engine.head_calls,
            },
            shares=normalize_shares(mean, what="utilization"),
            importances=importances,
            importances_mean=mean,
            importances_std=importances.std(axis=1),
            baseline_score=float(total[0] / total[1]),
            scoring=name,
        )

    def _n_subsample(self, n: int) -> int:
        ms = self.max_samples
        if isinstance(ms, Integral) and not isinstance(ms, bool):
            if not 1 <= ms <= n:
                raise ValueError(f"max_samples={ms} must be in [1, {n}]")
            return int(ms)
        if isinstance(ms, Real) and 0 < ms <= 1:
            return max(1, int(round(ms * n)))
        raise ValueError(
            f"max_samples must be an int in [1, N] or a float in (0, 1], got {ms!r}"
        )
