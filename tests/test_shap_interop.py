"""to_shap(): Shapley and attribution results in every fitting shap.plots function."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import shap  # noqa: E402

from mmexplain import MultimodalClassifier  # noqa: E402
from mmexplain.datasets import make_multimodal_classification  # noqa: E402
from mmexplain.explainers import (  # noqa: E402
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
)
from mmexplain.results import modality_summary  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::PendingDeprecationWarning", "ignore::FutureWarning"
)


@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal_classification(
        n_samples=60, modalities=3, n_features=(3, 2, 4), random_state=0
    )
    clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    return clf, X, y


def _plots(sh, with_data):
    plots = {
        "bar": lambda: shap.plots.bar(sh, show=False),
        "beeswarm": lambda: shap.plots.beeswarm(sh, show=False),
        "heatmap": lambda: shap.plots.heatmap(sh, show=False),
        "violin": lambda: shap.plots.violin(sh, show=False),
        "waterfall": lambda: shap.plots.waterfall(sh[0], show=False),
    }
    if with_data:
        plots["scatter"] = lambda: shap.plots.scatter(sh[:, "m0"], show=False)
    return plots


@pytest.mark.parametrize("method", ["shapley", "attribution"])
def test_to_shap_draws_every_fitting_plot(fitted, method):
    clf, X, y = fitted
    if method == "shapley":
        expl = ModalityShapley().explain(clf, X, y)
        expected = expl.values
    else:
        expl = GradientModalityAttribution().explain(clf, X, y)
        expected = expl.sample_shares * 100
    sh = expl.to_shap(X)
    np.testing.assert_array_equal(sh.values, expected)
    assert list(sh.feature_names) == ["m0", "m1", "m2"]
    # data: each modality's per-sample feature mean, computed by hand
    for j, m in enumerate(["m0", "m1", "m2"]):
        np.testing.assert_allclose(
            sh.data[:, j], np.asarray(X[m], dtype=float).mean(axis=1)
        )
    for name, plot in _plots(sh, with_data=True).items():
        plt.figure()
        plot()
        assert plt.gcf().axes, name
        plt.close("all")
    # without X every plot but scatter still works
    bare = expl.to_shap()
    assert bare.data is None
    for name, plot in _plots(bare, with_data=False).items():
        plt.figure()
        plot()
        assert plt.gcf().axes, name
        plt.close("all")


def test_summaries_and_errors():
    X = {"a": np.array([[3.0, 4.0], [1.0, -2.0]]), "b": np.arange(8.0).reshape(2, 2, 2)}
    mods = ("a", "b")
    np.testing.assert_allclose(
        modality_summary(X, mods, 2, "norm"),
        [[5.0, np.sqrt(0 + 1 + 4 + 9)], [np.sqrt(5.0), np.sqrt(16 + 25 + 36 + 49)]],
    )
    np.testing.assert_allclose(modality_summary(X, mods, 2, "max"), [[4, 3], [1, 7]])
    np.testing.assert_allclose(
        modality_summary(X, mods, 2, lambda a: a.reshape(len(a), -1)[:, 0]),
        [[3, 0], [1, 4]],
    )
    given = np.ones((2, 2))
    np.testing.assert_array_equal(modality_summary(given, mods, 2), given)
    with pytest.raises(ValueError, match=r"\(N, M\) = \(2, 2\) summary"):
        modality_summary(np.ones((3, 2)), mods, 2)
    with pytest.raises(ValueError, match="lacks modality 'b'"):
        modality_summary({"a": X["a"]}, mods, 2)
    with pytest.raises(ValueError, match="modality 'a' of X has 2 rows"):
        modality_summary(X, mods, 3)
    with pytest.raises(ValueError, match="summary must be"):
        modality_summary(X, mods, 2, "median")


def test_methods_without_per_sample_values_refuse(fitted):
    clf, X, y = fitted
    expl = ConditionalUtilization().explain(clf, X, y)
    with pytest.raises(
        ValueError, match="Shapley explanation .* or a gradient attribution"
    ):
        expl.to_shap()
