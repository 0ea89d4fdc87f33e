"""scikit-learn / skorch estimators for multimodal networks.

:class:`MultimodalClassifier`, :class:`MultimodalRegressor` and
:class:`MultimodalSegmenter` are skorch nets
that take ``X`` as a mapping ``{modality: array}``, call the module as
``module(**X)``, accept a ``balancer=`` (see :mod:`mmexplain.balancers`) and
follow scikit-learn's conventions: nested ``balancer__<param>`` parameters,
``clone``, ``GridSearchCV``, pipelines, seeded determinism and pickling.

- :mod:`~mmexplain.estimators.base`: the shared mixin (validation, seeding,
  the training step, skorch overrides);
- :mod:`~mmexplain.estimators._balancing`: the balancer lifecycle;
- :mod:`~mmexplain.estimators._module`: building the network;
- :mod:`~mmexplain.estimators.classifier`, :mod:`~mmexplain.estimators.regressor`,
  :mod:`~mmexplain.estimators.segmenter`.

In-memory data is batched by slicing whole tensors
(:class:`~mmexplain.data.TensorBatchIterator`) instead of collating samples
one by one through a ``DataLoader``; pass
``iterator_train=torch.utils.data.DataLoader`` to get skorch's default
iteration back.
"""

from mmexplain.data.batching import ModalityDataset, TensorBatchIterator
from mmexplain.estimators.classifier import MultimodalClassifier
from mmexplain.estimators.regressor import MultimodalRegressor
from mmexplain.estimators.segmenter import MultimodalSegmenter

__all__ = [
    "ModalityDataset",
    "MultimodalClassifier",
    "MultimodalRegressor",
    "MultimodalSegmenter",
    "TensorBatchIterator",
]
