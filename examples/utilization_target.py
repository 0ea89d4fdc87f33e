"""
Steering modality utilization toward a target (Singh et al. 2024)
=================================================================

Singh et al. (2024) add a term to the training loss that pulls each
modality's permutation utilization (MU) toward a chosen target share. This
example reproduces the claim checked in ``tests/test_claims.py``, in exactly
that setting:

* a lopsided two-modality task from
  :func:`~mmexplain.datasets.make_multimodal_classification` (2000 samples,
  ``'a'`` fully informative, ``'b'`` half as informative, shared evidence,
  split 50/50 into train and test);
* a vanilla late-fusion network (30 epochs, Adam 3e-3, embedding 16) and
  three networks trained with
  :class:`~mmexplain.balancers.UtilizationTarget` targets of 25%, 50% and
  75% for ``'a'`` (strength 3, 3 warm-up epochs);
* whole-set permutation utilization
  (:class:`~mmexplain.explainers.PermutationModalityImportance`, 5 repeats)
  on the training and on the test split, accuracy, and accuracy when
  Gaussian noise of growing variance is added to ``'a'``
  (:func:`~mmexplain.datasets.add_gaussian_noise`);
* a :class:`~mmexplain.callbacks.UtilizationHistory` callback on the vanilla
  and on the 25% run, which measures MU on the test split after every epoch
  (Singh et al. 2023, Fig. 4 style).

What to look for in the output
------------------------------
The numbers below the code are this run's; the text states only what they
are compared with, and the script prints its own reading of them at the end
(the "reproduction check" and the summary after it).

* Vanilla leans on ``'a'``: its test MU of ``'a'`` is compared with 85%
  (reference 92.7%).
* On the **training** split each target's MU should land within +-10 points
  of the target (reference 30/59/79%): the paper's claim.
* On the **test** split the question is whether the targets hold on
  held-out data. In the reference run they did not at strength 3 (34/66/86%:
  the 50% target overshoots by 16 points); how far the test MU lands from
  the targets varies from run to run, and the check prints whether this run
  is within +-10 points. The order of the targets, all below vanilla, is
  checked too.
* Robustness: accuracy with Gaussian noise of variance 2 on ``'a'``, the 25%
  model against vanilla (reference 0.782 vs 0.718), and the whole sweep in
  ``utilization_target_noise.png``. The table also shows what the targets
  cost in clean accuracy.
* ``utilization_target_history.png``: test MU of each modality per epoch,
  for vanilla and for the 25% run; the dotted lines are the 25% run's
  targets and the dashed line the end of the clipped-exponential warm-up.
* ``utilization_target_mu.png``: train and test MU of ``'a'`` per model
  against the targets.
* The script ends with a "reproduction check" that prints, for each claim,
  whether it held in this run.
* The ``ref`` values are earlier single-seed measurements in this script's
  setting. ``tests/test_claims.py`` checks the claims on seeds 0-2, in its own
  settings and against controls, and ``benchmarks/claims_seeds.py`` runs them
  on seeds 0-7: on the training split "within +-10" held on every seed for
  the 25% and 75% targets but not for 50% (seed 4: 60.2%). Held out,
  ``UtilizationTarget(measure_on='valid', validation_data=...)`` with about
  1000 validation samples landed 19-22 of 24 runs within +-10, against 12-13
  of 24 without it. Those numbers are in the
  :ref:`reproduction notes <methods-reproduction-notes>`.

Environment variables
---------------------
MMEXPLAIN_EXAMPLES_OUT
    If set, the figures are also written there as PNG files.
MMEXPLAIN_QUICK
    ``1`` trains for 4 epochs on 400 samples (a smoke test that runs in
    seconds; the numbers are then not meaningful).
"""

import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from mmexplain import MultimodalClassifier
from mmexplain.balancers import UtilizationTarget
from mmexplain.callbacks import UtilizationHistory
from mmexplain.datasets import add_gaussian_noise, make_multimodal_classification
from mmexplain.explainers import PermutationModalityImportance
from mmexplain.plotting import plot_metric_vs_corruption, plot_utilization_history

torch.set_num_threads(1)
QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
TARGETS = (0.25, 0.5, 0.75)
VARIANCES = [0.0, 2.0, 8.0] if QUICK else [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
pd.set_option("display.width", 120)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Data: the lopsided task of tests/test_claims.py
# -----------------------------------------------
X, y = make_multimodal_classification(
    400 if QUICK else 2000,
    modalities=["a", "b"],
    informativeness=[1.0, 0.5],
    n_features=[10, 10],
    shared=1.0,
    noise=0.5,
    random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)
print("train:", X_train)
print("test: ", X_test)

# %%
# Train vanilla and the three targets
# -----------------------------------
# The UtilizationHistory callback only reads the network (eval mode, numpy
# permutations), so it does not change what is trained.
kw = dict(
    max_epochs=4 if QUICK else 30, lr=3e-3, random_state=0, module__embedding_dim=16
)


def history_callback():
    return UtilizationHistory(
        PermutationModalityImportance(n_repeats=3, random_state=0), X_test, y_test
    )


models = {"vanilla": MultimodalClassifier(callbacks=[history_callback()], **kw)}
target_of = {"vanilla": np.nan}
for target in TARGETS:
    balancer = UtilizationTarget({"a": target, "b": 1 - target}, strength=3.0, warmup=3)
    callbacks = [history_callback()] if target == 0.25 else None
    models[f"target {target:.0%}"] = MultimodalClassifier(
        balancer=balancer, callbacks=callbacks, **kw
    )
    target_of[f"target {target:.0%}"] = 100 * target
for name, clf in models.items():
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    print(f"trained {name:12s} in {time.perf_counter() - t0:.1f} s")

# %%
# Utilization, accuracy and noise robustness
# ------------------------------------------
pmi = PermutationModalityImportance(n_repeats=5, random_state=0)
noisy = {v: add_gaussian_noise(X_test, "a", v, random_state=0) for v in VARIANCES}
rows, curves = [], {}
for name, clf in models.items():
    curves[name] = [clf.score(noisy[v], y_test) for v in VARIANCES]
    rows.append(
        {
            "model": name,
            "target a %": target_of[name],
            "MU a % (train)": pmi.explain(clf, X_train, y_train).utilization[0],
            "MU a % (test)": pmi.explain(clf, X_test, y_test).utilization[0],
            "accuracy": clf.score(X_test, y_test),
            "acc, noise var 2 on a": curves[name][VARIANCES.index(2.0)],
        }
    )
table = pd.DataFrame(rows).set_index("model")
print("\nwhole-set permutation utilization of 'a' and test accuracy")
print(table.round(3).to_string())
sweep = pd.DataFrame(curves, index=pd.Index(VARIANCES, name="noise variance on a"))
print("\ntest accuracy with Gaussian noise on 'a'")
print(sweep.round(3).to_string())

# %%
# Reproduction check (ref: single-seed reference values, this setting)
# --------------------------------------------------------------------
u = table["MU a % (train)"]
v = table["MU a % (test)"]
names = [f"target {t:.0%}" for t in TARGETS]
gap_train = [u[n] - 100 * t for n, t in zip(names, TARGETS)]
gap_test = [v[n] - 100 * t for n, t in zip(names, TARGETS)]


def verdict(ok):
    return "REPRODUCES" if ok else "does NOT reproduce"


print("\nreproduction check" + (" (QUICK mode: not meaningful)" if QUICK else ""))
print(
    f"  vanilla is lopsided, MU(a) > 85% (ref 92.7%): {v['vanilla']:.1f}%"
    f" -> {verdict(v['vanilla'] > 85)}"
)
print(
    "  train MU within +-10 points of the targets (ref 30/59/79%): "
    + "/".join(f"{u[n]:.0f}" for n in names)
    + f"% -> {verdict(max(map(abs, gap_train)) <= 10)}"
)
print(
    "  test MU within +-10 points of the targets (ref 34/66/86%, 16 points off): "
    + "/".join(f"{v[n]:.0f}" for n in names)
    + f"% -> {verdict(max(map(abs, gap_test)) <= 10)}"
)
ordered = list(v[names]) + [v["vanilla"]]
print(
    "  test MU keeps the order of the targets, all below vanilla: "
    f"{verdict(all(a < b for a, b in zip(ordered, ordered[1:])))}"
)
a25, a0 = (
    table.loc["target 25%", "acc, noise var 2 on a"],
    table.loc["vanilla", "acc, noise var 2 on a"],
)
print(
    f"  noise var 2 on 'a': target 25% {a25:.3f} vs vanilla {a0:.3f}"
    f" (ref 0.782 vs 0.718) -> {verdict(a25 > a0 + 0.02)}"
)

# %%
# In words, from this run's numbers
# ---------------------------------
worst = max(zip(map(abs, gap_test), names))
cost = table.loc["vanilla", "accuracy"] - table.loc["target 25%", "accuracy"]
print(
    f"\nOn the training split the MU of 'a' is at most "
    f"{max(map(abs, gap_train)):.0f} points from its target. On the test split the "
    "farthest is "
    f"{worst[1]} at {v[worst[1]]:.0f}% ({worst[0]:.0f} points off), so the claim "
    + ("holds" if worst[0] <= 10 else "does not hold")
    + " on held-out data in this run. With noise of variance 2 on 'a' the 25% model "
    + ("keeps more" if a25 > a0 else "keeps less")
    + f" accuracy than vanilla ({a25:.2f} vs {a0:.2f}); on clean data it gives up "
    f"{100 * cost:.1f} points of accuracy."
)

# %%
# Figures
# -------
# Train/test MU of 'a' per model, with the targets
fig, ax = plt.subplots(figsize=(7, 4))
x = np.arange(len(table))
for k, col in enumerate(["MU a % (train)", "MU a % (test)"]):
    label = "train split" if "train" in col else "test split"
    bars = ax.bar(x + (k - 0.5) * 0.38, table[col], width=0.38, label=label)
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
for xi, t in zip(x[1:], TARGETS):
    ax.hlines(100 * t, xi - 0.4, xi + 0.4, color="black", ls="--", lw=1.2)
ax.plot([], [], color="black", ls="--", label="target")
ax.set_xticks(x, table.index)
ax.set_ylim(0, 105)
ax.set_ylabel("permutation utilization of 'a' (%)")
ax.set_title("UtilizationTarget (strength 3): MU of 'a' on train and test")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
save(fig, "utilization_target_mu.png")

# %%
# Accuracy vs noise variance on 'a'
fig, ax = plt.subplots(figsize=(7, 4))
plot_metric_vs_corruption(
    VARIANCES,
    curves,
    ax=ax,
    xlabel="variance of the Gaussian noise added to 'a'",
    ylabel="test accuracy",
)
ax.set_xscale("symlog", linthresh=1.0)
ax.set_title("Robustness to noise on the dominant modality")
fig.tight_layout()
save(fig, "utilization_target_noise.png")

# %%
# MU per epoch (test split), recorded by UtilizationHistory
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, name in zip(axes, ["vanilla", "target 25%"]):
    plot_utilization_history(models[name].history, ax=ax)
    ax.set_title(f"{name}: test MU per epoch")
axes[1].axhline(25, color="C0", ls=":", lw=1)
axes[1].axhline(75, color="C1", ls=":", lw=1)
axes[1].axvline(3.5, color="gray", ls="--", lw=0.8)
axes[1].annotate("warm-up ends", (3.6, 95), fontsize=8, color="gray")
fig.tight_layout()
save(fig, "utilization_target_history.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
