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
import warnings
from typing import Any, cast

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import BatchScoring, Callback, EpochScoring
from skorch.dataset import get_len, unpack_data
from skorch.utils import to_tensor
from torch.utils.data import Subset

from mmexplain._core.distributed import average_gradients, data_parallel_shard
from mmexplain._core.torch_state import check_device
from mmexplain.data import ModalityDict, check_X, check_X_fitted, check_y
from mmexplain.data.batching import (
    ModalityDataset,
    TensorBatchIterator,
    TrainingDataset,
    dataset_loader,
    has_memmap,
    is_in_memory,
    resolve_dataset,
)
from mmexplain.data.sources import (
    ArraySource,
    DatasetSource,
    check_source,
    is_dataset,
)
from mmexplain.estimators._balancing import BalancerLifecycleMixin
from mmexplain.estimators._module import build_estimator_module
from mmexplain.estimators._weights import (
    attach_sample_weight,
    check_sample_weight,
    split_sample_weight,
    weighted_loss,
)
from mmexplain.modules.contract import branch_loss, branch_outputs
from mmexplain.seeding import (
    draw_seed,
    seeded_numpy_global,
    seeded_torch,
    torch_generator,
)

__all__ = ["MultimodalNetMixin"]


def _is_accelerator(device: torch.device) -> bool:
    """Whether ``device`` is not host memory (patched in tests to try it on CPU)."""
    return device.type not in ("cpu", "meta")


def _free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None where torch cannot tell."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    return None


#: ``on_batch_end`` methods known not to read the history's batch losses
#: (skorch's no-op, its epoch scorers' caching and its batch scorer)
_SAFE_ON_BATCH_END = frozenset(
    {
        Callback.on_batch_end,
        EpochScoring.on_batch_end,
        BatchScoring.on_batch_end,
    }
)


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
        return [k for k in super()._get_param_names() if not k.startswith("_")]

    def set_params(self, **params: Any) -> Any:
        """Set parameters, routing ``balancer__<name>`` to the balancer.

        skorch's own ``set_params`` would store ``balancer__tolerance`` as a
        flat attribute; here it really changes ``self.balancer``.
        """
        nested = {k: v for k, v in params.items() if k.startswith("balancer__")}
        rest = {k: v for k, v in params.items() if not k.startswith("balancer__")}
        super().set_params(**rest)
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
        """skorch's ``initialize`` under the ``"init"`` seed stream, plus the balancer.

        ``device`` is checked first: ``device='cuda'`` without a GPU raises a
        ``ValueError`` saying so, before anything is built.
        """
        check_device(self.device, who=type(self).__name__)
        self.seed_ = draw_seed(self.random_state)
        with seeded_torch(self.seed_, "init", device=self.device):
            super().initialize()
        self._init_balancer()
        return self

    def initialize_module(self) -> Any:
        """Replaces skorch's: builds the network from the data when ``module=None``."""
        self.module_ = build_estimator_module(self)
        return self

    def _module_defaults(self) -> dict[str, Any]:
        """Constructor arguments inferred from the training data.

        ``in_channels`` when every modality is an image; the estimators add
        their output size (``n_classes``).
        """
        shapes = getattr(self, "input_shapes_", None) or {}
        if shapes and all(len(s) == 3 for s in shapes.values()):
            return {"in_channels": {m: s[0] for m, s in shapes.items()}}
        return {}

    def _get_predict_nonlinearity(self) -> Any:
        """skorch's, with a softmax over axis 1 (also for per-pixel logits)."""
        if self.predict_nonlinearity == "auto":
            if isinstance(getattr(self, "criterion_", None), torch.nn.CrossEntropyLoss):
                return _softmax_dim1
        return super()._get_predict_nonlinearity()

    # -- fitted state (scikit-learn conventions) ------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        """Whether the net is fitted (initialized), for ``check_is_fitted``."""
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "module_")

    def check_is_fitted(
        self, attributes: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        """skorch's, with scikit-learn's message (naming the class, saying to call fit).

        Raises skorch's ``NotInitializedError``, a subclass of scikit-learn's
        ``NotFittedError`` (itself a ``ValueError`` and an ``AttributeError``).
        """
        from skorch.exceptions import NotInitializedError

        try:
            super().check_is_fitted(attributes, *args, **kwargs)
        except NotInitializedError:
            raise NotInitializedError(
                f"This {type(self).__name__} instance is not fitted yet: call "
                "fit(X, y) before using this method (or initialize(), e.g. before "
                "load_params)"
            ) from None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of every sample (the softmax of the network's logits).

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
            The modalities the model was fitted on, with the samples along
            the first axis.

        Returns
        -------
        ndarray of shape (N, n_classes)
            Probabilities in the order of ``classes_``; each row sums to 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        """
        self.check_is_fitted()
        return super().predict_proba(X)

    @property
    def n_features_in_(self) -> int:
        """Input features per sample seen in ``fit``, summed over the modalities.

        A modality's features are the product of its per-sample shape
        (``input_shapes_``); for one vector modality this is scikit-learn's
        ``n_features_in_``.
        """
        shapes = self.__dict__.get("input_shapes_")
        if shapes is None:
            raise AttributeError(
                f"{type(self).__name__} has no attribute 'n_features_in_' before fit"
            )
        return int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes.values()))

    # -- validation --------------------------------------------------------
    def _check_fitted_X(self, X: Any) -> ModalityDict:
        """Validate ``X`` (against the fitted modalities and shapes when fitted)."""
        return check_X_fitted(X, getattr(self, "input_shapes_", None))

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        raise NotImplementedError

    def _validate_fit(self, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray]:
        if is_dataset(X):
            return self._validate_fit_dataset(X, y, reset)
        Xv, y_enc = self._validate_fit_arrays(X, y, reset)
        if has_memmap(Xv):  # memory-mapped modalities: read row by row, never whole
            return TrainingDataset(Xv, y_enc), y_enc
        return Xv, y_enc

    def _validate_fit_arrays(
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

    def _validate_fit_dataset(
        self, X: Any, y: Any, reset: bool
    ) -> tuple[TrainingDataset, np.ndarray]:
        """A torch Dataset: checked from its first item, targets from ``y`` or the items."""
        shapes = None if reset else getattr(self, "input_shapes_", None)
        # X is a torch Dataset (is_dataset), so its source reads the Dataset
        source = cast(DatasetSource, check_source(X, input_shapes=shapes))
        if y is None:
            y = source.targets()
        y_arr = check_y(y, len(source))
        if reset:
            self.modalities_ = source.modalities
            self.input_shapes_ = source.row_shapes
        y_enc = self._encode_y(y_arr, reset)
        return TrainingDataset(X, y_enc), y_enc

    def check_data(self, X: Any, y: Any = None) -> None:
        """Replaces skorch's: the data were validated by ``fit``/``partial_fit``."""

    def get_dataset(self, X: Any, y: Any = None) -> Any:
        """skorch's, validating ``X`` first (outside ``fit``, which validated it).

        A user's torch Dataset is checked from its first item and wrapped as a
        :class:`~mmexplain.data.batching.TrainingDataset` (float32 modalities,
        one item layout for skorch's loops).
        """
        if isinstance(X, TrainingDataset | ModalityDataset | Subset):
            return X
        if is_dataset(X):
            check_source(X, input_shapes=getattr(self, "input_shapes_", None))
            return TrainingDataset(X)
        if has_memmap(X):
            return TrainingDataset(self._check_fitted_X(X))
        if not (isinstance(X, ModalityDict) and getattr(self, "_fitting_", False)):
            X = self._check_fitted_X(X)
        return super().get_dataset(X, y)

    # -- fitting -------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None, **fit_params: Any) -> Any:
        """Initialize (unless ``warm_start``) and train on ``X`` (mapping) and ``y``.

        Parameters
        ----------
        X : mapping of str to array-like, or a torch Dataset
        y : array-like
        sample_weight : array-like of shape (N,) or None
            Per-sample weights of the training loss: the weighted mean of the
            per-sample criterion (see :mod:`mmexplain.estimators._weights`).
            Routed by scikit-learn's metadata routing after
            ``set_fit_request(sample_weight=True)``. Not supported together
            with a balancer or for a Dataset ``X``.
        **fit_params
            Passed to skorch's ``fit_loop`` (and the module's forward).

        Returns
        -------
        self
        """
        reset = not self.warm_start or not self.initialized_
        Xv, yv = self._validate_fit(X, y, reset=reset)
        weights = check_sample_weight(self, Xv, sample_weight)
        if reset:
            self.initialize()
        else:  # warm start: keep the module, start the (possibly new) balancer afresh
            self._init_balancer()
        return self._partial_fit_validated(Xv, yv, _weights=weights, **fit_params)

    def partial_fit(
        self,
        X: Any,
        y: Any,
        classes: Any = None,
        sample_weight: Any = None,
        **fit_params: Any,
    ) -> Any:
        """Train for ``max_epochs`` more epochs without re-initializing.

        Parameters
        ----------
        X, y, sample_weight, **fit_params
            As in :meth:`fit`.
        classes : array-like or None
            scikit-learn's incremental-learning contract: all class labels,
            used on the first call (so a first batch may lack some classes;
            without it the first ``y`` must hold at least two) and checked
            against ``classes_`` on later calls.

        Returns
        -------
        self
        """
        reset = not self.initialized_
        self._set_partial_fit_classes(classes, reset)
        try:
            Xv, yv = self._validate_fit(X, y, reset=reset)
        finally:
            self.__dict__.pop("_partial_fit_classes", None)
        weights = check_sample_weight(self, Xv, sample_weight)
        if reset:
            self.initialize()
        elif not self._balancer_is_current():  # balancer set or changed since
            self._init_balancer()
        return self._partial_fit_validated(Xv, yv, _weights=weights, **fit_params)

    def _set_partial_fit_classes(self, classes: Any, reset: bool) -> None:
        """Hook for ``partial_fit(classes=...)`` (the classifier's); refused here."""
        if classes is not None:
            raise ValueError(
                f"{type(self).__name__}.partial_fit does not take classes=; set the "
                "classes in the constructor"
            )

    def _check_monitors(self) -> None:
        """Refuse callbacks that monitor validation scores when there are none."""
        if self.train_split is not None:
            return
        for name, cb in getattr(self, "callbacks_", None) or []:
            monitor = getattr(cb, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("valid_"):
                raise ValueError(
                    f"callback {name!r} ({type(cb).__name__}) monitors {monitor!r}, but "
                    "with train_split=None the net trains on all of X and records no "
                    "validation scores; pass train_split=skorch.dataset.ValidSplit(0.2) "
                    "for a validation split, or monitor a training score, e.g. "
                    f"{type(cb).__name__}(monitor='train_loss')"
                )

    def _partial_fit_validated(
        self, X: ModalityDict, y: np.ndarray, _weights: Any = None, **fit_params: Any
    ) -> Any:
        """skorch's ``partial_fit`` body: seeded, and the balancer always ends."""
        fit_params.pop("_routing_method", None)
        self._check_monitors()
        X_fit = attach_sample_weight(X, _weights)  # weights travel with their rows
        self.notify("on_train_begin", X=X, y=y)
        try:
            self._fitting_ = True
            with seeded_torch(self.seed_, "fit", len(self.history), device=self.device):
                self.fit_loop(X_fit, y, **fit_params)
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
            )
        if getattr(self, "_fitting_", False):
            dataset_train, dataset_valid = self._data_to_device(
                dataset_train, dataset_valid
            )
            self._start_balancer(dataset_train)
        return dataset_train, dataset_valid

    def _data_to_device(self, *datasets: Any) -> tuple[Any, ...]:
        """The in-memory splits as datasets on ``device`` (``data_on_device``).

        Each in-memory split (a :class:`ModalityDataset` or a ``Subset`` of
        one) becomes a :class:`ModalityDataset` of tensors on the device,
        copied once per ``fit``; :class:`TensorBatchIterator` then slices
        batches there. Unchanged on CPU, for Datasets read in batches and
        with ``data_on_device=False``.
        """
        mode = getattr(self, "data_on_device", False)
        if isinstance(mode, bool | np.bool_):
            mode = bool(mode)
        elif mode != "auto":
            raise ValueError(
                f"data_on_device must be True, False or 'auto', got {mode!r}"
            )
        device = torch.device(self.device or "cpu")
        present = [d for d in datasets if d is not None]
        if (
            mode is False
            or not _is_accelerator(device)
            or not present
            or not all(is_in_memory(d) for d in present)
        ):
            return datasets
        resolved = [None if d is None else resolve_dataset(d) for d in datasets]
        need = sum(
            t.nbytes
            for r in resolved
            if r is not None
            for t in [*r[0].values(), *([] if r[1] is None else [r[1]])]
        )
        free = _free_memory(device)
        if free is not None and need > (free if mode is True else free // 4):
            if mode == "auto":
                return datasets
            raise ValueError(
                f"data_on_device=True: the training data take {need / 2**30:.2f} "
                f"GiB and {device} has {free / 2**30:.2f} GiB free; pass "
                "data_on_device='auto' (keeps them in host memory when they do "
                "not fit) or False"
            )
        out: list[Any] = []
        for r in resolved:
            if r is None:
                out.append(None)
                continue
            ds = ModalityDataset.__new__(ModalityDataset)
            ds.X = {m: v.to(device) for m, v in r[0].items()}
            ds.y = None if r[1] is None else r[1].to(device)
            ds._n = int(next(iter(ds.X.values())).shape[0])
            out.append(ds)
        return tuple(out)

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        """skorch's, with seeded shuffling for :class:`TensorBatchIterator`."""
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = getattr(self, prefix)
        kwargs = self._iterator_kwargs(prefix, len(dataset))
        if inspect.isclass(iterator) and issubclass(iterator, TensorBatchIterator):
            kwargs.setdefault("shuffle", training)
            if training and kwargs["shuffle"] and "generator" not in kwargs:
                kwargs["generator"] = self._epoch_generator()
            if training:
                kwargs.setdefault("shard", data_parallel_shard())
            if not is_in_memory(dataset):  # a Dataset on disk: a seeded DataLoader
                kwargs.setdefault(
                    "pin_memory", torch.device(self.device or "cpu").type == "cuda"
                )
                return dataset_loader(dataset, **kwargs)
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
            super()._set_training(training)
        data = getattr(self, "_epoch_data_", None)
        if training and iterator is not None and data is not None:
            iterator = self._epoch_iterator(data)
        self._run_batches(iterator, training, prefix, step_fn, **fit_params)
        if training and iterator is not None:
            self._check_finite_training()

    def _run_batches(
        self,
        iterator: Any,
        training: bool,
        prefix: str,
        step_fn: Any,
        **fit_params: Any,
    ) -> None:
        """skorch's batch loop, reading the losses from the device once per epoch.

        skorch records ``loss.item()`` after every batch: on a GPU that is a
        host synchronization per batch, which stops the host from queuing
        the next batch while the device works. Here the detached batch
        losses stay on the device and are written into the history in one
        transfer when the loop ends, so the history is the same as skorch's
        (same keys, same values) by the time any epoch-level callback reads
        it. When a callback (or a subclass) may read a batch's loss during
        the epoch (any ``on_batch_begin``/``on_batch_end`` that is not one
        of skorch's known not to, e.g. ``ProgressBar`` or a batch-wise
        ``LRScheduler``), skorch's per-batch ``item()`` is kept.
        """
        if iterator is None:
            return
        if not self._defer_loss_sync():
            super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
            return
        batches = self.history[-1]["batches"]
        first = len(batches)
        losses = []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            losses.append(step["loss"].detach().reshape(()).to(torch.float64))
            Xb = batch[0] if isinstance(batch, tuple | list) else batch
            self.history.record_batch(prefix + "_batch_size", get_len(Xb))
            self.notify("on_batch_end", batch=batch, training=training, **step)
        if losses:
            values = torch.stack(losses).tolist()  # the epoch's one sync
            for record, value in zip(batches[first:], values, strict=True):
                record[prefix + "_loss"] = value
        self.history.record(prefix + "_batch_count", len(losses))

    def _defer_loss_sync(self) -> bool:
        """Whether no batch-level hook can read a batch's loss before the epoch ends."""
        if (
            type(self).on_batch_begin is not NeuralNet.on_batch_begin
            or type(self).on_batch_end is not NeuralNet.on_batch_end
        ):
            return False
        for _, cb in getattr(self, "callbacks_", []):
            if type(cb).on_batch_begin is not Callback.on_batch_begin:
                return False
            if type(cb).on_batch_end not in _SAFE_ON_BATCH_END:
                return False
        return True

    def _check_finite_training(self) -> None:
        """Raise (or warn) when the epoch's training loss or the weights are not finite."""
        losses = [
            b["train_loss"] for b in self.history[-1, "batches"] if "train_loss" in b
        ]
        bad_loss = not np.all(np.isfinite(losses))
        params = [p.detach() for p in self.module_.parameters()]
        # one device sync per epoch, not one per parameter tensor
        bad_weights = bool(params) and not bool(
            torch.stack([torch.isfinite(p).all() for p in params]).all()
        )
        if not (bad_loss or bad_weights):
            return
        what = "training loss" if bad_loss else "weights"
        message = (
            f"training diverged: the {what} became NaN or infinite in epoch "
            f"{len(self.history)} (lr={self.lr}); lower the learning rate, rescale "
            "the inputs, or clip gradients (skorch's GradientNormClipping callback)"
        )
        mode = getattr(self, "on_nonfinite", "raise")
        if mode not in ("raise", "warn"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'warn', got {mode!r}")
        if mode == "raise":
            raise FloatingPointError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)

    def _epoch_iterator(self, data: Any) -> Any:
        """Batches of a balancer's :class:`~mmexplain.balancers.EpochData`."""
        kwargs = self._iterator_kwargs("iterator_train", len(data.y))
        kwargs.setdefault("shuffle", True)
        if kwargs["shuffle"] and "generator" not in kwargs:
            kwargs["generator"] = self._epoch_generator()
        kwargs.setdefault("shard", data_parallel_shard())
        if data.X is not None:
            return TensorBatchIterator.from_tensors(
                data.X, data.y, rows=data.rows, **kwargs
            )
        # epoch data come from a started balancer, which has the training split
        assert self._train_tensors_ is not None
        X, _ = self._train_tensors_
        if isinstance(X, DatasetSource):  # rows read from the Dataset
            ds = TrainingDataset(X.dataset, data.y, index=data.index, rows=data.rows)
            return dataset_loader(ds, **kwargs)
        # in memory: _training_tensors puts the tensors in an ArraySource
        assert isinstance(X, ArraySource)
        idx = torch.as_tensor(np.asarray(data.index), dtype=torch.long)
        tensors = {m: v.index_select(0, idx.to(v.device)) for m, v in X.X.items()}
        return TensorBatchIterator.from_tensors(
            tensors, data.y, rows=data.rows, **kwargs
        )

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
        average_gradients(self.module_)  # data parallel: no-op in one process
        self.notify_balancer("edit_gradients", X=Xi, y=yi, rows=rows)
        return {"loss": loss, "y_pred": y_pred}

    def infer(self, x: Any, **fit_params: Any) -> Any:
        """skorch's, without the per-sample weights that travel with a batch."""
        x, _ = split_sample_weight(x)
        return super().infer(x, **fit_params)

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> Any:
        """skorch's criterion, with the branch-loss rule of the model contract in training.

        Branched modules (one head per branch, e.g. :class:`~mmexplain.MMTMNet`)
        are trained on the sum of their branch losses, as in Wu et al. (2022);
        see :func:`mmexplain.modules.contract.branch_loss`. A batch with
        per-sample weights (``fit(sample_weight=...)``) gets the weighted loss
        of :func:`~mmexplain.estimators._weights.weighted_loss`.
        """
        _, weights = split_sample_weight(X)
        if weights is not None:
            y_t = to_tensor(y_true, device=self.device)
            outputs = (branch_outputs(self.module_) if training else None) or [y_pred]
            return weighted_loss(self.criterion_, outputs, y_t, weights)
        if training:
            loss = branch_loss(
                self.module_, self.criterion_, to_tensor(y_true, device=self.device)
            )
            if loss is not None:
                return loss
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in (
            "_fitting_",
            "_epoch_data_",
            "_train_tensors_",
            "_balancer_started_",
        ):
            state.pop(key, None)
        return state
