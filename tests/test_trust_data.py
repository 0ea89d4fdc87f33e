"""Trust, round 3 (issue 20): data the library must refuse clearly, never answer wrongly.

A torch Dataset gets the value checks of arrays (W1, W3) and clear messages for
an item that lacks a modality or has another shape (C1/C2), read once;
segmentation masks are checked for shape and integer values (W2);
``score`` refuses labels the classifier does not know (W6); scikit-learn
scorers get the model's classes when ``y`` lacks some (C4); labels of mixed
types are refused by name (C5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, get_scorer, log_loss
from torch import nn
from torch.utils.data import Dataset

from mmexplain import MultimodalClassifier, MultimodalSegmenter
from mmexplain.data._items import ItemLayout, collate_items
from mmexplain.data.batching import TrainingDataset, dataset_loader
from mmexplain.data.sources import DatasetSource
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

TINY = {"module__embedding_dim": 4, "module__hidden": (8,)}
N = 40


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = {
        "a": rng.normal(size=(n, 4)).astype(np.float32),
        "b": rng.normal(size=(n, 3)).astype(np.float32),
    }
    y = (X["a"][:, 0] + X["b"][:, 0] > 0).astype(int)
    return X, y


class Items(Dataset):
    """Items ``({modality: array}, y)`` of in-memory arrays, one item patched."""

    def __init__(self, X, y=None, patch=None, at=None):
        self.X, self.y, self.patch, self.at = X, y, patch, at
        self.reads = np.zeros(len(next(iter(X.values()))), dtype=int)

    def __len__(self):
        return len(self.reads)

    def __getitem__(self, i):
        self.reads[i] += 1
        item = {m: v[i] for m, v in self.X.items()}
        if self.patch is not None and i == self.at:
            item = self.patch(dict(item))
        return item if self.y is None else (item, self.y[i])


def _set(m, value):
    def patch(item):
        v = np.array(item[m], dtype=np.float64)
        v.flat[0] = value
        item[m] = v
        return item

    return patch


PATCHES = {
    "nan": (_set("a", np.nan), ValueError, "modality 'a' contains NaN or infinite"),
    "inf": (_set("b", -np.inf), ValueError, "modality 'b' contains NaN or infinite"),
    "huge": (_set("a", 1e39), ValueError, "modality 'a' has values too large"),
    "complex": (
        lambda it: {**it, "b": it["b"] + 1j},
        TypeError,
        "modality 'b' has complex dtype",
    ),
    "string": (
        lambda it: {**it, "a": np.array(["x"] * 4)},
        TypeError,
        "modality 'a' has non-numeric dtype",
    ),
    "missing": (
        lambda it: {"a": it["a"]},
        ValueError,
        r"lacks modality 'b': it has modalities \['a'\] but the first item has "
        r"\['a', 'b'\]",
    ),
    "extra": (
        lambda it: {**it, "c": it["b"]},
        ValueError,
        "has modality 'c', which the first item lacks",
    ),
    "shape": (
        lambda it: {**it, "a": it["a"][:3]},
        ValueError,
        r"modality 'a' has per-sample shape \(3,\) in item \d+ of the Dataset but "
        r"\(4,\) in the first item",
    ),
}


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(X, y), X, y


# ---------------------------------------------------------------------------
# W1, W3, C1/C2: Datasets checked as they are collated
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PATCHES))
@pytest.mark.parametrize("where", ["predict_proba", "score", "fit", "explain"])
def test_a_bad_dataset_item_is_refused_by_modality_and_item(fitted, kind, where):
    clf, X, y = fitted
    patch, error, message = PATCHES[kind]
    at = 13
    ds = Items(X, y, patch, at=at)
    # the bad item alone in its batch (batch_size=1 part) or among others
    batch = {"predict_proba": 64, "score": 8, "fit": 13, "explain": 16}[where]
    with pytest.raises(error, match=message) as info:
        if where == "predict_proba":
            clf.set_params(batch_size=batch).predict_proba(ds)
        elif where == "score":
            clf.set_params(batch_size=batch).score(ds, y)
        elif where == "fit":
            MultimodalClassifier(
                max_epochs=1, batch_size=batch, random_state=0, **TINY
            ).fit(ds, None)
        else:
            PermutationModalityImportance(
                n_repeats=1, random_state=0, batch_size=batch
            ).explain(clf, ds, None)
    assert f"item {at} of the Dataset" in str(info.value)
    clf.set_params(batch_size=64)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_an_item_of_another_shape_alone_in_its_batch_is_named(fitted, batch_size):
    # a batch made only of odd items stacks fine: its shape is compared with
    # the first item's (torch's 'stack expects ...' cannot happen either)
    clf, X, y = fitted
    ds = Items(X, y, lambda it: {**it, "b": np.zeros(5, np.float32)}, at=35)
    with pytest.raises(ValueError, match=r"'b' has per-sample shape \(5,\) in item 35"):
        clf.set_params(batch_size=batch_size).predict(ds)
    clf.set_params(batch_size=64)


def test_a_clean_dataset_is_read_once_and_predicts_as_arrays(fitted):
    clf, X, y = fitted
    ds = Items(X, y)
    np.testing.assert_allclose(clf.predict_proba(ds), clf.predict_proba(X), rtol=1e-6)
    # each item once, the first one also for its layout (modalities, shapes)
    assert ds.reads[1:].tolist() == [1] * (N - 1) and ds.reads[0] <= 3
    assert clf.score(ds, y) == clf.score(X, y)


def test_fit_on_a_nan_item_does_not_blame_the_learning_rate():
    X, y = _data()
    ds = Items(X, y, _set("a", np.nan), at=21)
    with pytest.raises(
        ValueError, match="'a' contains NaN or infinite values in item 21"
    ):
        MultimodalClassifier(max_epochs=1, random_state=0, **TINY).fit(ds, None)


def test_a_subset_names_the_item_of_the_users_dataset():
    X, y = _data()
    ds = Items(X, y, _set("a", np.inf), at=30)
    sub = DatasetSource(ds).subset(np.array([2, 30, 5]))
    with pytest.raises(ValueError, match="item 30 of the Dataset"):
        sub.take(slice(0, 3))
    loader = dataset_loader(TrainingDataset(ds, y), batch_size=4)
    with pytest.raises(ValueError, match="item 30 of the Dataset"):
        list(loader)


def test_one_host_read_per_batch(monkeypatch):
    """The value check reads one flag per batch, whatever the number of modalities."""
    rng = np.random.default_rng(0)
    items = [{m: rng.normal(size=(3, 2)) for m in "abcd"} for _ in range(6)]
    reads = []
    real = torch.Tensor.__bool__

    def counting(self):
        reads.append(1)
        return real(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counting)
    batch = collate_items(items, ItemLayout.of(items[0]), rows=range(6))
    assert len(reads) == 1 and all(t.dtype == torch.float32 for t in batch.values())


def test_any_dataloader_over_a_training_dataset_checks_and_equals_the_default():
    X, y = _data()
    good = TrainingDataset(Items(X, y), y)
    ours = list(dataset_loader(good, batch_size=16))
    default = list(torch.utils.data.DataLoader(good, batch_size=16))
    for (xa, ya), (xb, yb) in zip(ours, default, strict=True):
        assert torch.equal(ya, yb) and all(torch.equal(xa[m], xb[m]) for m in X)
    bad = TrainingDataset(Items(X, y, _set("b", np.nan), at=17), y)
    with pytest.raises(
        ValueError, match="'b' contains NaN or infinite values in item 17"
    ):
        list(torch.utils.data.DataLoader(bad, batch_size=16))


# ---------------------------------------------------------------------------
# W6, C5: labels
# ---------------------------------------------------------------------------
def test_score_refuses_labels_outside_classes(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match=r"labels not among the classes \[0, 1\]: \[5"):
        clf.score(X, y + 5)
    with pytest.raises(ValueError, match="labels not among the classes"):
        clf.score(X, np.where(y == 1, "dog", "cat"))
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))
    w = np.linspace(0.1, 1, N)
    assert clf.score(X, y, sample_weight=w) == pytest.approx(
        accuracy_score(y, clf.predict(X), sample_weight=w)
    )
    with pytest.raises(ValueError, match="y has 39 rows but X has 40 samples"):
        clf.score(X, y[:-1])


MIXED = {
    "int_str": (
        np.array([1, "a"] * (N // 2), dtype=object),
        "mixes label types int and str",
    ),
    "dict": ([{"k": 1}] * N, "holds dict objects"),
}


@pytest.mark.parametrize("kind", list(MIXED))
@pytest.mark.parametrize("where", ["fit", "score", "explain", "classes"])
def test_labels_of_mixed_types_are_refused_by_name(fitted, kind, where):
    clf, X, _ = fitted
    y, message = MIXED[kind]
    with pytest.raises(
        TypeError, match=f"^{'classes' if where == 'classes' else 'y'} {message}"
    ):
        if where == "fit":
            MultimodalClassifier(max_epochs=1).fit(X, y)
        elif where == "score":
            clf.score(X, y)
        elif where == "explain":
            PermutationModalityImportance(n_repeats=1).explain(clf, X, y)
        else:
            MultimodalClassifier(max_epochs=1, classes=y[:2]).fit(X, _data()[1])


# ---------------------------------------------------------------------------
# C4: scikit-learn scorers when y lacks a class
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_classes():
    X, _ = _data(60, seed=1)
    y = np.arange(60) % 3
    clf = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(X, y)
    keep = y < 2
    return clf, {m: v[keep] for m, v in X.items()}, y[keep]


def test_log_loss_when_y_lacks_a_class(three_classes):
    clf, X, y = three_classes
    expl = PermutationModalityImportance(
        n_repeats=1, random_state=0, scoring="neg_log_loss"
    ).explain(clf, X, y)
    expected = -log_loss(y, clf.predict_proba(X), labels=clf.classes_)
    assert expl.baseline_score == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(expl.shares).all()
    weighted = PermutationModalityImportance(
        n_repeats=1, random_state=0, scoring="roc_auc_ovr_weighted"
    ).explain(clf, X, y)
    assert np.isfinite(weighted.baseline_score)
    # metrics of predicted labels keep scikit-learn's own value on such y
    f1 = PermutationModalityImportance(
        n_repeats=1, random_state=0, scoring="f1_macro"
    ).explain(clf, X, y)
    assert f1.baseline_score == pytest.approx(get_scorer("f1_macro")(clf, X, y))


def test_an_undefined_scorer_is_refused_clearly(three_classes):
    clf, X, y = three_classes
    with pytest.raises(ValueError, match=r"'roc_auc_ovr' is undefined.*classes \[2\]"):
        PermutationModalityImportance(
            n_repeats=1, random_state=0, scoring="roc_auc_ovr"
        ).explain(clf, X, y)


# ---------------------------------------------------------------------------
# W2: segmentation masks
# ---------------------------------------------------------------------------
H, W = 6, 10


@pytest.fixture(scope="module")
def segmenter():
    rng = np.random.default_rng(0)
    X = {
        "a": rng.normal(size=(12, 2, H, W)).astype(np.float32),
        "b": rng.normal(size=(12, 1, H, W)).astype(np.float32),
    }
    y = (X["a"][:, 0] > 0).astype(int)
    seg = MultimodalSegmenter(max_epochs=2, random_state=0).fit(X, y)
    return seg, X, y


BAD_MASKS = {
    "transposed": (
        lambda y: y.transpose(0, 2, 1),
        r"(masks of size \(10, 6\) but .* \(6, 10\)|images of size \(6, 10\) but y "
        r"has masks of size \(10, 6\)).*transposed",
    ),
    "flattened": (
        lambda y: y.reshape(len(y), -1),
        r"y must be integer masks of shape \(N, H, W\), got shape \(12, 60\)",
    ),
    "continuous": (lambda y: y + 0.25, r"continuous values \(e.g. \d.25\)"),
    "strings": (lambda y: y.astype(str), "must hold integer class labels"),
}


@pytest.mark.parametrize("kind", list(BAD_MASKS))
@pytest.mark.parametrize(
    "where",
    ["score", "fit", "permutation", "shapley", "attribution", "conditional", "dataset"],
)
def test_bad_masks_are_refused(segmenter, kind, where):
    seg, X, y = segmenter
    make, message = BAD_MASKS[kind]
    yb = make(y)
    explainers = {
        "permutation": lambda: PermutationModalityImportance(n_repeats=1),
        "shapley": ModalityShapley,
        "attribution": GradientModalityAttribution,
        "conditional": ConditionalUtilization,
        "dataset": lambda: PermutationModalityImportance(n_repeats=1),
    }
    with pytest.raises((ValueError, TypeError), match=message):
        if where == "score":
            seg.score(X, yb)
        elif where == "fit":
            MultimodalSegmenter(max_epochs=1).fit(X, yb)
        else:
            data = Items(X) if where == "dataset" else X
            explainers[where]().explain(seg, data, yb)


def test_masks_valid_as_floats_and_on_a_dataset(segmenter):
    seg, X, y = segmenter
    score = seg.score(X, y)
    assert seg.score(X, y.astype(np.float64)) == score
    assert seg.score(Items(X), y) == score
    # fit on a Dataset (the segmenter iterated it as a mapping before)
    a = MultimodalSegmenter(max_epochs=1, random_state=0).fit(Items(X, y), None)
    b = MultimodalSegmenter(max_epochs=1, random_state=0).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5)


class Down(nn.Module):
    """A segmentation module whose logits are half the input size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 2, stride=2)

    def forward(self, a, b):
        return self.conv(a)


def test_masks_of_a_plain_module_must_match_its_output(segmenter):
    _, X, y = segmenter
    small = y[:, ::2, ::2]
    expl = PermutationModalityImportance(n_repeats=1, random_state=0)
    assert np.isfinite(expl.explain(Down(), X, small).baseline_score)
    with pytest.raises(
        ValueError,
        match=r"size \(6, 10\) but the model outputs logits of size \(3, 5\)",
    ):
        expl.explain(Down(), X, y)
    with pytest.raises(ValueError, match="transposed"):
        expl.explain(Down(), X, small.transpose(0, 2, 1))
