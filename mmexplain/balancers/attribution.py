"""Attribution regularization (Yerramilli et al., 2024)."""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import Interval

from mmexplain.balancers.base import (
    Balancer,
    DeviceMean,
    check_target,
    detached,
    encode_fuse,
    modality_names,
)
from mmexplain.explainers.attribution import modality_attribution

__all__ = ["AttributionRegularizer"]


class AttributionRegularizer(Balancer):
    """Pull the gradient x input modality attribution toward a target ratio (AMR).

    The regularizer of Yerramilli et al. (2024): ``lambda * sum_m |a_m - r_m|`` where ``a_m`` is the
    batch-mean attribution share of modality ``m`` (grad x input at the
    encoder outputs, L2-pooled, normalized per sample; see
    :class:`~mmexplain.explainers.GradientModalityAttribution`) and ``r`` the
    target ratio. As in the paper it updates **only the fusion and classifier
    parameters**: the term is computed from *detached* embeddings, so its
    gradient reaches the fusion head and never the encoders, which are
    trained by the task loss alone.

    The paper restricts the update with a second optimizer over the head.
    Here the term's gradient is added to the head's gradients before the
    estimator's optimizer step, which has the same effect on which
    parameters move but keeps ``strength`` meaningful with adaptive
    optimizers such as Adam (a separate Adam stepping on the term alone
    ignores its scale).

    Parameters
    ----------
    target : dict of str to float
        Target attribution ratio ``{modality: share}`` summing to 1
        (e.g. ``{'a': 0.5, 'b': 0.5}``).
    strength : float, default=1.0
        ``lambda``.

    References
    ----------
    .. [Yerramilli2024] S. Yerramilli, J. S. Tamarapalli, J. Francis and E. Nyberg,
       "Attribution Regularization for Multimodal Paradigms", 2024.
       :arxiv:`2404.02359`

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

    requires = ("encode_fuse",)

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "target": [dict, None],
        "strength": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, target: dict[str, float] | None = None, strength: float = 1.0
    ) -> None:
        self.target = target
        self.strength = strength

    def fit_started(self, net: Any, *, X: Any, y: Any, **kwargs: Any) -> None:
        if self.target is None:
            raise ValueError(
                "AttributionRegularizer needs target={modality: share} summing to 1"
            )
        modalities = modality_names(X)
        target = check_target(self.target, modalities)
        device = next(net.module_.parameters()).device
        self.modalities_ = modalities
        self.target_ = torch.tensor([target[m] for m in modalities], device=device)

    def epoch_started(
        self, net: Any, *, epoch: int, X: Any, y: Any, **kwargs: Any
    ) -> None:
        self.share_mean_ = DeviceMean(len(self.modalities_), self.target_.device)
        return None

    def forward(
        self, net: Any, *, X: dict[str, torch.Tensor], **kwargs: Any
    ) -> torch.Tensor:
        logits, Z = encode_fuse(net.module_, X)
        self.Z_: dict[str, torch.Tensor] | None = detached(Z)
        return logits

    def penalty(
        self, net: Any, *, X: Any, y: torch.Tensor, y_pred: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor | None:
        assert self.Z_ is not None  # forward stored this batch's embeddings
        Z = {m: z.requires_grad_(True) for m, z in self.Z_.items()}
        self.Z_ = None
        shares = modality_attribution(
            Z,
            net.module_.fuse(**Z),
            create_graph=True,
            regression=getattr(net, "_task", None) == "regression",
        )  # (B, M): of the max logit, or of a regressor's prediction
        # samples whose attributions are all 0 are undefined (NaN): left out
        valid = torch.isfinite(shares).all(dim=1, keepdim=True)
        n_valid = valid.sum()
        a = torch.where(valid, shares, torch.zeros_like(shares)).sum(
            dim=0
        ) / n_valid.clamp_min(1)
        self.share_mean_.add(a, (n_valid > 0).double())
        if self.strength == 0:
            return None
        return float(self.strength) * (a - self.target_).abs().sum()

    def epoch_finished(self, net: Any, *, epoch: int, **kwargs: Any) -> None:
        mean = self.share_mean_.mean()
        if mean is not None:
            shares = [100 * v for v in mean]
            net.history.record("batch_attribution", dict(zip(self.modalities_, shares)))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("Z_", None)
        return state
