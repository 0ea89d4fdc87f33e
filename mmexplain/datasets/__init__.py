"""Data sets for multimodal learning: bundled real data, generators, corruptions.

Nothing here accesses the network.

* :func:`load_multiple_features`: UCI Multiple Features (2000 handwritten
  digits, 6 feature views), bundled with the package (CC BY 4.0).
* :func:`make_colored_digits`: Colored-and-gray digits built from
  scikit-learn's 8x8 digits; colour predicts the label in training only.
* :func:`make_rendered_digits`, :func:`make_rendered_colored_digits`: 28x28
  digits rendered offline from matplotlib's fonts, and their Colored-and-gray
  version at MNIST's scale.
* :func:`make_multimodal_classification`: tabular modalities with
  controllable informativeness and shared/private class information.
* :func:`make_multimodal_regression`: independent modalities with known
  additive contributions to real targets.
* :func:`load_diabetes_views`: scikit-learn's diabetes data (442 patients)
  as a clinical-exam view and a blood-serum view.
* :func:`make_multimodal_segmentation`: small MCubeS-like material
  segmentation scenes with RGB, polarization and near-infrared modalities.
* :func:`blackout`, :func:`add_gaussian_noise`: corrupt one modality.
"""

from mmexplain.datasets._colored_digits import make_colored_digits
from mmexplain.datasets._corruptions import add_gaussian_noise, blackout
from mmexplain.datasets._multiple_features import load_multiple_features
from mmexplain.datasets._regression import (
    load_diabetes_views,
    make_multimodal_regression,
)
from mmexplain.datasets._rendered_digits import (
    make_rendered_colored_digits,
    make_rendered_digits,
)
from mmexplain.datasets._synthetic import (
    make_multimodal_classification,
    make_multimodal_segmentation,
)

__all__ = [
    "load_diabetes_views",
    "load_multiple_features",
    "make_colored_digits",
    "make_rendered_digits",
    "make_rendered_colored_digits",
    "make_multimodal_classification",
    "make_multimodal_regression",
    "make_multimodal_segmentation",
    "blackout",
    "add_gaussian_noise",
]
