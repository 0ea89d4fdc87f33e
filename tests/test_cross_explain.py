"""cross_explain: explanations over folds and seeds, against a hand-written loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import Dataset

from mmexplain import ModalityTransformer, MultimodalClassifier
from mmexplain.callbacks import ConditionalLearningSpeed
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    PermutationModalityImportance,
)
from mmexplain.model_selection import CrossExplanation, cross_explain


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(
        n_samples=90, informativeness=(1.0, 0.3), random_state=0
    )


def _clf(**kw):
    kw.setdefault("max_epochs", 3)
    return MultimodalClassifier(batch_size=32, **kw)


def _explainer():
    return PermutationModalityImportance(n_repeats=2, random_state=0)


def test_equals_a_hand_written_loop(data):
    """Same folds, same seeds: the shares, scores of fitting and explaining by hand."""
    X, y = data
    cv = StratifiedKFold(3)
    result = cross_explain(
        _clf(), X, y, _explainer(), cv=cv, seeds=[0, 5], explain_train=True
    )
    assert isinstance(result, CrossExplanation)
    assert result.shares.shape == (2, 3, 2) and result.train_shares.shape == (2, 3, 2)
    assert result.seeds == [0, 5] and result.n_splits == 3
    for i, seed in enumerate([0, 5]):
        for f, (train, test) in enumerate(cv.split(np.zeros(len(y)), y)):
            est = _clf(random_state=seed).fit(
                {m: v[train] for m, v in X.items()}, y[train]
            )
            Xt = {m: v[test] for m, v in X.items()}
            held = _explainer().explain(est, Xt, y[test])
            tr = _explainer().explain(
                est, {m: v[train] for m, v in X.items()}, y[train]
            )
            np.testing.assert_array_equal(result.shares[i, f], held.shares)
            np.testing.assert_array_equal(result.train_shares[i, f], tr.shares)
            assert result.scores[i, f] == est.score(Xt, y[test])
    # the summary is the statistics of those arrays
    summary = result.summary()
    flat = result.shares.reshape(-1, 2)
    np.testing.assert_allclose(summary["mean"], flat.mean(axis=0))
    np.testing.assert_allclose(summary["std"], flat.std(axis=0, ddof=1))
    np.testing.assert_allclose(
        summary["gap"],
        result.train_shares.reshape(-1, 2).mean(axis=0) - flat.mean(axis=0),
    )
    np.testing.assert_allclose(result.shares_mean, flat.mean(axis=0))
    frame = result.to_frame()
    assert len(frame) == 2 * 3 * 2 * 2
    held = frame[frame["data"] == "held-out"]
    np.testing.assert_array_equal(held["share_percent"], result.shares.ravel())
    train = frame[frame["data"] == "train"]
    np.testing.assert_array_equal(train["share_percent"], result.train_shares.ravel())
    assert "CrossExplanation(method='permutation', runs=2x3" in repr(result)


def test_parallel_runs_equal_sequential_ones(data):
    X, y = data
    kw = dict(cv=KFold(2), seeds=2)
    one = cross_explain(_clf(), X, y, _explainer(), n_jobs=1, **kw)
    two = cross_explain(_clf(), X, y, _explainer(), n_jobs=2, **kw)  # loky processes
    np.testing.assert_array_equal(one.shares, two.shares)
    np.testing.assert_array_equal(one.scores, two.scores)


def test_seed_goes_to_the_pipeline_step(data):
    X, y = data
    pipe = make_pipeline(ModalityTransformer({"a": StandardScaler()}), _clf())
    result = cross_explain(
        pipe, X, y, _explainer(), cv=2, seeds=[1], return_estimator=True
    )
    fitted = result.estimators[0][0]
    assert fitted.steps[-1][1].random_state == 1
    assert pipe.steps[-1][1].random_state is None  # the caller's estimator untouched
    with pytest.raises(ValueError, match="seed_param='nope' is not a parameter"):
        cross_explain(pipe, X, y, _explainer(), cv=2, seeds=1, seed_param="nope")


def test_conditional_d_util_and_training_d_speed(data):
    X, y = data
    result = cross_explain(
        _clf(random_state=0),
        X,
        y,
        ConditionalUtilization(),
        cv=2,
        return_estimator=True,
    )
    folds = StratifiedKFold(2).split(np.zeros(len(y)), y)
    for f, (_, test) in enumerate(folds):
        est = result.estimators[0][f]
        by_hand = ConditionalUtilization().explain(
            est, {m: v[test] for m, v in X.items()}, y[test]
        )
        assert result.d_util[0, f] == by_hand.d_util
    assert np.isnan(result.d_speed).all()  # no speed was recorded in training
    assert result.method == "conditional"


def test_d_speed_read_from_the_history(data, monkeypatch):
    X, y = data

    class Recorded(ConditionalLearningSpeed):
        def on_train_begin(self, net, **kwargs):
            pass

        def on_grad_computed(self, net, **kwargs):
            pass

        def on_epoch_end(self, net, **kwargs):
            net.history.record("d_speed", 0.25 * len(net.history))

    result = cross_explain(
        _clf(random_state=0, callbacks=[("speed", Recorded())]),
        X,
        y,
        _explainer(),
        cv=2,
    )
    np.testing.assert_array_equal(result.d_speed, [[0.75, 0.75]])


class _Items(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {m: torch.as_tensor(v[i]) for m, v in self.X.items()}, int(self.y[i])


def test_a_torch_dataset_is_split_into_subsets(data):
    X, y = data
    on_arrays = cross_explain(_clf(random_state=0), X, y, _explainer(), cv=KFold(2))
    on_dataset = cross_explain(
        _clf(random_state=0), _Items(X, y), y, _explainer(), cv=KFold(2)
    )
    np.testing.assert_allclose(on_dataset.shares, on_arrays.shares, atol=1e-9)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"seeds": 0}, ValueError, "seeds must be >= 1"),
        ({"seeds": [1, 1]}, ValueError, "duplicates"),
        ({"seeds": [1.5]}, ValueError, "list of integers"),
        ({"seeds": "3"}, TypeError, "seeds must be None"),
    ],
)
def test_bad_seeds(data, kw, error, match):
    X, y = data
    with pytest.raises(error, match=match):
        cross_explain(_clf(), X, y, _explainer(), cv=2, **kw)


def test_bad_arguments(data):
    X, y = data
    with pytest.raises(TypeError, match="explainer must be an mmexplain explainer"):
        cross_explain(_clf(), X, y, StandardScaler(), cv=2)
    with pytest.raises(ValueError, match="X has 90 rows but y has 89"):
        cross_explain(_clf(), X, y[:-1], _explainer(), cv=2)
    with pytest.raises(ValueError, match="cannot tell which parameter"):
        cross_explain(StandardScaler(), X, y, _explainer(), cv=2, seeds=2)


def test_plot_spread(data):
    import matplotlib

    matplotlib.use("Agg")
    X, y = data
    result = cross_explain(
        _clf(random_state=0), X, y, _explainer(), cv=2, explain_train=True
    )
    ax = result.plot()
    assert [t.get_text() for t in ax.get_xticklabels()] == list(result.modalities)
    # one dot per run per modality and data part
    offsets = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    expected = np.concatenate(
        [result.shares[0, :, j] for j in range(2)]
        + [result.train_shares[0, :, j] for j in range(2)]
    )
    np.testing.assert_allclose(np.sort(offsets), np.sort(expected))
    assert clone(_clf()).get_params()["max_epochs"] == 3
