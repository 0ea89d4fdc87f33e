"""The papers' steering claims, each checked over several seeds against a control.

Every claim is a paired comparison over ``SEEDS`` (each seed draws the data,
the split and the training run): the treatment must produce the effect on
every seed, and a *control* that differs from it only in the ingredient the
claim is about must not, so that a balancer whose mechanism is broken (or
removed) fails here. Each claim is a list of checks (``*_CHECKS``) whose
thresholds were stated before the runs on new seeds; benchmarks/claims_seeds.py
runs the same ``measure_*`` functions and checks on seeds 0-7. Only checks that
held on all eight are asserted here (on ``SEEDS``, for CI time); the
pre-registered checks that failed are kept as ``*_NOT_HELD`` and reported by
the script. The numbers (mean, sd and range over seeds 0-7, per-seed failures)
are in doc/reproduction.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from mmexplain import MMTMNet, MultimodalClassifier
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    GreedyBalancer,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.datasets import (
    add_gaussian_noise,
    load_multiple_features,
    make_colored_digits,
    make_multimodal_classification,
)
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    PermutationModalityImportance,
)

pytestmark = pytest.mark.slow

#: data, split and training seeds of every claim
SEEDS = (0, 1, 2)

Metrics = dict[str, dict[str, float]]


def over_seeds(measure: Callable[[int], Metrics]) -> dict[int, Metrics]:
    """``measure(seed)`` for every seed: {seed: {arm: {metric: value}}}."""
    return {seed: measure(seed) for seed in SEEDS}


def table(runs: dict[int, Metrics], metric: str) -> str:
    """Per arm: the metric on each seed and its mean +- sd (for failure messages)."""
    arms = next(iter(runs.values()))
    rows = []
    for arm in (a for a in arms if metric in arms[a]):
        values = np.array([runs[s][arm][metric] for s in runs])
        rows.append(
            f"{arm}: {np.round(values, 3).tolist()} "
            f"(mean {values.mean():.3f} +- {values.std(ddof=1):.3f})"
        )
    return f"{metric} over seeds {list(runs)}: " + "; ".join(rows)


def values(runs: dict[int, Metrics], arm: str, metric: str) -> np.ndarray:
    return np.array([runs[s][arm][metric] for s in runs])


def v(arm: str, metric: str) -> Callable[[dict[int, Metrics]], np.ndarray]:
    """``runs -> values of (arm, metric) per seed``, for writing checks."""
    return lambda runs: values(runs, arm, metric)


#: a pre-registered check: a label and ``runs -> bool per seed`` (or one bool
#: for a check on the mean over seeds)
Check = tuple[str, Callable[[dict[int, Metrics]], Any]]


def failing_seeds(
    runs: dict[int, Metrics], checks: list[Check]
) -> list[tuple[str, list[Any]]]:
    """Each check's label and the seeds on which it fails (``['mean']`` for a check
    on the mean that fails)."""
    out = []
    for label, check in checks:
        ok = np.asarray(check(runs))
        if ok.ndim == 0:
            out.append((label, [] if ok else ["mean"]))
        else:
            out.append((label, [s for s, good in zip(runs, ok) if not good]))
    return out


def assert_checks(
    runs: dict[int, Metrics], checks: list[Check], metrics: list[str]
) -> None:
    """Every check holds on every seed; the message lists the failures and tables."""
    failed = [(label, s) for label, s in failing_seeds(runs, checks) if s]
    msg = "\n".join(table(runs, m) for m in metrics)
    assert not failed, f"failed {failed}\n{msg}"


def branch_accuracy(clf: Any, X: Any, y: np.ndarray, branch: str) -> float:
    """Accuracy of one MMTMNet branch's own head."""
    net = clf.module_
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(**{k: torch.as_tensor(np.asarray(v)) for k, v in X.items()})
            pred = net.branch_logits[branch].argmax(1).numpy()
    finally:
        net.train(was_training)
    return float((pred == y).mean())


# ----------------------------------------------------------------------------
# Greedy learning (Wu et al., 2022)
# ----------------------------------------------------------------------------
def greedy_fit(X: Any, y: np.ndarray, seed: int, balancer: Any) -> Any:
    return MultimodalClassifier(
        MMTMNet,
        balancer=balancer,
        module__channels=(16, 32),
        max_epochs=GREEDY_EPOCHS,
        lr=3e-3,
        batch_size=GREEDY_BATCH,
        random_state=seed,
    ).fit(X, y)


GREEDY_EPOCHS, GREEDY_BATCH = 20, 64


def rebalanced(clf: Any) -> dict[str, int]:
    """Re-balancing steps per modality over the whole fit."""
    total: dict[str, int] = {}
    for row in clf.history:
        for m, k in row["greedy_rebalance_steps"].items():
            total[m] = total.get(m, 0) + k
    return total


def fixed_rate_like(guided: Any, n_samples: int, modality: str) -> GreedyBalancer:
    """Control: the guided run's number of ``modality`` re-balancing steps on a fixed
    schedule, without the speed signal (``mode='fixed'``)."""
    per_epoch = -(-n_samples // GREEDY_BATCH)
    # decisions after the warm-up: every step but the fit's last
    decided = (GREEDY_EPOCHS - guided.balancer_.warmup_epochs) * per_epoch - 1
    steps = rebalanced(guided)[modality]
    # floor(decided * rate) == steps, whatever the float rounding
    rate = min(1.0, (steps + 0.5) / decided)
    return GreedyBalancer(mode="fixed", rate=rate, modalities=[modality])


def greedy_arms(
    X: Any, y: np.ndarray, seed: int, window: int, fixed_rate: bool = True
) -> dict[str, Any]:
    """Fitted vanilla, guided and control runs on one seed.

    * ``no weak``: guided's trigger, but it may only re-balance colour, so it
      never re-balances the weak modality (gray, the one guided re-balances);
    * ``fixed rate``: as many gray re-balancing steps as guided took on this
      seed, evenly spread, with no speed signal.
    """
    fits = {"vanilla": greedy_fit(X, y, seed, None)}
    fits["guided"] = greedy_fit(X, y, seed, GreedyBalancer(window=window))
    fits["no weak"] = greedy_fit(
        X, y, seed, GreedyBalancer(window=window, modalities=["color"])
    )
    if fixed_rate:  # benchmarks/claims_seeds.py; the test leaves it out (CI time)
        fits["fixed rate"] = greedy_fit(
            X, y, seed, fixed_rate_like(fits["guided"], len(y), "gray")
        )
    return fits


def measure_greedy_accuracy(seed: int, fixed_rate: bool = True) -> Metrics:
    """Colour matches the label for 90% of training digits, ~10% in validation."""
    X, y, Xv, yv = make_colored_digits(random_state=seed, train_correlation=0.9)
    # held-out digits drawn like the training split, for d_util (reported only)
    X_iid, y_iid = make_colored_digits(
        random_state=seed, train_correlation=0.9, val_correlation=0.9
    )[2:]
    cu = ConditionalUtilization(reference=X)
    fits = greedy_arms(X, y, seed, window=5, fixed_rate=fixed_rate)
    fits["random"] = greedy_fit(X, y, seed, GreedyBalancer(mode="random"))
    out: Metrics = {}
    for arm, clf in fits.items():
        out[arm] = {
            "accuracy": clf.score(Xv, yv),
            "gray head": branch_accuracy(clf, Xv, yv, "gray"),
            "|d_util|": abs(cu.explain(clf, X_iid, y_iid).d_util),
        }
        if clf.balancer is not None:
            steps = rebalanced(clf)
            out[arm].update({f"steps {m}": float(k) for m, k in steps.items()})
    return out


#: stated before the runs on seeds 0-7 (the controls are new; the thresholds of the
#: claims kept from the earlier test are unchanged)
GREEDY_ACCURACY_CHECKS: list[Check] = [
    # the colour branch learns faster: guided re-balances gray (its BDR is larger)
    ("guided re-balances gray", lambda r: v("guided", "steps gray")(r) > 0),
    ("guided: <= 10 colour steps", lambda r: v("guided", "steps color")(r) <= 10),
    # the controls lack exactly their ingredient
    ("no weak: 0 gray steps", lambda r: v("no weak", "steps gray")(r) == 0),
    # treatment: much better validation accuracy on every seed
    (
        "accuracy: guided >= vanilla + 0.1",
        lambda r: v("guided", "accuracy")(r) >= v("vanilla", "accuracy")(r) + 0.1,
    ),
    # control: never re-balancing the weak modality does not help
    (
        "accuracy: no weak <= vanilla + 0.05",
        lambda r: v("no weak", "accuracy")(r) <= v("vanilla", "accuracy")(r) + 0.05,
    ),
    (
        "accuracy: guided >= no weak + 0.1",
        lambda r: v("guided", "accuracy")(r) >= v("no weak", "accuracy")(r) + 0.1,
    ),
    # random re-balancing (both modalities) sits between vanilla and guided
    (
        "accuracy: random > vanilla",
        lambda r: v("random", "accuracy")(r) > v("vanilla", "accuracy")(r),
    ),
    (
        "accuracy: random < guided",
        lambda r: v("random", "accuracy")(r) < v("guided", "accuracy")(r),
    ),
    # the gray branch learns from its own input when re-balanced
    (
        "gray head: guided > vanilla + 0.1",
        lambda r: v("guided", "gray head")(r) > v("vanilla", "gray head")(r) + 0.1,
    ),
]

#: pre-registered with the checks above, measured on seeds 0-7 by
#: benchmarks/claims_seeds.py; **did not hold** (doc/reproduction.md), so not
#: asserted: guided is no better than the same number of re-balancing steps
#: on a fixed schedule
FIXED_RATE_STEPS: Check = (
    "fixed rate: as many gray steps as guided",
    lambda r: v("fixed rate", "steps gray")(r) == v("guided", "steps gray")(r),
)
GREEDY_ACCURACY_NOT_HELD: list[Check] = [
    FIXED_RATE_STEPS,
    (
        "guidance matters: accuracy guided >= fixed rate + 0.03",
        lambda r: v("guided", "accuracy")(r) >= v("fixed rate", "accuracy")(r) + 0.03,
    ),
]


def measure_greedy_d_util(seed: int, fixed_rate: bool = True) -> Metrics:
    """Colour determines the label in training (``train_correlation=1``).

    ``d_util`` is measured on held-out digits drawn like the training split
    (colour still predictive; otherwise every head is at chance and the rates
    are noise), with the squeeze averages over the training split; the gray
    head's accuracy on the decorrelated validation split.
    """
    X, y, Xv, yv = make_colored_digits(random_state=seed)
    X_iid = make_colored_digits(random_state=seed, val_correlation=1.0)[2]
    cu = ConditionalUtilization(reference=X)  # the paper's training-split average
    out: Metrics = {}
    for arm, clf in greedy_arms(X, y, seed, 20, fixed_rate).items():
        expl = cu.explain(clf, X_iid, yv)
        out[arm] = {
            "|d_util|": abs(expl.d_util),
            "u(color | gray)": float(expl.rates[0]),
            "gray head": branch_accuracy(clf, Xv, yv, "gray"),
            "accuracy": clf.score(Xv, yv),
        }
        if clf.balancer is not None:
            steps = rebalanced(clf)
            out[arm].update({f"steps {m}": float(k) for m, k in steps.items()})
    return out


GREEDY_D_UTIL_CHECKS: list[Check] = [
    # vanilla: the gray head's accuracy comes from colour (through the gates)
    ("vanilla |d_util| > 0.5", lambda r: v("vanilla", "|d_util|")(r) > 0.5),
    # treatment: guided re-balancing cuts the imbalance at least in half
    (
        "|d_util|: guided < 0.5 vanilla",
        lambda r: v("guided", "|d_util|")(r) < 0.5 * v("vanilla", "|d_util|")(r),
    ),
    # control: never re-balancing gray keeps it
    (
        "|d_util|: no weak > 0.8 vanilla",
        lambda r: v("no weak", "|d_util|")(r) > 0.8 * v("vanilla", "|d_util|")(r),
    ),
    # the gray head goes from chance to reading digits; not with the control
    (
        "gray head: guided > vanilla + 0.3",
        lambda r: v("guided", "gray head")(r) > v("vanilla", "gray head")(r) + 0.3,
    ),
    (
        "gray head: no weak < vanilla + 0.05",
        lambda r: v("no weak", "gray head")(r) < v("vanilla", "gray head")(r) + 0.05,
    ),
]

#: pre-registered, did not hold on seeds 0-7 (see GREEDY_ACCURACY_NOT_HELD)
GREEDY_D_UTIL_NOT_HELD: list[Check] = [
    FIXED_RATE_STEPS,
    (
        "guidance matters: |d_util| guided <= 0.8 fixed rate",
        lambda r: v("guided", "|d_util|")(r) <= 0.8 * v("fixed rate", "|d_util|")(r),
    ),
    (
        "guidance matters: gray head guided >= fixed rate + 0.05",
        lambda r: v("guided", "gray head")(r) >= v("fixed rate", "gray head")(r) + 0.05,
    ),
]


def test_greedy_guided_beats_vanilla_and_never_rebalancing_gray_does_not():
    runs = over_seeds(partial(measure_greedy_accuracy, fixed_rate=False))
    assert_checks(runs, GREEDY_ACCURACY_CHECKS, ["accuracy", "gray head"])


def test_greedy_guided_lowers_d_util_when_colour_is_perfectly_predictive():
    runs = over_seeds(partial(measure_greedy_d_util, fixed_rate=False))
    assert_checks(runs, GREEDY_D_UTIL_CHECKS, ["|d_util|", "gray head"])


# ----------------------------------------------------------------------------
# Utilization targets (Singh et al., 2024), frozen encoders as in the paper
# ----------------------------------------------------------------------------
TARGETS = (0.25, 0.5, 0.75)


def measure_utilization_target(seed: int) -> Metrics:
    """Pre-train (vanilla), then train the fusion head only towards each target.

    Two modalities with the same evidence, 'a' twice as informative as 'b'.
    The control continues training in the same way with the target term
    switched off (``strength=0``).
    """
    X, y = make_multimodal_classification(
        2000,
        modalities=["a", "b"],
        informativeness=[1.0, 0.5],
        n_features=[10, 10],
        shared=1.0,
        noise=0.5,
        random_state=seed,
    )
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    pre = MultimodalClassifier(
        max_epochs=30, lr=3e-3, random_state=seed, module__embedding_dim=16
    ).fit(Xtr, ytr)
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    noisy = add_gaussian_noise(Xte, "a", 2.0, random_state=0)

    def shares(clf: Any) -> dict[str, float]:
        return {
            "MU a train": float(pmi.explain(clf, Xtr, ytr).utilization[0]),
            "MU a test": float(pmi.explain(clf, Xte, yte).utilization[0]),
            "accuracy": clf.score(Xte, yte),
            # Gaussian noise of variance 2 on 'a' (reported only)
            "noisy accuracy": clf.score(noisy, yte),
        }

    out: Metrics = {"vanilla": shares(pre)}
    arms = [(f"target {t:.2f}", t, 3.0) for t in TARGETS] + [("control", 0.25, 0.0)]
    for arm, target, strength in arms:
        clf = copy.deepcopy(pre)
        clf.set_params(
            warm_start=True,
            max_epochs=20,
            balancer=UtilizationTarget(
                {"a": target, "b": 1 - target},
                strength=strength,
                warmup=2,
                freeze_encoders=True,
            ),
        )
        clf.fit(Xtr, ytr)
        out[arm] = shares(clf)
    return out


def _within_10_on_train(t: float) -> Check:
    return (
        f"|train MU a - {100 * t:.0f}| <= 10 (target {t:.2f})",
        lambda r: np.abs(v(f"target {t:.2f}", "MU a train")(r) - 100 * t) <= 10,
    )


#: thresholds stated before the runs on seeds 3-7 (they were set on seeds 0-2)
UTILIZATION_TARGET_CHECKS: list[Check] = [
    # lopsided to begin with
    ("vanilla held-out MU a > 80", lambda r: v("vanilla", "MU a test")(r) > 80),
    # treatment: the measured (whole-set) MU is within +-10 points of the target
    # (0.50 did not hold on seeds 0-7: UTILIZATION_TARGET_NOT_HELD)
    *[_within_10_on_train(t) for t in (0.25, 0.75)],
    # held out, the order of the targets is kept and all are below vanilla
    *[
        (
            f"held-out MU a: target {lo} < target {hi}",
            lambda r, lo=lo, hi=hi: (
                v(f"target {lo}", "MU a test")(r) < v(f"target {hi}", "MU a test")(r)
            ),
        )
        for lo, hi in (("0.25", "0.50"), ("0.50", "0.75"))
    ],
    (
        "held-out MU a: target 0.75 < vanilla",
        lambda r: v("target 0.75", "MU a test")(r) < v("vanilla", "MU a test")(r),
    ),
    # control: the same head-only training without the target term stays lopsided
    (
        "control: |train MU a - 25| > 40",
        lambda r: np.abs(v("control", "MU a train")(r) - 25) > 40,
    ),
    (
        "control: |train MU a - vanilla| < 5",
        lambda r: (
            np.abs(v("control", "MU a train")(r) - v("vanilla", "MU a train")(r)) < 5
        ),
    ),
]


#: pre-registered, failed on seed 4 of 0-7 (doc/reproduction.md): not asserted
UTILIZATION_TARGET_NOT_HELD: list[Check] = [_within_10_on_train(0.5)]


def test_utilization_target_reaches_targets_with_frozen_encoders():
    runs = over_seeds(measure_utilization_target)
    assert_checks(runs, UTILIZATION_TARGET_CHECKS, ["MU a train", "MU a test"])


# ----------------------------------------------------------------------------
# Attribution regularization (Yerramilli et al.)
# ----------------------------------------------------------------------------
def measure_attribution_regularizer(seed: int) -> Metrics:
    """UCI Multiple Features, pixel + morphological; MU reported next to attribution."""
    X, y = load_multiple_features(modalities=["pixel", "morphological"])
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    kw = dict(max_epochs=30, lr=3e-3, random_state=seed, module__embedding_dim=16)
    arms = {
        "vanilla": None,  # the same as strength=0 (measured: identical weights)
        "AMR": AttributionRegularizer(
            {"pixel": 0.5, "morphological": 0.5}, strength=3.0
        ),
    }
    attr = GradientModalityAttribution()
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    out: Metrics = {}
    for arm, balancer in arms.items():
        clf = MultimodalClassifier(balancer=balancer, **kw).fit(Xtr, ytr)
        out[arm] = {
            "attribution pixel": float(attr.explain(clf, Xte).shares[0]),
            "MU pixel": float(pmi.explain(clf, Xte, yte).utilization[0]),
            "accuracy": clf.score(Xte, yte),
        }
    return out


def _moved(metric: str) -> Callable[[dict[int, Metrics]], float]:
    """Mean over seeds of |AMR - vanilla| for ``metric``."""
    return lambda r: float(np.abs(v("AMR", metric)(r) - v("vanilla", metric)(r)).mean())


ATTRIBUTION_CHECKS: list[Check] = [
    # control (no regularizer): far from 50/50
    (
        "vanilla: |attribution pixel - 50| > 10",
        lambda r: np.abs(v("vanilla", "attribution pixel")(r) - 50) > 10,
    ),
    (
        "vanilla: mean |attribution pixel - 50| > 15",
        lambda r: np.abs(v("vanilla", "attribution pixel")(r) - 50).mean() > 15,
    ),
    # treatment: 50/50 on every seed, accuracy kept
    (
        "AMR: |attribution pixel - 50| < 5",
        lambda r: np.abs(v("AMR", "attribution pixel")(r) - 50) < 5,
    ),
    (
        "AMR accuracy >= vanilla - 0.015",
        lambda r: v("AMR", "accuracy")(r) >= v("vanilla", "accuracy")(r) - 0.015,
    ),
    # permutation MU moves far less than the attribution ratio: AMR balances
    # attributions, not what permutation utilization measures
    (
        "mean |moved MU| < 0.5 mean |moved attribution|",
        lambda r: _moved("MU pixel")(r) < 0.5 * _moved("attribution pixel")(r),
    ),
]


def test_attribution_regularizer_moves_the_attribution_ratio_with_accuracy_kept():
    runs = over_seeds(measure_attribution_regularizer)
    assert_checks(
        runs, ATTRIBUTION_CHECKS, ["attribution pixel", "MU pixel", "accuracy"]
    )


# ----------------------------------------------------------------------------
# OGM-GE (Peng et al., 2022), with SGD as in the paper
# ----------------------------------------------------------------------------
def measure_ogm_ge(seed: int) -> Metrics:
    """Complementary evidence ('a' twice as informative), SGD with momentum 0.9.

    The control keeps the GE noise and switches the modulation off
    (``alpha=0``: every coefficient is 1).
    """
    X, y = make_multimodal_classification(
        2000,
        modalities=["a", "b"],
        informativeness=[1.0, 0.5],
        n_features=[10, 10],
        shared=0.0,
        noise=0.5,
        random_state=seed,
    )
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    kw = dict(
        max_epochs=30,
        optimizer=torch.optim.SGD,
        optimizer__momentum=0.9,
        lr=0.01,
        random_state=seed,
        module__embedding_dim=16,
        module__head="linear",
    )
    arms = {"vanilla": None, "OGM-GE": OGMGE(alpha=2.0), "control": OGMGE(alpha=0.0)}
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    cu = ConditionalUtilization(ablation="mean", reference=Xtr)
    out: Metrics = {}
    for arm, balancer in arms.items():
        clf = MultimodalClassifier(balancer=balancer, **kw).fit(Xtr, ytr)
        out[arm] = {
            "share a": float(pmi.explain(clf, Xte, yte).utilization[0]),
            # accuracy with 'a' replaced by its mean: 'b' alone
            "uni-modal b": float(cu.explain(clf, Xte, yte).score_without[0]),
            "accuracy": clf.score(Xte, yte),
        }
        if balancer is not None:
            out[arm]["coefficient a"] = clf.history[-1, "ogm_coefficients"]["a"]
    return out


OGM_GE_CHECKS: list[Check] = [
    # 'a' dominates
    ("OGM-GE coefficient a < 0.1", lambda r: v("OGM-GE", "coefficient a")(r) < 0.1),
    # treatment: the dominant modality's share falls on every seed (by ~1 point:
    # the effect is small here, and accuracy does not improve; doc/methods.md)
    (
        "share a: OGM-GE < control - 0.25",
        lambda r: v("OGM-GE", "share a")(r) < v("control", "share a")(r) - 0.25,
    ),
    (
        "share a: mean(control - OGM-GE) > 0.5",
        lambda r: (v("control", "share a")(r) - v("OGM-GE", "share a")(r)).mean() > 0.5,
    ),
    # control: the GE noise alone does not move the shares
    (
        "share a: |control - vanilla| < 0.5",
        lambda r: np.abs(v("control", "share a")(r) - v("vanilla", "share a")(r)) < 0.5,
    ),
]


def test_ogm_ge_shifts_use_towards_the_weak_modality_under_sgd():
    runs = over_seeds(measure_ogm_ge)
    assert_checks(runs, OGM_GE_CHECKS, ["share a", "coefficient a"])


# ----------------------------------------------------------------------------
# Sample-level modality valuation (Wei et al., 2024)
# ----------------------------------------------------------------------------
class RecordingValuation(SampleValuation):
    """SampleValuation keeping the Shapley values of its last valuation."""

    def _values(self, net: Any, X: Any, y: Any) -> np.ndarray:
        self.last_phi_ = super()._values(net, X, y)
        return self.last_phi_


class CopiesTrainEveryModality(RecordingValuation):
    """Control: the same valuation and copies, but a copy trains every modality."""

    def forward(self, net: Any, *, X: Any, rows: Any = None, **kwargs: Any) -> Any:
        return super().forward(net, X=X, rows=None, **kwargs)


def paper_copies(phi: np.ndarray) -> np.ndarray:
    """Extra copies per sample and modality (Wei et al., 2024): 3, 2, 1 or 0."""
    return np.select([phi <= -0.1, phi <= 0.4, phi < 1.0], [3, 2, 1], 0)


def measure_sample_valuation(seed: int) -> Metrics:
    """Colored digits (``train_correlation=0.9``), late fusion with a linear head."""
    X, y, Xv, yv = make_colored_digits(random_state=seed, train_correlation=0.9)
    kw = dict(
        max_epochs=30,
        lr=3e-3,
        random_state=seed,
        module__head="linear",
        module__embedding_dim=32,
    )
    arms = {
        "vanilla": None,
        "valuation": RecordingValuation(warmup_epochs=5),
        "unmasked copies": CopiesTrainEveryModality(warmup_epochs=5),
    }
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    cu = ConditionalUtilization(ablation="zeros")
    out: Metrics = {}
    for arm, balancer in arms.items():
        clf = MultimodalClassifier(balancer=balancer, **kw).fit(X, y)
        out[arm] = {
            "share gray": float(pmi.explain(clf, Xv, yv).utilization[1]),
            # accuracy with the gray embedding zeroed: colour alone
            "uni-modal color": float(cu.explain(clf, Xv, yv).score_without[1]),
            "accuracy": clf.score(Xv, yv),
        }
        if balancer is not None:
            extra = clf.history[-1, "valuation_extra_samples"]
            phi = clf.balancer_.last_phi_  # the last epoch's values, (N, M)
            want = paper_copies(phi).sum(axis=0)
            got = [extra[m] for m in clf.balancer_.modalities_]
            out[arm].update(
                {
                    "extra color": extra["color"],
                    "sum mean phi": float(phi.mean(axis=0).sum()),
                    "copies follow the thresholds": float(np.array_equal(want, got)),
                }
            )
    return out


SAMPLE_VALUATION_CHECKS: list[Check] = [
    # the paper's value v(S) = |S| 1[correct]: phi sums to 2 x correct (efficiency),
    # and the copies follow the paper's thresholds on those values
    ("sum mean phi > 1.5", lambda r: v("valuation", "sum mean phi")(r) > 1.5),
    (
        "copies follow the thresholds",
        lambda r: v("valuation", "copies follow the thresholds")(r) == 1,
    ),
    ("extra color > 0", lambda r: v("valuation", "extra color")(r) > 0),
    # treatment: the colour encoder learns digit shape (colour alone reads digits)
    (
        "uni-modal color: valuation > vanilla + 0.08",
        lambda r: (
            v("valuation", "uni-modal color")(r)
            > v("vanilla", "uni-modal color")(r) + 0.08
        ),
    ),
    # control: copies that train both modalities do not teach the colour encoder
    (
        "uni-modal color: unmasked copies < vanilla + 0.05",
        lambda r: (
            v("unmasked copies", "uni-modal color")(r)
            < v("vanilla", "uni-modal color")(r) + 0.05
        ),
    ),
    (
        "accuracy: valuation > vanilla + 0.03",
        lambda r: v("valuation", "accuracy")(r) > v("vanilla", "accuracy")(r) + 0.03,
    ),
    (
        "accuracy: valuation > unmasked copies",
        lambda r: v("valuation", "accuracy")(r) > v("unmasked copies", "accuracy")(r),
    ),
    (
        "share gray: valuation < vanilla",
        lambda r: v("valuation", "share gray")(r) < v("vanilla", "share gray")(r),
    ),
]


def test_sample_valuation_lifts_the_weak_modality_only_through_its_own_copies():
    runs = over_seeds(measure_sample_valuation)
    assert_checks(
        runs, SAMPLE_VALUATION_CHECKS, ["uni-modal color", "accuracy", "share gray"]
    )


#: claim name -> (measure(seed), checks asserted here, pre-registered checks that
#: did not hold on seeds 0-7); benchmarks/claims_seeds.py runs them on more seeds
CLAIMS: dict[str, tuple[Callable[[int], Metrics], list[Check], list[Check]]] = {
    "greedy_accuracy": (
        measure_greedy_accuracy,
        GREEDY_ACCURACY_CHECKS,
        GREEDY_ACCURACY_NOT_HELD,
    ),
    "greedy_d_util": (
        measure_greedy_d_util,
        GREEDY_D_UTIL_CHECKS,
        GREEDY_D_UTIL_NOT_HELD,
    ),
    "utilization_target": (
        measure_utilization_target,
        UTILIZATION_TARGET_CHECKS,
        UTILIZATION_TARGET_NOT_HELD,
    ),
    "attribution": (measure_attribution_regularizer, ATTRIBUTION_CHECKS, []),
    "ogm_ge": (measure_ogm_ge, OGM_GE_CHECKS, []),
    "sample_valuation": (measure_sample_valuation, SAMPLE_VALUATION_CHECKS, []),
}
