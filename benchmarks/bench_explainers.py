"""Speed, exactness and memory of the explainers against naive/reference implementations.

Model: a random-weight LateFusionNet (eval mode) with 6 modalities: 4 MLPEncoder
vectors (24, 48, 32, 64 features) and 2 ConvEncoder images (3x16x16, 1x16x16),
10 classes; inputs are float32 NumPy arrays, labels are the model's own
predictions with 20% label noise (so that importances are clearly positive).

1. PermutationModalityImportance(n_repeats=R, random_state=0) (embedding path)
   vs (a) a naive Algorithm 1 with full forward passes and the *same*
   permutation indices (max |difference| of the importances is printed and
   asserted) and (b) captum's FeaturePermutation (one group per modality,
   the whole set as one batch, attribute() called R times).
2. Ours vs a lower bound timed directly with torch: one encoder pass over the
   N rows + (1 + M*R) fusion-head passes (gather the permuted embedding rows,
   head, cross-entropy sum) in the same batches.
3. Exact ModalityShapley vs shap.ExactExplainer, driven per sample on a
   subset and extrapolated per sample, values compared on that subset, in
   two wirings of shap:

   (a) given our encode-once split: the subset is encoded once and shap's
       value function runs only the fusion head with the absent modalities'
       embeddings zeroed, the same game as ours with baseline='zeros';
   (b) as a user would wire it: the value function runs the *full model* on
       each coalition with the absent modalities zeroed at the input, the
       same game as ours with baseline='zero_input' (which runs 2^M full
       forward passes too).

   The coalition work alone is timed directly on both sides: ours is
   ModalityShapley on the cached embeddings (the model's fusion head behind
   identity encoders, fed the embeddings as inputs), shap is its per-sample
   loop without its one encoder pass.
4. Peak memory added by explain() at large N (fresh subprocess per size,
   peak RSS reset before the call) vs the bytes of the inputs, and the time
   per row at three sizes (linear growth), for PermutationModalityImportance;
   then the same memory figure for exact ModalityShapley at --shapley-n rows.

    python benchmarks/bench_explainers.py [--n 2000] [--repeats 3] [--threads T] [--quick]
        [--device auto|cpu|cuda] [--smoke]

--device (default auto: cuda when torch.cuda.is_available()): the model, and
so the explainers (they follow the model's device), run there; the naive
reference, the lower bound and captum get their inputs on that device, and
shap's value functions run the model there (shap itself is NumPy on the
host). On CUDA every time is taken between torch.cuda.synchronize() calls,
and part 4 also prints torch.cuda.max_memory_allocated beside the RSS.

Targets: (1) ours >= 20x faster than both; (2) ours <= 1.5x the lower bound;
(3) ours >= 20x faster than shap per sample; (4) peak added < input bytes and
time/N at the largest size <= 1.3x that at the smallest.

Fast methods (ours, the lower bound) are timed --repeats times, spread over
the run of the slow references (which run once), and their medians are used;
part 4 keeps the best of 2 calls per size. --quick: 2 repeats, captum timed on
2 attribute() calls and extrapolated to n_repeats, 10 shap samples, part 4 at
N = 25k/50k/100k, one call each, with batch_size=1024 (at such small N the
fixed per-batch activations of 4096-row batches are as large as the inputs),
and the Shapley memory at the largest of these sizes unless --shapley-n is
given (default 200k). --smoke (for the test suite: tests/test_benchmarks.py):
the same parts, tables and exactness asserts on N = 300 rows, 2 permutation
repeats, 1 timing, captum timed on 1 attribute() call, 3 shap samples, part 4
at N = 300/1200 with batch_size=256 (Shapley memory at 1200), and shap's numba
kernels left uncompiled (NUMBA_DISABLE_JIT=1: compiling them takes longer than
the rest of the smoke run); its timings and memory figures mean nothing.
Part 4 sizes should all exceed the CPU cache (the 6 x 32 float embedding
cache is 19 MB at 25k rows): below it, time per row is lower. The load average
is printed: on a machine shared with other CPU-bound processes, torch's OpenMP
threads wait on each other and small ops get far slower.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import add_device_argument, machine_line, resolve_device, sync
from torch import nn

from mmexplain.explainers import ModalityShapley, PermutationModalityImportance
from mmexplain.modules import ConvEncoder, LateFusionNet, MLPEncoder

#: where the models and references run (set from --device in main/worker)
DEVICE = "cpu"

N_CLASSES = 10
SHAPES: dict[str, tuple[int, ...]] = {
    "tab_a": (24,),
    "tab_b": (48,),
    "tab_c": (32,),
    "tab_d": (64,),
    "rgb": (3, 16, 16),
    "gray": (1, 16, 16),
}


# ----------------------------------------------------------------------------
# model and data
# ----------------------------------------------------------------------------
def make_model(seed: int = 0) -> LateFusionNet:
    torch.manual_seed(seed)
    encoders = {
        m: MLPEncoder(s[0], 32) if len(s) == 1 else ConvEncoder(s[0], 32)
        for m, s in SHAPES.items()
    }
    return LateFusionNet(encoders, n_classes=N_CLASSES).eval().to(DEVICE)


def dev(a: np.ndarray) -> torch.Tensor:
    """``a`` as a tensor on DEVICE (no copy on CPU)."""
    return torch.from_numpy(a).to(DEVICE)


def clock() -> float:
    """perf_counter after the queued CUDA kernels finished."""
    sync(DEVICE)
    return time.perf_counter()


def make_X(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # generated directly in float32: no float64 temporaries
    return {
        m: rng.standard_normal((n, *s), dtype=np.float32) for m, s in SHAPES.items()
    }


def input_bytes(X: dict[str, np.ndarray]) -> int:
    return sum(v.nbytes for v in X.values())


def forward_batched(
    model: LateFusionNet, X: dict[str, torch.Tensor], batch_size: int
) -> torch.Tensor:
    n = len(next(iter(X.values())))
    with torch.inference_mode():
        return torch.cat(
            [
                model(**{m: v[s : s + batch_size] for m, v in X.items()})
                for s in range(0, n, batch_size)
            ]
        )


def make_y(model: LateFusionNet, X: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """The model's own predictions with 20% of the labels replaced at random."""
    Xt = {m: dev(v) for m, v in X.items()}
    y = forward_batched(model, Xt, 4096).argmax(dim=1).cpu().numpy().astype(np.int64)
    rng = np.random.default_rng(seed + 1)
    noisy = rng.random(len(y)) < 0.2
    y[noisy] = rng.integers(0, N_CLASSES, int(noisy.sum()))
    return y


def library_permutations(n: int, n_mod: int, n_repeats: int, seed: int) -> list:
    """The indices PermutationModalityImportance draws (no max_samples).

    ``n_repeats`` draws of ``rng.permutation(n)``, repeat r's shared by every
    modality (the documented ``random_state`` convention), as ``perms[i][r]``.
    """
    rng = np.random.RandomState(seed)
    shared = [rng.permutation(n) for _ in range(n_repeats)]
    return [shared for _ in range(n_mod)]


# ----------------------------------------------------------------------------
# 1. permutation importance: ours, naive full forward, captum
# ----------------------------------------------------------------------------
def ours_permutation(model, X, y, n_repeats, batch_size):
    expl = PermutationModalityImportance(
        n_repeats=n_repeats, random_state=0, batch_size=batch_size
    )
    t0 = clock()
    out = expl.explain(model, X, y)
    return clock() - t0, out


def mean_ce(model, Xt, yt, batch_size) -> float:
    """Mean cross-entropy of full forward passes (float32 rows, float64 sum)."""
    n = len(yt)
    total = torch.zeros((), dtype=torch.float64, device=yt.device)
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            logits = model(**{m: v[s : s + batch_size] for m, v in Xt.items()})
            per = F.cross_entropy(logits, yt[s : s + batch_size], reduction="none")
            total += per.sum(dtype=torch.float64)
    return float(total) / n


def naive_permutation(model, X, y, perms, batch_size):
    """Algorithm 1 with full forward passes: permute x_i across the whole set."""
    t0 = clock()
    Xt = {m: dev(v) for m, v in X.items()}
    yt = dev(y)
    base = mean_ce(model, Xt, yt, batch_size)
    imp = np.zeros((len(Xt), len(perms[0])))
    for i, m in enumerate(Xt):
        for r, p in enumerate(perms[i]):
            Xp = dict(Xt)
            Xp[m] = Xt[m][dev(p)]
            imp[i, r] = mean_ce(model, Xp, yt, batch_size) - base
    return clock() - t0, imp


def captum_permutation(model, X, y, n_repeats, n_calls):
    """captum FeaturePermutation, one feature group per modality.

    forward_func returns the *mean* cross-entropy of the batch (a scalar), so
    captum's attribution of group i is L(original) - L(x_i permuted), i.e.
    minus the loss-based permutation importance of Algorithm 1, with captum's
    own torch.randperm permutation *within the batch it is given* (here the
    whole set). One attribute() call = 1 + M full forward passes over the N
    rows, so R calls do the same work as the naive reference (plus R-1 extra
    unpermuted passes). Only ``n_calls`` calls are run; the time returned is
    extrapolated to R calls (n_calls < R only with --quick).
    """
    from captum.attr import FeaturePermutation

    modalities = list(X)

    def forward_func(*args):
        *xs, yy = args
        logits = model(**dict(zip(modalities, xs)))
        return F.cross_entropy(logits, yy)

    t0 = clock()
    inputs = tuple(dev(X[m]) for m in modalities)
    masks = tuple(
        torch.full((1,) * x.dim(), i, dtype=torch.long, device=x.device)
        for i, x in enumerate(inputs)
    )
    fp = FeaturePermutation(forward_func)
    imp = np.zeros((len(modalities), n_calls))
    for r in range(n_calls):
        attr = fp.attribute(
            inputs,
            additional_forward_args=(dev(y),),
            feature_mask=masks,
            perturbations_per_eval=1,
        )
        imp[:, r] = [-float(a.reshape(-1)[0]) for a in attr]
    return (clock() - t0) * n_repeats / n_calls, imp


# ----------------------------------------------------------------------------
# 2. lower bound with plain torch
# ----------------------------------------------------------------------------
def lower_bound(model, X, y, perms_t, batch_size):
    """One encoder pass + (1 + M*R) head passes (gather, head, CE) over N rows."""
    n = len(y)
    modalities = list(X)
    t0 = clock()
    yt = dev(y)
    with torch.inference_mode():
        Z = {m: [] for m in modalities}
        for s in range(0, n, batch_size):
            Zb = model.encode(**{m: dev(X[m][s : s + batch_size]) for m in modalities})
            for m in modalities:
                Z[m].append(Zb[m])
        Z = {m: torch.cat(v) for m, v in Z.items()}
        jobs = [(None, None)] + [
            (i, p) for i in range(len(modalities)) for p in perms_t[i]
        ]
        losses = []
        for i, p in jobs:
            total = torch.zeros((), dtype=torch.float64, device=yt.device)
            for s in range(0, n, batch_size):
                e = min(s + batch_size, n)
                parts = [
                    Z[m][s:e] if j != i else Z[m].index_select(0, p[s:e])
                    for j, m in enumerate(modalities)
                ]
                logits = model.head(torch.cat(parts, dim=1))
                total += F.cross_entropy(logits, yt[s:e], reduction="sum").double()
            losses.append(total)
        losses = (torch.stack(losses) / n).tolist()
    return clock() - t0, losses


# ----------------------------------------------------------------------------
# 3. exact Shapley: ours vs shap.ExactExplainer
# ----------------------------------------------------------------------------
def ours_shapley(model, X, y, batch_size, baseline="zeros"):
    expl = ModalityShapley(
        value="probability", baseline=baseline, batch_size=batch_size
    )
    t0 = clock()
    out = expl.explain(model, X, y)
    return clock() - t0, out


def head_model(model: LateFusionNet) -> LateFusionNet:
    """``model``'s fusion head behind identity encoders (it shares the head module).

    Explaining it on the embeddings ``Z`` (as its inputs) with baseline
    'zeros' plays the same game as explaining ``model`` on ``X``; its own
    "encoder pass" is a copy, so its time is our coalition work alone.
    """
    return (
        LateFusionNet(
            {m: nn.Identity() for m in model.modalities},
            n_classes=N_CLASSES,
            embedding_dims=model.embedding_dims,
            head=model.head,
        )
        .eval()
        .to(DEVICE)
    )


def embeddings(model, X, batch_size) -> dict[str, np.ndarray]:
    n = len(next(iter(X.values())))
    parts = {m: [] for m in X}
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            Z = model.encode(**{m: dev(v[s : s + batch_size]) for m, v in X.items()})
            for m in X:
                parts[m].append(Z[m].cpu().numpy())
    return {m: np.concatenate(v) for m, v in parts.items()}


def shap_shapley(model, X, y, n_sub):
    """shap.ExactExplainer per sample: players = modalities.

    The game of sample n is encoded as a 0/1 vector: the explained row is all
    ones, the single background row all zeros, so shap's Independent masker
    hands the model function the coalition masks themselves. The model
    function zeroes the absent modalities' embeddings (baseline 'zeros') and
    returns the true-class probability, the same v(S) as ours. To favour shap,
    the subset is encoded once in one batch (inside the timing) and only the
    fusion head runs per coalition. shap's one-time numba compilation is
    done before the timing.
    """
    import shap

    modalities = list(X)
    M = len(modalities)
    # warm-up outside the timing: shap JIT-compiles its numba kernels on first use
    shap.ExactExplainer(lambda m: m.sum(axis=1), np.zeros((1, M)))(
        np.ones((1, M)), silent=True
    )
    t0 = clock()
    with torch.inference_mode():
        Z = model.encode(**{m: dev(X[m][:n_sub]) for m in modalities})
    Zcat = torch.cat([Z[m] for m in modalities], dim=1)  # (n_sub, sum D)
    t_encode = clock() - t0
    widths = [Z[m].shape[1] for m in modalities]
    state = {"n": 0}

    def value(masks: np.ndarray) -> np.ndarray:
        n = state["n"]
        keep = dev(np.repeat(masks, widths, axis=1).astype(np.float32))
        with torch.inference_mode():
            logits = model.head(Zcat[n : n + 1] * keep)
            p = torch.softmax(logits, dim=1)[:, int(y[n])]
        return p.cpu().numpy().astype(np.float64)

    explainer = shap.ExactExplainer(value, np.zeros((1, M)))
    ones = np.ones((1, M))
    values = np.zeros((n_sub, M))
    base = np.zeros(n_sub)
    for n in range(n_sub):
        state["n"] = n
        ex = explainer(ones, silent=True)
        values[n] = ex.values[0]
        base[n] = float(np.asarray(ex.base_values).reshape(-1)[0])
    return clock() - t0, t_encode, values, base


def shap_user_shapley(model, X, y, n_sub):
    """shap.ExactExplainer wired as a user would: the full model per coalition.

    Same 0/1 coalition encoding as :func:`shap_shapley`; the value function
    runs the whole model (encoders and head) on the coalitions of sample n,
    with the absent modalities zeroed *at the input*, and returns the
    true-class probability: ours with baseline='zero_input' plays this game.
    """
    import shap

    modalities = list(X)
    M = len(modalities)
    t0 = clock()
    state = {"n": 0}

    def value(masks: np.ndarray) -> np.ndarray:
        n = state["n"]
        keep = dev(masks.astype(np.float32))
        inputs = {}
        for j, m in enumerate(modalities):
            row = dev(X[m][n : n + 1])
            shape = (len(masks),) + (1,) * (row.dim() - 1)
            inputs[m] = row * keep[:, j].reshape(shape)
        with torch.inference_mode():
            p = torch.softmax(model(**inputs), dim=1)[:, int(y[n])]
        return p.cpu().numpy().astype(np.float64)

    explainer = shap.ExactExplainer(value, np.zeros((1, M)))
    ones = np.ones((1, M))
    values = np.zeros((n_sub, M))
    for n in range(n_sub):
        state["n"] = n
        values[n] = explainer(ones, silent=True).values[0]
    return clock() - t0, values


# ----------------------------------------------------------------------------
# 4. memory and scaling (one fresh subprocess per size)
# ----------------------------------------------------------------------------
def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class AnonPeak:
    """Peak of RssAnon (the process's private memory), sampled every ``period`` s.

    VmHWM also counts file-backed pages (torch's shared libraries, paged in
    when a kernel is first used), so it can jump by hundreds of MB for reasons
    that have nothing to do with the data; private memory is what explain()
    allocates.
    """

    def __init__(self, period: float = 0.002) -> None:
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _proc_kib("RssAnon") or 0)
            time.sleep(self.period)

    def __enter__(self) -> AnonPeak:
        self.peak = _proc_kib("RssAnon") or 0
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _proc_kib("RssAnon") or 0)


def worker(
    n: int, n_repeats: int, batch_size: int, timings: int, method: str = "permutation"
) -> None:
    """Run in a fresh process: build data, explain, report JSON.

    The peak RSS added is measured around the first explain() call; the time
    is the best of ``timings`` calls. ``method``: 'permutation'
    (PermutationModalityImportance) or 'shapley' (exact ModalityShapley,
    value='probability', baseline='zeros').
    """
    model = make_model(0)
    X = make_X(n, seed=1)
    y = np.random.default_rng(2).integers(0, N_CLASSES, n).astype(np.int64)

    def make(r):
        if method == "shapley":
            return ModalityShapley(
                value="probability", baseline="zeros", batch_size=batch_size
            )
        return PermutationModalityImportance(
            n_repeats=r, random_state=0, batch_size=batch_size
        )

    # warm-up on a small slice (views, no copies): thread pools, kernels
    make(1).explain(model, {m: v[:batch_size] for m, v in X.items()}, y[:batch_size])
    # Peak RSS of this process = VmHWM, reset to the current RSS by writing 5
    # to /proc/self/clear_refs. Not ru_maxrss: after fork+exec it is floored at
    # the parent's RSS at fork time, so it would count the parent's memory.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        exact = _proc_kib("VmRSS") is not None and _proc_kib("VmHWM") is not None
    except OSError:
        exact = False

    def peak_kib() -> int:
        if exact:
            return _proc_kib("VmHWM")
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    before = _proc_kib("VmRSS") if exact else peak_kib()
    anon_before = _proc_kib("RssAnon") or 0
    file_before = _proc_kib("RssFile") or 0
    explainer = make(n_repeats)
    cuda = DEVICE != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with AnonPeak() as anon:
        t0 = clock()
        explainer.explain(model, X, y)
        times = [clock() - t0]
    peak = peak_kib()
    file_after = _proc_kib("RssFile") or 0
    cuda_peak = torch.cuda.max_memory_allocated() if cuda else None
    for _ in range(timings - 1):
        t0 = clock()
        explainer.explain(model, X, y)
        times.append(clock() - t0)
    print(
        json.dumps(
            {
                "method": method,
                "n": n,
                "seconds": min(times),
                "peak_added_bytes": (peak - before) * 1024,
                "anon_added_bytes": (anon.peak - anon_before) * 1024,
                "file_added_bytes": (file_after - file_before) * 1024,
                "input_bytes": input_bytes(X),
                "peak_exact": exact,
                "cuda_peak_bytes": cuda_peak,
            }
        )
    )


def run_worker(
    n: int,
    n_repeats: int,
    batch_size: int,
    timings: int,
    method: str = "permutation",
    threads: int | None = None,
) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_worker",
        str(n),
        "--n-repeats",
        str(n_repeats),
        "--scale-batch-size",
        str(batch_size),
        "--repeats",
        str(timings),
        "--_method",
        method,
        "--device",
        DEVICE,
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {method} N={n} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="rows for parts 1-3")
    ap.add_argument("--n-repeats", type=int, default=10, help="permutation repeats")
    ap.add_argument(
        "--repeats", type=int, default=3, help="timings of the fast methods (median)"
    )
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--shap-samples", type=int, default=50)
    ap.add_argument(
        "--scale-sizes", type=str, default="50000,100000,200000", help="part 4 sizes"
    )
    ap.add_argument("--scale-batch-size", type=int, default=4096)
    ap.add_argument(
        "--shapley-n",
        type=int,
        default=None,
        help="rows of the Shapley memory run (default 200000; --quick: the "
        "largest part 4 size)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: leave torch's default)",
    )
    ap.add_argument("--quick", action="store_true", help="~1-minute version")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run for the test suite: N=300, tiny part 4",
    )
    ap.add_argument("--_worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--_method", type=str, default="permutation", help=argparse.SUPPRESS
    )
    add_device_argument(ap)
    args = ap.parse_args()
    global DEVICE
    DEVICE = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args._worker is not None:
        worker(
            args._worker,
            args.n_repeats,
            args.scale_batch_size,
            args.repeats,
            args._method,
        )
        return
    captum_calls = args.n_repeats
    if args.quick:
        args.repeats = 2
        args.shap_samples = min(args.shap_samples, 10)
        args.scale_sizes = "25000,50000,100000"
        args.scale_batch_size = 1024
        captum_calls = min(2, args.n_repeats)
    if args.smoke:
        args.n, args.n_repeats, args.repeats, args.shap_samples = 300, 2, 1, 3
        args.batch_size = args.scale_batch_size = 256
        args.scale_sizes = "300,1200"
        captum_calls = 1
        os.environ.setdefault("NUMBA_DISABLE_JIT", "1")  # before shap imports numba
    sizes = [int(s) for s in args.scale_sizes.split(",")]
    if args.shapley_n is None:
        args.shapley_n = sizes[-1] if args.quick or args.smoke else 200_000
    R, bs, N = args.n_repeats, args.batch_size, args.n
    M = len(SHAPES)
    load_start = load_average()
    t_start = time.perf_counter()

    model = make_model(0)
    X = make_X(N, seed=1)
    y = make_y(model, X)
    n_params = sum(p.numel() for p in model.parameters())

    # warm-up (allocator, thread pools, oneDNN kernels)
    ours_permutation(model, X, y, 1, bs)
    ModalityShapley(value="probability").explain(model, X, y)

    # -- 1 + 2: permutation importance ---------------------------------------
    perms = library_permutations(N, M, R, seed=0)
    perms_t = [[dev(p) for p in ps] for ps in perms]  # on the device
    # The fast timings are spread over the slow references' run (one pair
    # before naive, one between naive and captum, the rest after captum) and
    # their medians are used, so that all methods see the same machine load.
    t_ours, t_lb = [], []

    def fast_pair():  # ours and the lower bound back to back
        t, e = ours_permutation(model, X, y, R, bs)
        t_ours.append(t)
        t, losses = lower_bound(model, X, y, perms_t, bs)
        t_lb.append(t)
        return e, losses

    expl, lb_losses = fast_pair()
    t_naive, imp_naive = naive_permutation(model, X, y, perms, bs)
    if args.repeats >= 3:
        fast_pair()
    torch.manual_seed(0)
    t_captum, imp_captum = captum_permutation(model, X, y, R, captum_calls)
    while len(t_ours) < args.repeats:
        fast_pair()
    t_ours_med, t_lb_med = statistics.median(t_ours), statistics.median(t_lb)
    lb_ratio = statistics.median(o / lb for o, lb in zip(t_ours, t_lb))

    ours_imp = np.asarray(expl.importances)
    diff_naive = float(np.max(np.abs(ours_imp - imp_naive)))
    lb_imp = (np.array(lb_losses[1:]) - lb_losses[0]).reshape(M, R)
    diff_lb = float(np.max(np.abs(ours_imp - lb_imp)))
    diff_captum_mean = float(
        np.max(np.abs(ours_imp.mean(axis=1) - imp_captum.mean(axis=1)))
    )

    # -- 3: Shapley ----------------------------------------------------------
    # ours, ours on the cached embeddings (coalitions only), ours with zeroed
    # inputs: half of the timings before shap, half after
    hm = head_model(model)
    Z = embeddings(model, X, bs)
    t_sh = {"zeros": [], "coalitions": [], "zero_input": []}
    sh = {}

    def ours_three():
        t, sh["zeros"] = ours_shapley(model, X, y, bs)
        t_sh["zeros"].append(t)
        t, sh["coalitions"] = ours_shapley(hm, Z, y, bs)
        t_sh["coalitions"].append(t)
        t, sh["zero_input"] = ours_shapley(model, X, y, bs, baseline="zero_input")
        t_sh["zero_input"].append(t)

    ours_shapley(hm, {m: v[:bs] for m, v in Z.items()}, y[:bs], bs)  # warm-up
    for _ in range(max(1, args.repeats // 2)):
        ours_three()
    t_shap, t_shap_enc, shap_vals, shap_base = shap_shapley(
        model, X, y, args.shap_samples
    )
    t_shap_user, shap_user_vals = shap_user_shapley(model, X, y, args.shap_samples)
    while len(t_sh["zeros"]) < args.repeats:
        ours_three()
    k = args.shap_samples
    sh_vals = {key: np.asarray(e.values) for key, e in sh.items()}
    diff_shap = float(np.max(np.abs(sh_vals["zeros"][:k] - shap_vals)))
    diff_shap_base = float(
        np.max(np.abs(np.asarray(sh["zeros"].base_values)[:k] - shap_base))
    )
    diff_user = float(np.max(np.abs(sh_vals["zero_input"][:k] - shap_user_vals)))
    diff_coal = float(np.max(np.abs(sh_vals["coalitions"] - sh_vals["zeros"])))
    per = {key: statistics.median(v) / N for key, v in t_sh.items()}
    per_ours = per["zeros"]
    per_shap, per_shap_user = t_shap / k, t_shap_user / k
    # the coalition part alone, timed directly on both sides
    coal_ours = per["coalitions"]
    coal_shap = (t_shap - t_shap_enc) / k

    # -- 4: memory and scaling -----------------------------------------------
    scale_timings = 1 if args.quick else min(args.repeats, 2)
    scale = [
        run_worker(n, R, args.scale_batch_size, scale_timings, threads=args.threads)
        for n in sizes
    ]
    shap_mem = run_worker(
        args.shapley_n, R, args.scale_batch_size, 1, "shapley", threads=args.threads
    )

    # -- report --------------------------------------------------------------
    ncpu = os.cpu_count() or 1
    load_end = load_average()
    print(machine_line(DEVICE, load_start, t_start))
    try:
        busy = max(float(load_start), float(load_end)) > ncpu
    except ValueError:
        busy = False
    if busy:
        print(
            "WARNING: other processes were using the CPU (load > cores): timings are "
            "inflated and noisy, small multithreaded ops most of all"
        )
    print(
        f"model: LateFusionNet, {M} modalities (4 MLP: 24/48/32/64 features; 2 conv: "
        f"3x16x16, 1x16x16), {n_params} parameters, random weights, eval mode; "
        f"N={N}, n_repeats={R}, batch_size={bs}; fast methods: median of {args.repeats}"
    )
    print()
    print("1-2. permutation modality importance (loss), same amount of work")
    print(f"{'method':58s} {'seconds':>9s} {'ratio to ours':>14s}")
    captum_name = f"captum FeaturePermutation, {R} x attribute()" + (
        f" (from {captum_calls})" if captum_calls != R else ""
    )
    rows = [
        ("ours: PermutationModalityImportance (embeddings)", t_ours_med),
        (f"lower bound: 1 encode + {1 + M * R} head passes (torch)", t_lb_med),
        (f"naive: {1 + M * R} full forward passes, same perms", t_naive),
        (captum_name, t_captum),
    ]
    for name, t in rows:
        print(f"{name:58s} {t:9.3f} {t / t_ours_med:13.1f}x")
    print(
        f"max |importance ours - naive| = {diff_naive:.2e}; ours - lower bound = "
        f"{diff_lb:.2e} (mean importances {ours_imp.mean(1).min():.4f}.."
        f"{ours_imp.mean(1).max():.4f})"
    )
    print(
        f"max |mean importance ours - captum| = {diff_captum_mean:.4f} "
        "(captum draws its own permutations: not expected to match exactly)"
    )
    sp_naive, sp_captum = t_naive / t_ours_med, t_captum / t_ours_med
    print(
        f"target ours >= 20x faster than naive and captum: "
        f"{verdict(sp_naive >= 20 and sp_captum >= 20)} ({sp_naive:.1f}x, {sp_captum:.1f}x)"
    )
    print(
        f"target ours <= 1.50x lower bound: {verdict(lb_ratio <= 1.5)} ({lb_ratio:.2f}x, "
        "median of back-to-back pairs)"
    )
    print()
    print(
        f"3. exact modality Shapley (value='probability', 2^{M}={1 << M} coalitions); "
        f"ours on N={N}, shap on {k} samples, extrapolated per sample"
    )
    print(f"{'method':66s} {'ms/sample':>9s} {'ratio to ours':>14s}")
    rows3 = [
        ("ours: ModalityShapley(baseline='zeros'), embedding path", per_ours),
        (
            "ours: ModalityShapley(baseline='zero_input'), full forward",
            per["zero_input"],
        ),
        ("shap.ExactExplainer, given our split: head on zeroed embeddings", per_shap),
        ("shap.ExactExplainer as a user: full model, zeroed inputs", per_shap_user),
    ]
    for name, t in rows3:
        print(f"{name:66s} {1e3 * t:9.4f} {t / per_ours:13.1f}x")
    r_split = per_shap / per_ours
    r_user = per_shap_user / per_ours
    r_user_same = per_shap_user / per["zero_input"]
    print(
        f"shap as a user / ours with the same game (baseline='zero_input'): "
        f"{r_user_same:.1f}x"
    )
    print(
        f"coalitions only, timed directly: ours (fusion head on cached embeddings) "
        f"{1e3 * coal_ours:.4f}, shap (its loop without its encoder pass) "
        f"{1e3 * coal_shap:.4f} ms/sample ({coal_shap / coal_ours:.1f}x); ours' "
        f"coalitions are {100 * coal_ours / per_ours:.0f}% of its total"
    )
    print(
        f"max |phi ours - shap| on the {k} samples: zeroed embeddings {diff_shap:.2e} "
        f"(base values {diff_shap_base:.2e}); zeroed inputs {diff_user:.2e}; ours on "
        f"cached embeddings - ours = {diff_coal:.2e}"
    )
    print(
        f"shap on all N={N} would take ~{per_shap * N:.0f} s (split), "
        f"~{per_shap_user * N:.0f} s (as a user)"
    )
    print(
        f"target ours >= 20x faster than shap: given our split {verdict(r_split >= 20)} "
        f"({r_split:.1f}x); as a user {verdict(r_user >= 20)} ({r_user:.1f}x); "
        f"values equal to 1e-6: {verdict(max(diff_shap, diff_user) <= 1e-6)}"
    )
    print()
    print(
        f"4. memory and scaling: PermutationModalityImportance(n_repeats={R}, "
        f"batch_size={args.scale_batch_size}), one fresh process per size; peak RSS "
        f"added by the first call, best time of {scale_timings} call(s); last row: "
        f"exact ModalityShapley, one call"
    )
    print(
        f"{'method':12s} {'N':>8s} {'seconds':>9s} {'us/row':>8s} {'input MB':>9s} "
        f"{'peak added MB':>14s} {'added/input':>12s} {'private added MB':>17s}"
        + (f" {'peak CUDA MB':>13s}" if DEVICE != "cpu" else "")
    )
    for s in [*scale, shap_mem]:
        print(
            f"{s['method']:12s} {s['n']:8d} {s['seconds']:9.2f} "
            f"{1e6 * s['seconds'] / s['n']:8.2f} "
            f"{s['input_bytes'] / 2**20:9.1f} {s['peak_added_bytes'] / 2**20:14.1f} "
            f"{s['peak_added_bytes'] / s['input_bytes']:12.2f} "
            f"{s['anon_added_bytes'] / 2**20:17.1f}"
            + (
                f" {s['cuda_peak_bytes'] / 2**20:13.1f}"
                if s.get("cuda_peak_bytes") is not None
                else ""
            )
        )
    print(
        "peak added = VmHWM during the call - VmRSS before it; private added = peak "
        "RssAnon (sampled every 2 ms) - RssAnon before. It varies from run to run "
        "(e.g. 200 vs 840 MB at N=100k): glibc keeps freed batch activations in "
        "its heap, behind the embedding blocks kept alive between them"
    )
    big = scale[-1]
    mem_ratio = big["peak_added_bytes"] / big["input_bytes"]
    per_row = [s["seconds"] / s["n"] for s in scale]
    lin = per_row[-1] / per_row[0]
    print(
        f"target peak added < input bytes at N={big['n']}: {verdict(mem_ratio < 1)} "
        f"({mem_ratio:.2f}x)"
        + ("" if big["peak_exact"] else " [no /proc: ru_maxrss delta, a lower bound]")
    )
    print(
        f"target time linear in N (time/N at N={sizes[-1]} <= 1.3x at N={sizes[0]}): "
        f"{verdict(lin <= 1.3)} ({lin:.2f}x)"
    )
    sm = shap_mem
    sm_ratio = sm["peak_added_bytes"] / sm["input_bytes"]
    print(
        f"target peak added < input bytes for exact ModalityShapley(value="
        f"'probability', baseline='zeros') at N={sm['n']}: {verdict(sm_ratio < 1)} "
        f"({sm_ratio:.2f}x)"
    )

    assert diff_naive < 1e-5, f"ours and naive importances differ by {diff_naive}"
    assert diff_shap < 1e-6, f"ours and shap Shapley values differ by {diff_shap}"
    assert diff_user < 1e-6, f"ours (zero_input) and shap differ by {diff_user}"


if __name__ == "__main__":
    main()
