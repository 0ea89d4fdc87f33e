"""Multimodal classifier on skorch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog
from skorch.utils import to_numpy

from mmexplain.balancers.base import Balancer
from mmexplain.data import check_class_labels, check_y, encode_labels
from mmexplain.data.batching import ModalityDataset, TensorBatchIterator
from mmexplain.data.validation import check_label_types
from mmexplain.estimators.base import MultimodalNetMixin

__all__ = ["MultimodalClassifier"]


def _valid_accuracy(net: Any, X: Any, y: Any) -> float:
    """Accuracy on skorch's internal validation split, with encoded labels."""
    proba = net.predict_proba(X)
    return float(np.mean(proba.argmax(axis=1) == to_numpy(torch.as_tensor(y))))


class MultimodalClassifier(MultimodalNetMixin, NeuralNetClassifier):
    """Multimodal neural-network classifier (a :class:`skorch.NeuralNetClassifier`).

    Parameters
    ----------
    module : nn.Module class or instance, or None, default=None
        The network, called as ``module(**X)``. ``None`` builds a
        :class:`~mmexplain.LateFusionNet` from the training data (an MLP
        encoder per vector modality, a conv encoder per image modality);
        ``module__<arg>`` parameters are passed to it. For a module class,
        ``n_classes`` (and ``in_channels``) are filled in from the data when the
        constructor takes them and they are not given. An instance is deep
        copied before training, never trained in place.
    balancer : Balancer or None, default=None
        Training-time modality balancer (:mod:`mmexplain.balancers`). Its
        parameters are exposed as ``balancer__<param>``; the fitted copy is
        ``balancer_``.
    criterion : loss class, default=torch.nn.CrossEntropyLoss
        Applied to the module's logits.
    optimizer : optimizer class, default=torch.optim.Adam
    lr : float, default=1e-3
    max_epochs : int, default=20
    batch_size : int, default=64
    train_split : callable or None, default=None
        None trains on all of ``X`` (scikit-learn semantics); pass
        ``skorch.dataset.ValidSplit(0.2)`` for an internal validation split
        (``valid_loss`` and ``valid_acc`` in ``history``).
    iterator_train, iterator_valid : default=TensorBatchIterator
        Batching by tensor slicing; ``torch.utils.data.DataLoader`` works too.
    dataset : class, default=ModalityDataset
        skorch's ``dataset`` parameter: wraps in-memory ``(X, y)`` for
        skorch (one ``float32`` tensor per modality). A torch ``Dataset``
        passed as ``X`` is used as it is.
    verbose : int, default=0
        1 prints skorch's per-epoch table.
    device : str, default='cpu'
    random_state : int, RandomState or None, default=None
        Seeds weight initialization, shuffling, dropout and the balancer; the
        same seed and data give identical weights on CPU. Torch's global RNG
        state of the caller is restored afterwards.
    classes : array-like or None, default=None
        All class labels, when ``y`` may not contain every class (also
        ``partial_fit(X, y, classes=...)``).
    on_nonfinite : {'raise', 'warn'}, default='raise'
        What ``fit`` does when an epoch's training loss or the weights become
        NaN or infinite: raise a ``FloatingPointError`` naming the epoch and
        the learning rate, or warn (``RuntimeWarning``) and go on.
    data_on_device : bool or 'auto', default=False
        Where in-memory training data (arrays, tensors; also the validation
        split) live during ``fit`` when ``device`` is an accelerator. False
        keeps them in host memory and copies every batch to the device.
        True copies them to the device once per ``fit``, so batches are
        slices of device tensors (no per-batch host-to-device copy); a
        ``ValueError`` says so when they need more than the device's free
        memory. ``'auto'`` does so when they take at most a quarter of the
        free memory and stays on the host otherwise. No effect on CPU, for
        torch Datasets and memory-mapped arrays (read in batches), or on
        ``predict``.
    **kwargs
        Any other skorch ``NeuralNet`` parameter (``callbacks``,
        ``optimizer__weight_decay``, ``module__hidden``, ...).

    Attributes
    ----------
    classes_ : ndarray
        Class labels (any hashable type, e.g. strings).
    modalities_ : tuple of str
        Modality names seen in ``fit``.
    input_shapes_ : dict
        Per-sample shape of each modality seen in ``fit``.
    n_features_in_ : int
        Input features per sample seen in ``fit``, summed over the modalities
        (the product of each per-sample shape).
    module_, balancer_, history : fitted network, balancer and training history.

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=300, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.predict(X).shape
    (300,)
    """

    def __init__(
        self,
        module: Any = None,
        *,
        balancer: Balancer | None = None,
        criterion: Any = torch.nn.CrossEntropyLoss,
        optimizer: Any = torch.optim.Adam,
        lr: float = 1e-3,
        max_epochs: int = 20,
        batch_size: int = 64,
        train_split: Any = None,
        iterator_train: Any = TensorBatchIterator,
        iterator_valid: Any = TensorBatchIterator,
        dataset: Any = ModalityDataset,
        verbose: int = 0,
        device: str = "cpu",
        random_state: Any = None,
        classes: Any = None,
        on_nonfinite: str = "raise",
        data_on_device: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            criterion=criterion,
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
            classes=classes,
            **kwargs,
        )
        self.balancer = balancer
        self.random_state = random_state
        self.on_nonfinite = on_nonfinite
        self.data_on_device = data_on_device

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            (
                "valid_acc",
                EpochScoring(_valid_accuracy, name="valid_acc", lower_is_better=False),
            ),
            ("print_log", PrintLog()),
        ]

    def _module_defaults(self) -> dict[str, Any]:
        return {"n_classes": len(self.classes_inferred_), **super()._module_defaults()}

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        y = check_class_labels(y)
        if reset:
            pending = self.__dict__.get("_partial_fit_classes")
            if self.classes is not None:
                classes = check_label_types(np.asarray(self.classes), name="classes")
            elif pending is not None:
                classes = pending
            else:
                classes = np.unique(y)
            if len(classes) < 2 and self.classes is None and pending is None:
                raise ValueError(
                    f"y has a single class {classes.tolist()}: one class is not enough, "
                    "a classifier needs at least 2 (pass classes=[...] to partial_fit "
                    "or the constructor when a batch may not hold every class)"
                )
            self.classes_inferred_ = classes
        return encode_labels(y, self.classes_)

    def _set_partial_fit_classes(self, classes: Any, reset: bool) -> None:
        """``partial_fit(classes=...)``: used on the first call, checked afterwards.

        As scikit-learn's incremental learners (``SGDClassifier.partial_fit``)
        do: the labels are sorted and de-duplicated; a later call's
        ``classes`` must be the same set as ``classes_``.
        """
        if classes is None:
            return
        wanted = np.unique(check_class_labels(np.asarray(classes), name="classes"))
        if reset:
            if len(wanted) < 2:
                raise ValueError(
                    f"classes={wanted.tolist()} has a single class; need at least 2"
                )
            if self.classes is not None and not np.array_equal(
                wanted, np.unique(np.asarray(self.classes))
            ):
                raise ValueError(
                    f"partial_fit(classes={wanted.tolist()}) differs from the "
                    f"constructor's classes={np.asarray(self.classes).tolist()}"
                )
            self._partial_fit_classes = wanted
        elif not np.array_equal(wanted, np.unique(self.classes_)):
            raise ValueError(
                f"classes={wanted.tolist()} is not the same as on the first call to "
                f"partial_fit, which set classes_={self.classes_.tolist()}"
            )

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (the original labels, e.g. strings).

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            The modalities the model was fitted on, with the samples along
            the first axis.

        Returns
        -------
        ndarray of shape (N,)
            The most probable class of each sample, from ``classes_``.
        """
        proba = self.predict_proba(X)  # raises NotFittedError first when unfitted
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against the labels ``y``.

        ``y`` is checked as in ``fit`` (one label per sample, of one type)
        and every label must be one of ``classes_``: a label the model cannot
        predict raises a ``ValueError`` (scikit-learn's ``score`` would count
        it as an error and return a lower accuracy), before anything is
        predicted.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
        y : array-like of shape (N,)
        sample_weight : array-like of shape (N,) or None

        Returns
        -------
        float
        """
        from sklearn.metrics import accuracy_score

        self.check_is_fitted()
        y_true = check_class_labels(check_y(y, None))
        encode_labels(y_true, self.classes_)  # labels outside classes_ raise
        y_pred = self.predict(X)
        check_y(y_true, len(y_pred))
        return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))
