"""
How sure is a modality share? Intervals, p-values, classes, interactions, seeds
===============================================================================

A share such as "morphological: 60% of the model's use" is measured on one
network and one set of samples. This example puts on the bundled UCI
Multiple Features data (2000 handwritten digits described by six feature
sets) every statistic a reviewer asks for:

1. **intervals over the samples**: 95% bootstrap intervals of each
   modality's permutation utilization, from 1000 resamples of the test rows
   (no extra model call: the per-row losses of every permutation are kept and
   re-weighted);
2. **p-values** of "this modality is not used" (one-sided bootstrap test);
3. **the per-class picture**: utilization within each digit class, from the
   same permutations;
4. **modality interactions**: the pairwise Shapley interaction index of each
   pair of feature sets (positive: a pair adds more together than apart;
   negative: redundancy);
5. **the spread over trainings**: three folds x two seeds with
   :func:`~mmexplain.model_selection.cross_explain`, training and held-out
   utilization side by side;
6. **a paired comparison**: a model trained with
   :class:`~mmexplain.balancers.ModalityDropout` against its control, on the
   same test rows.

What to look for
----------------
Every statement below is printed by the script from its own run.

* The interval widths: a few points for the feature sets the model leans on;
  a set that barely matters has an interval touching 0 and a large p-value.
* Per class: the feature set a digit relies on changes with the digit.
* Interactions: the six feature sets describe the same digits, so some
  pairs are redundant (negative index: either can stand in for the other)
  and some are synergistic (positive: they add more together than apart);
  the script names the most synergistic and the most redundant pair.
* Over folds and seeds the shares move by more than the bootstrap interval
  of one model says (the script prints both spreads): training randomness
  is a second, separate source of variation.
* Modality dropout moves the use between feature sets; the paired
  differences (and their p-values) say which shifts are beyond sampling
  noise on these test rows.

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` trains for 2 epochs on 400 samples with 50 resamples (a smoke test
    that runs in seconds; the numbers are then not meaningful).
"""

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from mmexplain import MultimodalClassifier
from mmexplain.balancers import ModalityDropout
from mmexplain.datasets import load_multiple_features
from mmexplain.explainers import ModalityShapley, PermutationModalityImportance
from mmexplain.model_selection import cross_explain
from mmexplain.statistics import paired_comparison

torch.set_num_threads(1)  # tiny networks: one thread is fastest, even on a busy machine
QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
EPOCHS = 2 if QUICK else 15
RESAMPLES = 50 if QUICK else 1000
pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)
pd.set_option("display.max_columns", 10)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


X, y = load_multiple_features()
if QUICK:
    keep = np.random.default_rng(0).permutation(len(y))[:400]
    X, y = {m: v[keep] for m, v in X.items()}, y[keep]
rows = np.arange(len(y))
train, test = train_test_split(rows, test_size=0.3, stratify=y, random_state=0)
X_train, y_train = {m: v[train] for m, v in X.items()}, y[train]
X_test, y_test = {m: v[test] for m, v in X.items()}, y[test]


def classifier(**kw):
    return MultimodalClassifier(
        max_epochs=EPOCHS, lr=3e-3, batch_size=64, random_state=0, **kw
    )


clf = classifier().fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")

# %%
# 1-3. Intervals, p-values and the per-class picture, in one explain
# ------------------------------------------------------------------
# ``n_bootstrap`` keeps every permutation's per-row losses and resamples the
# test rows; ``per_class`` sums the same per-row losses per digit class.
explainer = PermutationModalityImportance(
    n_repeats=5, random_state=0, n_bootstrap=RESAMPLES, per_class=True
)
mu = explainer.explain(clf, X_test, y_test)
ci = mu.confidence_interval(0.95)
table = pd.DataFrame(
    {
        "share %": mu.shares,
        "95% low": ci[:, 0],
        "95% high": ci[:, 1],
        "p (not used)": mu.p_values(),
    },
    index=pd.Index(mu.modalities, name="modality"),
)
print(table)

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
lower = mu.shares - ci[:, 0]
upper = ci[:, 1] - mu.shares
axes[0].bar(mu.modalities, mu.shares, yerr=np.vstack([lower, upper]), capsize=4)
axes[0].set_ylabel("share of the model's use (%)")
axes[0].set_title(f"Permutation utilization, 95% bootstrap intervals ({RESAMPLES})")
axes[0].tick_params(axis="x", rotation=30)
mu.plot(ax=axes[1], kind="classes")
fig.tight_layout()
save(fig, "how_sure_intervals_classes.png")

# %%
# 4. Modality interactions
# ------------------------
# Exact Shapley values over the 64 coalitions of the six feature sets give,
# from the same coalition values, the Shapley interaction index of every pair.
shapley = ModalityShapley(interactions=True).explain(clf, X_test, y_test)
pairs = pd.DataFrame(
    shapley.interactions, index=shapley.modalities, columns=shapley.modalities
)
print("\nmean pairwise Shapley interaction index (true-class probability):")
print(pairs)
upper = np.triu_indices(len(shapley.modalities), k=1)
order = np.argsort(shapley.interactions[upper])
lo_pair, hi_pair = order[0], order[-1]
names = np.array(shapley.modalities)
print(
    f"most redundant pair: {names[upper[0][lo_pair]]} + {names[upper[1][lo_pair]]} "
    f"({shapley.interactions[upper][lo_pair]:+.3f}); most synergistic: "
    f"{names[upper[0][hi_pair]]} + {names[upper[1][hi_pair]]} "
    f"({shapley.interactions[upper][hi_pair]:+.3f})"
)
fig, ax = plt.subplots(figsize=(8, 6))
shapley.plot(ax=ax, kind="interactions")
fig.tight_layout()
save(fig, "how_sure_interactions.png")

# %%
# 5. Over folds and seeds: the variation one model does not show
# ---------------------------------------------------------------
spread = cross_explain(
    classifier(),
    X,
    y,
    PermutationModalityImportance(n_repeats=3, random_state=0),
    cv=3,
    seeds=1 if QUICK else 2,
    explain_train=True,
)
print("\nshares over folds and seeds (held-out, and train):")
print(spread.summary()[["mean", "std", "min", "max", "train_mean", "gap"]])
top = int(np.argmax(mu.shares))
print(
    f"{mu.modalities[top]}: std over {spread.shares[..., top].size} trainings "
    f"{spread.shares_std[top]:.1f} points; one model's 95% bootstrap interval "
    f"half-width {(ci[top, 1] - ci[top, 0]) / 2:.1f} points"
)
fig, ax = plt.subplots(figsize=(10, 4))
spread.plot(ax=ax)
ax.tick_params(axis="x", rotation=30)
fig.tight_layout()
save(fig, "how_sure_spread.png")

# %%
# 6. A balancer against its control, on the same test rows
# --------------------------------------------------------
dropped = classifier(balancer=ModalityDropout(p=0.3)).fit(X_train, y_train)
with_dropout = explainer.explain(dropped, X_test, y_test)
comparison = paired_comparison(with_dropout, mu)
print("\nModalityDropout(p=0.3) minus control, shares in points:")
print(comparison)
print(f"\ndone in {time.perf_counter() - start:.0f} s")
