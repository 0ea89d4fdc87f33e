"""Constants of the safe model format and the error raised for what it cannot hold."""

from __future__ import annotations

import re
from typing import Any

#: version of the file format written by :func:`~mmexplain.persistence.save_model`
FORMAT_VERSION = 1
FORMAT = "mmexplain-model"
HEADER = "mmexplain-model.json"
ZIP_MAGIC = b"PK\x03\x04"

# fitted attributes of the skorch estimators kept in the file
NET_FITTED = (
    "classes_inferred_",
    "modalities_",
    "input_shapes_",
    "seed_",
    "n_classes_",
)
ATTR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_$")
TAGS = (
    "__object__",
    "__module__",
    "__class__",
    "__tuple__",
    "__ndarray__",
    "__scalar__",
    "__float__",
    "__dict__",
)
HOW_TO = (
    "Save the weights with net.save_params(f_params='weights.pt') and rebuild the "
    "estimator in code (net.initialize(); net.load_params(f_params='weights.pt')), "
    "or pickle the model yourself and load it with "
    "mmexplain.persistence.load_model(path, trust_pickle=True) (CLI: --trust-pickle), "
    "only for files you trust."
)


def describe(obj: Any) -> str:
    """``'the class a.B'`` or ``'a a.B object'``, for error messages.

    Examples
    --------
    >>> from mmexplain.persistence._format import describe
    >>> describe(int), describe(1)
    ('the class builtins.int', 'a builtins.int object')
    """
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__} object"


def unsafe(where: str, obj: Any, why: str = "") -> TypeError:
    """The ``TypeError`` raised when ``obj`` (found at ``where``) cannot be saved."""
    return TypeError(
        f"cannot save {where} = {describe(obj)} in the safe model format{why}: "
        "it stores only JSON-like values and the classes listed in "
        "mmexplain.persistence.SAFE_CLASSES, so that loading never runs code. " + HOW_TO
    )
