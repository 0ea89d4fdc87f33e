"""The balancer lifecycle inside an estimator: fitted copy, hook dispatch, epoch data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from sklearn.base import clone

from mmexplain.balancers.base import HOOKS, Balancer, EpochData
from mmexplain.data.batching import dataset_targets, is_in_memory, resolve_dataset
from mmexplain.data.sources import ArraySource, DatasetSource, RowSource

__all__ = ["BalancerLifecycleMixin"]

if TYPE_CHECKING:
    # for the type checker the mixins are what they are mixed into, a skorch
    # net (skorch ships no type information, so its attributes are Any)
    from skorch import NeuralNet as _Net
else:
    _Net = object


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays or tensors: compare by identity only
        return False


class BalancerLifecycleMixin(_Net):
    """Owns ``balancer_`` and calls its hooks (see :mod:`mmexplain.balancers.base`).

    skorch calls the net's own ``on_epoch_begin`` / ``on_epoch_end`` first in
    ``notify``; the overrides here run the balancer's epoch hooks there, so
    skorch's ``fit_loop`` is used unchanged.
    """

    # run-time state (set in ``initialize`` / ``fit``, see skorch's NeuralNet)
    cuda_dependent_attributes_: list[str]
    _train_tensors_: tuple[RowSource, torch.Tensor | None] | None
    _epoch_data_: EpochData | None

    def _init_balancer(self) -> None:
        """Fresh fitted copy of ``balancer`` (checked against the module)."""
        if self.balancer is not None and not isinstance(self.balancer, Balancer):
            raise TypeError(
                "balancer must be an mmexplain balancer (e.g. "
                "mmexplain.balancers.ModalityDropout()), got "
                f"{type(self.balancer).__name__}"
            )
        self.balancer_ = None if self.balancer is None else clone(self.balancer)
        if self.balancer_ is not None:
            self.balancer_.validate()
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
        theirs = self.balancer.get_params(deep=False)
        ours = fitted.get_params(deep=False)
        return all(theirs[k] is ours[k] or _same(theirs[k], ours[k]) for k in theirs)

    def notify_balancer(self, hook: str, **kwargs: Any) -> Any:
        """Call the fitted balancer's ``hook(self, **kwargs)``; None without a balancer."""
        if hook not in HOOKS:
            raise ValueError(f"unknown balancer hook {hook!r}; hooks are {HOOKS}")
        balancer = getattr(self, "balancer_", None)
        if balancer is None:
            return None
        return getattr(balancer, hook)(self, **kwargs)

    # -- skorch's own notifications ----------------------------------------
    def on_epoch_begin(
        self,
        net: Any,
        dataset_train: Any = None,
        dataset_valid: Any = None,
        **kwargs: Any,
    ) -> None:
        """skorch's ``NeuralNet.on_epoch_begin`` plus the balancer's epoch start."""
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        self._epoch_data_ = None
        if not getattr(self, "_balancer_started_", False):
            return
        # started: ``_start_balancer`` set the training split first
        assert self._train_tensors_ is not None
        X, y = self._train_tensors_
        replaced = self.notify_balancer(
            "epoch_started", epoch=len(self.history) - 1, X=X, y=y
        )
        if replaced is not None:
            self._epoch_data_ = EpochData(*replaced)

    def _start_balancer(self, dataset_train: Any) -> None:
        """Start the balancer's training run on the training split."""
        if getattr(self, "balancer_", None) is None:
            return
        self._train_tensors_ = self._training_tensors(dataset_train)
        X, y = self._train_tensors_
        self._balancer_started_ = True
        self.notify_balancer("fit_started", X=X, y=y)

    def on_epoch_end(
        self,
        net: Any,
        dataset_train: Any = None,
        dataset_valid: Any = None,
        **kwargs: Any,
    ) -> None:
        """skorch's ``NeuralNet.on_epoch_end`` plus the balancer's epoch end."""
        super().on_epoch_end(net, dataset_train, dataset_valid, **kwargs)
        self._epoch_data_ = None
        self.notify_balancer("epoch_finished", epoch=len(self.history) - 1)

    def _end_balancer(self) -> None:
        """End the balancer's training run (called in a ``finally``)."""
        started = getattr(self, "_balancer_started_", False)
        self._balancer_started_ = False
        self._train_tensors_ = None
        self._epoch_data_ = None
        if started:
            self.notify_balancer("fit_finished")

    def _training_tensors(self, dataset: Any) -> tuple[RowSource, torch.Tensor | None]:
        """The training split for the balancer: a row source and the targets.

        In memory, an :class:`~mmexplain.data.sources.ArraySource` over the
        training tensors on the training device; a Dataset on disk, a
        :class:`~mmexplain.data.sources.DatasetSource` (random access by row,
        nothing loaded up front). The targets are an encoded tensor.
        """
        if not is_in_memory(dataset):
            targets = dataset_targets(dataset)
            y_t = None if targets is None else torch.as_tensor(targets).to(self.device)
            return DatasetSource(dataset), y_t
        X, y = resolve_dataset(dataset)
        source = ArraySource({m: v.to(self.device) for m, v in X.items()})
        return source, (None if y is None else y.to(self.device))
