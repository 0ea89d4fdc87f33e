"""Epoch time of MultimodalClassifier vs a hand-written PyTorch loop and skorch's default.

All three train the same LateFusionNet (same initial weights, Adam, batch size,
shuffling every epoch) on the bundled UCI Multiple Features data (2000 samples,
6 modalities). Runs are interleaved and the median epoch time of each is
reported, with the ratios to the hand-written loop.

    python benchmarks/bench_training.py [--epochs 5] [--repeats 3] [--batch-size 64]
                                        [--device auto|cpu|cuda] [--smoke]

--device (default auto: cuda when torch.cuda.is_available()): all three train
there (the hand loop on the training tensors moved to the device once,
MultimodalClassifier and skorch with ``device=``); on CUDA the times are taken
between torch.cuda.synchronize() calls and the peak of
torch.cuda.max_memory_allocated in each loop's last run is printed beside the
process's peak RSS.

On an accelerator a fourth row trains with ``data_on_device=True`` (the
training arrays copied to the device once per fit, as the hand loop has them).

Targets: MultimodalClassifier <= 1.2x the hand-written loop (issue 2); on a
GPU, MultimodalClassifier(data_on_device=True) <= 1.05x (issue 19).
--smoke (a few seconds, for the test suite: tests/test_benchmarks.py): the same
code paths and table on 300 random rows, 1 epoch x 1 repeat; its timings mean
nothing.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from _common import (
    PeakMemory,
    add_device_argument,
    load_average,
    machine_line,
    resolve_device,
    sync,
)
from skorch import NeuralNetClassifier
from torch import nn

from mmexplain import MultimodalClassifier
from mmexplain.datasets import load_multiple_features
from mmexplain.modules import build_module


def hand_loop(
    module: nn.Module,
    X: dict,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    device: str = "cpu",
) -> float:
    """The minimal PyTorch training loop; returns seconds per epoch."""
    module = module.to(device)
    Xt = {k: torch.as_tensor(v, device=device) for k, v in X.items()}
    yt = torch.as_tensor(y, device=device)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    crit = nn.CrossEntropyLoss()
    n = len(yt)
    gen = torch.Generator().manual_seed(0)
    module.train()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            xb = {k: v.index_select(0, idx) for k, v in Xt.items()}
            opt.zero_grad()
            loss = crit(module(**xb), yt.index_select(0, idx))
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)
    return (time.perf_counter() - t0) / epochs


def timed_fit(est, X, y, epochs: int, device: str = "cpu") -> float:
    sync(device)
    t0 = time.perf_counter()
    est.fit(X, y)
    sync(device)
    return (time.perf_counter() - t0) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: 300 rows, 1 epoch x 1 repeat",
    )
    add_device_argument(ap)
    args = ap.parse_args()
    device = resolve_device(args.device)
    load_start = load_average()

    X, y = load_multiple_features()
    X = {k: np.asarray(v, dtype=np.float32) for k, v in X.items()}
    y = y.astype(np.int64)
    if args.smoke:
        args.epochs, args.repeats = 1, 1
        rows = np.sort(np.random.default_rng(0).permutation(len(y))[:300])
        X, y = {k: v[rows] for k, v in X.items()}, y[rows]
    shapes = {k: v.shape[1:] for k, v in X.items()}
    torch.manual_seed(0)
    template = build_module(shapes, n_classes=10)
    n_params = sum(p.numel() for p in template.parameters())

    common = dict(
        max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=device
    )
    runs: dict[str, list[float]] = {
        "hand-written loop": [],
        "MultimodalClassifier": [],
        "skorch default (DataLoader)": [],
    }
    on_accelerator = torch.device(device).type != "cpu"
    if on_accelerator:  # the opt-in that keeps the training arrays on the device
        runs["MultimodalClassifier(data_on_device=True)"] = []
    mem = {name: PeakMemory(device) for name in runs}
    # warm-up (allocator, threads, kernels)
    hand_loop(copy.deepcopy(template), X, y, 1, args.batch_size, args.lr, device)
    for _ in range(args.repeats):
        with mem["hand-written loop"]:
            runs["hand-written loop"].append(
                hand_loop(
                    copy.deepcopy(template),
                    X,
                    y,
                    args.epochs,
                    args.batch_size,
                    args.lr,
                    device,
                )
            )
        ours = MultimodalClassifier(
            copy.deepcopy(template),
            optimizer=torch.optim.Adam,
            random_state=0,
            **common,
        )
        with mem["MultimodalClassifier"]:
            runs["MultimodalClassifier"].append(
                timed_fit(ours, X, y, args.epochs, device)
            )
        if on_accelerator:
            resident = MultimodalClassifier(
                copy.deepcopy(template),
                optimizer=torch.optim.Adam,
                random_state=0,
                data_on_device=True,
                **common,
            )
            name = "MultimodalClassifier(data_on_device=True)"
            with mem[name]:
                runs[name].append(timed_fit(resident, X, y, args.epochs, device))
        skorch_net = NeuralNetClassifier(
            copy.deepcopy(template),
            criterion=nn.CrossEntropyLoss,
            optimizer=torch.optim.Adam,
            train_split=None,
            iterator_train__shuffle=True,
            verbose=0,
            **common,
        )
        with mem["skorch default (DataLoader)"]:
            runs["skorch default (DataLoader)"].append(
                timed_fit(skorch_net, X, y, args.epochs, device)
            )

    base = statistics.median(runs["hand-written loop"])
    print(machine_line(device, load_start))
    print(
        f"data: UCI Multiple Features, N={len(y)}, 6 modalities; model: LateFusionNet, "
        f"{n_params} parameters; batch_size={args.batch_size}; {args.epochs} epochs x {args.repeats} repeats"
    )
    print(f"{'training loop':32s} {'s/epoch':>9s} {'ratio to hand loop':>20s}")
    for name, vals in runs.items():
        med = statistics.median(vals)
        print(f"{name:32s} {med:9.4f} {med / base:20.2f}x   {mem[name].describe()}")
    ratio = statistics.median(runs["MultimodalClassifier"]) / base
    print(
        f"target MultimodalClassifier <= 1.20x hand loop: {'met' if ratio <= 1.2 else 'NOT met'} ({ratio:.2f}x)"
    )
    if on_accelerator:
        name = "MultimodalClassifier(data_on_device=True)"
        ratio = statistics.median(runs[name]) / base
        print(
            f"target {name} <= 1.05x hand loop (issue 19): "
            f"{'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.2f}x)"
        )


if __name__ == "__main__":
    main()
