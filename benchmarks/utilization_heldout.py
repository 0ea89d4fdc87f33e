"""UtilizationTarget: training-set vs held-out utilization, and steering on a validation split.

The setting of ``tests/test_claims.py`` (two modalities with the same
evidence, 'a' twice as informative as 'b'; a vanilla network pre-trained 30
epochs, then 20 epochs of the fusion head only with frozen encoders,
``strength=3``, ``warmup=2``) on 2,000 + ``--n-valid`` samples per seed: 1,000
training samples (pre-training and head training), ``--n-valid`` (500)
validation samples and 1,000 test samples, never used for training or steering. For each target of 'a'
(25/50/75%) two arms:

* ``train``: ``UtilizationTarget(measure_on='train')`` (the utilization term on
  the training batches, the default);
* ``valid``: ``UtilizationTarget(measure_on='valid', validation_data=(X_val,
  y_val))`` (the term on validation batches, the task loss on training
  batches).

Whole-set permutation MU of 'a' (``n_repeats=5``) is measured on the training
split and on the test split; the script prints per arm the values over seeds,
mean +- sd, the held-out gap (test - train) and how many seeds land within
+-10 points of the target on the test split.

    OMP_NUM_THREADS=1 python benchmarks/utilization_heldout.py [--seeds 0-7] [--n-valid 500]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmexplain import MultimodalClassifier
from mmexplain.balancers import UtilizationTarget
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import PermutationModalityImportance

TARGETS = (0.25, 0.5, 0.75)


def measure(seed: int, n_valid: int = 500) -> dict[str, dict[str, float]]:
    X, y = make_multimodal_classification(
        2000 + n_valid,
        modalities=["a", "b"],
        informativeness=[1.0, 0.5],
        n_features=[10, 10],
        shared=1.0,
        noise=0.5,
        random_state=seed,
    )
    Xtr, Xrest, ytr, yrest = train_test_split(
        X, y, train_size=1000, stratify=y, random_state=seed
    )
    Xva, Xte, yva, yte = train_test_split(
        Xrest, yrest, train_size=n_valid, stratify=yrest, random_state=seed
    )
    pre = MultimodalClassifier(
        max_epochs=30, lr=3e-3, random_state=seed, module__embedding_dim=16
    ).fit(Xtr, ytr)
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)

    def mu(clf: MultimodalClassifier) -> dict[str, float]:
        return {
            "train": float(pmi.explain(clf, Xtr, ytr).utilization[0]),
            "test": float(pmi.explain(clf, Xte, yte).utilization[0]),
            "accuracy": clf.score(Xte, yte),
        }

    out = {"vanilla": mu(pre)}
    for t in TARGETS:
        for where in ("train", "valid"):
            clf = copy.deepcopy(pre)
            clf.set_params(
                warm_start=True,
                max_epochs=20,
                balancer=UtilizationTarget(
                    {"a": t, "b": 1 - t},
                    strength=3.0,
                    warmup=2,
                    freeze_encoders=True,
                    measure_on=where,
                    validation_data=(Xva, yva) if where == "valid" else None,
                ),
            )
            clf.fit(Xtr, ytr)
            out[f"{t:.2f} {where}"] = mu(clf)
    return out


def parse_seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--n-valid", type=int, default=500, help="validation samples")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = parse_seeds(args.seeds)
    runs = {}
    for seed in seeds:
        t0 = time.perf_counter()
        runs[seed] = measure(seed, args.n_valid)
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\nMU of 'a' (%), whole-set permutation, seeds {seeds}")
    for arm in runs[seeds[0]]:
        tr = np.array([runs[s][arm]["train"] for s in seeds])
        te = np.array([runs[s][arm]["test"] for s in seeds])
        acc = np.array([runs[s][arm]["accuracy"] for s in seeds])
        line = (
            f"{arm:12s} train {tr.mean():5.1f} +- {tr.std(ddof=1):4.1f}  "
            f"test {te.mean():5.1f} +- {te.std(ddof=1):4.1f}  "
            f"gap {np.mean(te - tr):+5.1f}  accuracy {acc.mean():.3f}"
        )
        if arm != "vanilla":
            t = 100 * float(arm.split()[0])
            line += (
                f"  within +-10 on test: {int((np.abs(te - t) <= 10).sum())}/"
                f"{len(seeds)}, on train: {int((np.abs(tr - t) <= 10).sum())}/"
                f"{len(seeds)}"
            )
        print(line)
        print(f"{'':12s} test per seed {np.round(te, 1).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
