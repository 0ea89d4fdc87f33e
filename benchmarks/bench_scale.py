"""Out-of-core explaining and training: memmaps of several GB, Datasets reading files.

Model: a random-weight LateFusionNet (eval mode) with two image modalities
(``eo`` and ``sar``, each (3, 64, 64) float32), 10 classes, 32 features per
embedding; labels are the model's own predictions with 20% label noise (so
that importances are clearly positive). Parts a and c use cheap conv encoders
(a stride-4 patch convolution, a stride-2 convolution, global average pool,
linear), so that reading the rows is a large part of the time; part b uses
the package's ``ConvEncoder(3, 32, channels=(8, 16))`` (3x3 convolutions at
full resolution; ``--ds-model patch`` for the cheap one), a model whose cost
per row is closer to that of reading it from disk.

a. Memory: the two modalities are written with ``np.lib.format.open_memmap``
   to ``.npy`` files in a temporary directory (``--gb`` in total) and opened
   with ``np.load(..., mmap_mode='r')``; PermutationModalityImportance and
   exact ModalityShapley explain them in a fresh subprocess per run. Printed:
   the data size, the peak RSS of the process during ``explain`` (VmHWM,
   reset before the call through ``/proc/self/clear_refs``) and the peak of
   its *anonymous* (private) memory, sampled every 2 ms. VmHWM counts the
   memmap's file pages that ``explain`` has read and that are still mapped:
   page cache the kernel can drop at any time, not memory the process owns.
b. Dataset vs in memory: the first ``--ds-rows`` rows are also written as one
   ``.npy`` file per sample and modality and read by a ``torch.utils.data``
   Dataset (``np.load`` per item). PermutationModalityImportance on
   ``DatasetSource(ds, num_workers=W)`` for W in ``--workers`` vs the same
   rows as in-memory arrays (same batch size, interleaved runs, medians), with
   the max difference of the importances; then one training epoch of
   ``MultimodalClassifier(...).fit(dataset, None)`` vs ``fit(X, y)``.
c. Scaling: PermutationModalityImportance on the first N/4, N/2 and N rows of
   the memmaps (a fresh subprocess per size): time per row.

    python benchmarks/bench_scale.py [--gb 3] [--ds-rows 2048] [--workers 0,2]
        [--n-repeats 5] [--batch-size 1024] [--threads 1] [--cold]
        [--device auto|cpu|cuda] [--quick] [--smoke]

--device (default auto: cuda when torch.cuda.is_available()): the model runs
there in every explain and fit (the explainers follow the model's device;
``MultimodalClassifier(device=...)``); the rows are still read from the
memmaps / files on the host and copied to the device batch by batch. On CUDA
the times are taken between torch.cuda.synchronize() calls and part a also
prints torch.cuda.max_memory_allocated during explain. The data are written
and labelled on the CPU whatever the device.

Targets: (a) peak RSS well under the data size; (b) Dataset explain <= 1.3x
in memory with worker processes; (c) time per row at N <= 1.3x that at N/4.

The files are read from the page cache (the machine has more RAM than
``--gb``) unless ``--cold`` asks the kernel to drop them from the cache
(``posix_fadvise(DONTNEED)``, these files only) before each subprocess.
Every process runs torch with ``--threads`` (default 1) intra-op threads: on a
machine shared with other CPU-bound processes, torch's OpenMP threads wait on
each other and the same explain can take 10x longer with 2 threads than with
1; the load average is printed. --quick: 0.75 GiB, 512 Dataset rows, 3
permutation repeats, 2 timed runs of part b, 1 of training. --smoke (for the
test suite: tests/test_benchmarks.py): the same parts, subprocesses, tables and
exactness assert on 10 MiB of memmaps (106 rows), 64 Dataset rows, batches of
32, 2 permutation repeats, 1 timed run of each; its timings and memory figures
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from _common import add_device_argument, device_name, resolve_device, sync
from torch import nn
from torch.utils.data import Dataset

from mmexplain import MultimodalClassifier
from mmexplain.data.sources import DatasetSource
from mmexplain.explainers import ModalityShapley, PermutationModalityImportance
from mmexplain.modules import ConvEncoder, LateFusionNet

N_CLASSES = 10
SHAPE = (3, 64, 64)
MODALITIES = ("eo", "sar")
ROW_BYTES = len(MODALITIES) * int(np.prod(SHAPE)) * 4

#: where the models run (set from --device in main/worker)
DEVICE = "cpu"


# ----------------------------------------------------------------------------
# model and data
# ----------------------------------------------------------------------------
class PatchConvEncoder(nn.Module):
    """Conv(k=4, stride 4) -> ReLU -> Conv(k=3, stride 2) -> ReLU -> mean -> Linear."""

    def __init__(self, in_channels: int, out_features: int = 32) -> None:
        super().__init__()
        self.out_features = out_features
        self.stages = nn.Sequential(
            nn.Conv2d(in_channels, 8, 4, stride=4),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(x).mean(dim=(2, 3)))


def make_model(seed: int = 0, kind: str = "patch") -> LateFusionNet:
    """'patch': PatchConvEncoder (cheap: reading the rows dominates); 'conv':
    the package's ConvEncoder(3, 32, channels=(8, 16)) (3x3 convolutions at
    full resolution: the model dominates)."""
    torch.manual_seed(seed)
    if kind == "patch":
        encoders = {m: PatchConvEncoder(SHAPE[0], 32) for m in MODALITIES}
    else:
        encoders = {m: ConvEncoder(SHAPE[0], 32, channels=(8, 16)) for m in MODALITIES}
    return LateFusionNet(encoders, n_classes=N_CLASSES).eval()


def predict_labels(model, X: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """The model's own predictions with 20% of the labels replaced at random."""
    n = len(next(iter(X.values())))
    dev = next(model.parameters()).device
    with torch.inference_mode():
        y = (
            torch.cat(
                [
                    model(
                        **{
                            m: torch.from_numpy(v[s : s + 512]).to(dev)
                            for m, v in X.items()
                        }
                    ).argmax(1)
                    for s in range(0, n, 512)
                ]
            )
            .cpu()
            .numpy()
        )
    rng = np.random.default_rng(seed)
    noisy = rng.random(n) < 0.2
    y[noisy] = rng.integers(0, N_CLASSES, int(noisy.sum()))
    return y.astype(np.int64)


def write_memmaps(root: Path, n: int, chunk: int = 2048) -> np.ndarray:
    """Write ``root/<modality>.npy`` (n, 3, 64, 64) float32 and ``root/y.npy``."""
    model = make_model(0)
    rng = np.random.default_rng(1)
    mm = {
        m: np.lib.format.open_memmap(
            root / f"{m}.npy", mode="w+", dtype=np.float32, shape=(n, *SHAPE)
        )
        for m in MODALITIES
    }
    y = np.empty(n, dtype=np.int64)
    with torch.inference_mode():
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            block = {}
            for m in MODALITIES:
                v = rng.standard_normal((e - s, *SHAPE), dtype=np.float32)
                # per-row channel offsets: without them the pooled embeddings of
                # i.i.d. noise barely vary and the model predicts one class
                v += 2 * rng.standard_normal((e - s, SHAPE[0], 1, 1), dtype=np.float32)
                mm[m][s:e] = v
                block[m] = torch.from_numpy(v)
            y[s:e] = model(**block).argmax(1).numpy()
    for v in mm.values():
        v.flush()
    del mm
    noisy = rng.random(n) < 0.2
    y[noisy] = rng.integers(0, N_CLASSES, int(noisy.sum()))
    np.save(root / "y.npy", y)
    return y


def open_memmaps(root: Path, n: int | None = None) -> dict[str, np.ndarray]:
    out = {}
    for m in MODALITIES:
        v = np.load(root / f"{m}.npy", mmap_mode="r")
        out[m] = v if n is None else v[:n]  # a slice of a memmap is a memmap
    return out


def drop_from_page_cache(root: Path) -> None:
    """Ask the kernel to drop these files' clean pages from the page cache."""
    for path in root.glob("*.npy"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class NpyFolder(Dataset):
    """One ``.npy`` file per sample and modality, read lazily: ``root/<m>/<i>.npy``."""

    def __init__(self, root: Path, y: np.ndarray | None = None) -> None:
        self.root, self.y = str(root), y
        self.n = len(os.listdir(os.path.join(self.root, MODALITIES[0])))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        X = {
            m: torch.from_numpy(np.load(os.path.join(self.root, m, f"{i:06d}.npy")))
            for m in MODALITIES
        }
        return X if self.y is None else (X, int(self.y[i]))


def write_folder(root: Path, X: dict[str, np.ndarray]) -> None:
    for m, v in X.items():
        (root / m).mkdir(parents=True, exist_ok=True)
        for i in range(len(v)):
            np.save(root / m / f"{i:06d}.npy", np.ascontiguousarray(v[i]))


# ----------------------------------------------------------------------------
# memory measurement (in the fresh subprocess)
# ----------------------------------------------------------------------------
def _status_kib() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0])
    return out


class AnonPeak:
    """Peak of RssAnon (private memory), sampled by a thread every ``period`` s."""

    def __init__(self, period: float = 0.002) -> None:
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kib()["RssAnon"])
            time.sleep(self.period)

    def __enter__(self) -> AnonPeak:
        self.peak = _status_kib()["RssAnon"]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib()["RssAnon"])


def make_explainer(method: str, n_repeats: int, batch_size: int):
    if method == "permutation":
        return PermutationModalityImportance(
            n_repeats=n_repeats, random_state=0, batch_size=batch_size
        )
    return ModalityShapley(value="probability", baseline="zeros", batch_size=batch_size)


def worker(root: Path, n: int, method: str, n_repeats: int, batch_size: int) -> None:
    """Fresh process: explain the first n memmap rows once, report JSON."""
    model = make_model(0).to(DEVICE)
    X = open_memmaps(root, n)
    y = np.load(root / "y.npy")[:n]
    # warm-up on the first batch (memmap views): thread pools, kernels
    make_explainer(method, 1, batch_size).explain(
        model, {m: v[:batch_size] for m, v in X.items()}, y[:batch_size]
    )
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS
        exact = True
    except OSError:
        exact = False
    before = _status_kib()
    cuda = DEVICE != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with AnonPeak() as anon:
        sync(DEVICE)
        t0 = time.perf_counter()
        expl = make_explainer(method, n_repeats, batch_size).explain(model, X, y)
        sync(DEVICE)
        seconds = time.perf_counter() - t0
    after = _status_kib()
    print(
        json.dumps(
            {
                "method": method,
                "n": n,
                "seconds": seconds,
                "data_bytes": n * ROW_BYTES,
                "rss_before_kib": before["VmRSS"],
                "peak_rss_kib": after["VmHWM"],
                "anon_before_kib": before["RssAnon"],
                "peak_anon_kib": anon.peak,
                "file_after_kib": after["RssFile"],
                "peak_exact": exact,
                "shares": [float(s) for s in expl.shares],
                "cuda_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            }
        )
    )


def run_worker(args, root: Path, n: int, method: str) -> dict:
    if args.cold:
        drop_from_page_cache(root)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_worker",
        str(root),
        "--_n",
        str(n),
        "--_method",
        method,
        "--n-repeats",
        str(args.n_repeats),
        "--batch-size",
        str(args.batch_size),
        "--device",
        DEVICE,
    ]
    cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {method} N={n} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# b. Dataset vs in memory
# ----------------------------------------------------------------------------
def timed(fn):
    sync(DEVICE)
    t0 = time.perf_counter()
    out = fn()
    sync(DEVICE)
    return time.perf_counter() - t0, out


def dataset_vs_memory(args, root: Path, tiles: Path) -> dict:
    n = args.ds_rows
    model = make_model(0, args.ds_model).to(DEVICE)
    mm = open_memmaps(root, n)
    X = {m: np.array(v) for m, v in mm.items()}  # the same rows, in memory
    y = predict_labels(model, X)
    t0 = time.perf_counter()
    write_folder(tiles, X)
    t_write = time.perf_counter() - t0
    ds = NpyFolder(tiles, y)

    def explainer():
        return PermutationModalityImportance(
            n_repeats=args.n_repeats, random_state=0, batch_size=args.ds_batch_size
        )

    # the regime: reading the items vs running the model, per row
    t_items, _ = timed(lambda: [ds[i] for i in range(n)])
    Xt = {m: torch.from_numpy(v).to(DEVICE) for m, v in X.items()}

    def encode():  # as the engine does: channels-last images
        cl = torch.channels_last
        with torch.inference_mode():
            for s in range(0, n, args.ds_batch_size):
                b = slice(s, s + args.ds_batch_size)
                model.encode(
                    **{m: v[b].contiguous(memory_format=cl) for m, v in Xt.items()}
                )

    encode()
    t_encode, _ = timed(encode)
    wmax = max(args.workers)
    variants = {"memory": lambda: (X, y)}
    for w in args.workers:
        variants[f"W={w}"] = lambda w=w: (DatasetSource(ds, num_workers=w), y)
    variants["y=None"] = lambda: (DatasetSource(ds, num_workers=wmax), None)
    # warm-up (thread pools; the tiles are in the page cache after writing)
    explainer().explain(model, {m: v[:256] for m, v in X.items()}, y[:256])
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    results = {}
    for _ in range(args.repeats):  # interleaved: every variant sees the same load
        for key, data in variants.items():
            Xv, yv = data()
            c0 = time.process_time()  # this process only (not the loader workers)
            t, results[key] = timed(
                lambda Xv=Xv, yv=yv: explainer().explain(model, Xv, yv)
            )
            cpu[key].append(time.process_time() - c0)
            times[key].append(t)
    t_targets, _ = timed(lambda: DatasetSource(ds).targets())
    want = np.asarray(results["memory"].importances)
    diffs = {
        k: float(np.max(np.abs(np.asarray(e.importances) - want)))
        for k, e in results.items()
    }

    # one training epoch: fit(dataset, None) vs fit(X, y)
    def clf(**kw):
        return MultimodalClassifier(
            module=model,
            max_epochs=1,
            batch_size=args.train_batch_size,
            random_state=0,
            device=DEVICE,
            **kw,
        )

    clf().fit({m: v[:256] for m, v in X.items()}, y[:256])  # warm-up
    fit_times: dict[str, list[float]] = {"memory": []}
    fit_times.update({f"W={w}": [] for w in args.workers})
    fitted = {}
    for _ in range(args.fit_repeats):
        t, fitted["memory"] = timed(lambda: clf().fit(X, y))
        fit_times["memory"].append(t)
        for w in args.workers:
            kw = {"iterator_train__num_workers": w} if w else {}
            t, fitted[f"W={w}"] = timed(
                lambda kw=kw: clf(**kw).fit(NpyFolder(tiles, y), None)
            )
            fit_times[f"W={w}"].append(t)
    ref = fitted["memory"].module_.state_dict()
    wdiff = {
        k: max(float((v.module_.state_dict()[p] - ref[p]).abs().max()) for p in ref)
        for k, v in fitted.items()
    }
    return {
        "n": n,
        "write_s": t_write,
        "items_s": t_items,
        "encode_s": t_encode,
        "times": {k: statistics.median(v) for k, v in times.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
        "diffs": diffs,
        "targets_s": t_targets,
        "fit": {k: statistics.median(v) for k, v in fit_times.items()},
        "fit_wdiff": wdiff,
    }


# ----------------------------------------------------------------------------
def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=3.0, help="memmap data size (GiB)")
    ap.add_argument("--ds-rows", type=int, default=2048, help="rows of part b")
    ap.add_argument("--workers", type=str, default="0,2", help="num_workers of part b")
    ap.add_argument("--n-repeats", type=int, default=5, help="permutation repeats")
    ap.add_argument("--batch-size", type=int, default=1024, help="parts a and c")
    ap.add_argument("--ds-batch-size", type=int, default=256, help="part b explain")
    ap.add_argument("--train-batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of part b")
    ap.add_argument("--fit-repeats", type=int, default=2)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads in every process (0: torch's default)",
    )
    ap.add_argument(
        "--ds-model", choices=("conv", "patch"), default="conv", help="part b model"
    )
    ap.add_argument("--cold", action="store_true", help="drop the memmaps from cache")
    ap.add_argument("--dir", type=str, default=None, help="temp dir parent")
    ap.add_argument("--quick", action="store_true", help="~1-minute version")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: 10 MiB of memmaps",
    )
    ap.add_argument("--_worker", type=str, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_n", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_method", type=str, default=None, help=argparse.SUPPRESS)
    add_device_argument(ap)
    args = ap.parse_args()
    global DEVICE
    DEVICE = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._worker is not None:
        worker(
            Path(args._worker), args._n, args._method, args.n_repeats, args.batch_size
        )
        return
    if args.quick:
        args.gb = min(args.gb, 0.75)
        args.ds_rows = min(args.ds_rows, 512)
        args.repeats, args.fit_repeats = 2, 1
        args.n_repeats = min(args.n_repeats, 3)
    if args.smoke:
        args.gb, args.ds_rows, args.n_repeats = 10 / 1024, 64, 2
        args.batch_size = args.ds_batch_size = args.train_batch_size = 32
        args.repeats, args.fit_repeats = 1, 1
    args.workers = [int(w) for w in args.workers.split(",")]
    n = int(args.gb * 2**30 // ROW_BYTES)
    args.ds_rows = min(args.ds_rows, n)
    sizes = [n // 4, n // 2, n]
    load_start = load_average()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mmexplain_bench_scale_", dir=args.dir))
    try:
        root = tmp / "memmaps"
        root.mkdir()
        t_write, _ = timed(lambda: write_memmaps(root, n))
        scale = [run_worker(args, root, s, "permutation") for s in sizes]
        shap_run = run_worker(args, root, n, "shapley")
        part_b = dataset_vs_memory(args, root, tmp / "tiles")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # -- report --------------------------------------------------------------
    ncpu = os.cpu_count() or 1
    load_end = load_average()
    print(
        f"device: {device_name(DEVICE)} ({platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {ncpu} cores); load "
        f"average (1/5/15 min) at start {load_start}, at end {load_end}; total "
        f"{time.perf_counter() - t_start:.0f} s"
    )
    if max(float(load_start.split("/")[0]), float(load_end.split("/")[0])) > ncpu:
        print(
            "WARNING: other processes were using the CPU (load > cores): timings are "
            "inflated and noisy"
        )
    print(
        f"model: LateFusionNet, 2 image modalities {MODALITIES} of {SHAPE} float32, "
        f"random weights (a, c: patch-conv encoders; b: '{args.ds_model}'); "
        f"n_repeats={args.n_repeats}; files "
        f"{'dropped from' if args.cold else 'read through'} the page cache"
    )
    print()
    gib = 2**30
    print(
        f"a. memory: memmaps of {n} rows = {n * ROW_BYTES / gib:.2f} GiB on disk "
        f"(written in {t_write:.0f} s), batch_size={args.batch_size}, one fresh "
        "process per run"
    )
    head = (
        f"{'method':12s} {'N':>7s} {'data MiB':>9s} {'seconds':>8s} {'us/row':>7s} "
        f"{'peak RSS MiB':>13s} {'peak/data':>10s} {'peak anon MiB':>14s} "
        f"{'anon added MiB':>15s}"
        + (f" {'peak CUDA MiB':>14s}" if DEVICE != "cpu" else "")
    )
    print(head)
    for r in [*scale, shap_run]:
        data = r["data_bytes"] / 2**20
        peak = r["peak_rss_kib"] / 1024
        anon = r["peak_anon_kib"] / 1024
        added = (r["peak_anon_kib"] - r["anon_before_kib"]) / 1024
        print(
            f"{r['method']:12s} {r['n']:7d} {data:9.0f} {r['seconds']:8.2f} "
            f"{1e6 * r['seconds'] / r['n']:7.1f} {peak:13.0f} {peak / data:10.2f} "
            f"{anon:14.0f} {added:15.0f}"
            + (
                f" {r['cuda_peak_bytes'] / 2**20:14.0f}"
                if r.get("cuda_peak_bytes") is not None
                else ""
            )
        )
    big = [scale[-1], shap_run]
    worst_anon = max(r["peak_anon_kib"] / 1024 / (r["data_bytes"] / 2**20) for r in big)
    worst_rss = max(r["peak_rss_kib"] / 1024 / (r["data_bytes"] / 2**20) for r in big)
    print(
        "peak RSS = VmHWM of the process during explain (includes torch, the "
        "model and the memmap file pages still mapped); peak anon = its private "
        "memory (sampled every 2 ms)"
    )
    print(
        f"target peak well under the data size at N={n}: private memory "
        f"{verdict(worst_anon < 0.5)} ({worst_anon:.2f}x the data); VmHWM "
        f"{verdict(worst_rss < 0.5)} ({worst_rss:.2f}x)"
    )
    print()
    b = part_b
    mem = b["times"]["memory"]
    print(
        f"b. Dataset of one .npy file per sample and modality ({b['n']} rows, "
        f"{2 * b['n']} files, written in {b['write_s']:.0f} s) vs the same rows in "
        f"memory: PermutationModalityImportance(n_repeats={args.n_repeats}, "
        f"batch_size={args.ds_batch_size}), '{args.ds_model}' model, median of "
        f"{args.repeats}, interleaved"
    )
    print(
        f"regime: reading one item (2 files) {1e6 * b['items_s'] / b['n']:.0f} us, "
        f"encoding one row {1e6 * b['encode_s'] / b['n']:.0f} us (in this process)"
    )
    print(
        f"{'input':40s} {'seconds':>8s} {'ratio':>7s} {'main CPU s':>11s} "
        f"{'CPU ratio':>10s} {'max |diff| importances':>23s}"
    )
    cpu_mem = b["cpu"]["memory"]
    labels = {"memory": "in memory (NumPy arrays)"}
    labels.update(
        {f"W={w}": f"DatasetSource(ds, num_workers={w})" for w in args.workers}
    )
    wmax = max(args.workers)
    labels["y=None"] = f"same, y=None (targets from items), W={wmax}"
    for key, label in labels.items():
        t, c = b["times"][key], b["cpu"][key]
        print(
            f"{label:40s} {t:8.2f} {t / mem:6.2f}x {c:11.2f} {c / cpu_mem:9.2f}x "
            f"{b['diffs'].get(key, 0.0):23.1e}"
        )
    print(
        "main CPU = CPU time of the explaining process (user + system, all its "
        "threads; not the loader workers): with workers, the wall time can only "
        "approach it when the machine has a free core per worker"
    )
    print(
        f"(DatasetSource.targets() alone, reading every item once: "
        f"{b['targets_s']:.2f} s)"
    )
    best = min(b["times"][f"W={w}"] for w in args.workers if w > 0) if wmax else None
    if best is not None:
        print(
            f"target Dataset <= 1.3x in memory with worker processes: "
            f"{verdict(best / mem <= 1.3)} ({best / mem:.2f}x)"
        )
    fm = b["fit"]["memory"]
    print(
        f"one training epoch (MultimodalClassifier, batch_size={args.train_batch_size}, "
        f"median of {args.fit_repeats}; fit(dataset, None) includes reading the targets)"
    )
    print(f"{'input':40s} {'seconds':>8s} {'ratio':>7s} {'max |diff| weights':>23s}")
    print(f"{'fit(X, y), in memory':40s} {fm:8.2f} {1.0:6.2f}x {0.0:23.1e}")
    for w in args.workers:
        t = b["fit"][f"W={w}"]
        print(
            f"{f'fit(dataset, None), num_workers={w}':40s} {t:8.2f} {t / fm:6.2f}x "
            f"{b['fit_wdiff'][f'W={w}']:23.1e}"
        )
    print()
    per_row = [r["seconds"] / r["n"] for r in scale]
    print(
        f"c. scaling: PermutationModalityImportance on N = {sizes}: us/row "
        + ", ".join(f"{1e6 * p:.1f}" for p in per_row)
    )
    lin = per_row[-1] / per_row[0]
    print(
        f"target time/row at N={sizes[-1]} <= 1.3x at N={sizes[0]}: "
        f"{verdict(lin <= 1.3)} ({lin:.2f}x)"
    )
    print()
    print("summary (README table):")
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| peak private memory / data, {n * ROW_BYTES / gib:.1f} GiB memmap, "
        f"permutation / Shapley | "
        + " / ".join(
            f"{r['peak_anon_kib'] / 1024 / (r['data_bytes'] / 2**20):.2f}x" for r in big
        )
        + " |"
    )
    print(
        "| peak RSS (VmHWM, incl. mapped file pages) / data | "
        + " / ".join(
            f"{r['peak_rss_kib'] / 1024 / (r['data_bytes'] / 2**20):.2f}x" for r in big
        )
        + " |"
    )
    for w in args.workers:
        print(
            f"| Dataset explain / in memory, num_workers={w}: wall (main-process CPU) | "
            f"{b['times'][f'W={w}'] / mem:.2f}x "
            f"({b['cpu'][f'W={w}'] / b['cpu']['memory']:.2f}x) |"
        )
    for w in args.workers:
        print(
            f"| Dataset training epoch / in memory, num_workers={w} | "
            f"{b['fit'][f'W={w}'] / fm:.2f}x |"
        )
    print(f"| time/row at N vs N/4 | {lin:.2f}x |")
    assert max(b["diffs"].values()) < 1e-5, b["diffs"]


if __name__ == "__main__":
    main()
