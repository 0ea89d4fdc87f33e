"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=N`` (gloo, CPU).

Every rank trains the same seeded model, explains it with each explainer on
in-memory data, a lazy Dataset, full forward passes and a DDP-wrapped module,
and writes its results to ``$OUT/rank<r>.npz``. Run without torchrun it
writes the single-process reference ``$OUT/single.npz``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)


class Rows(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {m: torch.as_tensor(v[i]) for m, v in self.X.items()}, int(self.y[i])


def main() -> None:
    out = os.environ["OUT"]
    distributed = "RANK" in os.environ
    torch.set_num_threads(1)
    X, y = make_multimodal_classification(n_samples=203, random_state=0)  # odd N
    X = ModalityDict({m: np.asarray(v, np.float32) for m, v in X.items()})
    # trained before the process group exists: the same model in every run
    # (with a process group, fit would train data-parallel)
    clf = MultimodalClassifier(max_epochs=3, random_state=0).fit(X, y)
    if distributed:
        dist.init_process_group("gloo")
    module = clf.module_
    if distributed:
        ddp = torch.nn.parallel.DistributedDataParallel(module)
    results = {}
    runs = {
        "perm": lambda: PermutationModalityImportance(
            n_repeats=3, random_state=0, batch_size=64
        ),
        "perm_full": lambda: PermutationModalityImportance(
            n_repeats=2, random_state=1, fast=False, batch_size=50
        ),
        "cond": lambda: ConditionalUtilization(batch_size=64),
        "cond_input": lambda: ConditionalUtilization(
            ablation="input_mean", batch_size=64
        ),
        "shap": lambda: ModalityShapley(batch_size=64),
        "shap_mc": lambda: ModalityShapley(n_samples=8, random_state=0, batch_size=64),
        "attr": lambda: GradientModalityAttribution(batch_size=64),
    }
    for name, make in runs.items():
        for kind, (model, data, target) in {
            "mem": (clf, X, y),
            "ds": (clf, Rows(X, y), None),
            "module": (module, X, y),
        }.items():
            e = make().explain(model, data, target)
            results[f"{name}/{kind}/shares"] = e.shares
            for key in (
                "importances",
                "rates",
                "values",
                "sample_shares",
                "standard_errors",
            ):
                if getattr(e, key, None) is not None:
                    results[f"{name}/{kind}/{key}"] = np.asarray(getattr(e, key))
        if distributed:
            e = make().explain(ddp, X, y)
            results[f"{name}/ddp/shares"] = e.shares
    tag = f"rank{dist.get_rank()}" if distributed else "single"
    np.savez(os.path.join(out, f"{tag}.npz"), **results)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
