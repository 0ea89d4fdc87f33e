"""mmexplain.data.load_npz / save_npz: the .npz format of the command line."""

import os

import numpy as np
import pytest

from mmexplain.data import ModalityDict, load_npz, save_npz


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = {
        "eo": rng.normal(size=(6, 3)),
        "sar": rng.normal(size=(6, 1, 4, 4)).astype(np.float32),
        "count": rng.integers(0, 5, size=(6, 2)),
    }
    return X, np.array(["a", "b", "a", "b", "c", "c"])


def test_round_trip(tmp_path, data):
    X, y = data
    path = tmp_path / "data.npz"
    save_npz(path, X, y)
    X2, y2 = load_npz(path)
    assert isinstance(X2, ModalityDict) and list(X2) == list(X)
    for m in X:
        assert X2[m].dtype == X[m].dtype
        np.testing.assert_array_equal(X2[m], X[m])
    np.testing.assert_array_equal(y2, y)


def test_round_trip_other_target_key_compressed_and_name_kept(tmp_path, data):
    X, y = data
    path = tmp_path / "data.bin"  # no '.npz' appended
    save_npz(str(path), X, np.arange(6), target_key="label", compress=True)
    assert sorted(os.listdir(tmp_path)) == ["data.bin"]
    X2, y2 = load_npz(path, target_key="label")
    assert list(X2) == list(X)
    np.testing.assert_array_equal(y2, np.arange(6))


def test_column_targets_are_flattened(tmp_path, data):
    X, _ = data
    np.savez(tmp_path / "d.npz", **X, y=np.arange(6)[:, None])
    assert load_npz(tmp_path / "d.npz")[1].shape == (6,)


class _Boom:
    """Unpickling this would run code (create a file)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_object_arrays_are_refused_and_never_unpickled(tmp_path, data):
    X, y = data
    marker = tmp_path / "ran"
    evil = np.empty(6, dtype=object)
    evil[0] = _Boom(str(marker))
    np.savez(tmp_path / "evil.npz", **X, y=evil)
    with pytest.raises(ValueError, match="cannot read array 'y' .*allow_pickle"):
        load_npz(tmp_path / "evil.npz")
    assert not marker.exists()
    # save_npz does not write what load_npz would refuse
    with pytest.raises(ValueError, match="y has dtype object"):
        save_npz(tmp_path / "o.npz", X, y.astype(object))
    with pytest.raises(ValueError, match="modality 'eo' has non-numeric dtype object"):
        save_npz(tmp_path / "o.npz", {**X, "eo": X["eo"].astype(object)}, y)


def test_missing_target_key(tmp_path, data):
    X, y = data
    np.savez(tmp_path / "d.npz", **X, y=y)
    with pytest.raises(ValueError, match=r"has no 'label' array .*\['count', 'eo'"):
        load_npz(tmp_path / "d.npz", target_key="label")
    np.savez(tmp_path / "only_y.npz", y=y)
    with pytest.raises(ValueError, match="no modality arrays besides the targets"):
        load_npz(tmp_path / "only_y.npz")


def test_files_that_are_not_an_npz_of_arrays(tmp_path, data):
    X, y = data
    with pytest.raises(FileNotFoundError, match="data file .* does not exist"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("eo,sar\n1,2\n")
    with pytest.raises(ValueError, match="is not an .npz file"):
        load_npz(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", X["eo"])
    with pytest.raises(ValueError, match="holds a single array"):
        load_npz(tmp_path / "single.npy")
    save_npz(tmp_path / "d.npz", X, y)
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:300])
    with pytest.raises(ValueError, match="cannot read"):
        load_npz(tmp_path / "trunc.npz")


def test_row_count_mismatches(tmp_path, data):
    X, y = data
    np.savez(tmp_path / "rows.npz", **{**X, "sar": X["sar"][:4]}, y=y)
    with pytest.raises(ValueError, match="modality 'sar' has 4 samples"):
        load_npz(tmp_path / "rows.npz")
    np.savez(tmp_path / "yrows.npz", **X, y=y[:5])
    with pytest.raises(ValueError, match="targets 'y' have 5 rows .* have 6"):
        load_npz(tmp_path / "yrows.npz")
    with pytest.raises(ValueError, match="y has 5 rows but X has 6 samples"):
        save_npz(tmp_path / "s.npz", X, y[:5])


def test_unusable_modalities_and_targets(tmp_path, data):
    X, y = data
    cases = {
        "text": ({**X, "eo": np.array([["a"]] * 6)}, y, "modality 'eo' .*dtype"),
        "flat": ({**X, "eo": X["eo"][:, 0]}, y, r"modality 'eo' has shape \(6,\)"),
        "2d y": (X, np.zeros((6, 2)), r"targets 'y' .*shape \(6, 2\)"),
    }
    nan = X["eo"].copy()
    nan[4, 1] = np.inf
    cases["nan"] = ({**X, "eo": nan}, y, "modality 'eo' .*infinite .*in row 4")
    for name, (Xc, yc, match) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **Xc, y=yc)
        with pytest.raises(ValueError, match=match):
            load_npz(tmp_path / f"{name}.npz")


def test_save_refuses_a_target_key_naming_a_modality(tmp_path, data):
    X, y = data
    with pytest.raises(ValueError, match="target_key 'eo' is the name of a modality"):
        save_npz(tmp_path / "d.npz", X, y, target_key="eo")
    assert not (tmp_path / "d.npz").exists()


@pytest.mark.parametrize("compress", [False, True])
def test_names_of_numpy_savez_arguments_are_stored(tmp_path, data, compress):
    """Modalities (or targets) named like np.savez's own arguments are kept."""
    X, y = data
    path = tmp_path / "data.npz"
    X = {"allow_pickle": X["eo"], "file": X["sar"]}
    save_npz(path, X, y, target_key="allow_pickle_y", compress=compress)
    X2, y2 = load_npz(path, target_key="allow_pickle_y")
    assert list(X2) == list(X)
    for m in X:
        np.testing.assert_array_equal(X2[m], X[m])
    np.testing.assert_array_equal(y2, y)
    save_npz(path, {"eo": X["allow_pickle"]}, y, target_key="allow_pickle")
    np.testing.assert_array_equal(load_npz(path, target_key="allow_pickle")[1], y)
