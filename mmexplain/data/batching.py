"""Mini-batches for training and prediction.

:class:`ModalityDataset` holds in-memory modalities as tensors;
:class:`TensorBatchIterator` makes mini-batches by slicing them (no
per-sample collation), as a drop-in replacement for ``DataLoader`` in
skorch's ``iterator_train`` / ``iterator_valid`` slots.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from mmexplain.data._dict import to_tensor_dict
from mmexplain.data._items import ItemLayout, collate_items, split_item

__all__ = [
    "ModalityDataset",
    "TensorBatchIterator",
    "TrainingDataset",
    "dataset_loader",
    "dataset_targets",
    "has_memmap",
    "is_in_memory",
    "resolve_dataset",
]


class ModalityDataset(Dataset):
    """In-memory multimodal data set holding one float tensor per modality.

    ``X`` is converted once to ``float32`` tensors (the caller's arrays are
    never modified); ``y`` to a tensor. Indexing one sample returns
    ``({modality: tensor}, target)`` so that a ``DataLoader`` also works.

    Parameters
    ----------
    X : mapping of str to array-like
        Modalities with the samples along the first axis.
    y : array-like or None, default=None
        Targets, one per sample; None gives every sample the target 0 (for
        prediction).

    Attributes
    ----------
    X : dict of str to Tensor
        The ``float32`` tensors.
    y : Tensor or None
        The targets.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import ModalityDataset
    >>> X = {"eo": np.arange(8).reshape(4, 2), "sar": np.ones((4, 1, 2, 2))}
    >>> ds = ModalityDataset(X, y=[0, 1, 0, 1])
    >>> len(ds), ds.X["eo"].dtype
    (4, torch.float32)
    >>> xi, yi = ds[1]
    >>> xi["eo"], yi
    (tensor([2., 3.]), tensor(1))
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


class TrainingDataset(Dataset):
    """The one wrapper the estimators train on when the rows are not in memory.

    ``data`` is a user's Dataset (items ``({modality: array}, target)`` or
    ``{modality: array}``), another TrainingDataset, or a mapping of
    memory-mapped arrays (read row by row, never whole). Item ``k`` is
    ``({modality: float32 tensor}, y[k])`` (a placeholder 0 without ``y``),
    or ``(X, y[k], {name: rows[name][k]})`` with per-row side information, so
    skorch's loops and a ``DataLoader`` see one item layout.

    A ``DataLoader`` reads a batch at once (``__getitems__``): a user's
    Dataset is checked there, batch by batch, as its items are collated
    (:func:`~mmexplain.data._items.collate_items`: the first item's
    modalities and per-sample shapes, real values finite as float32), so
    ``fit``, ``predict`` and ``score`` refuse a bad item with the modality and
    the item named, without reading the Dataset twice.

    With ``index`` the wrapper is a re-sampled epoch: item ``k`` reads row
    ``index[k]`` of ``data`` (repeats allowed) and ``y`` / ``rows`` are per
    item of the epoch (a balancer's :class:`~mmexplain.balancers.EpochData`).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data.batching import TrainingDataset
    >>> X = {"a": np.arange(6.0).reshape(3, 2)}
    >>> ds = TrainingDataset(X, y=np.array([0, 1, 0]))
    >>> ds[1]
    ({'a': tensor([2., 3.])}, tensor(1))
    >>> epoch = TrainingDataset(ds, y=np.array([1, 1]), index=np.array([1, 1]))
    >>> len(epoch), epoch[0][0]["a"].tolist()
    (2, [2.0, 3.0])
    """

    def __init__(
        self,
        data: Dataset | Mapping[str, Any],
        y: Any = None,
        *,
        index: np.ndarray | None = None,
        rows: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.dataset = data
        self.targets_array = None if y is None else _host_array(y)
        self.index = None if index is None else np.asarray(index)
        self.rows = {k: v.cpu() for k, v in (rows or {}).items()}
        # a user's Dataset: every item is checked against its first one
        base, _ = _unwrap_subsets(data, [])
        self.layout = (
            # a user's Dataset here (``base`` is no mapping)
            ItemLayout.of(split_item(cast(Dataset, data)[0])[0])
            if not isinstance(base, Mapping | TrainingDataset) and len(data) > 0  # type: ignore[arg-type]
            else None
        )

    def __len__(self) -> int:
        if self.index is not None:
            return len(self.index)
        if isinstance(self.dataset, Mapping):
            return int(next(iter(self.dataset.values())).shape[0])
        return len(self.dataset)  # type: ignore[arg-type]

    def read_rows(
        self,
        rows: Sequence[int],
        modalities: Sequence[str] | None = None,
        *,
        check: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The features of items ``rows``: one float32 tensor per modality, checked.

        Parameters
        ----------
        rows : sequence of int
            Item indices of this dataset.
        modalities : sequence of str, optional
            The modalities to read (default: all).
        check : bool, default=True
            Check the values of a user's Dataset (real, finite as float32);
            memory-mapped arrays were checked when they were validated.

        Returns
        -------
        dict of str to tensor
        """
        src = [int(r) for r in rows]
        if self.index is not None:
            src = self.index[src].tolist()
        data = self.dataset
        if isinstance(data, Mapping):
            idx = np.asarray(src, dtype=np.intp)
            mods = tuple(modalities) if modalities is not None else tuple(data)
            return {m: _take_host_rows(data[m], idx) for m in mods}
        base, base_rows = _unwrap_subsets(data, src)
        if isinstance(base, TrainingDataset):
            return base.read_rows(base_rows, modalities, check=check)
        Xs = [split_item(data[r])[0] for r in src]
        return collate_items(
            Xs,
            self.layout,  # type: ignore[arg-type]
            rows=src,
            modalities=modalities,
            dataset=data,
            check=check,
        )

    def __getitems__(self, ks: list[int]) -> CollatedBatch:
        """Items ``ks`` as one batch, read and checked at once (see :func:`collate_batch`)."""
        ks = [int(k) for k in ks]
        X = self.read_rows(ks)
        y = (
            torch.zeros(len(ks), dtype=torch.long)
            if self.targets_array is None
            else torch.as_tensor(self.targets_array[ks])
        )
        if not self.rows:
            return CollatedBatch((X, y))
        pos = torch.as_tensor(ks, dtype=torch.long)
        return CollatedBatch((X, y, {name: v[pos] for name, v in self.rows.items()}))

    def __getitem__(self, k: int) -> tuple[Any, ...]:
        return self.__getitems__([int(k)])[0]


class CollatedBatch(Sequence):
    """A batch of :class:`TrainingDataset` items, already stacked and checked.

    :func:`collate_batch` returns ``batch`` as it is; any other collate
    function (e.g. ``DataLoader``'s default) sees a sequence of items, views
    into ``batch``, and gives the same result.
    """

    def __init__(self, batch: tuple[Any, ...]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return int(self.batch[1].shape[0])

    def __getitem__(self, k: int) -> tuple[Any, ...]:  # type: ignore[override]
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        X, y = self.batch[0], self.batch[1]
        item: tuple[Any, ...] = ({m: t[k] for m, t in X.items()}, y[k])
        if len(self.batch) == 3:
            item += ({name: v[k] for name, v in self.batch[2].items()},)
        return item


def collate_batch(data: Any) -> Any:
    """``DataLoader`` collate function: a :class:`CollatedBatch` as it is, else the default.

    Returns what ``default_collate`` returns for the same items (a list
    ``[X, y]`` or ``[X, y, rows]``), without stacking them a second time.
    """
    if isinstance(data, CollatedBatch):
        return list(data.batch)
    return default_collate(data)


def _unwrap_subsets(dataset: Any, rows: Sequence[int]) -> tuple[Any, list[int]]:
    """The dataset under ``Subset`` wrappers, and ``rows`` as its indices."""
    rows = list(rows)
    while isinstance(dataset, Subset):
        rows = [int(dataset.indices[r]) for r in rows]
        dataset = dataset.dataset
    return dataset, rows


def _take_host_rows(value: Any, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of an array, memmap or tensor as a float32 tensor (never whole)."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, torch.from_numpy(idx).to(value.device)).float()
    rows = np.asarray(value[idx])
    if not rows.flags.writeable:
        rows = np.array(rows)
    return torch.from_numpy(rows).to(torch.float32)


def _host_array(y: Any) -> np.ndarray:
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def is_in_memory(dataset: Any) -> bool:
    """A ModalityDataset or a (nested) Subset of one: batches by tensor slicing."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, ModalityDataset)


def dataset_targets(dataset: Any) -> np.ndarray | None:
    """Encoded targets of a TrainingDataset / ModalityDataset (or a Subset of one)."""
    if isinstance(dataset, Subset):
        y = dataset_targets(dataset.dataset)
        return None if y is None else y[np.asarray(dataset.indices)]
    if isinstance(dataset, TrainingDataset):
        return dataset.targets_array
    if isinstance(dataset, ModalityDataset):
        return None if dataset.y is None else dataset.y.cpu().numpy()
    return None


class _BatchSampler(torch.utils.data.Sampler):
    """Batches of row indices as :class:`TensorBatchIterator` makes them (optionally sharded)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        generator: torch.Generator | None,
        shard: tuple[int, int] | None,
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.drop_last, self.generator, self.shard = drop_last, generator, shard

    def __len__(self) -> int:
        return (
            self.n // self.batch_size
            if self.drop_last
            else -(-self.n // self.batch_size)
        )

    def __iter__(self) -> Iterator[list[int]]:
        n, bs = self.n, self.batch_size
        order = (
            torch.randperm(n, generator=self.generator)
            if self.shuffle
            else torch.arange(n)
        )
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            idx = order[start : start + bs]
            if self.shard is not None:
                idx = idx[_shard_slice(len(idx), *self.shard)]
            yield idx.tolist()


def dataset_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """A ``DataLoader`` whose batches equal :class:`TensorBatchIterator`'s.

    Both draw ``torch.randperm(N, generator=generator)`` per epoch, so the same
    seed gives the same batches whether the rows are in memory or on disk.
    The loader's own base seed (for worker processes) comes from a separate
    generator, so loading never consumes torch's global RNG (which seeds
    dropout in training).
    """
    batches = _BatchSampler(
        len(dataset),  # type: ignore[arg-type]  # torch's Dataset declares no __len__
        int(batch_size),
        shuffle,
        drop_last,
        generator,
        shard,
    )
    base = torch.Generator()
    base.manual_seed(
        0 if generator is None else int(generator.initial_seed()) % (2**31)
    )
    return DataLoader(
        dataset,
        batch_sampler=batches,
        generator=base,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_batch,
    )


def has_memmap(X: Any) -> bool:
    """Whether a mapping holds memory-mapped arrays (trained on row by row)."""
    return isinstance(X, Mapping) and any(isinstance(v, np.memmap) for v in X.values())


def resolve_dataset(
    dataset: Any,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Tensors behind a ModalityDataset or a (nested) Subset of one."""
    if isinstance(dataset, Subset):
        X, y = resolve_dataset(dataset.dataset)
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
    rows : mapping of str to tensor or None
        Per-row side information (first dimension ``N``); when given, batches
        are ``(X, y, rows)`` with ``rows`` sliced like ``X``.
    num_workers, pin_memory :
        Used when the estimators load a Dataset that is not in memory (they
        build a ``DataLoader`` with these); ignored for in-memory tensors.
    shard : (rank, world_size) or None
        Data-parallel training: every process draws the same batches (same
        generator) and takes its contiguous part of each one, so the
        processes together see each global batch exactly once.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from mmexplain.data import ModalityDataset, TensorBatchIterator
    >>> ds = ModalityDataset({"eo": np.zeros((5, 2))}, y=[0, 1, 2, 3, 4])
    >>> batches = TensorBatchIterator(ds, batch_size=2)
    >>> len(batches), [yb.tolist() for Xb, yb in batches]
    (3, [[0, 1], [2, 3], [4]])
    >>> gen = torch.Generator().manual_seed(0)
    >>> shuffled = TensorBatchIterator(ds, batch_size=2, shuffle=True,
    ...                                drop_last=True, generator=gen)
    >>> [tuple(Xb["eo"].shape) for Xb, yb in shuffled]
    [(2, 2), (2, 2)]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        rows: Mapping[str, torch.Tensor] | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(
                f"batch_size must be >= 1 (or -1 for the whole set), got {batch_size}"
            )
        self.X, self.y = resolve_dataset(dataset)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.rows = None if rows is None else dict(rows)
        self.shard = shard
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

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        n, bs = self.n, self.batch_size
        stop = n - n % bs if self.drop_last else n
        perm = torch.randperm(n, generator=self.generator) if self.shuffle else None
        device = next(iter(self.X.values())).device
        if perm is not None and device.type != "cpu":
            # data kept on the device: one upload of the epoch's order, then
            # every batch index is a slice of it (no per-batch host copy)
            perm = perm.to(device)
        for start in range(0, stop, bs):
            if perm is None and self.shard is None:
                sl = slice(start, start + bs)
                Xb = {k: v[sl] for k, v in self.X.items()}
                yb = None if self.y is None else self.y[sl]
                rb = (
                    None
                    if self.rows is None
                    else {k: v[sl] for k, v in self.rows.items()}
                )
                yield (Xb, yb) if rb is None else (Xb, yb, rb)
                continue
            idx = (
                perm[start : start + bs]
                if perm is not None
                else torch.arange(start, min(start + bs, n), device=device)
            )
            if self.shard is not None:
                idx = idx[_shard_slice(len(idx), *self.shard)]
            Xb = _take(self.X, idx)
            yb = (
                None
                if self.y is None
                else self.y.index_select(0, idx.to(self.y.device))
            )
            rb = None if self.rows is None else _take(self.rows, idx)
            yield (Xb, yb) if rb is None else (Xb, yb, rb)


def _shard_slice(n: int, rank: int, world: int) -> slice:
    return slice(n * rank // world, n * (rank + 1) // world)


def _take(
    tensors: Mapping[str, torch.Tensor], idx: torch.Tensor
) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, idx.to(v.device)) for k, v in tensors.items()}
