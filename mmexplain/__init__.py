"""mmexplain: measure and steer how multimodal neural networks use their modalities.

Public names are imported lazily so that ``import mmexplain`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_LAZY = {
    "ModalityDict": "mmexplain.data",
    "ModalityExplanation": "mmexplain.results",
    "ModalitySplitter": "mmexplain.preprocessing",
    "ModalityTransformer": "mmexplain.preprocessing",
    "MultimodalClassifier": "mmexplain.estimators",
    "MultimodalRegressor": "mmexplain.estimators",
    "MultimodalSegmenter": "mmexplain.estimators",
    "LateFusionNet": "mmexplain.modules",
    "LateFusionSegNet": "mmexplain.modules",
    "MMTMNet": "mmexplain.modules",
    "MLPEncoder": "mmexplain.modules",
    "ConvEncoder": "mmexplain.modules",
}
_SUBMODULES = {
    "balancers",
    "data",
    "datasets",
    "estimators",
    "explainers",
    "metrics",
    "model_selection",
    "modules",
    "plotting",
    "preprocessing",
    "results",
    "statistics",
    "callbacks",
    "discovery",
    "report",
}

__all__ = [
    "ConvEncoder",
    "LateFusionNet",
    "LateFusionSegNet",
    "MLPEncoder",
    "MMTMNet",
    "ModalityDict",
    "ModalityExplanation",
    "ModalitySplitter",
    "ModalityTransformer",
    "MultimodalClassifier",
    "MultimodalRegressor",
    "MultimodalSegmenter",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from mmexplain.data import ModalityDict
    from mmexplain.estimators import (
        MultimodalClassifier,
        MultimodalRegressor,
        MultimodalSegmenter,
    )
    from mmexplain.modules import (
        ConvEncoder,
        LateFusionNet,
        LateFusionSegNet,
        MLPEncoder,
        MMTMNet,
    )
    from mmexplain.preprocessing import ModalitySplitter, ModalityTransformer
    from mmexplain.results import ModalityExplanation


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"mmexplain.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'mmexplain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
