"""Explaining under ``torch.distributed``: row shares, reductions, gathers.

When a process group is initialized (e.g. under ``torchrun``), each rank
evaluates only its share of the rows, ``[n * r // W, n * (r + 1) // W)``; the
permutation and coalition plans are drawn from ``random_state`` identically
on every rank. The engine's statistics are additive per row, so summing them
across ranks (``all_reduce``) gives exactly the single-process numbers;
per-sample outputs are gathered in row order. Without a process group every
function here is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_gather_rows", "all_reduce_sum", "rank_and_world", "row_share"]


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
    backend = dist.get_backend()
    return torch.device("cpu") if backend == "gloo" else t.device


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
