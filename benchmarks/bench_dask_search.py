"""Wall time of one GridSearchCV with n_jobs=1 vs joblib's dask backend.

The search (balancer__p of ModalityDropout x cv folds, accuracy plus a
PermutationModalityImportance scorer, refit on accuracy) runs on synthetic
two-modality data, first in this process with n_jobs=1, then on a LocalCluster
of single-threaded worker processes through
``joblib.parallel_config(backend="dask")``. Cluster start-up is timed
separately; the first dask search is "cold" (workers import torch and
mmexplain), the next ones "warm"; ratios use the median n_jobs=1 time (after a
warm-up fit in this process). The script checks that cv_results_ and
best_params_ equal the n_jobs=1 run exactly, and exits 1 if they do not.

    python benchmarks/bench_dask_search.py [--workers 2] [--n-samples 2000]
        [--epochs 8] [--repeats 2] [--device auto|cpu|cuda] [--smoke]

--device (default auto: cuda when torch.cuda.is_available()): every fit (and
the PermutationModalityImportance scorer, which follows the model's device)
runs there, ``MultimodalClassifier(device=...)``, in this process and in each
dask worker (each worker process opens its own CUDA context on the same GPU).

--smoke (for the test suite: tests/test_benchmarks.py): the same code paths,
equality check and output on 200 samples, 1 epoch, cv=2, 1 dask worker, 1 warm
dask run; its timings mean nothing.

Needs the ``distributed`` extra: pip install -c constraints.txt -e ".[distributed]".
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time

import joblib
import numpy as np
import torch
from _common import add_device_argument, device_name, resolve_device
from distributed import Client, LocalCluster
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from mmexplain import MultimodalClassifier
from mmexplain.balancers import ModalityDropout
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import PermutationModalityImportance


def make_search(epochs: int, cv: int, device: str = "cpu") -> GridSearchCV:
    return GridSearchCV(
        MultimodalClassifier(
            balancer=ModalityDropout(),
            max_epochs=epochs,
            lr=0.02,
            random_state=0,
            device=device,
        ),
        {"balancer__p": [0.1, 0.2, 0.3, 0.5]},
        cv=cv,
        scoring={
            "acc": "accuracy",
            "bal": PermutationModalityImportance(n_repeats=2, random_state=0),
        },
        refit="acc",
    )


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def mismatches(a: GridSearchCV, b: GridSearchCV) -> list[str]:
    bad = [
        key
        for key in a.cv_results_
        if key.startswith(("split", "mean_test", "std_test", "rank_test"))
        and not np.array_equal(a.cv_results_[key], b.cv_results_[key])
    ]
    if a.best_params_ != b.best_params_:
        bad.append("best_params_")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--cv", type=int, default=3)
    ap.add_argument(
        "--repeats", type=int, default=2, help="n_jobs=1 and warm dask runs"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: 200 samples, 1 epoch, cv=2",
    )
    add_device_argument(ap)
    args = ap.parse_args()
    device = resolve_device(args.device)
    if args.smoke:
        args.n_samples, args.epochs, args.cv, args.repeats = 200, 1, 2, 1
        args.workers = 1

    # the workers run one torch thread each (dask sets OMP_NUM_THREADS=1); the
    # n_jobs=1 baseline uses one too, so the results can match bit for bit
    torch.set_num_threads(1)
    X, y = make_multimodal_classification(n_samples=args.n_samples, random_state=0)
    search = make_search(args.epochs, args.cv, device)
    n_fits = len(search.param_grid["balancer__p"]) * args.cv
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, device {device_name(device)}; N={args.n_samples}, {n_fits} fits of "
        f"{args.epochs} epochs + refit, {args.workers} dask workers x 1 thread; "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    # warm this process up (first-call costs of torch) as the warm workers are
    MultimodalClassifier(max_epochs=1, random_state=0, device=device).fit(X, y)
    seq_runs = []
    for i in range(max(1, args.repeats)):
        t, seq = timed(lambda: clone(search).set_params(n_jobs=1).fit(X, y))
        print(f"n_jobs=1, #{i + 1}           {t:7.2f} s")
        seq_runs.append(t)
    t_seq = statistics.median(seq_runs)

    t_up, cluster = timed(
        lambda: LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    )
    bad: list[str] = []
    try:
        with Client(cluster) as client:
            client.wait_for_workers(args.workers)
            print(f"cluster start-up      {t_up:7.2f} s")
            runs = []
            for i in range(1 + args.repeats):
                with joblib.parallel_config(backend="dask"):
                    t, dist = timed(lambda: clone(search).fit(X, y))
                bad += mismatches(seq, dist)
                label = "dask, cold" if i == 0 else f"dask, warm #{i}"
                print(f"{label:<21} {t:7.2f} s   n_jobs=1 / dask = {t_seq / t:.2f}x")
                runs.append(t)
            warm = statistics.median(runs[1:]) if args.repeats else runs[0]
            print(
                f"median warm dask      {warm:7.2f} s   n_jobs=1 / dask = "
                f"{t_seq / warm:.2f}x; with start-up and cold run: "
                f"{t_seq / (t_up + runs[0]):.2f}x"
            )
    finally:
        cluster.close()

    print(f"best_params_: n_jobs=1 {seq.best_params_}, dask {dist.best_params_}")
    if bad:
        print("MISMATCH between n_jobs=1 and dask in:", sorted(set(bad)))
        return 1
    print("equal: cv_results_ (all split/mean/std/rank test scores) and best_params_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
