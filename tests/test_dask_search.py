"""Hyper-parameter search on a dask.distributed cluster (joblib's dask backend).

Estimators, balancers, explainer scorers and ``ModalityDict`` data are pickled
to worker processes; the search results must equal the ``n_jobs=1`` run
exactly. See doc/scaling_out_dask.md.
"""

import logging
import os
import warnings

import joblib
import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster, get_task_stream
from scipy.stats import uniform
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.balancers import OGMGE, ModalityDropout
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import PermutationModalityImportance

pytestmark = pytest.mark.slow  # a cluster of worker processes: ~15 s

N_WORKERS = 2


def _start_cluster():
    """Two single-threaded worker processes; threads only if processes can't start."""
    kw = dict(
        n_workers=N_WORKERS,
        threads_per_worker=1,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:  # TCP on the loopback interface only
        return LocalCluster(processes=True, host="127.0.0.1", **kw)
    except Exception as exc:  # any failure to spawn worker processes
        spawn_error = exc
    warnings.warn(
        f"dask workers cannot run as processes here ({spawn_error!r}); "
        "testing with processes=False (threads, no pickling to workers)",
        stacklevel=2,
    )
    # Caveat of this fallback: seeded fits seed torch's process-wide RNG for
    # their duration (mmexplain.seeding.seeded_torch), so concurrent fits in
    # threads of one process are reproducible only without random draws during
    # fit (no nn.Dropout: true of the models here). A single worker thread is no
    # way out: joblib's dask backend then runs everything in this process.
    try:  # in-process transport
        return LocalCluster(processes=False, **kw)
    except Exception as exc:
        pytest.skip(
            "this platform cannot start a dask LocalCluster: "
            f"processes=True failed with {spawn_error!r}, "
            f"processes=False failed with {exc!r}"
        )


@pytest.fixture(scope="module")
def client():
    cluster = _start_cluster()
    try:
        with Client(cluster) as c:
            c.wait_for_workers(len(cluster.workers), timeout=60)
            yield c
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(n_samples=120, random_state=0)


def _scoring():
    return {
        "acc": "accuracy",
        "bal": PermutationModalityImportance(n_repeats=2, random_state=0),
    }


def _on_dask(client, search, X, y):
    """Fit ``search`` through joblib's dask backend; return the workers used."""
    with get_task_stream(client) as ts, joblib.parallel_config(backend="dask"):
        search.fit(X, y)
    return {task["worker"] for task in ts.data}


def _assert_same_results(seq, dist):
    res_s, res_d = seq.cv_results_, dist.cv_results_
    assert res_s["params"] == res_d["params"]
    keys = [k for k in res_s if k.startswith(("split", "mean_test", "std_test"))]
    keys += [k for k in res_s if k.startswith("rank_test")]
    assert {"mean_test_acc", "mean_test_bal", "split1_test_bal"} <= set(keys)
    for key in keys:
        assert np.isfinite(res_s[key]).all(), (key, res_s[key])
        np.testing.assert_array_equal(res_d[key], res_s[key], err_msg=key)
    assert dist.best_params_ == seq.best_params_
    assert dist.best_index_ == seq.best_index_
    assert dist.best_score_ == seq.best_score_


def _weights(net):
    return [p.detach() for p in net.module_.parameters()]


SEARCHES = {
    "dropout": (
        dict(balancer=ModalityDropout()),
        {"balancer__p": [0.1, 0.3, 0.5]},
    ),
    "ogmge": (
        dict(balancer=OGMGE(), module__head="linear"),
        {"balancer__alpha": [0.1, 0.8]},
    ),
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_grid_search_on_dask_equals_sequential(client, data, name):
    X, y = data
    kw, grid = SEARCHES[name]
    est = MultimodalClassifier(max_epochs=3, lr=0.02, random_state=0, **kw)
    search = GridSearchCV(
        est, grid, cv=2, scoring=_scoring(), refit="acc", error_score="raise"
    )

    seq = clone(search).set_params(n_jobs=1).fit(X, y)
    dist = clone(search)
    workers = _on_dask(client, dist, X, y)

    assert workers, "no task ran on the dask workers"
    _assert_same_results(seq, dist)
    # the grid is not degenerate: the candidates score differently
    assert len(np.unique(seq.cv_results_["mean_test_acc"])) > 1
    assert len(np.unique(seq.cv_results_["mean_test_bal"])) > 1
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(seq.best_estimator_), _weights(dist.best_estimator_))
    )


def test_randomized_search_on_dask_equals_sequential(client, data):
    X, y = data
    search = RandomizedSearchCV(
        MultimodalClassifier(
            balancer=ModalityDropout(), max_epochs=2, lr=0.02, random_state=0
        ),
        {"balancer__p": uniform(0.05, 0.5), "balancer__fill": ["zeros", "mean"]},
        n_iter=3,
        cv=2,
        scoring=_scoring(),
        refit="acc",
        error_score="raise",
        random_state=0,
    )
    seq = clone(search).set_params(n_jobs=1).fit(X, y)
    dist = clone(search)
    assert _on_dask(client, dist, X, y)
    _assert_same_results(seq, dist)


def test_objects_round_trip_through_workers(client, data):
    """Fit and explain on a worker, bring the results back, compare locally."""
    X, y = data
    assert isinstance(X, ModalityDict)
    if client.cluster.processes:  # the objects really crossed a process boundary
        assert os.getpid() not in client.run(os.getpid).values()
    rows = np.arange(0, 120, 3)
    part = client.submit(X.__getitem__, rows).result()  # sliced on a worker
    assert isinstance(part, ModalityDict) and list(part) == list(X)
    for m in X:
        np.testing.assert_array_equal(part[m], X[m][rows])

    for kw in (
        dict(balancer=ModalityDropout(p=0.3, fill="mean")),
        dict(balancer=OGMGE(alpha=0.8), module__head="linear"),
    ):
        est = MultimodalClassifier(max_epochs=2, lr=0.02, random_state=0, **kw)
        local = clone(est).fit(X, y)
        remote = client.submit(clone(est).fit, X, y, pure=False).result()
        assert type(remote.balancer_) is type(local.balancer_)
        assert all(torch.equal(a, b) for a, b in zip(_weights(local), _weights(remote)))
        np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))

        expl = PermutationModalityImportance(n_repeats=2, random_state=0)
        got = client.submit(expl.explain, local, X, y, pure=False).result()
        want = expl.explain(local, X, y)
        assert got.modalities == want.modalities
        np.testing.assert_array_equal(got.shares, want.shares)
        np.testing.assert_array_equal(got.importances, want.importances)
        assert client.submit(expl, local, X, y, pure=False).result() == expl(
            local, X, y
        )
