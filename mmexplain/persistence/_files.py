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

from mmexplain.persistence._decode import ROOT_KINDS, Decoder
from mmexplain.persistence._encode import Encoder
from mmexplain.persistence._format import (
    DIGEST_KEY,
    FORMAT,
    FORMAT_VERSION,
    HEADER,
    MAX_HEADER_BYTES,
    MAX_HEADER_RATIO,
    MEMBER,
    RATIO_FREE_BYTES,
    READABLE_VERSIONS,
    ZIP_MAGIC,
    RefusedValue,
    header_digest,
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
    training ``history``), the networks' ``state_dict`` tensors and the fitted
    balancer's state (safetensors), and SHA-256 checksums of all of it.
    Loading it with :func:`load_model` never executes code from the file.
    Any file name works; ``.mmx`` is the convention.

    Parameters
    ----------
    estimator_or_pipeline : estimator or sklearn Pipeline
        A :class:`~mmexplain.MultimodalClassifier` /
        :class:`~mmexplain.MultimodalSegmenter` (``module=None`` or a module
        class such as :class:`~mmexplain.MMTMNet`), a
        :class:`~mmexplain.MultimodalRegressor`, a
        :class:`~mmexplain.ModalityTransformer` with scikit-learn scalers, a
        ``Pipeline`` of those, or scikit-learn's ``TransformedTargetRegressor``
        around a ``MultimodalRegressor`` (or a ``Pipeline`` ending in one)
        with a scaler or None as ``transformer`` (``func`` and
        ``inverse_func`` None).
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
    ValueError
        If a parameter has a value that :func:`load_model` would refuse (one
        that chooses deserialization, files, devices, compilation or worker
        processes: ``torch_load_kwargs={'weights_only': False}``,
        ``Pipeline(memory=...)``, ``device='meta'``, ``compile=True``,
        ``predict_nonlinearity`` other than ``'auto'``, ...): set it after
        loading; or a ``TransformedTargetRegressor``'s ``func`` or
        ``inverse_func`` (a function cannot be stored). Nothing is written
        then.

    Warns
    -----
    UserWarning
        When part of the fitted balancer's state cannot be stored: the loaded
        model predicts the same but refuses to continue training with
        ``partial_fit``.

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
    header[DIGEST_KEY] = header_digest(header)
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(
            f"cannot save the model: its description takes {len(text) / 2**20:.0f} MiB, "
            f"more than the {MAX_HEADER_BYTES // 2**20} MiB a model file may have (a "
            "long training history? net.history.clear() shortens it)"
        )
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    ratio = len(text) / max(1, len(packed.compress(text) + packed.flush()))
    # stored uncompressed when it would expand more than load_model accepts
    compress = (
        zipfile.ZIP_DEFLATED if ratio < MAX_HEADER_RATIO / 2 else zipfile.ZIP_STORED
    )
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            archive.writestr(HEADER, text, compress_type=compress)
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
    Only classes in :data:`SAFE_CLASSES` are imported and constructed, every
    parameter value is checked against an allow-list, the fitted attributes
    against their types, ranges and the tensors (networks are compared with
    the file on PyTorch's ``meta`` device before they are built), sizes are
    checked before anything is allocated, and the tensors are safetensors:
    nothing in the file can execute code. The header's SHA-256 checksums
    detect corrupted files and edits that did not recompute them; they are no
    signature (see :mod:`mmexplain.persistence`). Networks saved on a CUDA
    (MPS) device load on the CPU, with a warning, when there is none.
    Files of format version 1 load too.

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
        model file, or is truncated or corrupted (checksum mismatch), or was
        edited into something a model file may not hold: unknown classes, a
        parameter value outside the allow-list, fitted attributes that
        contradict each other or the tensors, members larger than the limits.
        The message names the file and the value at fault.

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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(
            f"the header repeats the key {next(k for k in keys if keys.count(k) > 1)!r}"
        )
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"the header holds {name}, which JSON does not have")


def _read_header(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """The header, its size and the archive's members checked before reading them."""
    names = archive.namelist()
    if HEADER not in names:
        raise ValueError(
            f"{path} is a zip file but not an mmexplain model file (it has no {HEADER})"
        )
    if len(set(names)) != len(names):
        raise ValueError("the archive repeats a member name")
    info = archive.getinfo(HEADER)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{HEADER} uses an unsupported compression")
    if info.file_size > MAX_HEADER_BYTES or (
        info.file_size > RATIO_FREE_BYTES
        and info.file_size > MAX_HEADER_RATIO * info.compress_size
    ):
        raise ValueError(
            f"{HEADER} would expand to {info.file_size} bytes (from "
            f"{info.compress_size}); a model file's header is at most "
            f"{MAX_HEADER_BYTES} bytes and expands at most {MAX_HEADER_RATIO} times"
        )
    header = json.loads(
        archive.read(HEADER).decode("utf-8"),
        object_pairs_hook=_no_duplicates,
        parse_constant=_no_constant,
    )
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an mmexplain model file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version!r}; this mmexplain reads "
            f"versions up to {FORMAT_VERSION} (upgrade mmexplain)"
        )
    assert version in READABLE_VERSIONS
    keys = {"format", "format_version", "versions", "root", "files"}
    if version >= 2:
        keys.add(DIGEST_KEY)
        if header.get(DIGEST_KEY) != header_digest(header):
            raise ValueError(
                "checksum mismatch in the header: the file is corrupted, or was edited "
                f"without recomputing its checksum ({DIGEST_KEY})"
            )
    if set(header) - keys or not {"root", "files"} <= set(header):
        raise ValueError(
            f"unexpected or missing header entries {sorted(set(header) ^ keys)}"
        )
    versions = header.get("versions", {})
    if not (
        isinstance(versions, dict)
        and all(isinstance(v, str) for v in versions.values())
    ):
        raise ValueError("bad 'versions' entry")
    files = header["files"]
    if not isinstance(files, dict):
        raise ValueError("bad 'files' entry")
    for member, entry in files.items():
        if not (
            MEMBER[version].match(member)
            and isinstance(entry, dict)
            and set(entry) == {"sha256", "size"}
            and isinstance(entry["sha256"], str)
            and isinstance(entry["size"], int)
        ):
            raise ValueError(f"bad 'files' entry for {member!r}")
        try:
            member_info = archive.getinfo(member)
        except KeyError:
            raise ValueError(
                f"tensor file {member!r} is missing from the archive"
            ) from None
        if (
            member_info.compress_type != zipfile.ZIP_STORED
            or member_info.file_size != entry["size"]
        ):
            raise ValueError(
                f"tensor file {member!r} is compressed or not of the size the header says "
                "(model files store tensors uncompressed)"
            )
    extra = set(names) - set(files) - {HEADER}
    if extra:
        raise ValueError(
            f"the archive has members the header does not list: {sorted(extra)}"
        )
    return header


def _load_safe(path: Path) -> Any:
    from safetensors import SafetensorError

    try:
        with zipfile.ZipFile(path) as archive:
            header = _read_header(archive, path)
            root = header["root"]
            if not (isinstance(root, dict) and set(root) == {"__object__"}):
                raise ValueError("the root entry must describe an object")
            decoder = Decoder(archive, header["files"], header["format_version"])
            model = decoder.object(root, "", ROOT_KINDS)
            unused = set(header["files"]) - decoder.read
            if unused:
                raise ValueError(f"tensor files {sorted(unused)} belong to no object")
            return model
    except RefusedValue as exc:
        raise RefusedValue(f"{path}: {exc}") from exc
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
        NotImplementedError,
        zlib.error,
        pickle.UnpicklingError,
        SafetensorError,
    ) as exc:
        raise ValueError(
            f"{path} is a truncated, corrupted or modified model file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
