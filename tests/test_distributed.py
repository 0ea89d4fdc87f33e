"""Explainers under torch.distributed: two CPU processes (gloo) launched by torchrun.

Each rank evaluates its share of the rows and the additive statistics are
all-reduced, so every rank must return the single-process result (float32
tolerance), for in-memory data, a Dataset, full forward passes and a
DistributedDataParallel-wrapped module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).parent / "distributed" / "explain_worker.py"

pytestmark = pytest.mark.slow


def _run(args, out, timeout=300):
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        if (
            "Address already in use" in proc.stderr
            or "Operation not permitted" in proc.stderr
        ):
            pytest.skip(
                f"cannot start local processes for torch.distributed: {proc.stderr[-500:]}"
            )
        raise AssertionError(
            f"worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, str(WORKER)], out)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(WORKER),
        ],
        out,
    )
    return {
        name: dict(np.load(out / f"{name}.npz"))
        for name in ("single", "rank0", "rank1")
    }


def test_every_rank_returns_the_single_process_result(results):
    single, r0, r1 = results["single"], results["rank0"], results["rank1"]
    assert set(r0) == set(r1) and set(single) <= set(r0)
    for key, want in single.items():
        np.testing.assert_allclose(r0[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(r1[key], r0[key], rtol=0, atol=0, err_msg=key)


def test_ddp_wrapped_module_is_explained_like_the_module(results):
    r0 = results["rank0"]
    ddp_keys = [k for k in r0 if "/ddp/" in k]
    assert len(ddp_keys) == 7
    for key in ddp_keys:
        np.testing.assert_allclose(
            r0[key], r0[key.replace("/ddp/", "/mem/")], rtol=1e-5, atol=1e-6
        )


def test_per_sample_outputs_are_gathered_in_row_order(results):
    r0, single = results["rank0"], results["single"]
    assert r0["shap/mem/values"].shape == (203, 2)
    np.testing.assert_allclose(
        r0["shap/ds/values"], single["shap/mem/values"], rtol=1e-5, atol=1e-6
    )
    assert r0["attr/mem/sample_shares"].shape == (203, 2)


TRAIN_WORKER = Path(__file__).parent / "distributed" / "train_worker.py"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(TRAIN_WORKER),
        ],
        out,
    )
    return [dict(np.load(out / f"train_rank{r}.npz")) for r in (0, 1)]


def test_data_parallel_training_with_balancers_ends_with_identical_weights(trained):
    r0, r1 = trained
    names = {k.split("/")[0] for k in r0 if "/" in k}
    assert names == {"dropout", "ogm", "target", "greedy"}
    for key, value in r0.items():
        np.testing.assert_array_equal(r1[key], value, err_msg=key)


def test_data_parallel_training_reduces_balancer_statistics(trained):
    r0, r1 = trained
    # OGM-GE's coefficients come from the scores of the whole global batch
    np.testing.assert_array_equal(r0["ogm_coefficients"], r1["ogm_coefficients"])
    assert np.all(r0["ogm_coefficients"] <= 1) and np.any(r0["ogm_coefficients"] < 1)
    # greedy re-balancing decides from synchronized gradients: the same steps
    np.testing.assert_array_equal(r0["greedy_steps"], r1["greedy_steps"])


def test_training_shards_each_batch(tmp_path):
    """Without a process group nothing changes; with one each rank takes its part."""
    import torch

    from mmexplain.data.batching import ModalityDataset, TensorBatchIterator

    ds = ModalityDataset({"a": np.arange(10.0)[:, None]}, np.arange(10))
    full = [
        b[1].tolist()
        for b in TensorBatchIterator(
            ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
    ]
    parts = [
        [
            b[1].tolist()
            for b in TensorBatchIterator(
                ds,
                batch_size=4,
                shuffle=True,
                generator=torch.Generator().manual_seed(0),
                shard=(r, 2),
            )
        ]
        for r in (0, 1)
    ]
    assert [p0 + p1 for p0, p1 in zip(*parts)] == full


def test_zero_rows_on_a_rank_every_explainer_returns_the_single_process_result(
    tmp_path,
):
    """One row on two ranks: rank 0 has none; no failure, no hang, same numbers.

    Every explainer on each of its row-sharing paths (see the worker's ``RUNS``).
    """
    worker = Path(__file__).parent / "distributed" / "zero_rows_worker.py"
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(worker),
        ],
        tmp_path,
        timeout=240,
    )
    for rank in (0, 1):
        assert (tmp_path / f"zero_rows_rank{rank}.txt").read_text() == "ok", rank
