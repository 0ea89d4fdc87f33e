"""Save and load fitted models without pickle.

:func:`save_model` writes an estimator or a scikit-learn ``Pipeline`` to a
zip file that :func:`load_model` reads back **without executing code from the
file**: the structure is JSON (class names from a fixed allow-list,
parameters, fitted attributes) and the tensors are safetensors (no pickle).
Pickles are loaded only on request (``load_model(path, trust_pickle=True)``),
with a warning.

What loading a file guarantees, and what it does not:

- **No code runs.** Only classes of the allow-list :data:`SAFE_CLASSES` are
  constructed, each only where its kind belongs (a loss as ``criterion``, a
  balancer as ``balancer``, ...), and every parameter value is checked
  against an allow-list (``mmexplain.persistence._policy``): nothing that
  chooses how files are deserialized (``torch_load_kwargs`` can only say
  ``weights_only=True``), where files are written (a ``Pipeline`` holds only
  ``steps`` and ``verbose``), which device (``cpu``, ``cuda[:N]``, ``mps``),
  compiler (``compile=False``) or worker processes run.
- **Values are consistent.** Fitted attributes are checked for type, range
  and consistency with the parameters and the tensors: ``classes_`` sorted as
  ``fit`` finds them (or as the ``classes`` parameter gives them) and as many
  as the network's outputs, ``input_shapes_`` and every network built on
  PyTorch's ``meta`` device (no memory) and compared with the tensors before
  it is built, the optimizer state against the weights, the scalers against
  the modalities, the loss (``CrossEntropyLoss``: ``predict_proba`` returns
  probabilities).
- **Sizes are bounded before anything is allocated**: tensor members are
  stored uncompressed (their size is the file's), the header expands at most
  20 times and to at most 256 MiB, string dtypes and arrays take at most a
  few times their JSON text.
- **Integrity, not authenticity.** The header holds the SHA-256 of each
  tensor member and of itself: a corrupted file, or one edited without
  recomputing them, raises ``ValueError``. These are checksums, not a
  signature: whoever can edit a file can recompute them and change what the
  model predicts (as with any weights file: swap its weights, or rename its
  classes consistently). Load models from sources you trust to give you the
  right model; what an untrusted file cannot do is run code or load a model
  that contradicts itself.

File format (version 2), a zip archive:

``mmexplain-model.json``
    ``{"format": "mmexplain-model", "format_version": 2, "versions": {...},
    "root": <object>, "files": {<member>: {"sha256": ..., "size": ...}},
    "header_sha256": <SHA-256 of the rest of the header, canonical JSON>}``.
    An ``<object>`` is ``{"__object__": {"class": <allow-listed name>,
    "params": {...}, "fitted": {...}}}``; a fitted network adds
    ``"tensors": <member>``, ``"state"`` (its module, criterion and optimizer
    ``state_dict``s, tensors as ``{"__tensor__": <name in the member>}``),
    ``"balancer_state"`` (the fitted balancer's attributes ending in ``_``,
    ``_state``) and ``"history"``. ``params`` are the estimator's
    ``get_params(deep=False)``, ``fitted`` its fitted attributes
    (``classes_``, ``modalities_``, ``input_shapes_``, ``seed_``; a scaler's
    ``mean_``, ``scale_``, ...; a ``TransformedTargetRegressor``'s
    ``regressor_``, ``transformer_`` and ``_training_dim``, its identity
    ``transformer_`` rebuilt on loading when ``transformer`` is None). Other
    values are JSON with tags for what JSON lacks: ``{"__tuple__": [...]}``, ``{"__ndarray__": {"dtype", "shape",
    "data"}}``, ``{"__scalar__": ...}``, ``{"__float__": "nan"}``,
    ``{"__dict__": [[key, value], ...]}``, ``{"__class__": <allow-listed
    name>}`` and, for encoder instances given as parameters
    (``module__encoders`` of ``module=LateFusionNet``), ``{"__module__":
    {"class", "params", "tensors", "state"}}``.
``tensors/<k>.safetensors``
    The tensors of one network or encoder (stored uncompressed).

Files of version 1 (mmexplain before safetensors: ``tensors/<k>.pt`` members
written by ``torch.save``, read with ``torch.load(..., weights_only=True)``,
no header checksum, no balancer state) still load, with the same checks of
their values.

What can be described safely is the allow-list :data:`SAFE_CLASSES`
(:mod:`mmexplain.persistence.allowlist`): mmexplain's own classes by their
place in the class hierarchy (:class:`~mmexplain.MultimodalClassifier` and
:class:`~mmexplain.MultimodalSegmenter` with ``module=None`` or a network
class of :mod:`mmexplain.modules`, ``MLPEncoder`` / ``ConvEncoder`` instances
as ``module__encoders`` of ``LateFusionNet``, every exported balancer and
callback but ``UtilizationHistory``, :class:`~mmexplain.ModalityTransformer`),
and an explicit list of third-party classes (scikit-learn scalers and
``Pipeline``, torch losses and optimizers, skorch ``ValidSplit``, and
scikit-learn's ``TransformedTargetRegressor`` at the root of a file, around a
:class:`~mmexplain.MultimodalRegressor` or a ``Pipeline`` ending in one, with
a scaler or None as ``transformer``). Anything else (your own module or
balancer class, a module instance, custom callables) raises a ``TypeError``
naming the object, and a parameter value that loading would refuse raises a
``ValueError`` naming it, before anything is written (a
``TransformedTargetRegressor``'s ``func`` and ``inverse_func`` among them:
they must be None, as a function cannot be stored).

The package: :mod:`~mmexplain.persistence.allowlist` (which classes, of which
kind), ``_policy`` (which parameter values, which fitted attributes),
``_encode`` / ``_decode`` (objects to JSON and back), ``_state`` (tensors and
the balancer's state), ``_modules`` (constructor arguments of encoder
instances), ``_format`` (constants, limits, the header checksum) and
``_files`` (:func:`save_model`, :func:`load_model`).
"""

from __future__ import annotations

from typing import Any

from mmexplain.persistence._files import load_model, save_model
from mmexplain.persistence._format import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "SAFE_CLASSES", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    # SAFE_CLASSES: the names of the classes a safe model file may refer to
    # (nothing else is ever imported or constructed by load_model without
    # trust_pickle), derived on first use (mmexplain.persistence.allowlist)
    if name == "SAFE_CLASSES":
        from mmexplain.persistence.allowlist import allowed

        value = tuple(allowed())
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmexplain.persistence' has no attribute {name!r}")
