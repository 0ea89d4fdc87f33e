"""Baselines of the evaluation engine: constant rows for absent modalities.

A part of :class:`~mmexplain.explainers._engine.EvaluationEngine`, split out
by concern: zero and mean rows of embeddings or inputs, over the data being
explained or a reference set, streamed and reduced over all ranks
(:func:`~mmexplain._core.rows.reduce_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mmexplain._core.distributed import all_reduce_sum
from mmexplain._core.rows import reduce_rows
from mmexplain._core.torch_state import eval_mode
from mmexplain.data.sources import RowSource, as_source

if TYPE_CHECKING:  # pragma: no cover
    from mmexplain.explainers._adapter import ModelAdapter

__all__ = ["Baseline", "BaselineMixin"]


@dataclass(frozen=True)
class Baseline:
    """A constant replacement row for one modality (zero/mean embedding or input)."""

    name: str
    row: torch.Tensor = field(repr=False)  # shape (1, *row_shape), on the engine device


class BaselineMixin:
    """The engine's baselines (needs its ``source``, ``cache``, ``path``, ``device``,
    ``batch_size``, ``n``, ``lo``/``hi``, ``adapter``, ``_encode`` and
    ``_embedding_shape``)."""

    # provided by the engine (declared for the type checker)
    source: RowSource
    cache: dict[str, torch.Tensor] | None
    path: str
    device: torch.device
    batch_size: int
    n: int
    lo: int
    hi: int
    adapter: ModelAdapter

    if TYPE_CHECKING:  # pragma: no cover

        def _encode(self, X: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

        def _embedding_shape(self, m: str) -> tuple[int, ...]: ...

    def baseline(self, modality: str, kind: str, reference: Any = None) -> Baseline:
        """A constant row for ``modality`` in the engine's current space.

        kind 'zeros': zero row; 'mean': mean over ``reference`` (default: the
        data being explained), of embeddings on the embedding path and of
        inputs on the full-forward path.
        """
        if kind in ("zero_input", "mean_input"):
            return self._input_baseline(modality, kind, reference)
        if kind == "zeros":
            shape = (
                self._embedding_shape(modality)
                if self.path == "embeddings"
                else self.source.row_shapes[modality]
            )
            row = torch.zeros((1, *shape), device=self.device)
        elif kind == "mean":
            row = self._mean_row(modality, reference)
        else:
            raise ValueError(f"unknown baseline {kind!r}")
        return Baseline(name=f"{kind}:{modality}", row=row)

    def _input_baseline(self, modality: str, kind: str, reference: Any) -> Baseline:
        """A constant *input* row (zeros or the mean input), in the engine's space.

        On the embedding path the row is encoded once: encoders in eval mode are
        per-sample functions, so the embedding of a constant input is a constant
        embedding row, and replacing the input equals replacing the embedding by
        it (exact, and the fusion head alone runs per coalition).
        """
        if kind == "zero_input":
            shape = self.source.row_shapes[modality]
            row = torch.zeros((1, *shape), device=self.device)
        else:
            row = self._mean_input_row(modality, reference)
        if self.path == "embeddings":
            probe = self.source.take(slice(0, 1), device=self.device)
            probe[modality] = row
            with eval_mode(self.adapter.module), torch.inference_mode():
                row = self._encode(probe)[modality]
        return Baseline(name=f"{kind}:{modality}", row=row)

    def _mean_input_row(self, modality: str, reference: Any) -> torch.Tensor:
        """Mean input row of ``modality`` over ``reference`` (default: the data)."""
        source = self.source if reference is None else as_source(reference)
        total = reduce_rows(
            source,
            lambda rows, _: rows[modality].double().sum(dim=0, keepdim=True),
            batch_size=self.batch_size,
            device=self.device,
            modalities=[modality],
            empty=lambda: torch.zeros(
                (1, *source.row_shapes[modality]),
                dtype=torch.float64,
                device=self.device,
            ),
        )
        return (total / len(source)).float()

    def _mean_row(self, modality: str, reference: Any) -> torch.Tensor:
        """Mean of ``modality`` (embedding or input) over ``reference`` or the data."""
        if reference is None and self.cache is not None:
            lo, hi = self.lo, self.hi
            total = self.cache[modality][lo:hi].double().sum(dim=0, keepdim=True)
            return (all_reduce_sum(total) / self.n).float()
        if self.path != "embeddings":
            return self._mean_input_row(modality, reference)
        source = self.source if reference is None else as_source(reference)
        with eval_mode(self.adapter.module), torch.inference_mode():
            total = reduce_rows(
                source,
                lambda rows, _: (
                    self._encode(rows)[modality].double().sum(dim=0, keepdim=True)
                ),
                batch_size=self.batch_size,
                device=self.device,
                empty=lambda: torch.zeros(
                    (1, *self._embedding_shape(modality)),
                    dtype=torch.float64,
                    device=self.device,
                ),
            )
        return (total / len(source)).float()
