"""
A duplicated modality: the split depends on the seed
====================================================

What does a utilization metric say when two modalities carry *exactly* the
same information? Singh et al. (2023, Fig. 5) train an EO/SAR network on two
identical copies of the EO images instead and find that the modality
utilization (MU) of the copies is decided by the network's random
initialization: nothing in the data prefers one copy.

This example repeats that experiment on an EO stand-in from
:func:`~mmexplain.datasets.make_multimodal_classification`: the modalities
``'eo'`` and ``'eo_copy'`` hold the same array. One late-fusion
:class:`~mmexplain.MultimodalClassifier` is trained per seed (the seed sets
the initialization and the batch order), and on the test split we measure

* the permutation utilization of each copy
  (:class:`~mmexplain.explainers.PermutationModalityImportance`, 10
  repeats): how much the loss rises when *this* copy is shuffled, and
* the conditional utilization rates
  (:class:`~mmexplain.explainers.ConditionalUtilization`, mean-embedding
  ablation with the training split as reference): the relative accuracy lost
  when one copy is removed, given the other, ``u(eo | eo_copy)`` and
  ``u(eo_copy | eo)``,

and, as a reference, the test accuracy of a network trained on a single
copy.

What to look for
----------------
* Every seed reaches about the accuracy of the single-copy network (about
  0.70): the second copy adds no information.
* The permutation split varies from seed to seed, from about 35/65 to about
  65/35, in both directions: **a utilization share describes one trained
  network, not the data**. With perfectly redundant modalities it is set by
  the initialization (the paper's Fig. 5).
* The conditional view of the same networks: both rates are small (about
  0.02-0.2: removing one copy's sample-specific information costs a few to
  twenty percent of the accuracy), and in most seeds the copy with the
  larger permutation share also has the larger rate. The fusion head was
  trained with both copies, so it does not fall back on the other copy
  completely even though it holds the same information. Permutation MU asks
  "how much does the loss depend on this input?", conditional utilization
  "how much accuracy would be lost without it, given the rest?".
* Mean over the seeds the split is close to 50/50, as it must be by
  symmetry.

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` trains 2 seeds for 3 epochs on 400 samples (a smoke test that runs
    in seconds; the numbers are then not meaningful).
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

from mmexplain import ModalityDict, MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import ConditionalUtilization, PermutationModalityImportance

torch.set_num_threads(1)
QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
SEEDS = [0, 1] if QUICK else list(range(8))
EPOCHS = 3 if QUICK else 30
pd.set_option("display.width", 120)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Data: two identical copies of one modality
# ------------------------------------------
X1, y = make_multimodal_classification(
    400 if QUICK else 2000,
    n_classes=4,
    modalities=["eo"],
    n_features=16,
    noise=0.5,
    random_state=0,
)
X = ModalityDict(eo=X1["eo"], eo_copy=X1["eo"].copy())
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)
print("train:", X_train)
print("the copies are equal:", np.array_equal(X_train["eo"], X_train["eo_copy"]))

kw = dict(max_epochs=EPOCHS, lr=1e-3, module__embedding_dim=16)
single = MultimodalClassifier(random_state=0, **kw).fit({"eo": X_train["eo"]}, y_train)
single_acc = single.score({"eo": X_test["eo"]}, y_test)
print(f"one copy only: test accuracy {single_acc:.3f}")

# %%
# One network per seed, two views of its utilization
# --------------------------------------------------
pmi = PermutationModalityImportance(n_repeats=10, random_state=0)
cu = ConditionalUtilization(reference=X_train)
rows, permutation = [], {}
for seed in SEEDS:
    clf = MultimodalClassifier(random_state=seed, **kw).fit(X_train, y_train)
    mu = pmi.explain(clf, X_test, y_test)
    cond = cu.explain(clf, X_test, y_test)
    permutation[f"seed {seed}"] = mu
    rows.append(
        {
            "seed": seed,
            "accuracy": clf.score(X_test, y_test),
            "MU eo %": mu.utilization[0],
            "MU eo_copy %": mu.utilization[1],
            "u(eo | eo_copy)": cond.rates[0],
            "u(eo_copy | eo)": cond.rates[1],
        }
    )
table = pd.DataFrame(rows).set_index("seed")
print(table.round(3).to_string())
print("\nmean over seeds:")
print(table.mean().round(3).to_string())
print(
    f"\nspread of MU(eo) over seeds: {table['MU eo %'].min():.1f}% .. "
    f"{table['MU eo %'].max():.1f}%"
)

# %%
# Figure: permutation utilization and accuracy per seed (Fig. 5)
# --------------------------------------------------------------
fig, (ax_mu, ax_acc) = plt.subplots(
    1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]}
)
x = np.arange(len(SEEDS))
err = np.array([permutation[f"seed {s}"].share_errors() for s in SEEDS])
ax_mu.bar(x, table["MU eo %"], yerr=err[:, 0], capsize=3, label="eo")
ax_mu.bar(
    x, table["MU eo_copy %"], bottom=table["MU eo %"], color="C1", label="eo_copy"
)
ax_mu.axhline(50, color="black", ls="--", lw=0.8)
ax_mu.set_xticks(x, [f"seed {s}" for s in SEEDS], rotation=30)
ax_mu.set_ylim(0, 100)
ax_mu.set_ylabel("permutation utilization (%)")
ax_mu.set_title("Two identical copies: the split depends on the seed")
ax_mu.legend(loc="lower right", fontsize=8)
ax_acc.bar(x, table["accuracy"], color="C2")
ax_acc.axhline(single_acc, color="black", ls="--", lw=0.8, label="one copy only")
ax_acc.set_xticks(x, [f"{s}" for s in SEEDS])
ax_acc.set_xlabel("seed")
lo = float(min(table["accuracy"].min(), single_acc))
ax_acc.set_ylim(max(0.0, lo - 0.1), min(1.0, lo + 0.2))
ax_acc.set_ylabel("test accuracy")
ax_acc.set_title("Accuracy (y axis zoomed)")
ax_acc.legend(fontsize=8)
fig.tight_layout()
save(fig, "duplicated_modality.png")

# %%
# Figure: the conditional view of the same networks
# -------------------------------------------------
# A rate near 0 means "this copy adds little given the other one".
fig, ax = plt.subplots(figsize=(8, 3.8))
for k, col in enumerate(["u(eo | eo_copy)", "u(eo_copy | eo)"]):
    ax.bar(x + (k - 0.5) * 0.38, table[col], width=0.38, label=col)
ax.axhline(0, color="black", lw=0.8)
ax.set_xticks(x, [f"seed {s}" for s in SEEDS], rotation=30)
ax.set_ylabel("conditional utilization rate")
ax.set_title("Relative accuracy lost without one copy, given the other")
ax.legend(fontsize=8)
fig.tight_layout()
save(fig, "duplicated_modality_conditional.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
