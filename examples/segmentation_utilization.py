"""
Modality utilization of a multimodal segmentation network (MCubeS-like)
=======================================================================

:func:`~mmexplain.datasets.make_multimodal_segmentation` draws small material
segmentation scenes in the spirit of the MCubeS data set, with four
modalities that carry different material cues. With the default four
classes (asphalt, vegetation, metal, plastic):

* ``rgb`` (3 channels) and ``nir`` (1 channel) both separate asphalt,
  vegetation and metal-or-plastic, so they are largely **redundant**, but
  neither tells metal from plastic;
* ``dolp`` (degree of linear polarization) is high for metal only, so it is
  the modality that **separates metal from plastic**;
* ``aolp`` (angle of polarization) is 0.25 for metal and uniformly random for
  the other materials: mostly noise.

The example trains a :class:`~mmexplain.MultimodalSegmenter` (a late-fusion
UNet-style network, :class:`~mmexplain.LateFusionSegNet`, built from the
data), reports the test mean IoU and per-class IoU, and measures each
modality's permutation utilization twice, with ``scoring='loss'`` (per-pixel
cross-entropy) and ``scoring='miou'``, then per class and per pixel (the same
shuffling, done by hand, scored per class and per pixel). It then runs an
RGB-blackout sweep in
the spirit of Singh et al. (2023): a fraction ``p`` of the test images
have their RGB input set to 0 (:func:`~mmexplain.datasets.blackout`), and the
unchanged model is scored again.

What to look for in the output
------------------------------
* Test mIoU of about 0.95, and the per-class IoU.
* Utilization: ``rgb``, ``dolp`` and ``nir`` share the use (``'loss'``:
  rgb and dolp about 38% each, nir 25%) and ``aolp``, mostly noise, gets
  almost nothing. The two scorings agree here; they need not in general: the
  loss weights every pixel's confidence, the mIoU weights classes equally.
* ``segmentation_utilization.png``: the utilization bars for both scorings.
* Per class (the same shuffling, scored by each class's IoU): ``dolp``
  carries most of the use for metal and a third for plastic, ``nir`` most
  of it for vegetation and a share of asphalt, ``rgb`` the largest share of
  plastic and a share of everything, ``aolp`` nothing. The
  one-number-per-modality utilization averages over these very different
  per-class pictures.
* The per-pixel maps of one test scene show the same thing spatially:
  shuffling ``dolp`` raises the loss on metal and plastic objects, shuffling
  ``nir`` on vegetation, shuffling ``rgb`` on plastic and vegetation, and
  shuffling ``aolp`` nowhere.
* The blackout sweep (``segmentation_rgb_blackout.png``): mIoU falls as more
  test images lose their RGB input (from about 0.95 to about 0.72 at
  ``p = 1``); NIR and DoLP carry part of the same information, so the
  network does not collapse, but it was never trained without RGB and does
  not fall back on them fully. The right panel shows RGB's utilization
  measured on the blacked-out test data: it falls with ``p`` and is exactly
  0 at ``p = 1``, where every RGB input is the same black image and
  shuffling them changes nothing. The metric follows the information RGB
  actually carries (see :doc:`blackout_sweep` for the paper's version, with
  a new network trained at every level).

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` uses a few 16x16 images and one epoch (a smoke test that runs in
    seconds; the numbers are then not meaningful).
"""

import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmexplain import MultimodalSegmenter
from mmexplain.datasets import blackout, make_multimodal_segmentation
from mmexplain.explainers import PermutationModalityImportance
from mmexplain.metrics import confusion_counts
from mmexplain.plotting import (
    plot_class_scores,
    plot_class_utilization,
    plot_label_maps,
    plot_metric_vs_corruption,
    plot_pixel_maps,
)

QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
CLASSES = ["asphalt", "vegetation", "metal", "plastic"]
BLACKOUT_P = [0.0, 0.25, 0.5, 0.75, 1.0]
pd.set_option("display.width", 120)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Data: independent training and test scenes
# ------------------------------------------
size = 16 if QUICK else 24
X_train, y_train = make_multimodal_segmentation(
    n_samples=16 if QUICK else 128, image_size=size, random_state=0
)
X_test, y_test = make_multimodal_segmentation(
    n_samples=8 if QUICK else 48, image_size=size, random_state=1
)
print("train:", X_train)
print("test: ", X_test)

# %%
# Train
# -----
# ``module=None`` builds a LateFusionSegNet: one small UNet-style encoder per
# modality (``module__channels``), concatenated feature maps, conv decision
# layers of width ``module__embedding_dim``.
seg = MultimodalSegmenter(
    max_epochs=1 if QUICK else 20,
    lr=3e-3,
    batch_size=16,
    module__channels=(8, 16),
    module__embedding_dim=16,
    random_state=0,
)
seg.fit(X_train, y_train)
miou = seg.score(X_test, y_test)
print(f"\ntest mean IoU: {miou:.3f}")
cm = confusion_counts(y_test, seg.predict(X_test), n_classes=len(CLASSES))
union = cm.sum(0) + cm.sum(1) - np.diag(cm)
with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.diag(cm) / union
print("per-class IoU:", ", ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, per_class)))

# %%
# Permutation utilization with two scorings
# -----------------------------------------
# 'loss': mean per-pixel cross-entropy over the test set (the increase when a
# modality's images are shuffled across the test set); 'miou': the drop in
# mean IoU. The encoders run once; only the fusion head is re-evaluated.
explanations = {}
for scoring in ("loss", "miou"):
    explainer = PermutationModalityImportance(
        n_repeats=5, scoring=scoring, random_state=0
    )
    explanations[scoring] = explainer.explain(seg, X_test, y_test)
    e = explanations[scoring]
    print(f"\nscoring={scoring!r} (test {scoring}: {e.baseline_score:.4f})")
    print(e.to_frame().round(4))

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (scoring, e) in zip(axes, explanations.items()):
    e.plot(ax=ax, title=f"Permutation utilization, scoring={scoring!r}")
fig.tight_layout()
save(fig, "segmentation_utilization.png")

# %%
# Per-class IoU
# -------------
fig, ax = plt.subplots(figsize=(6, 3.5))
plot_class_scores(per_class, CLASSES, ax=ax, ylabel="test IoU")
fig.tight_layout()
save(fig, "segmentation_per_class_iou.png")

# %%
# Per-class utilization: Algorithm 1 by hand, one score per class
# ---------------------------------------------------------------
# The explainers report one number per modality. To see *which classes* use
# which modality, apply the same recipe per class: shuffle one modality's
# images across the test set, predict, and record the drop of each class's
# IoU; clip negative drops to 0 and normalize per class, as for MU.
rng = np.random.default_rng(0)
n_repeats = 2 if QUICK else 5
modalities = list(X_test)


def class_iou(pred):
    cm = confusion_counts(y_test, pred, n_classes=len(CLASSES))
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / union


drops = np.zeros((len(modalities), len(CLASSES)))
pixel_loss_increase = {m: 0.0 for m in modalities}
proba = seg.predict_proba(X_test)  # (N, n_classes, H, W)
pixel_loss = -np.log(np.take_along_axis(proba, y_test[:, None], axis=1)[:, 0] + 1e-12)
for i, m in enumerate(modalities):
    for _ in range(n_repeats):
        X_perm = dict(X_test)
        X_perm[m] = X_test[m][rng.permutation(len(y_test))]
        proba_perm = seg.predict_proba(X_perm)
        drops[i] += (per_class - class_iou(proba_perm.argmax(1))) / n_repeats
        loss_perm = -np.log(
            np.take_along_axis(proba_perm, y_test[:, None], axis=1)[:, 0] + 1e-12
        )
        pixel_loss_increase[m] = (
            pixel_loss_increase[m] + (loss_perm - pixel_loss) / n_repeats
        )
positive = np.clip(np.nan_to_num(drops), 0, None)
with np.errstate(invalid="ignore", divide="ignore"):
    class_shares = 100 * positive / positive.sum(axis=0, keepdims=True)
print("\nIoU drop when a modality is shuffled (rows) per class (columns)")
print(pd.DataFrame(drops, index=modalities, columns=CLASSES).round(3).to_string())
fig, ax = plt.subplots(figsize=(7, 3.5))
plot_class_utilization(
    class_shares,
    modalities,
    CLASSES,
    ax=ax,
    colorbar_label="share of the class's IoU drop (%)",
    title="Per-class utilization (permutation, IoU)",
)
fig.tight_layout()
save(fig, "segmentation_class_utilization.png")

# %%
# Per-pixel maps of one test scene
# --------------------------------
# Top: the RGB input, the ground truth and the prediction. Bottom: the
# per-pixel cross-entropy increase when each modality is shuffled (mean over
# the repeats above): where in the scene the network needs each modality.
k = int(np.argmax([len(np.unique(t)) for t in y_test]))  # a scene with many classes
fig, axes = plt.subplots(2, 4, figsize=(12, 6), layout="constrained")
axes[0, 0].imshow(np.clip(np.moveaxis(X_test["rgb"][k], 0, -1), 0, 1))
axes[0, 0].set_title("rgb input", fontsize=10)
axes[0, 0].set_xticks([])
axes[0, 0].set_yticks([])
plot_label_maps(
    {"ground truth": y_test[k], "prediction": seg.predict(X_test)[k]},
    axes=axes[0, 1:3],
    class_names=CLASSES,
)
axes[0, 3].axis("off")
plot_pixel_maps(
    {f"shuffle {m}": pixel_loss_increase[m][k] for m in modalities},
    axes=axes[1],
    cmap="magma",
    colorbar_label="per-pixel loss increase",
)
fig.suptitle(f"Test scene {k}: where each modality matters")
save(fig, "segmentation_pixel_maps.png")

# %%
# RGB-blackout sweep on the test set
# ----------------------------------
# ``blackout`` returns a new ModalityDict in which round(p * N) test images,
# drawn with a fixed seed, have an all-zero RGB input.
loss_explainer = PermutationModalityImportance(n_repeats=5, random_state=0)
rgb = explanations["loss"].modalities.index("rgb")
mious, rgb_util = [], []
print(f"\n{'p':>5s} {'mIoU':>7s} {'rgb util. %':>12s}")
for p in BLACKOUT_P:
    X_dark = blackout(X_test, "rgb", p, random_state=0)
    mious.append(seg.score(X_dark, y_test))
    rgb_util.append(loss_explainer.explain(seg, X_dark, y_test).utilization[rgb])
    print(f"{p:5.2f} {mious[-1]:7.3f} {rgb_util[-1]:12.1f}")

fig, (ax_miou, ax_util) = plt.subplots(1, 2, figsize=(10, 4))
plot_metric_vs_corruption(
    BLACKOUT_P,
    {"LateFusionSegNet (trained on all modalities)": mious},
    ax=ax_miou,
    xlabel="fraction of test images with RGB blacked out",
    ylabel="test mean IoU",
)
ax_miou.set_title("RGB blackout: segmentation quality")
plot_metric_vs_corruption(
    BLACKOUT_P,
    {"rgb": rgb_util},
    ax=ax_util,
    xlabel="fraction of test images with RGB blacked out",
    ylabel="RGB utilization on the blacked-out data (%)",
)
ax_util.set_ylim(0, 100)
ax_util.set_title("RGB blackout: utilization (scoring='loss')")
fig.tight_layout()
save(fig, "segmentation_rgb_blackout.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
