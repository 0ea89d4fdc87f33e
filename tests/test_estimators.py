import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.dataset import ValidSplit
from torch.utils.data import DataLoader

from mmexplain import (
    LateFusionNet,
    MLPEncoder,
    MMTMNet,
    ModalityDict,
    ModalityTransformer,
    MultimodalClassifier,
    MultimodalSegmenter,
)
from mmexplain.balancers import ModalityDropout
from mmexplain.estimators import ModalityDataset, TensorBatchIterator


def weights(net):
    return [p.detach().clone() for p in net.module_.parameters()]


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


def test_fit_predict_plain_dict_and_modality_dict(two_modal, two_tower):
    X, y = two_modal
    for data in (X, ModalityDict(X)):
        clf = MultimodalClassifier(two_tower, max_epochs=30, lr=0.02, random_state=0)
        assert clf.fit(data, y) is clf
        assert clf.predict(data).shape == (120,)
        proba = clf.predict_proba(data)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert clf.score(data, y) > 0.85
        assert clf.modalities_ == ("a", "b")


def test_string_labels_and_classes(two_modal, two_tower):
    X, y = two_modal
    labels = np.array(["cat", "dog"])[y]
    clf = MultimodalClassifier(two_tower, max_epochs=20, lr=0.02, random_state=0).fit(
        X, labels
    )
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert set(clf.predict(X)) <= {"cat", "dog"}
    assert clf.score(X, labels) > 0.8
    with pytest.raises(ValueError, match="labels not among the classes"):
        clf.partial_fit(X, np.array(["cat", "emu"] * 60))


def test_module_none_builds_late_fusion_from_data():
    rng = np.random.default_rng(1)
    X = {
        "vec": rng.normal(size=(64, 7)),
        "img": rng.normal(size=(64, 2, 6, 6)).astype(np.float32),
    }
    y = rng.integers(0, 3, 64)
    clf = MultimodalClassifier(
        max_epochs=1, random_state=0, module__embedding_dim=8
    ).fit(X, y)
    assert isinstance(clf.module_, LateFusionNet)
    assert clf.module_.embedding_dims == {"vec": 8, "img": 8}
    assert clf.predict_proba(X).shape == (64, 3)
    with pytest.raises(
        ValueError, match="module=None builds the network from the training data"
    ):
        MultimodalClassifier().initialize()


def test_module_instance_is_not_trained_in_place(two_modal):
    X, y = two_modal
    module = LateFusionNet({"a": MLPEncoder(5, 4), "b": MLPEncoder(3, 4)}, n_classes=2)
    before = [p.detach().clone() for p in module.parameters()]
    clf = MultimodalClassifier(module, max_epochs=2).fit(X, y)
    assert same_weights(before, list(module.parameters()))
    assert not same_weights(before, weights(clf))


def test_determinism_and_global_rng_restored(two_modal, two_tower):
    X, y = two_modal
    kw = dict(max_epochs=3, random_state=7, balancer=ModalityDropout(p=0.3))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = MultimodalClassifier(two_tower, **kw).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)  # caller's RNG untouched
    b = MultimodalClassifier(two_tower, **kw).fit(X, y)
    assert same_weights(weights(a), weights(b))
    c = MultimodalClassifier(two_tower, **{**kw, "random_state": 8}).fit(X, y)
    assert not same_weights(weights(a), weights(c))
    # partial_fit continues with new shuffles, still deterministic
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    assert same_weights(weights(a), weights(b))


def test_inputs_not_mutated(two_modal, two_tower):
    X, y = two_modal
    X32 = {k: v.astype(np.float32) for k, v in X.items()}
    X32["t"] = torch.randn(120, 2)
    copies = {
        k: (v.clone() if isinstance(v, torch.Tensor) else v.copy())
        for k, v in X32.items()
    }

    class Three(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(10, 2)

        def forward(self, a, b, t):
            return self.lin(torch.cat([a, b, t], 1))

    clf = MultimodalClassifier(
        Three,
        max_epochs=2,
        balancer=ModalityDropout(p=0.4, fill="mean"),
        random_state=0,
    ).fit(X32, y)
    clf.predict(X32)
    for k, v in X32.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(copies[k]))


def test_balancer_params_routing(two_modal, two_tower):
    X, y = two_modal
    clf = MultimodalClassifier(two_tower, balancer=ModalityDropout(p=0.2), max_epochs=1)
    params = clf.get_params()
    assert params["balancer__p"] == 0.2 and params["balancer__fill"] == "zeros"
    clf.set_params(balancer__p=0.5, balancer__fill="mean", lr=0.05)
    assert clf.balancer.p == 0.5 and clf.balancer.fill == "mean" and clf.lr == 0.05
    assert "balancer__p" not in vars(clf)  # skorch's default would store it flat
    clf.fit(X, y)
    assert clf.balancer_ is not clf.balancer and clf.balancer_.p == 0.5
    assert clf.balancer_.means_ is not None
    c2 = clone(clf)
    assert c2.balancer is not clf.balancer and c2.get_params()["balancer__p"] == 0.5
    with pytest.raises(ValueError, match="cannot set"):
        MultimodalClassifier(two_tower).set_params(balancer__p=0.1)
    with pytest.raises(TypeError, match="balancer must be an mmexplain balancer"):
        MultimodalClassifier(two_tower, balancer="dropout").fit(X, y)
    with pytest.raises(
        ValueError,
        match=r"'p' parameter of ModalityDropout must be .*\[0(\.0)?, 1(\.0)?\)",
    ):
        MultimodalClassifier(
            two_tower, balancer=ModalityDropout(p=1.0), max_epochs=1
        ).fit(X, y)


def test_grid_search_over_balancer_and_module_params():
    rng = np.random.default_rng(0)
    X = ModalityDict(
        a=rng.normal(size=(90, 5)).astype(np.float32),
        b=rng.normal(size=(90, 3)).astype(np.float32),
    )
    y = (X["a"][:, 0] > 0).astype(int)
    clf = MultimodalClassifier(balancer=ModalityDropout(), max_epochs=2, random_state=0)
    gs = GridSearchCV(
        clf,
        {"balancer__p": [0.1, 0.4], "module__embedding_dim": [4, 8]},
        cv=2,
    ).fit(X, y)
    assert len(gs.cv_results_["params"]) == 4
    best = gs.best_estimator_
    assert best.balancer_.p == gs.best_params_["balancer__p"]
    assert best.module_.embedding_dims["a"] == gs.best_params_["module__embedding_dim"]
    scores = cross_val_score(
        MultimodalClassifier(max_epochs=1, random_state=0), X, y, cv=3
    )
    assert scores.shape == (3,)


def test_pipeline_with_modality_transformer(two_modal, two_tower):
    X, y = two_modal
    X = {"a": X["a"] * 100 + 5, "b": X["b"]}
    pipe = make_pipeline(
        ModalityTransformer({"a": StandardScaler()}),
        MultimodalClassifier(two_tower, max_epochs=20, lr=0.02, random_state=0),
    )
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.8
    gs = GridSearchCV(pipe, {"modalitytransformer__a__with_mean": [True, False]}, cv=2)
    gs.fit(ModalityDict(X), y)
    assert set(gs.best_params_) == {"modalitytransformer__a__with_mean"}


def test_stratified_split_and_internal_validation(two_modal, two_tower):
    X, y = two_modal
    Xtr, Xte, ytr, yte = train_test_split(
        ModalityDict(X), y, stratify=y, random_state=0
    )
    clf = MultimodalClassifier(
        two_tower,
        max_epochs=3,
        train_split=ValidSplit(0.25, stratified=True, random_state=0),
        random_state=0,
    ).fit(Xtr, ytr)
    h = clf.history
    assert len(h) == 3 and "valid_acc" in h[-1] and 0 <= h[-1, "valid_acc"] <= 1
    # the recorded validation accuracy equals accuracy recomputed on that split
    ds = clf.get_dataset(Xtr, clf._encode_y(ytr, reset=False))
    _, ds_valid = clf.train_split(ds, clf._encode_y(ytr, reset=False))
    Xv = {k: v for k, v in ds_valid.dataset.X.items()}
    idx = np.asarray(ds_valid.indices)
    acc = np.mean(clf.predict({k: v[idx] for k, v in Xv.items()}) == ytr[idx])
    assert h[-1, "valid_acc"] == pytest.approx(acc)


def test_pickle_and_save_load_params(tmp_path, two_modal, two_tower):
    X, y = two_modal
    clf = MultimodalClassifier(
        two_tower, max_epochs=2, random_state=0, balancer=ModalityDropout()
    ).fit(X, y)
    p = clf.predict_proba(X)
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone_.predict_proba(X), p)
    clf.save_params(f_params=tmp_path / "w.pt", f_history=tmp_path / "h.json")
    new = MultimodalClassifier(two_tower).fit(X, y)  # different weights
    new.load_params(f_params=tmp_path / "w.pt", f_history=tmp_path / "h.json")
    np.testing.assert_allclose(new.predict_proba(X), p, rtol=1e-6)
    # module=None: build from data with max_epochs=0, then load
    auto = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    auto.save_params(f_params=tmp_path / "auto.pt")
    fresh = MultimodalClassifier(max_epochs=0).fit(X, y)
    fresh.load_params(f_params=tmp_path / "auto.pt")
    np.testing.assert_allclose(fresh.predict_proba(X), auto.predict_proba(X), rtol=1e-6)
    # MMTMNet with its running-average buffers
    rng = np.random.default_rng(0)
    Xi = {"color": rng.random((40, 3, 8, 8)), "gray": rng.random((40, 1, 8, 8))}
    yi = rng.integers(0, 2, 40)
    mm = MultimodalClassifier(
        MMTMNet, module__channels=(4, 8), max_epochs=1, random_state=0
    ).fit(Xi, yi)
    mm2 = pickle.loads(pickle.dumps(mm))
    np.testing.assert_array_equal(mm2.predict_proba(Xi), mm.predict_proba(Xi))


def test_bad_inputs_give_clear_errors(two_modal, two_tower):
    X, y = two_modal
    clf = MultimodalClassifier(two_tower, max_epochs=1)
    with pytest.raises(TypeError, match="X must be a mapping"):
        clf.fit(X["a"], y)
    with pytest.raises(ValueError, match="y has 119 rows but X has 120 samples"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="modality 'b' has 100 samples"):
        clf.fit({"a": X["a"], "b": X["b"][:100]}, y)
    with pytest.raises(ValueError, match="single class"):
        clf.fit(X, np.zeros(120))
    clf.fit(X, y)
    with pytest.raises(ValueError, match="missing modality 'b'"):
        clf.predict({"a": X["a"]})
    with pytest.raises(ValueError, match="unknown modality 'c'"):
        clf.predict({**X, "c": X["a"]})
    with pytest.raises(
        ValueError,
        match="modality 'a' has 4 features per sample but the model was fitted on 5",
    ):
        clf.predict({"a": X["a"][:, :4], "b": X["b"]})
    with pytest.raises(ValueError, match="modality 'a' has 3 dimensions"):
        clf.predict({"a": X["a"][:, :, None], "b": X["b"]})
    bad = X["a"].copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="modality 'a' contains NaN or infinite"):
        clf.predict({"a": bad, "b": X["b"]})
    with pytest.raises(TypeError, match="modality 'b' has non-numeric dtype"):
        clf.predict({"a": X["a"], "b": X["b"].astype(str)})
    with pytest.raises(
        ValueError, match="modality 'img' has shape .* expected at least 2"
    ):
        MultimodalClassifier(max_epochs=1).fit({"img": np.zeros(120)}, y)
    with pytest.raises(ValueError, match="modality 'v'"):
        MultimodalClassifier(max_epochs=1).fit({"v": np.zeros((120, 2, 3, 4, 5))}, y)


def test_segmenter_end_to_end():
    rng = np.random.default_rng(0)
    n, h, w = 24, 10, 11
    cue = rng.integers(0, 3, (n, h, w))
    X = {
        "rgb": (
            np.eye(3)[cue].transpose(0, 3, 1, 2) + 0.1 * rng.normal(size=(n, 3, h, w))
        ).astype(np.float32),
        "nir": rng.normal(size=(n, 1, h, w)).astype(np.float32),
    }
    y = cue.copy()
    y[:, 0, :] = 255  # ignored pixels
    seg = MultimodalSegmenter(
        max_epochs=30, lr=0.01, ignore_index=255, random_state=0
    ).fit(X, y)
    assert seg.criterion_.ignore_index == 255
    assert seg.n_classes_ == 3
    pred = seg.predict(X)
    assert pred.shape == (n, h, w) and pred.dtype.kind == "i"
    assert seg.predict_proba(X).shape == (n, 3, h, w)
    assert seg.score(X, y) > 0.8
    with pytest.raises(ValueError, match="modality 'nir' has images of size"):
        MultimodalSegmenter(max_epochs=1).fit({**X, "nir": X["nir"][:, :, :5]}, y)
    with pytest.raises(ValueError, match="segmentation needs images"):
        MultimodalSegmenter(max_epochs=1).fit({"v": np.zeros((n, 3))}, y)
    with pytest.raises(ValueError, match="y must be integer masks"):
        MultimodalSegmenter(max_epochs=1).fit(X, y[:, 0])
    a = MultimodalSegmenter(max_epochs=1, random_state=3).fit(X, cue)
    b = MultimodalSegmenter(max_epochs=1, random_state=3).fit(X, cue)
    assert same_weights(weights(a), weights(b))


def test_tensor_batch_iterator_matches_dataloader(two_modal, two_tower):
    X, y = two_modal
    ds = ModalityDataset(X, y)
    it = TensorBatchIterator(ds, batch_size=50)
    assert len(it) == 3
    batches = list(it)
    assert [len(b[1]) for b in batches] == [50, 50, 20]
    dl = list(DataLoader(ds, batch_size=50))
    for (xa, ya), (xb, yb) in zip(batches, dl):
        assert torch.equal(ya, yb) and all(torch.equal(xa[k], xb[k]) for k in xa)
    g = torch.Generator().manual_seed(0)
    rows = torch.cat(
        [b[1] for b in TensorBatchIterator(ds, batch_size=7, shuffle=True, generator=g)]
    )
    assert sorted(rows.tolist()) == sorted(
        ds.y.tolist()
    )  # a permutation: every row once
    assert len(TensorBatchIterator(ds, batch_size=50, drop_last=True)) == 2
    # skorch's default DataLoader iteration still works and gives the same model
    kw = dict(max_epochs=2, random_state=0, iterator_train__shuffle=False)
    fast = MultimodalClassifier(two_tower, **kw).fit(X, y)
    slow = MultimodalClassifier(
        two_tower, iterator_train=DataLoader, iterator_valid=DataLoader, **kw
    ).fit(X, y)
    for p, q in zip(weights(fast), weights(slow)):
        torch.testing.assert_close(p, q)


def test_mmtm_trains_on_sum_of_branch_losses():
    rng = np.random.default_rng(0)
    X = {
        "color": rng.random((32, 3, 8, 8)).astype(np.float32),
        "gray": rng.random((32, 1, 8, 8)).astype(np.float32),
    }
    y = rng.integers(0, 2, 32)
    clf = MultimodalClassifier(
        MMTMNet,
        module__channels=(4,),
        max_epochs=1,
        batch_size=32,
        lr=0.0,
        random_state=0,
    )
    clf.fit(X, y)
    net = clf.module_
    net.train()
    xt = {k: torch.from_numpy(v) for k, v in X.items()}
    net(**xt)
    yt = torch.as_tensor(y)
    expected = sum(
        torch.nn.functional.cross_entropy(v, yt) for v in net.branch_logits.values()
    )
    assert clf.history[-1, "train_loss"] == pytest.approx(
        float(expected.detach()), rel=1e-5
    )
    assert clf.module_.modalities == ("color", "gray")


def test_warm_start_switches_in_a_new_balancer(two_modal, two_tower):
    X, y = two_modal
    clf = MultimodalClassifier(
        two_tower, max_epochs=2, warm_start=True, random_state=0
    ).fit(X, y)
    assert clf.balancer_ is None
    before = weights(clf)
    clf.set_params(balancer=ModalityDropout(p=0.2))
    clf.fit(X, y)  # keeps the trained module, starts the new balancer
    assert isinstance(clf.balancer_, ModalityDropout) and clf.balancer_.p == 0.2
    assert len(clf.history) == 4 and not same_weights(before, weights(clf))
    clf.set_params(balancer__p=0.5)
    clf.partial_fit(X, y)  # a changed balancer parameter is picked up
    assert clf.balancer_.p == 0.5
    fitted = clf.balancer_
    clf.partial_fit(X, y)  # unchanged: the same fitted balancer continues
    assert clf.balancer_ is fitted
