"""Attribution regularization (seed 002, Yerramilli et al.)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch

from mmexplain.balancers.base import Balancer, check_target
from mmexplain.explainers.attribution import modality_attribution

__all__ = ["AttributionRegularizer"]


class AttributionRegularizer(Balancer):
    """Pull the gradient x input modality attribution toward a target ratio (AMR).

    Seed 002's regularizer: ``lambda * sum_m |a_m - r_m|`` where ``a_m`` is the
    batch-mean attribution share of modality ``m`` (grad x input at the
    encoder outputs, L2-pooled, normalized per sample; see
    :class:`~mmexplain.explainers.GradientModalityAttribution`) and ``r`` the
    target ratio. As in the paper it updates **only the fusion and classifier
    parameters**, through a second optimizer: the term is computed on
    detached embeddings (so no gradient reaches the encoders) and its
    gradients are applied by the balancer's own optimizer (same class as the
    estimator's, learning rate ``lr`` or the estimator's), while the task
    loss trains everything through the estimator's optimizer.

    Parameters
    ----------
    target : dict of str to float
        Target attribution ratio ``{modality: share}`` summing to 1
        (e.g. ``{'a': 0.5, 'b': 0.5}``).
    strength : float, default=1.0
        ``lambda``.
    lr : float or None, default=None
        Learning rate of the second optimizer (None: the estimator's ``lr``).

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import AttributionRegularizer
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(balancer=AttributionRegularizer({"a": 0.5, "b": 0.5}),
    ...                            max_epochs=2, random_state=0).fit(X, y)
    >>> sorted(clf.history[-1, "batch_attribution"])
    ['a', 'b']
    """

    requires = "a model with encode/fuse methods (e.g. LateFusionNet)"

    def __init__(
        self,
        target: dict[str, float] | None = None,
        strength: float = 1.0,
        lr: float | None = None,
    ) -> None:
        self.target = target
        self.strength = strength
        self.lr = lr

    def check_model(self, net: Any) -> None:
        module = net.module_
        if not (
            callable(getattr(module, "encode", None))
            and callable(getattr(module, "fuse", None))
        ):
            raise TypeError(
                f"AttributionRegularizer needs {self.requires}; {type(module).__name__} has none"
            )

    def on_train_begin(self, net: Any, X: Any, y: Any) -> None:
        if self.target is None:
            raise ValueError(
                "AttributionRegularizer needs target={modality: share} summing to 1"
            )
        modalities = tuple(X.keys())
        target = check_target(self.target, modalities)
        if not isinstance(self.strength, Real) or self.strength < 0:
            raise ValueError(f"strength must be a number >= 0, got {self.strength!r}")
        module = net.module_
        device = next(module.parameters()).device
        self.modalities_ = modalities
        self.target_ = torch.tensor([target[m] for m in modalities], device=device)
        # the fusion/classifier parameters: those the term reaches from detached embeddings
        encoder_ids = set()
        encoders = getattr(module, "encoders", None)
        if encoders is not None:
            encoder_ids = {id(p) for p in encoders.parameters()}
        self.head_params_ = [
            p
            for p in module.parameters()
            if p.requires_grad and id(p) not in encoder_ids
        ]
        if getattr(self, "optimizer_", None) is None:
            lr = float(self.lr) if self.lr is not None else float(net.lr)
            self.optimizer_ = net.optimizer(self.head_params_, lr=lr)

    def on_epoch_begin(self, net: Any, epoch: int, X: Any, y: Any) -> None:
        self.share_sum_ = torch.zeros(len(self.modalities_), dtype=torch.float64)
        self.steps_ = 0
        return None

    def forward(self, net: Any, X: dict[str, torch.Tensor]) -> torch.Tensor:
        module = net.module_
        Z = module.encode(**X)
        self.Z_ = {m: z.detach() for m, z in Z.items()}
        return module.fuse(**Z)

    def after_backward(self, net: Any, X: Any, y: torch.Tensor) -> None:
        module = net.module_
        Z = {m: z.requires_grad_(True) for m, z in self.Z_.items()}
        self.Z_ = None
        out = module.fuse(**Z)
        shares = modality_attribution(Z, out, create_graph=True)  # (B, M)
        valid = torch.isfinite(shares).all(dim=1)
        if not bool(valid.any()):
            return
        a = shares[valid].mean(dim=0)
        self.share_sum_ += a.detach().double().cpu()
        self.steps_ += 1
        term = float(self.strength) * (a - self.target_).abs().sum()
        grads = torch.autograd.grad(term, self.head_params_, allow_unused=True)
        # second optimizer: step with the regularizer's gradients only, then
        # restore the task gradients for the estimator's optimizer
        saved = [p.grad for p in self.head_params_]
        for p, g in zip(self.head_params_, grads):
            p.grad = None if g is None else g.detach()
        self.optimizer_.step()
        for p, g in zip(self.head_params_, saved):
            p.grad = g

    def on_epoch_end(self, net: Any, epoch: int) -> None:
        if self.steps_:
            mean = (100 * self.share_sum_ / self.steps_).tolist()
            net.history.record("batch_attribution", dict(zip(self.modalities_, mean)))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("Z_", None)
        return state
