"""Build a default network from per-sample input shapes (``module=None`` in the
estimators)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from mmexplain.modules.encoders import ConvEncoder, MLPEncoder, _validate_modality_names
from mmexplain.modules.fusion import LateFusionNet, LateFusionSegNet

__all__ = ["build_module"]

_TASKS = ("classification", "segmentation", "regression")


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(
            f"build_module: shape of modality {name!r} must be a tuple of ints, "
            f"got {shape!r}"
        ) from None
    if any(s < 1 for s in out):
        raise ValueError(
            f"build_module: shape of modality {name!r} has a non-positive size: {out}"
        )
    return out


def build_module(
    input_shapes: dict[str, tuple[int, ...]],
    n_classes: int,
    task: str = "classification",
    embedding_dim: int = 32,
    hidden: tuple[int, ...] = (64,),
    channels: tuple[int, ...] = (16, 32),
    fusion: str = "concat",
    head: str | nn.Module | None = None,
) -> nn.Module:
    """Default late-fusion network for the given per-sample input shapes.

    Parameters
    ----------
    input_shapes : dict of str to tuple of int
        Per-sample shape of each modality (without the batch dimension).
    n_classes : int
        Number of classes (of regression targets for ``task='regression'``).
    task : {'classification', 'segmentation', 'regression'}, default='classification'
        ``'classification'``: a :class:`LateFusionNet` whose encoders are
        chosen per modality: ``(F,)`` -> :class:`MLPEncoder`; ``(L, F)`` ->
        :class:`MLPEncoder` on the flattened ``L * F`` features; ``(C, H, W)``
        -> :class:`ConvEncoder`. ``'segmentation'``: a
        :class:`LateFusionSegNet`; every modality must be ``(C, H, W)`` with
        the same ``H, W``. ``'regression'``: the classification network with
        ``n_classes`` real outputs (its last layer is linear, so the outputs
        are the predictions).
    embedding_dim : int, default=32
        Embedding size of every encoder (classification), or the width of the
        decision conv layer (segmentation).
    hidden : tuple of int, default=(64,)
        Hidden widths of the MLP encoders and of the MLP fusion head.
    channels : tuple of int, default=(16, 32)
        Conv widths of the image encoders (UNet levels for segmentation).
    fusion : {'concat', 'sum'}, default='concat'
        Fusion of the classification network (see :class:`LateFusionNet`).
    head : None, 'linear' or torch.nn.Module, default=None
        Decision layers of the classification network (see
        :class:`LateFusionNet`); ``'linear'`` is what OGM-GE needs.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import build_module
    >>> net = build_module({"img": (3, 8, 8), "tab": (10,)}, n_classes=3)
    >>> type(net).__name__
    'LateFusionNet'
    >>> net(img=torch.randn(2, 3, 8, 8), tab=torch.randn(2, 10)).shape
    torch.Size([2, 3])
    >>> seg = build_module({"rgb": (3, 9, 9), "nir": (1, 9, 9)}, 4, task="segmentation")
    >>> seg(rgb=torch.randn(2, 3, 9, 9), nir=torch.randn(2, 1, 9, 9)).shape
    torch.Size([2, 4, 9, 9])
    """
    if not isinstance(input_shapes, Mapping) or not input_shapes:
        raise ValueError(
            "build_module expects input_shapes as a non-empty dict modality -> "
            f"per-sample shape, got {input_shapes!r}"
        )
    if task not in _TASKS:
        raise ValueError(
            f"build_module: task must be one of {list(_TASKS)}, got {task!r}"
        )
    names = _validate_modality_names(input_shapes.keys(), "build_module")
    shapes = {m: _shape(m, input_shapes[m]) for m in names}

    if task == "segmentation":
        ref = None
        for m, s in shapes.items():
            if len(s) != 3:
                raise ValueError(
                    f"build_module: segmentation needs every modality to be an "
                    f"image (C, H, W); modality {m!r} has per-sample shape {s}"
                )
            if ref is None:
                ref = (m, s[1:])
            elif s[1:] != ref[1]:
                raise ValueError(
                    f"build_module: segmentation needs the same H, W for all "
                    f"modalities; modality {m!r} has {s[1:]} but {ref[0]!r} has "
                    f"{ref[1]}"
                )
        return LateFusionSegNet(
            {m: s[0] for m, s in shapes.items()},
            n_classes,
            channels=tuple(channels),
            decoder_channels=embedding_dim,
        )

    encoders: dict[str, nn.Module] = {}
    for m, s in shapes.items():
        if len(s) == 1:
            encoders[m] = MLPEncoder(s[0], embedding_dim, tuple(hidden))
        elif len(s) == 2:
            encoders[m] = MLPEncoder(s[0] * s[1], embedding_dim, tuple(hidden))
        elif len(s) == 3:
            encoders[m] = ConvEncoder(s[0], embedding_dim, tuple(channels))
        else:
            raise ValueError(
                f"build_module: cannot build an encoder for modality {m!r} with "
                f"per-sample shape {s}; supported: (F,), (L, F) and (C, H, W)"
            )
    return LateFusionNet(
        encoders, n_classes, fusion=fusion, head=head, hidden=tuple(hidden)
    )
