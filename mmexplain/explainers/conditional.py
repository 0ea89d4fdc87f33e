"""Conditional utilization rates (seed 003, Wu et al. 2022)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmexplain.explainers._engine import EvaluationEngine, Perturbation
from mmexplain.explainers.base import (
    BaseModalityExplainer,
    evaluate_scores,
    normalize_shares,
    resolve_scoring,
)
from mmexplain.results import ModalityExplanation

__all__ = ["ConditionalUtilization"]

_ABLATIONS = ("auto", "mean", "zeros", "mmtm", "input_mean")


def _other_branches(modality: str):
    """Output selector: mean logits of every branch except ``modality``'s."""

    def select(module: Any, logits: torch.Tensor) -> torch.Tensor:
        branches = module.branch_logits
        others = [v for k, v in branches.items() if k != modality]
        return torch.stack(others).mean(dim=0)

    return select


class ConditionalUtilization(BaseModalityExplainer):
    """How much each modality adds given the others: u(m | rest) (seed 003).

    ``u(m | rest) = (A(all) - A(rest)) / A(all)``, the relative score lost
    when modality ``m``'s sample-specific information is removed (``A`` is
    accuracy by default). For two modalities ``m0, m1``, ``rates`` holds
    ``[u(m0 | m1), u(m1 | m0)]`` and ``d_util = u(m1 | m0) - u(m0 | m1)``.
    ``u`` can be negative, so ``d_util`` is not bounded to [-1, 1]. For a
    loss (``scoring='loss'``) the rate is the relative loss *increase*.

    How a modality is removed (``ablation``, recorded in the result):

    - ``'mmtm'`` (:class:`~mmexplain.MMTMNet`, the paper's derivation): in
      every MMTM block the removed modality's squeeze vector is replaced by its
      training-split average (the running average the model accumulates while
      it trains), and the score is that of the *other* branches' heads, so
      ``u(m1 | m0)`` compares branch m0's head with and without m1's
      information. ``score_reference`` holds those branches' full scores.
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
        Data whose mean replaces a removed modality; None uses the data being
        explained. The paper uses the training split: ``reference=X_train``.
    scoring : str, default='accuracy'
        'accuracy', 'loss', 'miou' or a scikit-learn scorer name.
    batch_size, device, show_progress, loss_fn :
        As in :class:`PermutationModalityImportance`.
    target : dict or None
        Unused by :meth:`score` (kept for a uniform API); see below.

    Notes
    -----
    :meth:`score` returns ``-(max(rates) - min(rates))``, i.e. ``-abs(d_util)``
    for two modalities: 0 when every modality adds the same.

    Attributes
    ----------
    explanation_, rates_ : set by :meth:`fit`.

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

    def __init__(
        self,
        ablation: str = "auto",
        reference: Any = None,
        scoring: str = "accuracy",
        batch_size: int = 4096,
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
        loss_fn: Any = None,
    ) -> None:
        self.ablation = ablation
        self.reference = reference
        self.scoring = scoring
        self.batch_size = batch_size
        self.device = device
        self.target = target
        self.show_progress = show_progress
        self.loss_fn = loss_fn

    def _score_explanation(self, expl: ModalityExplanation) -> float:
        rates = np.asarray(expl.rates, dtype=float)
        if not np.all(np.isfinite(rates)):
            return float("nan")
        return -float(rates.max() - rates.min())

    def explain(self, model: Any, X: Any, y: Any = None) -> ModalityExplanation:
        """Conditional utilization rate of each modality of ``model`` on ``(X, y)``."""
        if self.ablation not in _ABLATIONS:
            raise ValueError(
                f"ablation must be one of {_ABLATIONS}, got {self.ablation!r}"
            )
        adapter, Xv, y_idx, y_raw = self._prepare(model, X, y)
        modalities = Xv.modalities
        if len(modalities) < 2:
            raise ValueError("conditional utilization needs at least two modalities")
        ablation = self.ablation
        if ablation == "auto":
            ablation = (
                "mmtm"
                if adapter.is_mmtm
                else ("mean" if adapter.split else "input_mean")
            )
        if ablation == "mmtm" and not adapter.is_mmtm:
            raise ValueError(
                "ablation='mmtm' needs an MMTM model (with an `ablating` method, e.g. MMTMNet)"
            )
        if ablation in ("mean", "zeros") and not adapter.split:
            raise ValueError(
                f"ablation={ablation!r} replaces embeddings and needs a model with encode/fuse "
                f"methods; {type(adapter.module).__name__} has none: use ablation='input_mean'"
            )
        reference = self.reference
        if isinstance(reference, tuple):
            reference = reference[0]
        if reference is not None:
            if not isinstance(reference, Mapping):
                raise TypeError(
                    "reference must be a mapping {modality: array} or a tuple (X_ref, y_ref)"
                )
            reference = adapter.check_X(reference)
        if ablation == "mmtm" and reference is not None:
            warnings.warn(
                "ablation='mmtm' uses the squeeze averages the model accumulated on its "
                "training split; reference is ignored",
                UserWarning,
                stacklevel=2,
            )

        scoring = resolve_scoring(
            self.scoring, adapter, classification=y_idx.ndim == 1, y_labels=y_raw
        )
        if scoring.estimator_scorer is not None:
            raise TypeError(
                "ConditionalUtilization needs a named scoring ('accuracy', 'loss', ...)"
            )
        engine = EvaluationEngine(
            adapter,
            Xv,
            y_idx,
            batch_size=self.batch_size,
            fast=ablation in ("mean", "zeros"),
            show_progress=self.show_progress,
            desc="conditional utilization",
        )
        if ablation == "mmtm":
            perturbations = [Perturbation()]
            for m in modalities:
                select = _other_branches(m)
                perturbations.append(
                    Perturbation(output=select, context_key=("full", m))
                )
                perturbations.append(
                    Perturbation(
                        context=lambda module, m=m: module.ablating(m),
                        output=select,
                        context_key=("ablate", m),
                    )
                )
            scores = evaluate_scores(engine, perturbations, scoring)
            score_full = float(scores[0])
            score_ref = scores[1::2]
            score_without = scores[2::2]
        else:
            kind = "zeros" if ablation == "zeros" else "mean"
            perturbations = [Perturbation()] + [
                Perturbation({m: engine.baseline(m, kind, reference=reference)})
                for m in modalities
            ]
            scores = evaluate_scores(engine, perturbations, scoring)
            score_full = float(scores[0])
            score_ref = np.full(len(modalities), score_full)
            score_without = scores[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            if scoring.greater_is_better:
                rates = (score_ref - score_without) / score_ref
            else:
                rates = (score_without - score_ref) / score_ref
        if not np.all(np.isfinite(rates)):
            warnings.warn(
                "a reference score is 0, so some rates are undefined (NaN)",
                RuntimeWarning,
                stacklevel=2,
            )
        d_util = float(rates[1] - rates[0]) if len(modalities) == 2 else None
        return ModalityExplanation(
            modalities=modalities,
            method="conditional",
            params={
                "ablation": ablation,
                "scoring": scoring.name,
                "reference": "given"
                if reference is not None
                else (
                    "training-split average" if ablation == "mmtm" else "explained data"
                ),
                "path": engine.path,
                "model_calls": engine.head_calls,
                "batch_size": self.batch_size,
            },
            shares=normalize_shares(rates, what="conditional utilization"),
            score_full=score_full,
            score_without=np.asarray(score_without, dtype=float),
            score_reference=np.asarray(score_ref, dtype=float),
            rates=np.asarray(rates, dtype=float),
            d_util=d_util,
            scoring=scoring.name,
        )
