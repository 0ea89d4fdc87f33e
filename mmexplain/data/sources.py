"""Row sources: random access to the rows of a multimodal data set, wherever they live.

Training, prediction and every explainer read data through one interface,
:class:`RowSource`: ``source.take(index)`` returns the rows ``index`` (a slice
or an integer array) of each modality as ``float32`` tensors on a device.
Random access by row index is the contract, so a *whole-set* permutation of
one modality stays exact however the rows are stored: sample ``n`` takes
modality ``m`` from row ``perm[n]``.

- :class:`ArraySource`: a mapping of in-memory arrays, tensors or
  memory-mapped NumPy arrays (``np.load(path, mmap_mode='r')``); rows are
  converted to ``float32`` per batch, a memmap is never copied whole.
- :class:`DatasetSource`: any map-style ``torch.utils.data.Dataset`` whose
  items are ``({modality: tensor}, target)`` (skorch's convention) or
  ``{modality: tensor}``; rows are loaded item by item, in worker processes
  with ``num_workers > 0`` (pinned memory when the device is CUDA). Each
  batch is checked as it is collated (the first item's modalities and
  per-sample shapes, real values finite as float32; see
  :mod:`mmexplain.data._items`), since a Dataset cannot be validated up front
  without reading all of it.

:func:`as_source` turns what a user passes (mapping or Dataset) into a source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mmexplain.data._dict import ModalityDict
from mmexplain.data._items import ItemLayout, collate_items, split_item

__all__ = [
    "ArraySource",
    "DatasetSource",
    "RowSource",
    "as_source",
    "check_source",
    "is_dataset",
]

Index = slice | np.ndarray


def is_dataset(X: Any) -> bool:
    """Whether ``X`` is a torch ``Dataset`` (and not a mapping of arrays)."""
    return isinstance(X, Dataset) and not isinstance(X, Mapping)


def _as_index_tensor(index: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)).to(device)


class RowSource:
    """Random access to the rows of a multimodal data set (see the module docstring)."""

    modalities: tuple[str, ...]
    #: True when all rows are in memory (cheap random access, no per-batch checks)
    in_memory: bool = True

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def row_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover
        """Per-sample shape of each modality."""
        raise NotImplementedError

    def take(
        self,
        index: Index,
        *,
        modalities: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        """Rows ``index`` of ``modalities`` (default all) as float32 tensors on ``device``."""
        raise NotImplementedError

    def stream(
        self,
        requests: Sequence[tuple[Index, Sequence[str] | None]],
        *,
        device: Any = "cpu",
    ) -> Iterator[dict[str, torch.Tensor]]:
        """``take`` for each ``(index, modalities)`` request, in order.

        Sources that load rows in worker processes prefetch the requests.
        """
        for index, modalities in requests:
            yield self.take(index, modalities=modalities, device=device)

    def subset(self, rows: np.ndarray) -> RowSource:  # pragma: no cover - abstract
        """A source of the rows ``rows`` of this one (in that order)."""
        raise NotImplementedError

    def row_bytes(self) -> int:
        """Bytes of one row of all modalities as float32."""
        return sum(
            int(np.prod(s, dtype=np.int64)) * 4 for s in self.row_shapes.values()
        )


class ArraySource(RowSource):
    """Rows of a mapping of arrays, tensors or memory-mapped arrays (never copied whole).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data.sources import ArraySource
    >>> src = ArraySource({"a": np.arange(6.0).reshape(3, 2), "b": np.ones((3, 1))})
    >>> src.take(np.array([2, 0]), modalities=["a"])["a"].tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """

    def __init__(self, X: Mapping[str, Any]) -> None:
        self.X = X
        self.modalities = tuple(X.keys())
        self.in_memory = not any(isinstance(v, np.memmap) for v in X.values())

    def __len__(self) -> int:
        return int(next(iter(self.X.values())).shape[0])

    @property
    def row_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(int(s) for s in v.shape[1:]) for m, v in self.X.items()}

    def subset(self, rows: np.ndarray) -> ArraySource:
        """The rows ``rows`` in memory (a subsample is small by definition)."""
        from mmexplain.data._dict import take_rows

        return ArraySource(take_rows(self.X, np.asarray(rows)))

    def take(
        self,
        index: Index,
        *,
        modalities: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        device = torch.device(device)
        out = {}
        for m in modalities if modalities is not None else self.modalities:
            value = self.X[m]
            if isinstance(value, torch.Tensor):
                if isinstance(index, np.ndarray):
                    rows = value.index_select(0, _as_index_tensor(index, value.device))
                else:
                    rows = value[index]
                rows = rows.detach()
            else:
                array = np.ascontiguousarray(value[index])
                if not array.flags.writeable:  # a read-only memmap view
                    array = np.array(array)
                rows = torch.from_numpy(array)
                if device.type == "cuda":
                    # page-locked: the copy to the GPU runs asynchronously, while
                    # the GPU still works on the previous block
                    rows = rows.pin_memory()
            out[m] = rows.to(device=device, dtype=torch.float32, non_blocking=True)
        return out


class _Items(Dataset):
    """Batches of ``dataset``: ``__getitems__`` of ``[(i, modalities), ...]`` keys.

    A ``DataLoader`` (with or without worker processes) hands each batch's
    keys to ``__getitems__``, which reads the items and stacks and checks
    them once per batch (:func:`~mmexplain.data._items.collate_items`).
    """

    def __init__(self, dataset: Dataset, layout: ItemLayout, check: bool) -> None:
        self.dataset, self.layout, self.check = dataset, layout, check

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, tuple[str, ...]]) -> dict[str, torch.Tensor]:
        return self.__getitems__([key])

    def __getitems__(
        self, keys: list[tuple[int, tuple[str, ...]]]
    ) -> dict[str, torch.Tensor]:
        rows = [int(i) for i, _ in keys]
        modalities = keys[0][1] if keys else self.layout.modalities
        base, base_rows = self.dataset, rows
        while isinstance(base, Subset):
            base_rows = [int(base.indices[i]) for i in base_rows]
            base = base.dataset
        reader = getattr(base, "read_rows", None)
        if reader is not None:  # a wrapper that reads (and checks) whole batches
            return reader(base_rows, modalities, check=self.check)
        Xs = [split_item(self.dataset[i])[0] for i in rows]
        return collate_items(
            Xs,
            self.layout,
            rows=rows,
            modalities=modalities,
            dataset=self.dataset,
            check=self.check,
        )


def _as_batch(batch: Any) -> dict[str, torch.Tensor]:
    """The loader's collate function: ``__getitems__`` already built the batch.

    (The loader passes it what ``_Items.__getitems__`` returned: a dict of tensors.)
    """
    return batch


def _rows_of(index: Index, n: int) -> list[int]:
    if isinstance(index, slice):
        return list(range(*index.indices(n)))
    return np.asarray(index).tolist()


class DatasetSource(RowSource):
    """Rows of a map-style torch ``Dataset`` of ``({modality: tensor}, target)`` items.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Items ``({modality: array}, target)`` or ``{modality: array}``.
    num_workers : int, default=0
        Worker processes loading items (``DataLoader(num_workers=...)``).
    pin_memory : bool or None, default=None
        Pin loaded batches for faster host-to-GPU copies; None pins when the
        requested device is CUDA.
    check : bool, default=True
        Check the values of each loaded batch: real, numeric and finite as
        float32. The first item's modalities and per-sample shapes are
        always checked (a batch cannot be built without them).
    """

    in_memory = False

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        check: bool = True,
    ) -> None:
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TypeError(
                "mmexplain needs a map-style Dataset with __len__ and __getitem__ "
                f"(random access by row index); {type(dataset).__name__} has no len()"
            ) from exc
        if n < 1:
            raise ValueError("the Dataset is empty")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.check = check
        self._n = int(n)
        X0, y0 = split_item(dataset[0])
        self.layout = ItemLayout.of(X0)
        self.modalities = self.layout.modalities
        self._shapes = self.layout.shapes
        self.has_targets = y0 is not None

    def __len__(self) -> int:
        return self._n

    @property
    def row_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._shapes)

    def targets(self) -> np.ndarray:
        """All targets, read item by item (a Dataset whose items carry them)."""
        if not self.has_targets:
            raise ValueError(
                "the Dataset's items carry no target ({modality: tensor} only): pass y"
            )
        ys = [split_item(self.dataset[i])[1] for i in range(self._n)]
        return np.stack([np.asarray(v) for v in ys])

    def take(
        self,
        index: Index,
        *,
        modalities: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        return next(iter(self.stream([(index, modalities)], device=device)))

    def stream(
        self,
        requests: Sequence[tuple[Index, Sequence[str] | None]],
        *,
        device: Any = "cpu",
    ) -> Iterator[dict[str, torch.Tensor]]:
        device = torch.device(device)
        plan = [
            (
                _rows_of(index, self._n),
                tuple(mods) if mods is not None else self.modalities,
            )
            for index, mods in requests
        ]
        items = _Items(self.dataset, self.layout, self.check)
        if self.num_workers == 0:
            batches: Any = (
                items.__getitems__([(i, mods) for i in rows]) for rows, mods in plan
            )
        else:
            pin = (
                self.pin_memory
                if self.pin_memory is not None
                else device.type == "cuda"
            )
            batches = DataLoader(
                items,
                batch_sampler=[[(i, mods) for i in rows] for rows, mods in plan],
                num_workers=self.num_workers,
                pin_memory=pin,
                collate_fn=_as_batch,
            )
        for (_, mods), batch in zip(plan, batches):
            yield {m: batch[m].to(device=device, non_blocking=True) for m in mods}

    def subset(self, rows: np.ndarray) -> DatasetSource:
        """The rows ``rows`` as a source over ``torch.utils.data.Subset``."""
        return DatasetSource(
            Subset(self.dataset, np.asarray(rows).tolist()),
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            check=self.check,
        )


def check_source(
    X: Any,
    *,
    modalities: Sequence[str] | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> DatasetSource | RowSource:
    """Validate a Dataset (or source) against the modalities and shapes a model expects.

    The same rules as :func:`~mmexplain.data.check_X_fitted` (missing and
    unknown modalities, per-sample shapes, image channels), read from the
    first item; values are checked batch by batch as they are loaded.
    """
    from mmexplain.data.validation import check_X_fitted

    source = as_source(X)
    expected = list(input_shapes) if input_shapes is not None else modalities
    if expected is not None:
        missing = [m for m in expected if m not in source.modalities]
        unknown = [m for m in source.modalities if m not in expected]
        if missing:
            raise ValueError(
                f"missing modality {missing[0]!r}; expected modalities {list(expected)}, "
                f"got {list(source.modalities)}"
            )
        if unknown:
            raise ValueError(
                f"unknown modality {unknown[0]!r}; expected modalities {list(expected)}"
            )
    if input_shapes is not None:
        probe = {
            m: np.zeros((1, *source.row_shapes[m]), np.float32) for m in input_shapes
        }
        check_X_fitted(probe, input_shapes)
    return source


def as_source(X: Any, *, num_workers: int = 0) -> RowSource:
    """A :class:`RowSource` for ``X``: a Dataset, a source, or a mapping of arrays."""
    if isinstance(X, RowSource):
        return X
    if is_dataset(X):
        return DatasetSource(X, num_workers=num_workers)
    if isinstance(X, Mapping):
        return ArraySource(X if isinstance(X, ModalityDict) else dict(X))
    raise TypeError(
        "X must be a mapping {modality: array} or a torch Dataset of "
        f"({{modality: tensor}}, target) items; got {type(X).__name__}"
    )
