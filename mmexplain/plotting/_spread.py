"""The spread of modality shares over runs (folds and seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmexplain.plotting._axes import _axes

__all__ = ["plot_share_spread"]


def plot_share_spread(
    result: Any,
    ax: Any = None,
    *,
    title: str | None = None,
    ylabel: str = "share (%)",
) -> Any:
    """Box plot of each modality's share over runs, with every run as a dot.

    Parameters
    ----------
    result : CrossExplanation or mapping of str to array-like
        A :class:`~mmexplain.model_selection.CrossExplanation` (held-out
        shares, and training-fold shares beside them when it has them), or
        ``{modality: shares over runs}``.
    ax : matplotlib Axes, optional
    title : str, optional
    ylabel : str, default='share (%)'

    Returns
    -------
    matplotlib Axes
        One box per modality and data part (held-out, train), labelled on the
        x axis; the dots are ``ax.collections``.

    Examples
    --------
    >>> from mmexplain.plotting import plot_share_spread
    >>> ax = plot_share_spread({"a": [60.0, 70.0, 65.0], "b": [40.0, 30.0, 35.0]})
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['a', 'b']
    """
    if hasattr(result, "shares") and hasattr(result, "modalities"):
        modalities = list(result.modalities)
        parts = [("held-out", np.asarray(result.shares).reshape(-1, len(modalities)))]
        train = getattr(result, "train_shares", None)
        if train is not None:
            parts.append(("train", np.asarray(train).reshape(-1, len(modalities))))
        title = (
            title if title is not None else f"{result.method}: {len(parts[0][1])} runs"
        )
    else:
        modalities = list(result)
        if not modalities:
            raise ValueError("no modalities to plot")
        parts = [
            ("", np.column_stack([np.asarray(result[m], float) for m in modalities]))
        ]
    ax = _axes(ax)
    width = 0.8 / len(parts)
    positions_all = []
    for k, (name, values) in enumerate(parts):
        pos = np.arange(len(modalities)) + (k - (len(parts) - 1) / 2) * width
        ax.boxplot(
            [values[:, j] for j in range(len(modalities))],
            positions=pos,
            widths=width * 0.8,
            showfliers=False,
            patch_artist=False,
        )
        for j in range(len(modalities)):
            jitter = np.linspace(-0.15, 0.15, len(values)) * width
            ax.scatter(
                pos[j] + jitter,
                values[:, j],
                s=12,
                alpha=0.7,
                color=f"C{k}",
                label=name if (j == 0 and name) else None,
            )
        positions_all.append(pos)
    ax.set_xticks(np.arange(len(modalities)))
    ax.set_xticklabels(modalities)
    ax.set_ylabel(ylabel)
    if len(parts) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax
