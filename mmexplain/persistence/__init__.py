"""Save and load fitted models without pickle.

:func:`save_model` writes an estimator or a scikit-learn ``Pipeline`` to a
zip file that :func:`load_model` reads back **without executing code from the
file**: the structure is JSON (class names from a fixed allow-list,
parameters, fitted attributes) and the network weights are tensors read with
``torch.load(..., weights_only=True)``. Pickles are loaded only on request
(``load_model(path, trust_pickle=True)``), with a warning.

File format (version 1), a zip archive:

``mmexplain-model.json``
    ``{"format": "mmexplain-model", "format_version": 1, "versions": {...},
    "root": <object>, "files": {<member>: {"sha256": ..., "size": ...}}}``.
    An ``<object>`` is ``{"__object__": {"class": <allow-listed name>,
    "params": {...}, "fitted": {...}, "tensors": <member>, "history": [...]}}``:
    ``params`` are the estimator's ``get_params(deep=False)``, ``fitted`` its
    fitted attributes (``classes_``, ``modalities_``, ``input_shapes_``,
    ``seed_``; a scaler's ``mean_``, ``scale_``, ...). Other values are JSON
    with tags for what JSON lacks: ``{"__tuple__": [...]}``,
    ``{"__ndarray__": {"dtype", "shape", "data"}}``, ``{"__scalar__": ...}``,
    ``{"__float__": "nan"}``, ``{"__dict__": [[key, value], ...]}``,
    ``{"__class__": <allow-listed name>}`` and, for encoder instances given
    as parameters (``module__encoders`` of ``module=LateFusionNet``),
    ``{"__module__": {"class", "params", "tensors"}}``.
``tensors/<k>.pt``
    ``torch.save`` of ``{"module": state_dict, "optimizer": state_dict,
    "criterion": state_dict}`` of a fitted network (or ``{"module":
    state_dict}`` of an encoder parameter); its SHA-256 is in the header, so
    corrupted weights are detected.

What can be described safely is the allow-list :data:`SAFE_CLASSES`
(:mod:`mmexplain.persistence.allowlist`): mmexplain's own classes by their
place in the class hierarchy (:class:`~mmexplain.MultimodalClassifier` and
:class:`~mmexplain.MultimodalSegmenter` with ``module=None`` or a network
class of :mod:`mmexplain.modules`, ``MLPEncoder`` / ``ConvEncoder`` instances
as ``module__encoders`` of ``LateFusionNet``, every exported balancer and
callback but ``UtilizationHistory``, :class:`~mmexplain.ModalityTransformer`),
and an explicit list of third-party classes (scikit-learn scalers and
``Pipeline``, torch losses and optimizers, skorch ``ValidSplit``). Anything
else (your own module or balancer class, a module instance, custom
callables) raises a ``TypeError`` naming the object.

The package: :mod:`~mmexplain.persistence.allowlist` (which classes, in which
role), ``_encode`` / ``_decode`` (objects to JSON and back), ``_modules``
(constructor arguments of encoder instances), ``_format`` (constants and the
error for unsupported objects) and ``_files`` (:func:`save_model`,
:func:`load_model`).
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
