"""Re-measure the balancer claims of ``tests/test_claims.py`` over many seeds.

The test suite checks each claim on a few seeds (CI time); this script runs
the same ``measure_*`` functions of ``tests/test_claims.py`` on every seed
asked for (default 0-7), one after the other, and prints per claim, arm and
metric the value on each seed and the mean +- sd, then the pre-registered
checks of the claim (the same comparisons the test makes) with the seeds on
which each fails. The numbers pasted in ``doc/reproduction.md`` come from it.

    OMP_NUM_THREADS=1 python benchmarks/claims_seeds.py [--claims greedy_accuracy,...]
        [--seeds 0-7] [--results claims.json]

With ``--results`` every finished (claim, seed) is stored in a JSON file as it
completes and skipped on the next run, so an interrupted run resumes; the
table is printed from the file. Runtime on the project's 2-core machine, one
thread: see ``doc/reproduction.md`` (minutes per claim and seed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_claims() -> Any:
    """``tests/test_claims.py`` as a module (its measure_* functions and checks)."""
    spec = importlib.util.spec_from_file_location(
        "test_claims", ROOT / "tests" / "test_claims.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["test_claims"] = module
    spec.loader.exec_module(module)
    return module


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    claims_module = load_claims()
    names = sorted(claims_module.CLAIMS)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", default=",".join(names), help=f"of {names}")
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--results", type=Path, default=None, help="JSON file (resume)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    store: dict[str, dict[str, Any]] = {}
    if args.results is not None and args.results.exists():
        store = json.loads(args.results.read_text())
    for name in args.claims.split(","):
        measure = claims_module.CLAIMS[name][0]
        done = store.setdefault(name, {})
        for seed in seeds:
            if str(seed) in done:
                continue
            t0 = time.perf_counter()
            metrics = measure(seed)
            done[str(seed)] = {"metrics": metrics, "seconds": time.perf_counter() - t0}
            print(f"{name} seed {seed}: {done[str(seed)]['seconds']:.0f} s", flush=True)
            if args.results is not None:
                args.results.write_text(json.dumps(store, indent=1))
    for name in args.claims.split(","):
        _, checks, not_held = claims_module.CLAIMS[name]
        runs = {int(s): v["metrics"] for s, v in store[name].items() if int(s) in seeds}
        runs = dict(sorted(runs.items()))
        secs = [store[name][str(s)]["seconds"] for s in runs]
        print(f"\n== {name}: seeds {list(runs)}, {np.mean(secs):.0f} s per seed")
        arms = next(iter(runs.values()))
        metrics = sorted({k for arm in arms.values() for k in arm})
        for metric in metrics:
            print(claims_module.table(runs, metric))
        for title, group in (("asserted by the test", checks), ("not held", not_held)):
            if not group:
                continue
            print(f"pre-registered checks, {title} (seeds where it fails):")
            for label, fails in claims_module.failing_seeds(runs, group):
                print(f"  {'FAIL' if fails else 'ok  '} {label}: {fails or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
