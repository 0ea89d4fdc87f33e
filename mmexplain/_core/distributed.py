"""``torch.distributed`` for mmexplain: row shares, reductions, gathers, gradients.

Explaining: when a process group is initialized (e.g. under ``torchrun``),
each rank evaluates only its share of the rows, ``[n * r // W, n * (r + 1) //
W)``; the permutation and coalition plans are drawn from ``random_state``
identically on every rank. The engine's statistics are additive per row, so
summing them across ranks (:func:`all_reduce_sum`) gives exactly the
single-process numbers; per-sample outputs are gathered in row order
(:func:`all_gather_rows`).

Training: under ``torchrun`` or ``accelerate launch``, ``fit`` trains
data-parallel (:func:`data_parallel_shard`): every process draws the same
mini-batches from the same seeded generator and takes its contiguous part of
each; after ``loss.backward()`` the gradients (and floating-point buffers) are
averaged over the processes (:func:`average_gradients`), *before* the
balancer's ``edit_gradients`` hook, so every rank applies the same update and
ends with identical weights. The module is not wrapped in
``DistributedDataParallel``: balancers call its ``encode``/``fuse`` and
context managers directly, which DDP's forward hooks would not see.

Without a process group every function here is the identity. The one
workaround for gloo (which reduces CPU tensors only) is :func:`_comm_device`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "all_gather_rows",
    "all_reduce_sum",
    "average_gradients",
    "data_parallel_shard",
    "rank_and_world",
    "row_share",
]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def row_share(
    n: int, rank: int | None = None, world: int | None = None
) -> tuple[int, int]:
    """Rows ``[lo, hi)`` evaluated by ``rank`` out of ``world`` (contiguous, balanced)."""
    if rank is None or world is None:
        rank, world = rank_and_world()
    return n * rank // world, n * (rank + 1) // world


def _comm_device(t: torch.Tensor) -> torch.device:
    """Where ``t`` must be for a collective: gloo reduces CPU tensors only."""
    return torch.device("cpu") if dist.get_backend() == "gloo" else t.device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all ranks (``t`` itself without a process group)."""
    if rank_and_world()[1] == 1:
        return t
    buf = t.to(_comm_device(t)).contiguous()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def all_gather_rows(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """Concatenate every rank's share (along ``dim``) of an ``n``-row result, in row order."""
    rank, world = rank_and_world()
    if world == 1:
        return t
    shares = [row_share(n, r, world) for r in range(world)]
    width = max(hi - lo for lo, hi in shares)
    dev = _comm_device(t)
    pad_shape = list(t.shape)
    pad_shape[dim] = width - t.shape[dim]
    local = torch.cat(
        [t.to(dev), torch.zeros(pad_shape, dtype=t.dtype, device=dev)], dim=dim
    )
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local.contiguous())
    parts = [g.narrow(dim, 0, hi - lo) for g, (lo, hi) in zip(gathered, shares)]
    return torch.cat(parts, dim=dim).to(t.device)


def data_parallel_shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` when training should be data-parallel, else None."""
    rank, world = rank_and_world()
    return (rank, world) if world > 1 else None


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module``'s trainable parameters over all processes.

    A parameter without a gradient on this process contributes zeros, so every
    process ends with the same gradients (and the optimizer makes the same
    step everywhere). Floating-point buffers (running averages, e.g. MMTM
    gate/squeeze means, batch-norm statistics) are averaged as well, so every
    rank keeps the same state: the mean of per-rank running means of
    equal-size shards.
    """
    shard = data_parallel_shard()
    if shard is None:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    grads: list[torch.Tensor] = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    _average(grads, shard[1])
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if buffers:
        _average(buffers, shard[1])


def _average(tensors: list[torch.Tensor], world: int) -> None:
    flat = torch._utils._flatten_dense_tensors(tensors)
    flat = all_reduce_sum(flat) / world
    for t, avg in zip(tensors, torch._utils._unflatten_dense_tensors(flat, tensors)):
        t.copy_(avg)
