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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmexplain._core.distributed import all_gather_rows, all_reduce_sum, row_share
from mmexplain._core.rows import row_blocks
from mmexplain._core.torch_state import eval_mode
from mmexplain.data.sources import as_source
from mmexplain.explainers._adapter import ModelAdapter
from mmexplain.explainers._baselines import Baseline, BaselineMixin
from mmexplain.explainers._reductions import ReductionMixin

__all__ = ["Baseline", "EvaluationEngine", "Perturbation"]


# ----------------------------------------------------------------------------
# perturbations
# ----------------------------------------------------------------------------
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


#: bytes of row indices (permutations) the engine keeps on the device per explain
INDEX_BUDGET = 256 << 20


class EvaluationEngine(BaselineMixin, ReductionMixin):
    """Evaluate a model on many perturbations of one data set, cheaply.

    Parameters
    ----------
    adapter : ModelAdapter
    X : ModalityDict or RowSource
        Validated inputs (never modified): a mapping of arrays, memmaps or
        tensors, or any :class:`~mmexplain.data.sources.RowSource` (e.g. a
        torch Dataset through :class:`~mmexplain.data.sources.DatasetSource`).
    y : ndarray
        Class indices, (N,) or (N, H, W).
    batch_size : int
        Maximum number of rows per model call (encoding and evaluation).
    fast : bool or 'auto'
        Evaluate encode/fuse models on embeddings (only the fusion head runs
        per perturbation). 'auto' does so when the embedding cache fits the
        memory budget, else runs full forward passes.
    needs_index : bool, default=True
        Whether perturbations will take rows by index (permutations). They
        need the embeddings of *all* rows (a cache); perturbations with own
        rows and constant baselines only are evaluated block by block with
        the embeddings of that block, so memory stays bounded by
        ``batch_size`` whatever the size of the feature maps.
    show_progress : bool
        tqdm progress bar over model calls.
    memory_budget : int or None
        Bytes the embedding cache may take; None is ``max(input size, 1 GiB)``.

    Notes
    -----
    Under ``torch.distributed`` (a process group is initialized), this rank
    evaluates only its share of the rows and the additive statistics are
    summed over ranks, so every rank returns the single-process numbers
    (see :mod:`mmexplain._core.distributed`).
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        X: Any,
        y: np.ndarray | None,
        *,
        batch_size: int = 4096,
        fast: bool | str = "auto",
        needs_index: bool = True,
        show_progress: bool = False,
        desc: str = "explaining",
        memory_budget: int | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.adapter = adapter
        self.source = as_source(X)
        self.modalities = self.source.modalities
        self.n = len(self.source)
        self.batch_size = int(batch_size)
        self.device = adapter.device
        self.show_progress = show_progress
        self.desc = desc
        self.y = None if y is None else torch.as_tensor(np.array(y)).to(self.device)
        self.lo, self.hi = row_share(self.n)
        self.head_calls = 0
        self._indices: dict[int, tuple[Any, torch.Tensor]] = {}
        self._index_bytes = 0
        self._checked_labels = False
        self.cache: dict[str, torch.Tensor] | None = None
        if fast is True and not adapter.split:
            raise ValueError(
                "fast=True needs a model with encode/fuse methods; "
                f"{type(adapter.module).__name__} has none"
            )
        self.path = "embeddings" if (fast and adapter.split) else "full_forward"
        if self.path == "embeddings" and needs_index:
            budget = memory_budget if memory_budget is not None else self._budget()
            self.cache = self._encode_all(limit=None if fast is True else budget)
            if self.cache is None:  # over budget ('auto'): full forward passes
                self.path = "full_forward"
        elif self.path == "embeddings" and memory_budget is not None:
            self.cache = self._encode_all(limit=memory_budget)
        elif self.path == "embeddings":
            self.cache = self._encode_all(limit=self._budget())

    # -- embeddings ----------------------------------------------------------
    def _budget(self) -> int:
        return max(self.source.row_bytes() * self.n, 1 << 30)

    def _encode(self, X: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.adapter.encode({m: _encoder_layout(X[m]) for m in self.modalities})

    def _encode_all(self, limit: int | None) -> dict[str, torch.Tensor] | None:
        """Embeddings of every row (this rank's share encoded, then gathered).

        None if the cache would exceed ``limit`` bytes.
        """
        blocks = row_blocks(self.lo, self.hi, self.batch_size)
        local: dict[str, torch.Tensor] = {}
        with eval_mode(self.adapter.module), torch.inference_mode():
            stream = self.source.stream([(b, None) for b in blocks], device=self.device)
            for sl, Xb in zip(blocks, stream):
                Zb = self._encode(Xb)
                if not local:
                    row = sum(z[0].numel() * z.element_size() for z in Zb.values())
                    if limit is not None and row * self.n > limit:
                        return None
                    # one preallocated table per modality: no list of blocks to
                    # concatenate (which doubled the peak and fragmented memory)
                    local = {
                        m: torch.empty(
                            (self.hi - self.lo, *z.shape[1:]),
                            dtype=z.dtype,
                            device=z.device,
                        )
                        for m, z in Zb.items()
                    }
                for m in self.modalities:
                    local[m][sl.start - self.lo : sl.stop - self.lo] = Zb[m]
        return {
            m: all_gather_rows(local[m] if local else self._empty_embedding(m), self.n)
            for m in self.modalities
        }

    def _empty_embedding(self, m: str) -> torch.Tensor:
        shape = self._embedding_shape(m)
        return torch.empty((0, *shape), device=self.device)

    def _embedding_shape(self, m: str) -> tuple[int, ...]:
        if self.cache is not None:
            return tuple(self.cache[m].shape[1:])
        with eval_mode(self.adapter.module), torch.inference_mode():
            Z = self._encode(self.source.take(slice(0, 1), device=self.device))
        return tuple(Z[m].shape[1:])

    # -- evaluation -----------------------------------------------------------
    def _groups(self, perturbations: Sequence[Perturbation], per_call: int) -> list:
        """Consecutive perturbations sharing a context, at most ``per_call`` each."""
        groups: list[list[Perturbation]] = []
        for p in perturbations:
            last = groups[-1] if groups else None
            if last and len(last) < per_call and last[0].context_key == p.context_key:
                last.append(p)
            else:
                groups.append([p])
        return groups

    def _plan(self, perturbations: Sequence[Perturbation], blocks: list[slice]) -> list:
        """Source reads per block: own rows, then each distinct row index."""
        if self.cache is not None:
            return []
        specs = {}
        own = set()
        for p in perturbations:
            for m in self.modalities:
                spec = p.index.get(m)
                if spec is None:
                    own.add(m)
                elif not isinstance(spec, Baseline):
                    if self.path == "embeddings":
                        raise ValueError(
                            "row-index perturbations need the embedding cache"
                        )
                    specs[(id(spec), m)] = spec
        if self.path == "embeddings":
            own = set(self.modalities)  # encoders see every modality
        own_mods = [m for m in self.modalities if m in own]
        # (key, rows, modalities): key ("own", None) or (id(index), modality)
        requests: list[tuple[tuple[Any, str | None], Any, list[str]]] = []
        for sl in blocks:
            if own_mods:
                requests.append((("own", None), sl, own_mods))
            for key, spec in specs.items():
                requests.append((key, np.asarray(spec)[sl], [key[1]]))
        return requests

    def _block_rows(self, plan_iter: Any, n_reads: int) -> dict[Any, dict]:
        """This block's reads (own rows, indexed rows), encoded on the embedding path."""
        rows: dict[Any, dict] = {}
        for _ in range(n_reads):
            key, data = next(plan_iter)
            if key == ("own", None) and self.path == "embeddings":
                data = self._encode(data)
            rows[key] = data
        return rows

    def _rows(
        self,
        m: str,
        spec: Any,
        sl: slice,
        local: slice,
        block: dict,
        device_index: dict,
    ) -> torch.Tensor:
        """Modality ``m``'s rows ``sl`` under ``spec`` (``local``: them in the block read)."""
        b = sl.stop - sl.start
        if isinstance(spec, Baseline):
            return spec.row.expand(b, *spec.row.shape[1:])
        if self.cache is not None:
            if spec is None:
                return self.cache[m][sl]
            return self.cache[m].index_select(0, self._index(spec, sl, device_index))
        if spec is None:
            return block[("own", None)][m][local]
        return block[(id(spec), m)][m][local]

    def _index(self, spec: Any, sl: slice, per_block: dict) -> torch.Tensor:
        """This block's slice of a row index, on the device.

        A whole index goes to the device once per explain while all of them fit
        in ``INDEX_BUDGET`` bytes (one upload instead of one per block; int32
        stays int32); beyond that, only each block's slice is uploaded.
        """
        held = self._indices.get(id(spec))
        if held is not None and held[0] is spec:  # the same array, not a reused id
            return held[1][sl]
        arr = np.asarray(spec)
        if self._index_bytes + arr.nbytes <= INDEX_BUDGET:
            full = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
            self._indices[id(spec)] = (spec, full)
            self._index_bytes += arr.nbytes
            return full[sl]
        key = (id(spec), sl.start)
        idx = per_block.get(key)
        if idx is None:
            rows = np.ascontiguousarray(arr[sl])
            idx = per_block[key] = torch.from_numpy(rows).to(self.device)
        return idx

    def _call(self, rows: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.head_calls += 1
        if self.path == "embeddings":
            return self.adapter.head(rows)
        return self.adapter.forward(rows)

    def _new_flag(self) -> torch.Tensor:
        """Non-finite flags, [model outputs, statistics], accumulated on the device."""
        return torch.zeros(2, dtype=torch.bool, device=self.device)

    def _check_labels(self, logits: torch.Tensor) -> None:
        """Refuse class indices the outputs lack, on the first call (one sync)."""
        if not self._checked_labels and self.y is not None:
            self._checked_labels = True
            if self.adapter.regression:  # real targets: no class range
                return
            check_label_range(self.y, logits, self.adapter.ignore_index)

    def _check_output(
        self, logits: torch.Tensor, flag: torch.Tensor, st: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Label range on the first call; accumulate the non-finite flags (no sync).

        ``flag[0]``: the outputs ``logits``; ``flag[1]``: the statistics ``st``
        computed from them (finite outputs can give an infinite loss).
        """
        self._check_labels(logits)
        stats = flag.new_zeros(()) if st is None else _nonfinite(st)
        return flag | torch.stack([_nonfinite(logits), stats])

    def iter_blocks(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        collective: bool = True,
        rows_per_block: int | None = None,
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Per row block of this rank: ``(rows, stats)`` with stats (K, rows, P).

        Memory stays bounded by the block: reduce each block as it comes.
        Rows are read (and encoded) ``batch_size`` at a time; ``rows_per_block``
        (default: as many) splits each read into smaller blocks, e.g.
        ``batch_size // K`` so that a block's K x rows statistics stay within
        ``batch_size`` rows whatever K (Shapley's 2^M coalitions).
        ``collective=False`` skips the finiteness check across ranks (for a
        probe that only one rank runs).
        """
        K, share = len(perturbations), self.hi - self.lo
        read_rows = min(max(share, 1), self.batch_size)
        rows = read_rows if rows_per_block is None else int(rows_per_block)
        rows = max(1, min(rows, read_rows))
        per_call = max(1, min(K, self.batch_size // rows))
        blocks = row_blocks(self.lo, self.hi, read_rows)
        groups = self._groups(perturbations, per_call)
        layouts = self._upload_masks([self._layout(g) for g in groups])  # once
        plan = self._plan(perturbations, blocks)
        reads_per_block = len(plan) // max(len(blocks), 1)
        n_sub = sum(len(row_blocks(b.start, b.stop, rows)) for b in blocks)
        bar = self._progress(n_sub * len(groups))
        flag = self._new_flag()
        try:
            with eval_mode(self.adapter.module), torch.inference_mode():
                data = self.source.stream(
                    [(index, mods) for _, index, mods in plan], device=self.device
                )
                plan_iter = zip([key for key, _, _ in plan], data)
                for block_sl in blocks:
                    block = self._block_rows(plan_iter, reads_per_block)
                    device_index: dict[int, torch.Tensor] = {}
                    for sl in row_blocks(block_sl.start, block_sl.stop, rows):
                        local = slice(
                            sl.start - block_sl.start, sl.stop - block_sl.start
                        )
                        parts = []
                        for group, layout in zip(groups, layouts):
                            st, flag = self._eval_group(
                                group,
                                layout,
                                sl,
                                local,
                                block,
                                device_index,
                                stat,
                                flag,
                            )
                            parts.append(st)
                            if bar is not None:
                                bar.update(1)
                        yield sl, torch.cat(parts, dim=0)
        finally:
            if bar is not None:
                bar.close()
        if collective:
            self._raise_if_nonfinite(flag)

    def probe_stats(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> tuple[slice, torch.Tensor]:
        """``(rows, stats)`` of row 0 alone, with no collective call.

        A rank with no rows of its own (fewer rows than ranks) learns from it
        the shape and dtype of the statistics, to contribute zeros or an empty
        part of the right shape to the reductions and gathers.
        """
        lo, hi = self.lo, self.hi
        self.lo, self.hi = 0, min(1, self.n)
        try:
            for sl, st in self.iter_blocks(perturbations, stat, collective=False):
                return sl, st
        finally:
            self.lo, self.hi = lo, hi
        raise ValueError("no rows to evaluate")

    @staticmethod
    def _raise_if_nonfinite(flag: torch.Tensor) -> None:
        """One sync per explain: refuse outputs, or statistics, that were not finite."""
        outputs, stats = (all_reduce_sum(flag.to(torch.float64)) > 0).tolist()
        if outputs:
            raise ValueError(
                "the model's outputs are not finite (NaN or inf) on these data: its "
                "weights may have diverged in training (see the training loss); an "
                "explanation of such a model would be meaningless"
            )
        if stats:
            raise ValueError(
                "the model's outputs are finite but the scores computed from them "
                "are not (inf or NaN): the outputs are so large that e.g. the loss "
                "overflows float32; rescale the inputs (e.g. StandardScaler) or use "
                "a bounded score (scoring='accuracy', Shapley value='probability')"
            )

    def _layout(self, group: list[Perturbation]) -> dict[str, Any]:
        """How each modality's rows of ``group`` are built, decided once per explain.

        ``('one', spec)``: a single perturbation (a view where possible);
        ``('own', size)``: the own rows for every perturbation;
        ``('base', baseline, size)``: the same constant row for every
        perturbation (a view); ``('select', present, baseline, indices)``: own
        rows where ``present`` (a bool tensor on the device), the baseline
        elsewhere, taken by one ``index_select`` from the baseline row and the
        own rows (coalitions: no Python loop over the perturbations per block;
        3-4 times faster than ``torch.where`` on the CPU), with the row
        indices of each block size made once in ``indices``; ``('cat',
        specs)``: anything else (row indices), concatenated.
        """
        layout: dict[str, Any] = {}
        for m in self.modalities:
            specs = [p.index.get(m) for p in group]
            bases = {id(s): s for s in specs if isinstance(s, Baseline)}
            if len(group) == 1:
                layout[m] = ("one", specs[0])
            elif all(s is None for s in specs):
                layout[m] = ("own", len(group))
            elif len(bases) == 1 and all(
                s is None or isinstance(s, Baseline) for s in specs
            ):
                (base,) = bases.values()
                if all(s is base for s in specs):
                    layout[m] = ("base", base, len(group))
                else:
                    # a list here; _upload_masks sends all groups' masks at once
                    layout[m] = ("select", [s is None for s in specs], base, {})
            else:
                layout[m] = ("cat", specs)
        return layout

    def _upload_masks(self, layouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``'select'`` masks of every layout on the device, in one copy."""
        selects = [
            (lay, m) for lay in layouts for m, v in lay.items() if v[0] == "select"
        ]
        if not selects:
            return layouts
        flat = [p for lay, m in selects for p in lay[m][1]]
        masks = torch.tensor(flat, dtype=torch.bool).to(self.device)
        start = 0
        for lay, m in selects:
            kind, present, base, indices = lay[m]
            lay[m] = (kind, masks[start : start + len(present)], base, indices)
            start += len(present)
        return layouts

    def _group_rows(
        self,
        m: str,
        layout: tuple,
        sl: slice,
        local: slice,
        block: dict,
        index: dict,
    ) -> torch.Tensor:
        """Modality ``m``'s rows for a group of perturbations, stacked along rows."""
        kind, b = layout[0], sl.stop - sl.start
        if kind == "one":  # no copy: a view of the cache, an expanded baseline
            return self._rows(m, layout[1], sl, local, block, index)
        if kind == "own":
            own = self._rows(m, None, sl, local, block, index)
            return own.unsqueeze(0).expand(layout[1], *own.shape).flatten(0, 1)
        if kind == "base":
            row = layout[1].row
            return row.expand(layout[2] * b, *row.shape[1:])
        if kind == "select":
            present, base, indices = layout[1:]
            own = self._rows(m, None, sl, local, block, index)
            idx = indices.get(b)
            if idx is None:  # row 0: the baseline, rows 1..b: the own rows
                own_rows = torch.arange(1, b + 1, device=present.device)
                idx = indices[b] = torch.where(
                    present[:, None], own_rows[None], 0
                ).reshape(-1)
            return torch.cat([base.row.to(own.dtype), own]).index_select(0, idx)
        return torch.cat([self._rows(m, s, sl, local, block, index) for s in layout[1]])

    def _eval_group(
        self,
        group: list[Perturbation],
        layout: dict[str, Any],
        sl: slice,
        local: slice,
        block: dict,
        device_index: dict,
        stat: Callable,
        flag: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = group[0].context
        with ctx(self.adapter.module) if ctx is not None else contextlib.nullcontext():
            rows = {
                m: self._group_rows(m, layout[m], sl, local, block, device_index)
                for m in self.modalities
            }
            logits = self._call(rows)
            if group[0].output is not None:
                logits = group[0].output(self.adapter.module, logits)
        self._check_labels(logits)  # before the statistics index with y
        if self.y is None:  # statistics of the outputs alone (e.g. the prediction)
            ys = None
        else:
            y = self.y[sl]
            ys = y.repeat(len(group), *([1] * (y.dim() - 1))) if len(group) > 1 else y
        st = stat(logits, ys).reshape(len(group), sl.stop - sl.start, -1)
        return st, self._check_output(logits, flag, st)

    def _progress(self, total: int) -> Any:
        if not self.show_progress:
            return None
        from mmexplain._core.progress import progress_bar

        return progress_bar(total, self.desc, leave=False)

    def evaluate(
        self,
        perturbations: Sequence[Perturbation],
        stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        per_sample: bool = False,
    ) -> torch.Tensor:
        """Statistics of every perturbation, over all rows (all ranks).

        Returns (K, P) float64 sums over samples, or (K, N, P) per sample when
        ``per_sample``.
        """
        if per_sample:
            parts = [st for _, st in self.iter_blocks(perturbations, stat)]
            if not parts:  # no rows on this rank: an empty part of the right shape
                parts = [self.probe_stats(perturbations, stat)[1][:, :0]]
            return all_gather_rows(torch.cat(parts, dim=1), self.n, dim=1)
        total = None
        for _, st in self.iter_blocks(perturbations, stat):
            s = st.sum(dim=1, dtype=torch.float64)
            total = s if total is None else total + s
        if total is None:  # no rows on this rank: zeros of the right shape
            st = self.probe_stats(perturbations, stat)[1]
            total = torch.zeros(
                st.shape[0], st.shape[2], dtype=torch.float64, device=st.device
            )
        return all_reduce_sum(total)


def _nonfinite(t: torch.Tensor) -> torch.Tensor:
    """Whether ``t`` holds a NaN or an infinity, as a 0-d bool tensor (no sync).

    The float64 sum of float32 (or narrower) values is finite exactly when every
    value is (a NaN or an infinity propagates; they cannot overflow a float64
    sum), and costs a third of an elementwise ``isfinite`` pass; a float64
    sum of float64 values can overflow, so those are checked elementwise.
    """
    if t.dtype == torch.float64:
        return ~torch.isfinite(t).all()
    if not t.is_floating_point():
        return torch.zeros((), dtype=torch.bool, device=t.device)
    return ~torch.isfinite(t.sum(dtype=torch.float64))


def check_label_range(y: torch.Tensor, logits: torch.Tensor, ignore_index: Any) -> None:
    """Refuse class indices outside the model's ``logits.shape[1]`` classes."""
    valid = y if ignore_index is None else y[y != ignore_index]
    if valid.numel() == 0:
        return
    lo, hi, c = int(valid.min()), int(valid.max()), int(logits.shape[1])
    if lo < 0 or hi >= c:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"y contains class index {bad} but the model outputs {c} classes "
            f"(indices 0..{c - 1}); pass the labels the model was trained on"
        )
