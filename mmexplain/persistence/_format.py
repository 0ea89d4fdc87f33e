"""Constants of the safe model format, its limits, and the errors it raises."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

#: version of the file format written by :func:`~mmexplain.persistence.save_model`
#: (1: ``torch.save`` tensor members; 2: safetensors members, a header checksum,
#: the fitted balancer's state)
FORMAT_VERSION = 2
#: versions :func:`~mmexplain.persistence.load_model` reads
READABLE_VERSIONS = (1, 2)
FORMAT = "mmexplain-model"
HEADER = "mmexplain-model.json"
ZIP_MAGIC = b"PK\x03\x04"
#: the header key holding the SHA-256 of the rest of the header (version 2)
DIGEST_KEY = "header_sha256"
#: tensor members of each version
MEMBER = {
    1: re.compile(r"^tensors/\d+\.pt$"),
    2: re.compile(r"^tensors/\d+\.safetensors$"),
}

# -- limits, checked before anything is allocated --------------------------------
#: largest header (uncompressed JSON) a file may have
MAX_HEADER_BYTES = 256 * 2**20
#: a compressed header may expand at most this many times (save_model stores the
#: header uncompressed when it would expand more) ...
MAX_HEADER_RATIO = 20
#: ... once it is larger than this
RATIO_FREE_BYTES = 2**20
#: most entries of one sequence in a network's constructor arguments, and most
#: modalities of a model (a longer one would build that many layers)
MAX_ITEMS = 4096
#: most elements of one sample of one modality (``input_shapes_``)
MAX_SAMPLE_ELEMENTS = 2**32
#: a decoded array or string may take at most this many times the bytes of its
#: JSON text (plus a little), whatever its declared dtype says
MAX_EXPANSION = 16
#: most DataLoader worker processes a model file may ask for
MAX_WORKERS = 64

# fitted attributes of the skorch estimators kept in the file
NET_FITTED = (
    "classes_inferred_",
    "modalities_",
    "input_shapes_",
    "seed_",
    "n_classes_",
    "n_outputs_",
    "y_ndim_",
)
ATTR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_$")
#: tags of plain values (data, never objects)
PLAIN_TAGS = (
    "__tuple__",
    "__ndarray__",
    "__scalar__",
    "__float__",
    "__dict__",
)
TAGS = ("__object__", "__module__", "__class__", *PLAIN_TAGS)
HOW_TO = (
    "Save the weights with net.save_params(f_params='weights.pt') and rebuild the "
    "estimator in code (net.initialize(); net.load_params(f_params='weights.pt')), "
    "or pickle the model yourself and load it with "
    "mmexplain.persistence.load_model(path, trust_pickle=True) (CLI: --trust-pickle), "
    "only for files you trust."
)


class RefusedValue(ValueError):
    """A parameter or fitted value a model file may not hold (see ``_policy``)."""


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


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unsafe(where: str, obj: Any, why: str = "") -> TypeError:
    """The ``TypeError`` raised when ``obj`` (found at ``where``) cannot be saved."""
    return TypeError(
        f"cannot save {where} = {describe(obj)} in the safe model format{why}: "
        "it stores only JSON-like values and the classes listed in "
        "mmexplain.persistence.SAFE_CLASSES, so that loading never runs code. " + HOW_TO
    )


def header_digest(header: dict[str, Any]) -> str:
    """SHA-256 of the header without its own digest, in a canonical JSON form.

    What :func:`~mmexplain.persistence.save_model` writes under
    :data:`DIGEST_KEY`. With the SHA-256 of each tensor member listed in the
    header, it covers the whole file: a corrupted file, or one edited
    without recomputing them, no longer matches. It is a checksum, not a
    signature: whoever edits a file can recompute it.

    Examples
    --------
    >>> from mmexplain.persistence._format import header_digest
    >>> header_digest({"a": 1}) == header_digest({"a": 1, "header_sha256": "x"})
    True
    >>> header_digest({"a": 1}) == header_digest({"a": 2})
    False
    """
    body = {k: v for k, v in header.items() if k != DIGEST_KEY}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()
