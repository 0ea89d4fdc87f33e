"""Tests of mmexplain.datasets: loaders, generators and corruptions."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmexplain.data import ModalityDict
from mmexplain.datasets import (
    add_gaussian_noise,
    blackout,
    load_multiple_features,
    make_colored_digits,
    make_multimodal_classification,
    make_multimodal_segmentation,
    make_rendered_colored_digits,
    make_rendered_digits,
)

MF_DIMS = {
    "fourier": 76,
    "profile": 216,
    "karhunen": 64,
    "pixel": 240,
    "zernike": 47,
    "morphological": 6,
}


def _lr_score(X_train, y_train, X_test, y_test) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return model.fit(X_train, y_train).score(X_test, y_test)


# ----------------------------------------------------------------------------
# load_multiple_features
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multiple_features():
    return load_multiple_features()


def test_multiple_features_shapes_dtypes_labels(multiple_features):
    X, y = multiple_features
    assert isinstance(X, ModalityDict)
    assert X.modalities == tuple(MF_DIMS)
    assert len(X) == 2000
    for name, dim in MF_DIMS.items():
        assert X[name].shape == (2000, dim)
        assert X[name].dtype == np.float32
        assert np.isfinite(X[name]).all()
    assert y.shape == (2000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 200))
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 200))  # original order


def test_multiple_features_known_values(multiple_features):
    # values read from the csv files (first and last rows)
    X, _ = multiple_features
    f32 = np.float32
    np.testing.assert_array_equal(
        X["fourier"][0, :3], f32([0.065882, 0.19731, 0.10383])
    )
    np.testing.assert_array_equal(
        X["profile"][0, :6], f32([98, 236, 531, 673, 607, 647])
    )
    np.testing.assert_array_equal(
        X["karhunen"][-1, :4], f32([11.252, -5.9597, 5.3672, -0.84195])
    )
    np.testing.assert_array_equal(X["pixel"][0, :6], f32([0, 3, 4, 4, 6, 6]))
    np.testing.assert_array_equal(X["zernike"][0, :3], f32([0.011033, 0.83147, 15.352]))
    np.testing.assert_array_equal(
        X["morphological"][0], f32([1, 0, 0, 133.15, 1.3117, 1620.2])
    )
    # integer views
    assert set(np.unique(X["pixel"]).tolist()) <= set(range(7))
    assert np.array_equal(X["profile"], np.round(X["profile"]))
    assert X["profile"].max() == 1353


def test_multiple_features_classifier(multiple_features):
    X, y = multiple_features
    idx_tr, idx_te = train_test_split(
        np.arange(len(y)), test_size=0.3, stratify=y, random_state=0
    )
    acc_pixel = _lr_score(X["pixel"][idx_tr], y[idx_tr], X["pixel"][idx_te], y[idx_te])
    assert acc_pixel > 0.9
    acc_mor = _lr_score(
        X["morphological"][idx_tr], y[idx_tr], X["morphological"][idx_te], y[idx_te]
    )
    assert 0.3 < acc_mor < acc_pixel  # 6 morphological features are much weaker


def test_multiple_features_select_modalities():
    X, y = load_multiple_features(modalities=["morphological", "fourier"])
    assert X.modalities == ("morphological", "fourier")
    assert X["morphological"].shape == (2000, 6)
    X_one, _ = load_multiple_features("pixel")
    assert X_one.modalities == ("pixel",)
    with pytest.raises(ValueError, match="unknown modality 'rgb'"):
        load_multiple_features(modalities=["pixel", "rgb"])
    with pytest.raises(ValueError, match="empty"):
        load_multiple_features(modalities=[])
    with pytest.raises(ValueError, match="repeated"):
        load_multiple_features(modalities=["pixel", "pixel"])


def test_multiple_features_fresh_arrays_and_license():
    X1, y1 = load_multiple_features(modalities=["pixel"])
    X1["pixel"][:] = -1.0
    y1[:] = -1
    X2, y2 = load_multiple_features(modalities=["pixel"])
    assert X2["pixel"].min() == 0 and y2.min() == 0
    data = resources.files("mmexplain.datasets").joinpath("data")
    text = data.joinpath("multiple_features_LICENSE.txt").read_text()
    assert "CC BY 4.0" in text and "van Breukelen" in text and "10.24432/C5HC70" in text
    size = data.joinpath("multiple_features.npz").stat().st_size
    assert size < 1_600_000


# ----------------------------------------------------------------------------
# make_colored_digits
# ----------------------------------------------------------------------------
def _mean_colour(X: ModalityDict) -> np.ndarray:
    m = X["color"].mean(axis=(2, 3))
    return m / m.max(axis=1, keepdims=True)


class _NearestMean:
    """Nearest-class-mean rule (Euclidean), fitted on one split."""

    def fit(self, features: np.ndarray, y: np.ndarray) -> _NearestMean:
        self.means_ = np.stack([features[y == c].mean(axis=0) for c in range(10)])
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        dist = ((features[:, None, :] - self.means_[None]) ** 2).sum(axis=-1)
        return dist.argmin(axis=1)

    def score(self, features: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == y))


@pytest.fixture(scope="module")
def colored_digits():
    return make_colored_digits(random_state=0)


def test_colored_digits_shapes_and_split(colored_digits):
    X_tr, y_tr, X_va, y_va = colored_digits
    assert len(X_tr) + len(X_va) == 1797
    assert len(X_va) == 540
    for X, y in [(X_tr, y_tr), (X_va, y_va)]:
        assert X.modalities == ("color", "gray")
        assert X["color"].shape == (len(y), 3, 8, 8) and X["color"].dtype == np.float32
        assert X["gray"].shape == (len(y), 1, 8, 8) and X["gray"].dtype == np.float32
        for arr in X.values():
            assert arr.min() >= 0.0 and arr.max() <= 1.0
        assert y.dtype == np.int64 and set(np.unique(y).tolist()) == set(range(10))
    # stratified: every class has ~30 % of its images in validation
    frac = np.bincount(y_va) / (np.bincount(y_tr) + np.bincount(y_va))
    assert np.all(np.abs(frac - 0.3) < 0.02)


def test_colored_digits_colour_is_a_train_only_shortcut(colored_digits):
    X_tr, y_tr, X_va, y_va = colored_digits
    rule = _NearestMean().fit(_mean_colour(X_tr), y_tr)
    assert rule.score(_mean_colour(X_tr), y_tr) > 0.99
    assert rule.score(_mean_colour(X_va), y_va) < 0.2  # chance is 0.1
    gray_tr = X_tr["gray"].reshape(len(y_tr), -1)
    gray_va = X_va["gray"].reshape(len(y_va), -1)
    assert _lr_score(gray_tr, y_tr, gray_va, y_va) > 0.9


def test_colored_digits_monochromatic_and_knobs():
    X_tr, y_tr, X_va, y_va = make_colored_digits(
        train_correlation=0.5, val_correlation=1.0, color_noise=0.0, random_state=1
    )
    # the colour image is the gray digit times one RGB colour
    gray = X_tr["gray"][:, 0]
    rgb = X_tr["color"].sum(axis=(2, 3)) / gray.sum(axis=(1, 2))[:, None]
    np.testing.assert_allclose(
        X_tr["color"], gray[:, None] * rgb[:, :, None, None], atol=1e-5
    )
    rule = _NearestMean().fit(_mean_colour(X_va), y_va)
    assert rule.score(_mean_colour(X_va), y_va) == 1.0
    acc_tr = np.mean(rule.predict(_mean_colour(X_tr)) == y_tr)
    assert abs(acc_tr - 0.5) < 0.06
    # gray noise
    _, _, X_noisy, _ = make_colored_digits(gray_noise=0.2, random_state=1)
    assert np.abs(X_noisy["gray"] - X_va["gray"]).mean() > 0.05


def test_colored_digits_seeding_and_errors():
    a = make_colored_digits(random_state=3)
    b = make_colored_digits(random_state=3)
    c = make_colored_digits(random_state=4)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    assert not a[0] == c[0]
    for kwargs in [
        {"val_fraction": 0.0},
        {"val_fraction": 1.0},
        {"train_correlation": 1.5},
        {"val_correlation": -0.1},
        {"color_noise": -1.0},
        {"colors": np.zeros((9, 3))},
        {"colors": np.full((10, 3), 2.0)},
    ]:
        with pytest.raises(ValueError):
            make_colored_digits(**kwargs)


# ----------------------------------------------------------------------------
# make_rendered_digits, make_rendered_colored_digits
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered():
    return make_rendered_digits(3000, random_state=0)


def test_rendered_digits_shapes_balance_and_range(rendered):
    X, y = rendered
    assert X.shape == (3000, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (3000,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y), [300] * 10)  # balanced
    assert len(np.unique(y[:20])) > 3  # shuffled, not sorted by class
    # ink on a black background, a real amount of it in every image
    ink = X.mean(axis=(1, 2, 3))
    assert ink.min() > 0.01 and ink.max() < 0.6  # no empty image
    assert X[:, :, :2].mean() < 0.05 and X[:, :, :, -2:].mean() < 0.05  # margins
    X7, y7 = make_rendered_digits(7, image_size=16, random_state=1)
    assert X7.shape == (7, 1, 16, 16)
    np.testing.assert_array_equal(np.sort(y7), [0, 1, 2, 3, 4, 5, 6])


def test_rendered_digits_are_deterministic_and_seeded(rendered):
    X, y = rendered
    X2, y2 = make_rendered_digits(3000, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, y3 = make_rendered_digits(3000, random_state=1)
    assert not np.array_equal(X, X3)
    # the same generator state twice gives the same images as a fresh seed
    rng = np.random.default_rng(5)
    a = make_rendered_digits(50, random_state=rng)
    b = make_rendered_digits(50, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_rendered_digits_are_learnable_far_above_chance(rendered):
    X, y = rendered
    flat = X[:, 0, ::2, ::2].reshape(len(y), -1)  # 14x14: a fast linear model
    assert _lr_score(flat[:2000], y[:2000], flat[2000:], y[2000:]) > 0.6  # chance 0.1


def test_rendered_digits_knobs_and_errors():
    plain = dict(max_rotation=0, scale_range=(1, 1), max_shear=0, max_shift=0)
    thin, _ = make_rendered_digits(
        50, stroke_range=(-0.3, -0.3), **plain, random_state=2
    )
    bold, _ = make_rendered_digits(50, stroke_range=(1.5, 1.5), **plain, random_state=2)
    assert (bold >= thin).all() and bold.mean() > 1.3 * thin.mean()
    noisy, _ = make_rendered_digits(50, noise=0.2, **plain, random_state=2)
    assert (
        np.abs(noisy - make_rendered_digits(50, **plain, random_state=2)[0]).mean()
        > 0.05
    )
    for kwargs in [
        {"n_samples": 0},
        {"image_size": 4},
        {"scale_range": (1.2, 0.8)},
        {"stroke_range": (0, np.inf)},
        {"scale_range": 1.0},
        {"max_shift": 0.8},
        {"noise": -1},
    ]:
        with pytest.raises(ValueError):
            make_rendered_digits(**{"n_samples": 10, **kwargs})


def test_rendered_colored_digits_colour_is_a_train_only_shortcut():
    X_tr, y_tr, X_va, y_va = make_rendered_colored_digits(1000, 500, random_state=0)
    assert X_tr.modalities == ("color", "gray")
    assert X_tr["color"].shape == (1000, 3, 28, 28)
    assert X_va["gray"].shape == (500, 1, 28, 28)
    for X in (X_tr, X_va):
        assert all(a.dtype == np.float32 for a in X.values())
    # the colour image is the gray digit times one RGB colour
    gray = X_tr["gray"][:, 0]
    rgb = X_tr["color"].sum(axis=(2, 3)) / gray.sum(axis=(1, 2))[:, None]
    np.testing.assert_allclose(
        X_tr["color"], gray[:, None] * rgb[:, :, None, None], atol=1e-5
    )
    rule = _NearestMean().fit(_mean_colour(X_tr), y_tr)
    assert rule.score(_mean_colour(X_tr), y_tr) > 0.99
    assert rule.score(_mean_colour(X_va), y_va) < 0.2  # chance is 0.1
    again = make_rendered_colored_digits(1000, 500, random_state=0)
    np.testing.assert_array_equal(again[0]["color"], X_tr["color"])
    with pytest.raises(ValueError):
        make_rendered_colored_digits(10, 10, train_correlation=2.0)
    with pytest.raises(TypeError):
        make_rendered_colored_digits(10, 10, unknown=1)


# ----------------------------------------------------------------------------
# make_multimodal_classification
# ----------------------------------------------------------------------------
def _unimodal_and_fused(X, y, n_train):
    tr, te = slice(0, n_train), slice(n_train, None)
    acc = {m: _lr_score(X[m][tr], y[tr], X[m][te], y[te]) for m in X}
    Z = np.hstack([X[m] for m in X])
    acc["fused"] = _lr_score(Z[tr], y[tr], Z[te], y[te])
    return acc


def test_classification_shapes_and_balance():
    X, y = make_multimodal_classification(
        600,
        n_classes=3,
        modalities=["x", "y", "z"],
        n_features=[4, 7, 2],
        random_state=0,
    )
    assert X.modalities == ("x", "y", "z")
    assert [X[m].shape for m in X] == [(600, 4), (600, 7), (600, 2)]
    assert all(X[m].dtype == np.float32 for m in X)
    assert y.shape == (600,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=3)
    assert len(counts) == 3 and counts.min() > 150
    X, y = make_multimodal_classification(10, modalities=3, random_state=0)
    assert X.modalities == ("m0", "m1", "m2")
    X, y = make_multimodal_classification(
        50,
        modalities={"img": {"n_features": 6, "informativeness": 2.0}, "txt": {}},
        n_features=3,
        random_state=0,
    )
    assert X["img"].shape == (50, 6) and X["txt"].shape == (50, 3)


def test_classification_informativeness_orders_accuracy():
    X, y = make_multimodal_classification(
        2000,
        modalities=["strong", "weak", "none"],
        informativeness=[1.0, 0.2, 0.0],
        shared=1.0,
        random_state=0,
    )
    acc = _unimodal_and_fused(X, y, 1400)
    assert acc["strong"] > 0.8
    assert acc["strong"] > acc["weak"] + 0.15
    assert acc["weak"] > acc["none"] + 0.03
    assert abs(acc["none"] - 0.5) < 0.07


def test_classification_shared_versus_private():
    kwargs = dict(n_samples=3000, informativeness=1.0, noise=0.3)
    acc_red = _unimodal_and_fused(
        *make_multimodal_classification(shared=1.0, random_state=1, **kwargs), 2000
    )
    acc_comp = _unimodal_and_fused(
        *make_multimodal_classification(shared=0.0, random_state=1, **kwargs), 2000
    )
    gain_red = acc_red["fused"] - max(acc_red["a"], acc_red["b"])
    gain_comp = acc_comp["fused"] - max(acc_comp["a"], acc_comp["b"])
    # complementary modalities: each alone sees about half the evidence
    assert max(acc_comp["a"], acc_comp["b"]) < 0.8
    assert gain_comp > 0.1
    assert gain_red < gain_comp - 0.05


def test_classification_seeding_and_errors():
    X1, y1 = make_multimodal_classification(100, random_state=5)
    X2, y2 = make_multimodal_classification(100, random_state=5)
    X3, y3 = make_multimodal_classification(100, random_state=6)
    assert X1 == X2 and np.array_equal(y1, y2)
    assert not X1 == X3
    gen = np.random.default_rng(0)
    Xa, _ = make_multimodal_classification(100, random_state=gen)
    Xb, _ = make_multimodal_classification(100, random_state=gen)
    assert not Xa == Xb  # a Generator is advanced, not reseeded
    bad = [
        {"n_samples": 0},
        {"n_classes": 1},
        {"shared": 1.5},
        {"noise": -1.0},
        {"informativeness": [1.0, -0.5]},
        {"n_features": [3, 4, 5]},
        {"modalities": []},
        {"modalities": ["a", "a"]},
        {"modalities": {"a": {"n_feature": 3}}},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            make_multimodal_classification(**kwargs)


# ----------------------------------------------------------------------------
# make_multimodal_segmentation
# ----------------------------------------------------------------------------
def _class_means(channel: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.array([channel[y == c].mean() for c in range(n_classes)])


def test_segmentation_shapes_dtypes():
    X, y = make_multimodal_segmentation(random_state=0)
    assert X.modalities == ("rgb", "aolp", "dolp", "nir")
    assert X["rgb"].shape == (64, 3, 32, 32)
    for m in ("aolp", "dolp", "nir"):
        assert X[m].shape == (64, 1, 32, 32)
    for arr in X.values():
        assert arr.dtype == np.float32 and arr.min() >= 0.0 and arr.max() <= 1.0
    assert y.shape == (64, 32, 32) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == {0, 1, 2, 3}
    assert 0.3 < np.mean(y == 0) < 0.9  # background is the largest class
    X, y = make_multimodal_segmentation(
        5, image_size=(16, 24), n_classes=6, random_state=0
    )
    assert X["rgb"].shape == (5, 3, 16, 24) and y.shape == (5, 16, 24)
    assert y.max() <= 5


def test_segmentation_modality_cues():
    X, y = make_multimodal_segmentation(n_classes=6, random_state=0)
    k = 6
    rgb = np.stack([_class_means(X["rgb"][:, c], y, k) for c in range(3)], axis=1)
    dolp = _class_means(X["dolp"][:, 0], y, k)
    nir = _class_means(X["nir"][:, 0], y, k)
    aolp_std = np.array([X["aolp"][:, 0][y == c].std() for c in range(k)])
    aolp = _class_means(X["aolp"][:, 0], y, k)
    # rgb confuses metal (2) with plastic (3) and asphalt (0) with water (4)...
    assert np.abs(rgb[2] - rgb[3]).max() < 0.03
    assert np.abs(rgb[0] - rgb[4]).max() < 0.03
    # ... but separates the other groups
    assert np.abs(rgb[1] - rgb[0]).max() > 0.1 and np.abs(rgb[5] - rgb[0]).max() > 0.1
    assert np.abs(rgb[2] - rgb[0]).max() > 0.1
    # polarization separates what rgb confuses
    assert dolp[2] - dolp[3] > 0.4 and dolp[4] - dolp[0] > 0.25
    assert abs(aolp[2] - 0.25) < 0.03 and abs(aolp[4] - 0.75) < 0.03
    assert aolp_std[2] < 0.1 and aolp_std[3] > 0.2  # unpolarized: random angle
    # nir separates vegetation and water, confuses metal and plastic
    assert nir[1] - nir[0] > 0.4 and nir[0] - nir[4] > 0.15
    assert abs(nir[2] - nir[3]) < 0.03
    # per-pixel: thresholding dolp tells metal from plastic almost always
    metal_or_plastic = (y == 2) | (y == 3)
    pred = X["dolp"][:, 0][metal_or_plastic] > 0.4
    assert np.mean(pred == (y[metal_or_plastic] == 2)) > 0.99


def test_segmentation_subset_seeding_and_errors():
    X, y = make_multimodal_segmentation(8, random_state=2)
    X_sub, y_sub = make_multimodal_segmentation(
        8, modalities=["nir", "dolp"], random_state=2
    )
    assert X_sub.modalities == ("nir", "dolp")
    np.testing.assert_array_equal(y, y_sub)
    np.testing.assert_array_equal(X["nir"], X_sub["nir"])
    X2, y2 = make_multimodal_segmentation(8, random_state=2)
    X3, _ = make_multimodal_segmentation(8, random_state=3)
    assert X == X2 and np.array_equal(y, y2) and not X == X3
    X_clean, _ = make_multimodal_segmentation(8, noise={"dolp": 0.0}, random_state=2)
    assert set(np.unique(X_clean["dolp"]).tolist()) <= {
        np.float32(0.1),
        np.float32(0.7),
    }
    for kwargs in [
        {"n_classes": 7},
        {"n_classes": 1},
        {"modalities": ["rgb", "depth"]},
        {"modalities": []},
        {"image_size": (4, 4)},
        {"noise": -0.1},
        {"n_objects": (3, 1)},
    ]:
        with pytest.raises(ValueError):
            make_multimodal_segmentation(**kwargs)


# ----------------------------------------------------------------------------
# corruptions
# ----------------------------------------------------------------------------
def _toy(n: int = 400, seed: int = 0) -> ModalityDict:
    rng = np.random.default_rng(seed)
    return ModalityDict(
        eo=rng.random((n, 3, 4, 4)).astype(np.float32) + 1.0,
        sar=rng.random((n, 5)),
    )


def _blacked_rows(arr, value=0.0) -> np.ndarray:
    arr = arr.numpy() if isinstance(arr, torch.Tensor) else arr
    return (arr.reshape(len(arr), -1) == value).all(axis=1)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_blackout_fraction_and_no_mutation(p):
    X = _toy()
    ref = {k: v.copy() for k, v in X.items()}
    Xb = blackout(X, "eo", p, random_state=0)
    assert isinstance(Xb, ModalityDict) and Xb.modalities == X.modalities
    for k in X:
        np.testing.assert_array_equal(X[k], ref[k])
    assert Xb["sar"] is X["sar"]
    assert Xb["eo"] is not X["eo"] and Xb["eo"].dtype == X["eo"].dtype
    black = _blacked_rows(Xb["eo"])
    assert black.sum() == round(p * len(X))
    np.testing.assert_array_equal(Xb["eo"][~black], X["eo"][~black])


def test_blackout_value_seeding_and_torch():
    X = _toy()
    a = blackout(X, "eo", 0.3, value=-1.0, random_state=7)
    b = blackout(X, "eo", 0.3, value=-1.0, random_state=7)
    c = blackout(X, "eo", 0.3, value=-1.0, random_state=8)
    rows = _blacked_rows(a["eo"], -1.0)
    np.testing.assert_array_equal(rows, _blacked_rows(b["eo"], -1.0))
    assert not np.array_equal(rows, _blacked_rows(c["eo"], -1.0))
    Xt = {k: torch.from_numpy(v) for k, v in X.items()}
    ref = Xt["eo"].clone()
    at = blackout(Xt, "eo", 0.3, value=-1.0, random_state=7)
    assert isinstance(at["eo"], torch.Tensor) and at["eo"].dtype == torch.float32
    assert torch.equal(Xt["eo"], ref)
    assert at["sar"] is Xt["sar"]
    np.testing.assert_array_equal(at["eo"].numpy(), a["eo"])


def test_add_gaussian_noise_variance_and_no_mutation():
    X = _toy(2000)
    ref = {k: v.copy() for k, v in X.items()}
    Xn = add_gaussian_noise(X, "eo", 0.04, random_state=0)
    for k in X:
        np.testing.assert_array_equal(X[k], ref[k])
    assert Xn["sar"] is X["sar"]
    assert Xn["eo"].dtype == np.float32 and Xn["eo"].shape == X["eo"].shape
    diff = Xn["eo"].astype(np.float64) - X["eo"]
    assert abs(diff.var() / 0.04 - 1.0) < 0.03 and abs(diff.mean()) < 0.005
    # seeding, clipping, zero variance, integer input, torch
    again = add_gaussian_noise(X, "eo", 0.04, random_state=0)
    np.testing.assert_array_equal(again["eo"], Xn["eo"])
    other = add_gaussian_noise(X, "eo", 0.04, random_state=1)
    assert not np.array_equal(other["eo"], Xn["eo"])
    clipped = add_gaussian_noise(X, "eo", 1.0, clip=(1.0, 1.5), random_state=0)
    assert clipped["eo"].min() >= 1.0 and clipped["eo"].max() <= 1.5
    np.testing.assert_array_equal(add_gaussian_noise(X, "sar", 0.0)["sar"], X["sar"])
    ints = add_gaussian_noise({"a": np.zeros((10, 2), dtype=np.int64)}, "a", 1.0)
    assert ints["a"].dtype == np.float32
    Xt = {k: torch.from_numpy(v) for k, v in X.items()}
    ref_t = Xt["eo"].clone()
    Xtn = add_gaussian_noise(Xt, "eo", 0.04, random_state=0)
    assert torch.equal(Xt["eo"], ref_t) and isinstance(Xtn["eo"], torch.Tensor)
    np.testing.assert_allclose(Xtn["eo"].numpy(), Xn["eo"], atol=1e-6)


def test_corruption_errors():
    X = _toy(10)
    with pytest.raises(ValueError, match="unknown modality"):
        blackout(X, "rgb", 0.5)
    with pytest.raises(ValueError, match="unknown modality"):
        add_gaussian_noise(X, "rgb", 0.1)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be"):
            blackout(X, "eo", p)
    for variance in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="variance"):
            add_gaussian_noise(X, "eo", variance)
    with pytest.raises(ValueError, match="clip"):
        add_gaussian_noise(X, "eo", 0.1, clip=(1.0, 0.0))
    with pytest.raises(TypeError):
        blackout(np.zeros((3, 2)), "eo")


def test_generators_leave_global_random_state_alone():
    np.random.seed(123)  # noqa: NPY002
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    make_colored_digits()
    make_rendered_colored_digits(20, 20)
    make_multimodal_classification(50)
    make_multimodal_segmentation(2)
    blackout(_toy(10), "eo", 0.5)
    add_gaussian_noise(_toy(10), "eo", 0.1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
