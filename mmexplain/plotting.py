"""Matplotlib helpers (matplotlib is imported only when a function is called)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_shares", "plot_utilization_history", "plot_metric_vs_corruption"]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6, 3.5))
    return ax


def plot_shares(
    explanation: Any, ax: Any = None, *, title: str | None = None, color: Any = None
) -> Any:
    """Bar chart of an explanation's modality shares (percent), with error bars.

    Parameters
    ----------
    explanation : ModalityExplanation
    ax : matplotlib Axes, optional
    title : str, optional
        Defaults to the method name.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    shares = np.asarray(explanation.shares, dtype=float)
    err = explanation.share_errors()
    x = np.arange(len(shares))
    ax.bar(
        x,
        np.nan_to_num(shares),
        yerr=err,
        capsize=4 if err is not None else 0,
        color=color or "C0",
    )
    ax.set_xticks(
        x,
        explanation.modalities,
        rotation=30 if len(shares) > 4 else 0,
        ha="right" if len(shares) > 4 else "center",
    )
    ax.set_ylabel("share of the model's use (%)")
    ax.set_ylim(
        0,
        max(
            100.0,
            float(np.nanmax(shares + (err if err is not None else 0)))
            if np.isfinite(shares).any()
            else 100.0,
        ),
    )
    labels = {
        "permutation": "Permutation modality utilization",
        "conditional": "Conditional utilization rate",
        "shapley": "Mean modality Shapley value",
        "attribution": "Gradient x input modality attribution",
    }
    ax.set_title(
        title
        if title is not None
        else labels.get(explanation.method, explanation.method)
    )
    tops = shares + (np.nan_to_num(err) if err is not None else 0.0)
    for xi, s, top in zip(x, shares, tops):
        if np.isfinite(s):
            ax.annotate(
                f"{s:.1f}%",
                (xi, top),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    return ax


def plot_utilization_history(
    history: Any,
    key: str = "utilization",
    ax: Any = None,
    *,
    modalities: Sequence[str] | None = None,
) -> Any:
    """Line plot of per-epoch modality utilization (seed 000, Fig. 4).

    ``history`` is a skorch ``History`` (or a list of dicts) whose epochs hold
    ``key`` as a dict ``{modality: percent}``; epochs without it are skipped.
    """
    ax = _axes(ax)
    rows = [
        (h.get("epoch", i + 1), h[key])
        for i, h in enumerate(history)
        if key in h and h[key] is not None
    ]
    if not rows:
        raise ValueError(f"no epoch of the history records {key!r}")
    names = list(modalities) if modalities is not None else list(rows[0][1])
    epochs = [r[0] for r in rows]
    for m in names:
        ax.plot(epochs, [r[1][m] for r in rows], marker="o", label=m)
    ax.set_xlabel("epoch")
    ax.set_ylabel("utilization (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    return ax


def plot_metric_vs_corruption(
    levels: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    ax: Any = None,
    *,
    xlabel: str = "corruption level",
    ylabel: str = "accuracy",
) -> Any:
    """Metric-vs-corruption curves, one line per model (e.g. the EO-blackout sweep)."""
    ax = _axes(ax)
    for name, values in curves.items():
        if len(values) != len(levels):
            raise ValueError(
                f"curve {name!r} has {len(values)} points for {len(levels)} levels"
            )
        ax.plot(levels, values, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax
