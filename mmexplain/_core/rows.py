"""Row blocks and the streamed, sharded row sum behind every whole-set mean.

:func:`reduce_rows` is the one implementation of "sum a per-block quantity over
all rows of a data set, block by block, each rank its share, then all-reduce":
the input and embedding means of the explainers' baselines, the MMTM squeeze
averages, the balancers' modality means. Dividing by ``n`` gives the mean over
the whole set, on every rank, whatever the source (arrays, memmaps, Datasets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from mmexplain._core.distributed import all_reduce_sum, row_share

__all__ = ["reduce_rows", "row_blocks", "tree_map"]


def row_blocks(lo: int, hi: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` rows covering ``[lo, hi)``.

    Examples
    --------
    >>> from mmexplain._core.rows import row_blocks
    >>> row_blocks(0, 5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    size = int(size)
    return [slice(s, min(s + size, hi)) for s in range(lo, hi, size)]


def _add(total: Any, part: Any) -> Any:
    if total is None:
        return part
    if isinstance(part, Mapping):
        return {k: _add(total.get(k), v) for k, v in part.items()}
    if isinstance(part, list | tuple):
        return type(part)(_add(t, p) for t, p in zip(total, part))
    return total + part


def tree_map(tree: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to every tensor of a tensor, dict or list/tuple of them."""
    if isinstance(tree, Mapping):
        return {k: tree_map(v, fn) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(tree_map(v, fn) for v in tree)
    return fn(tree)


def reduce_rows(
    source: Any,
    fn: Callable[[Mapping[str, torch.Tensor], slice], Any],
    *,
    batch_size: int,
    device: torch.device | str,
    modalities: Iterable[str] | None = None,
    empty: Callable[[], Any] | None = None,
) -> Any:
    """Sum of ``fn(rows, block)`` over every row block of ``source``, all ranks.

    Parameters
    ----------
    source : RowSource
        Anything with ``__len__`` and ``stream([(index, modalities), ...],
        device=)`` (:class:`~mmexplain.data.sources.RowSource`).
    fn : callable
        ``fn(rows, block) -> tensor`` (or a dict / list of tensors): this
        block's *sum* over its rows (float64 advised), ``rows`` the block's
        ``{modality: tensor}`` on ``device``.
    batch_size : int
        Rows per block.
    device : torch.device or str
    modalities : iterable of str or None
        Modalities read per block (None: all).
    empty : callable or None
        Zeros of the right structure, for a rank that has no rows (needed
        under ``torch.distributed`` when ``n`` < the number of ranks).

    Returns
    -------
    The all-reduced sum (same structure as ``fn``'s result); divide by
    ``len(source)`` for the mean.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain._core.rows import reduce_rows
    >>> from mmexplain.data.sources import as_source
    >>> src = as_source({"a": np.arange(10.0).reshape(5, 2)})
    >>> total = reduce_rows(src, lambda rows, _: rows["a"].double().sum(0),
    ...                     batch_size=2, device="cpu")
    >>> (total / len(src)).tolist()
    [4.0, 5.0]
    """
    n = len(source)
    lo, hi = row_share(n)
    blocks = row_blocks(lo, hi, batch_size)
    mods = None if modalities is None else list(modalities)
    total = None
    for sl, rows in zip(
        blocks, source.stream([(b, mods) for b in blocks], device=device)
    ):
        total = _add(total, fn(rows, sl))
    if total is None:
        if empty is None:
            raise ValueError("no rows to reduce on this process")
        total = empty()
    return tree_map(total, all_reduce_sum)
