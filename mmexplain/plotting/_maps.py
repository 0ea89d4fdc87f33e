"""Segmentation maps: label maps and per-pixel value maps, one panel each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.plotting._axes import _panels

__all__ = ["plot_label_maps", "plot_pixel_maps"]


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
