"""Modality shares: one explanation, several side by side, a modality x class map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.plotting._axes import _axes

__all__ = ["plot_class_utilization", "plot_share_comparison", "plot_shares"]


def _shares_and_errors(
    item: Any, modalities: Sequence[str] | None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """(modalities, shares in %, errors or None) of an explanation or a mapping."""
    if hasattr(item, "shares") and hasattr(item, "modalities"):
        names = tuple(item.modalities)
        shares = np.asarray(item.shares, dtype=float)
        err = item.share_errors() if hasattr(item, "share_errors") else None
        err = None if err is None else np.asarray(err, dtype=float)
    elif isinstance(item, Mapping):
        names = tuple(item)
        shares = np.asarray([item[m] for m in names], dtype=float)
        err = None
    else:
        if modalities is None:
            raise TypeError(
                "give the modalities when the shares are a plain sequence, or pass "
                "a ModalityExplanation or a mapping {modality: share}"
            )
        names = tuple(modalities)
        shares = np.asarray(item, dtype=float)
        err = None
        if shares.shape != (len(names),):
            raise ValueError(
                f"{shares.shape[0] if shares.ndim else 0} shares for "
                f"{len(names)} modalities"
            )
    if modalities is not None and names != tuple(modalities):
        index = {m: i for i, m in enumerate(names)}
        missing = [m for m in modalities if m not in index]
        if missing:
            raise ValueError(f"no share for modalities {missing}")
        order = [index[m] for m in modalities]
        names = tuple(modalities)
        shares = shares[order]
        err = None if err is None else err[order]
    return names, shares, err


def plot_shares(
    explanation: Any, ax: Any = None, *, title: str | None = None, color: Any = None
) -> Any:
    """Bar chart of an explanation's modality shares (percent), with error bars.

    The error bars are :meth:`ModalityExplanation.share_errors`: the standard
    deviation over permutation repeats, or the standard error of the mean of
    per-sample attribution shares; explanations without one get none. Every
    bar is annotated with its value; undefined (NaN) shares are drawn as
    empty bars without a label.

    Parameters
    ----------
    explanation : ModalityExplanation
        What an explainer's ``explain`` returned.
    ax : matplotlib Axes, optional
        Where to draw; a new 6 x 3.5 inch figure when None.
    title : str, optional
        Defaults to the explainer's name (e.g. "Permutation modality
        utilization").
    color : matplotlib color, optional
        Bar colour (default ``'C0'``).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.plotting import plot_shares
    >>> e = ModalityExplanation(modalities=("eo", "sar"), method="permutation",
    ...                         params={}, shares=np.array([75.0, 25.0]))
    >>> ax = plot_shares(e)
    >>> [float(p.get_height()) for p in ax.patches]
    [75.0, 25.0]
    """
    ax = _axes(ax)
    names, shares, err = _shares_and_errors(explanation, None)
    x = np.arange(len(shares))
    ax.bar(
        x,
        np.nan_to_num(shares),
        yerr=err,
        capsize=4 if err is not None else 0,
        color=color or "C0",
    )
    many = len(shares) > 4
    ax.set_xticks(
        x, list(names), rotation=30 if many else 0, ha="right" if many else "center"
    )
    ax.set_ylabel("share of the model's use (%)")
    tops = shares + (np.nan_to_num(err) if err is not None else 0.0)
    finite = np.isfinite(tops)
    ax.set_ylim(0, max(100.0, float(tops[finite].max()) if finite.any() else 100.0))
    method = getattr(explanation, "method", "")
    # the result carries its MethodSpec: plotting imports nothing of the results
    # layer, which calls it (results -> plotting is the only direction)
    spec = getattr(explanation, "method_spec", None)
    ax.set_title(title if title is not None else (spec.title if spec else method))
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


def plot_share_comparison(
    explanations: Mapping[str, Any],
    ax: Any = None,
    *,
    modalities: Sequence[str] | None = None,
    title: str | None = None,
    ylabel: str = "share (%)",
    errors: bool = True,
    annotate: bool = True,
    colors: Sequence[Any] | None = None,
) -> Any:
    """Grouped bar chart: one group per modality, one bar per explanation.

    Use it to put several explainers on one model, one explainer on several
    models, or several seeds side by side.

    Parameters
    ----------
    explanations : mapping of str to ModalityExplanation, mapping or sequence
        ``{label: shares}``; each value is a ``ModalityExplanation``
        (its ``shares`` and ``share_errors()``), a mapping
        ``{modality: share in percent}``, or a sequence of shares in the
        order of ``modalities``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    modalities : sequence of str, optional
        Modalities and their order; defaults to those of the first entry.
        Every entry must have a share for each of them.
    title : str, optional
    ylabel : str, default='share (%)'
    errors : bool, default=True
        Draw error bars where the explanation has them.
    annotate : bool, default=True
        Write each bar's value above it.
    colors : sequence of matplotlib colors, optional
        One per explanation (default: the colour cycle).

    Returns
    -------
    matplotlib Axes
        ``ax.containers[k]`` is the ``BarContainer`` of the k-th explanation
        (labelled with its key; error bars follow the bar containers), and the
        Axes has a legend.

    Raises
    ------
    ValueError
        No explanations, or an entry without a share for some modality.

    Examples
    --------
    >>> from mmexplain.plotting import plot_share_comparison
    >>> ax = plot_share_comparison({"seed 0": {"a": 90.0, "b": 10.0},
    ...                             "seed 1": {"a": 20.0, "b": 80.0}})
    >>> [[int(b.get_height()) for b in c] for c in ax.containers]
    [[90, 10], [20, 80]]
    """
    if not explanations:
        raise ValueError("no explanations to compare")
    labels = list(explanations)
    first = explanations[labels[0]]
    names = (
        tuple(modalities)
        if modalities is not None
        else _shares_and_errors(first, None)[0]
    )
    rows = [_shares_and_errors(explanations[k], names) for k in labels]
    ax = _axes(ax, figsize=(max(6.0, 1.2 * len(names) * max(1, len(labels)) / 2), 3.8))
    n = len(labels)
    width = 0.8 / n
    x = np.arange(len(names))
    top = 0.0
    bar_sets = []
    for k, (label, (_, shares, err)) in enumerate(zip(labels, rows)):
        offset = (k - (n - 1) / 2) * width
        bars = ax.bar(
            x + offset,
            np.nan_to_num(shares),
            width=width,
            label=label,
            color=None if colors is None else colors[k],
        )
        bar_sets.append((bars, shares, err, offset))
        tops = shares + (np.nan_to_num(err) if (errors and err is not None) else 0)
        if np.isfinite(tops).any():
            top = max(top, float(np.nanmax(tops)))
    # error bars and labels after all bars, so that ax.containers starts with
    # the bar containers in the order of ``explanations``
    for bars, shares, err, offset in bar_sets:
        if errors and err is not None:
            ax.errorbar(
                x + offset,
                np.nan_to_num(shares),
                yerr=np.nan_to_num(err),
                fmt="none",
                ecolor="black",
                elinewidth=1,
                capsize=3,
            )
        if annotate:
            ax.bar_label(
                bars,
                labels=[f"{s:.0f}" if np.isfinite(s) else "" for s in shares],
                fontsize=7,
                padding=2,
            )
    many = len(names) > 4
    ax.set_xticks(
        x, list(names), rotation=30 if many else 0, ha="right" if many else "center"
    )
    ax.set_ylabel(ylabel)
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), max(100.0, top) * 1.08)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_class_utilization(
    values: Any,
    modalities: Sequence[str],
    class_names: Sequence[str],
    ax: Any = None,
    *,
    cmap: str = "viridis",
    fmt: str = "{:.0f}",
    colorbar_label: str = "utilization (%)",
    title: str | None = None,
) -> Any:
    """Heat map of a modality x class table, each cell annotated with its value.

    For example the share of each modality in each class's score drop, or
    per-class modality Shapley values.

    Parameters
    ----------
    values : array-like of shape (n_modalities, n_classes)
    modalities : sequence of str
        Row labels.
    class_names : sequence of str
        Column labels.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    cmap : str, default='viridis'
    fmt : str, default='{:.0f}'
        Format of the cell annotations (NaN cells are left blank).
    colorbar_label : str, default='utilization (%)'
    title : str, optional

    Returns
    -------
    matplotlib Axes
        The image is ``ax.images[0]``; its colour bar is attached to the
        figure.

    Examples
    --------
    >>> from mmexplain.plotting import plot_class_utilization
    >>> ax = plot_class_utilization([[80, 10], [20, 90]], ["rgb", "dolp"],
    ...                             ["asphalt", "metal"])
    >>> ax.images[0].get_array().tolist()
    [[80.0, 10.0], [20.0, 90.0]]
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(modalities), len(class_names)):
        raise ValueError(
            f"values of shape {values.shape} for {len(modalities)} modalities x "
            f"{len(class_names)} classes"
        )
    ax = _axes(ax, figsize=(1.2 * len(class_names) + 2.5, 0.6 * len(modalities) + 1.5))
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    ax.set_xticks(np.arange(len(class_names)), list(class_names))
    ax.set_yticks(np.arange(len(modalities)), list(modalities))
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    fmt.format(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if v > middle else "white",
                )
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    if title is not None:
        ax.set_title(title)
    return ax
