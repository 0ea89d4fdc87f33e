"""Curves and per-class scores: utilization per epoch, a metric against corruption."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.plotting._axes import _axes

__all__ = ["plot_class_scores", "plot_metric_vs_corruption", "plot_utilization_history"]


def plot_utilization_history(
    history: Any,
    key: str = "utilization",
    ax: Any = None,
    *,
    modalities: Sequence[str] | None = None,
    label: str | None = None,
    targets: Mapping[str, float] | None = None,
    linestyle: str = "-",
) -> Any:
    """Per-epoch modality utilization curves (Singh et al. 2023, Fig. 4).

    ``history`` is a fitted net (its ``history`` is used), a skorch
    ``History`` or a list of dicts, whose epochs hold
    ``key`` as a dict ``{modality: percent}``, as recorded by
    :class:`~mmexplain.callbacks.UtilizationHistory`; epochs without it are
    skipped, so ``UtilizationHistory(every=k)`` plots every k-th epoch.

    Parameters
    ----------
    history : fitted net, skorch History or list of dict
        A net (e.g. a fitted :class:`~mmexplain.MultimodalClassifier`)
        stands for its ``history``. Each epoch a dict with ``'epoch'``
        (optional: the position is used otherwise) and ``key``.
    key : str, default='utilization'
        The history entry to plot.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    modalities : sequence of str, optional
        Which modalities to draw (default: all, in recorded order).
    label : str, optional
        Prefix of the legend entries (``'label: modality'``), to tell several
        runs apart on one Axes.
    targets : mapping of str to float, optional
        Target shares in percent, drawn as dotted horizontal lines in each
        modality's colour.
    linestyle : str, default='-'
        Line style of the curves (e.g. ``'--'`` for a second run).

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        No epoch of the history records ``key``.

    Examples
    --------
    >>> from mmexplain.plotting import plot_utilization_history
    >>> history = [{"epoch": 1, "utilization": {"eo": 80.0, "sar": 20.0}},
    ...            {"epoch": 2, "utilization": {"eo": 60.0, "sar": 40.0}}]
    >>> ax = plot_utilization_history(history)
    >>> [line.get_ydata().tolist() for line in ax.get_lines()]
    [[80.0, 60.0], [20.0, 40.0]]
    """
    if not isinstance(history, list) and hasattr(history, "history"):
        history = history.history  # a net: its History
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
    colors = {}
    for m in names:
        (line,) = ax.plot(
            epochs,
            [r[1][m] for r in rows],
            marker="o",
            markersize=3,
            linestyle=linestyle,
            label=m if label is None else f"{label}: {m}",
        )
        colors[m] = line.get_color()
    for m, t in (targets or {}).items():
        ax.axhline(t, color=colors.get(m, "gray"), ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("utilization (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    return ax


def plot_metric_vs_corruption(
    levels: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    ax: Any = None,
    *,
    errors: Mapping[str, Sequence[float]] | None = None,
    xlabel: str = "corruption level",
    ylabel: str = "accuracy",
) -> Any:
    """Metric-vs-corruption curves, one line per model (e.g. a blackout sweep).

    Parameters
    ----------
    levels : sequence of float
        The corruption levels (x axis), e.g. blackout fractions or noise
        variances.
    curves : mapping of str to sequence of float
        ``{label: metric at each level}``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    errors : mapping of str to sequence of float, optional
        ``{label: error bar half-length at each level}`` (e.g. the standard
        deviation over seeds) for some or all curves.
    xlabel, ylabel : str

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        A curve or an error sequence whose length differs from ``levels``.

    Examples
    --------
    >>> from mmexplain.plotting import plot_metric_vs_corruption
    >>> ax = plot_metric_vs_corruption([0.0, 0.5, 1.0],
    ...                                {"vanilla": [0.9, 0.7, 0.5]})
    >>> ax.get_lines()[0].get_ydata().tolist()
    [0.9, 0.7, 0.5]
    """
    ax = _axes(ax)
    errors = dict(errors or {})
    for name, values in curves.items():
        if len(values) != len(levels):
            raise ValueError(
                f"curve {name!r} has {len(values)} points for {len(levels)} levels"
            )
        err = errors.pop(name, None)
        if err is not None:
            if len(err) != len(levels):
                raise ValueError(
                    f"errors of {name!r} have {len(err)} points for {len(levels)} levels"
                )
            ax.errorbar(levels, values, yerr=err, marker="o", capsize=3, label=name)
        else:
            ax.plot(levels, values, marker="o", label=name)
    if errors:
        raise ValueError(f"errors given for unknown curves {sorted(errors)}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def plot_class_scores(
    scores: Any,
    class_names: Sequence[str] | None = None,
    ax: Any = None,
    *,
    ylabel: str = "IoU",
    title: str | None = None,
    color: Any = None,
) -> Any:
    """Bar chart of per-class scores, e.g. the IoU of each segmentation class.

    Parameters
    ----------
    scores : array-like of shape (n_classes,)
        One score per class; NaN (a class absent from both the labels and
        the predictions) is drawn as an empty bar labelled ``n/a``.
    class_names : sequence of str, optional
        Tick labels (default ``'class 0'``, ...).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    ylabel : str, default='IoU'
    title : str, optional
        Defaults to ``'mean <ylabel> <mean over defined classes>'``.
    color : matplotlib color, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from mmexplain.plotting import plot_class_scores
    >>> ax = plot_class_scores([0.9, 0.5], ["road", "metal"])
    >>> [float(p.get_height()) for p in ax.patches], ax.get_title()
    ([0.9, 0.5], 'mean IoU 0.700')
    """
    scores = np.asarray(scores, dtype=float).ravel()
    names = (
        list(class_names)
        if class_names is not None
        else [f"class {k}" for k in range(scores.size)]
    )
    if len(names) != scores.size:
        raise ValueError(f"{scores.size} scores for {len(names)} class names")
    ax = _axes(ax)
    x = np.arange(scores.size)
    bars = ax.bar(x, np.nan_to_num(scores), color=color or "C0")
    ax.bar_label(
        bars,
        labels=[f"{s:.3f}" if np.isfinite(s) else "n/a" for s in scores],
        fontsize=8,
        padding=2,
    )
    ax.set_xticks(x, names)
    ax.set_ylabel(ylabel)
    finite = scores[np.isfinite(scores)]
    top = float(finite.max()) if finite.size else 1.0
    ax.set_ylim(0, max(1.0, top) * 1.1)
    mean = float(finite.mean()) if finite.size else float("nan")
    ax.set_title(title if title is not None else f"mean {ylabel} {mean:.3f}")
    return ax
