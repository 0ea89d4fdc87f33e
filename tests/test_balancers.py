"""Behaviour tests of the training-time balancers and the training callbacks.

Every check compares a balancer's effect with a hand computation written here
(tiny data, tiny models, CPU).
"""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from mmexplain import MMTMNet, ModalityDict, MultimodalClassifier
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.balancers.speed import ConditionalSpeedMeter
from mmexplain.balancers.target import batch_utilization
from mmexplain.balancers.valuation import KEEP_ROWS
from mmexplain.callbacks import ConditionalLearningSpeed, UtilizationHistory
from mmexplain.datasets import make_colored_digits, make_multimodal_classification
from mmexplain.explainers import GradientModalityAttribution
from mmexplain.modules.contract import encoder_parameters

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    """96 colored-and-gray digits (3x8x8 and 1x8x8) as a ModalityDict."""
    X, y, _, _ = make_colored_digits(random_state=0)
    return X[:96], y[:96]


@pytest.fixture(scope="module")
def tab():
    X, y = make_multimodal_classification(120, n_features=6, random_state=0)
    return X, y


def tensors(X, y=None):
    Xt = {m: torch.as_tensor(np.asarray(v), dtype=torch.float32) for m, v in X.items()}
    if y is None:
        return Xt
    return Xt, torch.as_tensor(np.asarray(y), dtype=torch.long)


def weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def mmtm_clf(**kw):
    kw.setdefault("max_epochs", 2)
    kw.setdefault("batch_size", 16)
    kw.setdefault("random_state", 0)
    return MultimodalClassifier(
        MMTMNet, module__channels=(4,), module__ratio=2, lr=0.01, **kw
    )


def small_clf(**kw):
    kw.setdefault("max_epochs", 2)
    kw.setdefault("batch_size", 32)
    kw.setdefault("random_state", 0)
    kw.setdefault("module__embedding_dim", 8)
    kw.setdefault("module__hidden", (16,))
    return MultimodalClassifier(**kw)


def encoder_weights(net):
    return {
        k: v.detach().clone()
        for k, v in net.module_.state_dict().items()
        if k.startswith("encoders.")
    }


def head_weights(net):
    return {
        k: v.detach().clone()
        for k, v in net.module_.state_dict().items()
        if k.startswith("head.")
    }


def all_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def any_changed(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------
# 1. ModalityDropout
# ---------------------------------------------------------------------------


def fitted_dropout(X, **kw):
    bal = ModalityDropout(random_state=kw.pop("random_state", 0), **kw)
    bal.validate()  # what the estimator does before training
    bal.fit_started(None, X=X, y=torch.zeros(len(next(iter(X.values())))))
    return bal


def three_modal(n=10):
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn(n, 4, generator=g),
        "b": torch.randn(n, 2, 3, generator=g),
        "c": torch.randn(n, 1, 2, 2, generator=g),
    }


def test_dropout_mask_never_drops_every_modality_and_frequency_matches_p():
    X = three_modal()
    p, M, n = 0.6, 3, 60_000
    bal = fitted_dropout(X, p=p)
    mask = bal.drop_mask(n, torch.device("cpu"))
    assert mask.shape == (n, M) and mask.dtype == torch.bool
    assert not bool(mask.all(dim=1).any())
    # hand: an all-dropped row (prob p^M) gets one modality back, uniformly
    expected = p - p**M / M
    freq = mask.float().mean(dim=0).numpy()
    np.testing.assert_allclose(freq, expected, atol=0.01)
    # the rescue kept exactly one modality: rows with M-1 drops are that frequent
    n_dropped = mask.sum(dim=1).float()
    expected_two = 3 * p**2 * (1 - p) + p**3
    assert abs(float((n_dropped == 2).float().mean()) - expected_two) < 0.01


def test_dropout_per_modality_probabilities():
    X = {"a": torch.randn(8, 3), "b": torch.randn(8, 2)}
    bal = fitted_dropout(X, p={"a": 0.5, "b": 0.2})
    mask = bal.drop_mask(100_000, torch.device("cpu"))
    assert not bool(mask.all(dim=1).any())
    both = 0.5 * 0.2  # each such row keeps a or b with prob 1/2
    freq = mask.float().mean(dim=0).numpy()
    np.testing.assert_allclose(freq, [0.5 - both / 2, 0.2 - both / 2], atol=0.007)
    # a modality missing from the dict is never dropped
    bal = fitted_dropout(X, p={"a": 0.7})
    mask = bal.drop_mask(20_000, torch.device("cpu"))
    assert not bool(mask[:, 1].any())
    assert abs(float(mask[:, 0].float().mean()) - 0.7) < 0.015


def test_dropout_non_droppable_modalities_never_dropped():
    X = three_modal()
    bal = fitted_dropout(X, p=0.9, modalities=["a", "c"])
    mask = bal.drop_mask(50_000, torch.device("cpu"))
    assert not bool(mask[:, 1].any())
    # 'b' is always kept, so no rescue is needed: a and c drop with p exactly
    np.testing.assert_allclose(mask[:, [0, 2]].float().mean(0).numpy(), 0.9, atol=0.01)
    Xb, _ = bal.transform_batch(None, X=X, y=None)
    assert torch.equal(Xb["b"], X["b"])


def test_dropout_zero_fill_zeroes_exactly_the_masked_rows():
    X = three_modal(40)
    bal = fitted_dropout(X, p=0.5, random_state=3)
    ref = fitted_dropout(X, p=0.5, random_state=3)
    before = {m: v.clone() for m, v in X.items()}
    Xb, y = bal.transform_batch(None, X=X, y="y")
    assert y == "y"
    mask = ref.drop_mask(40, torch.device("cpu"))  # the same draws
    for j, m in enumerate(X):
        assert torch.equal(X[m], before[m])  # not modified in place
        dropped = mask[:, j]
        assert bool(dropped.any()) and bool((~dropped).any())
        assert torch.equal(Xb[m][~dropped], X[m][~dropped])
        assert bool((Xb[m][dropped] == 0).all())


def test_dropout_mean_fill_uses_the_training_mean():
    g = torch.Generator().manual_seed(1)
    X_train = {"a": torch.randn(50, 3, generator=g) + 5, "b": torch.randn(50, 2, 2)}
    bal = fitted_dropout(X_train, p=0.5, fill="mean", random_state=4)
    ref = fitted_dropout(X_train, p=0.5, fill="mean", random_state=4)
    batch = {"a": torch.randn(30, 3, generator=g), "b": torch.randn(30, 2, 2)}
    out, _ = bal.transform_batch(None, X=batch, y=None)
    mask = ref.drop_mask(30, torch.device("cpu"))
    for j, m in enumerate(batch):
        mean = X_train[m].mean(dim=0)  # hand: the mean of the *training* data
        dropped = mask[:, j]
        assert bool(dropped.any())
        for i in range(30):
            want = mean if dropped[i] else batch[m][i]
            torch.testing.assert_close(out[m][i], want)


def test_dropout_batch_level_gives_identical_rows():
    X = three_modal()
    bal = fitted_dropout(X, p=0.5, level="batch")
    rows = []
    for _ in range(3000):
        mask = bal.drop_mask(7, torch.device("cpu"))
        assert bool((mask == mask[0]).all())
        assert not bool(mask[0].all())
        rows.append(mask[0])
    freq = torch.stack(rows).float().mean(0).numpy()
    np.testing.assert_allclose(freq, 0.5 - 0.5**3 / 3, atol=0.04)


def test_dropout_seeded_reproducibility():
    X = three_modal()
    m1 = fitted_dropout(X, p=0.4, random_state=7).drop_mask(500, torch.device("cpu"))
    m2 = fitted_dropout(X, p=0.4, random_state=7).drop_mask(500, torch.device("cpu"))
    m3 = fitted_dropout(X, p=0.4, random_state=8).drop_mask(500, torch.device("cpu"))
    assert torch.equal(m1, m2) and not torch.equal(m1, m3)


def test_dropout_through_the_estimator_is_reproducible_and_changes_training(tab):
    X, y = tab
    fits = [
        small_clf(balancer=ModalityDropout(p=0.5), random_state=1).fit(X, y)
        for _ in range(2)
    ]
    assert all_equal(weights(fits[0].module_), weights(fits[1].module_))
    plain = small_clf(random_state=1).fit(X, y)
    assert any_changed(weights(fits[0].module_), weights(plain.module_))


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"p": 1.0}, ValueError, r"'p' parameter .*\[0(\.0)?, 1(\.0)?\)"),
        ({"p": -0.1}, ValueError, r"'p' parameter .*\[0(\.0)?, 1(\.0)?\)"),
        ({"p": {"a": 1.0}}, ValueError, r"\[0, 1\)"),
        ({"p": {"zz": 0.2}}, ValueError, "unknown modality 'zz'"),
        ({"modalities": ["a", "zz"]}, ValueError, "unknown modality 'zz'"),
        ({"fill": "median"}, ValueError, "fill"),
        ({"level": "epoch"}, ValueError, "level"),
        ({"p": "high"}, TypeError, "'p' parameter of ModalityDropout"),
    ],
)
def test_dropout_errors(kw, err, match):
    X = {"a": torch.randn(4, 2), "b": torch.randn(4, 2)}
    with pytest.raises(err, match=match):
        fitted_dropout(X, **kw)


def test_dropout_error_surfaces_in_fit(tab):
    X, y = tab
    with pytest.raises(ValueError, match="unknown modality"):
        small_clf(balancer=ModalityDropout(modalities=["nope"])).fit(X, y)


# ---------------------------------------------------------------------------
# 2. ConditionalSpeedMeter
# ---------------------------------------------------------------------------


def _ratio(params):
    g = sum(float((p.grad.double() ** 2).sum()) for p in params if p.grad is not None)
    w = sum(float((p.detach().double() ** 2).sum()) for p in params)
    return g / w


def test_conditional_speed_meter_matches_hand_computation(digits):
    X, y = digits
    Xt, yt = tensors(X[:24], y[:24])
    torch.manual_seed(0)
    net = MMTMNet({"color": 3, "gray": 1}, n_classes=10, channels=(4, 6), ratio=2)
    meter = ConditionalSpeedMeter(net)
    assert meter.modalities == ("color", "gray")
    assert all(math.isnan(v) for v in meter.bdr().values())
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    cum = {m: [0.0, 0.0] for m in meter.modalities}
    for step in range(3):
        opt.zero_grad()
        rows = slice(8 * step, 8 * step + 8)
        net(**{m: v[rows] for m, v in Xt.items()})
        loss = sum(F.cross_entropy(out, yt[rows]) for out in net.branch_logits.values())
        loss.backward()
        for m in meter.modalities:
            groups = net.modality_parameters(m)
            cum[m][0] += _ratio(groups["main"])
            cum[m][1] += _ratio(groups["bypass"])
        meter.update()
        opt.step()
        assert meter.steps == step + 1
        bdr = {m: math.log10(cum[m][1] / cum[m][0]) for m in cum}
        got = meter.bdr()
        # the meter sums float32 norms on the device, the hand loop float64
        for m in cum:
            assert got[m] == pytest.approx(bdr[m], rel=1e-5, abs=1e-7)
        assert meter.d_speed() == pytest.approx(
            bdr["color"] - bdr["gray"], rel=1e-5, abs=1e-7
        )
    np.testing.assert_allclose(
        meter.cum.cpu().numpy(), [cum["color"], cum["gray"]], rtol=1e-6
    )


def test_conditional_speed_meter_needs_modality_parameters():
    with pytest.raises(TypeError, match="modality_parameters"):
        ConditionalSpeedMeter(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------
# 3. GreedyBalancer
# ---------------------------------------------------------------------------


@pytest.fixture
def greedy_log(monkeypatch):
    """Record every training forward's re-balanced modality and every meter update."""
    log = {"steps": [], "bdr": []}
    forward, update = MMTMNet.forward, ConditionalSpeedMeter.update

    def spy_forward(self, *args, **kwargs):
        if self.training:
            log["steps"].append(kwargs.get("rebalance") or self.rebalance)
        return forward(self, *args, **kwargs)

    def spy_update(self):
        update(self)
        log["bdr"].append(self.bdr())
        log["steps_at_update"] = log.get("steps_at_update", []) + [len(log["steps"])]

    monkeypatch.setattr(MMTMNet, "forward", spy_forward)
    monkeypatch.setattr(ConditionalSpeedMeter, "update", spy_update)
    return log


def test_greedy_rejects_models_without_mmtm(tab):
    X, y = tab
    with pytest.raises(TypeError, match="rebalancing"):
        small_clf(balancer=GreedyBalancer()).fit(X, y)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"mode": "greedy"}, "mode"),
        ({"tolerance": -1}, "tolerance"),
        ({"window": 0}, "window"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
    ],
)
def test_greedy_validates_params(digits, kw, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        mmtm_clf(balancer=GreedyBalancer(**kw)).fit(X, y)


def test_greedy_guided_tolerance_zero_windows_follow_larger_bdr(digits, greedy_log):
    X, y = digits
    window, warmup, per_epoch, epochs = 3, 2, 6, 5  # 96 samples / 16
    clf = mmtm_clf(
        balancer=GreedyBalancer(tolerance=0.0, window=window, warmup_epochs=warmup),
        max_epochs=epochs,
    ).fit(X, y)
    steps = greedy_log["steps"]
    assert len(steps) == per_epoch * epochs
    # hand simulation of the guided algorithm from the logged speeds
    regular_idx = [i for i, s in enumerate(steps) if s is None]
    assert greedy_log["steps_at_update"] == [i + 1 for i in regular_idx]
    expected, current, left, k = [], None, 0, 0
    for i in range(len(steps)):
        expected.append(current)
        if current is None:
            bdr = greedy_log["bdr"][k]
            k += 1
            if i // per_epoch >= warmup:
                current, left = max(bdr, key=bdr.get), window
        else:
            left -= 1
            if left == 0:
                current = None
    assert steps == expected
    # warm-up: regular steps only; then it re-balances right away
    assert all(s is None for s in steps[: warmup * per_epoch])
    assert steps[warmup * per_epoch] is None
    assert steps[warmup * per_epoch + 1] is not None
    # windows of exactly `window` steps (the last one may be cut by the end of fit)
    runs, run = [], 0
    for s in steps[warmup * per_epoch :] + [None]:
        if s is None:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    assert runs and all(r == window for r in runs[:-1]) and runs[-1] <= window
    # history: re-balancing steps per epoch and d_speed at each epoch end
    hist = clf.history[:, "greedy_rebalance_steps"]
    for e in range(epochs):
        chunk = steps[e * per_epoch : (e + 1) * per_epoch]
        assert hist[e] == {m: chunk.count(m) for m in ("color", "gray")}
        last = [j for j, i in enumerate(regular_idx) if i < (e + 1) * per_epoch][-1]
        bdr = greedy_log["bdr"][last]
        assert clf.history[e, "greedy_d_speed"] == pytest.approx(
            bdr["color"] - bdr["gray"]
        )
    # running gates are averaged over regular steps only
    for block in clf.module_.mmtms:
        assert int(block.num_batches_tracked) == len(regular_idx)


def test_greedy_huge_tolerance_never_rebalances(digits, greedy_log):
    X, y = digits
    clf = mmtm_clf(
        balancer=GreedyBalancer(tolerance=1e9, warmup_epochs=0), max_epochs=3
    ).fit(X, y)
    assert greedy_log["steps"] == [None] * 18
    assert len(greedy_log["bdr"]) == 18
    assert clf.history[:, "greedy_rebalance_steps"] == [{"color": 0, "gray": 0}] * 3
    assert all(np.isfinite(clf.history[:, "greedy_d_speed"]))


def test_greedy_random_mode_draws_uniformly(digits, greedy_log):
    X, y = digits
    n_epochs, per_epoch = 12, 24  # batch_size 4
    clf = mmtm_clf(
        balancer=GreedyBalancer(mode="random", warmup_epochs=1, random_state=5),
        batch_size=4,
        max_epochs=n_epochs,
    ).fit(X, y)
    steps = greedy_log["steps"]
    assert len(steps) == n_epochs * per_epoch
    assert all(s is None for s in steps[:per_epoch])
    # hand: after each step of an unlocked epoch, draw uniformly from M + 1 choices
    rng = np.random.RandomState(5)
    choices = [None, "color", "gray"]
    expected = [None] * (per_epoch + 1)
    expected += [choices[rng.randint(3)] for _ in range(len(steps) - per_epoch - 1)]
    assert steps == expected
    after = steps[per_epoch:]
    counts = [after.count(c) for c in choices]
    assert all(abs(c - len(after) / 3) < 0.1 * len(after) for c in counts)
    # speeds are accumulated on regular steps only
    assert len(greedy_log["bdr"]) == steps.count(None)
    hist = clf.history[:, "greedy_rebalance_steps"]
    assert sum(h["color"] for h in hist) == counts[1]
    assert sum(h["gray"] for h in hist) == counts[2]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"mode": "fixed"}, "needs rate"),
        ({"mode": "fixed", "rate": 1.5}, "rate"),
        ({"modalities": ["depth"]}, "modalities"),
        ({"modalities": []}, "modalities"),
        ({"modalities": ["gray", "gray"]}, "modalities"),
        ({"modalities": "gray"}, "modalities"),
    ],
)
def test_greedy_validates_control_params(digits, kw, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        mmtm_clf(balancer=GreedyBalancer(**kw)).fit(X, y)


def test_greedy_control_params_are_clonable():
    bal = GreedyBalancer(mode="fixed", rate=0.25, modalities=["gray"])
    twin = clone(bal)
    assert twin.get_params() == bal.get_params()
    assert twin.get_params()["modalities"] == ["gray"]
    assert twin.get_params()["rate"] == 0.25


@pytest.mark.parametrize(
    "rate, modalities", [(0.3, None), (0.75, ["gray"]), (1.0, None), (0.0, None)]
)
def test_greedy_fixed_mode_follows_the_schedule(digits, greedy_log, rate, modalities):
    X, y = digits
    warmup, per_epoch, epochs = 1, 6, 4  # 96 samples / 16
    clf = mmtm_clf(
        balancer=GreedyBalancer(
            mode="fixed", rate=rate, modalities=modalities, warmup_epochs=warmup
        ),
        max_epochs=epochs,
    ).fit(X, y)
    steps = greedy_log["steps"]
    assert len(steps) == per_epoch * epochs
    # reference loop: decision after each unlocked step t, no speed signal
    allowed = modalities or ["color", "gray"]
    expected, current, t, k = [], None, 0, 0
    for i in range(len(steps)):
        expected.append(current)
        if i // per_epoch >= warmup:
            if math.floor((t + 1) * rate) > math.floor(t * rate):
                current, k = allowed[k % len(allowed)], k + 1
            else:
                current = None
            t += 1
    assert steps == expected
    decided = (epochs - warmup) * per_epoch - 1  # the last decision is not taken
    assert sum(s is not None for s in steps) == math.floor(decided * rate)
    # the speeds are still accumulated on regular steps (reported, not used)
    assert len(greedy_log["bdr"]) == steps.count(None)
    hist = clf.history[:, "greedy_rebalance_steps"]
    assert sum(h["gray"] for h in hist) == steps.count("gray")


def test_greedy_fixed_mode_matches_a_guided_runs_count(digits, greedy_log):
    """A fixed rate taken from a guided run gives (nearly) its number of steps."""
    X, y = digits
    mmtm_clf(balancer=GreedyBalancer(tolerance=0.0), max_epochs=4).fit(X, y)
    guided = sum(s is not None for s in greedy_log["steps"])
    decided = 3 * 6 - 1
    greedy_log["steps"].clear()
    # (guided + 0.5) / decided: floor(decided * rate) == guided despite rounding
    bal = GreedyBalancer(mode="fixed", rate=(guided + 0.5) / decided)
    mmtm_clf(balancer=bal, max_epochs=4).fit(X, y)
    assert sum(s is not None for s in greedy_log["steps"]) == guided


def test_greedy_guided_restricted_modalities_never_rebalance_the_others(
    digits, greedy_log
):
    """``modalities=['color']``: same trigger, but only colour is re-balanced."""
    X, y = digits
    window, warmup, per_epoch, epochs = 3, 1, 6, 4
    mmtm_clf(
        balancer=GreedyBalancer(
            tolerance=0.0, window=window, warmup_epochs=warmup, modalities=["color"]
        ),
        max_epochs=epochs,
    ).fit(X, y)
    steps = greedy_log["steps"]
    expected, current, left, k = [], None, 0, 0
    for i in range(len(steps)):
        expected.append(current)
        if current is None:
            k += 1  # a regular step: the meter is updated, the trigger checked
            if i // per_epoch >= warmup:
                current, left = "color", window  # tolerance 0: always triggers
        else:
            left -= 1
            if left == 0:
                current = None
    assert steps == expected
    assert "gray" not in steps and "color" in steps
    assert len(greedy_log["bdr"]) == k


def test_greedy_random_mode_restricted_modalities(digits, greedy_log):
    X, y = digits
    per_epoch, epochs = 6, 4
    mmtm_clf(
        balancer=GreedyBalancer(
            mode="random", modalities=["gray"], warmup_epochs=1, random_state=3
        ),
        max_epochs=epochs,
    ).fit(X, y)
    rng = np.random.RandomState(3)
    expected = [None] * (per_epoch + 1)
    expected += [
        [None, "gray"][rng.randint(2)] for _ in range((epochs - 1) * per_epoch - 1)
    ]
    assert greedy_log["steps"] == expected


def test_rebalancing_forward_uses_the_running_average_gate(digits):
    X, y = digits
    Xt = tensors(X[:8])
    torch.manual_seed(0)
    net = MMTMNet({"color": 3, "gray": 1}, n_classes=10, channels=(4, 6), ratio=2)
    net.train()
    for _ in range(3):  # move the running averages away from their init
        net(**tensors(X[8:40]))
    other = dict(Xt, gray=torch.rand_like(Xt["gray"]))
    stats = [b.running_gate("color").clone() for b in net.mmtms]
    with net.rebalancing("color"):
        net(**Xt)
        color_a = net.branch_logits["color"].detach()
        gray_a = net.branch_logits["gray"].detach()
        for block, avg in zip(net.mmtms, stats):
            assert torch.equal(block.last_gates["color"], avg.expand(8, -1))
        net(**other)
        # no sample-specific cross-modal signal reaches the colour branch
        torch.testing.assert_close(net.branch_logits["color"], color_a)
        assert not torch.allclose(net.branch_logits["gray"], gray_a)
    for block, avg in zip(net.mmtms, stats):
        assert torch.equal(block.running_gate("color"), avg)  # not updated
    net(**Xt)
    regular = net.branch_logits["color"].detach()
    net(**other)
    assert not torch.allclose(net.branch_logits["color"], regular)


def test_greedy_rebalancing_step_uses_gate_average_and_branch_ce_sum(digits):
    X, y = digits
    clf = mmtm_clf(balancer=GreedyBalancer(tolerance=0.0), max_epochs=1).fit(X, y)
    bal, module = clf.balancer_, clf.module_
    Xt, yt = tensors(X[:16], y[:16])
    bal.epoch_started(clf, epoch=1, X=Xt, y=yt)
    bal.current_, bal.steps_left_ = "gray", 2
    clf.optimizer_.zero_grad()
    out = clf.train_step_single((Xt, yt))
    for block in module.mmtms:
        assert torch.equal(
            block.last_gates["gray"], block.running_gate("gray").expand(16, -1)
        )
    assert bal.counts_ == {"color": 0, "gray": 1}
    # hand: the loss is the sum of the branch cross-entropies of that forward
    with torch.no_grad(), module.rebalancing("gray"):
        module(**Xt)
        want = sum(F.cross_entropy(z, yt) for z in module.branch_logits.values())
        mean_ce = F.cross_entropy(
            torch.stack(list(module.branch_logits.values())).mean(0), yt
        )
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-5)
    assert float(want) != pytest.approx(float(mean_ce), rel=1e-3)
    assert bal.current_ == "gray" and bal.steps_left_ == 1


# ---------------------------------------------------------------------------
# 4. OGM-GE
# ---------------------------------------------------------------------------


def ogm_pair(X, y, balancer, **kw):
    """A net with the balancer and a plain one with the same initial weights."""
    common = dict(module__head="linear", max_epochs=0, random_state=0, **kw)
    bal = small_clf(balancer=balancer, **common).fit(X, y)
    plain = small_clf(**common).fit(X, y)
    assert all_equal(weights(bal.module_), weights(plain.module_))
    return bal, plain


def one_step(net, batch):
    net.optimizer_.zero_grad(set_to_none=True)
    if net.balancer_ is not None:
        net.balancer_.epoch_started(net, epoch=0, X=batch[0], y=batch[1])
    net.train_step_single(batch)
    return {n: p.grad.detach().clone() for n, p in net.module_.named_parameters()}


def hand_ogm_two(module, Xt, yt, alpha):
    """The official two-modality OGM-GE coefficients (Peng et al. 2022)."""
    with torch.no_grad():
        Z = module.encode(**Xt)
        W, b = module.head.weight, module.head.bias
        d = Z["a"].shape[1]
        out_a = Z["a"] @ W[:, :d].T + b / 2
        out_v = Z["b"] @ W[:, d:].T + b / 2
        score_a = sum(F.softmax(out_a, 1)[i, yt[i]] for i in range(len(yt)))
        score_v = sum(F.softmax(out_v, 1)[i, yt[i]] for i in range(len(yt)))
        ratio_v = float(score_v / score_a)
        ratio_a = 1 / ratio_v
        coeff_a = coeff_v = 1.0
        if ratio_v > 1:
            coeff_v = 1 - math.tanh(alpha * ratio_v)
        else:
            coeff_a = 1 - math.tanh(alpha * ratio_a)
    return Z, {"a": coeff_a, "b": coeff_v}


def lopsided(n=128, seed=0, **kw):
    kw.setdefault("informativeness", [1.5, 0.2])
    return make_multimodal_classification(
        n, n_features=6, shared=1.0, random_state=seed, **kw
    )


def test_ogm_coefficients_match_the_official_formula():
    X, y = lopsided()
    clf = small_clf(
        module__head="linear", balancer=OGMGE(alpha=0.8), max_epochs=5, lr=0.01
    ).fit(X, y)
    Xt, yt = tensors(X, y)
    module, bal = clf.module_, clf.balancer_
    seen = set()
    for scale in (1.0, 0.05, 20.0):  # shift which modality dominates
        with torch.no_grad():
            module.head.weight[:, :8] *= scale
        Z, want = hand_ogm_two(module, Xt, yt, 0.8)
        got = bal.coefficients(Z, yt, module.head).tolist()
        np.testing.assert_allclose(got, [want["a"], want["b"]], rtol=1e-5)
        seen.add(min(want, key=want.get))
        assert max(want.values()) == 1.0 and min(want.values()) < 1.0
    assert seen == {"a", "b"}


def test_ogm_without_noise_scales_encoder_gradients_by_the_coefficient():
    X, y = lopsided()
    bal, plain = ogm_pair(X, y, OGMGE(alpha=0.6, noise=False))
    batch = tensors(X[:48], y[:48])
    _, coeff = hand_ogm_two(bal.module_, *batch, 0.6)
    assert min(coeff.values()) < 0.9
    g_bal, g_plain = one_step(bal, batch), one_step(plain, batch)
    for name, g in g_plain.items():
        m = name.split(".")[1] if name.startswith("encoders.") else None
        want = g * coeff[m] if m else g  # the head is never modulated
        torch.testing.assert_close(g_bal[name], want, rtol=1e-5, atol=1e-8)


def test_ogm_noise_has_the_original_gradient_std():
    X, y = lopsided()
    bal, plain = ogm_pair(X, y, OGMGE(alpha=0.6, noise=True))
    batch = tensors(X[:48], y[:48])
    _, coeff = hand_ogm_two(bal.module_, *batch, 0.6)
    g_bal, g_plain = one_step(bal, batch), one_step(plain, batch)
    for m in ("a", "b"):
        name = f"encoders.{m}.net.0.weight"  # 16 x 6
        noise = g_bal[name] - coeff[m] * g_plain[name]
        ratio = float(noise.std() / g_plain[name].std())
        assert 0.7 < ratio < 1.3, (m, ratio)
        assert abs(float(noise.mean())) < 0.4 * float(g_plain[name].std())
    torch.testing.assert_close(g_bal["head.weight"], g_plain["head.weight"])


def test_ogm_three_modalities_compare_with_the_mean_of_the_others():
    X, y = make_multimodal_classification(
        90,
        modalities=["a", "b", "c"],
        n_features=5,
        random_state=1,
        informativeness=[2.0, 0.5, 0.1],
    )
    clf = small_clf(
        module__head="linear", balancer=OGMGE(alpha=0.5), max_epochs=3, lr=0.01
    ).fit(X, y)
    assert sorted(clf.history[-1, "ogm_coefficients"]) == ["a", "b", "c"]
    module, Xt, yt = clf.module_, *tensors(X, y)
    with torch.no_grad():
        Z = module.encode(**Xt)
        W, b = module.head.weight, module.head.bias
        s = []
        for j, m in enumerate("abc"):
            out = Z[m] @ W[:, 8 * j : 8 * (j + 1)].T + b / 3
            s.append(float(F.softmax(out, 1)[torch.arange(len(yt)), yt].sum()))
    want = []
    for j in range(3):
        rho = s[j] / ((sum(s) - s[j]) / 2)
        want.append(1 - math.tanh(0.5 * rho) if rho > 1 else 1.0)
    got = clf.balancer_.coefficients(Z, yt, module.head).tolist()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert min(want) < 1.0


@pytest.mark.parametrize(
    "kw", [{"module__head": None}, {"module__head": "linear", "module__fusion": "sum"}]
)
def test_ogm_rejects_mlp_heads_and_sum_fusion(kw):
    X, y = lopsided(40)
    with pytest.raises(TypeError, match="OGMGE needs"):
        small_clf(balancer=OGMGE(), **kw).fit(X, y)


def test_ogm_start_and_end_epoch_respected():
    X, y = lopsided(96)
    kw = dict(module__head="linear", max_epochs=3, lr=0.01)
    plain = small_clf(**kw).fit(X, y)
    never = small_clf(balancer=OGMGE(start_epoch=3, end_epoch=9), **kw).fit(X, y)
    assert all_equal(weights(never.module_), weights(plain.module_))
    assert all("ogm_coefficients" not in row for row in never.history)
    mid = small_clf(balancer=OGMGE(start_epoch=1, end_epoch=1), **kw).fit(X, y)
    assert ["ogm_coefficients" in row for row in mid.history] == [False, True, False]
    # epoch 0 was not modulated: the same weights as the plain net after 1 epoch
    plain1 = small_clf(**dict(kw, max_epochs=1)).fit(X, y)
    mid1 = small_clf(
        balancer=OGMGE(start_epoch=1, end_epoch=1), **dict(kw, max_epochs=1)
    )
    assert all_equal(weights(mid1.fit(X, y).module_), weights(plain1.module_))
    assert any_changed(weights(mid.module_), weights(plain.module_))


def _encoder_vector(clf, m):
    return torch.cat(
        [p.detach().flatten() for p in clf.module_.encoders[m].parameters()]
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_ogm_slows_the_modulated_encoder_under_sgd_much_more_than_under_adam(seed):
    # Peng et al. (2022) train with SGD: the encoder's movement follows the
    # gradient's scale. Adam divides the gradient by its own running magnitude
    # and largely cancels the modulation. Measured over seeds 0-2 (alpha=1,
    # coefficient of 'a' ~0.08): movement ratio 0.32-0.33 (SGD), 0.94-1.0 (Adam).
    X, y = lopsided(256, seed=seed)
    ratios = {}
    for name, opt in {
        "sgd": dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05),
        "adam": dict(optimizer=torch.optim.Adam, lr=0.01),
    }.items():
        kw = dict(module__head="linear", random_state=seed, **opt)
        start = _encoder_vector(small_clf(max_epochs=0, **kw).fit(X, y), "a")
        moved = {}
        for alpha in (1.0, 0.0):  # alpha=0: coefficient 1, no modulation
            bal = OGMGE(alpha=alpha, noise=False, adaptive_optimizer="ignore")
            clf = small_clf(balancer=bal, max_epochs=5, **kw).fit(X, y)
            moved[alpha] = float((_encoder_vector(clf, "a") - start).norm())
            if alpha:
                coeff = clf.history[-1, "ogm_coefficients"]
                assert coeff["a"] < 0.2 and coeff["b"] == 1.0  # 'a' is modulated
        ratios[name] = moved[1.0] / moved[0.0]
    assert ratios["sgd"] < 0.5
    assert ratios["adam"] > 0.75
    assert ratios["adam"] > ratios["sgd"] + 0.35


def test_ogm_warns_once_per_fit_with_an_adaptive_optimizer():
    X, y = lopsided(64)
    kw = dict(module__head="linear", max_epochs=2)
    for opt in (
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.RMSprop,
        torch.optim.Adagrad,
    ):
        clf = small_clf(balancer=OGMGE(), optimizer=opt, **kw)
        with pytest.warns(UserWarning, match="adaptive optimizer") as record:
            clf.fit(X, y)
        assert len([w for w in record if "adaptive optimizer" in str(w.message)]) == 1
        assert opt.__name__ in str(record[0].message)
        with pytest.warns(UserWarning, match="SGD"):
            clf.partial_fit(X, y)  # once per fit or partial_fit
    sgd = dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_clf(balancer=OGMGE(), **sgd, **kw).fit(X, y)
        small_clf(balancer=OGMGE(adaptive_optimizer="ignore"), **kw).fit(X, y)
    with pytest.raises(ValueError, match="adaptive optimizer Adam"):
        small_clf(balancer=OGMGE(adaptive_optimizer="raise"), **kw).fit(X, y)
    small_clf(balancer=OGMGE(adaptive_optimizer="raise"), **sgd, **kw).fit(X, y)
    for bad in (
        dict(adaptive_optimizer="never"),
        dict(alpha=-1.0),
        dict(alpha="big"),
        dict(start_epoch=0.5),
        dict(noise="yes"),
    ):
        with pytest.raises(ValueError, match=list(bad)[0]):
            small_clf(balancer=OGMGE(**bad), **sgd, **kw).fit(X, y)


# ---------------------------------------------------------------------------
# 5. UtilizationTarget
# ---------------------------------------------------------------------------


def test_batch_utilization_matches_hand_computation():
    X, y = lopsided(40)
    clf = small_clf(max_epochs=3, lr=0.01).fit(X, y)
    module, (Xt, yt) = clf.module_, tensors(X, y)
    Z = module.encode(**Xt)
    logits = module.fuse(**Z)
    got = batch_utilization(
        module, Z, logits, yt, generator=torch.Generator().manual_seed(3)
    )
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        base = F.cross_entropy(logits, yt)
        mu = []
        for m in ("a", "b"):
            perm = torch.randperm(40, generator=gen)
            Zp = dict(Z)
            Zp[m] = Z[m][perm]
            mu.append(max(float(F.cross_entropy(module.fuse(**Zp), yt) - base), 0.0))
    want = [v / (sum(mu) + 1e-8) for v in mu]
    assert mu[0] > mu[1] > 0
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5)
    # differentiable with respect to the head
    module.zero_grad()
    got[0].backward()
    assert float(module.head[0].weight.grad.abs().sum()) > 0


def test_utilization_lambda_schedule_and_history(tab):
    X, y = tab
    bal = UtilizationTarget({"a": 0.5, "b": 0.5}, strength=2.0, warmup=3)
    want = [2.0 * min(1.0, math.exp(e - 3)) for e in range(6)]
    assert [bal.lambda_(e) for e in range(6)] == pytest.approx(want)
    assert want[:3] == pytest.approx(
        [2 * math.exp(-3), 2 * math.exp(-2), 2 * math.exp(-1)]
    )
    clf = small_clf(balancer=bal, max_epochs=4).fit(X, y)
    assert clf.history[:, "utilization_lambda"] == pytest.approx(want[:4])
    # batch_utilization is recorded for the epochs in which at least one batch had
    # a positive in-batch MU (a fresh network may have none); the epoch's value
    # is the mean over those batches, so its shares sum to 100
    shares = [h.get("batch_utilization") for h in clf.history]
    assert any(s is not None for s in shares)
    for s in shares:
        if s is not None:
            assert sorted(s) == ["a", "b"]
            assert sum(s.values()) == pytest.approx(100.0, abs=1e-3)  # eps in shares


def test_utilization_target_strength_zero_is_plain_training(tab):
    X, y = tab
    plain = small_clf(random_state=3).fit(X, y)
    zero = small_clf(
        balancer=UtilizationTarget({"a": 0.9, "b": 0.1}, strength=0.0), random_state=3
    ).fit(X, y)
    assert all_equal(weights(plain.module_), weights(zero.module_))


def test_utilization_target_freeze_encoders_trains_only_the_head(tab):
    X, y = tab
    init = small_clf(max_epochs=0).fit(X, y)
    clf = small_clf(
        balancer=UtilizationTarget(
            {"a": 0.3, "b": 0.7}, freeze_encoders=True, warmup=0
        ),
        max_epochs=3,
        lr=0.01,
    ).fit(X, y)
    assert all_equal(encoder_weights(clf), encoder_weights(init))
    assert any_changed(head_weights(clf), head_weights(init))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"measure_on": "test"}, "measure_on"),
        ({"measure_on": "valid"}, "validation_data"),
        ({"measure_on": "valid", "validation_data": ({"a": 1},)}, "validation_data"),
        ({"measure_on": "valid", "validation_data": [1, 2]}, "validation_data"),
    ],
)
def test_utilization_target_validates_measure_on(tab, kw, match):
    X, y = tab
    with pytest.raises(ValueError, match=match):
        small_clf(balancer=UtilizationTarget({"a": 0.5, "b": 0.5}, **kw)).fit(X, y)


def test_utilization_target_validation_data_must_match(tab):
    X, y = tab
    for data in [({"a": X["a"][:10]}, y[:10]), (X[:10], y[:9]), (X[:1], y[:1])]:
        bal = UtilizationTarget(
            {"a": 0.5, "b": 0.5}, measure_on="valid", validation_data=data
        )
        with pytest.raises(ValueError, match="validation_data"):
            small_clf(balancer=bal).fit(X, y)
    twin = clone(UtilizationTarget({"a": 1.0}, measure_on="valid"))
    assert twin.get_params()["measure_on"] == "valid"


def test_utilization_target_measure_on_valid_uses_validation_batches(tab):
    """The term is the in-batch utilization of random validation rows, pinned."""
    X, y = tab
    X_val, y_val = X[80:], y[80:] + 10  # labels of the estimator's classes
    target = {"a": 0.8, "b": 0.2}
    bal = UtilizationTarget(
        target,
        strength=2.0,
        warmup=0,
        freeze_encoders=True,
        measure_on="valid",
        validation_data=(X_val, y_val),
    )
    clf = small_clf(balancer=bal, max_epochs=1).fit(X[:80], y[:80] + 10)
    bal, module = clf.balancer_, clf.module_
    bal.epoch_started(clf, epoch=1, X=None, y=None)
    Xt, yt = tensors(X[:8], y[:8])
    bal.generator_ = torch.Generator().manual_seed(7)
    bal.forward(clf, X=Xt)
    got = bal.penalty(clf, X=Xt, y=yt, y_pred=torch.zeros(8, 3))
    # reference: 8 validation rows from the same stream, then the in-batch shares
    gen = torch.Generator().manual_seed(7)
    rows = torch.randperm(len(y_val), generator=gen)[:8]
    Xv = {
        m: torch.as_tensor(np.asarray(v), dtype=torch.float32) for m, v in X_val.items()
    }
    Z = {
        m: z.detach()
        for m, z in module.encode(**{m: v[rows] for m, v in Xv.items()}).items()
    }
    yv = torch.as_tensor(y_val - 10)[rows]
    shares = batch_utilization(module, Z, module.fuse(**Z), yv, generator=gen)
    want = 2.0 * (shares - torch.tensor([0.8, 0.2])).abs().sum()
    torch.testing.assert_close(got, want)
    # its gradient reaches the head only (frozen encoders)
    got.backward()
    assert all(p.grad is None for p in encoder_parameters(module, "a"))
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in module.head.parameters()
    )


def test_utilization_target_after_vanilla_pretraining_with_warm_start(tab):
    X, y = tab
    clf = small_clf(warm_start=True, max_epochs=2, lr=0.01).fit(X, y)
    enc, head = encoder_weights(clf), head_weights(clf)
    clf.set_params(
        balancer=UtilizationTarget({"a": 0.3, "b": 0.7}, freeze_encoders=True)
    )
    clf.fit(X, y)
    assert isinstance(clf.balancer_, UtilizationTarget)
    assert len(clf.history) == 4 and "batch_utilization" in clf.history[-1]
    assert all_equal(encoder_weights(clf), enc)
    assert any_changed(head_weights(clf), head)


def test_utilization_target_moves_utilization_toward_the_target():
    X, y = lopsided(200, informativeness=[1.5, 0.3])
    kw = dict(max_epochs=12, lr=0.01)
    target = {"a": 0.5, "b": 0.5}
    vanilla = small_clf(balancer=UtilizationTarget(target, strength=0.0), **kw)
    steered = small_clf(
        balancer=UtilizationTarget(target, strength=5.0, warmup=0), **kw
    )
    weak = {}
    for name, clf in (("vanilla", vanilla), ("steered", steered)):
        clf.fit(X, y)
        weak[name] = np.mean([h["b"] for h in clf.history[-4:, "batch_utilization"]])
    assert weak["vanilla"] < 20 and weak["steered"] > 30


@pytest.mark.parametrize(
    "target, match",
    [
        (None, "needs target"),
        ({"a": 0.5, "b": 0.4}, "sum to 1"),
        ({"a": 0.5, "b": 0.3, "c": 0.2}, "unknown modality 'c'"),
        ({"a": 1.0}, "missing modality 'b'"),
        ({"a": 1.5, "b": -0.5}, ">= 0"),
        ([0.5, 0.5], "'target' parameter .* must be an instance of 'dict'"),
    ],
)
@pytest.mark.parametrize("cls", [UtilizationTarget, AttributionRegularizer])
def test_target_validation_errors(tab, cls, target, match):
    X, y = tab
    err = TypeError if isinstance(target, list) else ValueError
    with pytest.raises(err, match=match):
        small_clf(balancer=cls(target), max_epochs=1).fit(X, y)


# ---------------------------------------------------------------------------
# 6. AttributionRegularizer
# ---------------------------------------------------------------------------


def test_attribution_regularizer_never_changes_the_encoders(tab):
    X, y = tab
    init = small_clf(max_epochs=0).fit(X, y)
    # the estimator's optimizer trains nothing (lr 0) -> nothing moves at all
    reg0 = AttributionRegularizer({"a": 0.8, "b": 0.2}, strength=1.0)
    clf0 = small_clf(balancer=reg0, lr=0.0, max_epochs=2).fit(X, y)
    assert all_equal(weights(clf0.module_), weights(init.module_))
    assert len(clf0.history[:, "batch_attribution"]) == 2


def test_attribution_regularizer_gradient_reaches_only_the_head():
    X, y = lopsided(64)
    common = dict(max_epochs=0, random_state=0)
    bal = small_clf(
        balancer=AttributionRegularizer({"a": 0.5, "b": 0.5}, strength=5.0), **common
    ).fit(X, y)
    plain = small_clf(**common).fit(X, y)
    batch = tensors(X[:32], y[:32])
    g_bal, g_plain = one_step(bal, batch), one_step(plain, batch)
    assert g_bal.keys() == g_plain.keys()
    enc = {n for n, _ in bal.module_.encoders.named_parameters(prefix="encoders")}
    changed = set()
    for name in g_plain:
        if name in enc:  # encoders: exactly the task gradient
            torch.testing.assert_close(g_bal[name], g_plain[name], rtol=1e-6, atol=0)
        elif not torch.allclose(g_bal[name], g_plain[name]):
            changed.add(name)
    assert changed and not (changed & enc)  # the head got the regularizer's gradient


def test_attribution_regularizer_moves_attribution_toward_the_target():
    X, y = lopsided(200, informativeness=[1.5, 0.3])
    kw = dict(max_epochs=12, lr=0.01)
    vanilla = small_clf(**kw).fit(X, y)
    reg = AttributionRegularizer({"a": 0.5, "b": 0.5}, strength=1.0)
    clf = small_clf(balancer=reg, **kw).fit(X, y)
    hist = [h["b"] for h in clf.history[:, "batch_attribution"]]
    first, last = hist[0], np.mean(hist[-3:])
    assert abs(last - 50) < abs(first - 50)
    expl = GradientModalityAttribution()
    weak_vanilla = expl.explain(vanilla, X, y).shares[1]
    weak_reg = expl.explain(clf, X, y).shares[1]
    assert abs(weak_reg - 50) < 5 < abs(weak_vanilla - 50) - 5


def test_attribution_regularizer_strength_matters():
    X, y = lopsided(200, informativeness=[1.5, 0.3])
    hist = {}
    for s in (0.01, 5.0):
        reg = AttributionRegularizer({"a": 0.5, "b": 0.5}, strength=s)
        clf = small_clf(balancer=reg, max_epochs=5, lr=0.01).fit(X, y)
        hist[s] = [h["b"] for h in clf.history[:, "batch_attribution"]]
    # a 500x weaker pull should leave the weak modality's share visibly lower
    assert np.mean(hist[0.01]) < np.mean(hist[5.0]) - 2


# ---------------------------------------------------------------------------
# 7. SampleValuation
# ---------------------------------------------------------------------------


def valuation_setup(n=6, **kw):
    """A fitted (0-epoch) net with a SampleValuation; row i of 'a' starts with i."""
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(n, 3)), "b": rng.normal(size=(n, 2))}
    X["a"][:, 0] = np.arange(n)
    y = np.arange(n) % 2
    clf = small_clf(balancer=SampleValuation(**kw), max_epochs=0).fit(X, y)
    return clf, *tensors(X, y)


@pytest.fixture
def fake_phi(monkeypatch):
    calls = []

    def install(phi_fn):
        def fake(self, net, X, y):
            # the whole-set X of a balancer is a row source (in memory here)
            calls.append(X.take(slice(0, len(X)), device=y.device))
            return phi_fn(len(y))

        monkeypatch.setattr(SampleValuation, "_values", fake)
        return calls

    return install


def test_valuation_sample_level_copies_follow_the_thresholds(fake_phi):
    phi = np.array(
        [
            [1.0, 0.4],  # 0 copies, 2 copies (0.4 is in (-0.1, 0.4])
            [0.41, -0.1],  # 1, 3
            [0.999, -0.0999],  # 1, 2
            [-0.5, 0.4001],  # 3, 1
            [2.0, 0.0],  # 0, 2
            [0.5, 1.5],  # 1, 0
        ]
    )
    copies = np.array([[0, 2], [1, 3], [1, 2], [3, 1], [0, 2], [1, 0]])
    calls = fake_phi(lambda n: phi)
    clf, Xt, yt = valuation_setup(warmup_epochs=1)
    bal = clf.balancer_
    assert bal.epoch_started(clf, epoch=0, X=Xt, y=yt) is None and not calls  # warm-up
    X_none, y_ep, rows, index = bal.epoch_started(clf, epoch=1, X=Xt, y=yt)
    # the epoch's rows by index (read from memory or the Dataset by the estimator)
    assert X_none is None
    X_ep = {m: Xt[m][torch.as_tensor(index)] for m in Xt}
    assert len(calls) == 1 and torch.equal(calls[0]["a"], Xt["a"])  # all samples
    n_extra = int(copies.sum())
    assert len(y_ep) == 6 + n_extra
    keep = rows[KEEP_ROWS]
    assert keep.shape == (6 + n_extra, 2)
    # the originals come first, unchanged, keeping every modality
    for m in Xt:
        assert torch.equal(X_ep[m][:6], Xt[m])
    assert torch.equal(y_ep[:6], yt) and bool((keep[:6] == 1).all())
    # every extra row is a copy of some sample i keeping exactly one modality j
    found = np.zeros_like(copies)
    for r in range(6, 6 + n_extra):
        i = int(X_ep["a"][r, 0])
        for m in Xt:
            assert torch.equal(X_ep[m][r], Xt[m][i])
        assert int(y_ep[r]) == int(yt[i])
        assert sorted(keep[r].tolist()) == [0.0, 1.0]
        found[i, int(keep[r].argmax())] += 1
    np.testing.assert_array_equal(found, copies)
    assert bal.counts_ == {"a": int(copies[:, 0].sum()), "b": int(copies[:, 1].sum())}
    assert bal.mean_phi_ == pytest.approx(dict(zip("ab", phi.mean(axis=0))))


def test_valuation_modality_level_adds_samples_for_the_larger_gap(fake_phi):
    calls = fake_phi(lambda n: np.tile([0.9, 0.2], (n, 1)))
    clf, Xt, yt = valuation_setup(n=50, level="modality", warmup_epochs=0, alpha=1.0)
    _, y_ep, rows, index = clf.balancer_.epoch_started(clf, epoch=0, X=Xt, y=yt)
    X_ep = {m: Xt[m][torch.as_tensor(index)] for m in Xt}
    sub = calls[0]["a"][:, 0].long()
    assert len(sub) == 10 and len(set(sub.tolist())) == 10  # a 20% subset, no repeats
    gap_a, gap_b = 1 - 0.9, 1 - 0.2
    n_extra = int(abs(gap_b - gap_a) * 2 / 3 * 1.0 * 50)
    assert n_extra == 23 and len(y_ep) == 50 + n_extra
    keep = rows[KEEP_ROWS][50:]
    assert bool((keep[:, 0] == 0).all()) and bool((keep[:, 1] == 1).all())
    src = X_ep["a"][50:, 0].long()
    assert torch.equal(y_ep[50:], yt[src]) and torch.equal(X_ep["b"][50:], Xt["b"][src])
    assert clf.balancer_.counts_ == {"a": 0, "b": 23}
    # alpha scales the number of extra samples
    clf2, Xt, yt = valuation_setup(n=50, level="modality", warmup_epochs=0, alpha=2.5)
    _, y_ep, _, _ = clf2.balancer_.epoch_started(clf2, epoch=0, X=Xt, y=yt)
    assert len(y_ep) == 50 + int(abs(gap_b - gap_a) * 2 / 3 * 2.5 * 50)


def test_valuation_forward_zeroes_exactly_the_other_modalities(monkeypatch):
    clf, Xt, yt = valuation_setup(n=4)
    module = clf.module_
    seen = {}
    fuse = module.fuse

    def spy(**Z):
        seen.update({m: z.detach().clone() for m, z in Z.items()})
        return fuse(**Z)

    monkeypatch.setattr(module, "fuse", spy)
    keep = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = clf.balancer_.forward(clf, X=Xt, rows={KEEP_ROWS: keep})
    with torch.no_grad():
        Z = module.encode(**Xt)
    assert out.shape == (4, 2)
    for j, m in enumerate(("a", "b")):
        for i in range(4):
            want = Z[m][i] * keep[i, j]
            torch.testing.assert_close(seen[m][i], want)
    assert bool((Z["b"][1] != 0).any()) and bool((Z["a"][2] != 0).any())
    # batches without the keep entry use the module's own forward
    assert clf.balancer_.forward(clf, X=Xt) is None  # no side information: own forward


def test_valuation_fit_records_history_after_warmup(fake_phi):
    calls = fake_phi(lambda n: np.tile([0.3, 1.2], (n, 1)))
    X, y = lopsided(40)
    clf = small_clf(balancer=SampleValuation(warmup_epochs=2), max_epochs=4).fit(X, y)
    assert len(calls) == 2
    rows = [
        ("valuation_extra_samples" in h, "valuation_mean_phi" in h) for h in clf.history
    ]
    assert rows == [(False, False)] * 2 + [(True, True)] * 2
    assert clf.history[-1, "valuation_extra_samples"] == {"a": 80, "b": 0}
    assert clf.history[-1, "valuation_mean_phi"] == pytest.approx({"a": 0.3, "b": 1.2})
    # the extra rows were trained on: 120 rows / batch 32 -> 4 batches
    assert clf.history[-1, "train_batch_count"] == 4
    assert clf.history[0, "train_batch_count"] == 2


def test_valuation_validates_params(tab):
    X, y = tab
    for kw, match in [
        ({"level": "feature"}, "level"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"alpha": -1.0}, "alpha"),
        ({"subset": 0.0}, "subset"),
    ]:
        with pytest.raises(ValueError, match=match):
            small_clf(balancer=SampleValuation(**kw), max_epochs=1).fit(X, y)


def test_valuation_with_the_real_shapley_values(tab):
    X, y = tab
    clf = small_clf(
        balancer=SampleValuation(warmup_epochs=1), max_epochs=2, lr=0.01
    ).fit(X, y)
    extra = clf.history[-1, "valuation_extra_samples"]
    mean_phi = clf.history[-1, "valuation_mean_phi"]
    assert sorted(extra) == ["a", "b"] and sum(extra.values()) > 0
    # Shapley efficiency with value |S| * correct and v(empty) = 0:
    # phi_a + phi_b = v(all) in {0, 2} per sample
    assert 0 < sum(mean_phi.values()) <= 2


# ---------------------------------------------------------------------------
# 8. Callbacks
# ---------------------------------------------------------------------------


def test_utilization_history_every_two_epochs(tab):
    from mmexplain.explainers import PermutationModalityImportance

    X, y = tab
    cb = UtilizationHistory(X=X, y=y, every=2)
    clf = small_clf(callbacks=[cb], max_epochs=4, lr=0.01).fit(X, y)
    assert ["utilization" in h for h in clf.history] == [False, True, False, True]
    for u in clf.history[:, "utilization"]:
        assert sorted(u) == ["a", "b"]
        assert sum(u.values()) == pytest.approx(100.0)
    # the last record is the default explainer run on the final model
    want = PermutationModalityImportance(n_repeats=3, random_state=0).explain(clf, X, y)
    got = clf.history[-1, "utilization"]
    np.testing.assert_allclose([got["a"], got["b"]], want.shares, rtol=1e-6)
    with pytest.raises(ValueError, match="every"):
        small_clf(callbacks=[UtilizationHistory(X=X, y=y, every=0)]).fit(X, y)
    with pytest.raises(ValueError, match="needs the data"):
        small_clf(callbacks=[UtilizationHistory()]).fit(X, y)


def test_conditional_learning_speed_callback_matches_hand_speeds(digits):
    from skorch.callbacks import Callback

    class HandSpeed(Callback):
        def on_train_begin(self, net, **kw):
            self.cum = {m: [0.0, 0.0] for m in ("color", "gray")}
            self.per_epoch = []

        def on_grad_computed(self, net, named_parameters, training=False, **kw):
            if training:
                for m, c in self.cum.items():
                    groups = net.module_.modality_parameters(m)
                    c[0] += _ratio(groups["main"])
                    c[1] += _ratio(groups["bypass"])

        def on_epoch_end(self, net, **kw):
            self.per_epoch.append(
                {m: math.log10(c[1] / c[0]) for m, c in self.cum.items()}
            )

    X, y = digits
    hand = HandSpeed()
    clf = mmtm_clf(callbacks=[ConditionalLearningSpeed(), hand], max_epochs=3).fit(X, y)
    speeds = clf.history[:, "learning_speed"]
    assert len(speeds) == 3 and len(clf.history[:, "d_speed"]) == 3
    for e, want in enumerate(hand.per_epoch):
        assert speeds[e] == pytest.approx(want, rel=1e-6)
        # float32 norms: a difference of two BDRs of about -2 each
        assert clf.history[e, "d_speed"] == pytest.approx(
            want["color"] - want["gray"], abs=1e-5
        )
    # the same meter drives GreedyBalancer: with an unreachable tolerance its
    # training (and its d_speed) is exactly the callback's
    greedy = mmtm_clf(
        balancer=GreedyBalancer(tolerance=1e9, warmup_epochs=0), max_epochs=3
    ).fit(X, y)
    assert greedy.history[:, "greedy_d_speed"] == pytest.approx(
        clf.history[:, "d_speed"]
    )
    assert all_equal(weights(greedy.module_), weights(clf.module_))


def test_conditional_learning_speed_needs_modality_parameters(tab):
    X, y = tab
    with pytest.raises(TypeError, match="modality_parameters"):
        small_clf(callbacks=[ConditionalLearningSpeed()], max_epochs=1).fit(X, y)


# ---------------------------------------------------------------------------
# 9. scikit-learn API and pickling
# ---------------------------------------------------------------------------

ALL_BALANCERS = [
    (ModalityDropout(p=0.2), "p", 0.4),
    (GreedyBalancer(tolerance=0.05), "tolerance", 0.5),
    (OGMGE(alpha=0.3), "alpha", 0.7),
    (AttributionRegularizer({"a": 0.5, "b": 0.5}), "strength", 2.0),
    (UtilizationTarget({"a": 0.5, "b": 0.5}), "warmup", 0),
    (SampleValuation(warmup_epochs=1), "level", "modality"),
]


@pytest.mark.parametrize(
    "balancer, name, value", ALL_BALANCERS, ids=lambda v: type(v).__name__
)
def test_nested_params_and_clone(balancer, name, value):
    clf = MultimodalClassifier(balancer=balancer, max_epochs=1)
    params = clf.get_params()
    assert params[f"balancer__{name}"] == getattr(balancer, name)
    assert params["balancer"] is balancer
    clf.set_params(**{f"balancer__{name}": value})
    assert getattr(clf.balancer, name) == value
    assert f"balancer__{name}" not in vars(clf)
    c2 = clone(clf)
    assert c2.balancer is not clf.balancer and type(c2.balancer) is type(balancer)
    assert c2.get_params()[f"balancer__{name}"] == value
    assert clone(balancer).get_params() == balancer.get_params()


def _fit_for_pickle(balancer):
    if isinstance(balancer, GreedyBalancer):
        X, y, _, _ = make_colored_digits(random_state=0)
        X, y = X[:48], y[:48]
        clf = mmtm_clf(balancer=clone(balancer).set_params(tolerance=0.0), max_epochs=2)
    else:
        X, y = lopsided(48)
        kw = {"module__head": "linear"} if isinstance(balancer, OGMGE) else {}
        clf = small_clf(balancer=clone(balancer), **kw)
    return clf.fit(X, y), X, y


@pytest.mark.parametrize(
    "balancer", [b for b, _, _ in ALL_BALANCERS], ids=lambda v: type(v).__name__
)
def test_pickle_fitted_estimator(balancer):
    clf, X, y = _fit_for_pickle(balancer)
    clf2 = pickle.loads(pickle.dumps(clf))
    assert type(clf2.balancer_) is type(balancer)
    assert clf2.balancer_.get_params() == clf.balancer_.get_params()
    np.testing.assert_allclose(clf2.predict_proba(X), clf.predict_proba(X))
    assert len(clf2.history) == len(clf.history)
    clf2.partial_fit(X, y)  # training goes on after unpickling
    assert len(clf2.history) == len(clf.history) + 2


def test_greedy_partial_fit_after_unpickling_matches_original(digits):
    X, y = digits
    clf = mmtm_clf(balancer=GreedyBalancer(tolerance=1e9), max_epochs=1).fit(X, y)
    clf2 = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)
    clf2.partial_fit(X, y)
    assert clf2.history[-1, "greedy_d_speed"] == pytest.approx(
        clf.history[-1, "greedy_d_speed"]
    )


def test_attribution_partial_fit_after_unpickling_continues_identically(tab):
    X, y = tab
    reg = AttributionRegularizer({"a": 0.5, "b": 0.5}, strength=2.0)
    clf = small_clf(balancer=reg, max_epochs=1).fit(X, y)
    clf2 = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)
    clf2.partial_fit(X, y)
    assert all_equal(weights(clf2.module_), weights(clf.module_))
    assert clf2.history[-1, "batch_attribution"] == pytest.approx(
        clf.history[-1, "batch_attribution"]
    )


def test_grid_search_over_greedy_tolerance(digits):
    X, y = digits
    gs = GridSearchCV(
        mmtm_clf(balancer=GreedyBalancer(), max_epochs=2),
        {"balancer__tolerance": [0.0, 1e9]},
        cv=2,
    ).fit(X, y)
    assert gs.best_params_["balancer__tolerance"] in (0.0, 1e9)
    assert (
        gs.best_estimator_.balancer_.tolerance == gs.best_params_["balancer__tolerance"]
    )
    steps = gs.best_estimator_.history[-1, "greedy_rebalance_steps"]
    assert (sum(steps.values()) == 0) == (gs.best_params_["balancer__tolerance"] == 1e9)


def test_grid_search_over_utilization_strength(tab):
    X, y = tab
    assert isinstance(X, ModalityDict)
    gs = GridSearchCV(
        small_clf(balancer=UtilizationTarget({"a": 0.5, "b": 0.5})),
        {"balancer__strength": [0.0, 3.0]},
        cv=2,
    ).fit(X, y)
    assert len(gs.cv_results_["mean_test_score"]) == 2
    best = gs.best_estimator_
    assert best.balancer_.strength == gs.best_params_["balancer__strength"]
    assert best.balancer.strength == gs.best_params_["balancer__strength"]
