"""Fitting the ecosystem: pipelines and searches, any model, scikit-learn conventions."""

import copy
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402
from skorch.callbacks import EarlyStopping  # noqa: E402
from torch import nn  # noqa: E402

from mmexplain import (  # noqa: E402
    ModalityDict,
    ModalityTransformer,
    MultimodalClassifier,
    MultimodalSegmenter,
)
from mmexplain.balancers import ModalityDropout  # noqa: E402
from mmexplain.estimators._weights import SAMPLE_WEIGHT, weighted_loss  # noqa: E402
from mmexplain.explainers import (  # noqa: E402
    ConditionalUtilization,
    ForwardModel,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

ROOT = Path(__file__).resolve().parents[1]


def _X(two_modal):
    X, y = two_modal
    return ModalityDict(X), y


def _clf(two_tower, **kw):
    params = dict(max_epochs=5, lr=0.05, random_state=0, batch_size=32)
    params.update(kw)
    return MultimodalClassifier(two_tower, **params)


def _pipe(two_tower, **kw):
    return make_pipeline(
        ModalityTransformer({"a": StandardScaler()}), _clf(two_tower, **kw)
    )


class Constant(nn.Module):
    """Ignores its inputs: every modality's MU is exactly 0."""

    def __init__(self, n_classes=2):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, a, b):
        return self.bias.expand(a.shape[0], -1)


# ----------------------------------------------------------------------------
# 1. pipelines and fitted searches
# ----------------------------------------------------------------------------
def test_pipeline_explained_as_its_last_step_on_transformed_inputs(
    two_modal, two_tower
):
    X, y = _X(two_modal)
    X = ModalityDict(a=X["a"] * 10 + 3, b=X["b"])  # the scaler matters
    pipe = _pipe(two_tower).fit(X, y)
    explainer = PermutationModalityImportance(n_repeats=3, random_state=0)
    expl = explainer.explain(pipe, X, y)
    ref = explainer.explain(pipe[-1], pipe[:-1].transform(X), y)
    np.testing.assert_array_equal(expl.importances, ref.importances)
    assert expl.params["unwrapped"] == ("Pipeline",)
    assert expl.modalities == ("a", "b")  # the pipeline's input modalities
    # the scorer path runs the last step on the transformed data too
    acc = PermutationModalityImportance(
        n_repeats=2, random_state=0, scoring=lambda est, X, y: est.score(X, y)
    )
    a = acc.explain(pipe, X, y)
    b = acc.explain(pipe[-1], pipe[:-1].transform(X), y)
    np.testing.assert_array_equal(a.importances, b.importances)


@pytest.mark.parametrize(
    "explainer",
    [
        ConditionalUtilization(),
        ModalityShapley(baseline="zero_input"),
        GradientModalityAttribution(level="input"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_explainer_explains_a_pipeline_as_its_last_step(
    explainer, two_modal, two_tower
):
    X, y = _X(two_modal)
    pipe = _pipe(two_tower, max_epochs=2).fit(X, y)
    expl = explainer.explain(pipe, X, y)
    ref = explainer.explain(pipe[-1], pipe[:-1].transform(X), y)
    np.testing.assert_array_equal(expl.shares, ref.shares)


def test_pipeline_in_grid_search_with_explainer_scorer(two_modal, two_tower):
    X, y = _X(two_modal)
    idx = np.arange(len(y))
    splits = [(idx[idx % 2 == 0], idx[idx % 2 == 1])]
    balance = PermutationModalityImportance(n_repeats=2, random_state=0)
    gs = GridSearchCV(
        _pipe(two_tower),
        {"multimodalclassifier__lr": [0.02, 0.05]},
        scoring={"acc": "accuracy", "bal": balance},
        refit="acc",
        cv=splits,
        error_score="raise",
    ).fit(X, y)
    res = gs.cv_results_
    assert np.isfinite(res["mean_test_bal"]).all()
    assert ((res["mean_test_bal"] <= 0) & (res["mean_test_bal"] >= -1)).all()
    # one cell by hand
    train, test = splits[0]
    est = clone(_pipe(two_tower)).set_params(multimodalclassifier__lr=0.05)
    est.fit(X[train], y[train])
    assert res["split0_test_bal"][1] == pytest.approx(
        balance.score(est, X[test], y[test]), abs=1e-12
    )
    # a fitted search stands for its best_estimator_
    expl = balance.explain(gs, X, y)
    ref = balance.explain(gs.best_estimator_, X, y)
    np.testing.assert_array_equal(expl.importances, ref.importances)
    assert expl.params["unwrapped"] == ("GridSearchCV", "Pipeline")


def test_scorer_that_cannot_score_raises(two_modal):
    X, y = _X(two_modal)
    clf = MultimodalClassifier(Constant, max_epochs=0, random_state=0)
    gs = GridSearchCV(
        clf,
        {"lr": [0.1]},
        scoring=PermutationModalityImportance(n_repeats=1, random_state=0),
        cv=2,
        error_score="raise",
    )
    with (
        pytest.warns(RuntimeWarning, match="undefined"),
        pytest.raises(ValueError, match="cannot score this model.*undefined"),
    ):
        gs.fit(X, y)
    # the default error_score records NaN, with the reason in the warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gs.set_params(error_score=np.nan).fit(X, y)
    assert np.isnan(gs.cv_results_["mean_test_score"]).all()
    assert any("cannot score this model" in str(w.message) for w in caught)


def test_unfitted_or_unrefitted_search_and_pipeline(two_modal, two_tower):
    X, y = _X(two_modal)
    explainer = PermutationModalityImportance(n_repeats=1)
    with pytest.raises(NotFittedError, match="GridSearchCV .*not fitted"):
        explainer.explain(GridSearchCV(_clf(two_tower), {"lr": [0.1]}), X, y)
    with pytest.raises(NotFittedError):
        explainer.explain(_pipe(two_tower), X, y)
    gs = GridSearchCV(
        _clf(two_tower, max_epochs=1), {"lr": [0.1]}, cv=2, refit=False
    ).fit(X, y)
    with pytest.raises(ValueError, match="refit=False"):
        explainer.explain(gs, X, y)


# ----------------------------------------------------------------------------
# 2. any model (captum's forward_func) and class_index
# ----------------------------------------------------------------------------
class DictNet(nn.Module):
    """A module whose forward takes one dict (weights shared with a TwoTower)."""

    def __init__(self, tower):
        super().__init__()
        self.tower = tower

    def forward(self, x):
        return self.tower(x["a"], x["b"])


class TupleNet(DictNet):
    def forward(self, xs):
        return self.tower(*xs)


def test_plain_callable_explained_equal_to_the_module_it_wraps(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(0)
    module = two_tower().eval()
    explainer = PermutationModalityImportance(n_repeats=3, random_state=0)
    ref = explainer.explain(module, X, y)
    models = {
        "callable": lambda **X: module(**X),
        "dict": ForwardModel(DictNet(module), "dict"),
        "tuple": ForwardModel(TupleNet(module), "tuple", modalities=("a", "b")),
        "args": ForwardModel(lambda a, b: module(a, b), "args", modalities=["a", "b"]),
        "numpy": ForwardModel(
            lambda **X: (
                module(**{m: torch.from_numpy(v) for m, v in X.items()})
                .detach()
                .numpy()
            ),
            array_type="numpy",
        ),
    }
    for name, model in models.items():
        expl = explainer.explain(model, X, y)
        np.testing.assert_array_equal(expl.importances, ref.importances, err_msg=name)
        assert expl.params["path"] == "full_forward"
    # other explainers take callables too
    shap = ModalityShapley(baseline="zero_input", value="probability")
    np.testing.assert_array_equal(
        shap.explain(models["callable"], X, y).values, shap.explain(module, X, y).values
    )


def test_forward_model_of_an_encode_fuse_net_matches_its_fast_path(two_modal):
    from mmexplain.modules import LateFusionNet, MLPEncoder

    X, y = two_modal
    torch.manual_seed(0)
    net = LateFusionNet({"a": MLPEncoder(5, 4), "b": MLPEncoder(3, 4)}, n_classes=2)
    explainer = PermutationModalityImportance(n_repeats=2, random_state=0)
    fast = explainer.explain(net, X, y)
    wrapped = explainer.explain(ForwardModel(net), X, y)
    assert fast.params["path"] == "embeddings"
    assert wrapped.params["path"] == "full_forward"
    np.testing.assert_allclose(wrapped.importances, fast.importances, atol=1e-6)


def test_forward_model_puts_the_wrapped_module_in_eval_mode(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(0)
    tower = two_tower()

    class Dropped(nn.Module):  # dropout before the tower: random in train mode
        def __init__(self):
            super().__init__()
            self.drop, self.tower = nn.Dropout(0.5), tower

        def forward(self, x):
            return self.tower(self.drop(x["a"]), x["b"])

    module = Dropped().train()
    explainer = PermutationModalityImportance(n_repeats=2, random_state=0)
    expl = explainer.explain(ForwardModel(module.forward, "dict"), X, y)  # bound method
    assert module.training  # the caller's mode is restored
    ref = explainer.explain(tower, X, y)  # eval mode: dropout is the identity
    np.testing.assert_array_equal(expl.importances, ref.importances)


def test_forward_model_for_a_scikit_learn_model_with_labels():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(200, 2)), "b": rng.normal(size=(200, 2))}
    labels = np.where(X["a"][:, 0] > 0, "pos", "neg")
    clf = LogisticRegression().fit(np.hstack([X["a"], X["b"]]), labels)
    model = ForwardModel(
        lambda a, b: clf.predict_log_proba(np.hstack([a, b])),
        "args",
        modalities=["a", "b"],
        array_type="numpy",
        classes=clf.classes_,
    )
    expl = PermutationModalityImportance(random_state=0).explain(model, X, labels)
    assert expl.shares_by_modality["a"] > 90
    with pytest.raises(TypeError, match="array_type='numpy'.*no gradients"):
        GradientModalityAttribution(level="input").explain(model, X, labels)
    with pytest.raises(TypeError, match="ForwardModel"):
        PermutationModalityImportance().explain(clf, X, labels)  # not callable


def test_forward_model_errors(two_modal):
    X, y = two_modal
    with pytest.raises(ValueError, match="needs modalities"):
        ForwardModel(lambda *xs: xs[0], "args")
    with pytest.raises(ValueError, match="input_format"):
        ForwardModel(lambda **X: None, "list")
    with pytest.raises(ValueError, match=r"output of shape \(\d+,\).*logits"):
        PermutationModalityImportance().explain(lambda a, b: a[:, 0], X, y)


def _class_output(module, X, c):
    with torch.no_grad():
        logits = module(
            **{m: torch.as_tensor(v, dtype=torch.float32) for m, v in X.items()}
        )
    return torch.softmax(logits.double(), dim=1)[:, c].numpy()


def test_class_index_is_the_mean_absolute_change_of_that_class(two_modal, two_tower):
    X, y = two_modal
    torch.manual_seed(0)
    module = two_tower(n_classes=3).eval()
    explainer = PermutationModalityImportance(
        n_repeats=2, random_state=0, class_index=2
    )
    expl = explainer.explain(module, X)  # no y needed
    rng = check_random_state(0)
    n = len(y)
    shared = [rng.permutation(n) for _ in range(2)]  # one per repeat, all modalities
    perms = [shared, shared]
    base = _class_output(module, X, 2)
    ref = np.array(
        [
            [
                np.mean(
                    np.abs(_class_output(module, dict(X, **{m: X[m][p]}), 2) - base)
                )
                for p in ps
            ]
            for m, ps in zip("ab", perms)
        ]
    )
    np.testing.assert_allclose(expl.importances, ref, rtol=1e-5, atol=1e-7)
    assert expl.baseline_score == pytest.approx(base.mean(), rel=1e-5)
    assert expl.params["class_index"] == 2
    logit = PermutationModalityImportance(class_index=0, class_output="logit").explain(
        module, X, y
    )
    assert np.all(logit.importances_mean > 0)
    with pytest.raises(ValueError, match="class_index=5 but the model outputs 3"):
        PermutationModalityImportance(class_index=5).explain(module, X)


# ----------------------------------------------------------------------------
# 3. NotFittedError
# ----------------------------------------------------------------------------
def test_unfitted_estimators_raise_not_fitted_error(two_modal):
    X, y = two_modal
    for est in (MultimodalClassifier(), MultimodalSegmenter()):
        name = type(est).__name__
        for call in (est.predict, est.predict_proba, lambda X, e=est: e.score(X, y)):
            with pytest.raises(NotFittedError, match=f"{name} .*not fitted.*call fit"):
                call(X)
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
        with pytest.raises(NotFittedError, match="not fitted.*fit"):
            PermutationModalityImportance().explain(est, X, y)
    # NotFittedError is a ValueError and an AttributeError
    with pytest.raises(ValueError, match="not fitted"):
        MultimodalClassifier().predict(X)
    with pytest.raises(AttributeError, match="not fitted"):
        MultimodalClassifier().predict(X)


# ----------------------------------------------------------------------------
# 4. partial_fit(classes=...)
# ----------------------------------------------------------------------------
def test_partial_fit_classes_contract(two_modal, two_tower):
    X, y = two_modal
    first = y == 0
    clf = _clf(two_tower, max_epochs=1, module__n_classes=3)
    Xf = {m: v[first] for m, v in X.items()}
    clf.partial_fit(Xf, y[first], classes=[2, 0, 1, 1])  # one class in this batch
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.predict_proba(X).shape == (len(y), 3)
    clf.partial_fit(X, np.where(y == 1, 2, y))  # later batches: any known labels
    clf.partial_fit(X, y, classes=[0, 1, 2])  # the same set: accepted
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="single class.*classes="):
        _clf(two_tower, max_epochs=1).partial_fit(Xf, y[first])
    with pytest.raises(ValueError, match="single class"):
        _clf(two_tower, max_epochs=1).partial_fit(Xf, y[first], classes=[0])
    with pytest.raises(ValueError, match="differs from the constructor"):
        _clf(two_tower, classes=[0, 1]).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="does not take classes"):
        MultimodalSegmenter().partial_fit({"a": np.zeros((2, 1, 4, 4))}, None, [0])


# ----------------------------------------------------------------------------
# 5. sample_weight
# ----------------------------------------------------------------------------
def test_sample_weight_is_the_weighted_mean_of_the_per_sample_loss(
    two_modal, two_tower
):
    X, y = two_modal
    w = np.random.default_rng(1).uniform(0, 3, size=len(y))
    # lr=0 and one batch: the recorded train_loss is the loss of the initial weights
    clf = _clf(two_tower, max_epochs=1, lr=0.0, batch_size=-1)
    clf.fit(X, y, sample_weight=w)
    with torch.no_grad():
        logits = clf.module_(**{m: torch.as_tensor(v).float() for m, v in X.items()})
        per = nn.functional.cross_entropy(logits, torch.as_tensor(y), reduction="none")
    expected = float((per.numpy() * w).sum() / w.sum())
    assert clf.history[-1]["train_loss"] == pytest.approx(expected, rel=1e-5)
    unweighted = _clf(two_tower, max_epochs=1, lr=0.0, batch_size=-1).fit(X, y)
    assert unweighted.history[-1]["train_loss"] == pytest.approx(
        float(per.mean()), rel=1e-5
    )


def test_sample_weight_equals_repeating_rows(two_modal, two_tower):
    X, y = two_modal
    w = np.random.default_rng(2).integers(0, 3, size=len(y))
    rep = np.repeat(np.arange(len(y)), w)
    kw = dict(max_epochs=3, batch_size=-1, train_split=None)
    a = _clf(two_tower, **kw).fit(X, y, sample_weight=w)
    b = _clf(two_tower, **kw).fit({m: v[rep] for m, v in X.items()}, y[rep])
    for pa, pb in zip(a.module_.parameters(), b.module_.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    ones = _clf(two_tower, **kw).fit(X, y, sample_weight=np.ones(len(y)))
    plain = _clf(two_tower, **kw).fit(X, y)
    for pa, pb in zip(ones.module_.parameters(), plain.module_.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_weighted_loss_reduces_to_the_criterion_for_equal_weights():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, 4, 4, generator=g)
    y = torch.randint(0, 3, (6, 4, 4), generator=g)
    y[0, :2] = 255
    crit = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=255)
    got = weighted_loss(crit, [logits], y, torch.full((6,), 2.5))
    torch.testing.assert_close(got, crit(logits, y))
    mse = nn.MSELoss()
    target = torch.randn(6, 3, 4, 4, generator=g)
    torch.testing.assert_close(
        weighted_loss(mse, [logits], target, torch.ones(6)), mse(logits, target)
    )


def test_sample_weight_in_pipelines_and_metadata_routing(two_modal, two_tower):
    X, y = two_modal
    w = np.random.default_rng(3).uniform(0.5, 2, size=len(y))
    kw = dict(max_epochs=2)
    ref = _pipe(two_tower, **kw).fit(X, y, multimodalclassifier__sample_weight=w)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = _clf(two_tower, **kw).set_fit_request(sample_weight=True)
        pipe = make_pipeline(ModalityTransformer({"a": StandardScaler()}), clf)
        pipe.fit(X, y, sample_weight=w)
    for pa, pb in zip(pipe[-1].module_.parameters(), ref[-1].module_.parameters()):
        torch.testing.assert_close(pa, pb)
    unweighted = _pipe(two_tower, **kw).fit(X, y)
    assert not torch.equal(
        next(pipe[-1].module_.parameters()), next(unweighted[-1].module_.parameters())
    )


def test_sample_weight_errors(two_modal, two_tower):
    X, y = two_modal
    with pytest.raises(ValueError, match="shape"):
        _clf(two_tower).fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="negative"):
        _clf(two_tower).fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="balancer"):
        _clf(two_tower, balancer=ModalityDropout()).fit(
            X, y, sample_weight=np.ones(len(y))
        )
    assert (
        SAMPLE_WEIGHT
        not in _clf(two_tower, max_epochs=1)
        .fit(X, y, sample_weight=np.ones(len(y)))
        .modalities_
    )


# ----------------------------------------------------------------------------
# 7. conventions and rough edges
# ----------------------------------------------------------------------------
def test_modality_transformer_conventions(two_modal, two_tower):
    X, y = two_modal
    mt = ModalityTransformer({"a": PolynomialFeatures(2), "b": StandardScaler()})
    Xt = mt.fit_transform(X)
    names = mt.get_feature_names_out()
    assert len(names) == Xt["a"].shape[1] + Xt["b"].shape[1]
    assert names[0] == "a__1" and names[-1] == "b__x2"
    assert mt.n_features_in_ == 8 and mt.input_shapes_ == {"a": (5,), "b": (3,)}
    out = mt.set_output(transform="pandas").transform(X)
    assert list(out["b"].columns) == ["x0", "x1", "x2"]
    np.testing.assert_allclose(out["b"].to_numpy(), Xt["b"])
    pipe = make_pipeline(
        ModalityTransformer({"a": StandardScaler()}), _clf(two_tower, max_epochs=1)
    ).set_output(transform="pandas")
    pipe.fit(ModalityDict(X), y)
    assert pipe.n_features_in_ == 8 and pipe[-1].n_features_in_ == 8
    with pytest.raises(ValueError, match="transform must be one of"):
        mt.set_output(transform="arrow")
    with pytest.raises(AttributeError):
        _ = MultimodalClassifier().n_features_in_


def test_early_stopping_without_validation_split_says_what_to_do(two_modal, two_tower):
    X, y = two_modal
    with pytest.raises(
        ValueError, match="monitors 'valid_loss'.*ValidSplit.*train_loss"
    ):
        _clf(two_tower, callbacks=[EarlyStopping()]).fit(X, y)
    clf = _clf(two_tower, max_epochs=3, callbacks=[EarlyStopping(monitor="train_loss")])
    assert len(clf.fit(X, y).history) >= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error_up_front(two_modal, two_tower):
    X, y = two_modal
    with pytest.raises(
        ValueError, match="MultimodalClassifier: device='cuda'.*no CUDA"
    ):
        _clf(two_tower, device="cuda").fit(X, y)
    fitted = _clf(two_tower, max_epochs=1).fit(X, y)
    with pytest.raises(
        ValueError, match="PermutationModalityImportance: device='cuda'"
    ):
        PermutationModalityImportance(device="cuda").explain(fitted, X, y)
    with pytest.raises(ValueError, match="not a torch device"):
        PermutationModalityImportance(device="gpu").explain(fitted, X, y)


def test_labelled_views_of_explanations_and_shap_export(two_modal, two_tower):
    import pandas as pd

    X, y = two_modal
    torch.manual_seed(0)
    module = two_tower().eval()
    expl = PermutationModalityImportance(n_repeats=2, random_state=0).explain(
        module, X, y
    )
    assert expl.shares_by_modality == dict(zip(("a", "b"), expl.shares.tolist()))
    series = expl.to_series()
    assert isinstance(series, pd.Series) and list(series.index) == ["a", "b"]
    np.testing.assert_array_equal(series.to_numpy(), expl.shares)
    sh = ModalityShapley(baseline="zero_input").explain(module, X, y).to_shap()
    assert sh.data is None and list(sh.feature_names) == ["a", "b"]


def test_plot_utilization_history_takes_the_net(two_modal, two_tower):
    from mmexplain.callbacks import UtilizationHistory
    from mmexplain.plotting import plot_utilization_history

    X, y = two_modal
    explainer = PermutationModalityImportance(n_repeats=1, random_state=0)
    cb = UtilizationHistory(explainer, X, y)
    clf = _clf(two_tower, max_epochs=2, callbacks=[cb]).fit(X, y)
    a = plot_utilization_history(clf)
    b = plot_utilization_history(clf.history)
    assert [ln.get_ydata().tolist() for ln in a.get_lines()] == [
        ln.get_ydata().tolist() for ln in b.get_lines()
    ]
    plt.close("all")


def test_package_is_typed():
    assert (ROOT / "mmexplain" / "py.typed").is_file()
    assert "mmexplain = py.typed" in (ROOT / "setup.cfg").read_text()


def test_forward_model_is_copied_not_moved_for_another_device(two_tower):
    module = two_tower().eval()
    fm = ForwardModel(module)
    moved = fm.on_device("cpu")
    assert moved is not fm and moved.input_device == torch.device("cpu")
    plain = ForwardModel(lambda **X: module(**X))
    assert copy.copy(plain).forward_func is plain.forward_func
