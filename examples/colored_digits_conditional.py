"""
Greedy learning on colored digits, seen by conditional utilization
==================================================================

:func:`~mmexplain.datasets.make_colored_digits` builds a small
Colored-and-gray-MNIST from scikit-learn's 8x8 digits. Every sample has two
image modalities of the same digit: ``'gray'`` (the digit itself) and
``'color'`` (the digit painted in a colour). In the training split the colour
*is* the label (each class has its own colour); in the validation split the
colour is independent of the label. Colour is the easy shortcut, shape is
what generalizes.

The example trains, without any balancing,

* an MMTM network (:class:`~mmexplain.MMTMNet`: one conv branch per modality,
  MMTM blocks exchanging information between the branches, one head per
  branch, averaged output) on both modalities, as in Wu et al. (2022, seed
  003), and
* a gray-only baseline: a :class:`~mmexplain.MultimodalClassifier` given only
  ``{'gray': ...}``,

and compares their validation accuracy. It then measures the conditional
utilization rates with :class:`~mmexplain.explainers.ConditionalUtilization`
(``ablation='auto'``, which for an MMTM model replaces a modality's MMTM
squeeze vectors by their training averages and scores the *other* branch's
head):

* ``u(color | gray)``: relative accuracy the gray branch loses when the
  colour information is removed;
* ``u(gray | color)``: the same for the colour branch without the gray
  information;
* ``d_util = u(gray | color) - u(color | gray)``.

**Not part of this example:** the greedy-learning *re-balancing* balancer
(Wu et al.'s guided training, ``GreedyBalancer``). This example only shows
the symptom, a network trained the vanilla way, not the cure.

What to look for in the output
------------------------------
* Training accuracy of the MMTM network is 1.0, but its validation accuracy
  is at chance (about 0.09), far below the gray-only baseline (about 0.83).
  The colour shortcut wins even though the gray modality alone generalizes
  well.
* Per-branch validation accuracy: even the *gray* branch's head is near
  chance (about 0.15), because through the MMTM blocks it too has learned to
  read the colour.
* Conditional utilization on the validation split: ``u(gray | color)`` is
  about 0 (the colour branch ignores the gray information), while
  ``u(color | gray)`` is strongly *negative* (about -0.64): removing the
  colour information, which is misleading on validation, raises the gray
  branch's accuracy by more than half (about 0.15 -> 0.25). ``d_util`` is
  about +0.66. A share is defined only for positive rates, so the
  conditional shares put all of it on the one modality with a positive rate.
* The same rates on the training split show the dominance the familiar way:
  ``u(color | gray)`` about +0.77 (the gray branch collapses without the
  colour), ``u(gray | color)`` = 0, ``d_util`` about -0.77. Either way one
  modality, colour, dominates: the greedy-learning symptom.
* ``colored_digits_conditional.png``: validation accuracies (left) and the
  two rates on both splits (right).

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` trains on 300 images for 1 epoch with narrow branches (a smoke test
    that runs in seconds; the numbers are then not meaningful).
"""

import os
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mmexplain import MMTMNet, MultimodalClassifier
from mmexplain.datasets import make_colored_digits
from mmexplain.explainers import ConditionalUtilization

QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
pd.set_option("display.width", 120)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Data
# ----
# X_*: ModalityDict {'color': (N, 3, 8, 8), 'gray': (N, 1, 8, 8)}, values in
# [0, 1]; colour matches the label in training only (val_correlation=0.1 is
# chance level for 10 classes).
X_train, y_train, X_val, y_val = make_colored_digits(random_state=0)
if QUICK:
    X_train, y_train = X_train[:300], y_train[:300]
print("train:", X_train)
print("val:  ", X_val)

# %%
# Vanilla multimodal training of an MMTM network
# ----------------------------------------------
# ``module=MMTMNet``: in_channels and n_classes are filled in from the data.
# During training the loss is the sum of the per-branch losses (Wu et al. 2022).
epochs = 1 if QUICK else 20
mmtm = MultimodalClassifier(
    MMTMNet,
    module__channels=(8, 16) if QUICK else (16, 32, 64),
    max_epochs=epochs,
    random_state=0,
)
mmtm.fit(X_train, y_train)

# %%
# Gray-only baseline
# ------------------
# The same estimator on one modality: module=None builds a conv encoder and
# an MLP head from the data.
gray_only = MultimodalClassifier(max_epochs=epochs, random_state=0)
gray_only.fit({"gray": X_train["gray"]}, y_train)

acc = {
    "MMTM (color + gray), train": mmtm.score(X_train, y_train),
    "MMTM (color + gray), val": mmtm.score(X_val, y_val),
    "gray only, val": gray_only.score({"gray": X_val["gray"]}, y_val),
}
print()
for name, value in acc.items():
    print(f"{name:28s} accuracy {value:.3f}")

# Each branch of the MMTM network has its own head; ``branch_logits`` holds
# the per-branch logits of the last forward pass.
module = mmtm.module_.eval()
with torch.inference_mode():
    module(**{m: torch.as_tensor(X_val[m]) for m in X_val})
for m, logits in module.branch_logits.items():
    branch_acc = float(np.mean(logits.argmax(dim=1).numpy() == y_val))
    print(f"{'  ' + m + ' branch head, val':28s} accuracy {branch_acc:.3f}")

# %%
# Conditional utilization rates
# -----------------------------
# ablation='auto' -> 'mmtm' for an MMTMNet. rates = [u(color|gray),
# u(gray|color)] in modality order; d_util = u(gray|color) - u(color|gray).
rates = {}
for split, (X, y) in {"val": (X_val, y_val), "train": (X_train, y_train)}.items():
    with warnings.catch_warnings():
        # no positive rate -> undefined (NaN) shares; expected here, see above
        warnings.filterwarnings("ignore", "no modality has a positive contribution")
        explanation = ConditionalUtilization().explain(mmtm, X, y)
    u = dict(zip(explanation.modalities, explanation.rates))
    rates[split] = u
    print(f"\nconditional utilization on the {split} split")
    print(f"(ablation={explanation.params['ablation']!r})")
    frame = explanation.to_frame()
    frame["score_reference"] = explanation.score_reference
    print(frame.round(3))
    print(f"  u(color | gray) = {u['color']:+.3f}")
    print(f"  u(gray | color) = {u['gray']:+.3f}")
    print(f"  d_util          = {explanation.d_util:+.3f}")

# %%
# Figure
# ------
fig, (ax_acc, ax_u) = plt.subplots(1, 2, figsize=(11, 4))
names = list(acc)
ax_acc.barh(names, [acc[n] for n in names], color=["C7", "C3", "C0"])
ax_acc.axvline(0.1, color="gray", ls="--", lw=0.8, label="chance (10 classes)")
ax_acc.set_xlim(0, 1.05)
ax_acc.set_xlabel("accuracy")
ax_acc.set_title("Colour shortcut: MMTM vs gray-only")
ax_acc.legend(loc="lower right", fontsize=8)
x = np.arange(2)
for k, split in enumerate(["train", "val"]):
    values = [rates[split]["color"], rates[split]["gray"]]
    bars = ax_u.bar(x + (k - 0.5) * 0.38, values, width=0.38, label=f"{split} split")
    ax_u.bar_label(bars, fmt="%+.2f", fontsize=8)  # a rate of 0 has no bar
ax_u.axhline(0.0, color="black", lw=0.8)
ax_u.set_xticks(x, ["u(color | gray)", "u(gray | color)"])
ax_u.set_ylabel("conditional utilization rate")
ax_u.set_title("MMTM ablation (squeeze -> training average)")
ax_u.legend(fontsize=8)
fig.tight_layout()
save(fig, "colored_digits_conditional.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
