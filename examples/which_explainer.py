"""
Which explainer should I use?
=============================

mmexplain has four explainers. They answer four different questions about
the same trained network, so their numbers need not agree:

* :class:`~mmexplain.explainers.PermutationModalityImportance`: how much does
  the loss rise when this modality's rows are shuffled across the data set?
  (Singh et al. 2023)
* :class:`~mmexplain.explainers.ConditionalUtilization`: how much accuracy
  is lost when this modality is removed, *given all the others*? (Wu et al.
  2022)
* :class:`~mmexplain.explainers.ModalityShapley`: how much does this
  modality contribute to each sample's value, averaged over all coalitions
  of modalities? (Wei et al. 2024)
* :class:`~mmexplain.explainers.GradientModalityAttribution`: how large is
  the gradient of the output times the embedding, per modality? (Yerramilli
  et al. 2024)

This example puts them side by side on two networks trained on data from
:func:`~mmexplain.datasets.make_multimodal_classification` where the right
answer is known: three modalities, ``'a'`` fully informative, ``'b'``
somewhat less (informativeness 0.8), and ``'c'`` pure noise, with

* **redundant** evidence (``shared=1``): ``a`` and ``b`` see the same class
  evidence, each alone can solve the task (``b`` less well);
* **complementary** evidence (``shared=0``): each modality carries its own
  part of the label, the network needs both ``a`` and ``b``.

``ModalityShapley`` is shown with two value functions: ``value='probability'``
(the true-class probability) and the paper's ``value='correct'``
(``v(S) = |S| x 1[prediction from S is correct]``). For each explainer the
example also reports the run time of one ``explain`` call on the test split
(1000 samples).

What to look for
----------------
* **The noise modality** ``c``: permutation utilization and conditional
  utilization give it about 0-1%, the Shapley shares with the default
  ``value='probability'`` about 3-4%. With the paper's ``value='correct'``
  it gets about 24%: the ``|S|`` factor credits every modality merely
  *present* in a correct coalition. Gradient x input gives it about 22%: a
  noise embedding still has a non-zero gradient. The Shapley shares are the
  signed mean values (clipped at 0): per sample the noise moves the
  prediction a little up or down, and those values cancel (``mean_values``
  about 0.02 for ``c`` against 0.29 for ``a``); shap's bar plot ranks by the
  mean *absolute* value (``mean_abs_values``), which credits that movement.
* **Redundant vs complementary**: the conditional rates are about half as
  large with redundant evidence (``u(a | rest)`` about 0.19 vs 0.36): when
  ``b`` carries the same evidence, removing ``a`` costs less. The
  permutation shares are more lopsided with redundant evidence (about 74/26
  vs 61/39): the network's loss leans on the stronger of two interchangeable
  views.
* **Where they agree**: every explainer ranks ``a`` above ``b`` above ``c``
  in both settings.
* **Run time**: a few milliseconds each on 1000 samples. The attribution
  needs one forward and backward pass, the conditional rates one ablation
  per modality, the exact Shapley values all ``2^M`` coalitions and the
  permutation utilization ``M x n_repeats`` shuffles; for late-fusion
  networks only the fusion head runs per perturbation.

When to use which
-----------------
* "Which modality does my network *rely on*, and how fragile is it if one
  degrades?": ``PermutationModalityImportance`` (also the quantity
  ``UtilizationTarget`` steers).
* "Does a modality add anything the others do not already provide?"
  (greedy learning, redundancy): ``ConditionalUtilization``.
* "Which samples use which modality?", per-sample values that add up to the
  sample's value (``to_shap()`` for shap's plots): ``ModalityShapley``
  (compare the signed ``mean_values`` with ``mean_abs_values``).
* "Which modality drives the prediction locally, cheaply and
  differentiably?": ``GradientModalityAttribution`` (also the quantity
  ``AttributionRegularizer`` steers).

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
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
import torch
from sklearn.model_selection import train_test_split

from mmexplain import MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import (
    ConditionalUtilization,
    GradientModalityAttribution,
    ModalityShapley,
    PermutationModalityImportance,
)
from mmexplain.plotting import plot_share_comparison

torch.set_num_threads(1)
QUICK = os.environ.get("MMEXPLAIN_QUICK", "") == "1"
OUT = os.environ.get("MMEXPLAIN_EXAMPLES_OUT")
pd.set_option("display.width", 140)
start = time.perf_counter()


def save(fig, name):
    """Write ``fig`` to $MMEXPLAIN_EXAMPLES_OUT/name when that is set."""
    if OUT:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=120)


# %%
# Two data sets, two networks
# ---------------------------
settings = {"redundant (shared=1)": 1.0, "complementary (shared=0)": 0.0}
models, splits = {}, {}
for name, shared in settings.items():
    X, y = make_multimodal_classification(
        400 if QUICK else 2000,
        n_classes=4,
        modalities=["a", "b", "c"],
        informativeness=[1.0, 0.8, 0.0],
        n_features=[10, 10, 10],
        shared=shared,
        noise=0.5,
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    models[name] = MultimodalClassifier(
        max_epochs=3 if QUICK else 30, lr=1e-3, random_state=0, module__embedding_dim=16
    ).fit(X_train, y_train)
    splits[name] = (X_train, X_test, y_test)
    print(f"{name}: test accuracy {models[name].score(X_test, y_test):.3f}")

# %%
# The four explainers on each network, timed
# ------------------------------------------
# ``reference=X_train``: the conditional ablation replaces a modality's
# embedding by its training-split mean, as Wu et al. do.
explanations, timings, rates = {}, [], {}
for name, clf in models.items():
    X_train, X_test, y_test = splits[name]
    explainers = {
        "permutation": PermutationModalityImportance(n_repeats=10, random_state=0),
        "conditional": ConditionalUtilization(reference=X_train),
        "Shapley (correct)": ModalityShapley(value="correct"),
        "Shapley (probability)": ModalityShapley(value="probability"),
        "gradient x input": GradientModalityAttribution(),
    }
    explanations[name] = {}
    for label, explainer in explainers.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # conditional shares are undefined when no rate is positive
            warnings.filterwarnings("ignore", "no modality has a positive contribution")
            e = explainer.explain(clf, X_test, y_test)
        timings.append(
            {"data": name, "explainer": label, "seconds": time.perf_counter() - t0}
        )
        explanations[name][label] = e
    rates[name] = explanations[name]["conditional"].rates

for name, by_explainer in explanations.items():
    shares = pd.DataFrame(
        {label: e.shares for label, e in by_explainer.items()},
        index=pd.Index(by_explainer["permutation"].modalities, name="modality"),
    )
    shares["conditional rate"] = rates[name]
    shares["signed mean Shapley (probability)"] = by_explainer[
        "Shapley (probability)"
    ].mean_values
    print(f"\n{name}: shares (%) by explainer, raw conditional rates, signed Shapley")
    print(shares.round(3).to_string())

times = pd.DataFrame(timings).pivot(index="explainer", columns="data", values="seconds")
print("\nseconds per explain() call on 1000 test samples")
print(times.round(4).to_string())

# %%
# Figure: the four explainers side by side
# ----------------------------------------
# Error bars: standard deviation over the permutation repeats, standard error
# of the mean for the per-sample attribution shares.
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, (name, by_explainer) in zip(axes, explanations.items()):
    plot_share_comparison(by_explainer, ax=ax, title=name, ylabel="share (%)")
fig.tight_layout()
save(fig, "which_explainer_shares.png")

# %%
# Figure: raw conditional rates and run times
# -------------------------------------------
fig, (ax_r, ax_t) = plt.subplots(1, 2, figsize=(12, 3.8))
modalities = explanations[next(iter(models))]["conditional"].modalities
x = np.arange(len(modalities))
for k, (name, r) in enumerate(rates.items()):
    ax_r.bar(x + (k - 0.5) * 0.38, r, width=0.38, label=name)
ax_r.axhline(0, color="black", lw=0.8)
ax_r.set_xticks(x, [f"u({m} | rest)" for m in modalities])
ax_r.set_ylabel("relative accuracy lost")
ax_r.set_title("Conditional utilization rates")
ax_r.legend(fontsize=8)
times.plot.barh(ax=ax_t)
ax_t.set_xscale("log")
ax_t.set_xlabel("seconds per explain() call (log scale)")
ax_t.set_title("Run time on 1000 samples")
ax_t.legend(fontsize=8)
fig.tight_layout()
save(fig, "which_explainer_rates_runtime.png")

# %%
# shap's plots from the Shapley values
# ------------------------------------
# ``to_shap()`` turns the per-sample modality Shapley values into a
# ``shap.Explanation``: the modalities are the "features". The bar plot shows
# the mean absolute value per modality, the waterfall one sample's values
# adding up from ``v(empty)`` (``value='probability'``: the true-class
# probability with every modality at its baseline) to ``v(all)``.
sv = explanations["redundant (shared=1)"]["Shapley (probability)"].to_shap()
plt.figure(figsize=(7, 3))
shap.plots.bar(sv, show=False)
plt.gcf().suptitle("Redundant evidence: mean |Shapley value| per modality")
plt.gcf().tight_layout()
save(plt.gcf(), "which_explainer_shap_bar.png")

# %%
sv = explanations["complementary (shared=0)"]["Shapley (probability)"].to_shap()
sample = int(np.argmax(np.abs(sv.values).sum(axis=1)))  # a sample using several
plt.figure(figsize=(7, 3))
shap.plots.waterfall(sv[sample], show=False)
plt.gcf().suptitle(f"Complementary evidence: Shapley values of test sample {sample}")
plt.gcf().tight_layout()
save(plt.gcf(), "which_explainer_shap_waterfall.png")

print(f"done in {time.perf_counter() - start:.1f} s")
plt.show()
