"""Multimodal data sets as ``.npz`` files: one array per modality, plus the targets.

The format is plain :func:`numpy.savez`: each modality is stored under its
name, with the samples along the first axis, and the targets under
``target_key`` (``'y'`` by default). It is what ``mmexplain train --data``
and ``mmexplain explain`` read and ``mmexplain export-data`` writes.
:func:`load_npz` never unpickles (``allow_pickle=False``), so loading a file
runs no code from it; :func:`save_npz` refuses object arrays for that reason.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils._param_validation import validate_params

from mmexplain.data._dict import ModalityDict
from mmexplain.data.validation import check_X, check_y

__all__ = ["load_npz", "save_npz"]

# what a truncated or corrupted file raises while it is opened or read
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _read_arrays(path: str | os.PathLike[str], hint: str) -> dict[str, np.ndarray]:
    """Every array of the file, read without unpickling."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path} does not exist")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK\x03\x04", b"\x93NUMPY")):
        raise ValueError(f"{path} is not an .npz file; {hint}")
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(
            f"cannot read {path}: not a readable .npz file ({exc}); {hint}"
        ) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array; {hint}")
    arrays: dict[str, np.ndarray] = {}
    with data:
        for name in data.files:
            try:
                arrays[name] = data[name]
            except ValueError as exc:  # e.g. an object array: not read without pickle
                raise ValueError(
                    f"cannot read array {name!r} of {path}: {exc}"
                ) from exc
            except _READ_ERRORS as exc:
                raise ValueError(
                    f"cannot read array {name!r} of {path} (truncated or corrupted "
                    f"file?): {exc}"
                ) from exc
    return arrays


def _check_finite_rows(path: Any, X: Mapping[str, np.ndarray]) -> None:
    """Raise naming the modality and the first row holding NaN or inf."""
    for name, arr in X.items():
        if arr.dtype.kind != "f":
            continue
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"modality {name!r} of {path} contains NaN or infinite values (first "
                f"in row {rows[0]}; {len(rows)} row(s) in all)"
            )


@validate_params(
    {"path": [str, os.PathLike], "target_key": [str]},
    prefer_skip_nested_validation=True,
)
def load_npz(
    path: str | os.PathLike[str], *, target_key: str = "y"
) -> tuple[ModalityDict, np.ndarray]:
    """Read a multimodal data set from an ``.npz`` file.

    The file holds one array per modality, named like the modalities, with
    the samples along the first axis, and the targets under ``target_key``.
    Nothing is unpickled (``allow_pickle=False``), so no code from the file
    runs; an object array is refused.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file (as written by :func:`save_npz` or
        ``numpy.savez(path, y=y, **X)``).
    target_key : str, default='y'
        Name of the targets array.

    Returns
    -------
    X : ModalityDict
        The modalities, in the file's order; each numeric, at least 2-D
        ``(n_samples, ...)`` and free of NaN and infinite values.
    y : ndarray of shape (n_samples,)
        The targets (a ``(n_samples, 1)`` array is flattened).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    OSError
        ``path`` cannot be read.
    ValueError
        The file is not an ``.npz`` of arrays, is truncated, holds an object
        array, has no ``target_key`` array or no modality, or a modality or
        the targets are unusable (non-numeric, not one row per sample, NaN or
        infinite values, row counts that differ); the message names the array
        and the problem.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from mmexplain.data import load_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
    >>> np.savez(path, eo=np.zeros((4, 3)), sar=np.ones((4, 1, 8, 8)), y=[0, 1, 0, 1])
    >>> X, y = load_npz(path)
    >>> X
    ModalityDict(n_samples=4, {'eo': ndarray(4, 3), 'sar': ndarray(4, 1, 8, 8)})
    >>> y
    array([0, 1, 0, 1])
    >>> load_npz(path, target_key="label")
    Traceback (most recent call last):
        ...
    ValueError: ... has no 'label' array (the targets; ...); it has ['eo', 'sar', 'y']
    """
    hint = (
        "expected an .npz file (numpy.savez) with one array per modality and the "
        f"targets under {target_key!r}"
    )
    arrays = _read_arrays(path, hint)
    if target_key not in arrays:
        raise ValueError(
            f"{path} has no {target_key!r} array (the targets; target_key or "
            f"--target-key names it); it has {sorted(arrays)}"
        )
    y = arrays.pop(target_key)
    if not arrays:
        raise ValueError(
            f"{path} has no modality arrays besides the targets {target_key!r}"
        )
    try:
        X = check_X(arrays, ensure_finite=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    _check_finite_rows(path, X)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"the targets {target_key!r} of {path} have shape {y.shape}; expected one "
            "label per sample, shape (n_samples,)"
        )
    if len(y) != X.n_samples:
        raise ValueError(
            f"{path}: the targets {target_key!r} have {len(y)} rows but the "
            f"modalities have {X.n_samples}"
        )
    try:
        y = check_y(y, X.n_samples, name=f"the targets {target_key!r}")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return X, y


@validate_params(
    {
        "path": [str, os.PathLike],
        "X": "no_validation",
        "y": "no_validation",
        "target_key": [str],
        "compress": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def save_npz(
    path: str | os.PathLike[str],
    X: Mapping[str, Any],
    y: Any,
    *,
    target_key: str = "y",
    compress: bool = False,
) -> None:
    """Write a multimodal data set as an ``.npz`` file that :func:`load_npz` reads.

    Parameters
    ----------
    path : str or path-like
        The file to write, exactly as named (no ``.npz`` is appended).
    X : mapping of str to array-like
        ``{modality: array}`` with a shared first dimension.
    y : array-like of shape (n_samples,)
        The targets.
    target_key : str, default='y'
        Name of the targets array; must not be the name of a modality.
    compress : bool, default=False
        Write with :func:`numpy.savez_compressed`.

    Raises
    ------
    ValueError
        ``target_key`` names a modality, the modalities or targets are not
        usable arrays (checked as :func:`~mmexplain.data.check_X` and
        :func:`~mmexplain.data.check_y` do), or ``y`` has dtype object
        (stored only by pickling, which :func:`load_npz` refuses).
    OSError
        ``path`` cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from mmexplain.data import load_npz, save_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
    >>> save_npz(path, {"eo": np.zeros((3, 2))}, ["a", "b", "a"], target_key="label")
    >>> sorted(np.load(path).files)
    ['eo', 'label']
    >>> load_npz(path, target_key="label")[1]
    array(['a', 'b', 'a'], dtype='<U1')
    """
    if target_key in X:
        raise ValueError(
            f"target_key {target_key!r} is the name of a modality; pick another"
        )
    try:
        Xv = check_X(X, ensure_finite=False)
        y = check_y(y, Xv.n_samples, ensure_finite=False, name="y")
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    if y.dtype.kind == "O":  # the modalities are numeric (check_X)
        raise ValueError(
            "y has dtype object, which an .npz stores only pickled (and load_npz "
            "does not unpickle); convert it, e.g. with y.astype(str)"
        )
    arrays = {m: _to_numpy(v) for m, v in Xv.items()}
    arrays[target_key] = y
    with open(path, "wb") as fh:  # np.savez(name) would append '.npz'
        _savez(fh, arrays, compress)


def _savez(fh: Any, arrays: Mapping[str, np.ndarray], compress: bool) -> None:
    """What ``np.savez(fh, **arrays)`` (or ``savez_compressed``) writes.

    Written here, not through ``np.savez``'s keywords, so that any name can be
    stored: ``np.savez`` takes arrays named ``file`` or ``allow_pickle`` as its
    own arguments (an ``allow_pickle`` array was silently left out).
    """
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(fh, mode="w", compression=compression, allowZip64=True) as zf:
        for name, value in arrays.items():
            # as np.savez: one .npy member per array, zip64 always (numpy gh-10776)
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(
                    member, np.asanyarray(value), allow_pickle=False
                )


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU
        return value.detach().cpu().numpy()
    return np.asarray(value)
