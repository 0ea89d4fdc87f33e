"""Trust: inputs that used to give silent wrong answers now give the right answer
or a clear error; explaining is thread-safe and deterministic; exact Shapley
memory is bounded by ``batch_size``.

Every reference here is computed in the test with plain torch / NumPy (brute
force Shapley and permutation loops, float32-cast inputs, hand-made forward
passes), never with mmexplain's own helpers.
"""

from __future__ import annotations

import copy
import itertools
import math
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import DataConversionWarning
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit
from torch import nn

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.balancers import SampleValuation, UtilizationTarget
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.modules import LateFusionNet, MLPEncoder, MMTMNet

TINY = {"module__embedding_dim": 4, "module__hidden": (8,)}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------
# independent helpers (no mmexplain code inside)
# ----------------------------------------------------------------------------
class _evaluating:
    """Run a module in eval mode, restoring every submodule's own mode."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        return self.module

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def _t(a):
    if isinstance(a, torch.Tensor):
        return a.detach().clone().float()
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def brute_shapley(module, X, y, modalities):
    """Exact Shapley values, value = true-class probability, absent = zero embedding."""
    with _evaluating(module), torch.no_grad():
        Z = module.encode(**{m: _t(X[m]) for m in modalities})
        n, M = len(y), len(modalities)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
        value = {}
        for S in itertools.product((0, 1), repeat=M):
            Zs = {
                m: (Z[m] if s else torch.zeros_like(Z[m]))
                for m, s in zip(modalities, S)
            }
            p = torch.softmax(module.fuse(**Zs), dim=1)[torch.arange(n), yt]
            value[S] = p.double().numpy()
    phi = np.zeros((n, M))
    for j in range(M):
        for S, v in value.items():
            if S[j]:
                continue
            s = sum(S)
            w = math.factorial(s) * math.factorial(M - s - 1) / math.factorial(M)
            with_j = tuple(1 if k == j else S[k] for k in range(M))
            phi[:, j] += w * (value[with_j] - v)
    return phi


def brute_permutation(module, X, y, modalities, n_repeats, seed):
    """Singh et al. Algorithm 1 with full forward passes: CE increase per permutation.

    Permutations drawn as documented: ``n_repeats`` draws ``rng.permutation(N)``
    from ``np.random.RandomState(seed)``, repeat r's shared by every modality.
    """
    rng = np.random.RandomState(seed)
    n = len(y)
    shared = [rng.permutation(n) for _ in range(n_repeats)]  # one per repeat
    perms = [shared for _ in modalities]
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)

    def loss(Xd):
        with _evaluating(module), torch.no_grad():
            out = module(**{m: _t(Xd[m]) for m in modalities})
            return float(nn.functional.cross_entropy(out.double(), yt))

    base = loss(X)
    imp = np.array(
        [
            [loss({**X, m: np.asarray(X[m])[p]}) - base for p in perms[i]]
            for i, m in enumerate(modalities)
        ]
    )
    return base, imp


def numbers(expl):
    """Every numeric field of an explanation (shares, values, rates, ...), as arrays."""
    out = {}
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
        out[name] = arr
    assert "shares" in out
    return out


def assert_same_explanation(e1, e2):
    assert tuple(e1.modalities) == tuple(e2.modalities)
    n1, n2 = numbers(e1), numbers(e2)
    assert n1.keys() == n2.keys()
    for k in n1:
        np.testing.assert_array_equal(n1[k], n2[k], err_msg=k)


def _copy_X(X):
    return {
        m: (v.detach().clone() if isinstance(v, torch.Tensor) else np.array(v))
        for m, v in X.items()
    }


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


EXPLAINERS = {
    "permutation": lambda: PermutationModalityImportance(n_repeats=3, random_state=0),
    "conditional": lambda: ConditionalUtilization(),
    "shapley": lambda: ModalityShapley(),
    "attribution": lambda: GradientModalityAttribution(output="true"),
}


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


# ----------------------------------------------------------------------------
# fixtures: tiny models trained once per module
# ----------------------------------------------------------------------------
def _vec_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = {
        "a": rng.normal(size=(n, 5)).astype(np.float32),
        "b": rng.normal(size=(n, 3)).astype(np.float32),
    }
    y = ((X["a"][:, 0] + X["b"][:, 0]) > 0).astype(np.int64)  # both modalities matter
    return X, y


@pytest.fixture(scope="module")
def vec():
    X, y = _vec_data()
    clf = MultimodalClassifier(max_epochs=15, lr=0.02, random_state=0, **TINY)
    clf.fit(X, y)
    # the model uses its inputs, so the explanations mean something
    assert clf.score(X, y) > 0.85
    return clf, X, y


@pytest.fixture(scope="module")
def seq():
    rng = np.random.default_rng(1)
    n = 48
    X = {
        "seq": rng.normal(size=(n, 4, 10)).astype(np.float32),
        "img": rng.normal(size=(n, 2, 6, 6)).astype(np.float32),
        "v": rng.normal(size=(n, 3)).astype(np.float32),
    }
    y = ((X["v"][:, 0] + X["seq"][:, 0, 0] + X["img"][:, 0].mean((1, 2))) > 0).astype(
        int
    )
    clf = MultimodalClassifier(
        max_epochs=6, lr=0.02, random_state=0, module__channels=(4,), **TINY
    ).fit(X, y)
    return clf, X, y


# ----------------------------------------------------------------------------
# 1. silent wrong answers -> correct result or clear error
# ----------------------------------------------------------------------------
def _call(where, clf, X, y):
    if where == "fit":
        return MultimodalClassifier(max_epochs=1, random_state=0, **TINY).fit(X, y)
    if where == "partial_fit":
        return copy.deepcopy(clf).partial_fit(X, y)
    if where in ("predict", "predict_proba"):
        return getattr(clf, where)(X)
    if where == "score":
        return clf.score(X, y)
    return EXPLAINERS[where]().explain(clf, X, y)


CALLERS = ["fit", "partial_fit", "predict", "predict_proba", "score", *EXPLAINERS]


@pytest.mark.parametrize("where", CALLERS)
@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("value", [1e39, -1e39])
def test_float64_beyond_float32_range_is_refused(vec, where, container, value):
    clf, X, y = vec
    bad = X["b"].astype(np.float64)
    bad[7, 1] = value  # finite in float64, inf once cast to float32
    with np.errstate(over="ignore"):
        assert np.isfinite(bad).all() and not np.isfinite(bad.astype(np.float32)).all()
    Xb = {"a": X["a"], "b": torch.from_numpy(bad) if container == "torch" else bad}
    before = _copy_X(Xb)
    with pytest.raises(ValueError, match=r"(?s)'b'.*float32"):
        _call(where, clf, Xb, y)
    for m in Xb:  # inputs untouched
        np.testing.assert_array_equal(np.asarray(Xb[m]), np.asarray(before[m]))


def test_float64_inside_float32_range_equals_float32_reference(vec):
    clf, X, y = vec
    rng = np.random.default_rng(3)
    X64 = {
        m: v.astype(np.float64) + 1e-9 * rng.normal(size=v.shape) for m, v in X.items()
    }
    X32 = {m: v.astype(np.float32) for m, v in X64.items()}
    assert any(not np.array_equal(X64[m], X32[m]) for m in X)  # really not float32
    np.testing.assert_array_equal(clf.predict_proba(X64), clf.predict_proba(X32))
    for make in EXPLAINERS.values():
        assert_same_explanation(
            _quiet(make().explain, clf, X64, y), _quiet(make().explain, clf, X32, y)
        )


SEQ_CALLERS = ["partial_fit", "predict", "predict_proba", "score", *EXPLAINERS]


@pytest.mark.parametrize("shape", [(10, 4), (8, 5), (40,), (4, 10, 1)])
@pytest.mark.parametrize("where", SEQ_CALLERS)
def test_sequence_per_sample_shape_is_checked(seq, shape, where):
    clf, X, y = seq
    Xb = dict(X)
    Xb["seq"] = (
        np.random.default_rng(0).normal(size=(len(y), *shape)).astype(np.float32)
    )
    with pytest.raises(ValueError, match="'seq'"):
        _call(where, clf, Xb, y)


@pytest.mark.parametrize("where", SEQ_CALLERS)
def test_image_channels_are_checked(seq, where):
    clf, X, y = seq
    Xb = dict(X)
    Xb["img"] = np.zeros((len(y), 3, 6, 6), np.float32)
    with pytest.raises(ValueError, match="(?s)'img'.*channels"):
        _call(where, clf, Xb, y)


def test_image_spatial_size_may_change(seq):
    clf, X, y = seq
    Xb = dict(X)
    Xb["img"] = (
        np.random.default_rng(5).normal(size=(len(y), 2, 9, 7)).astype(np.float32)
    )
    mods = ("seq", "img", "v")
    with _evaluating(clf.module_), torch.no_grad():
        ref = torch.softmax(clf.module_(**{m: _t(Xb[m]) for m in mods}), 1).numpy()
    np.testing.assert_allclose(clf.predict_proba(Xb), ref, rtol=1e-5, atol=1e-6)
    expl = ModalityShapley(value="probability", baseline="zeros").explain(clf, Xb, y)
    np.testing.assert_allclose(
        expl.values, brute_shapley(clf.module_, Xb, y, mods), atol=2e-5
    )


# -- targets in explainers ------------------------------------------------------
def _y_cases():
    return [
        pytest.param(name, kind, id=f"{name}-{kind}")
        for name in EXPLAINERS
        for kind in ("estimator", "module")
    ]


def _model(vec, kind):
    clf, X, y = vec
    return clf if kind == "estimator" else clf.module_


@pytest.mark.parametrize(("name", "kind"), _y_cases())
def test_explain_column_y_equals_flat_y(vec, name, kind):
    _, X, y = vec
    model = _model(vec, kind)
    flat = EXPLAINERS[name]().explain(model, X, y)
    with pytest.warns(DataConversionWarning):
        column = EXPLAINERS[name]().explain(model, X, y[:, None])
    assert_same_explanation(flat, column)


@pytest.mark.parametrize(("name", "kind"), _y_cases())
def test_explain_one_hot_y_is_refused(vec, name, kind):
    _, X, y = vec
    with pytest.raises(ValueError, match="one-hot"):
        EXPLAINERS[name]().explain(_model(vec, kind), X, np.eye(2, dtype=int)[y])


@pytest.mark.parametrize("bad", [2, -1, 7])
@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_explain_module_label_outside_classes_is_refused(vec, name, bad):
    clf, X, y = vec
    yb = y.copy()
    yb[11] = bad
    with pytest.raises(ValueError, match=rf"class index {bad}\b"):
        EXPLAINERS[name]().explain(clf.module_, X, yb)


@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_explain_estimator_unknown_label_is_refused(vec, name):
    clf, X, y = vec
    yb = y.copy()
    yb[3] = 5
    with pytest.raises(ValueError, match=r"\[5\]"):
        EXPLAINERS[name]().explain(clf, X, yb)


# -- targets in fit ---------------------------------------------------------------
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(
    ("y_kind", "error", "match"),
    [
        ("continuous", ValueError, "continuous"),
        ("complex", (TypeError, ValueError), "complex"),
        ("complex_int_valued", (TypeError, ValueError), "complex"),
        ("one_hot", ValueError, "one-hot"),
    ],
)
def test_fit_refuses_non_class_targets(method, y_kind, error, match):
    X, y = _vec_data(40)
    yb = {
        "continuous": np.where(y == 0, 0.5, 1.7),
        "complex": y + 0.5j,
        "complex_int_valued": y.astype(complex),
        "one_hot": np.eye(2)[y],
    }[y_kind]
    clf = MultimodalClassifier(max_epochs=1, random_state=0, **TINY)
    with pytest.raises(error, match=match):
        getattr(clf, method)(X, yb)


def test_fit_integer_valued_float_and_column_targets_equal_int_targets():
    X, y = _vec_data(40)
    ref = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(X, y)
    as_float = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(
        X, y.astype(np.float64)
    )
    with pytest.warns(DataConversionWarning):
        column = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(
            X, y[:, None]
        )
    for other in (as_float, column):
        assert _same_state(_state(ref.module_), _state(other.module_))
        np.testing.assert_array_equal(other.classes_, ref.classes_)


# -- pandas values in ModalityDict ----------------------------------------------------
def _pandas_X(n=12):
    import pandas as pd

    rng = np.random.default_rng(0)
    index = rng.permutation(np.arange(100, 100 + n))  # non-default, unsorted labels
    df = pd.DataFrame(rng.normal(size=(n, 3)), index=index, columns=["p", "q", "r"])
    s = pd.Series(rng.normal(size=n), index=index[::-1].copy())
    return df, s


def test_modalitydict_pandas_rows_are_positional():
    df, s = _pandas_X()
    X = ModalityDict(a=df, s=s)
    ref_a, ref_s = df.to_numpy(), s.to_numpy()
    for key in (np.array([0, 2]), np.array([11, 0, 5]), slice(1, 4), ref_s > 0, [3, 1]):
        rows = X[key]
        np.testing.assert_array_equal(rows["a"], ref_a[key])
        np.testing.assert_array_equal(rows["s"], ref_s[key])
    np.testing.assert_array_equal(X[0]["a"], ref_a[0])
    # the caller's objects are untouched
    assert list(df.index) == list(_pandas_X()[0].index)


def test_modalitydict_pandas_train_test_split_and_fit():
    df, s = _pandas_X(40)
    y = (df.to_numpy()[:, 0] > 0).astype(int)
    X = ModalityDict(a=df, s=s.to_frame())
    Xn = {"a": df.to_numpy(), "s": s.to_numpy()[:, None]}
    tr, te, ytr, yte = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    idx_tr, idx_te = train_test_split(
        np.arange(40), test_size=0.25, stratify=y, random_state=0
    )
    for m in Xn:
        np.testing.assert_array_equal(tr[m], Xn[m][idx_tr])
        np.testing.assert_array_equal(te[m], Xn[m][idx_te])
    np.testing.assert_array_equal(ytr, y[idx_tr])
    fit_pd = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(tr, ytr)
    fit_np = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(
        {m: Xn[m][idx_tr] for m in Xn}, ytr
    )
    assert _same_state(_state(fit_pd.module_), _state(fit_np.module_))


def _wrong_rows(kind):
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(np.zeros((3, 2)), index=[5, 6, 7])
    return np.zeros((3, 2))


MUTATIONS = {
    "setitem": lambda X, v: X.__setitem__("c", v),
    "update-mapping": lambda X, v: X.update({"c": v}),
    "update-pairs": lambda X, v: X.update([("c", v)]),
    "update-kwargs": lambda X, v: X.update(c=v),
    "ior": lambda X, v: X.__ior__({"c": v}),
    "setdefault": lambda X, v: X.setdefault("c", v),
    "replace-existing": lambda X, v: X.__setitem__("b", v),
}


@pytest.mark.parametrize("kind", ["numpy", "pandas"])
@pytest.mark.parametrize("op", list(MUTATIONS))
def test_modalitydict_mutation_with_wrong_row_count_raises(op, kind):
    a, b = np.arange(8.0).reshape(4, 2), np.ones((4, 1))
    X = ModalityDict(a=a, b=b)
    with pytest.raises(ValueError, match="'c'|'b'"):
        MUTATIONS[op](X, _wrong_rows(kind))
    assert list(X) == ["a", "b"] and X["a"] is a and X["b"] is b


@pytest.mark.parametrize("op", ["update", "ior"])
def test_modalitydict_failed_update_leaves_dict_unchanged(op):
    a = np.zeros((4, 1))
    X = ModalityDict(a=a)
    new = {"c": np.ones((4, 1)), "d": np.ones((3, 1))}
    with pytest.raises(ValueError, match="'d'"):
        X.update(new) if op == "update" else X.__ior__(new)
    assert list(X) == ["a"]


# -- diverging training ------------------------------------------------------------------
def _diverging(**kwargs):
    return MultimodalClassifier(
        max_epochs=3,
        lr=1e6,
        optimizer=torch.optim.SGD,
        random_state=0,
        **TINY,
        **kwargs,
    )


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_fit_refuses_diverging_training(method):
    X, y = _vec_data(60)
    with pytest.raises(FloatingPointError, match="(?s)diverged.*NaN or infinite"):
        getattr(_diverging(), method)(X, y)


@pytest.fixture(scope="module")
def diverged():
    X, y = _vec_data(60)
    clf = _diverging(on_nonfinite="warn")
    with pytest.warns(RuntimeWarning, match="diverged"):
        clf.fit(X, y)
    # precondition: training really diverged to non-finite weights
    assert not all(bool(torch.isfinite(p).all()) for p in clf.module_.parameters())
    return clf, X, y


DIVERGED_EXPLAINERS = {
    "permutation-loss": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0
    ),
    "permutation-accuracy": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0, scoring="accuracy"
    ),
    "permutation-class_index": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0, class_index=1
    ),
    "permutation-full-forward": lambda: PermutationModalityImportance(
        n_repeats=2, random_state=0, fast=False
    ),
    "conditional": lambda: ConditionalUtilization(),
    "conditional-zeros": lambda: ConditionalUtilization(ablation="zeros"),
    "conditional-input_mean-loss": lambda: ConditionalUtilization(
        ablation="input_mean", scoring="loss"
    ),
    "shapley": lambda: ModalityShapley(),
    "shapley-correct": lambda: ModalityShapley(value="correct"),
    "shapley-neg_loss-mean_input": lambda: ModalityShapley(
        value="neg_loss", baseline="mean_input"
    ),
    "shapley-monte-carlo": lambda: ModalityShapley(n_samples=20, random_state=0),
    "attribution-max": lambda: GradientModalityAttribution(),
    "attribution-true-input": lambda: GradientModalityAttribution(
        output="true", level="input"
    ),
}


@pytest.mark.parametrize("explainer", list(DIVERGED_EXPLAINERS))
@pytest.mark.parametrize("kind", ["estimator", "module"])
def test_diverged_model_is_refused_by_every_explainer(diverged, explainer, kind):
    clf, X, y = diverged
    model = clf if kind == "estimator" else clf.module_
    with pytest.raises(ValueError, match="not finite"):
        _quiet(DIVERGED_EXPLAINERS[explainer]().explain, model, X, y)


def test_partly_nan_model_never_gets_balanced_shapley(vec):
    clf, X, y = vec
    module = copy.deepcopy(clf.module_)
    with torch.no_grad():
        # only modality 'b' is broken
        next(module.encoders["b"].parameters()).fill_(float("nan"))
    for explainer in (ModalityShapley(), ModalityShapley(value="correct")):
        with pytest.raises(ValueError, match="not finite"):
            _quiet(explainer.explain, module, X, y)


# -- tensors with requires_grad=True as data -----------------------------------------------
def _grad_tensors(X, dtype):
    return {m: torch.tensor(v, dtype=dtype, requires_grad=True) for m, v in X.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_with_requires_grad_tensors_leaves_them_alone(dtype):
    X, y = _vec_data(40)
    Xt = _grad_tensors(X, dtype)
    before = _copy_X(Xt)
    clf = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(Xt, y)
    clf.partial_fit(Xt, y)
    for m, v in Xt.items():
        assert v.grad is None, m
        assert v.requires_grad and v.dtype == dtype
        assert torch.equal(v.detach(), before[m])
    ref = MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(X, y)
    ref.partial_fit(X, y)
    assert _same_state(_state(clf.module_), _state(ref.module_))


@pytest.mark.parametrize(
    "explainer",
    [
        *EXPLAINERS.values(),
        lambda: GradientModalityAttribution(output="true", level="input"),
        lambda: PermutationModalityImportance(n_repeats=2, random_state=0, fast=False),
    ],
    ids=[*EXPLAINERS, "attribution-input", "permutation-full-forward"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_explain_with_requires_grad_tensors_leaves_them_alone(vec, explainer, dtype):
    clf, X, y = vec
    Xt = _grad_tensors(X, dtype)
    before = _copy_X(Xt)
    got = _quiet(explainer().explain, clf, Xt, y)
    ref = _quiet(
        explainer().explain, clf, {m: v.astype(np.float32) for m, v in X.items()}, y
    )
    for m, v in Xt.items():
        assert v.grad is None, m
        assert v.requires_grad and v.dtype == dtype
        assert torch.equal(v.detach(), before[m])
    assert_same_explanation(got, ref)


def test_predict_with_requires_grad_tensors_leaves_them_alone(vec):
    clf, X, y = vec
    Xt = _grad_tensors(X, torch.float32)
    np.testing.assert_array_equal(clf.predict_proba(Xt), clf.predict_proba(X))
    assert clf.score(Xt, y) == clf.score(X, y)
    assert all(v.grad is None for v in Xt.values())


# ----------------------------------------------------------------------------
# 2. concurrency and determinism
# ----------------------------------------------------------------------------
@pytest.fixture
def busy_switching():
    """Switch threads as often as possible, so concurrent explanations interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _in_threads(fn, n_threads=2, per_thread=3):
    barrier = threading.Barrier(n_threads)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            for _ in range(per_thread):
                results.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def dropout_clf():
    X, y = _vec_data(160, seed=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = LateFusionNet(
            {"a": MLPEncoder(5, 8, (16,)), "b": MLPEncoder(3, 8, (16,))},
            n_classes=2,
            hidden=(32,),
            dropout=0.5,
        )
    clf = MultimodalClassifier(module, max_epochs=10, lr=0.01, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.85
    return clf, X, y


@pytest.fixture(scope="module")
def mmtm_clf():
    rng = np.random.default_rng(0)
    n = 96
    X = {
        "c": rng.normal(size=(n, 2, 6, 6)).astype(np.float32),
        "g": rng.normal(size=(n, 1, 6, 6)).astype(np.float32),
    }
    y = (np.arange(n) % 2).astype(int)
    # weak evidence in both branches: removing either one costs accuracy
    X["c"][:, 0] += np.where(y, 0.25, -0.25)[:, None, None]
    X["g"][:, 0] += np.where(y, 0.175, -0.175)[:, None, None]
    clf = MultimodalClassifier(
        MMTMNet,
        module__channels=(4, 4),
        max_epochs=10,
        lr=0.03,
        batch_size=32,
        random_state=0,
    ).fit(X, y)
    return clf, X, y


@pytest.mark.parametrize(
    "train_mode", [True, False], ids=["left-in-train", "left-in-eval"]
)
@pytest.mark.parametrize("fast", ["auto", False])
def test_threads_permutation_dropout_model(
    dropout_clf, busy_switching, train_mode, fast
):
    clf, X, y = dropout_clf
    clf.module_.train(train_mode)
    modes = {k: m.training for k, m in clf.module_.named_modules()}
    state = _state(clf.module_)

    def explain():
        return PermutationModalityImportance(
            n_repeats=3, random_state=0, batch_size=40, fast=fast
        ).explain(clf, X, y)

    sequential = explain()
    base, imp = brute_permutation(clf.module_, X, y, ("a", "b"), 3, 0)  # dropout off
    np.testing.assert_allclose(sequential.importances, imp, rtol=1e-4, atol=1e-6)
    assert {k: m.training for k, m in clf.module_.named_modules()} == modes
    for result in _in_threads(explain):
        assert_same_explanation(result, sequential)
    assert {k: m.training for k, m in clf.module_.named_modules()} == modes
    assert _same_state(state, _state(clf.module_))
    clf.module_.eval()


def test_threads_different_explainers_on_one_model(dropout_clf, busy_switching):
    clf, X, y = dropout_clf
    clf.module_.train()
    makers = [
        lambda: PermutationModalityImportance(
            n_repeats=2, random_state=1, batch_size=40
        ),
        lambda: ModalityShapley(value="probability", baseline="zeros", batch_size=40),
        lambda: GradientModalityAttribution(output="true", batch_size=40),
        lambda: ConditionalUtilization(batch_size=40),
    ]
    sequential = [make().explain(clf, X, y) for make in makers]
    lock = threading.Lock()
    counter = iter(range(10**6))

    def explain():
        with lock:
            k = next(counter) % len(makers)
        return k, makers[k]().explain(clf, X, y)

    for k, result in _in_threads(explain, n_threads=4, per_thread=2):
        assert_same_explanation(result, sequential[k])
    assert all(m.training for m in clf.module_.modules())
    np.testing.assert_allclose(
        sequential[1].values, brute_shapley(clf.module_, X, y, ("a", "b")), atol=2e-5
    )
    clf.module_.eval()


@pytest.mark.parametrize(
    "train_mode", [True, False], ids=["left-in-train", "left-in-eval"]
)
def test_threads_mmtm_conditional(mmtm_clf, busy_switching, train_mode):
    clf, X, y = mmtm_clf
    clf.module_.train(train_mode)
    modes = {k: m.training for k, m in clf.module_.named_modules()}
    state = _state(clf.module_)  # running gate / squeeze averages included

    def explain():
        return ConditionalUtilization(batch_size=32).explain(clf, X, y)

    sequential = explain()
    assert sequential.params["ablation"] == "mmtm"
    assert np.any(np.abs(sequential.rates) > 0)  # the rates are not trivially zero
    assert _same_state(state, _state(clf.module_))
    for result in _in_threads(explain):
        assert_same_explanation(result, sequential)
    assert {k: m.training for k, m in clf.module_.named_modules()} == modes
    assert _same_state(state, _state(clf.module_))
    clf.module_.eval()


def _np_state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def test_valid_split_does_not_depend_on_global_numpy_rng():
    X, y = _vec_data(60)
    fits = []
    for global_seed in (1, 12345):
        np.random.seed(global_seed)  # noqa: NPY002 - the global RNG is the point
        state = np.random.get_state()  # noqa: NPY002
        clf = MultimodalClassifier(
            max_epochs=2, random_state=0, train_split=ValidSplit(0.2), **TINY
        ).fit(X, y)
        after = np.random.get_state()  # noqa: NPY002
        assert _np_state_equal(state, after)  # fit leaves the global RNG alone
        fits.append(clf)
    a, b = fits
    assert _same_state(_state(a.module_), _state(b.module_))
    np.testing.assert_array_equal(
        a.history[:, "valid_loss"], b.history[:, "valid_loss"]
    )
    # and the seed matters (the test is not vacuous)
    c = MultimodalClassifier(
        max_epochs=2, random_state=1, train_split=ValidSplit(0.2), **TINY
    ).fit(X, y)
    assert not np.array_equal(a.history[:, "valid_loss"], c.history[:, "valid_loss"])


@pytest.mark.parametrize("balancer_seed", [0, None], ids=["balancer-seed", "net-seed"])
def test_sample_valuation_monte_carlo_is_seeded(balancer_seed):
    rng = np.random.default_rng(0)
    M, n = 11, 40  # more than max_exact=10 modalities: Monte-Carlo Shapley
    X = {f"m{j}": rng.normal(size=(n, 1)).astype(np.float32) for j in range(M)}
    y = ((X["m0"][:, 0] + X["m1"][:, 0]) > 0).astype(int)

    def fit(global_seed, seed=0):
        np.random.seed(global_seed)  # noqa: NPY002 - must not matter
        torch.manual_seed(global_seed)
        clf = MultimodalClassifier(
            balancer=SampleValuation(warmup_epochs=1, random_state=balancer_seed),
            max_epochs=3,
            random_state=seed,
            module__embedding_dim=2,
            module__hidden=(4,),
        )
        return _quiet(clf.fit, X, y)

    a, b = fit(1), fit(2)
    assert _same_state(_state(a.module_), _state(b.module_))
    assert a.history[-1, "valuation_mean_phi"] == b.history[-1, "valuation_mean_phi"]


class _Interrupt(Callback):
    """Raise ``exc`` at the end of the ``after``-th training batch, once."""

    def __init__(self, exc=KeyboardInterrupt, after=3):
        self.exc = exc
        self.after = after

    def initialize(self):
        self.batches_ = 0
        self.seen_ = None
        self.armed_ = getattr(self, "armed_", True)
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if not training or not self.armed_:
            return
        self.batches_ += 1
        self.seen_ = [
            (p, p.requires_grad)
            for m in net.modalities_
            for p in net.module_.encoders[m].parameters()
        ]
        if self.batches_ >= self.after:
            self.armed_ = False
            raise self.exc("stop")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_fit_unfreezes_encoders(exc):
    X, y = _vec_data(80)
    stop = _Interrupt(exc)
    clf = MultimodalClassifier(
        balancer=UtilizationTarget(
            {"a": 0.5, "b": 0.5}, freeze_encoders=True, warmup=0
        ),
        callbacks=[("stop", stop)],
        max_epochs=4,
        batch_size=16,
        random_state=0,
        **TINY,
    )
    if exc is KeyboardInterrupt:
        assert clf.fit(X, y) is clf  # skorch semantics: the interrupt ends training
    else:
        with pytest.raises(RuntimeError, match="stop"):
            clf.fit(X, y)
    cb = dict(clf.callbacks_)["stop"]
    assert cb.batches_ == 3
    frozen = cb.seen_
    assert frozen and not any(rg for _, rg in frozen)  # frozen while training
    params = [p for m in ("a", "b") for p in clf.module_.encoders[m].parameters()]
    assert len(params) == len(frozen)
    assert all(p is q for p, (q, _) in zip(params, frozen))  # same Parameter objects
    assert all(p.requires_grad for p in params)
    in_optimizer = {id(p) for g in clf.optimizer_.param_groups for p in g["params"]}
    assert {id(p) for p in params} <= in_optimizer
    # usable again: the same estimator (balancer still set) fits to the end ...
    clf.fit(X, y)
    assert len(clf.history) == 4 and dict(clf.callbacks_)["stop"].batches_ == 0
    params = [p for m in ("a", "b") for p in clf.module_.encoders[m].parameters()]
    assert all(p.requires_grad for p in params)
    # ... and, without the balancer, trains its encoders and predicts what they say
    clf.set_params(balancer=None)
    enc = clf.module_.encoders
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    clf.partial_fit(X, y)
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items())
    with _evaluating(clf.module_), torch.no_grad():
        ref = clf.module_(**{m: _t(X[m]) for m in ("a", "b")}).argmax(1).numpy()
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[ref])


# ----------------------------------------------------------------------------
# 3. exact Shapley memory: bounded by batch_size, not by N
# ----------------------------------------------------------------------------
_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, torch
    from torch import nn
    torch.set_num_threads(1)
    from mmexplain.explainers import ModalityShapley

    M, BATCH = 8, 2048

    class LinearLateFusion(nn.Module):
        def __init__(self):
            super().__init__()
            self.names = [f"m{j}" for j in range(M)]
            self.enc = nn.ModuleDict({m: nn.Linear(1, 2) for m in self.names})
            self.head = nn.Linear(2 * M, 2)
        def encode(self, **X):
            return {m: self.enc[m](X[m]) for m in self.names}
        def fuse(self, **Z):
            return self.head(torch.cat([Z[m] for m in self.names], dim=1))
        def forward(self, **X):
            return self.fuse(**self.encode(**X))

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024

    def data(n, seed):
        rng = np.random.default_rng(seed)
        X = {f"m{j}": rng.standard_normal((n, 1), dtype=np.float32) for j in range(M)}
        return X, rng.integers(0, 2, n)

    torch.manual_seed(0)
    model = LinearLateFusion()
    out = {}
    for n in map(int, sys.argv[1:]):
        X, y = data(n, n)  # before the fork: the input is not counted
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a child per size: each starts from the same clean heap
            os.close(r)
            Xw, yw = data(500, 1)
            ModalityShapley(batch_size=BATCH).explain(model, Xw, yw)  # lazy init
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
            base = status("VmRSS:")
            e = ModalityShapley(batch_size=BATCH).explain(model, X, y)
            peak = status("VmHWM:") - base
            sub = ModalityShapley(batch_size=BATCH).explain(
                model, {m: v[:64] for m, v in X.items()}, y[:64]
            )
            res = {
                "peak": peak,
                "shape": list(e.values.shape),
                "gap": e.params["efficiency_gap"],
                "rows_ok": bool(np.allclose(e.values[:64], sub.values, atol=1e-6)),
            }
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            out[n] = json.loads(f.read())
        os.waitpid(pid, 0)
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="measures peak RSS through /proc"
)
def test_exact_shapley_peak_memory_does_not_grow_with_n():
    import json
    import os

    import mmexplain

    small, large = 6_000, 24_000
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(small), str(large)],
        capture_output=True,
        text=True,
        timeout=120,
        # the child imports the very mmexplain this test process imported
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(mmexplain.__file__))),
        # large blocks straight from (and back to) the OS: RSS follows live memory
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = {
        int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()
    }
    M = 8
    for n in (small, large):
        assert res[n]["shape"] == [n, M]  # the output itself is allowed to grow
        assert res[n]["gap"] < 1e-6  # efficiency: sum_m phi_m = v(all) - v(empty)
        assert res[n]["rows_ok"]  # per-row values do not depend on the other rows
    peak_small, peak_large = res[small]["peak"], res[large]["peak"]
    per_row = (peak_large - peak_small) / (large - small)
    # O(N * 2^M) memory (all coalition values of every row) costs 2^M * 8 = 2048
    # bytes per row; the (N, M) output, v(empty), v(all) and the embedding cache
    # need a few hundred
    assert per_row < 2**M * 8 / 2, (peak_small, peak_large, per_row)
    assert peak_large < 2.5 * max(peak_small, 16 << 20), (peak_small, peak_large)
