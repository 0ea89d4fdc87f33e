"""Neural network modules for multimodal learning.

- :class:`MLPEncoder`, :class:`ConvEncoder`, :class:`UNetEncoder`: per-modality
  encoders for vectors, images and dense (segmentation) feature maps.
- :class:`LateFusionNet`, :class:`LateFusionSegNet`: late-fusion networks with
  ``encode(**X)`` / ``fuse(**Z)`` (Singh et al., 2023).
- :class:`MMTM`, :class:`MMTMNet`: intermediate fusion with multimodal transfer
  modules, re-balancing and ablation forwards (Wu et al., 2022).
- :func:`build_module`: a default network from per-sample input shapes.
"""

from mmexplain.modules.auto import build_module
from mmexplain.modules.encoders import ConvEncoder, MLPEncoder, UNetEncoder
from mmexplain.modules.fusion import LateFusionNet, LateFusionSegNet
from mmexplain.modules.mmtm import MMTM, MMTMNet

__all__ = [
    "MLPEncoder",
    "ConvEncoder",
    "UNetEncoder",
    "LateFusionNet",
    "LateFusionSegNet",
    "MMTM",
    "MMTMNet",
    "build_module",
]
