"""The shared evaluation engine of all explainers.

Every perturbation the explainers need (a row permutation of one modality, a
coalition with absent modalities set to a baseline, an ablation) is described
per modality as one of

* ``None``: the sample's own rows,
* an integer array of length N: take row ``index[n]`` for sample ``n``
  (permutations),
* a :class:`Baseline`: one constant row for every sample (zero/mean
  embedding or input),

optionally with a *context* (e.g. ``MMTMNet.ablating(m)``) under which the
model is run.

For models with an ``encode``/``fuse`` split (late fusion), each modality is
encoded **once** and the perturbations are applied to the cached embeddings,
so only the fusion head runs per perturbation. This is exact, not an
approximation: encoders in eval mode are per-sample functions, so encoding a
permuted input equals permuting the encoded rows. Other models (or
``fast=False``) run full forward passes on perturbed inputs. Either way rows
are evaluated in calls of at most ``batch_size`` rows (several perturbations
share a call when N is small), on the model's device, under
``torch.inference_mode``, and the model's train/eval mode is restored.

Per-row *statistics* are additive quantities (loss sum and valid-element
count, correct count, confusion counts, class probabilities) from which the
explainers compute their scores.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmexplain.data import ModalityDict
from mmexplain.explainers._adapter import ModelAdapter, eval_mode

__all__ = ["Baseline", "Perturbation", "ModelAdapter", "EvaluationEngine", "eval_mode"]


# ----------------------------------------------------------------------------
# perturbations
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """A constant replacement row for one modality (zero/mean embedding or input)."""

    name: str
    row: torch.Tensor = field(repr=False)  # shape (1, *row_shape), on the engine device


@dataclass
class Perturbation:
    """How each modality's rows are taken, plus an optional model context."""

    index: dict[str, Any] = field(
        default_factory=dict
    )  # modality -> None | int array | Baseline
    context: Callable[[nn.Module], Any] | None = None
    #: optional map from (module, model output) to the output to score
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    #: perturbations sharing a model call must share context and output; equal keys say so
    context_key: Any = None


# ----------------------------------------------------------------------------
# engine
# ----------------------------------------------------------------------------
def _encoder_layout(x: torch.Tensor) -> torch.Tensor:
    """Images go to the encoders in channels-last layout on CPU: the same values, but
    convolutions and pooling run about twice as fast there (the model is not touched)."""
    if x.dim() == 4 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _as_device_rows(value: Any, index: Any, device: torch.device) -> torch.Tensor:
    """Rows ``index`` (slice or int array) of a NumPy array/tensor, as float32 on device."""
    if isinstance(value, torch.Tensor):
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index).to(value.device)
        rows = value[index]
    else:
        rows = torch.from_numpy(np.ascontiguousarray(value[index]))
    return rows.to(device=device, dtype=torch.float32, non_blocking=True)


class EvaluationEngine:
    """Evaluate a model on many perturbations of one data set, cheaply.

    Parameters
    ----------
    adapter : ModelAdapter
    X : ModalityDict
        Validated inputs (never modified).
    y : ndarray
        Class indices, (N,) or (N, H, W).
    batch_size : int
        Maximum number of rows per model call (encoding and evaluation).
    fast : bool or 'auto'
        Use cached embeddings for encode/fuse models. 'auto' uses them unless
        they would take more memory than the inputs (and more than 1 GiB).
    show_progress : bool
        tqdm progress bar over model calls.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        X: ModalityDict,
        y: np.ndarray | None,
        *,
        batch_size: int = 4096,
        fast: bool | str = "auto",
        show_progress: bool = False,
        desc: str = "explaining",
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.adapter = adapter
        self.X = X
        self.modalities = tuple(X.keys())
        self.n = len(X)
        self.batch_size = int(batch_size)
        self.device = adapter.device
        self.show_progress = show_progress
        self.desc = desc
        self.y = None if y is None else torch.as_tensor(np.asarray(y)).to(self.device)
        self.path = "full_forward"
        self.tables: dict[str, Any] = dict(X.items())
        if fast and adapter.split:
            Z = self._encode_all(
                self.X, limit=None if fast is True else self._cache_budget()
            )
            if Z is not None:
                self.tables = Z
                self.path = "embeddings"
        elif fast is True and not adapter.split:
            raise ValueError(
                f"fast=True needs a model with encode/fuse methods; {type(adapter.module).__name__} has none"
            )
        self.head_calls = 0

    # -- embedding cache ---------------------------------------------------
    def _cache_budget(self) -> int:
        input_bytes = (
            sum(int(np.prod(v.shape[1:])) * 4 for v in self.X.values()) * self.n
        )
        return max(input_bytes, 1 << 30)

    def _blocks(self, n: int, size: int) -> Iterator[slice]:
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))

    def _encode_all(
        self, X: Mapping[str, Any], limit: int | None
    ) -> dict[str, torch.Tensor] | None:
        """Encode every row once (chunked). None if the cache would exceed ``limit`` bytes."""
        n = len(next(iter(X.values())))
        out: dict[str, torch.Tensor] = {}
        with eval_mode(self.adapter.module), torch.inference_mode():
            for sl in self._blocks(n, self.batch_size):
                Zb = self.adapter.encode(
                    {
                        m: _encoder_layout(_as_device_rows(X[m], sl, self.device))
                        for m in self.modalities
                    }
                )
                if not out:
                    row_bytes = sum(
                        int(np.prod(z.shape[1:])) * z.element_size()
                        for z in Zb.values()
                    )
                    if limit is not None and row_bytes * n > limit:
                        return None
                    out = {
                        m: torch.empty(
                            (n, *Zb[m].shape[1:]), dtype=Zb[m].dtype, device=self.device
                        )
                        for m in self.modalities
                    }
                for m in self.modalities:
                    out[m][sl] = Zb[m]
        return out

    # -- baselines ------------------------------------------------------------
    def baseline(
        self, modality: str, kind: str, reference: Mapping[str, Any] | None = None
    ) -> Baseline:
        """A constant row for ``modality`` in the engine's current space.

        kind 'zeros': zero row; 'mean': mean over ``reference`` (default: the
        data being explained), of embeddings on the embedding path and of
        inputs on the full-forward path.
        """
        table = self.tables[modality]
        shape = tuple(table.shape[1:])
        if kind == "zeros":
            row = torch.zeros((1, *shape), device=self.device)
        elif kind == "mean":
            row = self._mean_row(modality, reference)
        else:
            raise ValueError(f"unknown baseline {kind!r}")
        return Baseline(name=f"{kind}:{modality}", row=row)

    def _mean_row(
        self, modality: str, reference: Mapping[str, Any] | None
    ) -> torch.Tensor:
        if reference is None:
            source, n = self.tables, self.n
            encoded = True
        else:
            source, n = reference, len(next(iter(reference.values())))
            encoded = False
        total = None
        with eval_mode(self.adapter.module), torch.inference_mode():
            for sl in self._blocks(n, self.batch_size):
                if encoded or self.path == "full_forward":
                    rows = _as_device_rows(source[modality], sl, self.device)
                else:
                    Xb = {
                        m: _encoder_layout(_as_device_rows(source[m], sl, self.device))
                        for m in self.modalities
                    }
                    rows = self.adapter.encode(Xb)[modality]
                s = rows.double().sum(dim=0, keepdim=True)
                total = s if total is None else total + s
        return (total / n).float()

    # -- evaluation -----------------------------------------------------------
    def _rows(
        self, modality: str, spec: Any, sl: slice, device_index: dict[int, torch.Tensor]
    ) -> torch.Tensor:
        table = self.tables[modality]
        b = sl.stop - sl.start
        if spec is None:
            return (
                _as_device_rows(table, sl, self.device)
                if self.path == "full_forward"
                else table[sl]
            )
        if isinstance(spec, Baseline):
            return spec.row.expand(b, *spec.row.shape[1:])
        if self.path == "full_forward" and not (
            isinstance(table, torch.Tensor) and table.device == self.device
        ):
            return _as_device_rows(table, np.asarray(spec)[sl], self.device)
        idx = device_index.get(id(spec))
        if idx is None:
            idx = device_index[id(spec)] = torch.as_tensor(
                np.asarray(spec), dtype=torch.long
            ).to(self.device)
        rows = table.index_select(0, idx[sl])
        return rows if self.path == "embeddings" else rows.to(dtype=torch.float32)

    def _call(self, rows: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.head_calls += 1
        if self.path == "embeddings":
            return self.adapter.head(rows)
        return self.adapter.forward(rows)

    def evaluate(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        per_sample: bool = False,
    ) -> torch.Tensor:
        """Statistics of every perturbation.

        Returns (K, P) sums over samples, or (K, N, P) per sample when
        ``per_sample``.
        """
        if self.y is None:
            raise ValueError("these statistics need y")
        K = len(perturbations)
        n = self.n
        per_call = (
            max(1, min(K, self.batch_size // max(n, 1))) if n <= self.batch_size else 1
        )
        block = min(n, self.batch_size)
        n_calls = math.ceil(K / per_call) * math.ceil(n / block)
        results: list[torch.Tensor] = []
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_calls, desc=self.desc, leave=False)
        try:
            with eval_mode(self.adapter.module), torch.inference_mode():
                start = 0
                while start < K:
                    # group consecutive perturbations that share a context
                    group = [perturbations[start]]
                    key = perturbations[start].context_key
                    while (
                        len(group) < per_call
                        and start + len(group) < K
                        and perturbations[start + len(group)].context_key == key
                    ):
                        group.append(perturbations[start + len(group)])
                    start += len(group)
                    device_index: dict[int, torch.Tensor] = {}
                    ctx = group[0].context
                    parts: list[torch.Tensor] = []
                    with (
                        ctx(self.adapter.module)
                        if ctx is not None
                        else contextlib.nullcontext()
                    ):
                        for sl in self._blocks(n, block):
                            rows = {
                                m: torch.cat(
                                    [
                                        self._rows(m, p.index.get(m), sl, device_index)
                                        for p in group
                                    ]
                                )
                                if len(group) > 1
                                else self._rows(
                                    m, group[0].index.get(m), sl, device_index
                                )
                                for m in self.modalities
                            }
                            logits = self._call(rows)
                            if group[0].output is not None:
                                logits = group[0].output(self.adapter.module, logits)
                            y = self.y[sl]
                            ys = (
                                y.repeat(len(group), *([1] * (y.dim() - 1)))
                                if len(group) > 1
                                else y
                            )
                            st = stat(logits, ys).reshape(
                                len(group), sl.stop - sl.start, -1
                            )
                            parts.append(
                                st if per_sample else st.sum(dim=1, dtype=torch.float64)
                            )
                            if bar is not None:
                                bar.update(1)
                    if per_sample:
                        results.append(torch.cat(parts, dim=1))
                    else:
                        results.append(torch.stack(parts).sum(dim=0))
        finally:
            if bar is not None:
                bar.close()
        return torch.cat(results, dim=0)
