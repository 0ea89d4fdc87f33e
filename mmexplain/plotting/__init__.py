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
* :func:`plot_interactions`: pairwise Shapley interaction indices of the
  modalities (``ModalityShapley(interactions=True)``), a heat map.
* :func:`plot_share_spread`: each modality's share over runs (folds and
  seeds, :func:`mmexplain.model_selection.cross_explain`), box plots with dots.
* :func:`plot_label_maps`, :func:`plot_pixel_maps`: segmentation label maps
  and per-pixel value maps, one panel each.

The functions live in ``_shares`` (shares), ``_spread`` (shares over runs),
``_curves`` (training curves and per-class scores) and ``_maps`` (segmentation
maps); import them from here.
"""

from mmexplain.plotting._curves import (
    plot_class_scores,
    plot_metric_vs_corruption,
    plot_utilization_history,
)
from mmexplain.plotting._interactions import plot_interactions
from mmexplain.plotting._maps import plot_label_maps, plot_pixel_maps
from mmexplain.plotting._shares import (
    plot_class_utilization,
    plot_share_comparison,
    plot_shares,
)
from mmexplain.plotting._spread import plot_share_spread

__all__ = [
    "plot_class_scores",
    "plot_class_utilization",
    "plot_interactions",
    "plot_label_maps",
    "plot_metric_vs_corruption",
    "plot_pixel_maps",
    "plot_share_comparison",
    "plot_share_spread",
    "plot_shares",
    "plot_utilization_history",
]
