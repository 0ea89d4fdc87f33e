"""The data layer: multimodal containers, validation and batching.

``X`` in mmexplain is a mapping ``{modality_name: array}`` whose values share
their first dimension ``N``. A plain :class:`dict` works everywhere;
:class:`ModalityDict` adds what scikit-learn's model-selection tools need
(``len(X) == N``, ``X.shape == (N,)``, row indexing) so that ``GridSearchCV``,
``cross_val_score`` and ``train_test_split`` can slice it.

- :mod:`mmexplain.data._dict`: :class:`ModalityDict` and row helpers;
- :mod:`mmexplain.data.validation`: :func:`check_X`, :func:`check_X_fitted`,
  :func:`check_y`, :func:`encode_labels` (used by estimators and explainers);
- :mod:`mmexplain.data.batching`: :class:`ModalityDataset`,
  :class:`TensorBatchIterator`;
- :mod:`mmexplain.data.npz`: :func:`load_npz`, :func:`save_npz` (a data set
  as one ``.npz`` file, the format of the command line).
"""

from mmexplain.data._dict import (
    ModalityDict,
    n_samples,
    permute_rows,
    take_rows,
    to_tensor_dict,
)
from mmexplain.data.batching import ModalityDataset, TensorBatchIterator
from mmexplain.data.npz import load_npz, save_npz
from mmexplain.data.validation import (
    check_class_labels,
    check_X,
    check_X_fitted,
    check_y,
    encode_labels,
)

__all__ = [
    "ModalityDataset",
    "ModalityDict",
    "TensorBatchIterator",
    "check_X",
    "check_X_fitted",
    "check_class_labels",
    "check_y",
    "encode_labels",
    "load_npz",
    "n_samples",
    "permute_rows",
    "save_npz",
    "take_rows",
    "to_tensor_dict",
]
