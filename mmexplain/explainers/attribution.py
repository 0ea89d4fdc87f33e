"""Gradient x input modality attribution (Yerramilli et al., 2024)."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from mmexplain.explainers.base import BaseModalityExplainer, ExplainContext
from mmexplain.modules.contract import require
from mmexplain.results import AttributionExplanation

__all__ = ["GradientModalityAttribution", "modality_alphas", "modality_attribution"]


def modality_alphas(
    Z: dict[str, torch.Tensor],
    out: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    create_graph: bool = False,
    ignore_index: int | None = None,
    regression: bool = False,
) -> torch.Tensor:
    """Per-sample modality attributions ``alpha`` (B, M), float64.

    ``alpha_m = || d s / d z_m * z_m ||_2`` with ``s`` the max logit (or the
    true-class logit when ``y`` is given; summed over pixels for per-pixel
    outputs). The products and their norms are computed in float64: for
    float32 (or narrower) embeddings and gradients neither can overflow
    (``|g z| < 2^256``, so its square and any sum of them stay far below
    float64's ``1.8e308``), where a float32 norm overflows once
    ``sum (g z)^2`` passes ``3.4e38``, e.g. for inputs of size ``1e20``. A
    non-finite ``alpha`` then means non-finite gradients (or float64
    embeddings beyond ``1e154``). With ``create_graph`` the result is
    differentiable.

    Parameters
    ----------
    Z : dict of str to Tensor
        Each modality's embeddings (or inputs), leaves that require grad.
    out : Tensor
        The model's logits on ``Z``, (B, C) or (B, C, H, W).
    y : Tensor or None, default=None
        Class indices: differentiate the true-class logit instead of the max.
    create_graph : bool, default=False
        Keep the graph of the gradients (for attribution regularization).
    ignore_index : int or None, default=None
        Pixels labelled so contribute nothing.
    regression : bool, default=False
        ``out`` are a regression model's predictions (B, T): differentiate
        the prediction (summed over the targets) instead of a logit; ``y``
        is not used.

    Returns
    -------
    Tensor
        (B, M) float64, modalities in the order of ``Z``.
    """
    if regression:
        sel = out.reshape(out.shape[0], -1).sum(dim=1)
    elif y is None:
        sel = out.max(dim=1).values
    else:
        # pixels labelled ignore_index contribute nothing (and are not gathered)
        valid = (
            torch.ones_like(y, dtype=torch.bool)
            if ignore_index is None
            else y != ignore_index
        )
        safe = torch.where(valid, y, torch.zeros_like(y))
        sel = out.gather(1, safe.unsqueeze(1)).squeeze(1) * valid
    sel = sel.reshape(sel.shape[0], -1).sum(dim=1)
    zs = list(Z.values())
    grads = torch.autograd.grad(
        sel.sum(), zs, create_graph=create_graph, allow_unused=True
    )
    # an input the model does not use has no gradient: zero attribution
    grads = tuple(torch.zeros_like(z) if g is None else g for g, z in zip(grads, zs))
    return torch.stack(
        [
            torch.linalg.vector_norm(
                (g.to(torch.float64) * z).reshape(z.shape[0], -1), dim=1
            )
            for g, z in zip(grads, zs)
        ],
        dim=1,
    )


def modality_attribution(
    Z: dict[str, torch.Tensor],
    out: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    create_graph: bool = False,
    ignore_index: int | None = None,
    regression: bool = False,
) -> torch.Tensor:
    """Per-sample modality attribution shares (B, M) from embeddings ``Z`` and logits ``out``.

    ``a_m = alpha_m / sum_j alpha_j`` with ``alpha`` from
    :func:`modality_alphas` (computed in float64, so it does not overflow
    for float32 embeddings); the shares have the embeddings' dtype. Samples
    whose alphas are all 0 get NaN, as do samples with non-finite gradients.
    With ``create_graph`` the result is differentiable (for attribution
    regularization).
    """
    alpha = modality_alphas(
        Z,
        out,
        y=y,
        create_graph=create_graph,
        ignore_index=ignore_index,
        regression=regression,
    )
    dtype = functools.reduce(torch.promote_types, (z.dtype for z in Z.values()))
    return (alpha / alpha.sum(dim=1, keepdim=True)).to(dtype)


class GradientModalityAttribution(BaseModalityExplainer):
    """Modality shares from gradient x input at the encoder outputs (Yerramilli et al., 2024).

    For each sample, ``alpha = d(max_c f(z)_c)/dz * z`` is computed at the
    encoder outputs ``z`` (the fusion head's inputs), L2-pooled per modality,
    and normalized to ``a_m = alpha_m / sum_j alpha_j``; the shares are the
    mean over samples (percent). Models without an ``encode``/``fuse`` split
    are attributed at their inputs instead (``level='input'``). The products
    and norms are computed in float64 (:func:`modality_alphas`), so large
    inputs cannot overflow them; gradients that overflow in the model itself
    are refused with a ``ValueError`` naming the modality.

    Parameters
    ----------
    output : {'max', 'true'}, default='max'
        Differentiate the largest logit (the paper) or the true-class logit
        (needs ``y``). For a regression model the prediction is
        differentiated (summed over the targets when there are several;
        recorded as ``params['output'] = 'prediction'``), and 'true' is
        refused.
    level : {'auto', 'embedding', 'input'}, default='auto'
        Where to attribute; 'auto' is 'embedding' when the model has
        ``encode``/``fuse``.
    batch_size : int or 'auto', default='auto'
        Rows per model call (with their gradients); ``'auto'`` is 1024 on the
        CPU and chosen from the free memory on a GPU (see
        :class:`PermutationModalityImportance`).
    device, target, show_progress :
        As in :class:`PermutationModalityImportance`.

    Attributes
    ----------
    explanation_, shares_ : set by :meth:`fit`.

    References
    ----------
    .. [Yerramilli2024] S. Yerramilli, J. S. Tamarapalli, J. Francis and E. Nyberg,
       "Attribution Regularization for Multimodal Paradigms", 2024.
       :arxiv:`2404.02359`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.explainers import GradientModalityAttribution
    >>> X, y = make_multimodal_classification(n_samples=300, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=10, random_state=0).fit(X, y)
    >>> expl = GradientModalityAttribution().explain(clf, X)
    >>> expl.sample_shares.shape
    (300, 2)
    """

    _headline = "shares_"
    _headline_field = "shares"
    _result_class = AttributionExplanation
    _cpu_batch_size = 1024
    # gradients keep every activation of the call alive: a smaller share
    _device_memory_fraction = 1 / 128

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
        return cls(show_progress=show_progress)

    def __init__(
        self,
        output: str = "max",
        level: str = "auto",
        batch_size: int | str = "auto",
        device: Any = None,
        target: dict[str, float] | None = None,
        show_progress: bool = False,
    ) -> None:
        self.output = output
        self.level = level
        self.batch_size = batch_size
        self.device = device
        self.target = target
        self.show_progress = show_progress

    _parameter_constraints: ClassVar[dict[str, list[Any] | str]] = {
        **BaseModalityExplainer._parameter_constraints,
        "output": [StrOptions({"max", "true"})],
        "level": [StrOptions({"auto", "embedding", "input"})],
    }

    def _needs_y(self) -> bool:
        return self.output == "true"

    def _explain(self, ctx: ExplainContext) -> AttributionExplanation:
        adapter, modalities = ctx.adapter, ctx.modalities
        level = self.level
        if level == "auto":
            level = "embedding" if adapter.split else "input"
        if level == "embedding":
            require(
                adapter.module, "encode_fuse", "level='embedding'", error=ValueError
            )
        regression = adapter.regression
        if regression and self.output == "true":
            raise ValueError(
                "output='true' differentiates the true-class logit, but the model is "
                "a regression model; the default output='max' differentiates its "
                "prediction"
            )
        if self.output == "max":  # y is not used: never checked or sent to the device
            ctx = dataclasses.replace(ctx, y=None)
        engine = self._engine(
            ctx,
            fast=level == "embedding",
            desc="gradient attribution",
            needs_index=False,
        )
        alpha = (
            engine.gradient_rows(
                lambda Z, out, y: modality_alphas(
                    Z,
                    out,
                    y=y if self.output == "true" else None,
                    ignore_index=adapter.ignore_index,
                    regression=regression,
                ),
                width=len(modalities),
            )
            .cpu()
            .numpy()
        )
        _check_alphas(alpha, modalities, level)
        with np.errstate(invalid="ignore"):  # all-zero rows: 0 / 0, undefined
            sample_shares = alpha / alpha.sum(axis=1, keepdims=True)
        valid = np.isfinite(sample_shares).all(axis=1)
        if valid.any():
            shares = 100.0 * sample_shares[valid].mean(axis=0)
        else:
            warnings.warn(
                "the gradient x input is 0 for every modality of every sample (the "
                "model's selected output does not change with its inputs here), so "
                "the attribution shares are undefined (NaN)",
                RuntimeWarning,
                stacklevel=3,
            )
            shares = np.full(len(modalities), np.nan)
        return AttributionExplanation(
            modalities=modalities,
            method="attribution",
            params={
                "output": "prediction" if regression else self.output,
                "level": level,
                "n_undefined": int((~valid).sum()),
            },
            shares=shares,
            sample_shares=sample_shares,
        )


def _check_alphas(alpha: np.ndarray, modalities: tuple[str, ...], level: str) -> None:
    """Refuse non-finite attributions (overflowed gradients), naming the modalities.

    They would make every share of their samples NaN (``inf / inf``), a
    number that says nothing.
    """
    bad = ~np.isfinite(alpha)
    if not bad.any():
        return
    which = [j for j in range(len(modalities)) if bad[:, j].any()]
    names = ", ".join(
        f"{modalities[j]!r} ({int(bad[:, j].sum())} of {len(alpha)} samples)"
        for j in which
    )
    where = "embeddings" if level == "embedding" else "inputs"
    raise ValueError(
        f"the gradient x input of modalit{'y' if len(which) == 1 else 'ies'} "
        f"{names} is not finite (inf or NaN) although the model's outputs are: the "
        f"gradients of its output with respect to the {where} overflowed the "
        "model's floating-point range (very large inputs or weights), so the "
        "attribution shares would be NaN; rescale the inputs (e.g. StandardScaler)"
    )
