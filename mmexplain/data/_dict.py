"""The multimodal container :class:`ModalityDict` and row helpers.

``X`` in mmexplain is a mapping ``{modality_name: array}`` whose values share
their first dimension ``N``. A plain :class:`dict` works everywhere;
:class:`ModalityDict` adds what scikit-learn's model-selection tools need
(``len(X) == N``, ``X.shape == (N,)``, row indexing) so that ``GridSearchCV``,
``cross_val_score`` and ``train_test_split`` can slice it.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
import torch

__all__ = [
    "ModalityDict",
    "n_samples",
    "take_rows",
    "permute_rows",
    "to_tensor_dict",
]


def _first_dim(value: Any) -> int:
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) == 0:
        raise TypeError(
            f"expected an array with a first (sample) dimension, got {type(value).__name__}"
        )
    return int(shape[0])


def _index_rows(value: Any, key: Any) -> Any:
    """Index the first dimension of a NumPy array or torch tensor."""
    if isinstance(value, torch.Tensor):
        if isinstance(key, np.ndarray):
            key = torch.from_numpy(np.ascontiguousarray(key))
        elif isinstance(key, list):
            key = torch.as_tensor(key, dtype=torch.long if not key else None)
        if isinstance(key, torch.Tensor) and key.device != value.device:
            key = key.to(value.device)
        return value[key]
    if isinstance(key, torch.Tensor):
        key = key.detach().cpu().numpy()
    if isinstance(key, list):
        key = np.asarray(key, dtype=np.intp if not key else None)
    return value[key]


def _positional(value: Any) -> Any:
    """Arrays as stored in a ModalityDict: pandas objects and lists become NumPy arrays.

    A pandas ``DataFrame``/``Series`` is indexed by *label*; stored as is, row
    selection by position (``X[idx]``, ``train_test_split``) would pick the
    wrong rows or columns.
    """
    if isinstance(value, list | tuple):
        return np.asarray(value)
    if not isinstance(value, np.ndarray | torch.Tensor) and callable(
        getattr(value, "to_numpy", None)
    ):
        return value.to_numpy()
    return value


class ModalityDict(dict):
    """A ``dict`` of modalities that behaves like an array of ``N`` samples.

    Compatible with skorch's ``SliceDict``: ``len(X)`` is the number of
    samples, ``X.shape == (N,)``, and indexing with a slice, an integer array
    or a boolean mask returns a new :class:`ModalityDict` holding those rows of
    every modality. A string key returns that modality's array. Values may be
    NumPy arrays (including memory-mapped ones) or torch tensors; they are
    stored as given (never copied or modified). pandas objects are converted
    to NumPy arrays on insertion, so rows are always selected by position.
    Every mutation (``X[m] = ...``, ``update``, ``|=``, ``setdefault``) checks
    that all modalities keep the same number of rows.

    Parameters
    ----------
    *args, **kwargs
        Anything :class:`dict` accepts: a mapping ``{name: array}`` and/or
        keyword arguments. Every value must have the same first dimension.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityDict
    >>> X = ModalityDict(eo=np.zeros((5, 3)), sar=np.ones((5, 2, 4, 4)))
    >>> len(X), X.shape, X.modalities
    (5, (5,), ('eo', 'sar'))
    >>> X[1:3]["sar"].shape
    (2, 2, 4, 4)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.update(*args, **kwargs)

    # -- dict protocol -------------------------------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(
                f"modality names must be strings, got {key!r} ({type(key).__name__})"
            )
        value = _positional(value)
        n = _first_dim(value) if hasattr(value, "shape") else None
        if n is None:
            raise TypeError(
                f"modality {key!r} must be a NumPy array or torch tensor, "
                f"got {type(value).__name__}"
            )
        others = [k for k in dict.keys(self) if k != key]
        if others:
            n_ref = _first_dim(dict.__getitem__(self, others[0]))
            if n != n_ref:
                raise ValueError(
                    f"modality {key!r} has {n} samples but modality {others[0]!r} "
                    f"has {n_ref}; all modalities need the same number of rows"
                )
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > 1:
            raise TypeError(
                f"update expected at most 1 positional argument, got {len(args)}"
            )
        items: list[tuple[Any, Any]] = []
        if args:
            other = args[0]
            items.extend(other.items() if isinstance(other, Mapping) else other)
        items.extend(kwargs.items())
        # validate every item against the result before changing anything, so
        # a failed update leaves the mapping as it was
        trial = ModalityDict.__new__(ModalityDict)
        dict.update(trial, dict.items(self))
        for key, value in items:
            ModalityDict.__setitem__(trial, key, value)
        for key, _ in items:
            super().__setitem__(key, dict.__getitem__(trial, key))

    def __ior__(self, other: Any) -> ModalityDict:
        self.update(other)
        return self

    def __or__(self, other: Any) -> ModalityDict:
        if not isinstance(other, Mapping):
            return NotImplemented
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other: Any) -> ModalityDict:
        if not isinstance(other, Mapping):
            return NotImplemented
        out = ModalityDict(other)
        out.update(self)
        return out

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        if isinstance(key, Integral) and not isinstance(key, bool):
            # one sample: a plain dict without the batch dimension
            return {k: v[key] for k, v in self.items()}
        return ModalityDict({k: _index_rows(v, key) for k, v in self.items()})

    def __len__(self) -> int:
        if not dict.__len__(self):
            return 0
        return _first_dim(next(iter(self.values())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping) or list(self.keys()) != list(other.keys()):
            return False
        for k, v in self.items():
            w = other[k]
            a = (
                v.detach().cpu().numpy()
                if isinstance(v, torch.Tensor)
                else np.asarray(v)
            )
            b = (
                w.detach().cpu().numpy()
                if isinstance(w, torch.Tensor)
                else np.asarray(w)
            )
            if a.shape != b.shape or not np.array_equal(a, b):
                return False
        return True

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    def __reduce__(self):
        return (type(self), (dict(self.items()),))

    def copy(self) -> ModalityDict:
        """Shallow copy: a new mapping holding the same arrays."""
        return ModalityDict(dict(self.items()))

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{k!r}: {type(v).__name__}{tuple(v.shape)}" for k, v in self.items()
        )
        return f"ModalityDict(n_samples={len(self)}, {{{parts}}})"

    # -- array-like API ------------------------------------------------
    @property
    def shape(self) -> tuple[int]:
        """``(N,)``: what scikit-learn reads to count samples."""
        return (len(self),)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in order."""
        return tuple(self.keys())

    @property
    def n_samples(self) -> int:
        """Number of samples ``N``."""
        return len(self)


# ----------------------------------------------------------------------------
# row helpers
# ----------------------------------------------------------------------------
def n_samples(X: Mapping[str, Any]) -> int:
    """Number of samples of a modality mapping (first dimension of its values).

    Parameters
    ----------
    X : mapping of str to array-like
        Modalities with the samples along the first axis.

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import n_samples
    >>> n_samples({"eo": np.zeros((4, 2)), "sar": np.zeros((4, 1, 2, 2))})
    4
    """
    if isinstance(X, ModalityDict):
        return len(X)
    return _first_dim(next(iter(X.values())))


def take_rows(X: Mapping[str, Any], index: Any) -> ModalityDict:
    """Rows ``index`` of every modality, as a new :class:`ModalityDict`.

    Parameters
    ----------
    X : mapping of str to array-like
        Modalities with the samples along the first axis (arrays, tensors,
        memory-mapped arrays, pandas objects: indexed by position).
    index : array-like of int, slice or int
        The rows, by position.

    Returns
    -------
    ModalityDict

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import take_rows
    >>> X = {"eo": np.arange(8.0).reshape(4, 2), "sar": np.ones((4, 1, 2, 2))}
    >>> Xs = take_rows(X, [0, 2])
    >>> Xs
    ModalityDict(n_samples=2, {'eo': ndarray(2, 2), 'sar': ndarray(2, 1, 2, 2)})
    >>> Xs["eo"]
    array([[0., 1.],
           [4., 5.]])
    """
    return ModalityDict({k: _index_rows(v, index) for k, v in X.items()})


def permute_rows(X: Mapping[str, Any], modality: str, permutation: Any) -> ModalityDict:
    """A new mapping where only ``modality``'s rows are reordered by ``permutation``.

    Parameters
    ----------
    X : mapping of str to array-like
        Modalities with the samples along the first axis; left unchanged.
    modality : str
        The modality whose rows are reordered; a ``ValueError`` when ``X``
        has no such modality.
    permutation : array-like of int
        The new order of its rows (row ``i`` of the result is row
        ``permutation[i]`` of ``X[modality]``).

    Returns
    -------
    ModalityDict
        The other modalities are the same objects as in ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import permute_rows
    >>> X = {"eo": np.arange(4.0).reshape(4, 1), "sar": np.arange(4.0).reshape(4, 1)}
    >>> Xp = permute_rows(X, "eo", [3, 2, 1, 0])
    >>> Xp["eo"].ravel(), Xp["sar"].ravel()
    (array([3., 2., 1., 0.]), array([0., 1., 2., 3.]))
    >>> X["eo"].ravel()  # the input is left as it was
    array([0., 1., 2., 3.])
    """
    if modality not in X:
        raise ValueError(f"unknown modality {modality!r}; expected one of {list(X)}")
    out = ModalityDict(dict(X.items()))
    out[modality] = _index_rows(X[modality], permutation)
    return out


def to_tensor_dict(
    X: Mapping[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Convert every modality to a tensor of ``dtype`` on ``device``.

    Returns new tensors whenever a conversion is needed; never writes into the
    caller's arrays (a tensor that already has the right dtype and device is
    returned as is, and is only ever read).

    Parameters
    ----------
    X : mapping of str to array-like
        Modalities (arrays, tensors or nested lists).
    dtype : torch.dtype, default=torch.float32
        The tensors' data type.
    device : str, torch.device or None, default=None
        Where the tensors live; None keeps a tensor where it is and puts
        converted arrays on the CPU.

    Returns
    -------
    dict of str to Tensor

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data import to_tensor_dict
    >>> T = to_tensor_dict({"eo": np.zeros((4, 2)), "sar": [[1], [2], [3], [4]]})
    >>> {m: (t.dtype, tuple(t.shape)) for m, t in T.items()}
    {'eo': (torch.float32, (4, 2)), 'sar': (torch.float32, (4, 1))}
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in X.items():
        if isinstance(v, torch.Tensor):
            t = v.detach()  # never let training write into the caller's .grad
        else:
            # from_numpy shares memory; the .to() below makes the converted copy
            a = np.ascontiguousarray(np.asarray(v))
            if not a.flags.writeable:  # e.g. pandas 3's to_numpy(), a read-only memmap
                a = np.array(a)
            t = torch.from_numpy(a)
        out[k] = t.to(device=device if device is not None else t.device, dtype=dtype)
    return out
