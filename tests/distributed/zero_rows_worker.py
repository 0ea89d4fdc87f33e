"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

One row, two ranks: rank 0 has no row of its own. Every explainer must return
the single-process result on both ranks, not fail or hang. Writes
``zero_rows_rank<r>.txt`` into ``$OUT`` ('ok' or the first error).
"""

import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

EXPLAINERS = {
    "permutation": lambda: PermutationModalityImportance(n_repeats=2, random_state=0),
    "permutation_full": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0, fast=False
    ),
    "permutation_class": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0, class_index=0
    ),
    "conditional": lambda: ConditionalUtilization(scoring="loss"),
    "shapley": lambda: ModalityShapley(),
    "attribution": lambda: GradientModalityAttribution(),
}


def numbers(expl):
    keys = ("importances", "score_without", "values", "sample_shares")
    return [np.asarray(getattr(expl, k), float) for k in keys if hasattr(expl, k)]


def main() -> None:
    torch.set_num_threads(1)
    X, y = make_multimodal_classification(n_samples=40, random_state=0)
    X = ModalityDict({m: np.asarray(v, np.float32) for m, v in X.items()})
    clf = MultimodalClassifier(max_epochs=1, random_state=0).fit(X, y)
    X1, y1 = ModalityDict({m: v[:1] for m, v in X.items()}), y[:1]
    want = {k: numbers(make().explain(clf, X1, y1)) for k, make in EXPLAINERS.items()}
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    message = "ok"
    try:
        for name, make in EXPLAINERS.items():
            got = numbers(make().explain(clf, X1, y1))
            for a, b in zip(got, want[name]):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    except Exception as exc:  # reported to the test, which fails with it
        message = f"{type(exc).__name__}: {exc}"
    with open(os.path.join(os.environ["OUT"], f"zero_rows_rank{rank}.txt"), "w") as f:
        f.write(message)
    dist.destroy_process_group()
    sys.exit(0)


if __name__ == "__main__":
    main()
