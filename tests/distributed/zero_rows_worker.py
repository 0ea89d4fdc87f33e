"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo, CPU).

One row, two ranks: rank 0 has no row of its own. Every explainer, on each of
its code paths that shares rows between ranks (cached embeddings, full
forward passes, per-sample scorers, input baselines, Monte-Carlo Shapley,
gradients at the inputs, MMTM squeeze averages, a torch Dataset), must return
the single-process result on both ranks, not fail or hang. Writes
``zero_rows_rank<r>.txt`` into ``$OUT`` ('ok' or the first error).
"""

import os
import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from mmexplain import MMTMNet, ModalityDict, MultimodalClassifier
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


#: name -> (explainer factory, model kind, data kind)
RUNS = {
    "permutation": (
        lambda: PermutationModalityImportance(n_repeats=2, random_state=0),
        "clf",
        "mem",
    ),
    "permutation_full": (
        lambda: PermutationModalityImportance(n_repeats=2, random_state=0, fast=False),
        "clf",
        "mem",
    ),
    "permutation_class": (
        lambda: PermutationModalityImportance(
            n_repeats=2, random_state=0, class_index=0
        ),
        "clf",
        "mem",
    ),
    "permutation_per_sample_scorer": (
        lambda: PermutationModalityImportance(
            n_repeats=2, random_state=0, scoring="balanced_accuracy"
        ),
        "clf",
        "mem",
    ),
    "permutation_dataset": (
        lambda: PermutationModalityImportance(n_repeats=2, random_state=0),
        "clf",
        "ds",
    ),
    "conditional": (lambda: ConditionalUtilization(scoring="loss"), "clf", "mem"),
    "conditional_input_mean": (
        lambda: ConditionalUtilization(scoring="loss", ablation="input_mean"),
        "callable",
        "mem",
    ),
    "conditional_mmtm": (
        lambda: ConditionalUtilization(scoring="loss"),
        "mmtm",
        "images",
    ),
    "shapley": (lambda: ModalityShapley(), "clf", "mem"),
    "shapley_mean": (lambda: ModalityShapley(baseline="mean"), "clf", "mem"),
    "shapley_monte_carlo": (
        lambda: ModalityShapley(n_samples=4, random_state=0),
        "clf",
        "mem",
    ),
    "shapley_full_forward": (
        lambda: ModalityShapley(baseline="mean_input"),
        "callable",
        "mem",
    ),
    "shapley_dataset": (lambda: ModalityShapley(), "clf", "ds"),
    "attribution": (lambda: GradientModalityAttribution(), "clf", "mem"),
    "attribution_input": (
        lambda: GradientModalityAttribution(level="input", output="true"),
        "callable",
        "mem",
    ),
    "attribution_dataset": (lambda: GradientModalityAttribution(), "clf", "ds"),
}


def numbers(expl):
    keys = ("importances", "score_without", "values", "sample_shares", "shares")
    return [np.asarray(getattr(expl, k), float) for k in keys if hasattr(expl, k)]


def main() -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # one-row scores warn (e.g. a single class)
    X, y = make_multimodal_classification(n_samples=40, random_state=0)
    X = ModalityDict({m: np.asarray(v, np.float32) for m, v in X.items()})
    # trained before the process group exists: the same models on every rank
    clf = MultimodalClassifier(max_epochs=1, random_state=0).fit(X, y)
    rng = np.random.default_rng(0)
    images = ModalityDict(
        {
            "a": rng.normal(size=(8, 1, 6, 6)).astype(np.float32),
            "b": rng.normal(size=(8, 2, 6, 6)).astype(np.float32),
        }
    )
    y_images = np.arange(8) % 2
    mmtm = MultimodalClassifier(
        MMTMNet, module__channels=(4,), max_epochs=1, random_state=0
    ).fit(images, y_images)
    module = clf.module_

    def forward(**rows):  # a plain callable: full forward passes, no encode/fuse
        return module(**rows)

    models = {"clf": clf, "callable": forward, "mmtm": mmtm}
    X1, y1 = ModalityDict({m: v[:1] for m, v in X.items()}), y[:1]
    data = {
        "mem": (X1, y1),
        "ds": (Rows(X1, y1), y1),
        "images": (ModalityDict({m: v[:1] for m, v in images.items()}), y_images[:1]),
    }

    def run(name):
        make, model, kind = RUNS[name]
        return numbers(make().explain(models[model], *data[kind]))

    want = {name: run(name) for name in RUNS}
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    message = "ok"
    try:
        for name in RUNS:
            got = run(name)
            assert len(got) == len(want[name]), name
            for a, b in zip(got, want[name]):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    except Exception as exc:  # reported to the test, which fails with it
        message = f"{name}: {type(exc).__name__}: {exc}"
    with open(os.path.join(os.environ["OUT"], f"zero_rows_rank{rank}.txt"), "w") as f:
        f.write(message)
    dist.destroy_process_group()
    sys.exit(0)


if __name__ == "__main__":
    main()
