"""Epoch time of each training-time balancer relative to vanilla training.

Every balancer is timed against vanilla training of the same model on the same
data, side by side in one run: for each repeat, vanilla is fitted first, then
each balancer (same seed, so the same initial weights and batch order), and the
median over repeats is reported. Time per epoch is the whole ``fit`` time
divided by ``max_epochs`` (so fit overheads such as building the module, the
balancer's ``fit_started`` and its per-epoch valuation are included). One
1-epoch warm-up fit of every configuration runs first (imports, allocator,
autograd paths).

1. LateFusionNet with a single linear head (``module__head='linear'``, which
   OGMGE needs; vanilla uses the same head) built by MultimodalClassifier on the
   bundled UCI Multiple Features (2000 samples, 6 modalities, standardized per
   modality with ModalityTransformer/StandardScaler): ModalityDropout, OGMGE,
   SampleValuation(warmup_epochs=0) (exact Shapley over 2^6 coalitions on the
   fusion head at every epoch, then re-sampling), AttributionRegularizer and
   UtilizationTarget (uniform targets).
2. MMTMNet(channels=(16, 32)) on the training split of make_colored_digits:
   GreedyBalancer(mode='guided') against vanilla MMTMNet.

    python benchmarks/bench_balancers.py [--epochs 5] [--repeats 5] [--batch-size 64]
                                         [--threads 1] [--device auto|cpu|cuda]
                                         [--quick] [--smoke]

Targets (ratio of s/epoch to vanilla): ModalityDropout <= 1.05x, OGMGE <= 1.2x,
SampleValuation <= 1.5x, AttributionRegularizer <= 1.6x, UtilizationTarget
<= 2.5x, GreedyBalancer (guided) <= 1.3x.

SampleValuation adds one-modality copies of low-value samples to every epoch,
so it trains on more rows than vanilla; its row count per epoch (relative to
vanilla), the time of one valuation + re-sampling (the balancer's
``epoch_started`` hook) and the ratio per training row are printed below the
table. --quick: 2 epochs x 2 repeats. --smoke (a few seconds, for the test
suite: tests/test_benchmarks.py): the same code paths and table on 300 random
rows of each data set, 1 epoch x 1 repeat; its timings mean nothing.

Torch runs on one thread by default (``--threads 0``: torch's own default):
the models are tiny, and on a machine shared with other CPU-bound processes
(load > cores) torch's OpenMP threads wait on each other, which made 2-thread
fits 5-20x slower and their ratios meaningless. The load average is printed.

--device (default auto: cuda when torch.cuda.is_available()): every fit runs
there (``MultimodalClassifier(device=...)``); on CUDA the times are taken
between torch.cuda.synchronize() calls and the peak of
torch.cuda.max_memory_allocated over each configuration's last fit is printed
beside its row. Issue 19's GPU targets: ModalityDropout and OGMGE <= 1.2x,
AttributionRegularizer <= 1.3x, UtilizationTarget <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import (
    PeakMemory,
    add_device_argument,
    machine_line,
    resolve_device,
    sync,
)
from sklearn.preprocessing import StandardScaler

from mmexplain import MMTMNet, ModalityTransformer, MultimodalClassifier
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.datasets import load_multiple_features, make_colored_digits


class Case:
    """One timed configuration: a suite's estimator with (or without) a balancer."""

    def __init__(
        self,
        name: str,
        suite: str,
        make_balancer: Callable[[], Any],
        target: float | None,
    ) -> None:
        self.name = name
        self.suite = suite
        self.make_balancer = make_balancer
        self.target = target
        self.times: list[float] = []
        self.last: MultimodalClassifier | None = None
        self.mem: PeakMemory | None = None


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def make_estimator(
    suite: str,
    balancer: Any,
    epochs: int,
    batch_size: int,
    lr: float,
    device: str = "cpu",
) -> MultimodalClassifier:
    common = dict(
        device=device,
        balancer=balancer,
        max_epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=torch.optim.Adam,
        random_state=0,
    )
    if suite == "mf":
        return MultimodalClassifier(module__head="linear", **common)
    return MultimodalClassifier(MMTMNet, module__channels=(16, 32), **common)


def timed_fit(est: MultimodalClassifier, X: Any, y: np.ndarray, epochs: int) -> float:
    sync(est.device)
    t0 = time.perf_counter()
    est.fit(X, y)
    sync(est.device)
    return (time.perf_counter() - t0) / epochs


def valuation_seconds(
    est: MultimodalClassifier, X: Any, y: np.ndarray, repeats: int
) -> float:
    """Median time of one SampleValuation epoch start (valuation + re-sampling).

    Calls the balancer's ``epoch_started`` hook as the training loop does
    (``net.notify_balancer``), on float32 tensors like the training data.
    """
    dev = est.device
    Xt = {
        m: torch.as_tensor(np.asarray(v, dtype=np.float32), device=dev)
        for m, v in X.items()
    }
    yt = torch.as_tensor(y, device=dev)
    times = []
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        replaced = est.notify_balancer("epoch_started", epoch=0, X=Xt, y=yt)
        sync(dev)
        times.append(time.perf_counter() - t0)
    assert replaced is not None, "SampleValuation added no rows"
    est.module_.train()
    return statistics.median(times)


def subsample(X: Any, y: np.ndarray, n: int | None) -> tuple[dict, np.ndarray]:
    """``n`` random rows (all rows when n is None), as a dict of arrays."""
    X = {m: np.asarray(v) for m, v in X.items()}
    if n is None or n >= len(y):
        return X, y
    rows = np.sort(np.random.default_rng(0).permutation(len(y))[:n])
    return {m: v[rows] for m, v in X.items()}, y[rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1; 0 leaves torch's default)",
    )
    ap.add_argument("--quick", action="store_true", help="2 epochs x 2 repeats")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: 300 rows, 1 epoch x 1 repeat",
    )
    add_device_argument(ap)
    args = ap.parse_args()
    device = resolve_device(args.device)
    rows = None
    if args.quick:
        args.epochs, args.repeats = 2, 2
    if args.smoke:
        args.epochs, args.repeats, rows = 1, 1, 300
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_start = load_average()

    # -- data -------------------------------------------------------------------
    X_mf, y_mf = load_multiple_features()
    X_mf, y_mf = subsample(X_mf, np.asarray(y_mf).astype(np.int64), rows)
    X_mf = ModalityTransformer({m: StandardScaler() for m in X_mf}).fit_transform(X_mf)
    mods = list(X_mf)
    uniform = {m: 1.0 / len(mods) for m in mods}
    X_cd, y_cd, _, _ = make_colored_digits(random_state=0)
    X_cd, y_cd = subsample(X_cd, np.asarray(y_cd).astype(np.int64), rows)
    data = {"mf": (X_mf, y_mf), "cd": (X_cd, y_cd)}

    cases = [
        Case("vanilla (linear head)", "mf", lambda: None, None),
        Case("ModalityDropout", "mf", ModalityDropout, 1.05),
        Case("OGMGE", "mf", OGMGE, 1.2),
        Case("SampleValuation", "mf", lambda: SampleValuation(warmup_epochs=0), 1.5),
        Case(
            "AttributionRegularizer",
            "mf",
            lambda: AttributionRegularizer(uniform),
            1.6,
        ),
        Case("UtilizationTarget", "mf", lambda: UtilizationTarget(uniform), 2.5),
        Case("vanilla MMTMNet", "cd", lambda: None, None),
        Case("GreedyBalancer (guided)", "cd", GreedyBalancer, 1.3),
    ]
    base_of = {"mf": cases[0], "cd": cases[6]}

    # -- warm-up, then interleaved timed fits -------------------------------------
    for c in cases:
        X, y = data[c.suite]
        make_estimator(
            c.suite, c.make_balancer(), 1, args.batch_size, args.lr, device
        ).fit(X, y)
    for _ in range(args.repeats):
        for c in cases:
            X, y = data[c.suite]
            est = make_estimator(
                c.suite,
                c.make_balancer(),
                args.epochs,
                args.batch_size,
                args.lr,
                device,
            )
            with PeakMemory(device) as c.mem:
                c.times.append(timed_fit(est, X, y, args.epochs))
            c.last = est

    # -- SampleValuation details ------------------------------------------------
    sv = next(c for c in cases if c.name == "SampleValuation")
    extra = sv.last.history[:, "valuation_extra_samples"]
    n_mf = len(y_mf)
    rows_ratio = float(np.mean([(n_mf + sum(e.values())) / n_mf for e in extra]))
    t_val = valuation_seconds(sv.last, X_mf, y_mf, max(1, args.repeats))

    n_params = {
        s: sum(p.numel() for p in base_of[s].last.module_.parameters()) for s in base_of
    }
    greedy = cases[7].last.history[:, "greedy_rebalance_steps"]
    rebal_steps = sum(sum(e.values()) for e in greedy)
    steps_total = args.epochs * -(-len(y_cd) // args.batch_size)

    # -- report -------------------------------------------------------------------
    ncpu = os.cpu_count() or 1
    load_end = load_average()
    print(machine_line(device, load_start, t_start))
    try:
        busy = max(float(load_start), float(load_end)) > ncpu
    except ValueError:
        busy = False
    if busy:
        print(
            "WARNING: other processes were using the CPU (load > cores): timings are "
            "inflated and noisy; only ratios within this run compare"
        )
    print(
        f"data: (1) UCI Multiple Features, N={n_mf}, 6 modalities, LateFusionNet "
        f"head='linear', {n_params['mf']} parameters; (2) colored digits train split, "
        f"N={len(y_cd)}, MMTMNet channels=(16, 32), {n_params['cd']} parameters; "
        f"batch_size={args.batch_size}; {args.epochs} epochs x {args.repeats} repeats, "
        "median"
    )
    print(
        f"{'configuration':26s} {'s/epoch':>9s} {'ratio':>8s} {'extra ms/epoch':>15s} "
        f"{'target':>8s}"
    )
    results = []
    for c in cases:
        base = statistics.median(base_of[c.suite].times)
        med = statistics.median(c.times)
        ratio = med / base
        target = f"<={c.target:.2f}x" if c.target is not None else ""
        extra_ms = f"{1000 * (med - base):+15.1f}" if c.target is not None else ""
        print(
            f"{c.name:26s} {med:9.4f} {ratio:7.2f}x {extra_ms:>15s} {target:>8s}   "
            f"{c.mem.describe()}"
        )
        if c.target is not None:
            results.append((c, ratio))
    sv_ratio = statistics.median(sv.times) / statistics.median(base_of["mf"].times)
    print(
        f"SampleValuation: {rows_ratio:.2f}x vanilla's training rows per epoch "
        f"(one-modality copies); one valuation + re-sampling = {1000 * t_val:.1f} ms; "
        f"ratio per training row {sv_ratio / rows_ratio:.2f}x"
    )
    print(
        f"GreedyBalancer: {rebal_steps} of {steps_total} steps were re-balancing steps "
        "in the last fit"
    )
    for c, ratio in results:
        print(
            f"target {c.name} <= {c.target:.2f}x vanilla: "
            f"{'met' if ratio <= c.target else 'NOT met'} ({ratio:.2f}x)"
        )


if __name__ == "__main__":
    main()
