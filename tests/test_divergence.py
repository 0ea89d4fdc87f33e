"""Diverging training is reported, never silently turned into a model."""

import numpy as np
import pytest
import torch

from mmexplain import MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import ModalityShapley, PermutationModalityImportance


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(n_samples=100, random_state=0)


def diverging(**kw):
    return MultimodalClassifier(
        lr=10.0, optimizer=torch.optim.SGD, max_epochs=5, random_state=0, **kw
    )


def test_fit_raises_when_the_loss_becomes_nan(data):
    X, y = data
    with pytest.raises(FloatingPointError, match="training diverged.*lr=10"):
        diverging().fit(X, y)


def test_fit_can_warn_instead_and_the_explainers_refuse_the_model(data):
    X, y = data
    with pytest.warns(RuntimeWarning, match="training diverged"):
        clf = diverging(on_nonfinite="warn").fit(X, y)
    assert not all(bool(torch.isfinite(p).all()) for p in clf.module_.parameters())
    for explainer in (
        ModalityShapley(),
        PermutationModalityImportance(n_repeats=2, random_state=0),
    ):
        with pytest.raises(ValueError, match="not finite"):
            explainer.explain(clf, X, y)


def test_on_nonfinite_is_validated(data):
    X, y = data
    with pytest.raises(ValueError, match="on_nonfinite"):
        diverging(on_nonfinite="ignore").fit(X, y)


def test_a_stable_fit_is_untouched(data):
    X, y = data
    clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    assert np.all(np.isfinite(clf.history[:, "train_loss"]))
