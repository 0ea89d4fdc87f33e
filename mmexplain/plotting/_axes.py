"""Where the plotting functions draw: the caller's Axes or a new figure."""

from __future__ import annotations

from typing import Any

import numpy as np


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
