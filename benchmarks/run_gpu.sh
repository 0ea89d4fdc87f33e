#!/usr/bin/env bash
# The one prepared script for a session that has a GPU (issue 19): the CUDA
# test suite, then every benchmark with --device cuda, sized to finish in about
# 8 minutes on one H200 (each step has a hard time limit; their sum is 540 s).
#
#     OUT=/some/folder bash benchmarks/run_gpu.sh     # default OUT=./gpu_results
#
# Every step's output goes to $OUT/<step>.txt (and a summary to
# $OUT/summary.txt). Fail-soft: a failing or timed-out step is recorded and the
# next one runs; the exit status is 1 if any step failed. Needs a Python with a
# CUDA build of torch and mmexplain's [test] extra (captum, shap, skorch, dask
# distributed); run from anywhere inside the repository.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_results}"
mkdir -p "$OUT"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 MMEXPLAIN_TEST_DEVICE=cuda
PY="${PYTHON:-python}"
failed=()
start=$SECONDS

step() { # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local log="$OUT/$name.txt" t0=$SECONDS rc
    echo "== $name (limit ${limit} s): $*" | tee "$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    tail -n +2 "$log" | tail -n 40
    if [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}

step env 30 bash -c "nvidia-smi; nproc; free -g; uptime; $PY -c 'import sys, torch, \
mmexplain; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", \
torch.version.cuda, torch.cuda.get_device_name(0)); print(\"mmexplain\", \
mmexplain.__version__)'"
step cuda_tests 120 "$PY" -m pytest -q -rs -m cuda tests/
# a suite that skipped everything (no GPU seen by torch) is a failure here
if grep -q " skipped" "$OUT/cuda_tests.txt" || ! grep -q " passed" "$OUT/cuda_tests.txt"; then
    failed+=("cuda_tests (tests skipped or none passed: is torch built with CUDA?)")
fi
step bench_overhead 120 "$PY" benchmarks/bench_overhead.py --device cuda
step bench_explainers 90 "$PY" benchmarks/bench_explainers.py --device cuda --quick
step bench_training 30 "$PY" benchmarks/bench_training.py --device cuda --epochs 3
step bench_balancers 45 "$PY" benchmarks/bench_balancers.py --device cuda --quick
step bench_scale 45 "$PY" benchmarks/bench_scale.py --device cuda --quick
step bench_distributed 30 "$PY" benchmarks/bench_distributed.py --device cuda --quick
step bench_dask_search 30 "$PY" benchmarks/bench_dask_search.py --device cuda \
    --n-samples 1000 --epochs 3 --cv 2 --repeats 1

{
    echo "run_gpu.sh: $((SECONDS - start)) s in all"
    if [ ${#failed[@]} -eq 0 ]; then
        echo "all steps passed"
    else
        echo "FAILED: ${failed[*]}"
    fi
} | tee "$OUT/summary.txt"
[ ${#failed[@]} -eq 0 ]
