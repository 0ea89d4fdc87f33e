"""Explainers never return a silent wrong number (issue 20: W5, R1).

- W5: gradient x input is computed in float64, so inputs far beyond 1e19
  (where a float32 norm overflowed into all-NaN shares) give the shares of
  the rescaled inputs; gradients that overflow in the model itself are refused
  naming the modality; scores that overflow on finite outputs are refused by
  every explainer.
- R1: exact Shapley evaluates ``batch_size // 2^M`` rows per block (at least
  one), so its memory stays within ``batch_size`` rows of coalitions whatever
  N, and each row's values do not depend on the blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.__main__ import main
from mmexplain.data import save_npz
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.explainers._engine import EvaluationEngine
from mmexplain.explainers.attribution import modality_attribution
from mmexplain.persistence import save_model
from mmexplain.report import modality_report


@pytest.fixture(scope="module")
def data():
    X, y = make_multimodal_classification(
        n_samples=80, n_features=(5, 3), random_state=0
    )
    return ModalityDict({m: np.asarray(v, np.float32) for m, v in X.items()}), y


@pytest.fixture(scope="module")
def clf(data):
    X, y = data
    return MultimodalClassifier(
        max_epochs=3, random_state=0, module__embedding_dim=6, module__hidden=(8,)
    ).fit(X, y)


def scaled(X, factor):
    return ModalityDict({m: (v * np.float32(factor)) for m, v in X.items()})


# ----------------------------------------------------------------------------
# W5: gradient x input overflow
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["embedding", "input"])
def test_attribution_of_huge_inputs_is_finite_and_scale_free(clf, data, level):
    """A ReLU network is nearly homogeneous at large scale: the shares of inputs
    scaled by 1e25 (sum of squares ~1e50, beyond float32) equal those at 1e12."""
    X, _ = data
    explainer = GradientModalityAttribution(level=level)
    ref = explainer.explain(clf, scaled(X, 1e12))
    huge = explainer.explain(clf, scaled(X, 1e25))
    # samples with a zero gradient are undefined at any scale; no others
    assert huge.params["n_undefined"] == ref.params["n_undefined"] < len(X) / 4
    assert np.isfinite(huge.shares).all()
    np.testing.assert_allclose(huge.shares, ref.shares, rtol=1e-5)
    np.testing.assert_allclose(huge.sample_shares, ref.sample_shares, atol=1e-6)


class OverflowingGradient(nn.Module):
    """Finite outputs (|logit| <= 1e30) whose gradient in ``a`` is ~1e60: inf."""

    def forward(self, a, b):
        s = 1e30 * torch.tanh(1e30 * a[:, 0]) + b[:, 0]
        return torch.stack([s, -s], dim=1)


def overflow_data(n=16):
    rng = np.random.default_rng(0)
    X = {
        "a": (rng.normal(size=(n, 2)) * 1e-31).astype(np.float32),
        "b": rng.normal(size=(n, 2)).astype(np.float32),
    }
    return X, np.arange(n) % 2


def test_attribution_refuses_overflowed_gradients_naming_the_modality():
    X, _ = overflow_data()
    with pytest.raises(ValueError, match=r"modality 'a' \(16 of 16 samples\)") as err:
        GradientModalityAttribution().explain(OverflowingGradient(), X)
    assert "'b'" not in str(err.value) and "rescale the inputs" in str(err.value)


@pytest.mark.filterwarnings("ignore:no modality has a positive contribution")
def test_the_report_says_why_attribution_is_left_out(capsys):
    X, y = overflow_data()
    report = modality_report(
        OverflowingGradient(), X, y, n_repeats=2, show_progress=False
    )
    assert "attribution" not in report and "permutation" in report
    assert "attribution skipped: the gradient x input of modality 'a'" in (
        capsys.readouterr().err
    )


def test_attribution_warns_when_no_sample_is_attributed():
    class Constant(nn.Module):
        def forward(self, a, b):
            return torch.zeros(len(a), 2) + 0.0 * (a.sum(1) + b.sum(1))[:, None]

    X, _ = overflow_data()
    with pytest.warns(RuntimeWarning, match="attribution shares are undefined"):
        expl = GradientModalityAttribution().explain(Constant(), X)
    assert np.isnan(expl.shares).all() and expl.params["n_undefined"] == 16


def test_modality_attribution_keeps_dtype_and_gradient_without_overflow():
    """The training regularizer's function: float32 shares, differentiable, finite."""
    torch.manual_seed(0)
    head = nn.Linear(6, 2)
    Z = {
        "a": (torch.randn(4, 3) * 1e25).requires_grad_(True),
        "b": (torch.randn(4, 3) * 1e25).requires_grad_(True),
    }
    shares = modality_attribution(
        Z, head(torch.cat([Z["a"], Z["b"]], 1)), create_graph=True
    )
    assert shares.dtype == torch.float32 and torch.isfinite(shares).all()
    np.testing.assert_allclose(shares.sum(1).detach().numpy(), 1.0, rtol=1e-6)
    shares[:, 0].sum().backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()


class HugeLogits(nn.Module):
    """Finite logits of +-3e38: the loss of a wrong class is -3e38 - 3e38 = inf."""

    def forward(self, a, b):
        s = 3e38 * torch.tanh(a[:, 0] + b[:, 0])
        return torch.stack([s, -s], dim=1)


@pytest.mark.parametrize(
    "explainer",
    [
        PermutationModalityImportance(scoring="loss", n_repeats=2, random_state=0),
        ConditionalUtilization(scoring="loss"),
        ModalityShapley(value="neg_loss"),
    ],
    ids=["permutation", "conditional", "shapley"],
)
def test_scores_that_overflow_on_finite_outputs_are_refused(explainer):
    X, y = overflow_data()
    X["a"] = X["a"] * 1e31
    with pytest.raises(ValueError, match="scores computed from them are not"):
        explainer.explain(HugeLogits(), X, y)


def test_cli_explains_huge_inputs_with_finite_numbers(clf, data, tmp_path, capsys):
    X, y = data
    save_model(clf, tmp_path / "model.mmx")
    save_npz(tmp_path / "huge.npz", scaled(X, 1e25), y)
    rc = main(
        [
            "--quiet",
            "--repeats",
            "2",
            "explain",
            str(tmp_path / "model.mmx"),
            str(tmp_path / "huge.npz"),
            "--plot",
            "",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line[:1] in ("a", "b")]
    assert len(rows) == 2 and "nan" not in out and "skipped" not in err
    assert all(np.isfinite(float(v)) for row in rows for v in row[2:] if v != "+-")


# ----------------------------------------------------------------------------
# R1: exact Shapley's memory is bounded by batch_size rows of coalitions
# ----------------------------------------------------------------------------
class Columns(nn.Module):
    """``M`` two-feature modalities and a head of additions only: each row's
    logits are exact whatever rows share a call (batch-invariant)."""

    def __init__(self, M):
        super().__init__()
        self.names = [f"m{i}" for i in range(M)]

    def encode(self, **X):
        return {m: X[m] for m in self.names}

    def fuse(self, **Z):
        s = sum((i % 3 - 1) * Z[m][:, 0] + Z[m][:, 1] for i, m in enumerate(self.names))
        return torch.stack([torch.zeros_like(s), s], dim=1)

    def forward(self, **X):
        return self.fuse(**self.encode(**X))


def columns_data(M, n, seed=0):
    rng = np.random.default_rng(seed)
    # quarters: sums of a few of them are exact in float32
    X = {f"m{i}": rng.integers(-8, 8, size=(n, 2)) / 4 for i in range(M)}
    return {m: v.astype(np.float32) for m, v in X.items()}, rng.integers(0, 2, n)


@pytest.fixture
def block_sizes(monkeypatch):
    """(K perturbations, rows) of every block the engine yields."""
    seen = []
    original = EvaluationEngine.iter_blocks

    def spy(self, perturbations, *args, **kwargs):
        for sl, st in original(self, perturbations, *args, **kwargs):
            seen.append((st.shape[0], sl.stop - sl.start))
            yield sl, st

    monkeypatch.setattr(EvaluationEngine, "iter_blocks", spy)
    return seen


@pytest.mark.parametrize(
    ("M", "n", "batch_size", "rows"),
    [(6, 200, "auto", 64), (6, 200, 100, 1), (4, 50, 40, 2), (13, 3, "auto", 1)],
)
def test_shapley_blocks_hold_at_most_batch_size_rows_of_coalitions(
    block_sizes, M, n, batch_size, rows
):
    X, y = columns_data(M, n)
    expl = ModalityShapley(max_exact=16, batch_size=batch_size).explain(
        Columns(M), X, y
    )
    bs = expl.params["batch_size"]  # 'auto' is 4096 on the CPU
    K = 1 << M
    assert block_sizes and all(k == K for k, _ in block_sizes)
    assert max(r for _, r in block_sizes) == rows == max(1, bs // K)
    assert sum(r for _, r in block_sizes) == n
    assert all(k * r <= max(bs, K) for k, r in block_sizes)


@pytest.mark.filterwarnings("ignore:no modality has a positive contribution")
@pytest.mark.parametrize("value", ["probability", "neg_loss", "correct"])
@pytest.mark.parametrize("n_samples", [None, 6])
def test_shapley_values_do_not_depend_on_the_blocks(value, n_samples):
    """Bit-identical across block sizes (1 row to all rows per block) on a
    batch-invariant model: the blocks change nothing but memory."""
    X, y = columns_data(4, 30)
    runs = [
        ModalityShapley(
            value=value, n_samples=n_samples, random_state=0, batch_size=bs
        ).explain(Columns(4), X, y)
        for bs in (1, 16, 40, 100, 4096)
    ]
    for e in runs[1:]:
        np.testing.assert_array_equal(e.values, runs[0].values)
        np.testing.assert_array_equal(e.base_values, runs[0].base_values)
        if n_samples is not None:
            np.testing.assert_array_equal(e.standard_errors, runs[0].standard_errors)
    assert runs[0].params["efficiency_gap"] < 1e-12
