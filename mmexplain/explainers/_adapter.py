"""What the explainers need to know about a model, whatever its kind."""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmexplain.data import ModalityDict, check_X, check_X_fitted, check_y, encode_labels
from mmexplain.modules.contract import (
    has_encode_fuse,
    is_branched,
    module_device,
    module_modalities,
)

__all__ = ["ModelAdapter", "eval_mode", "model_lock"]

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(module: nn.Module) -> threading.RLock:
    """The lock of ``module``: explanations of one model run one at a time.

    Explaining flips the module's train/eval mode and, for MMTM models,
    ablation flags; two threads doing that on one module at once would see
    each other's modes (dropout on, buffers updated) and could leave the
    module in the wrong mode. Holding this lock makes ``explain`` safe to call
    from several threads (calls on *different* models still run in parallel).
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock


# ----------------------------------------------------------------------------
# model adapter
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


class ModelAdapter:
    """What the explainers need to know about a model, whatever its kind.

    ``model`` may be a fitted :class:`~mmexplain.MultimodalClassifier` /
    :class:`~mmexplain.MultimodalSegmenter`, any fitted skorch net, or an
    ``nn.Module`` called as ``module(**X)``.
    """

    def __init__(self, model: Any, *, loss_fn: Any = None, device: Any = None) -> None:
        self.net = None
        if isinstance(model, nn.Module):
            module = model
        elif hasattr(model, "module") and hasattr(model, "initialize"):  # skorch net
            if not getattr(model, "initialized_", False) or not hasattr(
                model, "module_"
            ):
                raise ValueError(
                    f"the {type(model).__name__} is not fitted yet: call fit(X, y) before explaining it"
                )
            self.net = model
            module = model.module_
        else:
            raise TypeError(
                "model must be a fitted MultimodalClassifier/MultimodalSegmenter, a fitted "
                f"skorch net or a torch nn.Module, got {type(model).__name__}"
            )
        own = module_device(module)
        if device is not None and torch.device(device) != own:
            # never move the caller's model: work on a copy on the requested device
            module = copy.deepcopy(module).to(device)
            own = torch.device(device)
        self.module = module
        self.device = own
        self.split = has_encode_fuse(module)
        self.is_mmtm = is_branched(module)
        net_mods = getattr(self.net, "modalities_", None)
        self.modalities: tuple[str, ...] | None = (
            tuple(net_mods) if net_mods is not None else module_modalities(module)
        )
        self.input_shapes = getattr(self.net, "input_shapes_", None)
        criterion = (
            loss_fn if loss_fn is not None else getattr(self.net, "criterion_", None)
        )
        self.criterion = criterion
        ignore = getattr(self.net, "ignore_index", None)
        if ignore is None:
            ignore = getattr(criterion, "ignore_index", None)
        self.ignore_index: int | None = ignore
        self.classes = (
            getattr(self.net, "classes_", None) if self.net is not None else None
        )
        if self.net is not None and not hasattr(self.net, "classes_"):
            self.classes = None

    # -- inputs -----------------------------------------------------------
    def check_X(self, X: Any) -> ModalityDict:
        """``X`` checked against the model's modalities (and fitted shapes when known)."""
        if self.input_shapes is not None:
            return check_X_fitted(X, self.input_shapes)
        return check_X(X, modalities=self.modalities)

    def encode_y(self, y: Any, n: int) -> np.ndarray:
        """Targets as class indices (labels mapped through ``classes_`` when known)."""
        y = check_y(y, n)
        if self.classes is not None and y.ndim == 1:
            return encode_labels(y, self.classes)
        if y.dtype.kind not in "iub":
            if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                return y.astype(np.int64)
            raise TypeError(
                f"y must hold integer class indices for this model (got dtype {y.dtype}); "
                "pass a fitted MultimodalClassifier to use other labels"
            )
        return y.astype(np.int64, copy=False)

    # -- forward pieces ------------------------------------------------------
    def encode(self, X: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module.encode(**X)

    def head(self, Z: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.module.fuse(**Z)

    def forward(self, X: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.module(**X)
        return out[0] if isinstance(out, tuple) else out

    # -- per-element loss -----------------------------------------------------
    def elementwise_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Unreduced loss, shape (rows,) or (rows, H, W)."""
        crit = self.criterion
        if (
            crit is None
            or isinstance(crit, nn.CrossEntropyLoss)
            or (isinstance(crit, type) and issubclass(crit, nn.CrossEntropyLoss))
        ):
            kw: dict[str, Any] = {}
            if isinstance(crit, nn.CrossEntropyLoss):
                kw = {"weight": crit.weight, "label_smoothing": crit.label_smoothing}
            return F.cross_entropy(
                logits,
                y,
                reduction="none",
                ignore_index=self.ignore_index
                if self.ignore_index is not None
                else -100,
                **kw,
            )
        if isinstance(crit, nn.Module) and hasattr(crit, "reduction"):
            unreduced = copy.copy(crit)
            unreduced.reduction = "none"
            return unreduced(logits, y)
        out = crit(logits, y)
        if out.dim() == 0:
            raise ValueError(
                "loss_fn returned a scalar; the explainers need one loss per sample "
                "(pass a loss module with a `reduction` attribute or a function returning "
                "unreduced losses)"
            )
        return out
