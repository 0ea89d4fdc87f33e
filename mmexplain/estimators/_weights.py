"""Per-sample weights in training: how they travel with the batches and enter the loss.

``fit(X, y, sample_weight=w)`` puts ``w`` into the training mapping under a
reserved key (:data:`SAMPLE_WEIGHT`), so skorch's splitting, batching and
shuffling keep every weight with its row (skorch's own recipe for sample
weights). The net's ``infer`` drops the key before the module is called and
its ``get_loss`` uses it: the loss of a batch is

.. math::

    L = \\frac{\\sum_n w_n \\, \\ell_n}{\\sum_n w_n \\, c_n}

with ``l_n`` the sample's unreduced criterion summed over its elements
(pixels) and ``c_n`` its element count, each element counted with its class
weight for a ``CrossEntropyLoss``/``NLLLoss`` with ``weight=`` (and 0 for
``ignore_index``). With all ``w_n`` equal this is exactly the criterion's own
``reduction='mean'``; for plain classification it is the weighted mean
``sum_n w_n l_n / sum_n w_n``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mmexplain.data import ModalityDict

__all__ = [
    "SAMPLE_WEIGHT",
    "attach_sample_weight",
    "check_sample_weight",
    "split_sample_weight",
    "weighted_loss",
]

#: the reserved key under which the weights travel with the training rows
SAMPLE_WEIGHT = "__sample_weight__"


def check_sample_weight(net: Any, X: Any, sample_weight: Any) -> np.ndarray | None:
    """``sample_weight`` as float32 ``(N,)``, or None; refuses what cannot be honoured."""
    if sample_weight is None:
        return None
    name = type(net).__name__
    if getattr(net, "balancer", None) is not None:
        raise ValueError(
            f"{name}.fit(sample_weight=...) is not supported together with a balancer "
            "(balancers compute their own unweighted per-batch statistics and may "
            "re-sample the rows); fit without one of them"
        )
    if not isinstance(X, ModalityDict):
        raise TypeError(
            f"{name}.fit(sample_weight=...) needs X as an in-memory mapping of arrays; "
            f"got {type(X).__name__} (put the weights into the loss yourself for a "
            "Dataset)"
        )
    if SAMPLE_WEIGHT in X:
        raise ValueError(f"{SAMPLE_WEIGHT!r} is reserved and cannot name a modality")
    if isinstance(sample_weight, torch.Tensor):
        sample_weight = sample_weight.detach().cpu().numpy()
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(len(X), float(w))
    if w.shape != (len(X),):
        raise ValueError(
            f"sample_weight has shape {w.shape} but X has {len(X)} samples; pass one "
            "weight per sample"
        )
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinite values")
    if (w < 0).any():
        raise ValueError("sample_weight contains negative weights")
    if not (w > 0).any():
        raise ValueError("sample_weight is zero for every sample: nothing to train on")
    return w.astype(np.float32)


def attach_sample_weight(X: ModalityDict, weights: np.ndarray | None) -> ModalityDict:
    """``X`` with the weights under :data:`SAMPLE_WEIGHT` (a new mapping)."""
    if weights is None:
        return X
    out = ModalityDict(X)
    out[SAMPLE_WEIGHT] = weights
    return out


def split_sample_weight(X: Any) -> tuple[Any, torch.Tensor | None]:
    """``(X without the weights, weights or None)`` for a batch."""
    if isinstance(X, Mapping) and SAMPLE_WEIGHT in X:
        rest = {k: v for k, v in X.items() if k != SAMPLE_WEIGHT}
        return rest, X[SAMPLE_WEIGHT]
    return X, None


def _per_sample(
    criterion: Any, y_pred: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: summed unreduced loss and (class-weighted) element count."""
    if not isinstance(criterion, nn.Module) or not hasattr(criterion, "reduction"):
        raise TypeError(
            "sample_weight needs a criterion with a `reduction` attribute (a torch "
            f"loss module such as nn.CrossEntropyLoss); got {type(criterion).__name__}"
        )
    # a loss module: ``reduction`` is a plain str attribute, which torch's
    # ``Module.__setattr__`` annotation (tensors and modules) does not cover
    unreduced: Any = copy.copy(criterion)
    unreduced.reduction = "none"
    per = unreduced(y_pred, y)
    if per.dim() == 0 or per.shape[0] != y_pred.shape[0]:
        raise ValueError(
            "sample_weight needs one loss per sample, but the criterion with "
            f"reduction='none' returned shape {tuple(per.shape)}"
        )
    n = per.shape[0]
    if isinstance(criterion, nn.CrossEntropyLoss | nn.NLLLoss) and y.dtype in (
        torch.int64,
        torch.int32,
        torch.uint8,
    ):
        valid = y != criterion.ignore_index
        if criterion.weight is not None:
            safe = torch.where(valid, y, torch.zeros_like(y)).long()
            count = criterion.weight.to(per.device)[safe] * valid
        else:
            count = valid.to(per.dtype)
        count = count.reshape(n, -1).sum(dim=1)
    else:
        count = torch.full((n,), float(per[0].numel()), device=per.device)
    return per.reshape(n, -1).sum(dim=1), count.to(per.dtype)


def weighted_loss(
    criterion: Any,
    outputs: list[torch.Tensor],
    y: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Sum over ``outputs`` (one, or a branched model's heads) of the weighted loss."""
    total = None
    for y_pred in outputs:
        per, count = _per_sample(criterion, y_pred, y)
        w = weights.to(device=per.device, dtype=per.dtype).reshape(-1)
        denom = (w * count).sum().clamp_min(torch.finfo(per.dtype).tiny)
        loss = (w * per).sum() / denom
        total = loss if total is None else total + loss
    assert total is not None
    return total
