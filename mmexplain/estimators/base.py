"""What :class:`MultimodalClassifier` and :class:`MultimodalSegmenter` share.

The estimators are skorch nets that take ``X`` as a mapping
``{modality: array}``, call the module as ``module(**X)``, accept a
``balancer=`` (see :mod:`mmexplain.balancers`) and follow scikit-learn's
conventions: nested ``balancer__<param>`` parameters, ``clone``,
``GridSearchCV``, pipelines, seeded determinism and pickling.

skorch's ``fit_loop`` runs unchanged. Each method overridden here has a
docstring naming the skorch method it replaces and why; the supported skorch
versions are pinned in ``setup.cfg`` (``skorch>=1.0,<1.5``) and tested with
the version in ``constraints.txt``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from skorch.dataset import unpack_data
from skorch.utils import is_dataset, to_tensor

from mmexplain.data import ModalityDict, check_X, check_X_fitted, check_y
from mmexplain.data.batching import TensorBatchIterator
from mmexplain.estimators._balancing import BalancerLifecycleMixin
from mmexplain.estimators._module import build_estimator_module
from mmexplain.modules.contract import branch_loss
from mmexplain.seeding import (
    draw_seed,
    seeded_numpy_global,
    seeded_torch,
    torch_generator,
)

__all__ = ["MultimodalNetMixin"]


def _softmax_dim1(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities: softmax over the class axis (1), also for (N, C, H, W)."""
    return torch.softmax(logits, dim=1)


def _unpack_batch(batch: Any) -> tuple[Any, Any, Any]:
    """``(X, y)`` or ``(X, y, rows)`` batches (rows: per-row side information)."""
    if isinstance(batch, tuple | list) and len(batch) == 3:
        return batch[0], batch[1], batch[2]
    Xi, yi = unpack_data(batch)
    return Xi, yi, None


class MultimodalNetMixin(BalancerLifecycleMixin):
    """Everything the classifier and the segmenter share (mixed into skorch nets)."""

    _task = "classification"

    # -- parameters ------------------------------------------------------
    def _get_param_names(self) -> list[str]:
        # skorch lists every non-``_``-suffixed attribute, including its private
        # ``_params_to_validate`` set; __init__ rebuilds that from the kwargs.
        return [k for k in super()._get_param_names() if not k.startswith("_")]  # type: ignore[misc]

    def set_params(self, **params: Any) -> Any:
        """Set parameters, routing ``balancer__<name>`` to the balancer.

        skorch's own ``set_params`` would store ``balancer__tolerance`` as a
        flat attribute; here it really changes ``self.balancer``.
        """
        nested = {k: v for k, v in params.items() if k.startswith("balancer__")}
        rest = {k: v for k, v in params.items() if not k.startswith("balancer__")}
        super().set_params(**rest)  # type: ignore[misc]
        if nested:
            balancer = self.balancer
            if balancer is None or not hasattr(balancer, "set_params"):
                raise ValueError(
                    f"cannot set {sorted(nested)}: the estimator has balancer={balancer!r}; "
                    "pass balancer=SomeBalancer(...) first"
                )
            balancer.set_params(
                **{k[len("balancer__") :]: v for k, v in nested.items()}
            )
        return self

    # -- initialization ---------------------------------------------------
    def initialize(self) -> Any:
        """skorch's ``initialize`` under the ``"init"`` seed stream, plus the balancer."""
        self.seed_ = draw_seed(self.random_state)
        with seeded_torch(self.seed_, "init", device=self.device):
            super().initialize()  # type: ignore[misc]
        self._init_balancer()
        return self

    def initialize_module(self) -> Any:
        """Replaces skorch's: builds the network from the data when ``module=None``."""
        self.module_ = build_estimator_module(self)
        return self

    def _module_defaults(self) -> dict[str, Any]:
        """Constructor arguments inferred from the training data."""
        return {}

    def _get_predict_nonlinearity(self) -> Any:
        """skorch's, with a softmax over axis 1 (also for per-pixel logits)."""
        if self.predict_nonlinearity == "auto":
            if isinstance(getattr(self, "criterion_", None), torch.nn.CrossEntropyLoss):
                return _softmax_dim1
        return super()._get_predict_nonlinearity()  # type: ignore[misc]

    # -- validation --------------------------------------------------------
    def _check_fitted_X(self, X: Any) -> ModalityDict:
        """Validate ``X`` (against the fitted modalities and shapes when fitted)."""
        return check_X_fitted(X, getattr(self, "input_shapes_", None))

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        raise NotImplementedError

    def _validate_fit(
        self, X: Any, y: Any, reset: bool
    ) -> tuple[ModalityDict, np.ndarray]:
        if reset:
            Xv = check_X(X)
            y_arr = check_y(y, len(Xv))
            self.modalities_ = Xv.modalities
            self.input_shapes_ = {m: tuple(int(s) for s in Xv[m].shape[1:]) for m in Xv}
        else:
            Xv = self._check_fitted_X(X)
            y_arr = check_y(y, len(Xv))
        return Xv, self._encode_y(y_arr, reset)

    def check_data(self, X: Any, y: Any = None) -> None:
        """Replaces skorch's: the data were validated by ``fit``/``partial_fit``."""

    def get_dataset(self, X: Any, y: Any = None) -> Any:
        """skorch's, validating ``X`` first (outside ``fit``, which validated it)."""
        if is_dataset(X):
            return X
        if not (isinstance(X, ModalityDict) and getattr(self, "_fitting_", False)):
            X = self._check_fitted_X(X)
        return super().get_dataset(X, y)  # type: ignore[misc]

    # -- fitting -------------------------------------------------------------
    def fit(self, X: Any, y: Any, **fit_params: Any) -> Any:
        """Initialize (unless ``warm_start``) and train on ``X`` (mapping) and ``y``.

        Returns
        -------
        self
        """
        reset = not self.warm_start or not self.initialized_
        Xv, yv = self._validate_fit(X, y, reset=reset)
        if reset:
            self.initialize()
        else:  # warm start: keep the module, start the (possibly new) balancer afresh
            self._init_balancer()
        return self._partial_fit_validated(Xv, yv, **fit_params)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, **fit_params: Any
    ) -> Any:
        """Train for ``max_epochs`` more epochs without re-initializing."""
        reset = not self.initialized_
        Xv, yv = self._validate_fit(X, y, reset=reset)
        if reset:
            self.initialize()
        elif not self._balancer_is_current():  # balancer set or changed since
            self._init_balancer()
        return self._partial_fit_validated(Xv, yv, **fit_params)

    def _partial_fit_validated(
        self, X: ModalityDict, y: np.ndarray, **fit_params: Any
    ) -> Any:
        """skorch's ``partial_fit`` body: seeded, and the balancer always ends."""
        fit_params.pop("_routing_method", None)
        self.notify("on_train_begin", X=X, y=y)
        try:
            self._fitting_ = True
            with seeded_torch(self.seed_, "fit", len(self.history), device=self.device):
                self.fit_loop(X, y, **fit_params)
        except KeyboardInterrupt:
            pass
        finally:
            self._fitting_ = False
            self._end_balancer()
        self.notify("on_train_end", X=X, y=y)
        return self

    def get_split_datasets(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """skorch's, with a seeded split; in ``fit`` the balancer starts on the train part.

        skorch's ``ValidSplit`` without its own ``random_state`` draws from
        NumPy's global RNG; here that RNG is seeded from the estimator's seed
        (stream ``"split"``) for the call and restored afterwards.
        """
        with seeded_numpy_global(getattr(self, "seed_", None), "split"):
            dataset_train, dataset_valid = super().get_split_datasets(
                X, y, **fit_params
            )  # type: ignore[misc]
        if getattr(self, "_fitting_", False):
            self._start_balancer(dataset_train)
        return dataset_train, dataset_valid

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        """skorch's, with seeded shuffling for :class:`TensorBatchIterator`."""
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = getattr(self, prefix)
        kwargs = self._iterator_kwargs(prefix, len(dataset))
        if inspect.isclass(iterator) and issubclass(iterator, TensorBatchIterator):
            kwargs.setdefault("shuffle", training)
            if training and kwargs["shuffle"] and "generator" not in kwargs:
                kwargs["generator"] = self._epoch_generator()
        return iterator(dataset, **kwargs)

    def _iterator_kwargs(self, prefix: str, n: int) -> dict[str, Any]:
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = n
        return kwargs

    def _epoch_generator(self) -> torch.Generator | None:
        if getattr(self, "seed_", None) is None:
            return None
        return torch_generator(self.seed_, "shuffle", len(self.history))

    # -- training step -------------------------------------------------------
    def _set_training(self, training: bool = True) -> None:
        """Replaces skorch's per-batch mode walk: a no-op when already in that mode.

        skorch walks every submodule on every batch; here the full walk runs
        once per epoch (in :meth:`run_single_epoch`) and per batch only when
        the root module's mode differs.
        """
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and module.training != training:
                module.train(training)

    def run_single_epoch(
        self,
        iterator: Any,
        training: bool,
        prefix: str,
        step_fn: Any,
        **fit_params: Any,
    ) -> None:
        """skorch's, with the mode set once per epoch and the balancer's epoch data."""
        if iterator is not None:
            super()._set_training(training)  # type: ignore[misc]
        data = getattr(self, "_epoch_data_", None)
        if training and iterator is not None and data is not None:
            kwargs = self._iterator_kwargs("iterator_train", len(data.y))
            kwargs.setdefault("shuffle", True)
            if kwargs["shuffle"] and "generator" not in kwargs:
                kwargs["generator"] = self._epoch_generator()
            iterator = TensorBatchIterator.from_tensors(
                data.X, data.y, rows=data.rows, **kwargs
            )
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)  # type: ignore[misc]

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """skorch's (forward, loss, backward) with the balancer's batch hooks."""
        self._set_training(True)
        Xi, yi, rows = _unpack_batch(batch)
        Xi = to_tensor(Xi, device=self.device)
        yi = to_tensor(yi, device=self.device)
        y_pred = None
        balancer = getattr(self, "balancer_", None)
        if balancer is not None:
            Xi, yi = self.notify_balancer("transform_batch", X=Xi, y=yi, rows=rows)
            y_pred = self.notify_balancer("forward", X=Xi, rows=rows)
        if y_pred is None:
            y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        if balancer is not None:
            extra = self.notify_balancer(
                "penalty", X=Xi, y=yi, y_pred=y_pred, rows=rows
            )
            if extra is not None:
                loss = loss + extra
        loss.backward()
        self.notify_balancer("edit_gradients", X=Xi, y=yi, rows=rows)
        return {"loss": loss, "y_pred": y_pred}

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> Any:
        """skorch's criterion, with the branch-loss rule of the model contract in training.

        Branched modules (one head per branch, e.g. :class:`~mmexplain.MMTMNet`)
        are trained on the sum of their branch losses, as in Wu et al. (2022);
        see :func:`mmexplain.modules.contract.branch_loss`.
        """
        if training:
            loss = branch_loss(
                self.module_, self.criterion_, to_tensor(y_true, device=self.device)
            )
            if loss is not None:
                return loss
        return super().get_loss(y_pred, y_true, X=X, training=training)  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        for key in (
            "_fitting_",
            "_epoch_data_",
            "_train_tensors_",
            "_balancer_started_",
        ):
            state.pop(key, None)
        return state
