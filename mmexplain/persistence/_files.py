"""Writing and reading model files: :func:`save_model` and :func:`load_model`."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

from mmexplain.persistence._decode import Decoder
from mmexplain.persistence._encode import Encoder
from mmexplain.persistence._format import (
    FORMAT,
    FORMAT_VERSION,
    HEADER,
    ZIP_MAGIC,
    unsafe,
)
from mmexplain.persistence.allowlist import allowed, allowed_name

__all__ = ["load_model", "save_model"]


def _versions() -> dict[str, str]:
    out = {}
    for name in ("mmexplain", "torch", "sklearn", "skorch", "numpy"):
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):  # pragma: no cover
            pass
    return out


def save_model(estimator_or_pipeline: Any, path: str | os.PathLike[str]) -> Path:
    """Save a (fitted or unfitted) model in mmexplain's safe file format.

    The file is a zip holding a JSON description of the estimator (class
    names from :data:`SAFE_CLASSES`, ``get_params`` values, fitted attributes
    such as ``classes_``, ``modalities_``, ``input_shapes_``, ``seed_`` and the
    training ``history``) and the networks' ``state_dict`` tensors. Loading it
    with :func:`load_model` never executes code from the file. Any file name
    works; ``.mmx`` is the convention.

    Parameters
    ----------
    estimator_or_pipeline : estimator or sklearn Pipeline
        A :class:`~mmexplain.MultimodalClassifier` /
        :class:`~mmexplain.MultimodalSegmenter` (``module=None`` or a module
        class such as :class:`~mmexplain.MMTMNet`), a
        :class:`~mmexplain.ModalityTransformer` with scikit-learn scalers, or a
        ``Pipeline`` of those.
    path : str or path-like
        Where to write. The file is written to a temporary name and renamed,
        so an existing file is replaced only by a complete one.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If part of the model cannot be described without pickle (your own
        module class, a module instance, a custom callable or transformer); the
        message names it and says how to save such a model instead. Nothing
        is written then.

    Examples
    --------
    >>> import os, tempfile
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.persistence import load_model, save_model
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> path = save_model(clf, os.path.join(tempfile.mkdtemp(), "model.mmx"))
    >>> bool((load_model(path).predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    encoder = Encoder()
    root_name = allowed_name(type(estimator_or_pipeline))
    if root_name is None or allowed()[root_name][1] == "class":
        raise unsafe("the model", estimator_or_pipeline)
    root = encoder.value(estimator_or_pipeline, type(estimator_or_pipeline).__name__)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "root": root,
        "files": {
            member: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for member, data in encoder.files.items()
        },
    }
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            archive.writestr(HEADER, text, compress_type=zipfile.ZIP_DEFLATED)
            for member, data in encoder.files.items():
                archive.writestr(member, data, compress_type=zipfile.ZIP_STORED)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_model(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """Load a model written by :func:`save_model` (or, on request, a pickle).

    The safe format is recognized by its content, whatever the file name.
    Only classes in :data:`SAFE_CLASSES` are imported and constructed, and the
    weights are read with ``torch.load(..., weights_only=True)``: nothing in
    the file can execute code. Networks saved on a CUDA device load on the
    CPU (with a warning) when CUDA is not available.

    Parameters
    ----------
    path : str or path-like
        The model file.
    trust_pickle : bool, default=False
        Also accept a pickle file (e.g. ``model.pkl`` from ``pickle.dump``).
        **Unpickling runs any code the file contains**: pass True only for
        files you created or trust. A ``UserWarning`` says so each time.

    Returns
    -------
    estimator or Pipeline
        Fitted as it was saved: ``predict_proba`` gives the same values.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is a pickle and ``trust_pickle`` is False, or is not a
        model file, or is truncated, corrupted or tampered with (unknown
        classes, bad structure, checksum mismatch).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmexplain import ModalityTransformer, MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.persistence import load_model, save_model
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> pipe = make_pipeline(
    ...     ModalityTransformer({m: StandardScaler() for m in X}),
    ...     MultimodalClassifier(max_epochs=2, random_state=0),
    ... ).fit(X, y)
    >>> path = save_model(pipe, os.path.join(tempfile.mkdtemp(), "pipe.mmx"))
    >>> loaded = load_model(path)
    >>> [name for name, _ in loaded.steps]
    ['modalitytransformer', 'multimodalclassifier']
    >>> bool((loaded.predict(X) == pipe.predict(X)).all())
    True
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == ZIP_MAGIC:
        return _load_safe(path)
    if not head:
        raise ValueError(f"{path} is empty, not a model file")
    looks_pickled = head[:1] == b"\x80" or path.suffix.lower() in (".pkl", ".pickle")
    if not trust_pickle:
        if looks_pickled:
            raise ValueError(
                f"{path} is a pickle file. Loading a pickle can execute arbitrary code, "
                "so load_model refuses it by default. If you trust the file, load it "
                "with load_model(path, trust_pickle=True) (CLI: --trust-pickle) and "
                "re-save it with mmexplain.persistence.save_model to get a safe file."
            )
        raise ValueError(
            f"{path} is not an mmexplain model file (expected the zip written by "
            "mmexplain.persistence.save_model)"
        )
    warnings.warn(
        f"loading the pickle {path}: unpickling executes any code the file contains; "
        "do this only for files you trust, and re-save the model with "
        "mmexplain.persistence.save_model",
        UserWarning,
        stacklevel=2,
    )
    with open(path, "rb") as fh:
        try:
            return pickle.load(fh)  # noqa: S301 - explicitly trusted by the caller
        except (pickle.UnpicklingError, EOFError, ImportError, AttributeError) as exc:
            raise ValueError(
                f"cannot unpickle {path}: {type(exc).__name__}: {exc}"
            ) from exc


def _load_safe(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                raw = archive.read(HEADER)
            except KeyError:
                raise ValueError(
                    f"{path} is a zip file but not an mmexplain model file (it has no "
                    f"{HEADER})"
                ) from None
            header = json.loads(raw.decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError(f"{path} is not an mmexplain model file")
            version = header.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ValueError(
                    f"{path} has format version {version!r}; this mmexplain reads "
                    f"versions up to {FORMAT_VERSION} (upgrade mmexplain)"
                )
            files = header.get("files", {})
            if not isinstance(files, dict) or not all(
                isinstance(v, dict) for v in files.values()
            ):
                raise ValueError("bad 'files' entry")
            root = header.get("root")
            if not (isinstance(root, dict) and set(root) == {"__object__"}):
                raise ValueError("the root entry must describe an object")
            return Decoder(archive, files).value(root)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"{path} is a corrupted or modified model file: {exc}"
        ) from exc
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RuntimeError,
        UnicodeDecodeError,
        OverflowError,
        zlib.error,
        pickle.UnpicklingError,
    ) as exc:
        raise ValueError(
            f"{path} is a truncated, corrupted or modified model file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
