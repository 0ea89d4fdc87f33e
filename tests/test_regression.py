"""MultimodalRegressor and every explainer on regression, against independent references.

References: scikit-learn's metrics and scorers on predictions computed by
hand on permuted or ablated copies of the data (brute force), closed forms
for a least-squares linear model, and models built so that a modality is
ignored (exactly zero) or contributes additively (Shapley values known).
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_regressor
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import NotFittedError
from sklearn.metrics import get_scorer, mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from torch import nn

from mmexplain import ModalityTransformer, MultimodalRegressor
from mmexplain.balancers import (
    OGMGE,
    AttributionRegularizer,
    ModalityDropout,
    SampleValuation,
    UtilizationTarget,
)
from mmexplain.datasets import load_diabetes_views, make_multimodal_regression
from mmexplain.explainers import (
    ConditionalUtilization,
    ForwardModel,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.persistence import load_model, save_model
from mmexplain.statistics import bootstrap_counts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_regression(
        400,
        modalities=["strong", "weak"],
        informativeness=[2.0, 0.5],
        random_state=0,
    )


@pytest.fixture(scope="module")
def reg(data):
    X, y = data
    return MultimodalRegressor(max_epochs=15, lr=3e-3, random_state=0).fit(X, y)


class Linear(nn.Module):
    """``f(X) = sum_m X[m] @ W[m] + b`` (float64 weights held as float32)."""

    def __init__(self, weights, bias):
        super().__init__()
        self.names = list(weights)
        for m, w in weights.items():
            self.register_buffer(f"w_{m}", torch.as_tensor(w, dtype=torch.float32))
        self.register_buffer("b", torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, **X):
        return sum(X[m] @ getattr(self, f"w_{m}") for m in self.names) + self.b


def _least_squares(X, y):
    """Per-modality weights of the least-squares fit of y (N, T) on all features."""
    names = list(X)
    A = np.hstack([X[m] for m in names] + [np.ones((len(y), 1), np.float32)])
    coef = np.linalg.lstsq(A.astype(np.float64), y.reshape(len(y), -1), rcond=None)[0]
    out, start = {}, 0
    for m in names:
        out[m] = coef[start : start + X[m].shape[1]]
        start += X[m].shape[1]
    return out, coef[-1]


def _predict(weights, bias, X):
    return sum(X[m].astype(np.float64) @ weights[m] for m in weights) + bias


def _linear_model(X, y):
    weights, bias = _least_squares(X, y)
    model = ForwardModel(Linear(weights, bias), task="regression")
    return model, weights, bias


def _shared_permutations(seed, n, n_repeats):
    """The permutations PermutationModalityImportance draws (one per repeat)."""
    rng = check_random_state(seed)
    return [rng.permutation(n) for _ in range(n_repeats)]


# ----------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------
def test_predict_shapes_and_score_is_r2(data, reg):
    X, y = data
    pred = reg.predict(X)
    assert pred.shape == (len(y),) and pred.dtype == np.float64
    assert reg.score(X, y) == pytest.approx(r2_score(y, pred), abs=1e-6)
    assert reg.score(X, y) > 0.9
    assert reg.n_outputs_ == 1 and reg.y_ndim_ == 1
    assert is_regressor(reg) and not hasattr(reg, "predict_proba")


def test_several_targets():
    X, y = make_multimodal_regression(300, n_targets=3, random_state=1)
    reg = MultimodalRegressor(max_epochs=20, lr=3e-3, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (300, 3) and reg.n_outputs_ == 3
    assert reg.score(X, y) == pytest.approx(r2_score(y, pred), abs=1e-6)
    with pytest.raises(
        ValueError, match="2 targets per sample but the model was fitted on 3"
    ):
        reg.partial_fit(X, y[:, :2])
    with pytest.raises(
        ValueError, match="2 targets per sample but the model predicts 3"
    ):
        reg.score(X, y[:, :2])


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda y: y.astype(str), TypeError, "real numbers"),
        (lambda y: np.where(np.arange(len(y)) == 3, np.nan, y), ValueError, "NaN"),
        (lambda y: y.reshape(-1, 1, 1), ValueError, r"\(N,\) or \(N, n_targets\)"),
        (lambda y: y * 1e39, ValueError, "beyond float32"),
        (lambda y: y[:-1], ValueError, "rows but X has"),
    ],
)
def test_bad_targets_are_refused(data, bad, error, match):
    X, y = data
    with pytest.raises(error, match=match):
        MultimodalRegressor(max_epochs=1).fit(X, bad(y.astype(np.float64)))


def test_clone_pickle_and_seeded_determinism(data, reg):
    X, y = data
    twin = clone(reg).fit(X, y)
    np.testing.assert_array_equal(twin.predict(X), reg.predict(X))
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


def test_save_and_load_model(tmp_path, data, reg):
    X, _ = data
    path = tmp_path / "reg.mmx"
    save_model(reg, path)
    loaded = load_model(path)
    assert type(loaded) is MultimodalRegressor
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    assert loaded.n_outputs_ == 1 and loaded.y_ndim_ == 1


def test_sklearn_tools():
    X, y = make_multimodal_regression(240, random_state=2)
    est = MultimodalRegressor(
        balancer=ModalityDropout(p=0.1), max_epochs=10, lr=3e-3, random_state=0
    )
    scores = cross_val_score(est, X, y, cv=3)  # RegressorMixin: R^2
    assert scores.shape == (3,) and np.all(scores > 0.5)
    search = GridSearchCV(est, {"balancer__p": [0.0, 0.3]}, cv=2).fit(X, y)
    assert search.best_params_["balancer__p"] in (0.0, 0.3)
    pipe = make_pipeline(
        ModalityTransformer({m: StandardScaler() for m in X}),
        MultimodalRegressor(max_epochs=10, lr=3e-3, random_state=0),
    ).fit(X, y)
    expl = PermutationModalityImportance(random_state=0).explain(pipe, X, y)
    assert expl.params["unwrapped"] == ("Pipeline",)


def test_transformed_target_on_diabetes():
    """The bundled real set: y in 25..346 trains well only once standardized."""
    X, y = load_diabetes_views()
    ttr = TransformedTargetRegressor(
        regressor=MultimodalRegressor(max_epochs=40, lr=3e-3, random_state=0),
        transformer=StandardScaler(),
    ).fit(X, y)
    assert ttr.score(X, y) > 0.4
    by_hand = PermutationModalityImportance(random_state=0).explain(
        ttr.regressor_, X, ttr.transformer_.transform(y.reshape(-1, 1))
    )
    assert np.all(by_hand.importances_mean > 0)  # both views carry signal
    # the TransformedTargetRegressor itself: its network on the transformed y
    expl = PermutationModalityImportance(random_state=0).explain(ttr, X, y)
    assert expl.params["unwrapped"] == ("TransformedTargetRegressor",)
    np.testing.assert_allclose(expl.importances, by_hand.importances, rtol=1e-6)
    phi = ModalityShapley(value="neg_loss").explain(ttr, X, y)
    ref = ModalityShapley(value="neg_loss").explain(
        ttr.regressor_, X, ttr.transformer_.transform(y.reshape(-1, 1))[:, 0]
    )
    np.testing.assert_allclose(phi.values, ref.values, rtol=1e-5, atol=1e-6)


def test_transformed_target_around_a_pipeline_inside_a_search():
    X, y = make_multimodal_regression(200, random_state=3, bias=100.0)
    ttr = TransformedTargetRegressor(
        regressor=make_pipeline(
            ModalityTransformer({m: StandardScaler() for m in X}),
            MultimodalRegressor(max_epochs=5, lr=3e-3, random_state=0),
        ),
        transformer=StandardScaler(),
    )
    search = GridSearchCV(ttr, {"regressor__multimodalregressor__lr": [3e-3]}, cv=2)
    search.fit(X, y)
    expl = PermutationModalityImportance(random_state=0).explain(search, X, y)
    assert expl.params["unwrapped"] == (
        "GridSearchCV",
        "TransformedTargetRegressor",
        "Pipeline",
    )
    inner = search.best_estimator_
    Xt = inner.regressor_[:-1].transform(X)
    ref = PermutationModalityImportance(random_state=0).explain(
        inner.regressor_[-1], Xt, inner.transformer_.transform(y.reshape(-1, 1))
    )
    np.testing.assert_allclose(expl.importances, ref.importances, rtol=1e-6)
    with pytest.raises(NotFittedError):
        PermutationModalityImportance().explain(clone(ttr), X, y)


def test_load_diabetes_views_matches_sklearn():
    from sklearn.datasets import load_diabetes

    X, y, names = load_diabetes_views(return_feature_names=True)
    bunch = load_diabetes()
    cols = list(bunch.feature_names)
    for view, feats in names.items():
        idx = [cols.index(f) for f in feats]
        np.testing.assert_array_equal(X[view], bunch.data[:, idx].astype(np.float32))
    np.testing.assert_array_equal(y, bunch.target.astype(np.float32))
    assert sorted(f for f in sum(names.values(), [])) == sorted(cols)


def test_make_multimodal_regression_contributions():
    X, y, c = make_multimodal_regression(
        500,
        n_targets=2,
        modalities=3,
        informativeness=[1.0, 0.5, 0.0],
        noise=0.0,
        bias=3.0,
        random_state=4,
        return_contributions=True,
    )
    np.testing.assert_allclose(y, 3.0 + sum(c.values()), rtol=1e-6, atol=1e-5)
    assert np.all(c["m2"] == 0)
    again = make_multimodal_regression(
        500,
        n_targets=2,
        modalities=3,
        informativeness=[1.0, 0.5, 0.0],
        noise=0.0,
        bias=3.0,
        random_state=4,
    )
    np.testing.assert_array_equal(again[1], y)
    with pytest.raises(ValueError, match="one target noise"):
        make_multimodal_regression(10, modalities={"a": {"noise": 1.0}})


# ----------------------------------------------------------------------------
# permutation utilization
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scoring",
    [
        "loss",
        "r2",
        "neg_mean_squared_error",
        "neg_root_mean_squared_error",
        "neg_mean_absolute_error",
        "explained_variance",
        "neg_median_absolute_error",
        "neg_max_error",
    ],
)
def test_permutation_equals_brute_force(data, scoring):
    X, y = data
    model, weights, bias = _linear_model(X, y)
    n_repeats = 3
    expl = PermutationModalityImportance(
        n_repeats=n_repeats, scoring=scoring, random_state=5
    ).explain(model, X, y)
    # the metric of each scoring, as a higher-is-better score
    name = "neg_mean_squared_error" if scoring == "loss" else scoring
    metric = get_scorer(name)._score_func
    sign = -1.0 if name.startswith("neg_") else 1.0

    def score(Xp):
        return sign * metric(y.astype(np.float64), _predict(weights, bias, Xp)[:, 0])

    base = score(X)
    perms = _shared_permutations(5, len(y), n_repeats)
    ref = np.array([[base - score({**X, m: X[m][p]}) for p in perms] for m in X])
    np.testing.assert_allclose(expl.importances, ref, rtol=2e-4, atol=1e-6)
    assert expl.baseline_score == pytest.approx(
        -base if scoring == "loss" else base, rel=1e-5
    )


def test_permutation_per_target_equals_sklearn_raw_values():
    X, y = make_multimodal_regression(300, n_targets=3, random_state=6)
    model, weights, bias = _linear_model(X, y)
    expl = PermutationModalityImportance(
        n_repeats=2, scoring="r2", random_state=0
    ).explain(model, X, y)
    perms = _shared_permutations(0, len(y), 2)
    base = r2_score(y, _predict(weights, bias, X), multioutput="raw_values")
    ref = np.array(
        [
            np.mean(
                [
                    base
                    - r2_score(
                        y,
                        _predict(weights, bias, {**X, m: X[m][p]}),
                        multioutput="raw_values",
                    )
                    for p in perms
                ],
                axis=0,
            )
            for m in X
        ]
    ).T  # (T, M)
    np.testing.assert_allclose(expl.target_importances, ref, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(expl.importances_mean, ref.mean(axis=0), rtol=2e-4)
    assert expl.target_shares.shape == (3, 2)


def test_permutation_mse_increase_matches_the_closed_form():
    """Least squares on independent modalities: permuting m adds 2 w_m^2 to the MSE."""
    X, y = make_multimodal_regression(
        20000,
        modalities=["a", "b", "c"],
        informativeness=[1.5, 0.7, 0.0],
        noise=0.3,
        random_state=7,
    )
    model, *_ = _linear_model(X, y)
    expl = PermutationModalityImportance(
        n_repeats=3, scoring="neg_mean_squared_error", random_state=0
    ).explain(model, X, y)
    np.testing.assert_allclose(
        expl.importances_mean, 2 * np.array([1.5, 0.7, 0.0]) ** 2, rtol=0.05, atol=2e-3
    )


def test_bootstrap_replicates_equal_r2_on_resampled_rows(data):
    X, y = data
    model, weights, bias = _linear_model(X, y)
    expl = PermutationModalityImportance(
        n_repeats=1, scoring="r2", random_state=3, n_bootstrap=5
    ).explain(model, X, y)
    (p,) = _shared_permutations(3, len(y), 1)
    counts = np.concatenate(list(bootstrap_counts(len(y), 5, 3)))
    base = _predict(weights, bias, X)[:, 0]
    for b, w in enumerate(counts):
        full = r2_score(y, base, sample_weight=w)
        ref = [
            full
            - r2_score(
                y, _predict(weights, bias, {**X, m: X[m][p]})[:, 0], sample_weight=w
            )
            for m in X
        ]
        np.testing.assert_allclose(expl.bootstrap_values[b], ref, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------
# a modality the model ignores gets exactly 0; Shapley of an additive model
# ----------------------------------------------------------------------------
class Additive(nn.Module):
    """``f = g_a(a) + g_b(b) + 0 * c``: a nonlinear additive model ignoring ``c``."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.ga = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.gb = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, a, b, c):
        return self.ga(a) + self.gb(b)


@pytest.fixture(scope="module")
def additive():
    rng = np.random.default_rng(0)
    X = {
        "a": rng.normal(size=(200, 4)).astype(np.float32),
        "b": rng.normal(size=(200, 3)).astype(np.float32),
        "c": rng.normal(size=(200, 2)).astype(np.float32),
    }
    module = Additive().eval()
    with torch.no_grad():
        f = module(**{m: torch.as_tensor(v) for m, v in X.items()}).numpy()[:, 0]
    y = f + 0.3 * rng.normal(size=200).astype(np.float32)
    return ForwardModel(module, task="regression"), module, X, y


def test_shapley_of_an_additive_model_is_each_modality_s_own_contribution(additive):
    model, module, X, y = additive
    expl = ModalityShapley(baseline="zero_input").explain(model, X, y)
    assert expl.params["value"] == "prediction"
    with torch.no_grad():
        own = {
            "a": (module.ga(torch.as_tensor(X["a"])) - module.ga(torch.zeros(1, 4))),
            "b": (module.gb(torch.as_tensor(X["b"])) - module.gb(torch.zeros(1, 3))),
        }
    np.testing.assert_allclose(expl.values[:, 0], own["a"].numpy()[:, 0], atol=1e-5)
    np.testing.assert_allclose(expl.values[:, 1], own["b"].numpy()[:, 0], atol=1e-5)
    assert np.all(expl.values[:, 2] == 0)
    # shares of the mean absolute values (a prediction moves both ways)
    mean_abs = np.abs(expl.values).mean(axis=0)
    np.testing.assert_allclose(expl.shares, 100 * mean_abs / mean_abs.sum())
    # no y needed for the prediction
    np.testing.assert_array_equal(
        ModalityShapley(baseline="zero_input").explain(model, X).values, expl.values
    )


def test_ignored_modality_gets_exactly_zero(additive):
    model, _, X, y = additive
    for scoring in (
        "loss",
        "r2",
        "neg_mean_absolute_error",
        "neg_median_absolute_error",
    ):
        expl = PermutationModalityImportance(scoring=scoring, random_state=0).explain(
            model, X, y
        )
        assert np.all(expl.importances[2] == 0), scoring
    for value in ("prediction", "neg_loss"):
        expl = ModalityShapley(value=value, baseline="zero_input").explain(model, X, y)
        assert np.all(expl.values[:, 2] == 0), value
    for scoring in ("auto", "loss"):
        expl = ConditionalUtilization(scoring=scoring).explain(model, X, y)
        assert expl.rates[2] == 0, scoring
    expl = GradientModalityAttribution().explain(model, X)
    assert np.all(expl.sample_shares[:, 2] == 0)


def test_ignored_modality_of_a_fitted_regressor(data):
    """The same through MultimodalRegressor with a module that ignores one input."""
    X, y = data

    class TwoOfThree(nn.Module):
        def __init__(self, n_classes=1):
            super().__init__()
            self.lin = nn.Linear(10, n_classes)

        def forward(self, strong, weak):
            return self.lin(strong)

    reg = MultimodalRegressor(TwoOfThree, max_epochs=5, random_state=0).fit(X, y)
    assert np.all(
        PermutationModalityImportance(random_state=0).explain(reg, X, y).importances[1]
        == 0
    )
    assert np.all(ModalityShapley().explain(reg, X, y).values[:, 1] == 0)


def test_conditional_equals_brute_force(data):
    X, y = data
    model, weights, bias = _linear_model(X, y)
    expl = ConditionalUtilization().explain(model, X, y)  # r2, input means
    assert expl.params["scoring"] == "r2"
    full = r2_score(y, _predict(weights, bias, X)[:, 0])
    for j, m in enumerate(X):
        ablated = {**X, m: np.broadcast_to(X[m].mean(axis=0), X[m].shape)}
        without = r2_score(y, _predict(weights, bias, ablated)[:, 0])
        assert expl.rates[j] == pytest.approx((full - without) / full, rel=1e-4)
    loss = ConditionalUtilization(scoring="loss").explain(model, X, y)
    mse = mean_squared_error(y, _predict(weights, bias, X)[:, 0])
    ablated = {**X, "weak": np.broadcast_to(X["weak"].mean(axis=0), X["weak"].shape)}
    mse_without = mean_squared_error(y, _predict(weights, bias, ablated)[:, 0])
    assert loss.rates[1] == pytest.approx((mse_without - mse) / mse, rel=1e-4)


def test_conditional_per_target_equals_sklearn_raw_values():
    X, y = make_multimodal_regression(300, n_targets=2, random_state=11)
    model, weights, bias = _linear_model(X, y)
    expl = ConditionalUtilization().explain(model, X, y)
    full = r2_score(y, _predict(weights, bias, X), multioutput="raw_values")
    ref = []
    for m in X:
        ablated = {**X, m: np.broadcast_to(X[m].mean(axis=0), X[m].shape)}
        without = r2_score(
            y, _predict(weights, bias, ablated), multioutput="raw_values"
        )
        ref.append((full - without) / full)
    np.testing.assert_allclose(expl.target_rates, np.array(ref).T, rtol=1e-4)
    assert expl.target_shares.shape == (2, 2)
    boot = ConditionalUtilization(n_bootstrap=5, random_state=0).explain(model, X, y)
    np.testing.assert_allclose(boot.target_rates, expl.target_rates, rtol=1e-10)


def test_gradient_attribution_of_a_linear_model(data):
    """Input level: d(sum_t f_t)/dx_m = W_m summed over targets, alpha = ||W x||."""
    X, y = make_multimodal_regression(100, n_targets=2, random_state=8)
    model, weights, _ = _linear_model(X, y)
    expl = GradientModalityAttribution().explain(model, X)
    assert expl.params["output"] == "prediction" and expl.params["level"] == "input"
    alpha = np.stack(
        [np.linalg.norm(X[m] * weights[m].sum(axis=1), axis=1) for m in X], axis=1
    )
    np.testing.assert_allclose(
        expl.sample_shares, alpha / alpha.sum(axis=1, keepdims=True), rtol=1e-4
    )


def test_explainers_on_the_fitted_regressor(data, reg):
    X, y = data
    perm = PermutationModalityImportance(random_state=0).explain(reg, X, y)
    shap_ = ModalityShapley().explain(reg, X, y)
    cond = ConditionalUtilization().explain(reg, X, y)
    attr = GradientModalityAttribution().explain(reg, X)
    for expl in (perm, shap_, cond, attr):
        assert expl.shares[0] > expl.shares[1], expl.method  # strong over weak
    assert perm.params["scoring"] == "loss" and shap_.params["value"] == "prediction"


@pytest.mark.parametrize(
    "explainer, match",
    [
        (PermutationModalityImportance(scoring="accuracy"), "scores classes"),
        (PermutationModalityImportance(scoring="roc_auc"), "scores classes"),
        (PermutationModalityImportance(per_class=True), "regression model has none"),
        (
            PermutationModalityImportance(class_index=0),
            "class_index is for classifiers",
        ),
        (ModalityShapley(value="probability"), "needs classes"),
        (ModalityShapley(value="correct"), "needs classes"),
        (ConditionalUtilization(per_class=True), "regression model has none"),
        (GradientModalityAttribution(output="true"), "regression model"),
        (PermutationModalityImportance(scoring="nope"), "unknown scoring"),
    ],
)
def test_what_regression_does_not_define_is_refused(data, reg, explainer, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        explainer.explain(reg, X, y)


def test_targets_and_outputs_must_agree(data, reg):
    X, y = data
    with pytest.raises(ValueError, match="target"):
        PermutationModalityImportance().explain(reg, X, np.c_[y, y])
    with pytest.raises(TypeError, match="real numbers"):
        PermutationModalityImportance().explain(reg, X, y.astype(str))


def test_prediction_value_is_for_regression_only():
    from mmexplain import MultimodalClassifier
    from mmexplain.datasets import make_multimodal_classification

    X, y = make_multimodal_classification(100, random_state=0)
    clf = MultimodalClassifier(max_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="for regression models"):
        ModalityShapley(value="prediction").explain(clf, X, y)
    assert ModalityShapley().explain(clf, X, y).params["value"] == "probability"
    with pytest.raises(ValueError, match="needs y"):  # 'auto' on a classifier
        ModalityShapley().explain(clf, X)


# ----------------------------------------------------------------------------
# balancers
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "balancer, kwargs",
    [
        (ModalityDropout(p=0.3), {}),
        (UtilizationTarget({"strong": 0.5, "weak": 0.5}), {}),
        (AttributionRegularizer({"strong": 0.5, "weak": 0.5}), {}),
        (
            OGMGE(),
            {"module__head": "linear", "optimizer": torch.optim.SGD, "lr": 0.01},
        ),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, dict) else "",
)
def test_balancers_defined_for_regression_train_and_are_controlled(
    data, balancer, kwargs
):
    """Each changes training, and at strength 0 trains exactly as no balancer."""
    X, y = data
    base = dict(max_epochs=3, random_state=0, **kwargs)
    plain = MultimodalRegressor(**base).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        steered = MultimodalRegressor(balancer=clone(balancer), **base).fit(X, y)
    assert not np.allclose(steered.predict(X), plain.predict(X))
    zero = {
        "ModalityDropout": {"p": 0.0},
        "UtilizationTarget": {"strength": 0.0},
        "AttributionRegularizer": {"strength": 0.0},
        "OGMGE": {"alpha": 0.0, "noise": False},
    }[type(balancer).__name__]
    control = MultimodalRegressor(
        balancer=clone(balancer).set_params(**zero), **base
    ).fit(X, y)
    np.testing.assert_allclose(
        control.predict(X), plain.predict(X), rtol=1e-5, atol=1e-6
    )


def test_utilization_target_uses_the_regression_loss(data):
    """The in-batch MU of a regressor is an MSE increase, not a soft-label cross-entropy."""
    from mmexplain.balancers.target import batch_utilization

    X, y = data
    reg = MultimodalRegressor(max_epochs=5, lr=3e-3, random_state=0).fit(X, y)
    module = reg.module_
    Xt = {m: torch.as_tensor(v) for m, v in X.items()}
    yt = torch.as_tensor(y).reshape(-1, 1)
    with torch.no_grad():
        Z = module.encode(**Xt)
        out = module.fuse(**Z)
        g = torch.Generator().manual_seed(0)
        shares = batch_utilization(module, Z, out, yt, generator=g, loss=reg.criterion_)
        g = torch.Generator().manual_seed(0)
        ref = []
        base = torch.mean((out - yt) ** 2)
        for m in Z:
            perm = torch.randperm(len(yt), generator=g)
            ref.append(
                torch.mean((module.fuse(**{**Z, m: Z[m][perm]}) - yt) ** 2) - base
            )
        ref = torch.relu(torch.stack(ref))
    np.testing.assert_allclose(
        shares.numpy(), (ref / (ref.sum() + 1e-8)).numpy(), rtol=1e-5
    )


def test_sample_valuation_is_refused_with_its_reason(data):
    X, y = data
    with pytest.raises(ValueError, match="no regression counterpart"):
        MultimodalRegressor(balancer=SampleValuation(), max_epochs=1).fit(X, y)


def test_utilization_target_measured_on_a_validation_split(data):
    """measure_on='valid' takes a regressor's real validation targets."""
    X, y = data
    Xv, yv = make_multimodal_regression(
        100, modalities=["strong", "weak"], informativeness=[2.0, 0.5], random_state=9
    )
    target = {"strong": 0.5, "weak": 0.5}
    base = dict(max_epochs=3, random_state=0)
    valid = MultimodalRegressor(
        balancer=UtilizationTarget(
            target, measure_on="valid", validation_data=(Xv, yv)
        ),
        **base,
    ).fit(X, y)
    train = MultimodalRegressor(balancer=UtilizationTarget(target), **base).fit(X, y)
    assert not np.allclose(valid.predict(X), train.predict(X))
    with pytest.raises(TypeError, match="real numbers"):
        MultimodalRegressor(
            balancer=UtilizationTarget(
                target, measure_on="valid", validation_data=(Xv, yv.astype(str))
            ),
            **base,
        ).fit(X, y)
