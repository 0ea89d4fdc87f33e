"""The papers' steering claims, checked on small embedded data (issue 4).

Each test trains small models in the setting where the claim was measured to
hold (numbers in comments were measured on the 2-core CPU machine, torch
2.13). Claims that did not reproduce are reported in doc/methods.md
("Reproduction notes") rather than tested.
"""

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


def branch_accuracy(clf, X, y, branch):
    """Validation accuracy of one MMTMNet branch head."""
    net = clf.module_
    net.eval()
    with torch.no_grad():
        net(**{k: torch.as_tensor(v) for k, v in X.items()})
        return float((net.branch_logits[branch].argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def colored_digits_09():
    # colour matches the label for 90% of training digits, ~10% in validation
    return make_colored_digits(random_state=0, train_correlation=0.9)


def test_greedy_guided_beats_vanilla_and_random_sits_between(colored_digits_09):
    X, y, Xv, yv = colored_digits_09
    kw = dict(
        module__channels=(16, 32), max_epochs=40, lr=3e-3, batch_size=64, random_state=0
    )
    fits = {
        name: MultimodalClassifier(MMTMNet, balancer=bal, **kw).fit(X, y)
        for name, bal in [
            ("vanilla", None),
            ("guided", GreedyBalancer(tolerance=0.1, window=5)),
            ("random", GreedyBalancer(mode="random")),
        ]
    }
    acc = {k: v.score(Xv, yv) for k, v in fits.items()}
    # measured (mean of seeds 0, 1): vanilla 0.71, guided 0.86, random 0.81
    assert acc["guided"] >= acc["vanilla"] + 0.08
    assert acc["vanilla"] - 0.02 <= acc["random"] <= acc["guided"] + 0.02
    # the gray branch learns from its own input when re-balanced
    assert branch_accuracy(fits["guided"], Xv, yv, "gray") > branch_accuracy(
        fits["vanilla"], Xv, yv, "gray"
    )
    assert sum(fits["guided"].history[-1, "greedy_rebalance_steps"].values()) > 0


def test_greedy_guided_lowers_d_util_when_colour_is_perfectly_predictive():
    X, y, Xv, yv = make_colored_digits(random_state=0)  # train_correlation=1.0
    kw = dict(
        module__channels=(16, 32), max_epochs=40, lr=3e-3, batch_size=64, random_state=0
    )
    vanilla = MultimodalClassifier(MMTMNet, **kw).fit(X, y)
    guided = MultimodalClassifier(
        MMTMNet, balancer=GreedyBalancer(window=20), **kw
    ).fit(X, y)
    cu = ConditionalUtilization()
    d_vanilla = abs(cu.explain(vanilla, Xv, yv).d_util)
    d_guided = abs(cu.explain(guided, Xv, yv).d_util)
    # measured: 0.76 -> 0.07 (seeds 0, 1); the gray head goes from chance to ~0.8
    assert d_guided < 0.6 * d_vanilla
    assert (
        branch_accuracy(guided, Xv, yv, "gray")
        > branch_accuracy(vanilla, Xv, yv, "gray") + 0.3
    )


@pytest.fixture(scope="module")
def lopsided():
    X, y = make_multimodal_classification(
        2000,
        modalities=["a", "b"],
        informativeness=[1.0, 0.5],
        n_features=[10, 10],
        shared=1.0,
        noise=0.5,
        random_state=0,
    )
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)


def test_utilization_target_reaches_targets(lopsided):
    Xtr, Xte, ytr, yte = lopsided
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    kw = dict(max_epochs=30, lr=3e-3, random_state=0, module__embedding_dim=16)
    vanilla = MultimodalClassifier(**kw).fit(Xtr, ytr)
    u_vanilla = pmi.explain(vanilla, Xte, yte).utilization[0]
    assert u_vanilla > 85  # lopsided: measured 92.7% for 'a'
    test_shares = []
    models = {}
    for target in (0.25, 0.5, 0.75):
        clf = MultimodalClassifier(
            balancer=UtilizationTarget(
                {"a": target, "b": 1 - target}, strength=3.0, warmup=3
            ),
            **kw,
        ).fit(Xtr, ytr)
        models[target] = clf
        # on the training data the measured (whole-set) utilization is within +-10 points
        u_train = pmi.explain(clf, Xtr, ytr).utilization[0]
        assert abs(u_train - 100 * target) <= 10, (target, u_train)
        test_shares.append(pmi.explain(clf, Xte, yte).utilization[0])
    # held out, the order of the targets is kept and all are below vanilla
    assert test_shares[0] < test_shares[1] < test_shares[2] < u_vanilla
    # under strong noise on the dominant modality, the balanced model keeps more accuracy
    noisy = add_gaussian_noise(Xte, "a", 2.0, random_state=0)
    assert models[0.25].score(noisy, yte) > vanilla.score(noisy, yte) + 0.02


def test_attribution_regularizer_moves_ratio_with_accuracy_kept():
    X, y = load_multiple_features(modalities=["pixel", "morphological"])
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    kw = dict(max_epochs=30, lr=3e-3, random_state=0, module__embedding_dim=16)
    vanilla = MultimodalClassifier(**kw).fit(Xtr, ytr)
    amr = MultimodalClassifier(
        balancer=AttributionRegularizer(
            {"pixel": 0.5, "morphological": 0.5}, strength=3.0
        ),
        **kw,
    ).fit(Xtr, ytr)
    attr = GradientModalityAttribution()
    s_vanilla = attr.explain(vanilla, Xte).shares[0]
    s_amr = attr.explain(amr, Xte).shares[0]
    # measured: pixel share 26.8% -> 49.5%; accuracy 0.945 -> 0.945 (strength 1: 41.6%)
    assert abs(s_vanilla - 50) > 15
    assert abs(s_amr - 50) < 5
    assert amr.score(Xte, yte) >= vanilla.score(Xte, yte) - 0.015


@pytest.mark.xfail(
    reason="seed-fragile single-seed claim (fails for training seeds 1 and 2, and for "
    "the named seed streams): replaced by a multi-seed test with a control",
    strict=False,
)
def test_ogm_ge_lowers_dominant_share_and_lifts_weak_modality():
    X, y = make_multimodal_classification(
        2000,
        modalities=["a", "b"],
        informativeness=[1.0, 0.5],
        n_features=[10, 10],
        shared=0.0,  # complementary evidence: both modalities are needed
        noise=0.5,
        random_state=0,
    )
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    kw = dict(
        max_epochs=30,
        lr=3e-3,
        random_state=0,
        module__embedding_dim=16,
        module__head="linear",
    )
    vanilla = MultimodalClassifier(**kw).fit(Xtr, ytr)
    ogm = MultimodalClassifier(balancer=OGMGE(alpha=2.0), **kw).fit(Xtr, ytr)
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    cu = ConditionalUtilization(ablation="mean")
    # measured: share of 'a' 85.8% -> 82.9%; uni-modal 'b' 0.582 -> 0.600; accuracy 0.778 -> 0.808
    assert (
        pmi.explain(ogm, Xte, yte).utilization[0]
        < pmi.explain(vanilla, Xte, yte).utilization[0] - 1.0
    )
    uni_b = lambda clf: cu.explain(clf, Xte, yte).score_without[0]  # noqa: E731  ('a' ablated)
    assert uni_b(ogm) > uni_b(vanilla)
    assert ogm.score(Xte, yte) > vanilla.score(Xte, yte)
    coeffs = ogm.history[-1, "ogm_coefficients"]
    assert (
        coeffs["a"] < 0.5 < coeffs["b"]
    )  # the dominant modality is the one slowed (per-batch means)


def test_sample_valuation_lifts_the_weak_modality(colored_digits_09):
    X, y, Xv, yv = colored_digits_09
    kw = dict(
        max_epochs=30,
        lr=3e-3,
        random_state=0,
        module__head="linear",
        module__embedding_dim=32,
    )
    vanilla = MultimodalClassifier(**kw).fit(X, y)
    sv = MultimodalClassifier(balancer=SampleValuation(warmup_epochs=5), **kw).fit(X, y)
    pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
    cu = ConditionalUtilization(ablation="zeros")
    # on validation gray dominates: measured share of gray 99.8% -> 97.3%,
    # uni-modal colour accuracy 0.094 -> 0.239 (the colour encoder learns shape),
    # overall accuracy 0.780 -> 0.889
    assert (
        pmi.explain(sv, Xv, yv).utilization[1]
        < pmi.explain(vanilla, Xv, yv).utilization[1]
    )
    uni_color = lambda clf: cu.explain(clf, Xv, yv).score_without[1]  # noqa: E731  ('gray' ablated)
    assert uni_color(sv) > uni_color(vanilla) + 0.05
    assert sv.score(Xv, yv) > vanilla.score(Xv, yv) + 0.03
    assert sum(sv.history[-1, "valuation_extra_samples"].values()) > 0
    assert np.isfinite(list(sv.history[-1, "valuation_mean_phi"].values())).all()
