"""scikit-learn / skorch estimators for multimodal networks.

:class:`MultimodalClassifier` and :class:`MultimodalSegmenter` are skorch nets
that take ``X`` as a mapping ``{modality: array}``, call the module as
``module(**X)``, accept a ``balancer=`` (see :mod:`mmexplain.balancers`) and
follow scikit-learn's conventions: nested ``balancer__<param>`` parameters,
``clone``, ``GridSearchCV``, pipelines, seeded determinism and pickling.

In-memory data is batched by slicing whole tensors
(:class:`TensorBatchIterator`) instead of collating samples one by one through
a ``DataLoader``; pass ``iterator_train=torch.utils.data.DataLoader`` to get
skorch's default iteration back.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog
from skorch.dataset import unpack_data
from skorch.utils import is_dataset, to_numpy, to_tensor
from torch.utils.data import Dataset, Subset

from mmexplain.balancers.base import Balancer
from mmexplain.data import ModalityDict, check_X, check_y, to_tensor_dict

__all__ = [
    "MultimodalClassifier",
    "MultimodalSegmenter",
    "ModalityDataset",
    "TensorBatchIterator",
]

_MAX_SEED = 2**31 - 1


# ----------------------------------------------------------------------------
# data plumbing
# ----------------------------------------------------------------------------
class ModalityDataset(Dataset):
    """In-memory multimodal data set holding one float tensor per modality.

    ``X`` is converted once to ``float32`` tensors (the caller's arrays are
    never modified); ``y`` to a tensor. Indexing one sample returns
    ``({modality: tensor}, target)`` so that a ``DataLoader`` also works.
    """

    def __init__(self, X: Mapping[str, Any], y: Any = None) -> None:
        self.X = to_tensor_dict(X)
        self.y = None if y is None else torch.as_tensor(np.asarray(y))
        self._n = int(next(iter(self.X.values())).shape[0])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        yi = self.y[i] if self.y is not None else torch.zeros((), dtype=torch.long)
        return {k: v[i] for k, v in self.X.items()}, yi


def _resolve_dataset(
    dataset: Any,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Tensors behind a ModalityDataset or a (nested) Subset of one."""
    if isinstance(dataset, Subset):
        X, y = _resolve_dataset(dataset.dataset)
        idx = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        X = {k: v.index_select(0, idx.to(v.device)) for k, v in X.items()}
        return X, (None if y is None else y.index_select(0, idx.to(y.device)))
    if isinstance(dataset, ModalityDataset):
        return dataset.X, dataset.y
    raise TypeError(
        "TensorBatchIterator needs a ModalityDataset (or a Subset of one), got "
        f"{type(dataset).__name__}; use iterator_train=torch.utils.data.DataLoader "
        "for other datasets"
    )


class TensorBatchIterator:
    """Mini-batches of in-memory tensors, made by slicing (no per-sample collation).

    A drop-in replacement for ``DataLoader`` in skorch's ``iterator_train`` /
    ``iterator_valid`` slots. Each pass over it is one epoch; with
    ``shuffle=True`` every pass draws a new permutation from ``generator``.

    Parameters
    ----------
    dataset : ModalityDataset or Subset of one
    batch_size : int, default=128
    shuffle : bool, default=False
    drop_last : bool, default=False
    generator : torch.Generator or None
        Source of the shuffling permutations (global RNG when None).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(
                f"batch_size must be >= 1 (or -1 for the whole set), got {batch_size}"
            )
        self.X, self.y = _resolve_dataset(dataset)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.n = int(next(iter(self.X.values())).shape[0])

    @classmethod
    def from_tensors(
        cls, X: Mapping[str, torch.Tensor], y: torch.Tensor | None, **kwargs: Any
    ) -> TensorBatchIterator:
        """Build an iterator directly from tensors (used for per-epoch resampling)."""
        ds = ModalityDataset.__new__(ModalityDataset)
        ds.X, ds.y, ds._n = dict(X), y, int(next(iter(X.values())).shape[0])
        return cls(ds, **kwargs)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        n, bs = self.n, self.batch_size
        stop = n - n % bs if self.drop_last else n
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator)
            for start in range(0, stop, bs):
                idx = perm[start : start + bs]
                Xb = {k: v.index_select(0, idx.to(v.device)) for k, v in self.X.items()}
                yb = (
                    None
                    if self.y is None
                    else self.y.index_select(0, idx.to(self.y.device))
                )
                yield Xb, yb
        else:
            for start in range(0, stop, bs):
                Xb = {k: v[start : start + bs] for k, v in self.X.items()}
                yb = None if self.y is None else self.y[start : start + bs]
                yield Xb, yb


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays or tensors: compare by identity only
        return False


def _softmax_dim1(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities: softmax over the class axis (1), also for (N, C, H, W)."""
    return torch.softmax(logits, dim=1)


def _valid_accuracy(net: Any, X: Any, y: Any) -> float:
    """Accuracy on skorch's internal validation split, with encoded labels."""
    proba = net.predict_proba(X)
    return float(np.mean(proba.argmax(axis=1) == to_numpy(torch.as_tensor(y))))


# ----------------------------------------------------------------------------
# shared implementation
# ----------------------------------------------------------------------------
class _MultimodalNetMixin:
    """Everything the classifier and the segmenter share."""

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

    # -- randomness -------------------------------------------------------
    def _draw_seed(self) -> int | None:
        if self.random_state is None:
            return None
        return int(check_random_state(self.random_state).randint(_MAX_SEED))

    @contextmanager
    def _torch_rng(self, offset: int):
        """Seed torch's global RNG inside, and restore the caller's RNG state after."""
        seed = getattr(self, "seed_", None)
        if seed is None:
            yield
            return
        dev = (
            torch.device(self.device)
            if self.device is not None
            else torch.device("cpu")
        )
        devices = []
        if dev.type == "cuda" and torch.cuda.is_available():
            devices = [
                dev.index if dev.index is not None else torch.cuda.current_device()
            ]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((seed + offset) % _MAX_SEED)
            yield

    # -- initialization ---------------------------------------------------
    def initialize(self) -> Any:
        """Build module, criterion, optimizer and the fitted balancer copy."""
        self.seed_ = self._draw_seed()
        with self._torch_rng(0):
            super().initialize()  # type: ignore[misc]
        self._init_balancer()
        return self

    def _init_balancer(self) -> None:
        """Fresh fitted copy of ``balancer`` (checked against the module)."""
        if self.balancer is not None and not isinstance(self.balancer, Balancer):
            raise TypeError(
                "balancer must be an mmexplain balancer (e.g. "
                "mmexplain.balancers.ModalityDropout()), got "
                f"{type(self.balancer).__name__}"
            )
        self.balancer_ = None if self.balancer is None else clone(self.balancer)
        if "balancer_" not in self.cuda_dependent_attributes_:
            # pickled together with module_ and optimizer_ so that a balancer's
            # references to the module's parameters survive a pickle round trip
            self.cuda_dependent_attributes_ = self.cuda_dependent_attributes_[:] + [
                "balancer_"
            ]
        if self.balancer_ is not None:
            self.balancer_.check_model(self)

    def _balancer_is_current(self) -> bool:
        fitted = getattr(self, "balancer_", None)
        if self.balancer is None or fitted is None:
            return self.balancer is None and fitted is None
        if type(fitted) is not type(self.balancer):
            return False
        theirs, ours = (
            self.balancer.get_params(deep=False),
            fitted.get_params(deep=False),
        )
        return all(theirs[k] is ours[k] or _same(theirs[k], ours[k]) for k in theirs)

    def _module_defaults(self) -> dict[str, Any]:
        """Constructor arguments inferred from the training data."""
        return {}

    def initialize_module(self) -> Any:
        kwargs = self.get_params_for("module")
        if self.module is None:
            if getattr(self, "input_shapes_", None) is None:
                raise ValueError(
                    "module=None builds the network from the training data, so the "
                    "estimator must see data first: call fit(X, y) (max_epochs=0 "
                    "builds it without training), or pass module=..."
                )
            from mmexplain.modules import build_module

            kwargs = {"n_classes": self._module_defaults()["n_classes"], **kwargs}
            allowed = set(inspect.signature(build_module).parameters) - {
                "input_shapes",
                "task",
            }
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                raise ValueError(
                    f"module=None builds the default network, which takes module__ "
                    f"arguments {sorted(allowed - {'n_classes'})}; got unknown "
                    + ", ".join(f"module__{k}" for k in unknown)
                    + " (pass module=... to use another network)"
                )
            self.module_ = build_module(self.input_shapes_, task=self._task, **kwargs)
            return self
        module = self.module
        if isinstance(module, torch.nn.Module):
            # never train the caller's instance in place (sklearn convention)
            module = copy.deepcopy(module)
            self.module_ = type(module)(**copy.deepcopy(kwargs)) if kwargs else module
            return self
        if inspect.isclass(module) or callable(module):
            try:
                params = inspect.signature(module).parameters
            except (TypeError, ValueError):
                params = {}
            for key, value in self._module_defaults().items():
                if key in params and key not in kwargs:
                    kwargs[key] = value
        self.module_ = self.initialized_instance(module, copy.deepcopy(kwargs))
        return self

    def _get_predict_nonlinearity(self) -> Any:
        if self.predict_nonlinearity == "auto":
            if isinstance(getattr(self, "criterion_", None), torch.nn.CrossEntropyLoss):
                return _softmax_dim1
        return super()._get_predict_nonlinearity()  # type: ignore[misc]

    # -- validation --------------------------------------------------------
    def _check_fitted_X(self, X: Any) -> ModalityDict:
        """Validate ``X`` (against the fitted modalities and shapes when fitted)."""
        shapes = getattr(self, "input_shapes_", None)
        if shapes is None:
            return check_X(X)
        Xv = check_X(
            X, modalities=list(shapes), ndims={m: len(s) + 1 for m, s in shapes.items()}
        )
        for m, s in shapes.items():
            got = tuple(Xv[m].shape[1:])
            if len(s) == 1 and got != s:
                raise ValueError(
                    f"modality {m!r} has {got[0]} features per sample but the model "
                    f"was fitted on {s[0]}"
                )
            if len(s) >= 3 and got[0] != s[0]:
                raise ValueError(
                    f"modality {m!r} has {got[0]} channels but the model was fitted on {s[0]}"
                )
        return Xv

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
        """Data were validated by ``fit``/``partial_fit`` already."""

    def get_dataset(self, X: Any, y: Any = None) -> Any:
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
        fit_params.pop("_routing_method", None)
        self.notify("on_train_begin", X=X, y=y)
        try:
            self._fitting_ = True
            self.fit_loop(X, y, **fit_params)
        except KeyboardInterrupt:
            pass
        finally:
            self._fitting_ = False
        self.notify("on_train_end", X=X, y=y)
        return self

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = getattr(self, prefix)
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if inspect.isclass(iterator) and issubclass(iterator, TensorBatchIterator):
            kwargs.setdefault("shuffle", training)
            if training and kwargs["shuffle"] and "generator" not in kwargs:
                kwargs["generator"] = self._epoch_generator()
        return iterator(dataset, **kwargs)

    def _epoch_generator(self) -> torch.Generator | None:
        if getattr(self, "seed_", None) is None:
            return None
        gen = torch.Generator()
        gen.manual_seed((self.seed_ + 1_000_003 + 7919 * len(self.history)) % _MAX_SEED)
        return gen

    def fit_loop(
        self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any
    ) -> Any:
        """skorch's fit loop plus the balancer's epoch hooks and seeded RNG."""
        fit_params.pop("_routing_method", None)
        self.check_training_readiness()
        epochs = epochs if epochs is not None else self.max_epochs
        dataset_train, dataset_valid = self.get_split_datasets(X, y, **fit_params)
        on_epoch_kwargs = {
            "dataset_train": dataset_train,
            "dataset_valid": dataset_valid,
        }
        iterator_train = self.get_iterator(dataset_train, training=True)
        iterator_valid = None
        if dataset_valid is not None:
            iterator_valid = self.get_iterator(dataset_valid, training=False)

        balancer = getattr(self, "balancer_", None)
        with self._torch_rng(1 + len(self.history)):
            X_train = y_train = None
            if balancer is not None:
                X_train, y_train = self._training_tensors(dataset_train)
                balancer.on_train_begin(self, X_train, y_train)
            for _ in range(epochs):
                self.notify("on_epoch_begin", **on_epoch_kwargs)
                iterator = iterator_train
                if balancer is not None:
                    epoch = len(self.history) - 1
                    replaced = balancer.on_epoch_begin(self, epoch, X_train, y_train)
                    if replaced is not None:
                        iterator = self._iterator_from_tensors(*replaced)
                self.run_single_epoch(
                    iterator,
                    training=True,
                    prefix="train",
                    step_fn=self.train_step,
                    **fit_params,
                )
                self.run_single_epoch(
                    iterator_valid,
                    training=False,
                    prefix="valid",
                    step_fn=self.validation_step,
                    **fit_params,
                )
                self.notify("on_epoch_end", **on_epoch_kwargs)
                if balancer is not None:
                    balancer.on_epoch_end(self, len(self.history) - 1)
            if balancer is not None:
                balancer.on_train_end(self)
        return self

    def _training_tensors(
        self, dataset: Any
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        X, y = _resolve_dataset(dataset)
        X = to_tensor(X, device=self.device)
        return X, to_tensor(y, device=self.device)

    def _iterator_from_tensors(
        self, X: Mapping[str, torch.Tensor], y: torch.Tensor
    ) -> Any:
        kwargs = self.get_params_for("iterator_train")
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = int(next(iter(X.values())).shape[0])
        kwargs.setdefault("shuffle", True)
        if kwargs["shuffle"] and "generator" not in kwargs:
            kwargs["generator"] = self._epoch_generator()
        return TensorBatchIterator.from_tensors(X, y, **kwargs)

    # -- training step -------------------------------------------------------
    def _set_training(self, training: bool = True) -> None:
        """Set train/eval mode, skipping the module-tree walk when already set.

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
        if iterator is not None:
            super()._set_training(training)  # type: ignore[misc]
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)  # type: ignore[misc]

    def train_step_single(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        """Forward, loss (+ balancer penalty), backward, balancer gradient hook."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi = to_tensor(Xi, device=self.device)
        yi = to_tensor(yi, device=self.device)
        balancer = getattr(self, "balancer_", None)
        y_pred = None
        if balancer is not None:
            Xi, yi = balancer.transform_batch(self, Xi, yi)
            y_pred = balancer.forward(self, Xi)
        if y_pred is None:
            y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        if balancer is not None:
            extra = balancer.penalty(self, Xi, yi, y_pred)
            if extra is not None:
                loss = loss + extra
        loss.backward()
        if balancer is not None:
            balancer.after_backward(self, Xi, yi)
        return {"loss": loss, "y_pred": y_pred}

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> Any:
        """Criterion on the output; during training, modules that expose
        ``branch_logits`` (one head per branch, e.g. :class:`~mmexplain.MMTMNet`)
        are trained on the sum of their branch losses, as in seed 003."""
        branches = getattr(self.module_, "branch_logits", None) if training else None
        if branches:
            y_true = to_tensor(y_true, device=self.device)
            outputs = branches.values() if isinstance(branches, Mapping) else branches
            return sum(self.criterion_(out, y_true) for out in outputs)
        return super().get_loss(y_pred, y_true, X=X, training=training)  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state.pop("_fitting_", None)
        return state


# ----------------------------------------------------------------------------
# public estimators
# ----------------------------------------------------------------------------
class MultimodalClassifier(_MultimodalNetMixin, NeuralNetClassifier):
    """Multimodal neural-network classifier (a skorch ``NeuralNetClassifier``).

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
    verbose : int, default=0
        1 prints skorch's per-epoch table.
    device : str, default='cpu'
    random_state : int, RandomState or None, default=None
        Seeds weight initialization, shuffling, dropout and the balancer; the
        same seed and data give identical weights on CPU. Torch's global RNG
        state of the caller is restored afterwards.
    classes : array-like or None, default=None
        All class labels, when ``y`` may not contain every class.
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
        out: dict[str, Any] = {"n_classes": len(self.classes_inferred_)}
        shapes = getattr(self, "input_shapes_", None) or {}
        if shapes and all(len(s) == 3 for s in shapes.values()):
            out["in_channels"] = {m: s[0] for m, s in shapes.items()}
        return out

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        if y.ndim != 1:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            else:
                raise ValueError(
                    f"y must be 1-D (one label per sample), got shape {y.shape}"
                )
        if reset:
            if self.classes is not None:
                classes = np.asarray(self.classes)
            else:
                classes = np.unique(y)
            if len(classes) < 2 and self.classes is None:
                raise ValueError(
                    f"y has a single class {classes.tolist()}; need at least 2"
                )
            self.classes_inferred_ = classes
        classes = self.classes_
        sorter = np.argsort(classes, kind="stable")
        pos = np.searchsorted(classes, y, sorter=sorter)
        pos = np.clip(pos, 0, len(classes) - 1)
        encoded = sorter[pos]
        bad = classes[encoded] != y
        if np.any(bad):
            raise ValueError(
                f"y contains labels not among the classes {classes.tolist()}: "
                f"{np.unique(y[bad])[:5].tolist()}"
            )
        return encoded.astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (the original labels, e.g. strings)."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class MultimodalSegmenter(_MultimodalNetMixin, NeuralNet):
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
verbose, device, random_state, **kwargs
        As in :class:`MultimodalClassifier`.

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
        for m in Xv:
            if Xv[m].ndim != 4:
                raise ValueError(
                    f"modality {m!r} has shape {tuple(Xv[m].shape)}; segmentation "
                    "needs images of shape (N, C, H, W)"
                )
            if tuple(Xv[m].shape[2:]) != tuple(yv.shape[1:]):
                raise ValueError(
                    f"modality {m!r} has images of size {tuple(Xv[m].shape[2:])} but "
                    f"y has masks of size {tuple(yv.shape[1:])}"
                )
        return Xv, yv

    def _encode_y(self, y: np.ndarray, reset: bool) -> np.ndarray:
        if y.ndim != 3:
            raise ValueError(
                f"y must be integer masks of shape (N, H, W), got shape {y.shape}"
            )
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
            else:
                raise TypeError(
                    f"y must hold integer class labels, got dtype {y.dtype}"
                )
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
        """Per-pixel class probabilities, shape (N, n_classes, H, W)."""
        return super().predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted masks, shape (N, H, W)."""
        return self.predict_proba(X).argmax(axis=1)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean intersection over union of ``predict(X)`` with ``y``."""
        from mmexplain.metrics import mean_iou

        y = check_y(y, len(self._check_fitted_X(X)))
        return mean_iou(
            y,
            self.predict(X),
            n_classes=self.n_classes_,
            ignore_index=self.ignore_index,
        )
