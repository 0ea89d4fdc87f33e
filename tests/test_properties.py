"""Property-based tests (hypothesis) over the public entry points.

Generated inputs: dtypes (float16/32/64, int, uint, bool, object, complex),
containers (NumPy, torch, pandas, lists), shapes (0 and 1 rows, 1-D, empty
feature axes), NaN / inf / beyond-float32 values, target kinds, renamed and
reordered modalities, torch Datasets with one bad item (value, dtype, missing or
extra modality, shape) at any index, and segmentation masks (valid or not). Every case must give the answer of an independent
reference (the float32-cast inputs, NumPy indexing, scikit-learn on the raw
arrays) or a ``ValueError`` / ``TypeError`` whose message names the modality
at fault, and must leave the inputs untouched.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import StandardScaler

from mmexplain import ModalityDict, ModalityTransformer, MultimodalClassifier
from mmexplain.data import check_X
from mmexplain.datasets import add_gaussian_noise, blackout
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    # hypothesis caches (constants, unicode data) outside the working tree
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "mmexplain-hypothesis"))

PROPS = settings(
    max_examples=35,
    deadline=None,
    derandomize=True,  # the same examples on every run: no flaky strict xfails
    database=None,  # no .hypothesis/ folder in the working tree
    # no Phase.explain: it writes patch files
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
FEW = settings(PROPS, max_examples=25)

TINY = {"module__embedding_dim": 4, "module__hidden": (8,)}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------
# generated arrays
# ----------------------------------------------------------------------------
NUMERIC = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]
REFUSED = ["object", "complex64", "complex128"]
SPECIALS = ["none", "nan", "inf", "-inf", "huge", "big_ok"]

_TORCH_DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}


def make_array(dtype, shape, special="none", seed=0):
    """A NumPy array of ``dtype`` and ``shape`` with one special value planted."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=shape) * 3
    if dtype == "bool":
        return base > 0
    if dtype == "object":
        return base.astype(object)
    if np.dtype(dtype).kind in "iu":
        return (
            np.abs(base).astype(dtype) if dtype.startswith("u") else base.astype(dtype)
        )
    arr = base.astype(dtype)
    if special != "none" and arr.size:
        value = {
            "nan": np.nan,
            "inf": np.inf,
            "-inf": -np.inf,
            "huge": 1e39,  # beyond float32 (and float16/32 overflow to inf themselves)
            "big_ok": 3e38,  # representable in float32
        }[special]
        with np.errstate(over="ignore"):
            arr.flat[rng.integers(arr.size)] = np.asarray(value).astype(dtype)
    return arr


def as_container(arr, container):
    if container == "torch":
        if arr.dtype == object:
            return arr  # torch has no object dtype
        return torch.from_numpy(np.array(arr))
    if container == "pandas" and arr.ndim == 2:
        import pandas as pd

        return pd.DataFrame(arr, index=np.arange(len(arr))[::-1] + 100)
    if container == "list":
        return arr.tolist()
    return arr


def to_numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if hasattr(v, "to_numpy"):
        return v.to_numpy()
    return np.asarray(v)


def snapshot(X):
    return {
        m: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v))
        for m, v in X.items()
    }


def assert_untouched(X, before):
    assert list(X) == list(before)
    for m in X:
        a, b = to_numpy(X[m]), to_numpy(before[m])
        assert a.dtype == b.dtype and a.shape == b.shape, m
        if a.dtype == object:
            assert all(
                (x == y) or (x != x and y != y) for x, y in zip(a.ravel(), b.ravel())
            )
        else:
            np.testing.assert_array_equal(a, b, err_msg=m)
        if isinstance(X[m], torch.Tensor):
            assert X[m].grad is None


def _problem(arr, n_ref):
    """What the reference says is wrong with one modality: None, 'type' or 'value'."""
    a = np.asarray(arr)
    if a.ndim < 2 or a.shape[0] < 1 or 0 in a.shape[1:] or a.shape[0] != n_ref:
        return "value"
    if a.dtype.kind in "OcUS":
        return "type"
    if a.dtype.kind == "f":
        with np.errstate(over="ignore"):
            if not np.isfinite(a.astype(np.float32)).all():
                return "value"
    return None


names_st = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6),
    min_size=1,
    max_size=4,
    unique=True,
)


PROBLEMS = [
    None,
    "no_rows",
    "object",
    "complex64",
    "complex128",
    "nan",
    "inf",
    "-inf",
    "huge",
    "1d",
    "empty_features",
    "row_mismatch",
]


@st.composite
def modality_specs(draw, problem=None):
    """Valid modalities of any numeric dtype / container / layout, plus at most one
    problem planted in one of them (so that the expected error is unambiguous)."""
    names = draw(names_st)
    n = draw(st.sampled_from([1, 2, 5]))
    layouts = {"vec": (3,), "seq": (2, 3), "img": (2, 3, 3)}
    specs = {}
    for name in names:
        specs[name] = [
            draw(st.sampled_from(NUMERIC)),
            (n, *layouts[draw(st.sampled_from(list(layouts)))]),
            draw(st.sampled_from(["none", "big_ok"])),
            draw(st.sampled_from(["numpy", "torch", "pandas", "list"])),
            draw(st.integers(0, 2**16)),
        ]
    victim = draw(st.sampled_from(names))
    spec = specs[victim]
    if problem == "no_rows":
        n = 0
        for s in specs.values():
            s[1] = (0, *s[1][1:])
    elif problem in ("object", "complex64", "complex128"):
        spec[0] = problem
    elif problem in ("nan", "inf", "-inf"):
        spec[0], spec[2] = (
            draw(st.sampled_from(["float16", "float32", "float64"])),
            problem,
        )
    elif problem == "huge":
        spec[0], spec[2] = "float64", "huge"
        if spec[3] == "list":
            spec[3] = "numpy"
    elif problem == "1d":
        spec[1] = (n,)
    elif problem == "empty_features":
        spec[1] = (n, 0)
    elif problem == "row_mismatch":
        spec[1] = (n + 1, *spec[1][1:])
    return n, {m: tuple(s) for m, s in specs.items()}


def build(specs):
    return {
        name: as_container(make_array(dtype, shape, special, seed), container)
        for name, (dtype, shape, special, container, seed) in specs.items()
    }


# ----------------------------------------------------------------------------
# check_X
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("problem", PROBLEMS, ids=str)
@settings(PROPS, max_examples=15)
@given(data=st.data())
def test_check_X_accepts_exactly_what_the_reference_accepts(problem, data):
    n, specs = data.draw(modality_specs(problem))
    X = build(specs)
    before = snapshot(X)
    n_ref = np.asarray(to_numpy(next(iter(X.values())))).shape[0] if X else 0
    problems = {m: _problem(to_numpy(v), n_ref) for m, v in X.items()}
    bad = {m for m, p in problems.items() if p is not None}
    if not bad:
        out = check_X(X)
        assert isinstance(out, ModalityDict) and list(out) == list(X)
        assert len(out) == n_ref
        for m in X:
            np.testing.assert_array_equal(to_numpy(out[m]), to_numpy(X[m]))
            if isinstance(X[m], np.ndarray | torch.Tensor):
                assert out[m] is X[m]  # never copied
    else:
        with pytest.raises((ValueError, TypeError)) as info:
            check_X(X)
        msg = str(info.value)
        assert any(repr(m) in msg for m in bad), (msg, problems)
        if all(problems[m] == "type" for m in bad):
            assert info.type is TypeError
    assert_untouched(X, before)


@PROPS
@given(names_st, st.data())
def test_check_X_reordered_renamed_modalities(names, data):
    X = {m: np.full((3, 2), j, dtype=np.float32) for j, m in enumerate(names)}
    order = data.draw(st.permutations(names))
    out = check_X(X, modalities=order)
    assert list(out) == list(order)
    assert all(out[m] is X[m] for m in names)
    renamed = data.draw(st.text(alphabet="ABC", min_size=1, max_size=3))
    victim = data.draw(st.sampled_from(names))
    X2 = {(renamed if m == victim else m): v for m, v in X.items()}
    with pytest.raises(ValueError, match=f"'{victim}'|'{renamed}'"):
        check_X(X2, modalities=names)


# ----------------------------------------------------------------------------
# ModalityDict
# ----------------------------------------------------------------------------
@PROPS
@given(modality_specs(), st.data())
def test_modalitydict_row_indexing_matches_numpy(spec, data):
    n, specs = spec
    X = build(specs)
    before = snapshot(X)
    D = ModalityDict(X)
    assert len(D) == n and D.shape == (n,) and D.modalities == tuple(X)
    kind = data.draw(st.sampled_from(["ints", "mask", "slice", "int", "list"]))
    if kind == "ints":
        key = np.asarray(
            data.draw(st.lists(st.integers(-n, n - 1), max_size=6)), dtype=np.intp
        )
    elif kind == "list":
        key = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    elif kind == "mask":
        key = np.asarray(
            data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool
        )
    elif kind == "slice":
        key = slice(data.draw(st.integers(-n, n)), data.draw(st.integers(-n, n)))
    else:
        key = data.draw(st.integers(-n, n - 1))
    rows = D[key]
    for m in X:
        ref = to_numpy(X[m])[key if not isinstance(key, list) else np.asarray(key)]
        np.testing.assert_array_equal(to_numpy(rows[m]), ref, err_msg=m)
    if kind != "int":
        assert isinstance(rows, ModalityDict) and len(rows) == len(np.arange(n)[key])
    assert_untouched(X, before)


@PROPS
@given(
    names_st,
    st.integers(1, 4),
    st.integers(0, 6),
    st.sampled_from(["numpy", "torch", "pandas"]),
)
def test_modalitydict_row_mismatch_names_the_modality(names, n, m_rows, container):
    assume(m_rows != n)
    X = ModalityDict({m: np.zeros((n, 2)) for m in names})
    new = as_container(np.zeros((m_rows, 2)), container)
    for op in ("setitem", "update", "ior", "setdefault"):
        with pytest.raises(ValueError, match="'zz'"):
            if op == "setitem":
                X["zz"] = new
            elif op == "update":
                X.update(zz=new)
            elif op == "ior":
                X |= {"zz": new}
            else:
                X.setdefault("zz", new)
        assert list(X) == list(names)


# ----------------------------------------------------------------------------
# MultimodalClassifier: fit / predict / score
# ----------------------------------------------------------------------------
def _base(n=16, seed=0):
    rng = np.random.default_rng(seed)
    X = {"a": rng.normal(size=(n, 3)) * 2, "b": rng.normal(size=(n, 2)) * 2}
    y = (X["a"][:, 0] > 0).astype(int)
    y[:2] = [0, 1]
    return X, y


def _fit(X, y, **kw):
    return MultimodalClassifier(
        max_epochs=1, random_state=0, batch_size=8, **TINY, **kw
    ).fit(X, y)


def _same_weights(a, b):
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


Y_KINDS = {
    "int": lambda y: y,
    "int32": lambda y: y.astype(np.int32),
    "shifted": lambda y: y * 4 + 3,
    "str": lambda y: np.where(y == 1, "dog", "cat"),
    "float": lambda y: y.astype(np.float64),
    "bool": lambda y: y.astype(bool),
    "list": lambda y: y.tolist(),
    "torch": lambda y: torch.from_numpy(y),
    "pandas": lambda y: __import__("pandas").Series(y, index=np.arange(len(y)) + 50),
}


@pytest.mark.parametrize("y_kind", list(Y_KINDS))
@pytest.mark.parametrize("dtype_a", ["float16", "float64", "int8", "uint8", "bool"])
@settings(PROPS, max_examples=2)
@given(
    dtype_b=st.sampled_from(NUMERIC),
    container=st.sampled_from(["numpy", "torch", "pandas"]),
)
def test_fit_predict_score_equal_the_float32_reference(
    y_kind, dtype_a, dtype_b, container
):
    X0, y = _base()
    Xd = {
        "a": make_array(dtype_a, (16, 3), seed=1),
        "b": make_array(dtype_b, (16, 2), seed=2),
    }
    X = {m: as_container(v, container) for m, v in Xd.items()}
    X32 = {m: np.asarray(v).astype(np.float32) for m, v in Xd.items()}
    yk = Y_KINDS[y_kind](y)
    before, y_before = snapshot(X), copy.deepcopy(yk)
    got = _fit(X, yk)
    ref = _fit(X32, y)  # int labels 0/1, the sorted classes' indices
    assert _same_weights(got, ref)
    np.testing.assert_array_equal(
        got.predict(X), np.asarray(got.classes_)[ref.predict(X32)]
    )
    np.testing.assert_array_equal(got.predict_proba(X), ref.predict_proba(X32))
    assert got.score(X, yk) == ref.score(X32, y)
    assert len(got.classes_) == 2
    # the modalities in another order: the same model, the same predictions
    Xr = {m: X[m] for m in reversed(list(X))}
    np.testing.assert_array_equal(got.predict_proba(Xr), ref.predict_proba(X32))
    assert_untouched(X, before)
    if isinstance(yk, np.ndarray):
        np.testing.assert_array_equal(yk, y_before)


@pytest.mark.parametrize(
    "problem",
    ["nan", "inf", "-inf", "huge", "object", "complex", "1d", "rows", "empty"],
)
@pytest.mark.parametrize(
    "where", ["fit", "predict", "predict_proba", "score", "partial_fit"]
)
@settings(PROPS, max_examples=4)
@given(
    victim=st.sampled_from(["a", "b"]), container=st.sampled_from(["numpy", "torch"])
)
def test_fit_predict_refuse_bad_modalities_by_name(
    fitted_small, problem, where, victim, container
):
    X0, y = _base()
    X = {m: v.copy() for m, v in X0.items()}
    v = X[victim]
    if problem in ("nan", "inf", "-inf", "huge"):
        v = make_array("float64", v.shape, problem, seed=3)
    elif problem == "object":
        v = v.astype(object)
        container = "numpy"
    elif problem == "complex":
        v = v.astype(np.complex128)
    elif problem == "1d":
        v = v[:, 0]
    elif problem == "rows":
        v = v[:-1]
    else:
        v = v[:, :0]
    X[victim] = as_container(v, container)
    before = snapshot(X)
    with pytest.raises((ValueError, TypeError), match=f"'{victim}'"):
        if where == "fit":
            _fit(X, y)
        elif where == "partial_fit":
            copy.deepcopy(fitted_small).partial_fit(X, y)
        elif where == "score":
            fitted_small.score(X, y)
        else:
            getattr(fitted_small, where)(X)
    assert_untouched(X, before)


@pytest.fixture(scope="module")
def fitted_small():
    X, y = _base()
    return _fit({m: v.astype(np.float32) for m, v in X.items()}, y)


@pytest.mark.parametrize("kind", ["renamed", "missing", "extra"])
@pytest.mark.parametrize("where", ["predict", "score", "partial_fit"])
def test_predict_renamed_modalities_are_named(fitted_small, kind, where):
    X0, y = _base()
    X = {m: v.astype(np.float32) for m, v in X0.items()}
    if kind == "renamed":
        X = {"a": X["a"], "B": X["b"]}
        pattern = "'b'|'B'"
    elif kind == "missing":
        X = {"a": X["a"]}
        pattern = "'b'"
    else:
        X = {**X, "c": X["b"]}
        pattern = "'c'"
    with pytest.raises(ValueError, match=pattern):
        if where == "predict":
            fitted_small.predict(X)
        elif where == "score":
            fitted_small.score(X, y)
        else:
            copy.deepcopy(fitted_small).partial_fit(X, y)


@FEW
@given(st.lists(st.integers(0, 15), min_size=1, max_size=5))
def test_predict_rows_do_not_depend_on_the_batch(fitted_small, rows):
    X0, _ = _base()
    X = {m: v.astype(np.float32) for m, v in X0.items()}
    full = fitted_small.predict_proba(X)
    idx = np.asarray(rows)
    part = fitted_small.predict_proba({m: v[idx] for m, v in X.items()})
    np.testing.assert_allclose(part, full[idx], rtol=1e-6, atol=1e-7)


def test_fit_zero_and_one_row_are_refused():
    X0, y = _base()
    with pytest.raises(ValueError, match="'a'"):
        _fit({m: v[:0] for m, v in X0.items()}, y[:0])
    with pytest.raises(ValueError, match="single class|2"):
        _fit({m: v[:1] for m, v in X0.items()}, y[:1])


# ----------------------------------------------------------------------------
# explainers on one small fitted model
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explained():
    rng = np.random.default_rng(0)
    n = 24
    X = {
        "a": rng.normal(size=(n, 3)).astype(np.float32),
        "b": rng.normal(size=(n, 2)).astype(np.float32),
    }
    y = ((X["a"][:, 0] + X["b"][:, 0]) > 0).astype(int)
    clf = MultimodalClassifier(
        max_epochs=20, lr=0.03, random_state=0, batch_size=8, **TINY
    ).fit(X, y)
    assert clf.score(X, y) > 0.8
    return clf, X, y


def _explainer(name, seed):
    return {
        "permutation": lambda: PermutationModalityImportance(
            n_repeats=2, random_state=seed
        ),
        "permutation-accuracy": lambda: PermutationModalityImportance(
            n_repeats=2, random_state=seed, scoring="accuracy"
        ),
        "permutation-full": lambda: PermutationModalityImportance(
            n_repeats=2, random_state=seed, fast=False
        ),
        "conditional": lambda: ConditionalUtilization(),
        "conditional-input": lambda: ConditionalUtilization(ablation="input_mean"),
        "shapley": lambda: ModalityShapley(),
        "shapley-mc": lambda: ModalityShapley(n_samples=6, random_state=seed),
        "shapley-input": lambda: ModalityShapley(
            baseline="mean_input", value="neg_loss"
        ),
        "attribution": lambda: GradientModalityAttribution(output="true"),
        "attribution-input": lambda: GradientModalityAttribution(level="input"),
    }[name]()


EXPLAINER_NAMES = [
    "permutation",
    "permutation-accuracy",
    "permutation-full",
    "conditional",
    "conditional-input",
    "shapley",
    "shapley-mc",
    "shapley-input",
    "attribution",
    "attribution-input",
]


def by_modality(expl):
    """Numeric fields of an explanation keyed by modality where per modality."""
    out = {}
    M = len(expl.modalities)
    for name, v in vars(expl).items():
        if (
            name in ("params", "modalities", "method")
            or v is None
            or isinstance(v, str)
        ):
            continue
        try:
            arr = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            continue
        if arr.ndim >= 1 and arr.shape[-1] == M and name != "importances":
            for j, m in enumerate(expl.modalities):
                out[(name, m)] = arr[..., j]
        elif arr.ndim >= 1 and arr.shape[0] == M:
            for j, m in enumerate(expl.modalities):
                out[(name, m)] = arr[j]
        else:
            out[(name, None)] = arr
    return out


def assert_same_by_modality(e1, e2):
    a, b = by_modality(e1), by_modality(e2)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def _explain(expl, model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN shares (e.g. one row)
        return expl.explain(model, X, y)


@pytest.mark.parametrize("name", EXPLAINER_NAMES)
@settings(PROPS, max_examples=10)
@given(
    dtype_a=st.sampled_from(["float16", "float32", "float64", "int32", "bool"]),
    dtype_b=st.sampled_from(["float16", "float32", "float64", "int64", "uint8"]),
    container=st.sampled_from(["numpy", "torch", "pandas"]),
    reverse=st.booleans(),
    seed=st.integers(0, 1000),
    y_kind=st.sampled_from(["int", "float", "list", "torch", "pandas", "int32"]),
)
def test_explanations_equal_the_float32_reference(
    explained, name, dtype_a, dtype_b, container, reverse, seed, y_kind
):
    clf, X0, y = explained
    Xd = {"a": X0["a"].astype(dtype_a), "b": X0["b"].astype(dtype_b)}
    if dtype_a == "bool":
        Xd["a"] = X0["a"] > 0
    X = {m: as_container(v, container) for m, v in Xd.items()}
    if reverse:
        X = {m: X[m] for m in reversed(list(X))}
    X32 = {m: np.asarray(v).astype(np.float32) for m, v in Xd.items()}
    yk = Y_KINDS[y_kind](y)
    before = snapshot(X)
    for model in (clf, clf.module_):
        got = _explain(_explainer(name, seed), model, X, yk)
        ref = _explain(_explainer(name, seed), model, X32, y)
        assert tuple(got.modalities) == ("a", "b")
        assert_same_by_modality(got, ref)
    assert_untouched(X, before)


@pytest.mark.parametrize("name", EXPLAINER_NAMES)
@settings(PROPS, max_examples=3)
@given(seed=st.integers(0, 100))
def test_explain_column_y_equals_flat_y(explained, name, seed):
    clf, X, y = explained
    ref = _explain(_explainer(name, seed), clf, X, y)
    with pytest.warns(DataConversionWarning):
        got = _explain(_explainer(name, seed), clf, X, y[:, None])
    assert_same_by_modality(got, ref)


@FEW
@given(st.lists(st.integers(0, 23), min_size=1, max_size=6, unique=True))
def test_shapley_rows_do_not_depend_on_the_other_rows(explained, rows):
    clf, X, y = explained
    full = ModalityShapley().explain(clf, X, y).values
    idx = np.asarray(rows)
    part = (
        ModalityShapley().explain(clf, {m: v[idx] for m, v in X.items()}, y[idx]).values
    )
    np.testing.assert_allclose(part, full[idx], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "problem",
    [
        "nan",
        "inf",
        "-inf",
        "huge",
        "object",
        "complex",
        "1d",
        "rows",
        "empty",
        "features",
        "renamed",
    ],
)
@settings(PROPS, max_examples=10)
@given(
    name=st.sampled_from(EXPLAINER_NAMES),
    victim=st.sampled_from(["a", "b"]),
    container=st.sampled_from(["numpy", "torch"]),
)
def test_explainers_refuse_bad_modalities_by_name(
    explained, problem, name, victim, container
):
    clf, X0, y = explained
    X = {m: v.copy() for m, v in X0.items()}
    v = X[victim]
    if problem in ("nan", "inf", "-inf", "huge"):
        v = make_array("float64", v.shape, problem, seed=5)
    elif problem == "object":
        v, container = v.astype(object), "numpy"
    elif problem == "complex":
        v = v.astype(np.complex64)
    elif problem == "1d":
        v = v[:, 0]
    elif problem == "rows":
        v = v[:-1]
    elif problem == "empty":
        v = v[:, :0]
    elif problem == "features":
        v = np.concatenate([v, v], axis=1)
    X[victim] = as_container(v, container)
    if problem == "renamed":
        X = {(m.upper() if m == victim else m): w for m, w in X.items()}
    before = snapshot(X)
    pattern = (
        f"'{victim}'" if problem != "renamed" else f"'{victim}'|'{victim.upper()}'"
    )
    for model in (clf, clf.module_) if problem != "features" else (clf,):
        with pytest.raises((ValueError, TypeError), match=pattern):
            _explain(_explainer(name, 0), model, X, y)
    assert_untouched(X, before)


@pytest.mark.parametrize("kind", [0, "one-hot", "2d"])
@pytest.mark.parametrize("name", EXPLAINER_NAMES)
def test_explainers_refuse_bad_targets(explained, name, kind):
    clf, X, y = explained
    if kind == 0:
        with pytest.raises(ValueError):
            _explain(_explainer(name, 0), clf, {m: v[:0] for m, v in X.items()}, y[:0])
        return
    yb = np.eye(2, dtype=int)[y] if kind == "one-hot" else np.stack([y, y, y], axis=1)
    needs_y = not name.startswith("attribution") or name == "attribution"
    if not needs_y:
        return  # output='max' attribution does not use y
    with pytest.raises(ValueError, match="one-hot|one class label|1-D|2-D"):
        _explain(_explainer(name, 0), clf, X, yb)


# ----------------------------------------------------------------------------
# ModalityTransformer
# ----------------------------------------------------------------------------
@st.composite
def transformer_dtypes(draw):
    container = draw(st.sampled_from(["numpy", "torch"]))
    # integer / bool tensors: see test_modality_transformer_integer_tensors
    floats = ["float16", "float32", "float64"]
    a = draw(
        st.sampled_from(floats + (["int32", "uint8"] if container == "numpy" else []))
    )
    img = draw(
        st.sampled_from(
            floats[1:] + (["int64", "bool"] if container == "numpy" else [])
        )
    )
    return a, img, container


@PROPS
@given(
    transformer_dtypes(),
    st.sampled_from(["none", "nan"]),
    st.booleans(),
    st.integers(1, 6),
)
def test_modality_transformer_equals_sklearn_per_modality(dtypes, special, reverse, n):
    dtype_a, dtype_img, container = dtypes
    Xd = {
        "a": make_array(
            dtype_a, (n, 3), special if dtype_a.startswith("float") else "none", seed=n
        ),
        "img": make_array(dtype_img, (n, 2, 2, 2), seed=n + 1),
        "keep": make_array("float32", (n, 2), seed=n + 2),
    }
    X = {m: as_container(v, container) for m, v in Xd.items()}
    if reverse:
        X = {m: X[m] for m in reversed(list(X))}
    before = snapshot(X)
    tr = ModalityTransformer({"a": StandardScaler(), "img": StandardScaler()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN / constant columns
        out = tr.fit_transform(X)
        again = tr.transform(X)
        ref_a = StandardScaler().fit_transform(Xd["a"])
        ref_img = (
            StandardScaler().fit_transform(Xd["img"].reshape(n, -1)).reshape(n, 2, 2, 2)
        )
    assert list(out) == list(X)
    for got in (out, again):
        np.testing.assert_array_equal(to_numpy(got["a"]), ref_a)
        np.testing.assert_array_equal(to_numpy(got["img"]), ref_img)
        assert got["keep"] is X["keep"]
        assert type(got["a"]) is type(X["a"])
    assert_untouched(X, before)


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool"])
def test_modality_transformer_integer_tensors(dtype):
    x = make_array(dtype, (5, 2, 2, 2), seed=1)
    out = ModalityTransformer({"m": StandardScaler()}).fit_transform(
        {"m": torch.from_numpy(x)}
    )
    ref = StandardScaler().fit_transform(x.reshape(5, -1)).reshape(5, 2, 2, 2)
    np.testing.assert_allclose(
        to_numpy(out["m"]).astype(np.float64), ref, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("problem", ["object", "complex64", "renamed", "missing"])
@pytest.mark.parametrize("where", ["fit", "transform"])
def test_modality_transformer_refuses_by_name(problem, where):
    X = {"a": np.random.default_rng(0).normal(size=(4, 3)), "b": np.ones((4, 2))}
    tr = ModalityTransformer({"a": StandardScaler()})
    if where == "transform":
        tr.fit(X)
    Xb = dict(X)
    if problem in ("object", "complex64"):
        Xb["a"] = X["a"].astype(problem)
        pattern = "'a'"
    elif problem == "renamed":
        Xb = {"a": X["a"], "B": X["b"]}
        pattern = "'b'|'B'"
    else:
        Xb = {"a": X["a"]}
        pattern = "'b'"
    if where == "fit" and problem in ("renamed", "missing"):
        return  # fit learns whatever modalities it is given
    with pytest.raises((ValueError, TypeError), match=pattern):
        tr.fit(Xb) if where == "fit" else tr.transform(Xb)


@pytest.mark.parametrize("victim", ["a", "b"])
def test_modality_transformer_wrong_feature_count_names_the_modality(victim):
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=(5, 2))}
    tr = ModalityTransformer({"a": StandardScaler()}).fit(X)  # 'b' passes through
    Xb = dict(X)
    Xb[victim] = rng.normal(size=(5, X[victim].shape[1] + 1))
    with pytest.raises(ValueError, match=f"'{victim}'"):
        tr.transform(Xb)


# ----------------------------------------------------------------------------
# corruptions
# ----------------------------------------------------------------------------
@PROPS
@given(
    st.sampled_from(["float16", "float32", "float64", "int32", "uint8", "bool"]),
    st.integers(0, 8),
    st.floats(0, 1),
    st.integers(0, 2**16),
    st.sampled_from(["none", "nan"]),
)
def test_blackout_reference(dtype, n, p, seed, special):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, 2, 3)) * 3 + 10  # no row is all zeros
    x = (raw > 0) if dtype == "bool" else raw.astype(dtype)
    if special == "nan" and dtype.startswith("float") and n:
        x[0, 0, 0] = np.nan
    other = rng.normal(size=(n, 2))
    results = []
    for container in ("numpy", "torch"):
        X = {"m": as_container(x, container), "o": other}
        before = snapshot(X)
        out = blackout(X, "m", p, random_state=seed)
        assert_untouched(X, before)
        assert out["o"] is other
        got = to_numpy(out["m"])
        assert got.dtype == x.dtype and got.shape == x.shape
        assert type(out["m"]) is type(X["m"])
        zero = (got.reshape(n, 6) == 0).all(axis=1)
        assert zero.sum() == int(round(p * n))
        np.testing.assert_array_equal(got[~zero], x[~zero])
        results.append(zero)
    np.testing.assert_array_equal(results[0], results[1])  # same rows, any container


@PROPS
@given(
    st.sampled_from(["float16", "float32", "float64", "int32", "uint8", "bool"]),
    st.integers(1, 8),
    st.sampled_from([0.0, 0.01, 0.5, 4.0]),
    st.integers(0, 2**16),
    st.sampled_from([None, (0.0, 1.0), (-2.0, 5.0)]),
)
def test_add_gaussian_noise_reference(dtype, n, variance, seed, clip):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, 3))
    x = (raw > 0) if dtype == "bool" else (np.abs(raw) * 5).astype(dtype)
    other = rng.normal(size=(n, 1))
    want = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    outs = []
    for container in ("numpy", "torch"):
        X = {"m": as_container(x, container), "o": other}
        before = snapshot(X)
        out = add_gaussian_noise(X, "m", variance, random_state=seed, clip=clip)
        assert_untouched(X, before)
        assert out["o"] is other
        got = to_numpy(out["m"])
        assert got.dtype == want and got.shape == x.shape
        if clip is not None:
            assert (got >= clip[0]).all() and (got <= clip[1]).all()
        if variance == 0:
            ref = x.astype(want)
            if clip is not None:
                ref = np.clip(ref, *clip)
            np.testing.assert_array_equal(got, ref)
        again = to_numpy(
            add_gaussian_noise(X, "m", variance, random_state=seed, clip=clip)["m"]
        )
        np.testing.assert_array_equal(got, again)  # seeded
        outs.append(got.astype(np.float64))
    tol = 2e-3 if want == np.float16 else 1e-6
    np.testing.assert_allclose(outs[0], outs[1], rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("which", ["blackout", "noise"])
@settings(PROPS, max_examples=5)
@given(name=st.text(alphabet="xyz", min_size=1, max_size=3))
def test_corruptions_unknown_modality_is_named(which, name):
    X = {"a": np.zeros((3, 2))}
    with pytest.raises(ValueError, match=repr(name)):
        blackout(X, name) if which == "blackout" else add_gaussian_noise(X, name, 0.1)


def test_add_gaussian_noise_complex_is_consistent_or_refused():
    x = (np.arange(6.0) + 1j * np.arange(6.0)).reshape(3, 2).astype(np.complex64)
    results = []
    for container in ("numpy", "torch"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a silent cast must not pass
                out = add_gaussian_noise({"m": as_container(x, container)}, "m", 0.0)
        except (TypeError, ValueError) as exc:
            assert "'m'" in str(exc)
            results.append("refused")
            continue
        results.append(to_numpy(out["m"]))
    if any(isinstance(r, str) for r in results):
        assert results == ["refused", "refused"]
    else:
        np.testing.assert_array_equal(results[0], results[1])


# ----------------------------------------------------------------------------
# torch Datasets: every item checked as its batch is collated
# ----------------------------------------------------------------------------
class ItemsDataset(torch.utils.data.Dataset):
    """``({modality: row}, y)`` items of in-memory rows (numpy or torch per item)."""

    def __init__(self, rows, y=None):
        self.rows, self.y = rows, y

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i] if self.y is None else (self.rows[i], self.y[i])


DATASET_DEFECTS = [
    None,
    "nan",
    "inf",
    "huge",
    "complex",
    "string",
    "missing",
    "extra",
    "shape",
]
_VALUE_DEFECTS = {"nan", "inf", "huge", "complex", "string"}


def _plant(item, defect, victim, rng):
    """Item ``item`` with ``defect`` planted in modality ``victim``."""
    item = dict(item)
    v = np.array(to_numpy(item[victim]), dtype=np.float64)
    if defect in ("nan", "inf", "huge"):
        v.flat[rng.integers(v.size)] = {"nan": np.nan, "inf": -np.inf, "huge": 1e39}[
            defect
        ]
        item[victim] = v
    elif defect == "complex":
        item[victim] = v + 1j
    elif defect == "string":
        item[victim] = v.astype(str)
    elif defect == "missing":
        del item[victim]
    elif defect == "extra":
        item[victim + "_x"] = v
    else:  # shape
        item[victim] = np.concatenate([v.ravel(), [0.0]])
    return item


@st.composite
def dataset_cases(draw):
    """Rows of 1-3 modalities (any numeric dtype, numpy or torch per item), at
    most one defect planted in one modality of one item, and a batch size."""
    n = draw(st.integers(1, 9))
    names = draw(
        st.lists(
            st.sampled_from(["a", "bb", "img"]), min_size=1, max_size=3, unique=True
        )
    )
    shapes = {"a": (3,), "bb": (2, 3), "img": (1, 2, 2)}
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    arrays = {
        m: make_array(draw(st.sampled_from(NUMERIC)), (n, *shapes[m]), seed=seed + k)
        for k, m in enumerate(names)
    }
    containers = draw(
        st.lists(st.sampled_from(["numpy", "torch"]), min_size=n, max_size=n)
    )
    rows = [
        {m: as_container(np.array(arrays[m][i]), containers[i]) for m in names}
        for i in range(n)
    ]
    defect = draw(st.sampled_from(DATASET_DEFECTS))
    victim = draw(st.sampled_from(names))
    at = draw(st.integers(0, n - 1))
    if defect is not None:
        rows[at] = _plant(rows[at], defect, victim, rng)
    batch_size = draw(st.integers(1, n + 2))
    return arrays, rows, defect, victim, at, batch_size


def _expect_refusal(defect, victim, at):
    """The error and the message a defect must give (the item unless it is item 0)."""
    error = TypeError if defect in ("complex", "string") else ValueError
    names = (
        f"'{victim}_x'|'{victim}'"  # an extra modality names itself
        if defect == "extra"
        else f"'{victim}'"
    )
    named_item = defect in _VALUE_DEFECTS or at > 0
    return error, names, (f"item {at} of the Dataset" if named_item else None)


@PROPS
@given(dataset_cases())
def test_dataset_batches_equal_the_float32_rows_or_name_the_defect(case):
    from mmexplain.data.batching import TrainingDataset, dataset_loader
    from mmexplain.data.sources import DatasetSource

    arrays, rows, defect, victim, at, batch_size = case
    n = len(rows)
    y = np.arange(n) % 2
    ref = {m: v.astype(np.float32) for m, v in arrays.items()}
    readers = {
        "source": lambda: [
            DatasetSource(ItemsDataset(rows, y)).take(
                np.arange(s, min(n, s + batch_size))
            )
            for s in range(0, n, batch_size)
        ],
        "loader": lambda: [
            b[0]
            for b in dataset_loader(
                TrainingDataset(ItemsDataset(rows), y), batch_size=batch_size
            )
        ],
    }
    for name, read in readers.items():
        if defect is None:
            batches = read()
            for m in arrays:
                got = torch.cat([b[m] for b in batches]).numpy()
                assert got.dtype == np.float32, name
                np.testing.assert_array_equal(got, ref[m], err_msg=name)
            continue
        error, names, item = _expect_refusal(defect, victim, at)
        with pytest.raises(error, match=names) as info:
            read()
        if item is not None:
            assert item in str(info.value), (name, str(info.value))


@FEW
@given(
    at=st.integers(0, 15),
    defect=st.sampled_from(DATASET_DEFECTS),
    victim=st.sampled_from(["a", "b"]),
    batch_size=st.integers(1, 20),
)
def test_predict_on_a_dataset_equals_arrays_or_names_the_defect(
    fitted_small, at, defect, victim, batch_size
):
    X0, y = _base()
    X = {m: v.astype(np.float32) for m, v in X0.items()}
    rows = [{m: X[m][i] for m in X} for i in range(len(y))]
    if defect is not None:
        rows[at] = _plant(rows[at], defect, victim, np.random.default_rng(at))
    ds = ItemsDataset(rows, y)
    clf = copy.deepcopy(fitted_small).set_params(batch_size=batch_size)
    if defect is None:
        np.testing.assert_allclose(
            clf.predict_proba(ds), fitted_small.predict_proba(X), rtol=1e-6
        )
        assert clf.score(ds, y) == fitted_small.score(X, y)
        return
    error, names, item = _expect_refusal(defect, victim, at)
    # item 0 is checked against the fitted modalities and shapes first
    pattern = names if item is None else f"(?s)(?=.*{names}).*{item}"
    for call in (clf.predict_proba, lambda d: clf.score(d, y)):
        with pytest.raises(error, match=pattern):
            call(ds)


# ----------------------------------------------------------------------------
# MultimodalSegmenter: masks
# ----------------------------------------------------------------------------
SEG_H, SEG_W, SEG_N = 3, 5, 6


@pytest.fixture(scope="module")
def segmenter_small():
    from mmexplain import MultimodalSegmenter

    rng = np.random.default_rng(0)
    X = {
        "a": rng.normal(size=(SEG_N, 2, SEG_H, SEG_W)).astype(np.float32),
        "b": rng.normal(size=(SEG_N, 1, SEG_H, SEG_W)).astype(np.float32),
    }
    y = (X["a"][:, 0] > 0).astype(int) + (X["b"][:, 0] > 1)
    seg = MultimodalSegmenter(max_epochs=1, random_state=0, batch_size=4).fit(X, y)
    return seg, X


def _brute_force_miou(t, p, n_classes):
    ious = []
    for c in range(n_classes):
        inter = sum(int(a == c and b == c) for a, b in zip(t.ravel(), p.ravel()))
        union = sum(int(a == c or b == c) for a, b in zip(t.ravel(), p.ravel()))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


@FEW
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["int64", "int32", "uint8", "float64", "float32"]),
    container=st.sampled_from(["numpy", "torch", "list"]),
)
def test_random_valid_masks_score_the_brute_force_values(
    segmenter_small, seed, dtype, container
):
    seg, X = segmenter_small
    y = np.random.default_rng(seed).integers(0, seg.n_classes_, (SEG_N, SEG_H, SEG_W))
    yc = as_container(y.astype(dtype), container)
    pred = seg.predict(X)
    assert seg.score(X, yc) == pytest.approx(
        _brute_force_miou(y, pred, seg.n_classes_), rel=1e-12
    )
    expl = PermutationModalityImportance(
        n_repeats=1, random_state=0, scoring="accuracy"
    ).explain(seg, X, yc)
    pixels = sum(int(a == b) for a, b in zip(y.ravel(), pred.ravel()))
    assert expl.baseline_score == pytest.approx(pixels / y.size, rel=1e-6)


MASK_DEFECTS = {
    "transposed": lambda y, rng: y.transpose(0, 2, 1),
    "flattened": lambda y, rng: y.reshape(len(y), -1),
    "fraction": lambda y, rng: (
        y
        + np.where(np.arange(y.size).reshape(y.shape) == rng.integers(y.size), 0.5, 0.0)
    ),
    "one_mask": lambda y, rng: y[0],
    "channel": lambda y, rng: y[:, None],
    "rows": lambda y, rng: y[:-1],
    "strings": lambda y, rng: y.astype(str),
    "cropped": lambda y, rng: y[:, :, :-1],
}


@settings(PROPS, max_examples=20)
@given(
    defect=st.sampled_from(list(MASK_DEFECTS)),
    seed=st.integers(0, 2**16),
    where=st.sampled_from(["score", "explain"]),
)
def test_bad_masks_are_refused_not_scored(segmenter_small, defect, seed, where):
    seg, X = segmenter_small
    rng = np.random.default_rng(seed)
    y = rng.integers(0, seg.n_classes_, (SEG_N, SEG_H, SEG_W))
    bad = MASK_DEFECTS[defect](y, rng)
    with pytest.raises((ValueError, TypeError), match="y |masks"):
        if where == "score":
            seg.score(X, bad)
        else:
            PermutationModalityImportance(n_repeats=1, random_state=0).explain(
                seg, X, bad
            )
