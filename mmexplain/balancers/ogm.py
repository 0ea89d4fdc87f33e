"""OGM-GE: on-the-fly gradient modulation with generalization enhancement (Peng et al. 2022)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from mmexplain._core.distributed import all_reduce_sum
from mmexplain.balancers.base import Balancer, DeviceMean, detached, encode_fuse
from mmexplain.modules.contract import encoder_parameters

__all__ = [
    "ADAPTIVE_OPTIMIZERS",
    "OGMGE",
    "encoder_parameters",
    "is_adaptive_optimizer",
]  # encoder_parameters: re-exported from the contract

#: torch optimizers whose step is (largely) invariant to a rescaling of the
#: gradient: per-parameter normalization by running gradient moments (Adam
#: family, RMSprop, Adagrad, Adadelta, Adafactor), signs (Rprop) or
#: orthogonalized updates (Muon). Those present in the installed torch.
ADAPTIVE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = tuple(
    getattr(torch.optim, name)
    for name in (
        "Adam",
        "AdamW",
        "Adamax",
        "NAdam",
        "RAdam",
        "SparseAdam",
        "Adafactor",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Rprop",
        "Muon",
    )
    if hasattr(torch.optim, name)
)


def is_adaptive_optimizer(optimizer: Any) -> bool:
    """Whether ``optimizer`` (an instance or a class) rescales gradients away.

    True for the classes in :data:`ADAPTIVE_OPTIMIZERS` and their subclasses.
    """
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    return issubclass(cls, ADAPTIVE_OPTIMIZERS)


class OGMGE(Balancer):
    """On-the-fly gradient modulation with generalization enhancement (OGM-GE).

    For a late-fusion model whose head is one linear layer over the
    concatenated embeddings, ``W = [W_1, ..., W_M]`` and bias ``b``, the
    uni-modal logits of a training batch are ``out_m = z_m W_m^T + b / M`` and
    ``s_m = sum_batch softmax(out_m)[y]`` measures how well modality ``m``
    alone fits the batch. With ``rho_m = s_m / mean_{j != m} s_j`` (for two
    modalities ``rho_a = s_a / s_v`` exactly as in the paper), the encoder
    gradients of every modality with ``rho_m > 1`` are scaled by
    ``1 - tanh(alpha * rho_m)``, the others by 1, between backward and the
    optimizer step. With ``noise=True`` (GE) Gaussian noise with the standard
    deviation of each original gradient tensor is added to the encoder
    gradients of every modality, as the official code does.

    **Regression** (:class:`~mmexplain.MultimodalRegressor`, an adaptation,
    not in the paper): ``s_m = sum_batch mean_t exp(-(y_t - out_{m,t})^2 / 2)``,
    the likelihood of the true targets under a unit-variance Gaussian
    centred on modality ``m``'s outputs, in place of the true-class
    probability. It assumes standardized targets (e.g.
    ``TransformedTargetRegressor`` with a ``StandardScaler``).

    Unlike the official code, encoder parameters are found structurally
    (``module.encoders[m]``), never by parameter name, and all of an encoder's
    parameters are modulated, not only its 4-D conv kernels.

    **Use SGD, as the paper does.** Peng et al. (2022) train with SGD
    (momentum 0.9), where an encoder's movement is proportional to its
    gradient, so scaling the gradient by ``k`` slows the modality about
    ``k``-fold. An adaptive optimizer (Adam, AdamW, RMSprop, Adagrad, ...)
    divides each gradient by a running estimate of its own magnitude and
    largely cancels the modulation: in our measurement (doc/methods.md),
    scaling the dominant modality's gradients to about 1% (``alpha=2``) left
    its encoder moving 4-8% as far as without modulation under SGD, but
    72-97% as far under Adam. The estimators default to Adam, so pass
    ``optimizer=torch.optim.SGD, optimizer__momentum=0.9`` and an SGD
    learning rate. With an adaptive ``net.optimizer_`` a ``UserWarning`` is
    issued once per fit (see ``adaptive_optimizer``).

    Parameters
    ----------
    alpha : float, default=0.5
        Modulation strength (paper: 0.1 for VGGSound to 0.8 for CREMA-D).
    start_epoch, end_epoch : int, default=0, 50
        Epochs (0-based, inclusive) during which gradients are modulated;
        the official code modulates epochs 0-50 of its 100
        (``--modulation_starts 0 --modulation_ends 50``). Pass a large
        ``end_epoch`` to modulate for the whole training.
    noise : bool, default=True
        Add the GE noise.
    random_state : int, RandomState or None, default=None
        Seeds the noise (default: the estimator's seed).
    adaptive_optimizer : {'warn', 'raise', 'ignore'}, default='warn'
        What to do when the estimator's optimizer is adaptive
        (:func:`is_adaptive_optimizer`): warn (``UserWarning``, once per
        fit), raise a ``ValueError``, or say nothing.

    References
    ----------
    .. [Peng2022] X. Peng, Y. Wei, A. Deng, D. Wang and D. Hu, "Balanced Multimodal
       Learning via On-the-fly Gradient Modulation", IEEE/CVF Conference on
       Computer Vision and Pattern Recognition (CVPR), 2022. :arxiv:`2203.15332`

    Examples
    --------
    >>> import torch
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import OGMGE
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(module__head="linear", balancer=OGMGE(alpha=0.8),
    ...                            optimizer=torch.optim.SGD, optimizer__momentum=0.9,
    ...                            lr=0.05, max_epochs=2, random_state=0).fit(X, y)
    >>> sorted(clf.history[-1, "ogm_coefficients"])
    ['a', 'b']
    """

    requires = ("linear_head",)

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "start_epoch": [Interval(Integral, None, None, closed="neither")],
        "end_epoch": [Interval(Integral, None, None, closed="neither")],
        "noise": ["boolean"],
        "random_state": ["random_state"],
        "adaptive_optimizer": [StrOptions({"warn", "raise", "ignore"})],
    }

    def __init__(
        self,
        alpha: float = 0.5,
        start_epoch: int = 0,
        end_epoch: int = 50,
        noise: bool = True,
        random_state: Any = None,
        adaptive_optimizer: str = "warn",
    ) -> None:
        self.alpha = alpha
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.noise = noise
        self.random_state = random_state
        self.adaptive_optimizer = adaptive_optimizer

    def fit_started(self, net: Any, *, X: Any, y: Any, **kwargs: Any) -> None:
        self._check_optimizer(getattr(net, "optimizer_", None))
        module = net.module_
        self.regression_ = getattr(net, "_task", None) == "regression"
        self.modalities_ = tuple(module.modalities)
        self.slices_ = module.embedding_slices()
        self.params_ = {m: encoder_parameters(module, m) for m in self.modalities_}
        device = next(module.parameters()).device
        self.generator_ = self._make_generator(net, device)
        # (D, M) 0/1 projection from fused columns to modalities: all uni-modal
        # logits of a batch at once
        proj = torch.zeros(
            module.head.in_features, len(self.modalities_), device=device
        )
        for j, m in enumerate(self.modalities_):
            proj[self.slices_[m], j] = 1.0
        self.proj_ = proj
        self.flat_params_ = [p for m in self.modalities_ for p in self.params_[m]]
        self.param_modality_ = torch.tensor(
            [j for j, m in enumerate(self.modalities_) for _ in self.params_[m]],
            device=device,
        )
        self.numels_ = [p.numel() for p in self.flat_params_]

    def _check_optimizer(self, optimizer: Any) -> None:
        """Warn or raise (``adaptive_optimizer``) for an adaptive optimizer."""
        if (
            self.adaptive_optimizer == "ignore"
            or optimizer is None
            or not is_adaptive_optimizer(optimizer)
        ):
            return
        message = (
            f"OGMGE with the adaptive optimizer {type(optimizer).__name__}: it "
            "normalizes each gradient by its own running magnitude, which largely "
            "cancels OGM-GE's gradient modulation. Peng et al. (2022) train with SGD: "
            "pass optimizer=torch.optim.SGD, optimizer__momentum=0.9 and an SGD "
            "learning rate (or OGMGE(adaptive_optimizer='ignore') to silence this)"
        )
        if self.adaptive_optimizer == "raise":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=2)

    def epoch_started(
        self, net: Any, *, epoch: int, X: Any, y: Any, **kwargs: Any
    ) -> None:
        self.epoch_ = epoch
        self.coef_mean_ = DeviceMean(len(self.modalities_), self.proj_.device)
        return None

    def forward(
        self, net: Any, *, X: dict[str, torch.Tensor], **kwargs: Any
    ) -> torch.Tensor:
        logits, Z = encode_fuse(net.module_, X)
        self.Z_: dict[str, torch.Tensor] | None = detached(Z)
        return logits

    def coefficients(
        self, Z: dict[str, torch.Tensor], y: torch.Tensor, head: nn.Linear
    ) -> torch.Tensor:
        """Gradient coefficients (M,) for a batch of embeddings ``Z`` and labels ``y``."""
        M = len(self.modalities_)
        W = head.weight.detach()
        b = head.bias.detach() / M if head.bias is not None else 0.0
        fused = torch.cat(
            [Z[m].reshape(Z[m].shape[0], -1) for m in self.modalities_], dim=1
        )
        # out[b, m, c] = sum over m's columns d of fused[b, d] * W[c, d]: elementwise
        # products, then one small matmul with the (D, M) projection (cheaper than einsum)
        proj = self.proj_.to(fused.dtype)
        out = ((fused.unsqueeze(1) * W.unsqueeze(0)) @ proj).transpose(
            1, 2
        ) + b  # (B, M, C)
        if self.regression_:
            # a regressor's analogue of the true-class probability: the
            # likelihood of the true targets under a unit-variance Gaussian
            # centred on modality m's outputs (standardized targets)
            err = (out - y.to(out.dtype).reshape(len(y), 1, -1)) ** 2
            s = torch.exp(-0.5 * err).mean(dim=2).sum(dim=0)
        else:
            s = (
                torch.softmax(out, dim=2)
                .gather(2, y.view(-1, 1, 1).expand(-1, M, 1))
                .sum(dim=(0, 2))
            )
        # data-parallel training: the scores of the whole global batch
        s = all_reduce_sum(s)
        others = (s.sum() - s) / (M - 1)
        rho = s / others.clamp_min(1e-12)
        return torch.where(
            rho > 1, 1 - torch.tanh(self.alpha * rho), torch.ones_like(rho)
        )

    def edit_gradients(
        self, net: Any, *, X: dict[str, torch.Tensor], y: torch.Tensor, **kwargs: Any
    ) -> None:
        if not (self.start_epoch <= self.epoch_ <= self.end_epoch):
            return
        assert self.Z_ is not None  # forward stored this batch's embeddings
        coeff = self.coefficients(self.Z_, y, net.module_.head)
        self.Z_ = None
        self.coef_mean_.add(coeff)
        maybe_grads = [p.grad for p in self.flat_params_]
        if any(g is None for g in maybe_grads):  # rare: edit tensor by tensor
            self._edit_one_by_one(coeff)
            return
        grads = [g for g in maybe_grads if g is not None]  # all of them
        factors = list(coeff[self.param_modality_].to(grads[0].dtype).unbind())
        if not self.noise:
            torch._foreach_mul_(grads, factors)
            return
        # per-tensor std of the original gradients (unbiased), from sums and norms
        n = torch.tensor(self.numels_, dtype=grads[0].dtype, device=grads[0].device)
        sq = torch.stack(torch._foreach_norm(grads)).pow(2)
        sums = torch.stack([g.sum() for g in grads])
        std = ((sq - sums * sums / n) / (n - 1).clamp_min(1)).clamp_min(0).sqrt()
        noise = torch.randn(
            sum(self.numels_),
            generator=self.generator_,
            device=grads[0].device,
            dtype=grads[0].dtype,
        )
        noises = [t.view_as(g) for t, g in zip(noise.split(self.numels_), grads)]
        torch._foreach_mul_(noises, list((std + 1e-8).unbind()))
        torch._foreach_mul_(grads, factors)
        torch._foreach_add_(grads, noises)

    def _edit_one_by_one(self, coeff: torch.Tensor) -> None:
        for j, m in enumerate(self.modalities_):
            for p in self.params_[m]:
                if p.grad is None:
                    continue
                g = p.grad
                std = g.std() if g.numel() > 1 else g.abs()
                new = g * coeff[j]
                if self.noise:
                    new = new + torch.randn(
                        g.shape,
                        generator=self.generator_,
                        device=g.device,
                        dtype=g.dtype,
                    ) * (std + 1e-8)
                p.grad = new

    def epoch_finished(self, net: Any, *, epoch: int, **kwargs: Any) -> None:
        mean = self.coef_mean_.mean()
        if mean is not None:
            net.history.record("ogm_coefficients", dict(zip(self.modalities_, mean)))
