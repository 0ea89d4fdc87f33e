"""Smoke runs of the benchmark scripts in ``benchmarks/``.

Each script runs as a subprocess (``sys.executable path --smoke``): tiny
sizes, the same code paths and the same printed tables as a real run, a few
seconds each (most of it importing torch). The test checks the exit status
and that the script printed its tables, so a benchmark broken by a change in
the package (a renamed hook, a moved class) fails here instead of silently
rotting. Nothing is asserted about the timings: at smoke sizes they mean
nothing. The exactness checks the scripts make themselves (max |difference|
against references, equality across processes) still run, and fail the script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

#: script -> lines of its tables that must appear in its output
EXPECTED = {
    "bench_balancers.py": [
        "configuration                s/epoch    ratio  extra ms/epoch   target",
        "vanilla (linear head)",
        "GreedyBalancer (guided)",
        "SampleValuation: ",
        "target UtilizationTarget <= 2.50x vanilla",
    ],
    "bench_dask_search.py": [
        "n_jobs=1, #1",
        "median warm dask",
        "equal: cv_results_ (all split/mean/std/rank test scores) and best_params_",
    ],
    "bench_distributed.py": [
        "seconds per explain (barrier to barrier, slowest rank)",
        "all four",
        "max |diff| over all results",
        "ranks return identical arrays: True",
        "summary (README table):",
    ],
    "bench_explainers.py": [
        "1-2. permutation modality importance (loss), same amount of work",
        "naive: ",
        "3. exact modality Shapley",
        "4. memory and scaling",
        "target time linear in N",
    ],
    "bench_overhead.py": [
        "a. proxy: LateFusionNet, 6 modalities x 8 features",
        "lower bound: encode once + 64 head calls over all rows",
        "target exact Shapley <= 1.25x its lower bound",
        "b. the 400k case",
        "naive: 13 full forward passes",
        "captum FeaturePermutation",
        "target permutation >= 3x faster than captum",
    ],
    "bench_scale.py": [
        "a. memory: memmaps of",
        "b. Dataset of one .npy file per sample and modality",
        "DatasetSource(ds, num_workers=2)",
        "c. scaling",
        "summary (README table):",
    ],
    "bench_training.py": [
        "training loop                      s/epoch   ratio to hand loop",
        "MultimodalClassifier",
        "skorch default (DataLoader)",
        "target MultimodalClassifier <= 1.20x hand loop",
    ],
}

#: output of a script that cannot start local processes for torch.distributed
CANNOT_SPAWN = ("Address already in use", "Operation not permitted")

TIMEOUT_S = 300

pytestmark = pytest.mark.slow  # ~7 x 20 s of mostly imports, run side by side

Run = tuple[subprocess.Popen, Path]  # process, log file


def _platform_skip(script: str) -> str | None:
    """Why ``script`` cannot run at all here, or None."""
    if script == "bench_scale.py" and not Path("/proc/self/status").exists():
        return "bench_scale.py measures memory through /proc/self/status (Linux)"
    if script == "bench_distributed.py":
        import torch.distributed

        if not torch.distributed.is_available():
            return "this torch build has no torch.distributed"
    return None


def _start(script: str, out: Path) -> Run:
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        # one thread per process: the scripts run side by side, and OpenMP
        # threads competing for busy cores are many times slower
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = out / "output.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(BENCHMARKS_DIR / script), "--smoke"],
            cwd=out,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return proc, log


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """``run(script) -> (process, log)``, starting it if needed.

    The first call starts every script at once: most of each run is spent
    starting processes and importing torch, so running them side by side
    cuts the wall time on a 2-core machine. Under pytest-xdist each worker
    starts only the scripts it is given.
    """
    runs: dict[str, Run] = {}
    lazy = bool(os.environ.get("PYTEST_XDIST_WORKER"))

    def run(script: str) -> Run:
        for name in [script] if lazy else list(EXPECTED):
            if name not in runs and _platform_skip(name) is None:
                out = tmp_path_factory.mktemp(name.removesuffix(".py"))
                runs[name] = _start(name, out)
        return runs[script]

    yield run
    for proc, _ in runs.values():  # e.g. after a failure with -x
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_benchmark_has_a_smoke_test():
    """A new script in benchmarks/ must be listed above and take --smoke and --device.

    Helper modules (``benchmarks/_common.py``) are not scripts.
    """
    scripts = sorted(p.name for p in BENCHMARKS_DIR.glob("bench_*.py"))
    assert scripts == sorted(EXPECTED)
    for name in scripts:
        source = (BENCHMARKS_DIR / name).read_text()
        assert '"--smoke"' in source, f"{name} has no --smoke option"
        assert "--device" in source, f"{name} has no --device option"


@pytest.mark.parametrize("script", list(EXPECTED))
def test_benchmark_smoke_run_prints_its_tables(script, smoke_run):
    reason = _platform_skip(script)
    if reason is not None:
        pytest.skip(reason)
    proc, log = smoke_run(script)
    try:
        returncode = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{script} --smoke did not finish within {TIMEOUT_S} s")
    output = log.read_text()
    if (
        returncode != 0
        and script == "bench_distributed.py"
        and any(s in output for s in CANNOT_SPAWN)
    ):
        pytest.skip(
            f"cannot start local processes for torch.distributed: {output[-500:]}"
        )
    assert returncode == 0, (
        f"{script} --smoke exited with {returncode}:\n{output[-4000:]}"
    )
    missing = [line for line in EXPECTED[script] if line not in output]
    assert not missing, f"{script} --smoke did not print {missing}:\n{output[-4000:]}"
