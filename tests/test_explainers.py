"""Explainers compared with independent references computed in the tests.

Every reference here is written from the method's definition (METHODS.md,
"Measuring") with plain torch / NumPy / scikit-learn / shap / captum, never
with mmexplain's own helpers: brute-force permutation loops with full forward
passes, coalition value functions fed to ``shap.ExactExplainer``, captum's
``ShapleyValues`` and ``InputXGradient``, hand-made ablations and autograd.
"""

import copy
import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, log_loss  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from torch import nn  # noqa: E402

from mmexplain import (  # noqa: E402
    ModalityDict,
    MultimodalClassifier,
    MultimodalSegmenter,
)
from mmexplain.datasets import (  # noqa: E402
    make_multimodal_classification,
    make_multimodal_segmentation,
)
from mmexplain.explainers import (  # noqa: E402
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.modules import LateFusionNet, MMTMNet  # noqa: E402
from mmexplain.results import ModalityExplanation  # noqa: E402

IGNORE = 255


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # tiny models: one intra-op thread is fastest, and far faster than two
    # when the cores are shared with other processes (OpenMP spin-waiting)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------
# independent reference helpers (no mmexplain code inside)
# ----------------------------------------------------------------------------
def _t(a):
    if isinstance(a, torch.Tensor):
        return a.detach().clone().float()
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


class _evaluating:
    """Run a module in eval mode, restoring every submodule's own mode."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        return self.module

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def logits_of(module, X):
    with _evaluating(module), torch.no_grad():
        return module(**{m: _t(v) for m, v in X.items()}).double()


def ce_score(module, ignore_index=-100):
    def score(X, y):
        out = logits_of(module, X)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
        return F.cross_entropy(out, yt, ignore_index=ignore_index).item()

    return score


def acc_score(module):
    def score(X, y):
        return float(np.mean(logits_of(module, X).argmax(1).numpy() == np.asarray(y)))

    return score


def brute_permutation(
    score, X, y, modalities, n_repeats, seed, *, max_samples=None, greater=False
):
    """Algorithm 1 with full evaluations on permuted copies of X."""
    rng = np.random.RandomState(seed)
    X = {m: np.asarray(X[m]) for m in modalities}
    y = np.asarray(y)
    n = len(y)
    if max_samples is not None:
        k = max_samples if isinstance(max_samples, int) else int(round(max_samples * n))
        rows = rng.choice(n, k, replace=False)
        X = {m: v[rows] for m, v in X.items()}
        y = y[rows]
        n = k
    shared = [rng.permutation(n) for _ in range(n_repeats)]  # one per repeat
    perms = [shared for _ in modalities]
    base = score(X, y)
    imp = np.empty((len(modalities), n_repeats))
    for i, m in enumerate(modalities):
        for r, p in enumerate(perms[i]):
            Xp = dict(X)
            Xp[m] = X[m][p]
            s = score(Xp, y)
            imp[i, r] = base - s if greater else s - base
    return base, imp


def shares_from(contrib):
    c = np.clip(np.asarray(contrib, dtype=float), 0, None)
    return 100 * c / c.sum()


def tv_distance(shares_percent, target):
    return 0.5 * np.abs(np.asarray(shares_percent) / 100 - np.asarray(target)).sum()


# ----------------------------------------------------------------------------
# hand-built modules
# ----------------------------------------------------------------------------
class ScoreNet(nn.Module):
    """Binary logits ``[0, bias + sum_m w_m * x_m[:, 0]]`` (no encode/fuse)."""

    def __init__(self, weights, bias=0.0):
        super().__init__()
        self.w = dict(weights)
        self.bias = float(bias)

    def forward(self, **X):
        s = sum(w * X[m][:, 0] for m, w in self.w.items()) + self.bias
        return torch.stack([torch.zeros_like(s), s], dim=1)


class ThreeTower(nn.Module):
    """Three vector modalities, no encode/fuse."""

    def __init__(self, dims=(4, 3, 5), hidden=6, n_classes=3):
        super().__init__()
        self.enc = nn.ModuleList(nn.Linear(d, hidden) for d in dims)
        self.head = nn.Linear(3 * hidden, n_classes)

    def forward(self, a, b, c):
        h = [torch.tanh(e(x)) for e, x in zip(self.enc, (a, b, c))]
        return self.head(torch.cat(h, dim=1))


class DropoutTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(3, 8)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, 2)

    def forward(self, a, b):
        h = torch.cat([torch.relu(self.a(a)), torch.relu(self.b(b))], dim=1)
        return self.head(self.drop(h))


def ignoring_late_fusion(d_a=3, d_b=4, emb=4, seed=0):
    """A LateFusionNet whose linear head has zero weights on modality b."""
    torch.manual_seed(seed)
    net = LateFusionNet(
        {"a": nn.Linear(d_a, emb), "b": nn.Linear(d_b, emb)}, n_classes=3, head="linear"
    )
    with torch.no_grad():
        net.head.weight[:, net.embedding_slices()["b"]] = 0.0
    return net


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clf_data():
    return make_multimodal_classification(
        n_samples=90, n_features=(6, 4), informativeness=[1.0, 0.6], random_state=0
    )


@pytest.fixture(scope="module")
def fitted_clf(clf_data):
    X, y = clf_data
    return MultimodalClassifier(
        max_epochs=15,
        lr=1e-2,
        random_state=0,
        module__embedding_dim=8,
        module__hidden=(16,),
    ).fit(X, y)


@pytest.fixture(scope="module")
def str_labels(clf_data):
    # class 0 -> 'zeta', class 1 -> 'alpha': sorted classes_ reverse the indices
    return np.array(["zeta", "alpha"])[clf_data[1]]


@pytest.fixture(scope="module")
def fitted_str_clf(clf_data, str_labels):
    return MultimodalClassifier(
        max_epochs=10,
        lr=1e-2,
        random_state=1,
        module__embedding_dim=8,
        module__hidden=(16,),
    ).fit(clf_data[0], str_labels)


@pytest.fixture(scope="module")
def data3():
    return make_multimodal_classification(
        n_samples=40,
        modalities=("a", "b", "c"),
        n_features=(4, 3, 5),
        n_classes=3,
        random_state=1,
    )


@pytest.fixture(scope="module")
def clf3(data3):
    X, y = data3
    return MultimodalClassifier(
        max_epochs=10,
        lr=1e-2,
        random_state=0,
        module__embedding_dim=6,
        module__hidden=(12,),
    ).fit(X, y)


@pytest.fixture(scope="module")
def mmtm_data():
    rng = np.random.default_rng(3)
    n = 48
    y = rng.integers(0, 2, n)
    X = {
        "a": (rng.normal(size=(n, 1, 6, 6)) + 0.25 * y[:, None, None, None]).astype(
            np.float32
        ),
        "b": (rng.normal(size=(n, 2, 6, 6)) + 0.25 * y[:, None, None, None]).astype(
            np.float32
        ),
    }
    return X, y


@pytest.fixture(scope="module")
def mmtm_clf(mmtm_data):
    X, y = mmtm_data
    return MultimodalClassifier(
        MMTMNet, module__channels=(4,), max_epochs=20, lr=2e-2, random_state=0
    ).fit(X, y)


@pytest.fixture(scope="module")
def seg_data():
    X, y = make_multimodal_segmentation(
        n_samples=12, image_size=(8, 8), modalities=("rgb", "dolp"), random_state=0
    )
    y = y.copy()
    y[:, 0, :3] = IGNORE  # a few ignored pixels in every image
    return X, y


@pytest.fixture(scope="module")
def fitted_seg(seg_data):
    X, y = seg_data
    return MultimodalSegmenter(
        max_epochs=20,
        lr=3e-2,
        batch_size=4,
        random_state=0,
        ignore_index=IGNORE,
        module__channels=(8,),
        module__embedding_dim=8,
    ).fit(X, y)


def _copy_X(X):
    return {m: np.array(v, copy=True) for m, v in X.items()}


# ----------------------------------------------------------------------------
# 1. permutation modality importance vs brute force
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fast, path",
    [("auto", "embeddings"), (True, "embeddings"), (False, "full_forward")],
)
def test_permutation_matches_brute_force_loss(fitted_clf, clf_data, fast, path):
    X, y = clf_data
    expl = PermutationModalityImportance(
        n_repeats=3, random_state=7, fast=fast
    ).explain(fitted_clf, X, y)
    base, imp = brute_permutation(ce_score(fitted_clf.module_), X, y, ("a", "b"), 3, 7)
    assert expl.method == "permutation"
    assert expl.modalities == ("a", "b")
    assert expl.params["path"] == path
    assert expl.params["scoring"] == "loss"
    assert expl.baseline_score == pytest.approx(base, rel=1e-6)
    assert expl.importances.shape == (2, 3)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expl.importances_mean, imp.mean(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expl.importances_std, imp.std(1), rtol=1e-4, atol=1e-7)
    assert (imp.mean(1) > 0).all()  # both modalities are used: a meaningful check
    np.testing.assert_allclose(expl.utilization, shares_from(imp.mean(1)), rtol=1e-5)
    np.testing.assert_allclose(expl.shares, expl.utilization)
    assert expl.utilization.sum() == pytest.approx(100.0)


def test_permutation_seed_changes_permutations(fitted_clf, clf_data):
    X, y = clf_data
    e1 = PermutationModalityImportance(n_repeats=2, random_state=1).explain(
        fitted_clf, X, y
    )
    e2 = PermutationModalityImportance(n_repeats=2, random_state=1).explain(
        fitted_clf, X, y
    )
    e3 = PermutationModalityImportance(n_repeats=2, random_state=2).explain(
        fitted_clf, X, y
    )
    np.testing.assert_array_equal(e1.importances, e2.importances)
    assert not np.allclose(e1.importances, e3.importances)


@pytest.mark.parametrize("max_samples", [37, 0.5])
def test_permutation_max_samples_subsample(fitted_clf, clf_data, max_samples):
    X, y = clf_data
    expl = PermutationModalityImportance(
        n_repeats=2, random_state=3, max_samples=max_samples
    ).explain(fitted_clf, X, y)
    base, imp = brute_permutation(
        ce_score(fitted_clf.module_), X, y, ("a", "b"), 2, 3, max_samples=max_samples
    )
    k = max_samples if isinstance(max_samples, int) else 45
    assert expl.params["n_samples"] == k
    assert expl.baseline_score == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)


def test_permutation_raw_module_full_forward(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(0)
    module = two_tower()
    expl = PermutationModalityImportance(n_repeats=4, random_state=11).explain(
        module, X, y
    )
    base, imp = brute_permutation(ce_score(module), X, y, ("a", "b"), 4, 11)
    assert expl.params["path"] == "full_forward"
    assert expl.baseline_score == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="encode/fuse"):
        PermutationModalityImportance(fast=True).explain(module, X, y)


@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "neg_log_loss"])
@pytest.mark.parametrize("max_samples", [None, 50])
def test_permutation_other_scorings(fitted_clf, clf_data, scoring, max_samples):
    X, y = clf_data
    module = fitted_clf.module_

    def score(Xs, ys):
        out = logits_of(module, Xs)
        if scoring == "accuracy":
            return float(np.mean(out.argmax(1).numpy() == ys))
        if scoring == "balanced_accuracy":
            return balanced_accuracy_score(ys, out.argmax(1).numpy())
        # float32 probabilities, as a torch model gives them (log_loss clips at
        # the dtype's eps, so float64 would differ for confidently wrong rows)
        return -log_loss(ys, torch.softmax(out.float(), 1)[:, 1].numpy())

    expl = PermutationModalityImportance(
        n_repeats=3,
        random_state=5,
        scoring=scoring,
        max_samples=max_samples,
        batch_size=7 if max_samples else 4096,
    ).explain(fitted_clf, X, y)
    base, imp = brute_permutation(
        score, X, y, ("a", "b"), 3, 5, max_samples=max_samples, greater=True
    )
    assert expl.params["scoring"] == scoring
    assert expl.baseline_score == pytest.approx(base, rel=1e-5)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-4, atol=1e-6)
    assert imp.mean(1).max() > 0


def test_permutation_balanced_accuracy_raw_module(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(1)
    module = two_tower()

    def score(Xs, ys):
        return balanced_accuracy_score(ys, logits_of(module, Xs).argmax(1).numpy())

    expl = PermutationModalityImportance(
        n_repeats=3, random_state=0, scoring="balanced_accuracy"
    ).explain(module, X, y)
    base, imp = brute_permutation(score, X, y, ("a", "b"), 3, 0, greater=True)
    assert expl.baseline_score == pytest.approx(base)
    np.testing.assert_allclose(expl.importances, imp, atol=1e-12)


def test_permutation_callable_scoring_equals_accuracy(fitted_clf, clf_data):
    X, y = clf_data
    kw = dict(n_repeats=2, random_state=4)
    named = PermutationModalityImportance(scoring="accuracy", **kw).explain(
        fitted_clf, X, y
    )
    called = PermutationModalityImportance(
        scoring=lambda est, Xs, ys: est.score(Xs, ys), **kw
    ).explain(fitted_clf, X, y)
    assert called.params["path"] == "estimator"
    np.testing.assert_allclose(called.importances, named.importances, atol=1e-12)


@pytest.mark.parametrize("scoring", ["loss", "balanced_accuracy", "accuracy"])
def test_permutation_string_labels(fitted_str_clf, clf_data, str_labels, scoring):
    X, _ = clf_data
    y = str_labels
    classes = fitted_str_clf.classes_
    assert list(classes) == ["alpha", "zeta"]
    y_idx = np.array([list(classes).index(v) for v in y])
    module = fitted_str_clf.module_

    if scoring == "loss":
        score, greater, yy = ce_score(module), False, y_idx
    elif scoring == "accuracy":
        score, greater, yy = acc_score(module), True, y_idx
    else:

        def score(Xs, ys):
            pred = classes[logits_of(module, Xs).argmax(1).numpy()]
            return balanced_accuracy_score(ys, pred)

        greater, yy = True, y

    expl = PermutationModalityImportance(
        n_repeats=3, random_state=2, scoring=scoring
    ).explain(fitted_str_clf, X, y)
    base, imp = brute_permutation(score, X, yy, ("a", "b"), 3, 2, greater=greater)
    assert expl.baseline_score == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)
    # the accuracy of a working model is far from chance: labels were mapped right
    if scoring == "accuracy":
        assert base > 0.75


def test_permutation_negative_mu_clipped_to_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2))
    b = a + 0.1 * rng.normal(size=(200, 2))
    X = {"a": a, "b": b}
    y = (a[:, 0] > 0).astype(int)
    module = ScoreNet({"a": 1.0, "b": -3.0})  # b is used the wrong way round
    expl = PermutationModalityImportance(n_repeats=3, random_state=0).explain(
        module, X, y
    )
    base, imp = brute_permutation(ce_score(module), X, y, ("a", "b"), 3, 0)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)
    assert imp.mean(1)[0] > 0 > imp.mean(1)[1]
    np.testing.assert_allclose(expl.utilization, [100.0, 0.0], rtol=0, atol=1e-9)
    assert expl.importances_mean[1] < 0  # the raw importance is kept


@pytest.mark.parametrize("kind", ["negative", "zero"])
def test_permutation_no_positive_mu_gives_nan(kind):
    rng = np.random.default_rng(1)
    X = {"a": rng.normal(size=(150, 2)), "b": rng.normal(size=(150, 2))}
    y = (X["a"][:, 0] + X["b"][:, 0] > 0).astype(int)
    if kind == "negative":
        module = ScoreNet({"a": -1.0, "b": -1.0})  # confidently wrong
    else:
        module = ScoreNet({"a": 0.0, "b": 0.0}, bias=0.3)  # ignores everything
    explainer = PermutationModalityImportance(n_repeats=3, random_state=0)
    with pytest.warns(RuntimeWarning, match="undefined"):
        expl = explainer.explain(module, X, y)
    base, imp = brute_permutation(ce_score(module), X, y, ("a", "b"), 3, 0)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)
    if kind == "negative":
        assert (imp.mean(1) < 0).all()
    else:
        np.testing.assert_array_equal(expl.importances, 0.0)
    assert np.isnan(expl.utilization).all()
    # a scorer that cannot score raises (GridSearchCV records error_score)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="undefined"):
        explainer.score(module, X, y)


def test_permutation_batch_size_invariance(fitted_clf, clf_data):
    X, y = clf_data
    n, R = len(y), 3
    results = {}
    for fast in ("auto", False):
        for bs in (7, 10_000):
            e = PermutationModalityImportance(
                n_repeats=R, random_state=9, batch_size=bs, fast=fast
            ).explain(fitted_clf, X, y)
            results[fast, bs] = e
            K = 1 + 2 * R
            expected_calls = K if bs == 7 else 1
            expected_calls *= math.ceil(n / bs) if bs == 7 else 1
            assert e.params["model_calls"] == expected_calls, (fast, bs)
    ref = results["auto", 10_000]
    for e in results.values():
        assert e.baseline_score == pytest.approx(ref.baseline_score, rel=1e-6)
        np.testing.assert_allclose(e.importances, ref.importances, rtol=1e-5, atol=1e-7)
    base, imp = brute_permutation(ce_score(fitted_clf.module_), X, y, ("a", "b"), R, 9)
    np.testing.assert_allclose(ref.importances, imp, rtol=1e-5, atol=1e-7)


def test_permutation_torch_tensor_inputs(fitted_clf, clf_data):
    X, y = clf_data
    Xt = {m: torch.as_tensor(np.array(v)) for m, v in X.items()}
    before = {m: v.clone() for m, v in Xt.items()}
    e_np = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        fitted_clf, X, y
    )
    e_t = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        fitted_clf, Xt, y
    )
    np.testing.assert_allclose(e_t.importances, e_np.importances, rtol=1e-6)
    for m in Xt:
        assert torch.equal(Xt[m], before[m])


def test_permutation_plain_skorch_net(clf_data):
    from skorch import NeuralNetClassifier

    X, y = clf_data

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 4)
            self.b = nn.Linear(4, 4)
            self.head = nn.Linear(8, 2)

        def forward(self, a, b):
            h = torch.cat([torch.relu(self.a(a)), torch.relu(self.b(b))], dim=1)
            return self.head(h)

    torch.manual_seed(0)
    net = NeuralNetClassifier(
        Tower,
        criterion=nn.CrossEntropyLoss,
        max_epochs=5,
        lr=0.2,
        train_split=None,
        verbose=0,
    ).fit(dict(X), y)
    expl = PermutationModalityImportance(n_repeats=2, random_state=3).explain(
        net, dict(X), y
    )
    base, imp = brute_permutation(ce_score(net.module_), X, y, ("a", "b"), 2, 3)
    assert expl.params["path"] == "full_forward"
    assert expl.baseline_score == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-5, atol=1e-7)


def test_permutation_loss_fn_for_raw_module(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(2)
    module = two_tower()
    yt = torch.as_tensor(y)

    def smoothed(Xs, ys):
        out = logits_of(module, Xs)
        return F.cross_entropy(out, torch.as_tensor(ys), label_smoothing=0.2).item()

    def squared(Xs, ys):
        out = logits_of(module, Xs)
        per = F.cross_entropy(out, torch.as_tensor(ys), reduction="none")
        return (per**2).mean().item()

    for loss_fn, ref in (
        (nn.CrossEntropyLoss(label_smoothing=0.2), smoothed),
        (lambda out, t: F.cross_entropy(out, t, reduction="none") ** 2, squared),
    ):
        expl = PermutationModalityImportance(
            n_repeats=2, random_state=0, loss_fn=loss_fn
        ).explain(module, X, y)
        base, imp = brute_permutation(ref, X, y, ("a", "b"), 2, 0)
        assert expl.baseline_score == pytest.approx(base, rel=1e-5)
        np.testing.assert_allclose(expl.importances, imp, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="one loss per sample"):
        PermutationModalityImportance(
            loss_fn=lambda out, t: F.cross_entropy(out, t)
        ).explain(module, X, yt.numpy())


def test_permutation_loss_with_class_weights_is_the_criterion(clf_data):
    X, y = clf_data
    w = torch.tensor([1.0, 3.0])
    clf = MultimodalClassifier(
        max_epochs=3,
        lr=1e-2,
        random_state=0,
        module__embedding_dim=4,
        module__hidden=(8,),
        criterion__weight=w,
    ).fit(X, y)
    expl = PermutationModalityImportance(n_repeats=2, random_state=0).explain(clf, X, y)
    weighted = lambda Xs, ys: F.cross_entropy(  # noqa: E731
        logits_of(clf.module_, Xs), torch.as_tensor(ys), weight=w.double()
    ).item()
    base, imp = brute_permutation(weighted, X, y, ("a", "b"), 2, 0)
    assert expl.baseline_score == pytest.approx(base, rel=1e-5)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------
# 2. closed-form cases
# ----------------------------------------------------------------------------
# Exact equality is deliberate for an ignored modality's raw values (importance,
# Shapley value, rate == 0.0): its weights are exactly zero, so perturbing it
# leaves every logit bit-identical and any nonzero value would be a leak.
# Percent shares are normalized by a float sum and compared with a tolerance.
@pytest.fixture(scope="module")
def ignoring_case():
    rng = np.random.default_rng(2)
    X = {
        "a": rng.normal(size=(60, 3)).astype(np.float32),
        "b": rng.normal(size=(60, 4)).astype(np.float32),
    }
    net = ignoring_late_fusion()
    y = logits_of(net, X).argmax(1).numpy()  # the model is right on every sample
    assert len(np.unique(y)) > 1
    return net, X, y


def test_closed_form_permutation_ignored_modality(ignoring_case):
    net, X, y = ignoring_case
    for fast in ("auto", False):
        expl = PermutationModalityImportance(
            n_repeats=3, random_state=0, fast=fast
        ).explain(net, X, y)
        np.testing.assert_array_equal(expl.importances[1], 0.0)
        assert (expl.importances[0] > 0).all()
        np.testing.assert_allclose(expl.utilization, [100.0, 0.0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("value", ["probability", "neg_loss", "correct"])
@pytest.mark.parametrize("baseline", ["zeros", "mean", "zero_input"])
def test_closed_form_shapley_ignored_modality(ignoring_case, value, baseline):
    net, X, y = ignoring_case
    expl = ModalityShapley(value=value, baseline=baseline).explain(net, X, y)
    phi = expl.values
    assert phi.shape == (60, 2)
    if value != "correct":
        np.testing.assert_array_equal(phi[:, 1], 0.0)
        assert np.abs(phi[:, 0]).max() > 1e-3
        return
    # paper's v(S) = |S| * 1[correct]: with b ignored, c(ab) = c(a) = 1 here, so
    # phi_b = (v(b) + v(ab) - v(a)) / 2 = (c(b) + 1) / 2 and phi_a = (3 - c(b)) / 2,
    # c(b) = 1[prediction with a's embedding/input absent is right]
    with torch.no_grad():
        if baseline == "zero_input":
            out = logits_of(net, {"a": np.zeros_like(X["a"]), "b": X["b"]})
        else:
            Z = net.encode(**{m: _t(v) for m, v in X.items()})
            fill = (
                torch.zeros_like(Z["a"])
                if baseline == "zeros"
                else Z["a"].double().mean(0, keepdim=True).float().expand_as(Z["a"])
            )
            out = net.fuse(a=fill, b=Z["b"])
    c_b = (out.argmax(1).numpy() == y).astype(float)
    assert 0 < c_b.mean() < 1  # both closed-form branches are exercised
    np.testing.assert_allclose(phi[:, 1], (c_b + 1) / 2, atol=1e-12)
    np.testing.assert_allclose(phi[:, 0], (3 - c_b) / 2, atol=1e-12)
    np.testing.assert_array_equal(expl.base_values, 0.0)


@pytest.mark.parametrize("ablation", ["mean", "zeros", "input_mean"])
def test_closed_form_conditional_ignored_modality(ignoring_case, ablation):
    net, X, y = ignoring_case
    for scoring in ("accuracy", "loss"):
        expl = ConditionalUtilization(ablation=ablation, scoring=scoring).explain(
            net, X, y
        )
        assert expl.rates[1] == 0.0
        assert expl.rates[0] > 0.0
        assert expl.d_util == pytest.approx(-expl.rates[0])
    assert expl.params["ablation"] == ablation


def test_closed_form_raw_module_using_one_modality():
    rng = np.random.default_rng(4)
    X = {"a": rng.normal(size=(80, 2)), "b": rng.normal(size=(80, 3))}
    y = (X["a"][:, 0] > 0).astype(int)
    module = ScoreNet({"a": 3.0, "b": 0.0})
    perm = PermutationModalityImportance(n_repeats=3, random_state=0).explain(
        module, X, y
    )
    np.testing.assert_array_equal(perm.importances[1], 0.0)
    np.testing.assert_allclose(perm.utilization, [100.0, 0.0], rtol=0, atol=1e-9)
    shap_e = ModalityShapley(value="probability", baseline="zero_input").explain(
        module, X, y
    )
    np.testing.assert_array_equal(shap_e.values[:, 1], 0.0)
    # v(S) = sigmoid(+-3 a0) if a in S, else 1/2: phi_a = v(all) - 1/2
    p1 = 1 / (1 + np.exp(-3 * X["a"][:, 0]))
    v_all = np.where(y == 1, p1, 1 - p1)
    np.testing.assert_allclose(shap_e.values[:, 0], v_all - 0.5, atol=1e-6)
    np.testing.assert_allclose(shap_e.base_values, 0.5, atol=1e-7)
    cond = ConditionalUtilization().explain(module, X, y)
    assert cond.params["ablation"] == "input_mean"
    assert cond.rates[1] == 0.0 and cond.rates[0] > 0.3
    np.testing.assert_allclose(cond.shares, [100.0, 0.0], rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------
# 3. modality Shapley vs shap.ExactExplainer and captum
# ----------------------------------------------------------------------------
def coalition_value(module, X, y, n, present, value, baseline, reference=None):
    """v_n(S) on sample n, absent embeddings set to the baseline, via encode/fuse."""
    with _evaluating(module), torch.no_grad():
        Zall = module.encode(**{m: _t(v) for m, v in X.items()})
        Zref = Zall
        if reference is not None:
            Zref = module.encode(**{m: _t(v) for m, v in reference.items()})
        Z = {m: z[n : n + 1] for m, z in Zall.items()}
        for j, m in enumerate(Z):
            if not present[j]:
                if baseline == "zeros":
                    Z[m] = torch.zeros_like(Z[m])
                else:
                    Z[m] = Zref[m].double().mean(0, keepdim=True).float()
        out = module.fuse(**Z).double()
    k = int(np.sum(present))
    if value == "probability":
        return torch.softmax(out, 1)[0, y[n]].item()
    if value == "neg_loss":
        return -F.cross_entropy(out, torch.tensor([int(y[n])])).item()
    if k == 0:
        return 0.0
    return k * float(out.argmax(1).item() == y[n])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize(
    "value, baseline, use_ref",
    [
        ("probability", "zeros", False),
        ("correct", "zeros", False),
        ("neg_loss", "zeros", False),
        ("probability", "mean", False),
        ("correct", "mean", True),
    ],
)
def test_shapley_matches_shap_exact_explainer(clf3, data3, value, baseline, use_ref):
    import shap

    X, y = data3
    module = clf3.module_
    M = 3
    ref_X = None
    if use_ref:
        ref_X = {m: np.asarray(v)[:15] * 2.0 + 0.5 for m, v in X.items()}
    expl = ModalityShapley(value=value, baseline=baseline, reference=ref_X).explain(
        clf3, X, y
    )
    assert expl.values.shape == (len(y), M)
    assert expl.params["exact"] is True
    assert expl.params["n_coalitions"] == 2**M
    masker = shap.maskers.Independent(np.zeros((1, M)))
    seen_nonzero = False
    for n in range(5):

        def f(masks, n=n):
            return np.array(
                [
                    coalition_value(module, X, y, n, row > 0.5, value, baseline, ref_X)
                    for row in masks
                ]
            )

        ref = shap.ExactExplainer(f, masker)(np.ones((1, M)))
        np.testing.assert_allclose(expl.values[n], ref.values[0], atol=1e-6)
        assert expl.base_values[n] == pytest.approx(
            float(np.ravel(ref.base_values)[0]), abs=1e-6
        )
        seen_nonzero |= bool(np.abs(ref.values[0]).max() > 1e-3)
    assert seen_nonzero
    np.testing.assert_allclose(expl.mean_values, expl.values.mean(0))


@pytest.mark.parametrize("baseline", ["zero_input", "mean_input"])
def test_shapley_input_baselines_match_captum(baseline):
    from captum.attr import ShapleyValues

    torch.manual_seed(0)
    module = ThreeTower()
    rng = np.random.default_rng(5)
    X = {
        "a": rng.normal(size=(25, 4)).astype(np.float32),
        "b": rng.normal(size=(25, 3)).astype(np.float32),
        "c": rng.normal(size=(25, 5)).astype(np.float32),
    }
    y = rng.integers(0, 3, 25)
    expl = ModalityShapley(value="probability", baseline=baseline).explain(module, X, y)
    inputs = tuple(_t(X[m]) for m in "abc")
    if baseline == "zero_input":
        baselines = tuple(torch.zeros_like(x) for x in inputs)
    else:
        baselines = tuple(x.double().mean(0, keepdim=True).float() for x in inputs)
    masks = tuple(
        torch.full((1, x.shape[1]), j, dtype=torch.long) for j, x in enumerate(inputs)
    )

    def forward(a, b, c):
        return torch.softmax(module(a, b, c), dim=1)

    with _evaluating(module):
        attr = ShapleyValues(forward).attribute(
            inputs,
            baselines=baselines,
            target=torch.as_tensor(y),
            feature_mask=masks,
        )
    ref = np.stack([a[:, 0].double().numpy() for a in attr], axis=1)
    np.testing.assert_allclose(expl.values, ref, atol=1e-5)
    assert np.abs(ref).max() > 1e-3


def test_shapley_efficiency_exact_and_monte_carlo(clf3, data3):
    X, y = data3
    v_all = torch.softmax(logits_of(clf3.module_, X), 1)[np.arange(len(y)), y].numpy()
    exact = ModalityShapley(value="probability").explain(clf3, X, y)
    assert exact.standard_errors is None
    assert exact.params["efficiency_gap"] <= 1e-12
    np.testing.assert_allclose(
        exact.values.sum(1), v_all - exact.base_values, atol=1e-6
    )
    mc = ModalityShapley(value="probability", n_samples=60, random_state=0).explain(
        clf3, X, y
    )
    assert mc.params["exact"] is False and mc.params["n_samples"] == 60
    assert mc.params["efficiency_gap"] <= 1e-12  # telescoping: exact in MC too
    np.testing.assert_allclose(mc.values.sum(1), exact.values.sum(1), atol=1e-12)
    np.testing.assert_allclose(mc.base_values, exact.base_values, atol=1e-12)
    se = mc.standard_errors
    assert se.shape == (len(y), 3) and se.max() > 0
    assert not np.allclose(mc.values, exact.values)  # really sampled
    assert (np.abs(mc.values - exact.values) <= 5 * se + 1e-9).all()
    # seeded Monte Carlo is reproducible, another seed is not the same
    again = ModalityShapley(value="probability", n_samples=60, random_state=0).explain(
        clf3, X, y
    )
    np.testing.assert_array_equal(again.values, mc.values)
    np.testing.assert_array_equal(again.standard_errors, mc.standard_errors)
    other = ModalityShapley(value="probability", n_samples=60, random_state=1).explain(
        clf3, X, y
    )
    assert not np.array_equal(other.values, mc.values)
    # many orderings: close to exact
    many = ModalityShapley(value="probability", n_samples=3000, random_state=0).explain(
        clf3, X, y
    )
    assert np.abs(many.values - exact.values).max() < 0.02


def test_shapley_max_exact_switches_to_monte_carlo(clf3, data3):
    X, y = data3
    e = ModalityShapley(value="correct", max_exact=2, random_state=0).explain(
        clf3, X, y
    )
    assert e.params["exact"] is False and e.params["n_samples"] == 200
    assert e.params["efficiency_gap"] <= 1e-12
    correct_all = (logits_of(clf3.module_, X).argmax(1).numpy() == y) * 3.0
    np.testing.assert_allclose(e.values.sum(1), correct_all, atol=1e-12)


def test_shapley_batch_size_invariance(clf3, data3):
    X, y = data3
    a = ModalityShapley(value="probability", batch_size=7).explain(clf3, X, y)
    b = ModalityShapley(value="probability", batch_size=10_000).explain(clf3, X, y)
    np.testing.assert_allclose(a.values, b.values, atol=1e-6)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_shapley_to_shap_plots(clf3, data3):
    import shap

    X, y = data3
    expl = ModalityShapley(value="probability").explain(clf3, X, y)
    sh = expl.to_shap()
    assert isinstance(sh, shap.Explanation)
    np.testing.assert_array_equal(sh.values, expl.values)
    np.testing.assert_array_equal(sh.base_values, expl.base_values)
    assert list(sh.feature_names) == ["a", "b", "c"]
    for plot in (
        lambda: shap.plots.bar(sh, show=False),
        lambda: shap.plots.beeswarm(sh, show=False),
        lambda: shap.plots.waterfall(sh[0], show=False),
    ):
        plt.figure()
        plot()
        assert plt.gcf().axes  # something was drawn
        plt.close("all")
    perm = PermutationModalityImportance(n_repeats=1, random_state=0).explain(
        clf3, X, y
    )
    with pytest.raises(ValueError, match="Shapley"):
        perm.to_shap()


# ----------------------------------------------------------------------------
# 4. conditional utilization
# ----------------------------------------------------------------------------
def hand_conditional_embedding(module, X, y, reference=None, scoring="accuracy"):
    with _evaluating(module), torch.no_grad():
        Z = module.encode(**{m: _t(v) for m, v in X.items()})
        Zr = (
            Z
            if reference is None
            else module.encode(**{m: _t(v) for m, v in reference.items()})
        )

        def score(Zs):
            out = module.fuse(**Zs).double()
            if scoring == "accuracy":
                return float(np.mean(out.argmax(1).numpy() == y))
            return F.cross_entropy(out, torch.as_tensor(y)).item()

        full = score(Z)
        without = []
        for m in Z:
            Zm = dict(Z)
            Zm[m] = Zr[m].double().mean(0, keepdim=True).float().expand_as(Z[m])
            without.append(score(Zm))
    without = np.array(without)
    if scoring == "accuracy":
        rates = (full - without) / full
    else:
        rates = (without - full) / full
    return full, without, rates


@pytest.mark.parametrize("scoring", ["accuracy", "loss"])
def test_conditional_mean_embedding_matches_hand(fitted_clf, clf_data, scoring):
    X, y = clf_data
    expl = ConditionalUtilization(scoring=scoring).explain(fitted_clf, X, y)
    full, without, rates = hand_conditional_embedding(
        fitted_clf.module_, X, y, scoring=scoring
    )
    assert expl.method == "conditional"
    assert expl.params["ablation"] == "mean"
    assert expl.params["path"] == "embeddings"
    assert expl.score_full == pytest.approx(full, rel=1e-6)
    np.testing.assert_allclose(expl.score_without, without, rtol=1e-5)
    np.testing.assert_allclose(expl.rates, rates, rtol=1e-4, atol=1e-7)
    assert expl.d_util == pytest.approx(rates[1] - rates[0], rel=1e-4, abs=1e-7)
    assert np.abs(rates).max() > 0.01


def test_conditional_zeros_and_three_modalities(clf3, data3):
    X, y = data3
    module = clf3.module_
    expl = ConditionalUtilization(scoring="loss").explain(clf3, X, y)
    full, without, rates = hand_conditional_embedding(module, X, y, scoring="loss")
    assert expl.rates.shape == (3,) and expl.d_util is None
    np.testing.assert_allclose(expl.rates, rates, rtol=1e-4, atol=1e-7)
    cu = ConditionalUtilization(scoring="loss")
    assert cu.score(clf3, X, y) == pytest.approx(-(rates.max() - rates.min()), rel=1e-4)
    zeros = ConditionalUtilization(ablation="zeros", scoring="loss").explain(clf3, X, y)
    with _evaluating(module), torch.no_grad():
        Z = module.encode(**{m: _t(v) for m, v in X.items()})
        yt = torch.as_tensor(y)
        wo = []
        for m in Z:
            Zm = dict(Z)
            Zm[m] = torch.zeros_like(Z[m])
            wo.append(F.cross_entropy(module.fuse(**Zm).double(), yt).item())
    np.testing.assert_allclose(zeros.score_without, wo, rtol=1e-5)
    np.testing.assert_allclose(zeros.rates, (np.array(wo) - full) / full, rtol=1e-4)
    assert zeros.params["ablation"] == "zeros"


def test_conditional_reference_changes_mean(fitted_clf, clf_data):
    X, y = clf_data
    X_ref, y_ref = make_multimodal_classification(
        n_samples=50, n_features=(6, 4), informativeness=[1.0, 0.6], random_state=5
    )
    X_ref = {m: v * 1.5 + 0.3 for m, v in X_ref.items()}  # a clearly different mean
    default = ConditionalUtilization(scoring="loss").explain(fitted_clf, X, y)
    given = ConditionalUtilization(scoring="loss", reference=X_ref).explain(
        fitted_clf, X, y
    )
    as_tuple = ConditionalUtilization(scoring="loss", reference=(X_ref, y_ref)).explain(
        fitted_clf, X, y
    )
    _, without, rates = hand_conditional_embedding(
        fitted_clf.module_, X, y, reference=X_ref, scoring="loss"
    )
    assert given.params["reference"] == "given"
    assert default.params["reference"] == "explained data"
    np.testing.assert_allclose(given.score_without, without, rtol=1e-5)
    np.testing.assert_allclose(given.rates, rates, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(as_tuple.rates, given.rates, rtol=1e-12)
    assert np.abs(given.rates - default.rates).max() > 1e-3


@pytest.mark.parametrize("scoring", ["accuracy", "loss"])
def test_conditional_input_mean_matches_hand(fitted_clf, clf_data, scoring):
    X, y = clf_data
    expl = ConditionalUtilization(ablation="input_mean", scoring=scoring).explain(
        fitted_clf, X, y
    )
    score = acc_score(fitted_clf.module_) if scoring == "accuracy" else None
    if score is None:
        score = ce_score(fitted_clf.module_)
    full = score(X, y)
    without = []
    for m in X:
        Xm = dict(X)
        mean = np.asarray(X[m], dtype=np.float32).astype(np.float64).mean(0)
        Xm[m] = np.repeat(mean.astype(np.float32)[None], len(y), axis=0)
        without.append(score(Xm, y))
    without = np.array(without)
    rates = (
        (full - without) / full if scoring == "accuracy" else (without - full) / full
    )
    assert expl.params["ablation"] == "input_mean"
    # an encode/fuse model: the encoded mean input is a constant embedding (exact)
    assert expl.params["path"] == "embeddings"
    assert expl.score_full == pytest.approx(full, rel=1e-6)
    np.testing.assert_allclose(expl.score_without, without, rtol=1e-5)
    np.testing.assert_allclose(expl.rates, rates, rtol=1e-4, atol=1e-7)


def _hooked_squeeze_averages(net, X):
    """Per MMTM block, each branch's mean squeeze vector over ``X`` (eval mode).

    Read with forward pre-hooks on the blocks' inputs (the feature maps that
    each block squeezes by a spatial mean), one full forward pass.
    """
    Xt = {m: _t(v) for m, v in X.items()}
    n = len(next(iter(Xt.values())))
    sums = [{} for _ in net.mmtms]

    def make(i):
        def hook(block, args):
            for m, x in zip(block.modalities, args):
                sums[i][m] = x.double().mean(dim=(2, 3)).sum(dim=0)

        return hook

    handles = [b.register_forward_pre_hook(make(i)) for i, b in enumerate(net.mmtms)]
    try:
        with _evaluating(net), torch.no_grad():
            net(**Xt)
    finally:
        for h in handles:
            h.remove()
    return [{m: (v / n).float() for m, v in s.items()} for s in sums]


class _hooked_ablation:
    """Replace modality ``m``'s columns of every block's shared-layer input."""

    def __init__(self, net, m, averages):
        self.net, self.m, self.averages = net, m, averages

    def __enter__(self):
        self.handles = []
        for i, block in enumerate(self.net.mmtms):
            mods = list(block.modalities)
            start = sum(block.channels[k] for k in mods[: mods.index(self.m)])
            stop = start + block.channels[self.m]
            value = self.averages[i][self.m]

            def hook(fc, args, start=start, stop=stop, value=value):
                (h,) = args
                h = h.clone()
                h[:, start:stop] = value.to(h.dtype)
                return (h,)

            self.handles.append(block.squeeze_fc.register_forward_pre_hook(hook))

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def _hand_mmtm_rates(net, X, y, averages, scoring):
    """Rates u(m | rest) on (X, y) with m's squeeze replaced by ``averages``."""
    yt = torch.as_tensor(y)

    def score(out):
        out = out.double()
        if scoring == "accuracy":
            return float((out.argmax(1) == yt).double().mean())
        return F.cross_entropy(out, yt).item()

    Xt = {m: _t(v) for m, v in X.items()}
    with _evaluating(net), torch.no_grad():
        full_out = net(**Xt)
        full_branches = dict(net.branch_logits)
        ref, without = [], []
        for m in net.modalities:
            (other,) = [o for o in net.modalities if o != m]
            ref.append(score(full_branches[other]))
            with _hooked_ablation(net, m, averages):
                net(**Xt)
                without.append(score(net.branch_logits[other]))
    ref, without = np.array(ref), np.array(without)
    if scoring == "accuracy":
        rates = (ref - without) / ref
    else:
        rates = (without - ref) / ref
    return score(full_out), ref, without, rates


def _mmtm_state(net):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        [m.training for m in net.modules()],
    )


def _assert_mmtm_untouched(net, state):
    buffers, modes = state
    for k, v in net.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    assert [m.training for m in net.modules()] == modes
    assert net.ablate is None and net.ablate_squeeze is None and net.rebalance is None


@pytest.mark.parametrize("scoring", ["accuracy", "loss"])
def test_conditional_mmtm_uses_final_model_averages_over_reference(
    mmtm_clf, mmtm_data, scoring
):
    X, y = mmtm_data
    net = mmtm_clf.module_
    assert isinstance(net, MMTMNet)
    # the "training split" here: a part of the data, not the data explained
    X_ref = {m: v[:30] for m, v in X.items()}
    X_ev, y_ev = {m: v[30:] for m, v in X.items()}, y[30:]
    averages = _hooked_squeeze_averages(net, X_ref)
    # the running (cumulative over training) averages are another thing
    gap = max(
        float((blk.running_squeeze(m) - averages[i][m]).abs().max())
        for i, blk in enumerate(net.mmtms)
        for m in net.modalities
    )
    assert gap > 1e-3
    # the module's own averages equal the hooked ones, in every mode and batch size
    for batch_size in (7, 1000):
        own = net.squeeze_averages(X_ref, batch_size=batch_size)
        for i in range(len(net.mmtms)):
            for m in net.modalities:
                torch.testing.assert_close(own[i][m], averages[i][m])

    net.train()  # explain must neither update running buffers nor change modes
    state = _mmtm_state(net)
    expl = ConditionalUtilization(scoring=scoring, reference=X_ref).explain(
        mmtm_clf, X_ev, y_ev
    )
    _assert_mmtm_untouched(net, state)
    net.eval()
    assert expl.params["ablation"] == "mmtm"
    assert expl.params["reference"] == "given"
    full, ref, without, rates = _hand_mmtm_rates(net, X_ev, y_ev, averages, scoring)
    assert expl.score_full == pytest.approx(full, rel=1e-6)
    np.testing.assert_allclose(expl.score_reference, ref, rtol=1e-6)
    np.testing.assert_allclose(expl.score_without, without, rtol=1e-5)
    np.testing.assert_allclose(expl.rates, rates, rtol=1e-4, atol=1e-7)
    assert expl.d_util == pytest.approx(rates[1] - rates[0], rel=1e-4, abs=1e-7)
    if scoring == "loss":
        assert np.abs(without - ref).max() > 1e-6  # the ablation did something
        # a (X, y) tuple works as the reference too
        again = ConditionalUtilization(scoring=scoring, reference=(X_ref, y[:30]))
        np.testing.assert_allclose(
            again.explain(mmtm_clf, X_ev, y_ev).rates, expl.rates, rtol=1e-6
        )


def test_conditional_mmtm_default_reference_is_the_explained_data(mmtm_clf, mmtm_data):
    X, y = mmtm_data
    net = mmtm_clf.module_
    X_ev, y_ev = {m: v[30:] for m, v in X.items()}, y[30:]
    state = _mmtm_state(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: reference is not ignored
        expl = ConditionalUtilization(scoring="loss").explain(mmtm_clf, X_ev, y_ev)
    _assert_mmtm_untouched(net, state)
    assert expl.params["reference"] == "explained data"
    averages = _hooked_squeeze_averages(net, X_ev)
    *_, rates = _hand_mmtm_rates(net, X_ev, y_ev, averages, "loss")
    np.testing.assert_allclose(expl.rates, rates, rtol=1e-4, atol=1e-7)
    # on a plain module (no estimator) the same
    plain = ConditionalUtilization(scoring="loss").explain(net, X_ev, y_ev)
    np.testing.assert_allclose(plain.rates, expl.rates, rtol=1e-6)


def test_conditional_mmtm_batch_size_invariance(mmtm_clf, mmtm_data):
    X, y = mmtm_data
    X_ref = {m: v[:30] for m, v in X.items()}
    a = ConditionalUtilization(scoring="loss", batch_size=5, reference=X_ref).explain(
        mmtm_clf, X, y
    )
    b = ConditionalUtilization(
        scoring="loss", batch_size=10_000, reference=X_ref
    ).explain(mmtm_clf, X, y)
    np.testing.assert_allclose(a.rates, b.rates, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.score_reference, b.score_reference, rtol=1e-6)


# ----------------------------------------------------------------------------
# 5. gradient attribution
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["max", "true"])
def test_gradient_attribution_matches_autograd(fitted_clf, clf_data, output):
    X, y = clf_data
    module = fitted_clf.module_
    expl = GradientModalityAttribution(output=output, batch_size=16).explain(
        fitted_clf, X, y
    )
    with _evaluating(module):
        with torch.no_grad():
            Z = module.encode(**{m: _t(v) for m, v in X.items()})
        Z = {m: z.detach().clone().requires_grad_(True) for m, z in Z.items()}
        out = module.fuse(**Z)
        if output == "max":
            s = out.max(dim=1).values
        else:
            y_idx = np.searchsorted(fitted_clf.classes_, y)
            s = out[torch.arange(len(y)), torch.as_tensor(y_idx)]
        grads = torch.autograd.grad(s.sum(), list(Z.values()))
    alpha = np.stack(
        [
            (g * z).detach().double().norm(dim=1).numpy()
            for g, z in zip(grads, Z.values())
        ],
        axis=1,
    )
    a = alpha / alpha.sum(1, keepdims=True)
    assert expl.params["level"] == "embedding"
    np.testing.assert_allclose(expl.sample_shares, a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expl.shares, 100 * a.mean(0), rtol=1e-5)
    assert expl.shares.sum() == pytest.approx(100.0)


def test_gradient_attribution_input_level_matches_captum(two_modal, two_tower):
    from captum.attr import InputXGradient

    X, y = two_modal
    torch.manual_seed(3)
    module = two_tower()
    expl = GradientModalityAttribution(batch_size=50).explain(module, X)
    inputs = (_t(X["a"]).requires_grad_(), _t(X["b"]).requires_grad_())
    with torch.no_grad():
        target = module(*inputs).argmax(1)
    attr = InputXGradient(lambda a, b: module(a, b)).attribute(inputs, target=target)
    alpha = np.stack([t.detach().double().norm(dim=1).numpy() for t in attr], axis=1)
    a = alpha / alpha.sum(1, keepdims=True)
    assert expl.params["level"] == "input"
    np.testing.assert_allclose(expl.sample_shares, a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expl.shares, 100 * a.mean(0), rtol=1e-5)


def test_gradient_attribution_string_labels_true_output(
    fitted_str_clf, clf_data, str_labels
):
    X, _ = clf_data
    module = fitted_str_clf.module_
    expl = GradientModalityAttribution(output="true").explain(
        fitted_str_clf, X, str_labels
    )
    y_idx = np.array([list(fitted_str_clf.classes_).index(v) for v in str_labels])
    with _evaluating(module):
        with torch.no_grad():
            Z = module.encode(**{m: _t(v) for m, v in X.items()})
        Z = {m: z.clone().requires_grad_(True) for m, z in Z.items()}
        out = module.fuse(**Z)
        s = out[torch.arange(len(y_idx)), torch.as_tensor(y_idx)].sum()
        grads = torch.autograd.grad(s, list(Z.values()))
    alpha = np.stack(
        [
            (g * z).detach().double().norm(dim=1).numpy()
            for g, z in zip(grads, Z.values())
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        expl.sample_shares, alpha / alpha.sum(1, keepdims=True), rtol=1e-5, atol=1e-7
    )
    with pytest.raises(ValueError, match="needs y"):
        GradientModalityAttribution(output="true").explain(fitted_str_clf, X)


def test_gradient_attribution_closed_forms():
    rng = np.random.default_rng(6)
    X = {"a": rng.normal(size=(30, 2)), "b": rng.normal(size=(30, 3))}
    # logit = 2 a0 + 0 * b0: d logit / d a = (2, 0), so alpha_a = |2 a0|, alpha_b = 0
    expl = GradientModalityAttribution().explain(ScoreNet({"a": 2.0, "b": 0.0}), X)
    used = X["a"][:, 0] > 0  # max logit is the non-constant one only where it is > 0
    assert expl.params["level"] == "input"
    np.testing.assert_allclose(expl.sample_shares[used], [[1.0, 0.0]] * used.sum())
    # elsewhere the max logit is the constant 0: alpha = 0 for both -> undefined
    assert np.isnan(expl.sample_shares[~used]).all()
    assert expl.params["n_undefined"] == int((~used).sum())
    np.testing.assert_allclose(expl.shares, [100.0, 0.0])
    # logit = a0 + b0 with |a0| = |b0| on every sample: 50/50 exactly
    X2 = {"a": X["a"], "b": np.abs(X["a"][:, :1]) * np.sign(X["b"][:, :1])}
    expl2 = GradientModalityAttribution(output="true").explain(
        ScoreNet({"a": 1.0, "b": 1.0}), X2, np.ones(30, dtype=int)
    )
    np.testing.assert_allclose(expl2.sample_shares, 0.5, atol=1e-7)


# ----------------------------------------------------------------------------
# 6. the shared contract
# ----------------------------------------------------------------------------
ALL_EXPLAINERS = [
    (
        PermutationModalityImportance(n_repeats=2, random_state=0),
        "utilization_",
        "shares",
    ),
    (ConditionalUtilization(), "rates_", "rates"),
    (ConditionalUtilization(ablation="input_mean"), "rates_", "rates"),
    (ModalityShapley(value="probability"), "shapley_values_", "values"),
    (
        ModalityShapley(value="correct", n_samples=5, random_state=0),
        "shapley_values_",
        "values",
    ),
    (GradientModalityAttribution(), "shares_", "shares"),
]


@pytest.mark.parametrize(
    "explainer, headline, field",
    ALL_EXPLAINERS,
    ids=[
        "permutation",
        "conditional-mean",
        "conditional-input_mean",
        "shapley-exact",
        "shapley-mc",
        "attribution",
    ],
)
def test_contract_fit_no_mutation_and_modes(
    fitted_clf, clf_data, explainer, headline, field
):
    X, y = clf_data
    X = dict(X)
    before = _copy_X(X)
    explainer = clone(explainer)
    assert explainer.fit(fitted_clf, X, y) is explainer
    assert isinstance(explainer.explanation_, ModalityExplanation)
    np.testing.assert_array_equal(
        getattr(explainer, headline), getattr(explainer.explanation_, field)
    )
    for m in X:
        np.testing.assert_array_equal(X[m], before[m])
        assert X[m].dtype == before[m].dtype
    # explain() stores nothing
    fresh = clone(explainer)
    fresh.explain(fitted_clf, X, y)
    assert not hasattr(fresh, "explanation_") and not hasattr(fresh, headline)
    # modes restored, on a copy of the model left in train mode with one
    # submodule in eval mode
    module = copy.deepcopy(fitted_clf.module_)
    module.train()
    module.encoders["b"].eval()
    modes = {name: m.training for name, m in module.named_modules()}
    expl_train = clone(explainer).explain(module, X, y)
    assert {name: m.training for name, m in module.named_modules()} == modes
    assert module.training and not module.encoders["b"].training
    module.eval()
    expl_eval = clone(explainer).explain(module, X, y)
    np.testing.assert_allclose(
        getattr(expl_train, field), getattr(expl_eval, field), atol=1e-6
    )


def test_contract_dropout_runs_in_eval_mode(two_modal):
    X, y = two_modal
    torch.manual_seed(0)
    module = DropoutTower()
    module.train()
    for explainer in (
        PermutationModalityImportance(n_repeats=2, random_state=0),
        ModalityShapley(value="probability", baseline="zero_input"),
        ConditionalUtilization(scoring="loss"),
        GradientModalityAttribution(),
    ):
        e1 = explainer.explain(module, X, y)
        e2 = explainer.explain(module, X, y)
        np.testing.assert_array_equal(e1.shares, e2.shares)  # no dropout noise
        assert module.training and module.drop.training
    base, imp = brute_permutation(ce_score(module), X, y, ("a", "b"), 2, 0)
    e = PermutationModalityImportance(n_repeats=2, random_state=0).explain(module, X, y)
    np.testing.assert_allclose(e.importances, imp, rtol=1e-5, atol=1e-7)


def test_contract_fitted_estimator_mode_restored(fitted_clf, clf_data):
    X, y = clf_data
    clf = copy.deepcopy(fitted_clf)
    clf.module_.train()
    PermutationModalityImportance(n_repeats=1, random_state=0).explain(clf, X, y)
    ModalityShapley().explain(clf, X, y)
    assert clf.module_.training
    clf.module_.eval()
    GradientModalityAttribution().explain(clf, X, y)
    assert not clf.module_.training


@pytest.mark.parametrize(
    "explainer",
    [
        PermutationModalityImportance(n_repeats=2, random_state=0),
        ModalityShapley(value="probability"),
        GradientModalityAttribution(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_contract_score_is_minus_tv_distance(fitted_clf, clf_data, explainer):
    X, y = clf_data
    shares = clone(explainer).explain(fitted_clf, X, y).shares
    assert np.isfinite(shares).all()
    uniform = clone(explainer).score(fitted_clf, X, y)
    assert uniform == pytest.approx(-tv_distance(shares, [0.5, 0.5]), abs=1e-9)
    assert clone(explainer)(fitted_clf, X, y) == pytest.approx(uniform, abs=1e-12)
    target = {"b": 0.3, "a": 0.7}
    s = clone(explainer).set_params(target=target).score(fitted_clf, X, y)
    assert s == pytest.approx(-tv_distance(shares, [0.7, 0.3]), abs=1e-9)
    assert -1 <= s <= 0 and s != pytest.approx(uniform)
    for bad in ({"a": 0.7, "b": 0.5}, {"a": 1.0}, {"a": 0.5, "b": 0.3, "c": 0.2}):
        with pytest.raises(ValueError):
            clone(explainer).set_params(target=bad).score(fitted_clf, X, y)
        with pytest.raises(ValueError):
            clone(explainer).set_params(target=bad).explain(fitted_clf, X, y)


def test_contract_conditional_score(fitted_clf, clf_data, mmtm_clf, mmtm_data):
    for model, (X, y) in ((fitted_clf, clf_data), (mmtm_clf, mmtm_data)):
        cu = ConditionalUtilization(scoring="loss")
        expl = cu.explain(model, X, y)
        assert cu.score(model, X, y) == pytest.approx(-abs(expl.d_util), abs=1e-12)
        assert cu(model, X, y) == pytest.approx(-abs(expl.d_util), abs=1e-12)
        assert expl.d_util != 0


def test_contract_grid_search_scorer(clf_data):
    X, y = clf_data
    X = ModalityDict(X)
    assert isinstance(X, ModalityDict)
    idx = np.arange(len(y))
    splits = [
        (idx[idx % 2 == 0], idx[idx % 2 == 1]),
        (idx[idx % 2 == 1], idx[idx % 2 == 0]),
    ]
    base = MultimodalClassifier(
        max_epochs=4, random_state=0, module__embedding_dim=4, module__hidden=(8,)
    )
    balance = PermutationModalityImportance(n_repeats=2, random_state=0)
    gs = GridSearchCV(
        base,
        {"lr": [1e-2, 3e-2]},
        scoring={"acc": "accuracy", "balance": balance},
        refit="acc",
        cv=splits,
        error_score="raise",
    )
    gs.fit(X, y)
    res = gs.cv_results_
    assert np.isfinite(res["mean_test_balance"]).all()
    assert ((res["mean_test_balance"] <= 0) & (res["mean_test_balance"] >= -1)).all()
    # recompute one cell by hand
    train, test = splits[1]
    est = clone(base).set_params(lr=3e-2).fit(X[train], y[train])
    shares = (
        PermutationModalityImportance(n_repeats=2, random_state=0)
        .explain(est, X[test], y[test])
        .shares
    )
    assert res["split1_test_balance"][1] == pytest.approx(
        -tv_distance(shares, [0.5, 0.5]), abs=1e-9
    )
    assert res["split1_test_acc"][1] == pytest.approx(
        np.mean(est.predict(X[test]) == y[test])
    )
    assert hasattr(gs.best_estimator_, "module_")


def test_results_frame_dict_plot(fitted_clf, clf_data):
    X, y = clf_data
    expl = PermutationModalityImportance(n_repeats=4, random_state=0).explain(
        fitted_clf, X, y
    )
    frame = expl.to_frame()
    assert list(frame.index) == ["a", "b"]
    np.testing.assert_array_equal(frame["share_percent"].to_numpy(), expl.shares)
    np.testing.assert_array_equal(
        frame["importances_mean"].to_numpy(), expl.importances_mean
    )
    np.testing.assert_array_equal(
        frame["importances_std"].to_numpy(), expl.importances_std
    )
    d = expl.as_dict()
    assert d["method"] == "permutation" and d["modalities"] == ["a", "b"]
    assert d["shares"] == {"a": expl.shares[0], "b": expl.shares[1]}
    assert d["importances_mean"]["b"] == expl.importances_mean[1]
    assert d["baseline_score"] == expl.baseline_score
    assert d["params"]["n_repeats"] == 4 and d["params"]["random_state"] == 0

    ax = expl.plot()
    assert isinstance(ax, Axes)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1
    np.testing.assert_allclose([p.get_height() for p in bars[0]], expl.shares)
    assert bars[0].errorbar is not None
    # error bar half-lengths = std over repeats of the per-repeat shares
    imp = np.clip(expl.importances, 0, None)
    per_repeat = 100 * imp / imp.sum(0, keepdims=True)
    segs = bars[0].errorbar.lines[2][0].get_segments()
    half = [abs(s[1][1] - s[0][1]) / 2 for s in segs]
    np.testing.assert_allclose(half, per_repeat.std(1), rtol=1e-6, atol=1e-9)
    plt.close("all")

    cond = ConditionalUtilization().explain(fitted_clf, X, y)
    fig, ax2 = plt.subplots()
    assert cond.plot(ax=ax2) is ax2
    frame = cond.to_frame()
    np.testing.assert_array_equal(frame["rates"].to_numpy(), cond.rates)
    assert cond.as_dict()["d_util"] == pytest.approx(cond.d_util)
    plt.close("all")

    sh = ModalityShapley(value="probability", n_samples=10, random_state=0).explain(
        fitted_clf, X, y
    )
    frame = sh.to_frame()
    np.testing.assert_allclose(frame["mean_values"].to_numpy(), sh.values.mean(0))
    np.testing.assert_allclose(
        frame["standard_error"].to_numpy(), sh.standard_errors.mean(0)
    )


@pytest.mark.parametrize(
    "cls, params",
    [
        (
            PermutationModalityImportance,
            dict(
                n_repeats=3,
                scoring="accuracy",
                random_state=4,
                target={"a": 0.5, "b": 0.5},
            ),
        ),
        (ConditionalUtilization, dict(ablation="zeros", scoring="loss")),
        (ModalityShapley, dict(value="neg_loss", baseline="mean", n_samples=9)),
        (GradientModalityAttribution, dict(output="true", batch_size=3)),
    ],
)
def test_clone_and_get_params(cls, params, fitted_clf, clf_data):
    e = cls(**params)
    got = e.get_params()
    for k, v in params.items():
        assert got[k] == v
    c = clone(e)
    assert c is not e and c.get_params() == got
    e.fit(fitted_clf, *clf_data)
    c2 = clone(e)
    assert not hasattr(c2, "explanation_")
    c2.set_params(batch_size=11)
    assert c2.get_params()["batch_size"] == 11 and e.get_params()["batch_size"] != 11


def test_clear_errors(fitted_clf, clf_data, two_modal, two_tower):
    X, y = clf_data
    for explainer in (
        PermutationModalityImportance(),
        ConditionalUtilization(),
        ModalityShapley(),
        GradientModalityAttribution(),
    ):
        with pytest.raises(ValueError, match="not fitted"):
            explainer.explain(MultimodalClassifier(), X, y)
        with pytest.raises(ValueError, match="missing modality 'b'"):
            explainer.explain(fitted_clf, {"a": X["a"]}, y)
        with pytest.raises(ValueError, match="unknown modality 'c'"):
            explainer.explain(fitted_clf, dict(X, c=X["a"]), y)
    with pytest.raises(ValueError, match="value"):
        ModalityShapley(value="accuracy").explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="baseline"):
        ModalityShapley(baseline="noise").explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="ablation"):
        ConditionalUtilization(ablation="drop").explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="mmtm"):
        ConditionalUtilization(ablation="mmtm").explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="n_repeats"):
        PermutationModalityImportance(n_repeats=0).explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="needs y"):
        PermutationModalityImportance().explain(fitted_clf, X)
    with pytest.raises(ValueError, match="miou"):
        PermutationModalityImportance(scoring="miou").explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="max_samples"):
        PermutationModalityImportance(max_samples=500).explain(fitted_clf, X, y)
    with pytest.raises(ValueError, match="labels not among"):
        PermutationModalityImportance().explain(fitted_clf, X, y + 5)
    Xr, yr = two_modal
    raw = two_tower()
    with pytest.raises(ValueError, match="encode/fuse"):
        ModalityShapley(baseline="zeros").explain(raw, Xr, yr)
    with pytest.raises(ValueError, match="encode/fuse"):
        ModalityShapley(baseline="mean").explain(raw, Xr, yr)
    with pytest.raises(ValueError, match="encode/fuse"):
        ConditionalUtilization(ablation="mean").explain(raw, Xr, yr)
    with pytest.raises(ValueError, match="encode/fuse"):
        GradientModalityAttribution(level="embedding").explain(raw, Xr, yr)
    with pytest.raises(TypeError):
        PermutationModalityImportance().explain(object(), Xr, yr)


# ----------------------------------------------------------------------------
# 7. segmentation
# ----------------------------------------------------------------------------
def test_segmentation_permutation_loss_matches_brute(fitted_seg, seg_data):
    X, y = seg_data
    module = fitted_seg.module_
    expl = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        fitted_seg, X, y
    )
    base, imp = brute_permutation(
        ce_score(module, ignore_index=IGNORE), X, y, ("rgb", "dolp"), 2, 0
    )
    assert expl.params["path"] == "embeddings"
    assert expl.baseline_score == pytest.approx(base, rel=1e-5)
    np.testing.assert_allclose(expl.importances, imp, rtol=1e-4, atol=1e-6)
    assert np.abs(imp).max() > 1e-4
    slow = PermutationModalityImportance(
        n_repeats=2, random_state=0, fast=False, batch_size=5
    ).explain(fitted_seg, X, y)
    np.testing.assert_allclose(slow.importances, imp, rtol=1e-4, atol=1e-6)


def hand_miou(y_true, y_pred, n_classes, ignore):
    keep = y_true != ignore
    t, p = y_true[keep], y_pred[keep]
    ious = []
    for c in range(n_classes):
        inter = np.sum((t == c) & (p == c))
        union = np.sum((t == c) | (p == c))
        if union > 0:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_segmentation_permutation_miou(fitted_seg, seg_data):
    X, y = seg_data
    module = fitted_seg.module_
    n_classes = fitted_seg.n_classes_

    def score(Xs, ys):
        pred = logits_of(module, Xs).argmax(1).numpy()
        return hand_miou(ys, pred, n_classes, IGNORE)

    expl = PermutationModalityImportance(
        n_repeats=2, random_state=1, scoring="miou"
    ).explain(fitted_seg, X, y)
    base, imp = brute_permutation(score, X, y, ("rgb", "dolp"), 2, 1, greater=True)
    assert expl.params["scoring"] == "miou"
    assert expl.baseline_score == pytest.approx(base, abs=1e-9)
    assert expl.baseline_score == pytest.approx(fitted_seg.score(X, y), abs=1e-9)
    np.testing.assert_allclose(expl.importances, imp, atol=1e-9)


def test_segmentation_shapley_probability(fitted_seg, seg_data):
    X, y = seg_data
    module = fitted_seg.module_
    expl = ModalityShapley(value="probability").explain(fitted_seg, X, y)
    assert expl.values.shape == (12, 2)
    valid = y != IGNORE
    y0 = np.where(valid, y, 0)

    def per_sample_prob(out):
        p = torch.softmax(out.double(), 1).numpy()
        py = np.take_along_axis(p, y0[:, None], axis=1)[:, 0]
        return (py * valid).sum((1, 2)) / valid.sum((1, 2))

    with _evaluating(module), torch.no_grad():
        Z = module.encode(**{m: _t(v) for m, v in X.items()})
        v_all = per_sample_prob(module.fuse(**Z))
        v_empty = per_sample_prob(
            module.fuse(**{m: torch.zeros_like(z) for m, z in Z.items()})
        )
        v_rgb = per_sample_prob(
            module.fuse(rgb=Z["rgb"], dolp=torch.zeros_like(Z["dolp"]))
        )
        v_dolp = per_sample_prob(
            module.fuse(rgb=torch.zeros_like(Z["rgb"]), dolp=Z["dolp"])
        )
    np.testing.assert_allclose(expl.base_values, v_empty, atol=1e-6)
    np.testing.assert_allclose(expl.values.sum(1), v_all - v_empty, atol=1e-6)
    assert expl.params["efficiency_gap"] <= 1e-12
    # two players: phi_rgb = (v(rgb) - v(empty) + v(all) - v(dolp)) / 2
    np.testing.assert_allclose(
        expl.values[:, 0], (v_rgb - v_empty + v_all - v_dolp) / 2, atol=1e-6
    )


def test_segmentation_ignore_index_only_pixels_excluded(fitted_seg, seg_data):
    X, y = seg_data
    # relabelling ignored pixels to another ignored value changes nothing, and
    # the scores differ from those computed with every pixel valid
    e1 = PermutationModalityImportance(n_repeats=1, random_state=0).explain(
        fitted_seg, X, y
    )
    y_all = np.where(y == IGNORE, 0, y)
    e2 = PermutationModalityImportance(n_repeats=1, random_state=0).explain(
        fitted_seg, X, y_all
    )
    full = ce_score(fitted_seg.module_)(X, y_all)
    assert e2.baseline_score == pytest.approx(full, rel=1e-5)
    assert e1.baseline_score != pytest.approx(e2.baseline_score, rel=1e-6)


def test_modality_explanation_is_public():
    import mmexplain

    assert mmexplain.ModalityExplanation is ModalityExplanation


def test_no_warnings_on_normal_use(fitted_clf, clf_data):
    X, y = clf_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PermutationModalityImportance(n_repeats=2, random_state=0).explain(
            fitted_clf, X, y
        )
        ConditionalUtilization().explain(fitted_clf, X, y)
        ModalityShapley().explain(fitted_clf, X, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_shapley_gives_a_noise_modality_little_share(seed):
    """The default value function measures use: a pure-noise modality (M=4) stays
    under 10% of the shares, while the paper's |S| x correct credits its presence."""
    X, y = make_multimodal_classification(
        n_samples=600,
        modalities=4,
        informativeness=[1.0, 0.8, 0.6, 0.0],
        random_state=seed,
    )
    clf = MultimodalClassifier(max_epochs=20, random_state=seed).fit(X, y)
    default = ModalityShapley().explain(clf, X, y)
    assert default.params["value"] == "probability"
    assert default.shares[3] < 10.0
    assert default.shares[0] > default.shares[3] + 25
    paper = ModalityShapley(value="correct").explain(clf, X, y)
    assert paper.shares[3] > 15.0  # credited for being present
    np.testing.assert_allclose(
        default.mean_abs_values, np.abs(default.values).mean(axis=0)
    )


# ----------------------------------------------------------------------------
# regressions found by review
# ----------------------------------------------------------------------------
class _TwoConvSeg(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 3, 1), nn.Conv2d(1, 3, 1)

    def forward(self, a, b):
        return self.a(a) + self.b(b)


def test_attribution_max_output_ignores_y_and_its_ignore_pixels():
    torch.manual_seed(0)
    module = _TwoConvSeg().eval()
    rng = np.random.default_rng(0)
    X = {m: rng.random((4, 1, 5, 5), dtype=np.float32) for m in "ab"}
    y = np.zeros((4, 5, 5), dtype=int)
    y[0] = 255  # an ignore pixel value the max-logit attribution never reads
    with_y = GradientModalityAttribution().explain(module, X, y)
    without = GradientModalityAttribution().explain(module, X)
    np.testing.assert_allclose(with_y.sample_shares, without.sample_shares)


class _HugeFiniteFloat64(nn.Module):
    def forward(self, a):
        z = a[:, 0].double() * 1e308  # finite, but a float64 sum of them overflows
        return torch.stack([z, -z], dim=1)


def test_large_finite_float64_outputs_are_not_refused_as_non_finite():
    X = {"a": np.full((50, 1), 0.9, dtype=np.float32)}
    expl = PermutationModalityImportance(
        n_repeats=2, random_state=0, scoring="accuracy"
    )
    with pytest.warns(RuntimeWarning, match="undefined"):  # constant input: MU 0
        out = expl.explain(_HugeFiniteFloat64(), X, np.zeros(50, dtype=int))
    np.testing.assert_array_equal(out.importances, 0.0)


def test_auto_batch_size_on_a_gpu_always_fits_the_free_memory(monkeypatch):
    from mmexplain._core.torch_state import auto_batch_size

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (16 << 30, 0))
    image = 3 * 512 * 512 * 4  # bytes of one float32 3x512x512 row
    rows = auto_batch_size("auto", "cuda", image)
    assert rows * 4 * image <= (16 << 30) / 16 and rows & (rows - 1) == 0
    assert auto_batch_size("auto", "cuda", 64) == 262_144  # small rows: the cap
    assert auto_batch_size("auto", "cuda", 1 << 40) == 1  # never 0
    assert auto_batch_size("auto", "cpu", image) == 4096
    assert auto_batch_size(77, "cuda", image) == 77


def test_auto_batch_size_is_resolved_once_per_explain(
    monkeypatch, two_modal, two_tower
):
    import mmexplain.explainers.base as base

    X, y = two_modal
    calls = []

    def fake(batch_size, device, row_bytes, **kwargs):
        calls.append(batch_size)
        return 16 + len(calls)  # a different answer on every call

    monkeypatch.setattr(base, "auto_batch_size", fake)
    torch.manual_seed(0)
    expl = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        two_tower().eval(), X, y
    )
    assert calls == ["auto"] and expl.params["batch_size"] == 17


def test_true_class_attribution_skips_ignore_pixels():
    from mmexplain import MultimodalSegmenter
    from mmexplain.datasets import make_multimodal_segmentation

    X, y = make_multimodal_segmentation(n_samples=6, image_size=8, random_state=0)
    y = np.asarray(y).copy()
    y[0, :2] = 255  # ignored pixels: no class to gather, no contribution
    seg = MultimodalSegmenter(max_epochs=1, ignore_index=255, random_state=0).fit(X, y)
    got = GradientModalityAttribution(output="true").explain(seg, X, y).sample_shares
    # reference: autograd by hand, summing the true-class logit over valid pixels
    module = seg.module_.eval()
    Xt = {m: torch.as_tensor(np.asarray(v), dtype=torch.float32) for m, v in X.items()}
    with torch.no_grad():
        Z = module.encode(**Xt)
    Z = {m: z.clone().requires_grad_(True) for m, z in Z.items()}
    out = module.fuse(**Z)
    yt = torch.as_tensor(y)
    valid = yt != 255
    sel = out.gather(1, torch.where(valid, yt, 0).unsqueeze(1)).squeeze(1) * valid
    grads = torch.autograd.grad(sel.sum(), list(Z.values()))
    alpha = torch.stack(
        [(g * z).flatten(1).norm(dim=1) for g, z in zip(grads, Z.values())], dim=1
    )
    want = (alpha / alpha.sum(1, keepdim=True)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
