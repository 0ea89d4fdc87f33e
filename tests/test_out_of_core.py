"""Data that does not fit in memory: torch Datasets reading files lazily, memmaps.

Every explainer and the estimators must give, on a Dataset or a memory-mapped
array, the numbers they give on the same rows in memory (float32 tolerance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mmexplain import MMTMNet, ModalityDict, MultimodalClassifier
from mmexplain.data.sources import ArraySource, DatasetSource, as_source
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)


class NpyFolder(Dataset):
    """Reads one .npy file per sample and modality, lazily (a folder of tiles)."""

    def __init__(self, root, modalities, y=None):
        self.root, self.modalities, self.y = root, tuple(modalities), y
        self.n = len(list((root / self.modalities[0]).glob("*.npy")))
        self.reads = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.reads += 1
        X = {
            m: torch.from_numpy(np.load(self.root / m / f"{i:05d}.npy"))
            for m in self.modalities
        }
        return X if self.y is None else (X, int(self.y[i]))


def write_folder(root, X):
    for m, v in X.items():
        (root / m).mkdir(parents=True)
        for i, row in enumerate(np.asarray(v, dtype=np.float32)):
            np.save(root / m / f"{i:05d}.npy", row)


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    X, y = make_multimodal_classification(n_samples=160, random_state=0)
    X = ModalityDict({m: np.asarray(v, dtype=np.float32) for m, v in X.items()})
    clf = MultimodalClassifier(max_epochs=4, random_state=0).fit(X, y)
    root = tmp_path_factory.mktemp("tiles")
    write_folder(root, X)
    mm = {}
    for m, v in X.items():
        path = root / f"{m}.npy"
        np.save(path, v)
        mm[m] = np.load(path, mmap_mode="r")
    return X, y, clf, root, ModalityDict(mm)


EXPLAINERS = [
    lambda: PermutationModalityImportance(n_repeats=3, random_state=0, batch_size=64),
    lambda: PermutationModalityImportance(
        n_repeats=2, random_state=1, fast=False, batch_size=50
    ),
    lambda: ConditionalUtilization(batch_size=64),
    lambda: ConditionalUtilization(ablation="input_mean", batch_size=64),
    lambda: ModalityShapley(batch_size=64),
    lambda: ModalityShapley(baseline="mean_input", batch_size=70),
    lambda: GradientModalityAttribution(batch_size=64),
]


def _same(a, b):
    np.testing.assert_allclose(a.shares, b.shares, rtol=1e-4, atol=1e-4)
    for key in ("importances", "rates", "values", "sample_shares"):
        if hasattr(a, key):
            np.testing.assert_allclose(
                getattr(a, key), getattr(b, key), rtol=1e-4, atol=1e-5
            )


@pytest.mark.parametrize("make", EXPLAINERS)
def test_explainers_on_a_lazy_dataset_equal_in_memory(tabular, make):
    X, y, clf, root, _ = tabular
    want = make().explain(clf, X, y)
    ds = NpyFolder(root, X.modalities, y)
    got = make().explain(clf, ds, None)  # targets read from the items
    _same(got, want)
    assert ds.reads > 0
    got2 = make().explain(clf, NpyFolder(root, X.modalities), y)  # items without y
    _same(got2, want)


@pytest.mark.parametrize("make", EXPLAINERS)
def test_explainers_on_memmaps_equal_in_memory(tabular, make):
    X, y, clf, _, mm = tabular
    assert all(isinstance(v, np.memmap) for v in mm.values())
    _same(make().explain(clf, mm, y), make().explain(clf, X, y))


def test_worker_processes_give_the_same_rows(tabular):
    X, y, clf, root, _ = tabular
    src = DatasetSource(NpyFolder(root, X.modalities, y), num_workers=2)
    idx = np.array([5, 150, 0, 77])
    rows = src.take(idx)
    for m in X.modalities:
        np.testing.assert_array_equal(rows[m].numpy(), X[m][idx])
    want = PermutationModalityImportance(n_repeats=2, random_state=0, fast=False)
    got = want.explain(clf, src, y)
    _same(got, want.explain(clf, X, y))


def test_mmtm_on_a_dataset_equals_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    X = ModalityDict(
        a=rng.normal(size=(40, 1, 8, 8)).astype(np.float32),
        b=rng.normal(size=(40, 2, 8, 8)).astype(np.float32),
    )
    y = rng.integers(0, 3, 40)
    clf = MultimodalClassifier(
        MMTMNet, module__channels=(4,), max_epochs=2, random_state=0
    ).fit(X, y)
    write_folder(tmp_path, X)
    ds = NpyFolder(tmp_path, X.modalities, y)
    for make in (
        lambda: ConditionalUtilization(batch_size=16),
        lambda: PermutationModalityImportance(n_repeats=2, random_state=0),
        lambda: ModalityShapley(batch_size=16),
    ):
        _same(make().explain(clf, ds, None), make().explain(clf, X, y))


def test_dataset_errors_name_the_modality(tabular, tmp_path):
    X, y, clf, root, _ = tabular

    class Bad(NpyFolder):
        def __getitem__(self, i):
            Xi, yi = super().__getitem__(i)
            if i == 100:
                Xi["a"] = Xi["a"] * np.nan
            return Xi, yi

    with pytest.raises(ValueError, match="modality 'a' contains NaN"):
        PermutationModalityImportance(n_repeats=1, random_state=0).explain(
            clf, Bad(root, X.modalities, y), None
        )

    class Renamed(NpyFolder):
        def __getitem__(self, i):
            Xi, yi = super().__getitem__(i)
            return {"c" if m == "a" else m: v for m, v in Xi.items()}, yi

    with pytest.raises(ValueError, match="missing modality 'a'"):
        ModalityShapley().explain(clf, Renamed(root, X.modalities, y), None)
    with pytest.raises(ValueError, match="needs y"):
        ModalityShapley().explain(clf, NpyFolder(root, X.modalities), None)


def test_sources_read_rows_by_index(tabular):
    X, y, _, root, mm = tabular
    idx = np.array([3, 1, 159])
    for src in (
        as_source(X),
        ArraySource(mm),
        as_source(NpyFolder(root, X.modalities, y)),
    ):
        rows = src.take(idx, modalities=["b"])
        assert list(rows) == ["b"] and rows["b"].dtype == torch.float32
        np.testing.assert_array_equal(rows["b"].numpy(), X["b"][idx])
        assert len(src) == 160 and src.row_shapes["a"] == X["a"].shape[1:]
    assert not ArraySource(mm).in_memory


# ---------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------
def _weights(clf):
    return {k: v.detach().clone() for k, v in clf.module_.state_dict().items()}


@pytest.mark.parametrize(
    "balancer",
    [
        None,
        "dropout_mean",
        "valuation",
    ],
)
def test_fit_on_a_dataset_gives_the_in_memory_weights(tabular, balancer):
    from mmexplain.balancers import ModalityDropout, SampleValuation

    X, y, _, root, mm = tabular
    make = {
        None: lambda: None,
        "dropout_mean": lambda: ModalityDropout(p=0.4, fill="mean"),
        "valuation": lambda: SampleValuation(warmup_epochs=1),
    }[balancer]
    kw = dict(max_epochs=3, batch_size=32, random_state=3)
    ref = MultimodalClassifier(balancer=make(), **kw).fit(X, y)
    ds = MultimodalClassifier(balancer=make(), **kw).fit(
        NpyFolder(root, X.modalities, y), None
    )
    mem = MultimodalClassifier(balancer=make(), **kw).fit(mm, y)
    for other in (ds, mem):
        for k, v in _weights(ref).items():
            torch.testing.assert_close(_weights(other)[k], v, rtol=1e-5, atol=1e-6)
    if balancer == "valuation":
        assert (
            ds.history[-1, "valuation_extra_samples"]
            == ref.history[-1, "valuation_extra_samples"]
        )


def test_predict_score_partial_fit_on_a_dataset(tabular):
    X, y, clf, root, mm = tabular
    ds = NpyFolder(root, X.modalities, y)
    np.testing.assert_allclose(clf.predict_proba(ds), clf.predict_proba(X), rtol=1e-5)
    np.testing.assert_array_equal(
        clf.predict(NpyFolder(root, X.modalities)), clf.predict(X)
    )
    assert clf.score(ds, y) == pytest.approx(clf.score(X, y))
    np.testing.assert_allclose(clf.predict_proba(mm), clf.predict_proba(X), rtol=1e-5)
    a = MultimodalClassifier(max_epochs=1, random_state=0).partial_fit(ds, None)
    b = MultimodalClassifier(max_epochs=1, random_state=0).partial_fit(X, y)
    a.partial_fit(ds, None)
    b.partial_fit(X, y)
    for k, v in _weights(b).items():
        torch.testing.assert_close(_weights(a)[k], v, rtol=1e-5, atol=1e-6)


def test_memmap_modality_dict_in_model_selection(tabular):
    from sklearn.model_selection import GridSearchCV, train_test_split

    X, y, _, _, mm = tabular
    Xtr, Xte, ytr, yte = train_test_split(
        mm, y, test_size=0.25, random_state=0, stratify=y
    )
    assert isinstance(Xtr, ModalityDict) and len(Xte) == 40
    search = GridSearchCV(
        MultimodalClassifier(max_epochs=2, random_state=0),
        {"lr": [1e-3, 1e-2]},
        cv=2,
    ).fit(mm, y)
    assert set(search.cv_results_["mean_test_score"]) and search.best_score_ > 0.4


def test_dataset_fit_errors(tabular, tmp_path):
    X, y, clf, root, _ = tabular
    with pytest.raises(ValueError, match="carry no target"):
        MultimodalClassifier(max_epochs=1).fit(NpyFolder(root, X.modalities), None)
    with pytest.raises(ValueError, match="missing modality 'b'"):
        clf.predict(NpyFolder(root, ("a",)))


def test_utilization_history_on_a_dataset(tabular):
    from mmexplain.callbacks import UtilizationHistory

    X, y, _, root, mm = tabular

    def run(data, target):
        cb = UtilizationHistory(
            PermutationModalityImportance(n_repeats=2, random_state=0), X=data, y=target
        )
        clf = MultimodalClassifier(max_epochs=2, random_state=0, callbacks=[cb])
        return clf.fit(X, y).history[:, "utilization"]

    want = run(X, y)
    for got in (run(NpyFolder(root, X.modalities, y), None), run(mm, y)):
        for a, b in zip(got, want):
            assert a == pytest.approx(b, rel=1e-4, abs=1e-4)
