"""Matplotlib helpers for modality explanations, training curves and segmentation maps.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is
None) and returns what it drew on: one ``Axes``, or an array of them for the
functions that draw several panels. matplotlib is imported only when a
function is called, so ``import mmexplain.plotting`` stays light.

* :func:`plot_shares`: one explanation's modality shares, bars with error bars.
* :func:`plot_share_comparison`: several explanations (explainers, models,
  seeds) side by side, grouped bars with error bars.
* :func:`plot_utilization_history`: per-epoch utilization curves recorded by
  :class:`~mmexplain.callbacks.UtilizationHistory`.
* :func:`plot_metric_vs_corruption`: a metric against a corruption level,
  one line per model (e.g. a blackout or noise sweep).
* :func:`plot_class_scores`: per-class scores (e.g. segmentation IoU).
* :func:`plot_class_utilization`: a modality x class heat map.
* :func:`plot_label_maps`, :func:`plot_pixel_maps`: segmentation label maps
  and per-pixel value maps, one panel each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.results import method_spec

__all__ = [
    "plot_class_scores",
    "plot_class_utilization",
    "plot_label_maps",
    "plot_metric_vs_corruption",
    "plot_pixel_maps",
    "plot_share_comparison",
    "plot_shares",
    "plot_utilization_history",
]


def _axes(ax: Any, figsize: tuple[float, float] = (6, 3.5)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _panels(axes: Any, n: int, panel_size: float = 3.0) -> np.ndarray:
    """``n`` Axes in a row (new figure), or the caller's ``axes`` checked for size."""
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(
            1, n, figsize=(panel_size * n, panel_size), squeeze=False
        )
    flat = np.asarray(axes, dtype=object).ravel()
    if flat.size < n:
        raise ValueError(f"need {n} axes, got {flat.size}")
    return flat[:n]


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
    spec = method_spec(method)
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


def plot_label_maps(
    maps: Mapping[str, Any],
    axes: Any = None,
    *,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    cmap: str = "tab10",
    legend: bool = True,
) -> np.ndarray:
    """Segmentation label maps side by side, with one shared class colouring.

    Parameters
    ----------
    maps : mapping of str to array-like of shape (H, W)
        ``{panel title: integer label map}``, e.g. ground truth and
        prediction of one image.
    axes : array of matplotlib Axes, optional
        At least ``len(maps)`` Axes; a new figure with one row of panels
        when None.
    n_classes : int, optional
        Number of classes (default: ``len(class_names)``, else the largest
        label + 1).
    class_names : sequence of str, optional
        Legend entries (default ``'class 0'``, ...).
    ignore_index : int, optional
        Label of unlabelled pixels, drawn white.
    cmap : str, default='tab10'
        A qualitative colormap; class ``k`` gets its ``k``-th colour.
    legend : bool, default=True
        Add a legend of the class colours to the last panel.

    Returns
    -------
    ndarray of matplotlib Axes
        The panels, in the order of ``maps``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.plotting import plot_label_maps
    >>> truth = np.array([[0, 1], [1, 1]])
    >>> axes = plot_label_maps({"truth": truth, "prediction": truth * 0},
    ...                        class_names=["asphalt", "metal"])
    >>> axes[0].images[0].get_array().tolist()
    [[0, 1], [1, 1]]
    """
    import matplotlib.colors as mcolors
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt

    arrays = {k: np.asarray(v) for k, v in maps.items()}
    if not arrays:
        raise ValueError("no label maps to draw")
    for k, a in arrays.items():
        if a.ndim != 2:
            raise ValueError(f"label map {k!r} has shape {a.shape}; expected (H, W)")
    if n_classes is None:
        if class_names is not None:
            n_classes = len(class_names)
        else:
            labels = [
                a[a != ignore_index] if ignore_index is not None else a
                for a in arrays.values()
            ]
            n_classes = int(max(x.max() if x.size else 0 for x in labels)) + 1
    names = (
        list(class_names)
        if class_names is not None
        else [f"class {k}" for k in range(n_classes)]
    )
    base = plt.get_cmap(cmap)
    colors = [base(k % base.N) for k in range(n_classes)]
    listed = mcolors.ListedColormap(colors).with_extremes(bad="white")
    norm = mcolors.BoundaryNorm(np.arange(n_classes + 1) - 0.5, n_classes)
    panels = _panels(axes, len(arrays))
    for ax, (title, a) in zip(panels, arrays.items()):
        shown = np.ma.masked_equal(a, ignore_index) if ignore_index is not None else a
        ax.imshow(shown, cmap=listed, norm=norm, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if legend:
        handles = [
            mpatches.Patch(color=colors[k], label=names[k]) for k in range(n_classes)
        ]
        panels[-1].legend(
            handles=handles,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
        )
    return panels


def plot_pixel_maps(
    maps: Mapping[str, Any],
    axes: Any = None,
    *,
    cmap: str = "magma",
    vmin: float | None = None,
    vmax: float | None = None,
    shared_scale: bool = True,
    colorbar: bool = True,
    colorbar_label: str | None = None,
) -> np.ndarray:
    """Per-pixel value maps side by side (e.g. where each modality matters).

    Parameters
    ----------
    maps : mapping of str to array-like of shape (H, W)
        ``{panel title: per-pixel values}``, e.g. the per-pixel loss increase
        when each modality is permuted.
    axes : array of matplotlib Axes, optional
        At least ``len(maps)`` Axes; a new figure with one row of panels
        when None.
    cmap : str, default='magma'
    vmin, vmax : float, optional
        Colour limits; by default the range of all maps when
        ``shared_scale`` (so panels compare), else each map's own.
    shared_scale : bool, default=True
    colorbar : bool, default=True
        One colour bar for all panels (``shared_scale``) or one per panel.
    colorbar_label : str, optional

    Returns
    -------
    ndarray of matplotlib Axes
        The panels, in the order of ``maps``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.plotting import plot_pixel_maps
    >>> axes = plot_pixel_maps({"rgb": np.eye(2), "nir": np.zeros((2, 2))})
    >>> [ax.images[0].get_clim() for ax in axes]
    [(0.0, 1.0), (0.0, 1.0)]
    """
    arrays = {k: np.asarray(v, dtype=float) for k, v in maps.items()}
    if not arrays:
        raise ValueError("no maps to draw")
    for k, a in arrays.items():
        if a.ndim != 2:
            raise ValueError(f"map {k!r} has shape {a.shape}; expected (H, W)")
    if shared_scale:
        finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()])
        lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    panels = _panels(axes, len(arrays))
    images = []
    for ax, (title, a) in zip(panels, arrays.items()):
        if shared_scale:
            image = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        else:
            image = ax.imshow(
                a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
            )
        images.append(image)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar and not shared_scale:
            ax.figure.colorbar(image, ax=ax, label=colorbar_label, shrink=0.8)
    if colorbar and shared_scale:
        fig = panels[0].figure
        fig.colorbar(images[0], ax=list(panels), label=colorbar_label, shrink=0.8)
    return panels
