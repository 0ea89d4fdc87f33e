"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

Data-parallel training with balancers, the process group created by
``accelerate.Accelerator``: every rank fits the same seeded
estimator on the same data (each takes its part of every batch; gradients are
averaged) and writes its final weights and history to ``$OUT/train_rank<r>.npz``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from mmexplain import MultimodalClassifier
from mmexplain.balancers import (
    OGMGE,
    GreedyBalancer,
    ModalityDropout,
    UtilizationTarget,
)
from mmexplain.datasets import make_colored_digits, make_multimodal_classification


def main() -> None:
    # the `accelerate` route: Accelerator() creates the process group (gloo on
    # CPU under torchrun, NCCL under `accelerate launch` on GPUs); fit then
    # trains data-parallel
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    assert dist.is_initialized() and accelerator.num_processes == 2
    torch.set_num_threads(1)
    rank = dist.get_rank()
    X, y = make_multimodal_classification(n_samples=150, random_state=0)
    fits = {
        "dropout": MultimodalClassifier(
            balancer=ModalityDropout(p=0.4, fill="mean"), max_epochs=3, random_state=0
        ),
        "ogm": MultimodalClassifier(
            module__head="linear",
            balancer=OGMGE(alpha=0.8),
            optimizer=torch.optim.SGD,
            lr=0.05,
            max_epochs=3,
            random_state=0,
        ),
        "target": MultimodalClassifier(
            balancer=UtilizationTarget({"a": 0.5, "b": 0.5}, warmup=0),
            max_epochs=3,
            random_state=0,
        ),
    }
    out = {}
    seen = {}
    for name, clf in fits.items():
        clf.fit(X, y)
        for k, v in clf.module_.state_dict().items():
            out[f"{name}/{k}"] = v.detach().cpu().numpy()
        seen[name] = clf.history[-1, "train_batch_count"]
    Xd, yd, _, _ = make_colored_digits(random_state=0)
    Xd, yd = Xd[:120], yd[:120]
    from mmexplain import MMTMNet

    greedy = MultimodalClassifier(
        MMTMNet,
        module__channels=(4,),
        balancer=GreedyBalancer(tolerance=0.0, warmup_epochs=0),
        max_epochs=2,
        batch_size=32,
        random_state=0,
    ).fit(Xd, yd)
    for k, v in greedy.module_.state_dict().items():
        out[f"greedy/{k}"] = v.detach().cpu().numpy()
    steps = greedy.history[-1, "greedy_rebalance_steps"]
    out["greedy_steps"] = np.array([steps["color"], steps["gray"]])
    out["ogm_coefficients"] = np.array(
        list(fits["ogm"].history[-1, "ogm_coefficients"].values())
    )
    np.savez(os.path.join(os.environ["OUT"], f"train_rank{rank}.npz"), **out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
