"""Safe model files of scikit-learn's TransformedTargetRegressor (issue 22).

A ``TransformedTargetRegressor`` around a ``MultimodalRegressor`` (or a
``Pipeline`` ending in one), with an allowed scaler or no transformer, is
saved and loaded at the root of a model file: it predicts and scores
exactly as the original. Its functions (``func``, ``inverse_func``) cannot be
stored and are refused by name, when saving and when loading an edited
file, and so is an edited ``_training_dim`` (private in scikit-learn; what
``predict`` reads to return ``(N,)`` or ``(N, n_targets)``).
"""

from __future__ import annotations

import copy
import json
import zipfile

import numpy as np
import pytest
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, Normalizer, StandardScaler

from mmexplain import ModalityTransformer, MultimodalRegressor
from mmexplain.datasets import make_multimodal_regression
from mmexplain.persistence import load_model, save_model
from mmexplain.persistence._format import DIGEST_KEY, HEADER, header_digest
from mmexplain.persistence.allowlist import allowed, kind_of

TINY = {"max_epochs": 2, "random_state": 0, "module__embedding_dim": 4}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    """Tiny regression data: one target ``(N,)`` and two targets ``(N, 2)``."""
    return {
        n: make_multimodal_regression(
            n_samples=40, n_targets=n, n_features=4, random_state=0
        )
        for n in (1, 2)
    }


def _ttr(regressor, transformer):
    # MinMaxScaler's float32 round trip is not allclose: check_inverse=False
    # (stored and restored like any parameter)
    check = not isinstance(transformer, MinMaxScaler)
    return TransformedTargetRegressor(
        regressor, transformer=transformer, check_inverse=check
    )


def _header(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(HEADER))


def _edit(path, out, change):
    """Copy ``path`` to ``out`` with its header changed, checksum recomputed."""
    header = _header(path)
    change(header)
    header[DIGEST_KEY] = header_digest(header)
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items[HEADER] = json.dumps(header).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, blob in items.items():
            z.writestr(name, blob)
    return out


def _root(header):
    return header["root"]["__object__"]


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    """A fitted TTR with a StandardScaler on one target, and its file."""
    X, y = data[1]
    ttr = _ttr(MultimodalRegressor(**TINY), StandardScaler()).fit(X, y)
    return ttr, save_model(ttr, tmp_path_factory.mktemp("ttr") / "ttr.mmx")


def _same_predictions(loaded, ttr, X, y):
    pred = loaded.predict(X)
    np.testing.assert_array_equal(pred, ttr.predict(X))
    assert pred.shape == y.shape
    assert loaded.score(X, y) == ttr.score(X, y)


# ----------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------
def test_the_allow_list_names_it_as_a_target_regressor():
    name = "sklearn.compose.TransformedTargetRegressor"
    assert allowed()[name] == (("sklearn.compose",), "fitted")
    assert kind_of(name) == "target_regressor"


@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize(
    "transformer",
    [None, StandardScaler(), MinMaxScaler()],
    ids=["identity", "standard", "minmax"],
)
def test_round_trip_predicts_and_scores_identically(
    transformer, n_targets, data, tmp_path
):
    X, y = data[n_targets]
    ttr = _ttr(MultimodalRegressor(**TINY), transformer).fit(X, y)
    loaded = load_model(save_model(ttr, tmp_path / "ttr.mmx"))
    assert type(loaded) is TransformedTargetRegressor
    _same_predictions(loaded, ttr, X, y)
    assert loaded._training_dim == ttr._training_dim == y.ndim
    assert loaded.check_inverse is ttr.check_inverse
    assert loaded.func is None and loaded.inverse_func is None
    assert type(loaded.transformer_) is type(ttr.transformer_)
    if transformer is None:  # the identity is rebuilt as scikit-learn fits it
        assert vars(loaded.transformer_) == vars(ttr.transformer_)
    else:
        for key in ("n_features_in_", "scale_"):
            np.testing.assert_array_equal(
                getattr(loaded.transformer_, key), getattr(ttr.transformer_, key)
            )
    assert loaded.regressor_.n_outputs_ == n_targets
    assert loaded.n_features_in_ == ttr.n_features_in_


@pytest.mark.parametrize("n_targets, transformer", [(1, StandardScaler()), (2, None)])
def test_round_trip_of_a_pipeline_regressor(n_targets, transformer, data, tmp_path):
    X, y = data[n_targets]
    pipe = make_pipeline(
        ModalityTransformer({m: StandardScaler() for m in X}),
        MultimodalRegressor(**TINY),
    )
    ttr = _ttr(pipe, transformer).fit(X, y)
    loaded = load_model(save_model(ttr, tmp_path / "ttr.mmx"))
    _same_predictions(loaded, ttr, X, y)
    assert [n for n, _ in loaded.regressor_.steps] == [
        n for n, _ in ttr.regressor_.steps
    ]
    assert loaded.regressor_[0].transformers_.keys() == X.keys()


def test_unfitted_round_trip(tmp_path):
    ttr = TransformedTargetRegressor(
        MultimodalRegressor(max_epochs=3), transformer=StandardScaler()
    )
    loaded = load_model(save_model(ttr, tmp_path / "ttr.mmx"))
    assert not hasattr(loaded, "regressor_")
    assert loaded.regressor.max_epochs == 3
    assert type(loaded.transformer) is StandardScaler


# ----------------------------------------------------------------------------
# refused when saving
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        ({"func": np.log, "inverse_func": np.exp}, r"\.func = .*must be None"),
        ({"inverse_func": np.exp}, r"\.inverse_func = .*must be None"),
        ({"transformer": Normalizer()}, r"\.transformer = .*inverse_transform"),
        ({"regressor": None}, r"\.regressor = None .*MultimodalRegressor"),
        ({"check_inverse": "yes"}, r"\.check_inverse = .*True or False"),
    ],
)
def test_save_refuses_functions_and_other_values_by_name(params, match, tmp_path):
    ttr = TransformedTargetRegressor(**{"regressor": MultimodalRegressor(), **params})
    with pytest.raises(
        ValueError, match=f"cannot save TransformedTargetRegressor{match}"
    ):
        save_model(ttr, tmp_path / "ttr.mmx")
    assert not (tmp_path / "ttr.mmx").exists()


def test_save_refuses_a_fitted_state_that_loading_would_refuse(saved, tmp_path):
    ttr = copy.deepcopy(saved[0]).set_params(transformer=None)
    with pytest.raises(ValueError, match="transformer_ .*must be the identity"):
        save_model(ttr, tmp_path / "ttr.mmx")
    ttr = copy.deepcopy(saved[0])
    ttr._training_dim = 2
    with pytest.raises(ValueError, match="cannot save .*_training_dim: 2 is not"):
        save_model(ttr, tmp_path / "ttr.mmx")
    assert not (tmp_path / "ttr.mmx").exists()


def test_only_at_the_root(tmp_path):
    pipe = make_pipeline(
        ModalityTransformer({"a": StandardScaler()}),
        TransformedTargetRegressor(MultimodalRegressor()),
    )
    with pytest.raises(ValueError, match="is not an estimator a model file may hold"):
        save_model(pipe, tmp_path / "p.mmx")


# ----------------------------------------------------------------------------
# refused when loading an edited file
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["func", "inverse_func"])
@pytest.mark.parametrize(
    "value, match",
    [
        ("numpy.log", "is refused: it must be None: a function cannot be stored"),
        ({"__class__": "mmexplain.MMTMNet"}, "only data"),
    ],
)
def test_load_refuses_functions(key, value, match, saved, tmp_path):
    def change(header):
        _root(header)["params"][key] = value

    path = _edit(saved[1], tmp_path / "edited.mmx", change)
    with pytest.raises(ValueError, match=match) as info:
        load_model(path)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "value, match",
    [
        (2, "is not the target dimension the fitted regressor was trained on"),
        (3, "must be 1 .* or 2"),
        (True, "must be 1 .* or 2"),
        ("1", "must be 1 .* or 2"),
        (None, "must be 1 .* or 2"),
    ],
)
def test_load_refuses_a_tampered_training_dim(value, match, saved, tmp_path):
    def change(header):
        _root(header)["fitted"]["_training_dim"] = value

    path = _edit(saved[1], tmp_path / "edited.mmx", change)
    with pytest.raises(ValueError, match=f"_training_dim.*{match}"):
        load_model(path)


def _drop(key):
    def change(header):
        del _root(header)["fitted"][key]

    return change


def _other_transformer(header):
    _root(header)["params"]["transformer"]["__object__"]["params"]["with_mean"] = False


def _classifier(header):
    regressor = _root(header)["params"]["regressor"]["__object__"]
    regressor["class"] = "mmexplain.MultimodalClassifier"
    regressor["params"]["criterion"] = {"__class__": "torch.nn.CrossEntropyLoss"}


@pytest.mark.parametrize(
    "change, match",
    [
        (_drop("_training_dim"), "has exactly"),
        (_drop("transformer_"), "has exactly"),
        (_other_transformer, "transformer_: must be the fitted StandardScaler"),
        (_classifier, "regressor = .*must be a MultimodalRegressor"),
    ],
    ids=["no_training_dim", "no_transformer_", "other_transformer", "classifier"],
)
def test_load_refuses_an_inconsistent_fitted_state(change, match, saved, tmp_path):
    path = _edit(saved[1], tmp_path / "edited.mmx", change)
    with pytest.raises(ValueError, match=match):
        load_model(path)
