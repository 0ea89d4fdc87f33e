"""Per-class utilization: the same permutations, summed per class, against a loop."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mmexplain import MultimodalClassifier  # noqa: E402
from mmexplain.datasets import make_multimodal_classification  # noqa: E402
from mmexplain.explainers import PermutationModalityImportance  # noqa: E402
from mmexplain.statistics import normalize_rows  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal_classification(
        n_samples=150, n_classes=3, n_features=(4, 3), random_state=0
    )
    labels = np.array(["cat", "dog", "eel"])[y]
    clf = MultimodalClassifier(max_epochs=10, random_state=0).fit(X, labels)
    return clf, X, y, labels


def _per_row(clf, X, y, scoring):
    module = clf.module_.eval()
    with torch.no_grad():
        out = module(**{m: torch.as_tensor(v) for m, v in X.items()})
    if scoring == "loss":
        return torch.nn.functional.cross_entropy(
            out, torch.as_tensor(y), reduction="none"
        ).numpy()
    return (out.argmax(1).numpy() == y).astype(float)


@pytest.mark.parametrize("scoring", ["loss", "accuracy"])
@pytest.mark.parametrize("n_bootstrap", [0, 7])
def test_per_class_equals_a_loop_over_classes(fitted, scoring, n_bootstrap):
    clf, X, y, labels = fitted
    kw = dict(n_repeats=2, random_state=0, scoring=scoring, n_bootstrap=n_bootstrap)
    expl = PermutationModalityImportance(per_class=True, **kw).explain(clf, X, labels)
    plain = PermutationModalityImportance(**kw).explain(clf, X, labels)
    # the overall numbers and the model work are those without per_class
    np.testing.assert_allclose(expl.importances, plain.importances, rtol=1e-10)
    assert expl.params["model_calls"] == plain.params["model_calls"]
    rng = np.random.RandomState(0)
    perms = [rng.permutation(len(y)) for _ in range(2)]
    base = _per_row(clf, X, y, scoring)
    sign = -1 if scoring == "accuracy" else 1
    want = np.zeros((3, 2))
    for k in range(3):
        rows = y == k
        for j, m in enumerate(X):
            changes = [
                _per_row(clf, {**X, m: X[m][p]}, y, scoring)[rows].mean()
                - base[rows].mean()
                for p in perms
            ]
            want[k, j] = sign * np.mean(changes)
    np.testing.assert_allclose(expl.class_importances, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(expl.class_shares, normalize_rows(want), atol=1e-4)
    assert expl.classes.tolist() == ["cat", "dog", "eel"]
    ax = expl.plot(kind="classes")
    np.testing.assert_allclose(ax.images[0].get_array(), expl.class_shares.T)


def test_a_class_without_samples_is_nan(fitted):
    clf, X, y, labels = fitted
    keep = y != 2
    expl = PermutationModalityImportance(
        n_repeats=1, random_state=0, per_class=True
    ).explain(clf, {m: v[keep] for m, v in X.items()}, labels[keep])
    assert np.isnan(expl.class_importances[2]).all()
    assert np.isfinite(expl.class_importances[:2]).all()


def test_per_class_refusals(fitted):
    clf, X, _, labels = fitted
    with pytest.raises(ValueError, match="adds up over rows"):
        PermutationModalityImportance(per_class=True, scoring="f1_macro").explain(
            clf, X, labels
        )
    with pytest.raises(ValueError, match="cannot be combined"):
        PermutationModalityImportance(per_class=True, class_index=0).explain(
            clf, X, labels
        )
    # class_index needs no y: the same refusal without it (was an AttributeError)
    with pytest.raises(ValueError, match="cannot be combined"):
        PermutationModalityImportance(per_class=True, class_index=0).explain(clf, X)
    plain = PermutationModalityImportance(n_repeats=1).explain(clf, X, labels)
    with pytest.raises(ValueError, match="no per-class shares"):
        plain.plot(kind="classes")
    with pytest.raises(ValueError, match="kind must be"):
        plain.plot(kind="pie")


@pytest.mark.parametrize("n_bootstrap", [0, 5])
def test_conditional_per_class_equals_explaining_each_class(fitted, n_bootstrap):
    """With the reference fixed, a class's rates are those of its samples alone."""
    from mmexplain.explainers import ConditionalUtilization

    clf, X, y, labels = fitted
    kw = dict(reference=X, n_bootstrap=n_bootstrap, random_state=0)
    expl = ConditionalUtilization(per_class=True, **kw).explain(clf, X, labels)
    plain = ConditionalUtilization(**kw).explain(clf, X, labels)
    np.testing.assert_allclose(expl.rates, plain.rates, rtol=1e-12)
    for k in range(3):
        rows = y == k
        alone = ConditionalUtilization(reference=X).explain(
            clf, {m: v[rows] for m, v in X.items()}, labels[rows]
        )
        np.testing.assert_allclose(expl.class_rates[k], alone.rates, atol=1e-12)
    assert expl.classes.tolist() == ["cat", "dog", "eel"]
    expl.plot(kind="classes")


def test_shapley_per_class_is_the_mean_value_of_each_class(fitted):
    from mmexplain.explainers import ModalityShapley

    clf, X, y, labels = fitted
    expl = ModalityShapley(per_class=True).explain(clf, X, labels)
    for k in range(3):
        np.testing.assert_allclose(
            expl.class_values[k], expl.values[y == k].mean(axis=0), atol=1e-12
        )
    np.testing.assert_allclose(expl.class_shares, normalize_rows(expl.class_values))
    assert expl.classes.tolist() == ["cat", "dog", "eel"]
    expl.plot(kind="classes")
