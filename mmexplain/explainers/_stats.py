"""Per-row additive statistics the explainers' scores are computed from."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmexplain.explainers._adapter import ModelAdapter

__all__ = ["make_stat"]


# ----------------------------------------------------------------------------
# statistics (additive, per row)
# ----------------------------------------------------------------------------
def _valid_mask(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    if ignore_index is None:
        return torch.ones_like(y, dtype=torch.bool)
    return y != ignore_index


def _flat_sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def make_stat(
    kind: str, adapter: ModelAdapter, n_classes: int | None = None
) -> Callable:
    """Per-row additive statistics ``stat(logits, y) -> (rows, P)``.

    kinds: 'loss' -> [loss sum, count]; 'correct' -> [correct, count];
    'probability' -> [true-class probability sum, count]; 'confusion' ->
    flattened (C, C) confusion counts; 'proba' -> class probabilities (C).
    Regression (outputs and targets (rows, T)): 'prediction' -> [prediction
    sum over the targets, T]; 'regression' -> per target the residual
    ``r = y - f``, ``r^2``, ``|r|``, the centred target ``y - c`` and its
    square, the loss, then a count of 1 (6 T + 1 columns, float64; ``c`` is
    ``adapter.y_center``, which keeps sums of squares accurate); 'outputs' ->
    the outputs themselves (T).
    """
    ignore = adapter.ignore_index

    weight = getattr(adapter.criterion, "weight", None)
    weighted = (
        isinstance(adapter.criterion, nn.CrossEntropyLoss | nn.NLLLoss)
        and weight is not None
    )

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        valid = _valid_mask(y, ignore)
        per = adapter.elementwise_loss(logits, y)
        per = (
            torch.where(valid, per, torch.zeros((), dtype=per.dtype, device=per.device))
            if per.shape == y.shape
            else per
        )
        if weighted and weight is not None:  # (weighted implies a weight)
            # the criterion's mean divides by the summed class weights of the targets
            safe_y = torch.where(valid, y, torch.zeros_like(y))
            count = weight.to(logits.device)[safe_y] * valid
        else:
            count = valid.float()
        return torch.stack([_flat_sum(per.float()), _flat_sum(count.float())], dim=1)

    def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        valid = _valid_mask(y, ignore)
        hit = (logits.argmax(dim=1) == y) & valid
        return torch.stack([_flat_sum(hit.float()), _flat_sum(valid.float())], dim=1)

    def probability(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        valid = _valid_mask(y, ignore)
        # log-softmax of the true class only, then exp: no (rows, C) probabilities
        yy = torch.where(valid, y, torch.zeros_like(y))
        logp = torch.log_softmax(logits.float(), dim=1).gather(1, yy.unsqueeze(1))
        py = logp.squeeze(1).exp() * valid
        return torch.stack([_flat_sum(py), _flat_sum(valid.float())], dim=1)

    def confusion(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = int(n_classes if n_classes is not None else logits.shape[1])
        valid = _valid_mask(y, ignore)
        pred = logits.argmax(dim=1)
        code = torch.where(valid, y * c + pred, torch.full_like(y, c * c))
        code = code.reshape(code.shape[0], -1)
        counts = torch.zeros(code.shape[0], c * c + 1, device=logits.device)
        counts.scatter_add_(1, code, torch.ones_like(code, dtype=counts.dtype))
        return counts[:, : c * c]

    def proba(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def prediction(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        flat = out.reshape(out.shape[0], -1).float()
        count = torch.full_like(flat[:, 0], float(flat.shape[1]))
        return torch.stack([flat.sum(dim=1), count], dim=1)

    center = adapter.y_center

    def regression(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f, t = out.double(), y.double()
        r = t - f
        c = (
            t
            if center is None
            else t - torch.as_tensor(center, dtype=torch.float64, device=t.device)
        )
        per = adapter.elementwise_loss(out, y.to(out.dtype)).double()
        ones = torch.ones_like(r[:, :1])
        return torch.cat([r, r * r, r.abs(), c, c * c, per, ones], dim=1)

    def outputs(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return out.float()

    table = {
        "prediction": prediction,
        "regression": regression,
        "outputs": outputs,
        "loss": loss,
        "correct": correct,
        "probability": probability,
        "confusion": confusion,
        "proba": proba,
    }
    if kind not in table:
        raise ValueError(f"unknown statistic {kind!r}")
    return table[kind]
