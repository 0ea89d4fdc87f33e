"""Multimodal semantic segmentation on skorch."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet

from mmexplain.balancers.base import Balancer
from mmexplain.data import ModalityDict, check_y
from mmexplain.data.batching import (
    ModalityDataset,
    TensorBatchIterator,
    TrainingDataset,
)
from mmexplain.data.validation import check_masks
from mmexplain.estimators.base import MultimodalNetMixin

__all__ = ["MultimodalSegmenter"]


class MultimodalSegmenter(MultimodalNetMixin, NeuralNet):
    """Multimodal per-pixel classifier (semantic segmentation) on skorch.

    ``X`` maps modality names to image arrays ``(N, C_m, H, W)``; ``y`` is an
    integer mask array ``(N, H, W)``. The module returns logits
    ``(N, n_classes, H, W)``; ``predict`` returns masks and ``score`` the mean
    intersection over union.

    Parameters
    ----------
    module : nn.Module class or instance, or None, default=None
        None builds a :class:`~mmexplain.LateFusionSegNet` from the data.
    n_classes : int or None, default=None
        Number of classes; None infers ``max(y) + 1`` (ignoring
        ``ignore_index``).
    ignore_index : int or None, default=None
        Label of pixels excluded from the loss and from the IoU.
    balancer, criterion, optimizer, lr, max_epochs, batch_size, train_split, \
iterator_train, iterator_valid, dataset, verbose, device, random_state, \
on_nonfinite, data_on_device, **kwargs
        As in :class:`MultimodalClassifier` (``batch_size`` defaults to 16
        here).

    Examples
    --------
    >>> from mmexplain import MultimodalSegmenter
    >>> from mmexplain.datasets import make_multimodal_segmentation
    >>> X, y = make_multimodal_segmentation(n_samples=16, random_state=0)
    >>> seg = MultimodalSegmenter(max_epochs=1, random_state=0).fit(X, y)
    >>> seg.predict(X).shape == y.shape
    True
    """

    _task = "segmentation"

    def __init__(
        self,
        module: Any = None,
        *,
        balancer: Balancer | None = None,
        n_classes: int | None = None,
        ignore_index: int | None = None,
        criterion: Any = torch.nn.CrossEntropyLoss,
        optimizer: Any = torch.optim.Adam,
        lr: float = 1e-3,
        max_epochs: int = 20,
        batch_size: int = 16,
        train_split: Any = None,
        iterator_train: Any = TensorBatchIterator,
        iterator_valid: Any = TensorBatchIterator,
        dataset: Any = ModalityDataset,
        verbose: int = 0,
        device: str = "cpu",
        random_state: Any = None,
        on_nonfinite: str = "raise",
        data_on_device: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            dataset=dataset,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.balancer = balancer
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.random_state = random_state
        self.on_nonfinite = on_nonfinite
        self.data_on_device = data_on_device

    def _module_defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_classes": self.n_classes_}
        shapes = getattr(self, "input_shapes_", None) or {}
        if shapes:
            out["in_channels"] = {m: s[0] for m, s in shapes.items()}
        return out

    def initialize_criterion(self) -> Any:
        kwargs = self.get_params_for("criterion")
        if (
            self.ignore_index is not None
            and "ignore_index" not in kwargs
            and inspect.isclass(self.criterion)
            and "ignore_index" in inspect.signature(self.criterion).parameters
        ):
            kwargs["ignore_index"] = self.ignore_index
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def _validate_fit(
        self, X: Any, y: Any, reset: bool
    ) -> tuple[ModalityDict, np.ndarray]:
        Xv, yv = super()._validate_fit(X, y, reset)
        for m, shape in _sample_shapes(Xv).items():
            if len(shape) != 3:
                raise ValueError(
                    f"modality {m!r} has shape {(len(yv), *shape)}; segmentation "
                    "needs images of shape (N, C, H, W)"
                )
            size = tuple(int(d) for d in yv.shape[1:])
            if shape[1:] != size:
                hint = (
                    " (transposed masks? use y.transpose(0, 2, 1))"
                    if shape[1:] == size[::-1]
                    else ""
                )
                raise ValueError(
                    f"modality {m!r} has images of size {shape[1:]} but "
                    f"y has masks of size {size}; masks must be (N, H, W){hint}"
                )
        return Xv, yv

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        y = check_masks(y)
        valid = y if self.ignore_index is None else y[y != self.ignore_index]
        if valid.size and valid.min() < 0:
            raise ValueError(
                f"y contains negative labels ({valid.min()}) other than ignore_index"
            )
        if reset:
            if self.n_classes is not None:
                self.n_classes_ = int(self.n_classes)
            else:
                self.n_classes_ = int(valid.max()) + 1 if valid.size else 1
        if valid.size and valid.max() >= self.n_classes_:
            raise ValueError(
                f"y contains label {int(valid.max())} but there are {self.n_classes_} classes"
            )
        return y.astype(np.int64, copy=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Per-pixel class probabilities.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            Image modalities ``(N, C_m, H, W)``, as in ``fit``.

        Returns
        -------
        ndarray of shape (N, n_classes, H, W)
            The softmax over the classes of every pixel.
        """
        return super().predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted masks: the most probable class of every pixel.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            Image modalities ``(N, C_m, H, W)``, as in ``fit``.

        Returns
        -------
        ndarray of shape (N, H, W)
            Integer class labels.
        """
        return self.predict_proba(X).argmax(axis=1)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean intersection over union of ``predict(X)`` with ``y``.

        ``sample_weight`` is not supported (a mean IoU is pooled over pixels,
        not averaged over samples) and raises when given.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            Image modalities ``(N, C_m, H, W)``, as in ``fit``.
        y : array-like of shape (N, H, W)
            True masks (``ignore_index`` pixels are left out).
        sample_weight : None
            Must be None.

        Returns
        -------
        float
            :func:`mmexplain.metrics.mean_iou` of the predicted and true
            masks.
        """
        from mmexplain.metrics import mean_iou

        if sample_weight is not None:
            raise ValueError(
                "MultimodalSegmenter.score does not support sample_weight (the mean "
                "IoU pools the pixels of all samples)"
            )
        self.check_is_fitted()
        # the masks' own checks first (before predicting): 3-D integer labels
        y = check_masks(check_y(y, None))
        pred = self.predict(X)
        check_y(y, len(pred))
        y = check_masks(
            y, spatial=pred.shape[1:], what="the model's predicted masks for X"
        )
        return mean_iou(
            y,
            pred,
            n_classes=self.n_classes_,
            ignore_index=self.ignore_index,
        )


def _sample_shapes(Xv: Any) -> dict[str, tuple[int, ...]]:
    """Per-sample shape of each modality of validated training data (arrays or a Dataset)."""
    if isinstance(Xv, TrainingDataset):
        if Xv.layout is not None:  # a user's Dataset: its first item
            return dict(Xv.layout.shapes)
        Xv = Xv.dataset  # memory-mapped arrays
    return {m: tuple(int(d) for d in Xv[m].shape[1:]) for m in Xv}
