"""The balancer hook protocol.

A *balancer* steers how a multimodal network uses its modalities while it
trains. It is a scikit-learn estimator (so ``clone``, ``get_params`` and nested
``balancer__<param>`` grid searches work) whose hooks are called by the
training loop of :class:`~mmexplain.MultimodalClassifier` and
:class:`~mmexplain.MultimodalSegmenter`, through one dispatcher
(``net.notify_balancer(hook, **kwargs)``, modelled on skorch's
``NeuralNet.notify``). The estimator clones the balancer at the start of
``fit`` (the fitted copy lives in ``net.balancer_``), so a balancer may keep
run-time state in attributes ending with ``_``.

Every hook takes the net positionally and everything else by keyword, and
accepts ``**kwargs`` so that new arguments can be added without breaking
balancers. The names are distinct from skorch's callback methods
(``on_epoch_begin``, ...), which have other signatures. Order of calls during
``fit``::

    check_model(net)                              once, after the module is built
    fit_started(net, X=, y=)                      once per fit / partial_fit
    for each epoch:
        epoch_started(net, epoch=, X=, y=)        -> optional EpochData for this epoch
        for each training batch:
            X_b, y_b = transform_batch(net, X=, y=, rows=)
            y_pred = forward(net, X=, rows=)      (None -> the module's own forward)
            loss = criterion(y_pred, y_b) + penalty(net, X=, y=, y_pred=, rows=)
            loss.backward()
            edit_gradients(net, X=, y=, rows=)    (gradient edits)
            optimizer.step()
        epoch_finished(net, epoch=)               (after validation)
    fit_finished(net)                             always, also when training is interrupted

``X`` arguments of the batch hooks are ``dict[str, torch.Tensor]`` on the
training device and hold only modalities. The whole-set ``X`` of
``fit_started`` / ``epoch_started`` is always a
:class:`~mmexplain.data.sources.RowSource`, the one internal data model: an
:class:`~mmexplain.data.sources.ArraySource` over the training tensors (on the
training device) when the data are in memory, a
:class:`~mmexplain.data.sources.DatasetSource` when they are a Dataset on disk.
Use ``X.modalities``, ``len(X)``, ``X.take(rows)``, ``X.subset(rows)`` or
:func:`modality_means`, and explain it directly (explainers take row sources),
and the balancer works in and out of core alike. (Called by hand with a dict,
a hook converts it with :func:`training_source`.) Per-row side information (e.g. which modalities a
re-sampled copy trains) travels in ``rows``: the ``rows`` mapping of the
:class:`EpochData` that ``epoch_started`` returned, sliced to the batch (None
when there is none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from mmexplain._core.distributed import all_reduce_sum
from mmexplain._core.params import validate_params
from mmexplain._core.rows import reduce_rows
from mmexplain.data.sources import ArraySource, RowSource
from mmexplain.metrics import check_target  # re-exported: balancers validate targets
from mmexplain.modules.contract import require
from mmexplain.seeding import draw_seed, numpy_rng, torch_generator

__all__ = [
    "HOOKS",
    "Balancer",
    "DeviceMean",
    "EpochData",
    "TrainingNet",
    "check_target",
    "encode_fuse",
]

#: the hooks, in call order
HOOKS = (
    "fit_started",
    "epoch_started",
    "transform_batch",
    "forward",
    "penalty",
    "edit_gradients",
    "epoch_finished",
    "fit_finished",
)


class EpochData(NamedTuple):
    """Replacement training data for one epoch, returned by ``epoch_started``.

    Either ``X`` (tensors) or ``index`` (rows of the training data, repeats
    allowed: the estimator reads them from memory or from the Dataset, so
    this works out of core). ``rows`` maps names to tensors with one entry
    per row of the epoch's data; each batch's slice is passed to the batch
    hooks as ``rows=``.

    Parameters
    ----------
    X : mapping of str to Tensor or None
        The epoch's inputs, one tensor per modality; None when ``index``
        picks the rows.
    y : Tensor
        The epoch's targets, one per row of the epoch.
    rows : mapping of str to Tensor or None, default=None
        Per-row side information (first dimension: the epoch's rows).
    index : ndarray of int or None, default=None
        Rows of the training data that make up the epoch, in order.

    Examples
    --------
    A balancer that trains every epoch on each row twice, flagging the copies:

    >>> import numpy as np
    >>> import torch
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import Balancer, EpochData
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> class Twice(Balancer):
    ...     def epoch_started(self, net, *, epoch, X, y, **kwargs):
    ...         n = len(y)
    ...         return EpochData(X=None, y=y.repeat(2),
    ...                          rows={"copy": torch.arange(2 * n) >= n},
    ...                          index=np.tile(np.arange(n), 2))
    ...     def transform_batch(self, net, *, X, y, rows=None, **kwargs):
    ...         self.seen_ = getattr(self, "seen_", 0) + len(y)
    ...         self.copies_ = getattr(self, "copies_", 0) + int(rows["copy"].sum())
    ...         return X, y
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(balancer=Twice(), max_epochs=1,
    ...                            random_state=0).fit(X, y)
    >>> clf.balancer_.seen_, clf.balancer_.copies_
    (200, 100)
    """

    X: Mapping[str, torch.Tensor] | None
    y: torch.Tensor
    rows: Mapping[str, torch.Tensor] | None = None
    index: np.ndarray | None = None  # type: ignore[assignment]  # the public field shadows tuple.index


class TrainingNet(Protocol):
    """What a balancer's hooks may use of the ``net`` they receive (for type checkers).

    The estimator passes itself (a :class:`~mmexplain.MultimodalClassifier`
    or :class:`~mmexplain.MultimodalSegmenter`). Balancers read the network
    (``module_``, checked against ``requires`` in :meth:`Balancer.check_model`),
    record per-epoch values in skorch's ``history`` (``history.record(key,
    value)``) and place their tensors on ``device``. ``seed_`` (the seed drawn
    from the estimator's ``random_state``) and ``optimizer_`` are read with
    ``getattr`` where present, so a hook called by hand with a stand-in net
    needs only what it uses.
    """

    module_: torch.nn.Module
    history: Any
    device: Any


def training_source(X: Any) -> RowSource:
    """The whole-set training data as a :class:`~mmexplain.data.sources.RowSource`.

    The estimator passes one already; a mapping (a hook called by hand) is
    wrapped in an :class:`~mmexplain.data.sources.ArraySource`, without a copy.
    """
    return X if isinstance(X, RowSource) else ArraySource(X)


def source_device(X: Any, net: Any = None) -> torch.device:
    """The device the training rows live on (the net's device for a Dataset)."""
    mapping = X.X if isinstance(X, ArraySource) else X
    if isinstance(mapping, Mapping):
        first = next(iter(mapping.values()))
        if isinstance(first, torch.Tensor):
            return first.device
    return torch.device(getattr(net, "device", None) or "cpu")


def modality_names(X: Any) -> tuple[str, ...]:
    """Modality names of the training data (a row source or a mapping)."""
    return tuple(training_source(X).modalities)


def modality_means(
    X: Any, device: torch.device | str, batch_size: int = 4096
) -> dict[str, torch.Tensor]:
    """Per-modality mean row ``(1, ...)`` of the training data, streamed for sources."""
    X = training_source(X)
    tensors = X.X if isinstance(X, ArraySource) else None
    if tensors is not None and all(
        isinstance(v, torch.Tensor) for v in tensors.values()
    ):
        return {m: v.float().mean(dim=0, keepdim=True) for m, v in tensors.items()}
    totals = reduce_rows(
        X,
        lambda rows, _: {
            m: v.double().sum(dim=0, keepdim=True) for m, v in rows.items()
        },
        batch_size=batch_size,
        device=device,
    )
    return {m: (t / len(X)).float() for m, t in totals.items()}


def encode_fuse(
    module: Any,
    X: Mapping[str, torch.Tensor],
    *,
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(fuse(**Z'), Z)`` with ``Z = encode(**X)`` and ``Z' = transform(Z)`` (or Z).

    The training forward of the balancers that work on embeddings; ``Z`` is
    returned with its graph so the caller can keep (or detach) it.
    """
    Z = module.encode(**X)
    return module.fuse(**(transform(Z) if transform is not None else Z)), Z


def detached(Z: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The embeddings without their graph."""
    return {m: z.detach() for m, z in Z.items()}


class DeviceMean:
    """A running mean of (M,) vectors kept on the device: no host sync per step.

    ``add(value, weight)`` accumulates ``weight * value`` and ``weight`` (a 0/1
    tensor says whether the step counts); :meth:`mean` synchronizes once and
    returns None when nothing was counted.
    """

    def __init__(self, size: int, device: torch.device | str) -> None:
        self.total = torch.zeros(size, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, value: torch.Tensor, weight: torch.Tensor | float = 1.0) -> None:
        weight = torch.as_tensor(weight, dtype=torch.float64, device=self.total.device)
        self.total += value.detach().double() * weight
        self.count += weight

    def mean(self) -> list[float] | None:
        """The mean over all steps (and all processes in data-parallel training)."""
        total, count = all_reduce_sum(self.total), all_reduce_sum(self.count)
        if float(count) <= 0:
            return None
        return (total / count).cpu().tolist()


class Balancer(BaseEstimator):
    """Base class of all balancers (see the module docstring for the protocol).

    Subclasses list the model capabilities they need in ``requires`` (keys of
    :data:`mmexplain.modules.contract.CAPABILITIES`); :meth:`check_model`
    checks them with :func:`~mmexplain.modules.contract.require`.

    Examples
    --------
    A balancer that overrides one hook, training with modality ``'b'`` zeroed:

    >>> import torch
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import Balancer
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> class ZeroB(Balancer):
    ...     def transform_batch(self, net, *, X, y, rows=None, **kwargs):
    ...         return {**X, "b": torch.zeros_like(X["b"])}, y
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(balancer=ZeroB(), max_epochs=1,
    ...                            random_state=0).fit(X, y)
    >>> clf.balancer_
    ZeroB()
    >>> clf.balancer_ is clf.balancer  # the fitted copy is a clone
    False
    """

    #: capabilities the balancer needs from the module
    requires: tuple[str, ...] = ()
    #: scikit-learn parameter constraints, checked before training starts
    #: (:meth:`validate`); data-dependent checks belong in ``fit_started``
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    # -- validation ------------------------------------------------------
    def validate(self) -> None:
        """Check the parameters against ``_parameter_constraints``.

        The estimator calls it on its fitted copy before the module is built,
        so a bad value fails before any training (skipped under
        ``sklearn.config_context(skip_parameter_validation=True)``).
        """
        validate_params(self)

    def check_model(self, net: TrainingNet) -> None:
        """Raise ``TypeError`` if ``net.module_`` lacks a capability in ``requires``."""
        for capability in self.requires:
            require(net.module_, capability, type(self).__name__)

    # -- hooks -----------------------------------------------------------
    def fit_started(
        self, net: TrainingNet, *, X: RowSource, y: torch.Tensor, **kwargs: Any
    ) -> None:
        """Called once at the start of training with the full training data."""

    def epoch_started(
        self,
        net: TrainingNet,
        *,
        epoch: int,
        X: RowSource,
        y: torch.Tensor,
        **kwargs: Any,
    ) -> EpochData | None:
        """Called before each epoch; may return replacement training data for it."""
        return None

    def transform_batch(
        self,
        net: TrainingNet,
        *,
        X: dict[str, torch.Tensor],
        y: torch.Tensor,
        rows: Mapping[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Return the (possibly modified) training batch. Must not modify ``X`` in place."""
        return X, y

    def forward(
        self,
        net: TrainingNet,
        *,
        X: dict[str, torch.Tensor],
        rows: Mapping[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor | None:
        """Return the training-step output, or None to use the module's forward."""
        return None

    def penalty(
        self,
        net: TrainingNet,
        *,
        X: dict[str, torch.Tensor],
        y: torch.Tensor,
        y_pred: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor | None:
        """Extra differentiable loss term added to the task loss (None for none)."""
        return None

    def edit_gradients(
        self,
        net: TrainingNet,
        *,
        X: dict[str, torch.Tensor],
        y: torch.Tensor,
        **kwargs: Any,
    ) -> None:
        """Called after ``loss.backward()`` and before the optimizer step."""

    def epoch_finished(self, net: TrainingNet, *, epoch: int, **kwargs: Any) -> None:
        """Called after each epoch (after validation)."""

    def fit_finished(self, net: TrainingNet, **kwargs: Any) -> None:
        """Called once at the end of training, also when it is interrupted."""

    # -- helpers for subclasses -------------------------------------------
    def _seed(self, net: Any) -> int | None:
        """The seed of this balancer's draws: its ``random_state``, else the net's."""
        random_state = getattr(self, "random_state", None)
        if random_state is not None:
            return draw_seed(random_state)
        return getattr(net, "seed_", None)

    def _stream(self) -> str:
        return f"balancer.{type(self).__name__}"

    def _make_generator(self, net: Any, device: torch.device | str) -> torch.Generator:
        """A local torch generator on ``device`` for this balancer's draws.

        Seeded from ``random_state`` or the estimator's seed (stream
        ``"balancer.<ClassName>"``); from fresh OS entropy when neither is set.
        """
        return torch_generator(self._seed(net), self._stream(), device=device)

    def _make_rng(self, net: Any) -> np.random.RandomState:
        """A NumPy ``RandomState`` for this balancer's draws.

        ``check_random_state(random_state)`` when the balancer has one (as in
        scikit-learn), else seeded from the estimator's seed (stream
        ``"balancer.<ClassName>"``), else from fresh OS entropy.
        """
        random_state = getattr(self, "random_state", None)
        if random_state is not None:
            return check_random_state(random_state)
        return numpy_rng(getattr(net, "seed_", None), self._stream())
