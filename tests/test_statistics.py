"""Bootstrap intervals, p-values and paired comparisons, against direct resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmexplain import MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.seeding import stream_seed
from mmexplain.statistics import (
    bootstrap_counts,
    bootstrap_means,
    normalize_rows,
    p_value_not_used,
    paired_comparison,
    percentile_interval,
)

B = 40  # resamples in the model tests (the statistics are exact, not approximate)


def _direct_indices(n, n_resamples, seed):
    """The documented resampling, one resample at a time."""
    rng = np.random.default_rng(stream_seed(seed, "bootstrap", n))
    return [rng.integers(0, n, size=n) for _ in range(n_resamples)]


def test_counts_are_the_documented_resamples():
    n, seed = 37, 5
    counts = np.concatenate(list(bootstrap_counts(n, 150, seed)))  # 3 chunks
    direct = np.array(
        [np.bincount(i, minlength=n) for i in _direct_indices(n, 150, seed)]
    )
    np.testing.assert_array_equal(counts, direct)
    again = np.concatenate(list(bootstrap_counts(n, 150, seed, chunk=7)))
    np.testing.assert_array_equal(again, counts)


def test_bootstrap_means_against_a_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3))
    values[4, 1] = np.nan  # left out of column 1 only
    reps = bootstrap_means(values, 20, 3)
    for b, idx in enumerate(_direct_indices(50, 20, 3)):
        np.testing.assert_allclose(reps[b], np.nanmean(values[idx], axis=0))


def test_percentile_interval_coverage_of_a_known_mean():
    """A 90% interval of a normal mean covers the truth about 90% of the time."""
    rng = np.random.default_rng(1)
    hits, n_sets = 0, 300
    for k in range(n_sets):
        data = rng.normal(2.0, 1.0, size=(60, 1))
        lo, hi = percentile_interval(bootstrap_means(data, 200, k), 0.9)[0]
        hits += lo <= 2.0 <= hi
    assert (
        0.84 <= hits / n_sets <= 0.95
    )  # nominal 0.90 (percentile intervals run a bit short)


def test_p_values_and_normalization():
    reps = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [-0.5, 0.0, 1.0]])
    np.testing.assert_allclose(p_value_not_used(reps), [2 / 4, 1.0, 3 / 4])
    np.testing.assert_allclose(
        normalize_rows(np.array([[1.0, 3.0], [-1.0, 0.0]])),
        [[25, 75], [np.nan, np.nan]],
    )
    with pytest.raises(ValueError, match="level must be in"):
        percentile_interval(reps, 95)


@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal_classification(
        n_samples=120, n_features=(4, 3), informativeness=(1.0, 0.4), random_state=0
    )
    clf = MultimodalClassifier(max_epochs=15, random_state=0).fit(X, y)
    return clf, X, y


def _rows(X, idx):
    return {m: v[idx] for m, v in X.items()}


def test_permutation_replicates_equal_resampled_per_row_losses(fitted):
    clf, X, y = fitted
    expl = PermutationModalityImportance(
        n_repeats=3, random_state=0, n_bootstrap=B
    ).explain(clf, X, y)
    # per-row losses of every perturbation, by hand (full forward passes)
    rng = np.random.RandomState(0)
    perms = [rng.permutation(len(y)) for _ in range(3)]
    module = clf.module_.eval()
    yt = torch.as_tensor(y)

    def losses(Xp):
        with torch.no_grad():
            out = module(**{m: torch.as_tensor(v) for m, v in Xp.items()})
        return torch.nn.functional.cross_entropy(out, yt, reduction="none").numpy()

    base = losses(X)
    permuted = np.array(
        [[losses({**X, m: X[m][p]}) for p in perms] for m in X]
    )  # (M, R, N)
    for b, idx in enumerate(_direct_indices(len(y), B, 0)):
        want = (permuted[:, :, idx].mean(axis=2) - base[idx].mean()).mean(axis=1)
        np.testing.assert_allclose(expl.bootstrap_values[b], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        expl.bootstrap_shares, normalize_rows(expl.bootstrap_values)
    )
    assert expl.params["n_bootstrap"] == B and expl.params["bootstrap_seed"] == 0
    ci = expl.confidence_interval(0.9)
    assert ci.shape == (2, 2) and np.all(ci[:, 0] <= ci[:, 1])
    # without n_bootstrap: a clear refusal
    plain = PermutationModalityImportance(n_repeats=1, random_state=0).explain(
        clf, X, y
    )
    with pytest.raises(ValueError, match="explain it with n_bootstrap=1000"):
        plain.confidence_interval()


def test_conditional_replicates_equal_explaining_the_resampled_rows(fitted):
    """With the reference fixed, a replicate is the explanation of the resampled rows."""
    clf, X, y = fitted
    expl = ConditionalUtilization(reference=X, n_bootstrap=B, random_state=2).explain(
        clf, X, y
    )
    for b, idx in enumerate(_direct_indices(len(y), B, 2)[:5]):
        direct = ConditionalUtilization(reference=X).explain(clf, _rows(X, idx), y[idx])
        np.testing.assert_allclose(expl.bootstrap_values[b], direct.rates, atol=1e-12)
        np.testing.assert_allclose(expl.bootstrap_shares[b], direct.shares, atol=1e-9)


def test_shapley_replicates_equal_explaining_the_resampled_rows(fitted):
    clf, X, y = fitted
    expl = ModalityShapley().explain(clf, X, y)
    reps = expl.replicates(of="values", n_resamples=B, random_state=4)
    for b, idx in enumerate(_direct_indices(len(y), B, 4)[:5]):
        direct = ModalityShapley().explain(clf, _rows(X, idx), y[idx])
        np.testing.assert_allclose(reps[b], direct.mean_values, atol=1e-12)
    assert expl.confidence_interval(of="values").shape == (2, 2)


def test_attribution_intervals_leave_undefined_rows_out(fitted):
    clf, X, y = fitted
    expl = GradientModalityAttribution().explain(clf, X, y)
    reps = expl.replicates(n_resamples=B, random_state=1)
    ss = expl.sample_shares * 100
    for b, idx in enumerate(_direct_indices(len(y), B, 1)[:5]):
        rows = ss[idx]
        rows = rows[np.isfinite(rows).all(axis=1)]
        np.testing.assert_allclose(reps[b], rows.mean(axis=0))


def test_an_ignored_modality_has_p_value_one(fitted):
    clf, X, y = fitted
    ignored = MultimodalClassifier(max_epochs=1, random_state=0).fit(X, y)
    with torch.no_grad():  # the head never sees the second modality
        head = ignored.module_.head
        layer = head if isinstance(head, torch.nn.Linear) else head[0]
        sl = ignored.module_.embedding_slices()[list(X)[1]]
        layer.weight[:, sl] = 0.0
    for expl in (
        PermutationModalityImportance(n_repeats=2, random_state=0, n_bootstrap=B),
        ConditionalUtilization(n_bootstrap=B, random_state=0, ablation="mean"),
    ):
        p = expl.explain(ignored, X, y).p_values()
        assert p[1] == 1.0
    strong = PermutationModalityImportance(
        n_repeats=2, random_state=0, n_bootstrap=B
    ).explain(clf, X, y)
    assert strong.p_values()[0] == pytest.approx(1 / (B + 1))


def test_paired_comparison(fitted):
    clf, X, y = fitted
    pim = PermutationModalityImportance(n_repeats=2, random_state=0, n_bootstrap=B)
    a = pim.explain(clf, X, y)
    same = paired_comparison(a, pim.explain(clf, X, y))
    np.testing.assert_array_equal(same["difference"], 0.0)
    np.testing.assert_array_equal(same["p_value"], 1.0)
    other = MultimodalClassifier(max_epochs=1, random_state=1).fit(X, y)
    table = paired_comparison(a, pim.explain(other, X, y), of="values")
    assert list(table.index) == list(a.modalities)
    assert set(table.columns) == {"a", "b", "difference", "low", "high", "p_value"}
    np.testing.assert_allclose(table["difference"], table["a"] - table["b"])
    with pytest.raises(ValueError, match="resampled differently"):
        paired_comparison(
            a,
            PermutationModalityImportance(
                n_repeats=2, random_state=1, n_bootstrap=B
            ).explain(clf, X, y),
        )
    with pytest.raises(ValueError, match="cannot compare a permutation"):
        paired_comparison(a, ModalityShapley().explain(clf, X, y))
    with pytest.raises(ValueError, match="same rows"):
        paired_comparison(a, pim.explain(clf, _rows(X, slice(0, 60)), y[:60]))


def test_refusals(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match="adds up over rows"):
        PermutationModalityImportance(
            scoring="roc_auc", n_bootstrap=10, random_state=0
        ).explain(clf, X, y)
    with pytest.raises(ValueError, match="not available with class_index"):
        PermutationModalityImportance(class_index=0, n_bootstrap=10).explain(clf, X, y)
    expl = PermutationModalityImportance(
        n_repeats=1, random_state=0, n_bootstrap=10
    ).explain(clf, X, y)
    with pytest.raises(ValueError, match="holds 10 bootstrap replicates"):
        expl.confidence_interval(n_resamples=20)
    with pytest.raises(ValueError, match="of must be 'shares' or 'values'"):
        expl.confidence_interval(of="rates")
