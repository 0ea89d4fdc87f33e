"""
Out-of-core data: train and explain from a folder of image tiles
================================================================

Real multimodal data sets rarely fit in memory: satellite scenes, medical
volumes and video come as folders of files, one per sample and modality.
mmexplain's estimators and explainers accept any map-style
``torch.utils.data.Dataset`` whose items are ``({modality: tensor}, target)``
in place of ``X``, and read the rows lazily, batch by batch:

1. write a folder of ``.npy`` tiles, one file per sample and modality (the
   colour and gray images of :func:`~mmexplain.datasets.make_colored_digits`),
   plus the labels;
2. a ``Dataset`` that loads one tile per modality in ``__getitem__``;
3. ``MultimodalClassifier(...).fit(dataset, None)`` (the targets come from
   the items), ``predict(dataset)``;
4. the four explainers on
   :class:`~mmexplain.data.sources.DatasetSource` ``(dataset, num_workers=2)``:
   two worker processes load the tiles while the model runs;
5. the same four explanations on the same rows held in memory: the numbers
   are equal (float32 rounding at most), and so are the trained weights.

Memory-mapped arrays (``np.load(path, mmap_mode='r')``) work the same way as
``X`` values, without a Dataset: rows are read per batch, never the whole
array.

What to look for in the output
------------------------------
* ``max |difference|`` between the Dataset and the in-memory run is 0 or
  at float32 rounding (< 1e-5) for the weights, the predictions and every
  explainer.
* The training colours predict the label 80% of the time, the test colours
  are random (as in :doc:`colored_digits_conditional`), so the test accuracy
  is moderate (about 0.6) and, on the test tiles, the four explainers agree
  that the network's useful modality is ``gray`` (the digit's shape):
  shuffling ``color`` across the test set costs nothing (permutation share
  about 0), ``gray`` gets about 70-100% of every explainer's share.
* One figure: the four explainers' shares side by side.

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figure is also written there as a PNG file.
MMEXPLAIN_QUICK
    ``1`` writes 200 tiles per modality and trains for 2 epochs (a smoke test
    that runs in seconds; the numbers are then not meaningful).
"""

import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmexplain import MultimodalClassifier
from mmexplain.data.sources import DatasetSource
from mmexplain.datasets import make_colored_digits
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)

QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
pd.set_option("display.width", 120)
pd.set_option("display.precision", 4)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# A folder of tiles
# -----------------
# One ``.npy`` file per sample and modality, ``<root>/<modality>/<i>.npy``,
# and the labels in ``<root>/labels.npy``. Here the tiles come from the
# colored-digits data (``color``: 3x8x8, ``gray``: 1x8x8); with your own
# data the folder already exists.
X_train, y_train, X_test, y_test = make_colored_digits(
    train_correlation=0.8, random_state=0
)
n_train = 200 if QUICK else 600
n_test = 100 if QUICK else len(y_test)
X_train, y_train = X_train[:n_train], y_train[:n_train]
X_test, y_test = X_test[:n_test], y_test[:n_test]


def write_tiles(root, X, y):
    for m, images in X.items():
        (root / m).mkdir(parents=True)
        for i, tile in enumerate(np.asarray(images, dtype=np.float32)):
            np.save(root / m / f"{i:05d}.npy", tile)
    np.save(root / "labels.npy", np.asarray(y))


tmp = tempfile.TemporaryDirectory(prefix="mmexplain_tiles_")
root = Path(tmp.name)
write_tiles(root / "train", X_train, y_train)
write_tiles(root / "test", X_test, y_test)
print(
    f"wrote {n_train} training and {n_test} test tiles per modality "
    f"({', '.join(f'{m} {X_train[m].shape[1:]}' for m in X_train.modalities)}) "
    f"to {root}"
)

# %%
# A Dataset that reads the tiles lazily
# -------------------------------------
# ``__getitem__`` loads one file per modality and returns ``({modality:
# tensor}, label)``: skorch's item convention, which mmexplain reads. Nothing
# is loaded up front; keep the class at module level so that worker
# processes can use it.


class TileFolder(Dataset):
    """``<root>/<modality>/<i>.npy`` tiles and ``<root>/labels.npy``."""

    def __init__(self, root, modalities=("color", "gray")):
        self.root, self.modalities = Path(root), tuple(modalities)
        self.labels = np.load(self.root / "labels.npy")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        X = {
            m: torch.from_numpy(np.load(self.root / m / f"{i:05d}.npy"))
            for m in self.modalities
        }
        return X, int(self.labels[i])


train_ds, test_ds = TileFolder(root / "train"), TileFolder(root / "test")
X0, y0 = train_ds[0]
print(f"item 0: { ({m: tuple(v.shape) for m, v in X0.items()}) }, label {y0}")

# %%
# Train and predict on the Dataset
# --------------------------------
# ``fit(dataset, None)`` reads the targets from the items and trains with a
# ``DataLoader`` over the Dataset (``iterator_train__num_workers=...`` adds
# loader processes); the batches are the ones an in-memory fit draws with the
# same ``random_state``, so the weights are the same too.
params = dict(max_epochs=2 if QUICK else 15, lr=0.01, random_state=0)
clf = MultimodalClassifier(**params).fit(train_ds, None)
y_pred = clf.predict(test_ds)
print(f"test accuracy (from the tiles): {np.mean(y_pred == y_test):.3f}")

clf_memory = MultimodalClassifier(**params).fit(X_train, y_train)
reference = clf_memory.module_.state_dict()
weight_diff = max(
    float((w - reference[k]).abs().max()) for k, w in clf.module_.state_dict().items()
)
proba_diff = float(np.abs(clf.predict_proba(test_ds) - clf.predict_proba(X_test)).max())
print(f"max |difference| Dataset vs in-memory fit: weights {weight_diff:.1e}")
print(f"max |difference| predict_proba(Dataset) vs in memory: {proba_diff:.1e}")

# %%
# Explain on the Dataset
# ----------------------
# :class:`~mmexplain.data.sources.DatasetSource` wraps the Dataset for the
# explainers; ``num_workers=2`` loads the tiles in two worker processes. A
# whole-set permutation stays exact: the explainers read rows by index, so
# sample ``n`` takes a modality from row ``perm[n]`` wherever it is stored.
# The targets come from the items (``y=None``).
explainers = {
    "permutation": lambda: PermutationModalityImportance(n_repeats=5, random_state=0),
    "conditional": lambda: ConditionalUtilization(),
    "Shapley": lambda: ModalityShapley(),
    "gradient x input": lambda: GradientModalityAttribution(),
}
source = DatasetSource(test_ds, num_workers=2)
on_disk = {}
for name, make in explainers.items():
    t0 = time.perf_counter()
    on_disk[name] = make().explain(clf, source, None)
    print(f"\n{name} (from the tiles, {time.perf_counter() - t0:.2f} s)")
    print(on_disk[name].to_frame())

# %%
# The same rows in memory
# -----------------------
# The arrays the tiles were written from, explained by the same fitted model:
# every number matches.
fields = ("shares", "importances", "rates", "values", "sample_shares")
rows = []
for name, make in explainers.items():
    in_memory = make().explain(clf, X_test, y_test)
    diffs = [
        float(
            np.max(
                np.abs(np.asarray(getattr(on_disk[name], f)) - getattr(in_memory, f))
            )
        )
        for f in fields
        if getattr(in_memory, f, None) is not None
    ]
    rows.append({"explainer": name, "max |difference|": max(diffs)})
print()
print(pd.DataFrame(rows).to_string(index=False))
print(
    f"max |difference| over all explainers: {max(r['max |difference|'] for r in rows):.1e}"
)

# %%
# Figure: the four explainers on the tiles
# ----------------------------------------
# Each panel is ``ModalityExplanation.plot(ax=...)`` (error bars where the
# explainer has repeats or sampling).
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), sharey=True)
for ax, (name, explanation) in zip(axes, on_disk.items()):
    explanation.plot(ax=ax, title=name)
    ax.set_xlabel("")
    ax.set_ylim(0, 112)  # room for the value labels above 100% bars
for ax in axes[1:]:
    ax.set_ylabel("")
fig.suptitle("Modality shares, explained from a folder of tiles")
fig.tight_layout()
save(fig, "out_of_core_explainers.png")

tmp.cleanup()
print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
