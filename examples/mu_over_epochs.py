"""
Modality utilization over training epochs
=========================================

Singh et al. (2023, Fig. 4) follow the modality utilization (MU) of an EO/SAR
classification network *while it trains*, with half of the EO images blacked
out, to show that the metric can track how a network's reliance on its
modalities develops. This example runs that experiment with
:class:`~mmexplain.callbacks.UtilizationHistory`, a skorch callback that runs
an explainer on fixed data after every epoch and records the shares in
``net.history``.

The data are an EO/SAR stand-in from
:func:`~mmexplain.datasets.make_multimodal_classification`: two tabular
modalities that see the same class evidence (``shared=1``), ``'eo'`` with
twice the signal of ``'sar'``, so EO alone is the more accurate view, as in
the paper. Two late-fusion networks are trained for 30 epochs, one on clean
data and one with 50% of the EO rows blacked out
(:func:`~mmexplain.datasets.blackout`, in the training *and* the test split,
as in the paper). After every epoch ``UtilizationHistory`` measures the
permutation utilization
(:class:`~mmexplain.explainers.PermutationModalityImportance`, 3 repeats) on
the test split, and a three-line callback records the test accuracy.

What to look for
----------------
* Clean data: EO has about 80% of the use after the first epoch and about 90%
  from the third on; SAR keeps about 10%, as it adds little the network does
  not already get from EO.
* 50% EO blackout: the split stays near 50/50 for the first three epochs,
  then EO's share grows to about 60% by epoch 10 and stays there. For the
  blacked-out half only SAR carries the label, so SAR keeps about 40%, four
  times its share on clean data.
* Test accuracy peaks around epochs 5-10 (about 0.75 clean, 0.66 with the
  blackout) and then falls slightly as the networks overfit; the utilization
  curves are flat by then. The blacked-out model ends below the clean one,
  since for half of the samples only the weaker view is left.
* The callback is read-only: it never changes what is trained
  (``every=k`` measures every k-th epoch when an explanation is costly).

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` trains for 3 epochs on 400 samples (a smoke test that runs in
    seconds; the numbers are then not meaningful).
"""

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback

from mmexplain import MultimodalClassifier
from mmexplain.callbacks import UtilizationHistory
from mmexplain.datasets import blackout, make_multimodal_classification
from mmexplain.explainers import PermutationModalityImportance
from mmexplain.plotting import plot_utilization_history

torch.set_num_threads(1)
QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
EPOCHS = 3 if QUICK else 30
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Data: EO twice as informative as SAR, same class evidence
# ----------------------------------------------------------
X, y = make_multimodal_classification(
    400 if QUICK else 4000,
    n_classes=4,
    modalities=["eo", "sar"],
    informativeness=[1.0, 0.5],
    n_features=[16, 16],
    shared=1.0,
    noise=0.5,
    random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)
data = {
    "clean": (X_train, X_test),
    # 50% of the EO rows set to 0, drawn independently in each split
    "50% EO blackout": (
        blackout(X_train, "eo", 0.5, random_state=1),
        blackout(X_test, "eo", 0.5, random_state=2),
    ),
}
print("train:", X_train)


# %%
# Callbacks: utilization and test accuracy after every epoch
# ----------------------------------------------------------
# ``UtilizationHistory(explainer, X, y)`` records
# ``{modality: share in percent}`` under ``'utilization'``; any explainer
# works. A skorch ``Callback`` with ``on_epoch_end`` records anything else.
class TestAccuracy(Callback):
    """Record the accuracy on (X, y) as ``'test_acc'`` after every epoch."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def on_epoch_end(self, net, **kwargs):
        net.history.record("test_acc", net.score(self.X, self.y))


models = {}
for name, (Xtr, Xte) in data.items():
    t0 = time.perf_counter()
    models[name] = MultimodalClassifier(
        max_epochs=EPOCHS,
        lr=1e-3,
        random_state=0,
        module__embedding_dim=16,
        callbacks=[
            UtilizationHistory(
                PermutationModalityImportance(n_repeats=3, random_state=0),
                Xte,
                y_test,
            ),
            TestAccuracy(Xte, y_test),
        ],
    ).fit(Xtr, y_train)
    print(f"trained {name!r} in {time.perf_counter() - t0:.1f} s")

# %%
# The recorded history
# --------------------
# ``net.history[:, 'utilization']`` is the list of per-epoch dicts.
rows = []
for name, clf in models.items():
    for h in clf.history:
        rows.append(
            {
                "run": name,
                "epoch": h["epoch"],
                "MU eo %": h["utilization"]["eo"],
                "MU sar %": h["utilization"]["sar"],
                "test acc": h["test_acc"],
            }
        )
table = pd.DataFrame(rows).set_index(["run", "epoch"])
picks = sorted({1, 2, 3, 5, 10, 20, EPOCHS} & set(range(1, EPOCHS + 1)))
print(table.loc[(slice(None), picks), :].round(3).to_string())

# %%
# Figure: MU per epoch (Singh et al. 2023, Fig. 4)
# ------------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, (name, clf) in zip(axes, models.items()):
    plot_utilization_history(clf.history, ax=ax)
    ax.set_title(f"{name}: test MU per epoch")
fig.tight_layout()
save(fig, "mu_over_epochs.png")

# %%
# Figure: test accuracy per epoch
# -------------------------------
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, clf in models.items():
    ax.plot(clf.history[:, "epoch"], clf.history[:, "test_acc"], marker=".", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy")
ax.set_title("Test accuracy while training")
ax.legend()
fig.tight_layout()
save(fig, "mu_over_epochs_accuracy.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
