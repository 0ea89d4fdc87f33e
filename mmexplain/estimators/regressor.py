"""Multimodal regressor on skorch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog

from mmexplain.balancers.base import Balancer
from mmexplain.data import check_y
from mmexplain.data.batching import ModalityDataset, TensorBatchIterator
from mmexplain.data.validation import check_regression_targets
from mmexplain.estimators.base import MultimodalNetMixin

__all__ = ["MultimodalRegressor"]


def _valid_r2(net: Any, X: Any, y: Any) -> float:
    """R^2 on skorch's internal validation split (uniform average over targets)."""
    from sklearn.metrics import r2_score

    pred = np.asarray(net._outputs(X), dtype=np.float64)
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    return float(r2_score(y.reshape(len(y), -1), pred.reshape(len(pred), -1)))


class MultimodalRegressor(MultimodalNetMixin, NeuralNetRegressor):
    """Multimodal neural-network regressor (a skorch ``NeuralNetRegressor``).

    ``X`` maps modality names to arrays; ``y`` holds real targets, ``(N,)``
    or ``(N, n_targets)``. The module returns ``(N, n_targets)`` outputs,
    which are the predictions; ``predict`` returns them (as ``(N,)`` when
    ``y`` was ``(N,)``) and ``score`` the coefficient of determination
    :math:`R^2` (scikit-learn's ``RegressorMixin``; for several targets the
    uniform average over them).

    Parameters
    ----------
    module : nn.Module class or instance, or None, default=None
        The network, called as ``module(**X)``. ``None`` builds a
        :class:`~mmexplain.LateFusionNet` from the training data with one
        linear output per target (``module__<arg>`` parameters are passed to
        it). For a module class, ``n_classes`` (the number of outputs) and
        ``in_channels`` are filled in from the data when its constructor
        takes them and they are not given.
    balancer : Balancer or None, default=None
        Training-time modality balancer (:mod:`mmexplain.balancers`); those
        defined for regression are listed in the user guide
        (:doc:`/user_guide/regression`). ``balancer__<param>`` parameters
        reach it; the fitted copy is ``balancer_``.
    criterion : loss class, default=torch.nn.MSELoss
        Applied to the outputs and the float targets ``(N, n_targets)``
        (``nn.L1Loss``, ``nn.HuberLoss``, ``nn.SmoothL1Loss`` also work).
    optimizer : optimizer class, default=torch.optim.Adam
        The optimizer; ``optimizer__<arg>`` parameters are passed to it.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=20
        Epochs per ``fit`` (and per ``partial_fit`` call).
    batch_size : int, default=64
        Samples per mini-batch (-1: the whole set).
    train_split : callable or None, default=None
        None trains on all of ``X`` (scikit-learn semantics); pass
        ``skorch.dataset.ValidSplit(0.2)`` for an internal validation split
        (``valid_loss`` and ``valid_r2`` in ``history``).
    iterator_train, iterator_valid : default=TensorBatchIterator
        Batching by tensor slicing; ``torch.utils.data.DataLoader`` works too.
    dataset : default=ModalityDataset
        The dataset class skorch wraps in-memory ``X, y`` in.
    verbose : int, default=0
        1 prints skorch's per-epoch table.
    device : str, default='cpu'
        Where the network trains and predicts (``'cuda'``, ``'cuda:1'``, ...).
    random_state : int, RandomState or None, default=None
        Seeds weight initialization, shuffling, dropout and the balancer.
    on_nonfinite : {'raise', 'warn'}, default='raise'
        What ``fit`` does when the training loss or the weights become NaN or
        infinite (as in :class:`MultimodalClassifier`).
    data_on_device : bool or 'auto', default=False
        Where in-memory training data live during ``fit`` on an accelerator
        (as in :class:`MultimodalClassifier`).
    **kwargs
        Any other skorch ``NeuralNet`` parameter (``callbacks``,
        ``optimizer__weight_decay``, ``module__hidden``, ...).

    Attributes
    ----------
    n_outputs_ : int
        Number of targets per sample seen in ``fit``.
    y_ndim_ : int
        1 when ``fit`` saw ``y`` of shape ``(N,)`` (``predict`` then returns
        ``(N,)``), 2 for ``(N, n_targets)``.
    modalities_ : tuple of str
        Modality names seen in ``fit``.
    input_shapes_ : dict
        Per-sample shape of each modality seen in ``fit``.
    n_features_in_ : int
        Input features per sample, summed over the modalities.
    module_, balancer_, history : fitted network, balancer and training history.

    Examples
    --------
    >>> from mmexplain import MultimodalRegressor
    >>> from mmexplain.datasets import make_multimodal_regression
    >>> X, y = make_multimodal_regression(n_samples=300, random_state=0)
    >>> reg = MultimodalRegressor(max_epochs=5, random_state=0).fit(X, y)
    >>> reg.predict(X).shape
    (300,)
    """

    _task = "regression"

    def __init__(
        self,
        module: Any = None,
        *,
        balancer: Balancer | None = None,
        criterion: Any = torch.nn.MSELoss,
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
            **kwargs,
        )
        self.balancer = balancer
        self.random_state = random_state
        self.on_nonfinite = on_nonfinite
        self.data_on_device = data_on_device

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (N, n_targets)
        return tags

    @property
    def _default_callbacks(self) -> list[tuple[str, Any]]:
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            (
                "valid_r2",
                EpochScoring(_valid_r2, name="valid_r2", lower_is_better=False),
            ),
            ("print_log", PrintLog()),
        ]

    def _module_defaults(self) -> dict[str, Any]:
        return {"n_classes": int(self.n_outputs_), **super()._module_defaults()}

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        ndim = int(np.ndim(y))
        targets = check_regression_targets(y)
        if reset:
            self.n_outputs_ = int(targets.shape[1])
            self.y_ndim_ = 1 if ndim == 1 else 2
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {targets.shape[1]} targets per sample but the model was "
                f"fitted on {self.n_outputs_}"
            )
        return targets

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            The modalities the model was fitted on.

        Returns
        -------
        ndarray of float64, shape (N,) or (N, n_targets)
            ``(N,)`` when ``fit`` saw ``y`` of shape ``(N,)``; float64 as
            scikit-learn's regressors (the network computes in float32).
        """
        out = self._outputs(X).astype(np.float64)
        return out.reshape(len(out)) if self.y_ndim_ == 1 else out

    def _outputs(self, X: Any) -> np.ndarray:
        """The module's outputs, ``(N, n_targets)`` (skorch's ``predict_proba``)."""
        return np.asarray(MultimodalNetMixin.predict_proba(self, X))

    @property
    def predict_proba(self) -> Any:
        """Not available: a regressor predicts values, not probabilities.

        skorch's nets all have ``predict_proba``; scikit-learn's regressors do
        not (``hasattr(regressor, 'predict_proba')`` is how some of its tools
        tell a classifier), so it is hidden here: use :meth:`predict`.
        """
        raise AttributeError(
            f"{type(self).__name__} has no predict_proba: a regressor predicts "
            "values, use predict(X)"
        )

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination :math:`R^2` of ``predict(X)`` against ``y``.

        As scikit-learn's ``RegressorMixin.score`` (``r2_score``, uniform
        average over several targets), with ``y`` checked as in ``fit``
        first.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
        y : array-like of shape (N,) or (N, n_targets)
        sample_weight : array-like of shape (N,) or None

        Returns
        -------
        float
        """
        from sklearn.metrics import r2_score

        self.check_is_fitted()
        y_true = check_regression_targets(check_y(y, None))
        if y_true.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y_true.shape[1]} targets per sample but the model predicts "
                f"{self.n_outputs_}"
            )
        pred = np.asarray(self._outputs(X), dtype=np.float64)
        check_y(y_true, len(pred))
        return float(
            r2_score(y_true.astype(np.float64), pred, sample_weight=sample_weight)
        )
