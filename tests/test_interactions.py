"""Shapley interaction indices against their definition, by brute force."""

from __future__ import annotations

from itertools import combinations
from math import factorial

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import shap  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from mmexplain.explainers import ModalityShapley  # noqa: E402
from mmexplain.explainers._interactions import interaction_weights  # noqa: E402


class _ProbModel(nn.Module):
    """Outputs log-probabilities, so the true-class probability is ``p1(x)``."""

    modalities = ("a", "b", "c")

    def __init__(self, p1):
        super().__init__()
        self.p1 = p1
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, a, b, c):
        p = self.p1(a, b, c).clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.log1p(-p), torch.log(p)], dim=1) + 0 * self.dummy


def _xor(a, b, c):
    return 0.5 + 0.4 * torch.tanh(3 * a[:, 0]) * torch.tanh(3 * b[:, 0])


def _additive(a, b, c):
    return (
        0.5
        + 0.1 * torch.tanh(a[:, 0])
        + 0.2 * torch.tanh(b[:, 0])
        - 0.1 * torch.tanh(c[:, 0])
    )


def _mixed(a, b, c):
    return torch.sigmoid(a[:, 0] * b[:, 0] + c[:, 0] - a[:, 0] * c[:, 0] + b[:, 0])


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, 2)).astype(np.float32) for m in "abc"}, np.ones(
        n, int
    )


def _brute_force(model, X):
    """I_ij by the definition, with v(S) = p1 with absent modalities zeroed."""
    M, names = 3, ["a", "b", "c"]

    def v(S):
        with torch.no_grad():
            inputs = {
                m: torch.as_tensor(X[m] if k in S else np.zeros_like(X[m]))
                for k, m in enumerate(names)
            }
            return model.p1(**inputs).clamp(1e-6, 1 - 1e-6).double().numpy()

    n = len(X["a"])
    out = np.zeros((n, M, M))
    for i, j in combinations(range(M), 2):
        rest = [k for k in range(M) if k not in (i, j)]
        for size in range(len(rest) + 1):
            w = factorial(size) * factorial(M - size - 2) / factorial(M - 1)
            for S in combinations(rest, size):
                S = set(S)
                out[:, i, j] += w * (v(S | {i, j}) - v(S | {i}) - v(S | {j}) + v(S))
        out[:, j, i] = out[:, i, j]
    return out


@pytest.mark.parametrize(
    "p1", [_xor, _additive, _mixed], ids=["xor", "additive", "mixed"]
)
def test_interactions_equal_the_definition(p1):
    model = _ProbModel(p1)
    X, y = _data()
    expl = ModalityShapley(baseline="zero_input", interactions=True).explain(
        model, X, y
    )
    want = _brute_force(model, X)
    np.testing.assert_allclose(expl.interaction_values, want, atol=1e-6)
    np.testing.assert_allclose(expl.interactions, want.mean(axis=0), atol=1e-6)
    if p1 is _additive:
        np.testing.assert_allclose(expl.interaction_values, 0.0, atol=1e-6)
    if p1 is _xor:  # a pure interaction: the pair's whole effect, halves as values
        np.testing.assert_allclose(
            expl.interaction_values[:, 0, 1], 2 * expl.values[:, 0], atol=1e-6
        )
        np.testing.assert_allclose(expl.values[:, 2], 0.0, atol=1e-7)
    ax = expl.plot(kind="interactions")
    shown = ax.images[0].get_array()
    off = expl.interactions.copy()
    np.fill_diagonal(off, 0)
    np.testing.assert_allclose(np.diag(shown), expl.mean_values - off.sum(1) / 2)


def test_weights_of_two_players():
    W = interaction_weights(2)
    V = np.array([[1.0, 2.0, 3.0, 10.0]])  # v(0), v(a), v(b), v(ab)
    assert np.einsum("ns,sij->nij", V, W)[0, 0, 1] == pytest.approx(10 - 2 - 3 + 1)


def test_interactions_refused_without_exact_values():
    model = _ProbModel(_xor)
    X, y = _data()
    with pytest.raises(ValueError, match="needs the exact computation"):
        ModalityShapley(
            baseline="zero_input", interactions=True, n_samples=10, random_state=0
        ).explain(model, X, y)
    plain = ModalityShapley(baseline="zero_input").explain(model, X, y)
    assert plain.interactions is None
    with pytest.raises(ValueError, match="no interaction indices"):
        plain.plot(kind="interactions")


def test_to_shap_keeps_the_interactions():
    model = _ProbModel(_mixed)
    X, y = _data()
    expl = ModalityShapley(baseline="zero_input", interactions=True).explain(
        model, X, y
    )
    sh = expl.to_shap(interactions=True)
    assert isinstance(sh, shap.Explanation) and sh.values.shape == (40, 3, 3)
    # shap's convention: halves off the diagonal, main effects on it, rows sum to phi
    np.testing.assert_allclose(sh.values.sum(axis=2), expl.values, atol=1e-9)
    np.testing.assert_allclose(sh.values[:, 0, 1], expl.interaction_values[:, 0, 1] / 2)
    with pytest.raises(ValueError, match="interactions=True"):
        ModalityShapley(baseline="zero_input").explain(model, X, y).to_shap(
            interactions=True
        )
