"""Gradient x input modality attribution (seed 002, Yerramilli et al.)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmexplain.explainers._engine import _as_device_rows, eval_mode
from mmexplain.explainers.base import BaseModalityExplainer
from mmexplain.results import ModalityExplanation

__all__ = ["GradientModalityAttribution", "modality_attribution"]


def modality_attribution(
    Z: dict[str, torch.Tensor],
    out: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Per-sample modality attribution shares (B, M) from embeddings ``Z`` and logits ``out``.

    ``alpha_m = || d s / d z_m * z_m ||_2`` with ``s`` the max logit (or the
    true-class logit when ``y`` is given; summed over pixels for per-pixel
    outputs), then ``a_m = alpha_m / sum_j alpha_j``. Samples whose alphas are
    all 0 get NaN. With ``create_graph`` the result is differentiable (for
    attribution regularization).
    """
    if y is None:
        sel = out.max(dim=1).values
    else:
        sel = out.gather(1, y.unsqueeze(1)).squeeze(1)
    sel = sel.reshape(sel.shape[0], -1).sum(dim=1)
    zs = list(Z.values())
    grads = torch.autograd.grad(sel.sum(), zs, create_graph=create_graph)
    alpha = torch.stack(
        [(g * z).reshape(z.shape[0], -1).norm(dim=1) for g, z in zip(grads, zs)], dim=1
    )
    return alpha / alpha.sum(dim=1, keepdim=True)


class GradientModalityAttribution(BaseModalityExplainer):
    """Modality shares from gradient x input at the encoder outputs (seed 002).

    For each sample, ``alpha = d(max_c f(z)_c)/dz * z`` is computed at the
    encoder outputs ``z`` (the fusion head's inputs), L2-pooled per modality,
    and normalized to ``a_m = alpha_m / sum_j alpha_j``; the shares are the
    mean over samples (percent). Models without an ``encode``/``fuse`` split
    are attributed at their inputs instead (``level='input'``).

    Parameters
    ----------
    output : {'max', 'true'}, default='max'
        Differentiate the largest logit (the paper) or the true-class logit
        (needs ``y``).
    level : {'auto', 'embedding', 'input'}, default='auto'
        Where to attribute; 'auto' is 'embedding' when the model has
        ``encode``/``fuse``.
    batch_size : int, default=1024
    device, target, show_progress :
        As in :class:`PermutationModalityImportance`.

    Attributes
    ----------
    explanation_, shares_ : set by :meth:`fit`.

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

    def __init__(
        self,
        output: str = "max",
        level: str = "auto",
        batch_size: int = 1024,
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

    def explain(self, model: Any, X: Any, y: Any = None) -> ModalityExplanation:
        """Gradient x input modality shares of ``model`` on ``X`` (``y`` for output='true')."""
        if self.output not in ("max", "true"):
            raise ValueError(f"output must be 'max' or 'true', got {self.output!r}")
        if self.level not in ("auto", "embedding", "input"):
            raise ValueError(
                f"level must be 'auto', 'embedding' or 'input', got {self.level!r}"
            )
        adapter, Xv, y_idx, _ = self._prepare(model, X, y, need_y=self.output == "true")
        modalities = Xv.modalities
        self._check_target_param(self.target, modalities)
        level = self.level
        if level == "auto":
            level = "embedding" if adapter.split else "input"
        if level == "embedding" and not adapter.split:
            raise ValueError(
                f"level='embedding' needs a model with encode/fuse; {type(adapter.module).__name__} has none"
            )
        n, dev = len(Xv), adapter.device
        y_t = None if y_idx is None else torch.as_tensor(y_idx).to(dev)
        parts = []
        blocks = range(0, n, int(self.batch_size))
        if self.show_progress:
            from tqdm.auto import tqdm

            blocks = tqdm(blocks, desc="gradient attribution", leave=False)
        with eval_mode(adapter.module):
            for start in blocks:
                sl = slice(start, min(start + int(self.batch_size), n))
                Xb = {m: _as_device_rows(Xv[m], sl, dev) for m in modalities}
                if level == "embedding":
                    with torch.no_grad():
                        Z = adapter.encode(Xb)
                    Z = {m: Z[m].detach().requires_grad_(True) for m in modalities}
                    with torch.enable_grad():
                        out = adapter.head(Z)
                        a = modality_attribution(
                            Z,
                            out,
                            y=None if y_t is None or self.output == "max" else y_t[sl],
                        )
                else:
                    Z = {m: Xb[m].requires_grad_(True) for m in modalities}
                    with torch.enable_grad():
                        out = adapter.forward(Z)
                        a = modality_attribution(
                            Z,
                            out,
                            y=None if y_t is None or self.output == "max" else y_t[sl],
                        )
                parts.append(a.detach().double().cpu().numpy())
        sample_shares = np.concatenate(parts)
        valid = np.isfinite(sample_shares).all(axis=1)
        shares = (
            100.0 * sample_shares[valid].mean(axis=0)
            if valid.any()
            else np.full(len(modalities), np.nan)
        )
        return ModalityExplanation(
            modalities=modalities,
            method="attribution",
            params={
                "output": self.output,
                "level": level,
                "n_samples": n,
                "n_undefined": int((~valid).sum()),
                "batch_size": self.batch_size,
            },
            shares=shares,
            sample_shares=sample_shares,
        )
