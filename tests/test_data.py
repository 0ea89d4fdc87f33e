import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold, train_test_split

from mmexplain import ModalityDict
from mmexplain.data import check_X, check_y, permute_rows, take_rows, to_tensor_dict


def make(n=6):
    return ModalityDict(
        eo=np.arange(n * 3, dtype=float).reshape(n, 3),
        sar=torch.arange(n * 4.0).reshape(n, 1, 2, 2),
    )


def test_modality_dict_is_array_like():
    X = make()
    assert len(X) == 6 and X.shape == (6,) and X.modalities == ("eo", "sar")
    sub = X[np.array([4, 1])]
    assert isinstance(sub, ModalityDict) and len(sub) == 2
    np.testing.assert_array_equal(sub["eo"], X["eo"][[4, 1]])
    assert torch.equal(sub["sar"], X["sar"][[4, 1]])
    mask = np.array([True, False] * 3)
    assert len(X[mask]) == 3 and len(X[1:4]) == 3 and len(X[torch.tensor([0, 5])]) == 2
    one = X[2]
    assert type(one) is dict and one["eo"].shape == (3,)
    assert X["eo"] is X["eo"]  # string keys return the stored array itself


def test_modality_dict_rejects_bad_values():
    with pytest.raises(
        ValueError, match="modality 'sar' has 4 samples but modality 'eo' has 5"
    ):
        ModalityDict(eo=np.zeros((5, 2)), sar=np.zeros((4, 2)))
    with pytest.raises(TypeError, match="modality names must be strings"):
        ModalityDict({1: np.zeros((2, 2))})
    with pytest.raises(TypeError, match="modality 'eo' must be a NumPy array"):
        ModalityDict(eo=3.0)


def test_modality_dict_pickle_copy_eq():
    X = make()
    Y = pickle.loads(pickle.dumps(X))
    assert isinstance(Y, ModalityDict) and Y == X
    assert X.copy() == X and X.copy() is not X
    assert X != make(5)


def test_sklearn_splitters_and_stratification():
    X = make(20)
    y = np.array([0, 1] * 10)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    assert isinstance(Xtr, ModalityDict) and len(Xtr) == 15 and len(Xte) == 5
    assert abs(ytr.mean() - 0.5) < 0.1
    # rows stay aligned across modalities
    row_ids = Xtr["eo"][:, 0] / 3
    np.testing.assert_array_equal(Xtr["sar"][:, 0, 0, 0].numpy() / 4, row_ids)
    for tr, te in KFold(4).split(X):
        assert len(X[tr]) + len(X[te]) == 20


def test_check_X_errors_name_the_modality():
    good = {"eo": np.zeros((4, 3)), "sar": np.zeros((4, 2))}
    with pytest.raises(TypeError, match="X must be a mapping"):
        check_X(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="no modalities"):
        check_X({})
    with pytest.raises(ValueError, match="missing modality 'sar'"):
        check_X({"eo": good["eo"]}, modalities=["eo", "sar"])
    with pytest.raises(ValueError, match="unknown modality 'nir'"):
        check_X({**good, "nir": np.zeros((4, 1))}, modalities=["eo", "sar"])
    with pytest.raises(
        ValueError, match="modality 'sar' has 3 samples but modality 'eo' has 4"
    ):
        check_X({"eo": good["eo"], "sar": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="modality 'eo' is empty"):
        check_X({"eo": np.zeros((0, 3))})
    with pytest.raises(ValueError, match="modality 'eo' is empty"):
        check_X({"eo": np.zeros((4, 0))})
    bad = good["eo"].copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="modality 'eo' contains NaN"):
        check_X({"eo": bad})
    with pytest.raises(ValueError, match="modality 'eo' contains NaN or infinite"):
        check_X({"eo": torch.tensor([[np.inf]])})
    with pytest.raises(TypeError, match="modality 'eo' has non-numeric dtype"):
        check_X({"eo": np.array([["a"], ["b"]])})
    with pytest.raises(TypeError, match="modality 'eo' has non-numeric dtype object"):
        check_X({"eo": np.array([[1], [None]], dtype=object)})
    with pytest.raises(ValueError, match="modality 'eo' has shape \\(4,\\)"):
        check_X({"eo": np.zeros(4)})
    with pytest.raises(
        ValueError, match="modality 'sar' has 2 dimensions .* expects 4"
    ):
        check_X(good, ndims={"sar": 4})
    out = check_X(good, modalities=["sar", "eo"])
    assert out.modalities == ("sar", "eo") and out["eo"] is good["eo"]


def test_check_y():
    with pytest.raises(ValueError, match="y has 3 rows but X has 4 samples"):
        check_y([0, 1, 0], 4)
    with pytest.raises(ValueError, match="y contains NaN"):
        check_y([0.0, np.nan], 2)
    with pytest.raises(ValueError, match="required"):
        check_y(None, 2)
    assert check_y(torch.tensor([1, 0]), 2).tolist() == [1, 0]


def test_row_helpers_never_mutate():
    X = make()
    before = {
        k: v.clone() if isinstance(v, torch.Tensor) else v.copy() for k, v in X.items()
    }
    perm = np.array([5, 4, 3, 2, 1, 0])
    P = permute_rows(X, "eo", perm)
    np.testing.assert_array_equal(P["eo"], X["eo"][perm])
    assert P["sar"] is X["sar"]
    T = take_rows(X, [0, 2])
    assert len(T) == 2
    t = to_tensor_dict(X)
    assert t["eo"].dtype == torch.float32 and t["sar"].dtype == torch.float32
    for k in X:
        np.testing.assert_array_equal(np.asarray(X[k]), np.asarray(before[k]))
    with pytest.raises(ValueError, match="unknown modality 'x'"):
        permute_rows(X, "x", perm)
