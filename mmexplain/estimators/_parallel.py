"""Data-parallel training when a ``torch.distributed`` process group exists.

Under ``torchrun`` or ``accelerate launch`` (once the process group is
initialized, e.g. by ``accelerate.Accelerator()`` or
``torch.distributed.init_process_group``), ``fit`` trains data-parallel:

- every process draws the same mini-batches from the same seeded generator
  and takes its contiguous part of each (``TensorBatchIterator(shard=...)``,
  or the equivalent batch sampler for Datasets on disk);
- after ``loss.backward()`` the gradients are averaged over the processes
  (one all-reduce of the flattened gradients), *before* the balancer's
  ``edit_gradients`` hook, so gradient edits act on the synchronized
  gradients;
- balancers reduce the statistics they compute per step or epoch over the
  processes (OGM-GE's uni-modal scores, the per-epoch running means), and
  statistics computed from synchronized gradients or with the distributed
  explainers (GreedyBalancer's learning speeds, SampleValuation's Shapley
  values) are the same on every rank by construction.

Every rank therefore applies the same update and ends with identical weights.
The module is not wrapped in ``DistributedDataParallel``: balancers call its
``encode``/``fuse`` and context managers directly, which DDP's forward hooks
would not see.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["average_gradients", "data_parallel_shard"]


def data_parallel_shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` when training should be data-parallel, else None."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of ``module``'s trainable parameters over all processes.

    A parameter without a gradient on this process contributes zeros, so every
    process ends with the same gradients (and the optimizer makes the same
    step everywhere). Floating-point buffers are averaged as well.
    """
    shard = data_parallel_shard()
    if shard is None:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    _average([p.grad for p in params], shard[1])
    # floating-point buffers (running averages, e.g. MMTM gate/squeeze means,
    # batch-norm statistics) are averaged too, so every rank keeps the same
    # state: the mean of per-rank running means of equal-size shards
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if buffers:
        _average(buffers, shard[1])


def _average(tensors: list[torch.Tensor], world: int) -> None:
    flat = torch._utils._flatten_dense_tensors(tensors)
    device = flat.device
    if dist.get_backend() == "gloo" and device.type != "cpu":
        flat = flat.cpu()
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat = flat.to(device) / world
    for t, avg in zip(tensors, torch._utils._unflatten_dense_tensors(flat, tensors)):
        t.copy_(avg)
