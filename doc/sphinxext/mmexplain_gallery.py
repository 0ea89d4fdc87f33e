"""Helpers for the sphinx-gallery configuration in ``doc/conf.py``.

They live in a module (not in ``conf.py``) so that the configuration holds
only strings and stays picklable; sphinx-gallery imports them by name.
"""

from __future__ import annotations

from pathlib import Path

#: gallery order: measuring first, then the papers' experiments, then steering
ORDER = [
    "quickstart.py",
    "which_explainer.py",
    "segmentation_utilization.py",
    "out_of_core.py",
    "mu_over_epochs.py",
    "blackout_sweep.py",
    "duplicated_modality.py",
    "noise_robustness.py",
    "colored_digits_conditional.py",
    "grid_search_balance.py",
    "utilization_target.py",
    "attribution_regularization.py",
    "greedy_rebalancing.py",
    "ogm_ge_and_valuation.py",
]


class ExampleOrder:
    """Sort key for ``within_subsection_order``: :data:`ORDER`, then by name."""

    def __init__(self, src_dir: str = "") -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        name = Path(filename).name
        rank = ORDER.index(name) if name in ORDER else len(ORDER)
        return rank, name

    def __repr__(self) -> str:
        return "ExampleOrder"


def reset_torch(gallery_conf: dict, fname: str) -> None:
    """Run every example on one CPU thread.

    The examples' networks are tiny: on the project's 2-core machines one
    intra-op thread is faster than two (the segmentation example: 35 s
    instead of 65 s wall time on a busy machine, a quarter of the CPU time),
    and a setting made by one example (some call ``torch.set_num_threads``)
    must not leak into the next one of the same build process.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(1)
