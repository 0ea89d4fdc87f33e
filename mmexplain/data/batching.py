"""Mini-batches for training and prediction.

:class:`ModalityDataset` holds in-memory modalities as tensors;
:class:`TensorBatchIterator` makes mini-batches by slicing them (no
per-sample collation), as a drop-in replacement for ``DataLoader`` in
skorch's ``iterator_train`` / ``iterator_valid`` slots.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from mmexplain.data._dict import to_tensor_dict

__all__ = ["ModalityDataset", "TensorBatchIterator", "resolve_dataset"]


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
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        rows: Mapping[str, torch.Tensor] | None = None,
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
        for start in range(0, stop, bs):
            if perm is None:
                sl = slice(start, start + bs)
                Xb = {k: v[sl] for k, v in self.X.items()}
                yb = None if self.y is None else self.y[sl]
                rb = (
                    None
                    if self.rows is None
                    else {k: v[sl] for k, v in self.rows.items()}
                )
            else:
                idx = perm[start : start + bs]
                Xb = _take(self.X, idx)
                yb = (
                    None
                    if self.y is None
                    else self.y.index_select(0, idx.to(self.y.device))
                )
                rb = None if self.rows is None else _take(self.rows, idx)
            yield (Xb, yb) if rb is None else (Xb, yb, rb)


def _take(
    tensors: Mapping[str, torch.Tensor], idx: torch.Tensor
) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, idx.to(v.device)) for k, v in tensors.items()}
