"""Pairwise modality interactions: a symmetric heat map."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmexplain.plotting._axes import _axes

__all__ = ["plot_interactions"]


def plot_interactions(
    explanation: Any,
    ax: Any = None,
    *,
    title: str | None = None,
    cmap: str = "RdBu_r",
    fmt: str = "{:.3f}",
) -> Any:
    """Heat map of the mean pairwise Shapley interaction index of each modality pair.

    Off-diagonal cells: the mean Shapley interaction index of the pair
    (Grabisch & Roubens, 1999); the diagonal: each modality's mean main
    effect, its mean Shapley value minus half of its interactions (so that
    a row's diagonal plus half its off-diagonal cells is the modality's mean
    Shapley value). The colour scale is centred on 0 (red: the pair adds more
    together than apart, as in an XOR; blue: less, as for redundant
    modalities).

    Parameters
    ----------
    explanation : ShapleyExplanation or tuple (matrix, modalities)
        A result of ``ModalityShapley(interactions=True)`` (its
        ``interactions`` and ``mean_values``), or an (M, M) matrix to show as
        it is, with the modality names.
    ax : matplotlib Axes, optional
    title : str, optional
    cmap : str, default='RdBu_r'
    fmt : str, default='{:.3f}'
        Format of the cell annotations.

    Returns
    -------
    matplotlib Axes
        The image is ``ax.images[0]``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.plotting import plot_interactions
    >>> ax = plot_interactions((np.array([[0.1, 0.2], [0.2, 0.0]]), ["a", "b"]))
    >>> ax.images[0].get_array().tolist()
    [[0.1, 0.2], [0.2, 0.0]]
    """
    if isinstance(explanation, tuple):
        matrix, modalities = explanation
    else:
        inter = getattr(explanation, "interactions", None)
        if inter is None:
            raise ValueError(
                "no interaction indices: explain with ModalityShapley(interactions=True)"
            )
        matrix = np.array(inter, dtype=float)
        off = matrix.copy()
        np.fill_diagonal(off, 0.0)
        main = np.asarray(explanation.mean_values, dtype=float) - 0.5 * off.sum(axis=1)
        np.fill_diagonal(matrix, main)
        modalities = explanation.modalities
    matrix = np.asarray(matrix, dtype=float)
    modalities = list(modalities)
    if matrix.shape != (len(modalities), len(modalities)):
        raise ValueError(
            f"an interaction matrix of shape {matrix.shape} for {len(modalities)} modalities"
        )
    ax = _axes(ax, figsize=(1.2 * len(modalities) + 2.5, 1.0 * len(modalities) + 1.5))
    finite = matrix[np.isfinite(matrix)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    image = ax.imshow(matrix, cmap=cmap, vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(modalities)))
    ax.set_xticklabels(modalities, rotation=30, ha="right")
    ax.set_yticks(range(len(modalities)))
    ax.set_yticklabels(modalities)
    for i in range(len(modalities)):
        for j in range(len(modalities)):
            if np.isfinite(matrix[i, j]):
                ax.text(
                    j,
                    i,
                    fmt.format(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(matrix[i, j]) > 0.6 * vmax else "black",
                )
    ax.figure.colorbar(image, ax=ax, label="mean interaction index")
    ax.set_title(title or "Modality interactions (diagonal: main effects)")
    return ax
