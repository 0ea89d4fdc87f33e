"""The estimators' training loop: host synchronizations and skorch's history.

skorch reads every batch loss with ``loss.item()``; on a GPU that stalls the
host once per batch. The estimators read an epoch's losses in one transfer
(issue 19). These tests count the host reads made by skorch's and our code
(on CPU the same calls are made as on a GPU) and check that the history is
the one skorch's own loop writes.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, ProgressBar
from skorch.dataset import ValidSplit

from mmexplain import MMTMNet, MultimodalClassifier
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.datasets import make_colored_digits, make_multimodal_classification

#: tensor methods that copy a value to the host (a device sync on a GPU)
_HOST_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "numpy", "cpu")


@pytest.fixture
def host_reads(monkeypatch):
    """Count host reads of tensors made from skorch's and mmexplain's own code."""
    import os
    import sys

    import skorch

    import mmexplain

    # the packages' own directories (a path merely containing 'mmexplain', such
    # as a CI virtual environment's, must not count torch's files)
    roots = tuple(
        os.path.dirname(os.path.abspath(pkg.__file__)) + os.sep
        for pkg in (mmexplain, skorch)
    )
    counts: collections.Counter = collections.Counter()

    def wrap(name):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, **kwargs):
            caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
            if caller.startswith(roots):
                counts[(name, caller.rsplit("/", 1)[-1])] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    for name in _HOST_READS:
        wrap(name)
    return counts


def _fit(n, balancer=None, callbacks=None, train_split=None, **kw):
    X, y = make_multimodal_classification(n_samples=n, random_state=0)
    return MultimodalClassifier(
        balancer=balancer,
        max_epochs=2,
        batch_size=32,
        random_state=0,
        train_split=train_split,
        callbacks=callbacks,
        **kw,
    ).fit(X, y)


@pytest.mark.parametrize(
    "balancer, extra",
    [
        (None, {}),
        (ModalityDropout(p=0.3), {}),
        (
            OGMGE(adaptive_optimizer="ignore"),
            {"module__head": "linear", "optimizer": torch.optim.SGD},
        ),
        (AttributionRegularizer(target={"a": 0.5, "b": 0.5}), {}),
        (UtilizationTarget(target={"a": 0.5, "b": 0.5}), {}),
        (SampleValuation(warmup_epochs=0), {}),
    ],
    ids=["none", "dropout", "ogm", "attribution", "target", "valuation"],
)
def test_no_host_read_per_batch(host_reads, balancer, extra):
    """Doubling the batches per epoch adds no host read: they are per epoch."""
    from sklearn.base import clone

    _fit(320, None if balancer is None else clone(balancer), **extra)
    few = dict(host_reads)
    host_reads.clear()
    _fit(640, None if balancer is None else clone(balancer), **extra)
    many = dict(host_reads)
    grew = {k: (few.get(k, 0), v) for k, v in many.items() if v > few.get(k, 0)}
    assert not grew, f"host reads that grow with the number of batches: {grew}"


def _fit_greedy(n, mode):
    X, y, _, _ = make_colored_digits(random_state=0)
    X = {m: np.asarray(v)[:n] for m, v in X.items()}
    return MultimodalClassifier(
        MMTMNet,
        module__channels=(4,),
        module__ratio=2,
        balancer=GreedyBalancer(mode=mode, warmup_epochs=0),
        max_epochs=1,
        batch_size=16,
        random_state=0,
    ).fit(X, np.asarray(y)[:n])


def test_greedy_reads_the_speeds_once_per_regular_step_only(host_reads):
    """Random re-balancing reads nothing per batch; guided reads the BDR per step.

    The guided rule decides each step's forward pass (regular or re-balancing
    one modality) from the conditional learning speeds of the step before, so
    it reads them on the host once per regular step, by design (Wu et al.,
    2022); that is its only per-batch read.
    """
    _fit_greedy(64, "random")
    few = dict(host_reads)
    host_reads.clear()
    _fit_greedy(128, "random")
    assert dict(host_reads) == few
    host_reads.clear()
    net = _fit_greedy(128, "guided")
    steps = 128 // 16
    rebalancing = sum(net.history[-1, "greedy_rebalance_steps"].values())
    per_step = {k: v for k, v in host_reads.items() if v >= steps - rebalancing}
    assert set(per_step) <= {("cpu", "speed.py"), ("tolist", "speed.py")}, host_reads


class _ReadsLoss(Callback):
    """A callback that reads each batch's loss as the batch ends."""

    def initialize(self):
        self.seen_ = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        key = "train_loss" if training else "valid_loss"
        self.seen_.append(net.history[-1, "batches", -1, key])


def _batch_records(net):
    return [[dict(sorted(b.items())) for b in h["batches"]] for h in net.history]


def test_history_equals_skorch_loop():
    """The deferred loop writes the history skorch's per-batch loop writes."""
    split = ValidSplit(4, stratified=False)
    deferred = _fit(200, train_split=split)
    reader = _ReadsLoss()
    per_batch = _fit(200, train_split=split, callbacks=[("reads", reader)])
    assert _batch_records(deferred) == _batch_records(per_batch)
    for key in ("train_loss", "valid_loss", "train_batch_count", "valid_batch_count"):
        assert deferred.history[:, key] == per_batch.history[:, key]
    # the callback that reads losses during the epoch got skorch's floats
    losses = [
        b[k]
        for h in per_batch.history
        for b in h["batches"]
        for k in ("train_loss", "valid_loss")
        if k in b
    ]
    assert sorted(reader.seen_) == sorted(losses)
    assert all(isinstance(v, float) for v in reader.seen_)


def test_batch_loss_readers_keep_skorch_loop():
    """ProgressBar and unknown batch callbacks see each loss when the batch ends."""
    X, y = make_multimodal_classification(n_samples=96, random_state=0)
    net = MultimodalClassifier(max_epochs=1, batch_size=32, random_state=0)
    assert net.fit(X, y)._defer_loss_sync()
    net.set_params(callbacks=[("progress", ProgressBar())]).initialize()
    assert not net._defer_loss_sync()
    net.set_params(callbacks=[("reads", _ReadsLoss())]).fit(X, y)
    assert len(dict(net.callbacks_)["reads"].seen_) == 3
    assert np.isfinite(net.history[-1, "train_loss"])


def test_nonfinite_loss_still_caught():
    """The divergence check reads the deferred losses (written before it runs)."""
    X, y = make_multimodal_classification(n_samples=96, random_state=0)
    X = {m: v * 1e30 for m, v in X.items()}
    with pytest.raises(FloatingPointError, match="training diverged"):
        MultimodalClassifier(max_epochs=1, lr=1e10, random_state=0).fit(X, y)


# -- data_on_device ------------------------------------------------------------
def _weights(net):
    return {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


@pytest.fixture
def cpu_as_accelerator(monkeypatch):
    """Run the data_on_device path on CPU: the move is then a no-op copy."""
    import mmexplain.estimators.base as base

    monkeypatch.setattr(base, "_is_accelerator", lambda device: True)
    return base


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"train_split": "valid"},
        {"balancer": "dropout"},
        {"sample_weight": True},
    ],
    ids=["plain", "valid-split", "balancer", "sample-weight"],
)
def test_data_on_device_trains_the_same_weights(cpu_as_accelerator, monkeypatch, kw):
    """The device copy is batched in the same order: identical weights and history."""
    made = []
    original = cpu_as_accelerator.MultimodalNetMixin._data_to_device

    def spy(self, *datasets):
        out = original(self, *datasets)
        made.append(out)
        return out

    monkeypatch.setattr(cpu_as_accelerator.MultimodalNetMixin, "_data_to_device", spy)
    X, y = make_multimodal_classification(n_samples=200, random_state=0)
    fit_kw = {}
    if kw.get("sample_weight"):
        fit_kw["sample_weight"] = np.linspace(0.5, 1.5, len(y))
    nets = {}
    for mode in (False, True, "auto"):
        nets[mode] = MultimodalClassifier(
            max_epochs=2,
            batch_size=32,
            random_state=0,
            data_on_device=mode,
            balancer=ModalityDropout(p=0.3) if "balancer" in kw else None,
            train_split=ValidSplit(4, stratified=False)
            if "train_split" in kw
            else None,
        ).fit(X, y, **fit_kw)
    # the moved splits are plain in-memory datasets of tensors (no Subset left)
    from mmexplain.data import ModalityDataset

    assert all(
        isinstance(d, ModalityDataset) for out in made[1:] for d in out if d is not None
    )
    base = _weights(nets[False])
    for mode in (True, "auto"):
        for k, v in _weights(nets[mode]).items():
            assert torch.equal(v, base[k]), (mode, k)
        assert _batch_records(nets[mode]) == _batch_records(nets[False])


def test_data_on_device_refuses_data_larger_than_the_device(
    cpu_as_accelerator, monkeypatch
):
    monkeypatch.setattr(cpu_as_accelerator, "_free_memory", lambda device: 1000)
    X, y = make_multimodal_classification(n_samples=100, random_state=0)
    net = MultimodalClassifier(max_epochs=1, random_state=0, data_on_device=True)
    with pytest.raises(ValueError, match=r"data_on_device=True: the training data"):
        net.fit(X, y)
    # 'auto' stays in host memory and trains as data_on_device=False
    auto = MultimodalClassifier(max_epochs=1, random_state=0, data_on_device="auto")
    off = MultimodalClassifier(max_epochs=1, random_state=0)
    a, b = _weights(auto.fit(X, y)), _weights(off.fit(X, y))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", ["yes", 1.5, None])
def test_data_on_device_rejects_other_values(bad):
    X, y = make_multimodal_classification(n_samples=50, random_state=0)
    with pytest.raises(
        ValueError, match="data_on_device must be True, False or 'auto'"
    ):
        MultimodalClassifier(max_epochs=1, data_on_device=bad).fit(X, y)
