"""The CUDA suite: the same numbers on the GPU as on the CPU, whatever lives where.

Every test here is marked ``cuda`` and runs on the device named by the
environment variable ``MMEXPLAIN_TEST_DEVICE`` (default ``'cuda'``); without a
CUDA GPU the suite is skipped, with that reason. Run it on a GPU machine with::

    python -m pytest -q -m cuda tests/test_cuda.py

and on any machine, against the CPU, with ``MMEXPLAIN_TEST_DEVICE=cpu`` (the
comparisons are then CPU against CPU: it checks the tests themselves and every
device-handling path short of the transfers).

What is compared, for the same seed: every explainer on a model fitted on the
device against the same weights on the CPU; training with every balancer on
the device against the CPU (balancers that draw random numbers draw them on the
device from a device generator, whose stream differs from the CPU's: those are
checked for determinism on the device instead); models and data on different
devices (a CPU model explained on the device, a device model fed NumPy arrays,
memmaps, a torch Dataset or tensors already on the device); persistence across
devices; train/eval mode and weights left as they were; repeatability.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mmexplain import MMTMNet, MultimodalClassifier, MultimodalSegmenter
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.datasets import (
    make_colored_digits,
    make_multimodal_classification,
    make_multimodal_segmentation,
)
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.persistence import load_model, save_model

DEVICE = os.environ.get("MMEXPLAIN_TEST_DEVICE", "cuda")

cuda = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        DEVICE.startswith("cuda") and not torch.cuda.is_available(),
        reason="no CUDA GPU here (torch.cuda.is_available() is False); "
        "MMEXPLAIN_TEST_DEVICE=cpu runs this suite against the CPU",
    ),
]


def _mark(test):
    for mark in cuda:
        test = mark(test)
    return test


@pytest.mark.skipif(
    bool(torch.cuda.is_available() or os.environ.get("MMEXPLAIN_TEST_DEVICE")),
    reason="the suite itself runs on this machine's device",
)
def test_the_suite_runs_against_the_cpu_where_there_is_no_gpu():
    """Without a GPU the suite is skipped; run it against the CPU so it cannot rot."""
    import subprocess
    import sys

    env = {**os.environ, "MMEXPLAIN_TEST_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            __file__,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


#: float32 on two devices (different kernels, summation orders): relative tolerance
RTOL, ATOL = 1e-4, 1e-5

EXPLAINERS = {
    "permutation": lambda: PermutationModalityImportance(n_repeats=3, random_state=0),
    "conditional": lambda: ConditionalUtilization(),
    "shapley": lambda: ModalityShapley(),
    "shapley_input": lambda: ModalityShapley(baseline="zero_input"),
    "shapley_mc": lambda: ModalityShapley(n_samples=20, random_state=0),
    "attribution": lambda: GradientModalityAttribution(),
}


def _numbers(expl):
    """Every per-modality (and per-sample) array an explanation carries."""
    out = {"shares": expl.shares}
    for name in (
        "importances",
        "rates",
        "values",
        "base_values",
        "sample_shares",
        "score_without",
    ):
        value = getattr(expl, name, None)
        if value is not None:
            out[name] = np.asarray(value, dtype=float)
    return out


def _assert_same(a, b):
    na, nb = _numbers(a), _numbers(b)
    assert na.keys() == nb.keys()
    for key in na:
        np.testing.assert_allclose(na[key], nb[key], rtol=RTOL, atol=ATOL, err_msg=key)


@pytest.fixture(scope="module")
def data():
    X, y = make_multimodal_classification(
        n_samples=240, modalities=3, n_features=(6, 4, 5), random_state=0
    )
    return {m: np.asarray(v, dtype=np.float32) for m, v in X.items()}, np.asarray(y)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return MultimodalClassifier(
        max_epochs=3, batch_size=32, random_state=0, device=DEVICE
    ).fit(X, y)


@pytest.fixture(scope="module")
def on_cpu(fitted):
    """The same weights on the CPU (a copy: the device model is left alone)."""
    clf = copy.deepcopy(fitted)
    clf.set_params(device="cpu")
    clf.module_.to("cpu")
    return clf


def _device_of(model):
    return next(model.module_.parameters()).device


# -- explainers ------------------------------------------------------------------
@_mark
@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_every_explainer_gives_the_cpu_numbers_on_the_device(
    name, fitted, on_cpu, data
):
    X, y = data
    on_device = EXPLAINERS[name]().explain(fitted, X, y)
    reference = EXPLAINERS[name]().explain(on_cpu, X, y)
    _assert_same(on_device, reference)
    assert _device_of(fitted).type == torch.device(DEVICE).type  # not moved


@_mark
def test_cpu_model_explained_on_the_device_is_left_on_the_cpu(on_cpu, data):
    X, y = data
    before = {k: v.clone() for k, v in on_cpu.module_.state_dict().items()}
    got = PermutationModalityImportance(
        n_repeats=2, random_state=0, device=DEVICE
    ).explain(on_cpu, X, y)
    want = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        on_cpu, X, y
    )
    _assert_same(got, want)
    assert _device_of(on_cpu).type == "cpu"
    for k, v in on_cpu.module_.state_dict().items():
        assert torch.equal(v, before[k]), k


class _Items(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {m: torch.from_numpy(v[i]) for m, v in self.X.items()}, int(self.y[i])


@_mark
@pytest.mark.parametrize("kind", ["numpy", "memmap", "dataset", "device_tensors"])
def test_device_model_takes_inputs_from_anywhere(kind, fitted, data, tmp_path):
    X, y = data
    if kind == "memmap":
        Xin = {}
        for m, v in X.items():
            np.save(tmp_path / f"{m}.npy", v)
            Xin[m] = np.load(tmp_path / f"{m}.npy", mmap_mode="r")
    elif kind == "dataset":
        Xin = _Items(X, y)
    elif kind == "device_tensors":
        Xin = {m: torch.from_numpy(v).to(DEVICE) for m, v in X.items()}
    else:
        Xin = X
    want = ModalityShapley().explain(fitted, X, y)
    got = ModalityShapley().explain(fitted, Xin, None if kind == "dataset" else y)
    _assert_same(got, want)
    if kind == "device_tensors":  # the caller's tensors are untouched
        for m, v in Xin.items():
            assert torch.equal(v.cpu(), torch.from_numpy(X[m]))


@_mark
def test_modes_and_weights_are_restored_after_explaining(fitted, data):
    X, y = data
    fitted.module_.train()
    before = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    for make in EXPLAINERS.values():
        make().explain(fitted, X, y)
        assert fitted.module_.training
    fitted.module_.eval()
    for k, v in fitted.module_.state_dict().items():
        assert torch.equal(v, before[k]), k


@_mark
def test_explaining_on_the_device_is_repeatable(fitted, data):
    X, y = data
    for make in EXPLAINERS.values():
        a, b = make().explain(fitted, X, y), make().explain(fitted, X, y)
        for key, value in _numbers(a).items():
            np.testing.assert_array_equal(value, _numbers(b)[key], err_msg=key)


# -- training and balancers ---------------------------------------------------------
def _balancer_case(name):
    """(estimator kwargs, data) for each balancer, on the model it needs."""
    if name == "greedy":
        X, y, _, _ = make_colored_digits(random_state=0)
        kw = {"module": MMTMNet, "module__channels": (4,), "module__ratio": 2}
        return kw, ({m: np.asarray(v)[:96] for m, v in X.items()}, np.asarray(y)[:96])
    X, y = make_multimodal_classification(
        n_samples=160, n_features=(6, 4), random_state=1
    )
    target = {m: 0.5 for m in X}  # two modalities
    balancer = {
        "none": None,
        "dropout": ModalityDropout(p=0.3),
        "ogm": OGMGE(noise=False),
        "ogm_noise": OGMGE(noise=True),
        "target": UtilizationTarget(target, warmup=0),
        "attribution": AttributionRegularizer(target),
        "valuation": SampleValuation(warmup_epochs=0),
    }[name]
    kw = {"balancer": balancer}
    if name.startswith("ogm"):
        kw.update(module__head="linear", optimizer=torch.optim.SGD)
    return kw, (X, y)


def _fit(name, device):
    kw, (X, y) = _balancer_case(name)
    if name == "greedy":
        kw["balancer"] = GreedyBalancer(warmup_epochs=0)
    return MultimodalClassifier(
        max_epochs=2, batch_size=32, random_state=0, device=device, lr=0.01, **kw
    ).fit(X, y), X


def _weights(clf):
    return {k: v.detach().cpu() for k, v in clf.module_.state_dict().items()}


#: balancers whose only randomness is the seeded batch order and initialization
DETERMINISTIC = ["none", "ogm", "target", "attribution", "valuation", "greedy"]
#: balancers that draw on the device (a device generator: another stream than the CPU's)
DEVICE_DRAWS = ["dropout", "ogm_noise"]


@_mark
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_training_with_a_balancer_gives_the_cpu_weights(name):
    on_device, _ = _fit(name, DEVICE)
    on_cpu, _ = _fit(name, "cpu")
    a, b = _weights(on_device), _weights(on_cpu)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-4, err_msg=k)
    assert _device_of(on_device).type == torch.device(DEVICE).type


@_mark
@pytest.mark.parametrize("name", DEVICE_DRAWS)
def test_balancers_drawing_on_the_device_are_repeatable(name):
    a, X = _fit(name, DEVICE)
    b, _ = _fit(name, DEVICE)
    for k, v in _weights(a).items():
        np.testing.assert_allclose(v, _weights(b)[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)


@_mark
def test_segmenter_on_the_device_matches_the_cpu():
    X, y = make_multimodal_segmentation(n_samples=16, image_size=16, random_state=0)
    kw = {"max_epochs": 1, "batch_size": 8, "random_state": 0}
    on_device = MultimodalSegmenter(device=DEVICE, **kw).fit(X, y)
    on_cpu = MultimodalSegmenter(device="cpu", **kw).fit(X, y)
    np.testing.assert_allclose(
        on_device.predict_proba(X), on_cpu.predict_proba(X), rtol=1e-3, atol=1e-4
    )
    got = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        on_device, X, y
    )
    want = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        on_cpu, X, y
    )
    np.testing.assert_allclose(got.importances, want.importances, rtol=1e-2, atol=1e-4)


# -- persistence ------------------------------------------------------------------
@_mark
def test_a_device_model_saves_and_loads_with_the_same_predictions(
    fitted, data, tmp_path
):
    X, _ = data
    loaded = load_model(save_model(fitted, tmp_path / "m.mmx"))
    np.testing.assert_allclose(
        loaded.predict_proba(X), fitted.predict_proba(X), rtol=1e-6, atol=1e-7
    )
    assert _device_of(loaded).type == torch.device(DEVICE).type


@_mark
def test_a_cpu_model_loads_and_is_explained_on_the_device(on_cpu, data, tmp_path):
    X, y = data
    loaded = load_model(save_model(on_cpu, tmp_path / "c.mmx"))
    assert _device_of(loaded).type == "cpu"
    got = ModalityShapley(device=DEVICE).explain(loaded, X, y)
    _assert_same(got, ModalityShapley().explain(on_cpu, X, y))


@_mark
@pytest.mark.parametrize("balancer", [None, "target"])
def test_training_data_kept_on_the_device_gives_the_same_weights(balancer):
    """data_on_device=True: batches sliced on the device, same weights as host data."""
    X, y = make_multimodal_classification(n_samples=200, random_state=0)
    kw = {"max_epochs": 2, "batch_size": 32, "random_state": 0, "device": DEVICE}
    if balancer:
        kw["balancer"] = UtilizationTarget(target={"a": 0.5, "b": 0.5})
    on_host = MultimodalClassifier(**kw).fit(X, y)
    on_device = MultimodalClassifier(data_on_device=True, **kw).fit(X, y)
    a, b = _weights(on_device), _weights(on_host)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert on_device.history[:, "train_loss"] == pytest.approx(
        on_host.history[:, "train_loss"], rel=1e-5
    )
