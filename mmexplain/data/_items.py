"""Batches of a user's torch Dataset: items stacked per modality and checked.

A map-style Dataset cannot be validated up front without reading all of it,
so its items are checked as they are collated, batch by batch, with the same
rules :func:`~mmexplain.data.check_X` applies to arrays:

- every item holds the modalities of the first item, with its per-sample
  shapes (a ``ValueError`` naming the item, the modality, expected and
  found);
- values are real and numeric (a ``TypeError`` for complex, string or object
  values, as for arrays), and finite once cast to float32, the dtype the
  models compute in (a ``ValueError`` naming the modality and the item).

The structural checks cost nothing on a batch that passes (they run when
stacking fails or gives an unexpected shape); the value check is one
reduction per modality, on the stacked batch wherever it lives, and one read
of a single flag per batch (the only synchronization when the items are
device tensors); a failing batch is looked at again only to say where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

__all__ = ["ItemLayout", "collate_items", "root_index", "split_item"]

_F32_MAX = float(np.finfo(np.float32).max)


def split_item(item: Any) -> tuple[Mapping[str, Any], Any]:
    """``(X, target)`` of one Dataset item (``target`` None for ``{modality: x}``)."""
    if isinstance(item, Mapping):
        return item, None
    if (
        isinstance(item, tuple | list)
        and len(item) == 2
        and isinstance(item[0], Mapping)
    ):
        return item[0], item[1]
    raise TypeError(
        "a Dataset for mmexplain must return ({modality: tensor}, target) or "
        f"{{modality: tensor}} per item; got {type(item).__name__}"
    )


def root_index(dataset: Any, i: int) -> int:
    """The index in the user's Dataset of item ``i`` of ``dataset`` (through ``Subset``)."""
    while isinstance(dataset, Subset):
        i, dataset = int(dataset.indices[i]), dataset.dataset
    return int(i)


def _shape_of(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in (shape if shape is not None else np.shape(value)))


@dataclass(frozen=True)
class ItemLayout:
    """Modalities and per-sample shapes of a Dataset's first item: what every item needs."""

    modalities: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, X0: Mapping[str, Any]) -> ItemLayout:
        """The layout of a first item ``X0`` (modality names must be strings)."""
        for m in X0:
            if not isinstance(m, str):
                raise TypeError(
                    f"modality names must be strings, got {m!r} ({type(m).__name__})"
                )
        if not X0:
            raise ValueError(
                "the first item of the Dataset has no modalities: items must be "
                "({modality: tensor}, target) with at least one modality"
            )
        return cls(tuple(X0), {m: _shape_of(v) for m, v in X0.items()})


def _as_tensor(value: Any) -> torch.Tensor:
    return (
        value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    )


def _dtype_problem(m: str, value: Any, where: str) -> TypeError | None:
    """A TypeError for a complex or non-numeric value, else None."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            return TypeError(
                f"modality {m!r} has complex dtype {value.dtype} in {where}; "
                "the models need real values"
            )
        return None
    kind = np.asarray(value).dtype
    if kind.kind == "c":
        return TypeError(
            f"modality {m!r} has complex dtype {kind} in {where}; "
            "the models need real values"
        )
    if kind.kind not in "biuf":
        return TypeError(
            f"modality {m!r} has non-numeric dtype {kind} in {where}; "
            "items must hold numeric arrays or tensors"
        )
    return None


class _Where:
    """Names item ``k`` of a batch as the user's Dataset index (computed on failure only)."""

    def __init__(self, dataset: Any, rows: Sequence[int]) -> None:
        self.dataset, self.rows = dataset, rows

    def __call__(self, k: int) -> str:
        i = int(self.rows[k])
        if self.dataset is not None:
            i = root_index(self.dataset, i)
        return f"item {i} of the Dataset"


def _check_keys(
    Xs: Sequence[Mapping[str, Any]], layout: ItemLayout, where: _Where
) -> None:
    """Every item holds exactly the first item's modalities (one C-level pass)."""
    if sum(map(len, Xs)) == len(layout.modalities) * len(Xs):
        return  # the counts agree: a missing modality shows when stacking it
    for k, X in enumerate(Xs):
        missing = [m for m in layout.modalities if m not in X]
        extra = [m for m in X if m not in layout.shapes]
        if missing or extra:
            _raise_keys(missing, extra, list(X), layout, where(k))


def _raise_keys(
    missing: list[str],
    extra: list[Any],
    found: list[Any],
    layout: ItemLayout,
    where: str,
) -> None:
    if missing:
        raise ValueError(
            f"{where} lacks modality {missing[0]!r}: it has modalities {found} but "
            f"the first item has {list(layout.modalities)}; every item needs the "
            "same modalities"
        )
    raise ValueError(
        f"{where} has modality {extra[0]!r}, which the first item lacks: it has "
        f"modalities {found} but the first item has {list(layout.modalities)}; "
        "every item needs the same modalities"
    )


def _stack(
    m: str,
    values: list[Any],
    expected: tuple[int, ...],
    where: _Where,
) -> torch.Tensor:
    """The values of modality ``m`` stacked into ``(B, *expected)`` (dtype kept)."""
    try:
        batch = torch.stack([_as_tensor(v) for v in values])
    except (RuntimeError, TypeError, ValueError):
        batch = None
    if (
        batch is not None
        and tuple(batch.shape[1:]) == expected
        and not batch.is_complex()
    ):
        return batch
    # a failing batch: find the first item at fault, to say where and why
    for k, v in enumerate(values):
        problem = _dtype_problem(m, v, where(k))
        if problem is not None:
            raise problem
        found = _shape_of(v)
        if found != expected:
            raise ValueError(
                f"modality {m!r} has per-sample shape {found} in {where(k)} but "
                f"{expected} in the first item; every item needs the same shape"
            )
    raise TypeError(  # pragma: no cover - every failure above is named
        f"modality {m!r} could not be stacked into a batch of shape {expected}"
    )


def _check_finite(
    batch: dict[str, torch.Tensor], raw: dict[str, torch.Tensor], where: _Where
) -> None:
    """Finite as float32: one flag read for the whole batch, a second look only on failure."""
    names = [m for m, t in raw.items() if t.is_floating_point()]
    if not names:
        return
    flags = torch.stack([torch.isfinite(batch[m]).all() for m in names])
    if bool(flags.all()):  # the batch's one host read
        return
    for m, ok in zip(names, flags.tolist()):
        if ok:
            continue
        bad = ~torch.isfinite(batch[m]).reshape(len(batch[m]), -1).all(dim=1)
        k = int(bad.nonzero()[0, 0])
        row = raw[m][k]
        if not bool(torch.isfinite(row).all()):
            raise ValueError(
                f"modality {m!r} contains NaN or infinite values in {where(k)}"
            )
        raise ValueError(
            f"modality {m!r} has values too large for float32 (|x| > {_F32_MAX:.3g}) "
            f"in {where(k)}, the dtype the models compute in; rescale it"
        )


def collate_items(
    Xs: Sequence[Mapping[str, Any]],
    layout: ItemLayout,
    *,
    rows: Sequence[int],
    modalities: Sequence[str] | None = None,
    dataset: Any = None,
    check: bool = True,
) -> dict[str, torch.Tensor]:
    """Stack the items ``Xs`` per modality into float32 tensors, checked.

    Parameters
    ----------
    Xs : sequence of mappings
        The ``{modality: array}`` part of each item of the batch.
    layout : ItemLayout
        The first item's modalities and per-sample shapes.
    rows : sequence of int
        The index of each item in ``dataset`` (named in error messages).
    modalities : sequence of str, optional
        The modalities to return (default: all of ``layout``).
    dataset : Dataset, optional
        The Dataset ``rows`` index, to name the user's item through
        ``Subset`` wrappers.
    check : bool, default=True
        Check the values (real, numeric, finite as float32). Missing
        modalities and shapes are always checked: a batch cannot be built
        without them.

    Returns
    -------
    dict of str to tensor
        ``{modality: float32 tensor of shape (len(Xs), *shape)}``.

    Raises
    ------
    ValueError
        An item lacks a modality, has one the first item lacks, has another
        per-sample shape, or (``check``) holds NaN/inf or values beyond
        float32's range.
    TypeError
        An item holds complex or non-numeric values.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.data._items import ItemLayout, collate_items
    >>> items = [{"a": np.zeros(2)}, {"a": np.ones(2)}]
    >>> collate_items(items, ItemLayout.of(items[0]), rows=[0, 1])["a"].shape
    torch.Size([2, 2])
    >>> collate_items([{"a": np.zeros(2)}, {"a": np.ones(3)}],
    ...               ItemLayout.of(items[0]), rows=[0, 7])
    Traceback (most recent call last):
    ...
    ValueError: modality 'a' has per-sample shape (3,) in item 7 of the Dataset but (2,) in the first item; every item needs the same shape
    """
    where = _Where(dataset, rows)
    mods = tuple(modalities) if modalities is not None else layout.modalities
    if not Xs:
        return {m: torch.empty((0, *layout.shapes[m])) for m in mods}
    _check_keys(Xs, layout, where)
    raw: dict[str, torch.Tensor] = {}
    for m in mods:
        try:
            values = [X[m] for X in Xs]
        except KeyError:
            k = next(k for k, X in enumerate(Xs) if m not in X)
            _raise_keys([m], [], list(Xs[k]), layout, where(k))
        raw[m] = _stack(m, values, layout.shapes[m], where)
    batch = {m: t.to(torch.float32) for m, t in raw.items()}
    if check:
        _check_finite(batch, raw, where)
    return batch
