"""Reductions of the evaluation engine over all rows and all ranks, and its gradient path.

A part of :class:`~mmexplain.explainers._engine.EvaluationEngine`, split out
by concern. An explainer reduces the engine's per-block statistics with
:meth:`~ReductionMixin.reduce_blocks` (sums) or
:meth:`~ReductionMixin.map_blocks` (per-row results), or differentiates the
model with :meth:`~ReductionMixin.gradient_rows`; the engine shares the rows
across ``torch.distributed`` ranks and reduces or gathers the results, so an
explainer never sees the process group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from mmexplain._core.distributed import all_gather_rows, all_reduce_sum
from mmexplain._core.rows import row_blocks, tree_map
from mmexplain._core.torch_state import eval_mode
from mmexplain.data.sources import RowSource

if TYPE_CHECKING:  # pragma: no cover
    from mmexplain.explainers._adapter import ModelAdapter
    from mmexplain.explainers._engine import Perturbation

__all__ = ["ReductionMixin"]


class ReductionMixin:
    """The engine's reductions (needs ``iter_blocks``, ``source``, ``cache``,
    ``path``, ``device``, ``batch_size``, ``n``, ``lo``/``hi``, ``y``,
    ``adapter``, ``modalities``, ``_encode``, ``_call``, ``_new_flag``,
    ``_check_output``, ``_raise_if_nonfinite`` and ``_progress``)."""

    # provided by the engine (declared for the type checker)
    source: RowSource
    cache: dict[str, torch.Tensor] | None
    path: str
    device: torch.device
    batch_size: int
    n: int
    lo: int
    hi: int
    y: torch.Tensor | None
    adapter: ModelAdapter
    modalities: tuple[str, ...]

    if TYPE_CHECKING:  # pragma: no cover

        def iter_blocks(
            self,
            perturbations: Sequence[Perturbation],
            stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            *,
            collective: bool = True,
            rows_per_block: int | None = None,
        ) -> Iterator[tuple[slice, torch.Tensor]]: ...

        def probe_stats(
            self,
            perturbations: Sequence[Perturbation],
            stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        ) -> tuple[slice, torch.Tensor]: ...

        def _encode(self, X: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

        def _call(self, rows: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

        def _new_flag(self) -> torch.Tensor: ...

        def _check_output(
            self,
            logits: torch.Tensor,
            flag: torch.Tensor,
            st: torch.Tensor | None = None,
        ) -> torch.Tensor: ...

        @staticmethod
        def _raise_if_nonfinite(flag: torch.Tensor) -> None: ...

        def _progress(self, total: int) -> Any: ...

    def reduce_blocks(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        fold: Callable[[Any, slice, torch.Tensor], Any],
        init: Any,
    ) -> Any:
        """``fold(acc, rows, stats)`` over this rank's blocks, then summed over ranks.

        ``init`` and the accumulator are tensors (or dicts/lists of tensors) on
        the engine's device; nothing is copied to the host before the end.
        """
        acc = init
        for sl, st in self.iter_blocks(perturbations, stat):
            acc = fold(acc, sl, st)
        return tree_map(acc, all_reduce_sum)

    def map_blocks(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        fn: Callable[[slice, torch.Tensor], tuple[torch.Tensor, ...]],
        *,
        rows_per_block: int | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Per-row results ``fn(rows, stats) -> (tensor (rows, ...), ...)`` of every row.

        Each block is reduced by ``fn`` as soon as its statistics exist (memory
        bounded by the block: ``rows_per_block`` rows, see ``iter_blocks``), on
        the device, and written into one table per result (no list of many
        small blocks to concatenate); the tables are gathered over ranks in
        row order, so every rank gets all ``n`` rows.
        """
        tables: list[torch.Tensor] | None = None
        for sl, st in self.iter_blocks(
            perturbations, stat, rows_per_block=rows_per_block
        ):
            out = fn(sl, st)
            if tables is None:
                tables = [o.new_empty((self.hi - self.lo, *o.shape[1:])) for o in out]
            for t, o in zip(tables, out):
                t[sl.start - self.lo : sl.stop - self.lo] = o
        if tables is None:  # this rank has no rows: learn the shapes from one row
            tables = [o[:0] for o in self._probe_rows(perturbations, stat, fn)]
        return tuple(all_gather_rows(t, self.n) for t in tables)

    def _probe_rows(self, perturbations: Any, stat: Any, fn: Any) -> Any:
        return fn(*self.probe_stats(perturbations, stat))

    def gradient_rows(
        self,
        fn: Callable[
            [dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None], torch.Tensor
        ],
        *,
        width: int,
    ) -> torch.Tensor:
        """The gradient path: ``fn(Z, out, y) -> (rows, width)`` for every row.

        ``Z`` holds this block's embeddings (embedding path) or inputs (full
        forward path) as leaves that require grad, ``out`` the model's output
        on them (the fusion head or the whole model, in eval mode, the mode
        restored after); ``fn`` computes what it needs by autograd. Outputs are
        checked as in :meth:`iter_blocks` (finite, labels in range); results are
        gathered over ranks in row order.
        """
        blocks = row_blocks(self.lo, self.hi, self.batch_size)
        reads = [] if self.cache is not None else [(b, None) for b in blocks]
        stream = iter(self.source.stream(reads, device=self.device) if reads else ())
        bar = self._progress(len(blocks))
        flag = self._new_flag()
        parts = []
        with eval_mode(self.adapter.module):
            for sl in blocks:
                if self.cache is not None:
                    Zb = {m: self.cache[m][sl] for m in self.modalities}
                elif self.path == "embeddings":
                    with torch.inference_mode():
                        Zb = self._encode(next(stream))
                else:
                    Zb = next(stream)
                with torch.enable_grad():
                    # clones: leaves of our own (never the caller's tensors), and
                    # ordinary tensors even where the embeddings are inference ones
                    Z = {m: z.clone().requires_grad_(True) for m, z in Zb.items()}
                    out = self._call(Z)
                    flag = self._check_output(out, flag)
                    y = None if self.y is None else self.y[sl]
                    parts.append(fn(Z, out, y).detach())
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        self._raise_if_nonfinite(flag)
        local = (
            torch.cat(parts)
            if parts
            else torch.zeros((0, width), dtype=torch.float64, device=self.device)
        )
        return all_gather_rows(local, self.n)
