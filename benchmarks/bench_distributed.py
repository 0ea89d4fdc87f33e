"""Explaining under torch.distributed: 1 process vs P processes on the same data.

Model: a random-weight LateFusionNet (eval mode) with three modalities: two
images (3x32x32 and 1x32x32, ConvEncoder with channels (8, 16)) and one
vector (64 features, MLPEncoder), 10 classes, 32 features per embedding;
labels are the model's own predictions with 20% label noise. The parent
writes the data once to ``.npy`` files; every process loads them into memory.

Each explainer (PermutationModalityImportance, exact ModalityShapley,
ConditionalUtilization, GradientModalityAttribution) runs

1. in one process (``python bench_distributed.py --_worker``), and
2. in P processes launched by ``python -m torch.distributed.run --standalone
   --nproc_per_node=P`` (each rank evaluates its share of the rows; the
   additive statistics are all-reduced, see
   :mod:`mmexplain._core.distributed`).

On CPU the backend is gloo, P = ``--nproc`` (default 2) and every process
runs with ONE thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``),
so that P processes use P cores; a third run, one process with P threads,
is the same cores used by torch's intra-op threads instead. On a GPU machine
(``torch.cuda.is_available()``, or ``--device cuda``) the backend is
nccl, P = the number of GPUs, rank r runs on ``cuda:r``, and the 1-process
run uses ``cuda:0`` (with one GPU, P = 1: torchrun with one nccl rank, which
measures the overhead of the distributed code path).

Printed: the time of each explainer (barrier to barrier, the slowest rank,
best of ``--repeats``), the ratio 1 process / P processes, the wall time of
each launch (process start, imports, data loading and the collective
set-up included), and the equality check: the P-process shares, importances,
rates, Shapley values and per-sample shares equal the 1-process ones (max
absolute difference; every rank returns the same numbers, checked exactly).

    python benchmarks/bench_distributed.py [--n 16384 (GPU: 131072)] [--nproc 2]
        [--n-repeats 10] [--repeats 2] [--device auto|cpu|cuda] [--quick] [--smoke]

Target: ratio close to P for large N (the per-rank work is N/P rows; the
all-reduce moves a few hundred numbers). On a 2-core machine shared with
other CPU-bound processes (see the printed load average) the ratio is noisy
and bounded by the cores actually free. --quick: N = 4096, 1 repeat.
--smoke (for the test suite: tests/test_benchmarks.py): the same launches,
tables and equality check on N = 512 rows in batches of 128, 2 permutation
repeats, 1 timed run; its timings mean nothing (process start-up dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import resolve_device

from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.modules import ConvEncoder, LateFusionNet, MLPEncoder

N_CLASSES = 10
SHAPES = {"rgb": (3, 32, 32), "ir": (1, 32, 32), "meta": (64,)}
FIELDS = ("importances", "rates", "values", "base_values", "sample_shares")


def make_model(seed: int = 0) -> LateFusionNet:
    torch.manual_seed(seed)
    encoders = {
        m: MLPEncoder(s[0], 32)
        if len(s) == 1
        else ConvEncoder(s[0], 32, channels=(8, 16))
        for m, s in SHAPES.items()
    }
    return LateFusionNet(encoders, n_classes=N_CLASSES).eval()


def write_data(out: Path, n: int, device: str) -> None:
    rng = np.random.default_rng(0)
    X = {m: rng.standard_normal((n, *s), dtype=np.float32) for m, s in SHAPES.items()}
    model = make_model(0).to(device)
    with torch.inference_mode():
        y = torch.cat(
            [
                model(
                    **{
                        m: torch.from_numpy(v[s : s + 4096]).to(device)
                        for m, v in X.items()
                    }
                )
                .argmax(1)
                .cpu()
                for s in range(0, n, 4096)
            ]
        ).numpy()
    noisy = rng.random(n) < 0.2
    y[noisy] = rng.integers(0, N_CLASSES, int(noisy.sum()))
    for m, v in X.items():
        np.save(out / f"{m}.npy", v)
    np.save(out / "y.npy", y.astype(np.int64))


def explainers(n_repeats: int, batch_size: int) -> dict:
    return {
        "permutation": lambda: PermutationModalityImportance(
            n_repeats=n_repeats, random_state=0, batch_size=batch_size
        ),
        "shapley": lambda: ModalityShapley(value="probability", batch_size=batch_size),
        "conditional": lambda: ConditionalUtilization(batch_size=batch_size),
        "gradient": lambda: GradientModalityAttribution(batch_size=batch_size),
    }


# ----------------------------------------------------------------------------
# worker: one process, or one rank under torchrun
# ----------------------------------------------------------------------------
def worker(args) -> None:
    import torch.distributed as dist

    out = Path(args._worker)
    distributed = "RANK" in os.environ
    cuda = args.device == "cuda"
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    torch.set_num_threads(args.threads)

    def barrier():
        if distributed:
            dist.barrier()
        if cuda:
            torch.cuda.synchronize(device)

    X = {m: np.load(out / f"{m}.npy") for m in SHAPES}
    y = np.load(out / "y.npy")
    model = make_model(0).to(device)
    makers = explainers(args.n_repeats, args.batch_size)
    # warm-up on a slice (thread pools, kernels, the collectives)
    for make in makers.values():
        make().explain(model, {m: v[:512] for m, v in X.items()}, y[:512])
    times, results = {}, {}
    for name, make in makers.items():
        runs = []
        for _ in range(args.repeats):
            barrier()
            t0 = time.perf_counter()
            e = make().explain(model, X, y)
            barrier()
            runs.append(time.perf_counter() - t0)
        times[name] = min(runs)
        results[f"{name}/shares"] = np.asarray(e.shares)
        for key in FIELDS:
            if getattr(e, key, None) is not None:
                results[f"{name}/{key}"] = np.asarray(getattr(e, key))
    tag = f"{args._tag}_rank{rank}"
    np.savez(out / f"{tag}.npz", **results)
    if rank == 0:
        info = {
            "times": times,
            "world": world,
            "threads": torch.get_num_threads(),
            "device": str(device),
            # lifetime peaks of rank 0 (data, model, every explain)
            "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_peak_mib": (
                torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
            ),
        }
        (out / f"{args._tag}.json").write_text(json.dumps(info))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


def launch(args, out: Path, tag: str, nproc: int, threads: int) -> float:
    """Run the worker (under torchrun when nproc > 0); returns the wall time."""
    script = [
        os.path.abspath(__file__),
        "--_worker",
        str(out),
        "--_tag",
        tag,
        "--threads",
        str(threads),
        "--device",
        args.device,
        "--n-repeats",
        str(args.n_repeats),
        "--batch-size",
        str(args.batch_size),
        "--repeats",
        str(args.repeats),
    ]
    if nproc > 0:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            *script,
        ]
    else:
        cmd = [sys.executable, *script]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{tag} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return wall


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="rows (cpu 16384, cuda 131072)")
    ap.add_argument("--nproc", type=int, default=None, help="processes (cpu: 2)")
    ap.add_argument("--n-repeats", type=int, default=10, help="permutation repeats")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs (best)")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="~1-minute version")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: N=512, batches of 128",
    )
    ap.add_argument("--_worker", type=str, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_tag", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker is not None:
        worker(args)
        return
    args.device = resolve_device(args.device)
    cuda = args.device == "cuda"
    nproc = args.nproc or (torch.cuda.device_count() if cuda else 2)
    if args.n is None:
        args.n = 131072 if cuda else 16384
    if args.quick:
        args.n = min(args.n, 4096)
        args.repeats = 1
    if args.smoke:
        args.n, args.batch_size, args.n_repeats, args.repeats = 512, 128, 2, 1
    load_start = load_average()
    t_start = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="mmexplain_bench_dist_"))
    try:
        write_data(out, args.n, "cuda" if cuda else "cpu")
        walls = {"single": launch(args, out, "single", 0, 1)}
        if not cuda and nproc > 1:
            walls["threads"] = launch(args, out, "threads", 0, nproc)
        walls["dist"] = launch(args, out, "dist", nproc, 1)
        info = {t: json.loads((out / f"{t}.json").read_text()) for t in walls}
        res = {t: dict(np.load(out / f"{t}_rank0.npz")) for t in ("single", "dist")}
        ranks = [dict(np.load(out / f"dist_rank{r}.npz")) for r in range(nproc)]
    finally:
        shutil.rmtree(out, ignore_errors=True)

    ncpu = os.cpu_count() or 1
    load_end = load_average()
    gpu = (
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        if cuda
        else "none"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {ncpu} cores, GPUs: "
        f"{gpu}; torch {torch.__version__}; load average (1/5/15 min) at start "
        f"{load_start}, at end {load_end}; total {time.perf_counter() - t_start:.0f} s"
    )
    if (
        not cuda
        and max(float(load_start.split("/")[0]), float(load_end.split("/")[0]))
        > ncpu - 1
    ):
        print(
            f"WARNING: other processes were using the CPU (load average vs {ncpu} "
            f"cores): {nproc} single-threaded processes cannot all get a free core, "
            "so the ratio is noisy and understates the scaling"
        )
    backend = "nccl" if cuda else "gloo"
    print(
        f"data: N={args.n}, modalities {', '.join(f'{m} {s}' for m, s in SHAPES.items())}"
        f", {sum(v * 4 for v in (int(np.prod(s)) for s in SHAPES.values())) * args.n / 2**20:.0f} "
        f"MiB; batch_size={args.batch_size}, n_repeats={args.n_repeats}; "
        f"best of {args.repeats}; backend {backend}"
    )
    print()
    cols = [("single", f"1 proc x {info['single']['threads']} thr")]
    if "threads" in info:
        cols.append(("threads", f"1 proc x {info['threads']['threads']} thr"))
    cols.append(("dist", f"{nproc} ranks x {info['dist']['threads']} thr"))
    header = f"{'explainer':14s}" + "".join(f"{c:>18s}" for _, c in cols)
    header += f"{'1 proc / ' + str(nproc) + ' proc':>18s}"
    if "threads" in info:
        header += f"{'1p' + str(nproc) + 't / ' + str(nproc) + ' proc':>18s}"
    print("seconds per explain (barrier to barrier, slowest rank)")
    print(header)
    for name in info["single"]["times"]:
        t = {k: info[k]["times"][name] for k, _ in cols}
        line = f"{name:14s}" + "".join(f"{t[k]:18.2f}" for k, _ in cols)
        line += f"{t['single'] / t['dist']:17.2f}x"
        if "threads" in info:
            line += f"{t['threads'] / t['dist']:17.2f}x"
        print(line)
    tot = {k: sum(info[k]["times"].values()) for k, _ in cols}
    line = f"{'all four':14s}" + "".join(f"{tot[k]:18.2f}" for k, _ in cols)
    line += f"{tot['single'] / tot['dist']:17.2f}x"
    if "threads" in info:
        line += f"{tot['threads'] / tot['dist']:17.2f}x"
    print(line)
    print(
        "wall time of each launch (start, imports, data, warm-up, "
        f"{args.repeats} run(s) of each): "
        + ", ".join(f"{c} {walls[k]:.1f} s" for k, c in cols)
    )
    print(
        "peak memory of rank 0 over its launch: "
        + ", ".join(
            f"{c} RSS {info[k]['rss_peak_mib']:.0f} MiB"
            + (
                f" / CUDA allocated {info[k]['cuda_peak_mib']:.0f} MiB"
                if info[k].get("cuda_peak_mib") is not None
                else ""
            )
            for k, c in cols
        )
    )
    print()
    single, dist0 = res["single"], res["dist"]
    assert set(single) == set(dist0), (sorted(single), sorted(dist0))
    print(f"equality: {nproc}-process results (rank 0) vs 1 process")
    print(f"{'result':32s} {'max |diff|':>11s}")
    for key in sorted(single):
        d = float(np.max(np.abs(dist0[key] - single[key]))) if single[key].size else 0.0
        print(f"{key:32s} {d:11.2e}")
    worst = max_diff(single, dist0)
    ranks_equal = all(max_diff(ranks[0], r) == 0.0 for r in ranks[1:])
    print(
        f"max |diff| over all results = {worst:.2e} (float32 tolerance 1e-5: "
        f"{'met' if worst <= 1e-5 else 'NOT met'}); all {nproc} ranks return "
        f"identical arrays: {ranks_equal}"
    )
    print()
    print("summary (README table):")
    print(f"| explain, N={args.n}, 4 explainers | 1 proc | {nproc} proc | ratio |")
    print("|---|---|---|---|")
    print(
        f"| {backend}, 1 thread per process | {tot['single']:.1f} s | "
        f"{tot['dist']:.1f} s | {tot['single'] / tot['dist']:.2f}x |"
    )
    if not (worst <= 1e-5 and ranks_equal):
        sys.exit(1)


if __name__ == "__main__":
    main()
