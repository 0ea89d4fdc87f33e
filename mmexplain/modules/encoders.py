"""Per-modality encoders: vectors (:class:`MLPEncoder`), images (:class:`ConvEncoder`)
and dense feature maps for segmentation (:class:`UNetEncoder`).

Every encoder maps a batch of one modality to a per-sample embedding and exposes
the embedding size as ``out_features`` (``out_channels`` for :class:`UNetEncoder`),
which :class:`~mmexplain.modules.LateFusionNet` reads to size its fusion head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MLPEncoder", "ConvEncoder", "UNetEncoder"]


# ---------------------------------------------------------------------------
# helpers shared by the modules of this subpackage
# ---------------------------------------------------------------------------

_RESERVED_NAMES = frozenset({"rebalance", "ablate"})
_PROBE = nn.ModuleDict()  # names that already exist on a ModuleDict instance


def _validate_modality_names(names: Iterable[object], owner: str) -> tuple[str, ...]:
    """Return ``names`` as a tuple after checking they can key a ``ModuleDict``."""
    names = tuple(names)
    if not names:
        raise ValueError(f"{owner} needs at least one modality, got none")
    for name in names:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"{owner}: modality names must be non-empty strings without '.', "
                f"got {name!r}"
            )
        if hasattr(_PROBE, name):
            raise ValueError(
                f"{owner}: modality name {name!r} clashes with an attribute of "
                "torch.nn.Module; rename the modality"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: duplicate modality names in {list(names)}")
    return cast("tuple[str, ...]", names)  # each checked to be a str above


def _check_modalities(owner: str, expected: Sequence[str], got: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first unknown or missing modality."""
    got = list(got)
    for name in got:
        if name not in expected:
            raise ValueError(
                f"{owner} got unknown modality {name!r}; expected {list(expected)}"
            )
    for name in expected:
        if name not in got:
            raise ValueError(
                f"{owner} is missing modality {name!r}; expected {list(expected)}"
            )


def _shape_str(x: Tensor) -> str:
    return str(tuple(x.shape))


def _as_mapping(obj: Mapping[str, int] | None, owner: str, what: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise ValueError(f"{owner}: {what} must be a dict, got {type(obj).__name__}")
    return dict(obj)


def _pool_if_possible(x: Tensor) -> Tensor:
    """2x2 max pooling, skipped when either spatial size is below 2."""
    if x.shape[-1] >= 2 and x.shape[-2] >= 2:
        return F.max_pool2d(x, 2)
    return x


class _MaybePool2d(nn.Module):
    """``MaxPool2d(2)`` that leaves maps smaller than 2x2 untouched (never pools
    below 1x1)."""

    def forward(self, x: Tensor) -> Tensor:
        return _pool_if_possible(x)


# ---------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------


class MLPEncoder(nn.Module):
    """Multilayer perceptron encoder for vector (or flattened) modalities.

    ``Linear -> ReLU [-> Dropout]`` for each hidden width, then a final
    ``Linear`` to ``out_features`` (no activation on the embedding).

    Parameters
    ----------
    in_features : int
        Number of input features per sample. Inputs with more than two
        dimensions are flattened from dimension 1, so this is the product of
        the per-sample shape (e.g. ``L * F`` for ``(N, L, F)`` inputs).
    out_features : int, default=32
        Size of the embedding.
    hidden : tuple of int, default=(64,)
        Widths of the hidden layers; ``()`` gives a single linear map.
    dropout : float, default=0.0
        Dropout probability after every hidden activation.

    Attributes
    ----------
    in_features, out_features : int
    net : torch.nn.Sequential

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import MLPEncoder
    >>> enc = MLPEncoder(20, out_features=8)
    >>> enc(torch.randn(4, 20)).shape
    torch.Size([4, 8])
    >>> MLPEncoder(6, 8)(torch.randn(4, 2, 3)).shape  # flattened to (4, 6)
    torch.Size([4, 8])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 32,
        hidden: tuple[int, ...] = (64,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(
                "MLPEncoder needs in_features >= 1 and out_features >= 1, got "
                f"{in_features} and {out_features}"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        layers: list[nn.Module] = []
        width = self.in_features
        for h in tuple(hidden):
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, self.out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``(N, in_features)`` or ``(N, ...)``."""
        if not isinstance(x, Tensor) or x.dim() < 2:
            shape = _shape_str(x) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"MLPEncoder expects input of shape (N, {self.in_features}) "
                f"(or (N, ...) flattened from dim 1), got {shape}"
            )
        if x.dim() > 2:
            x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"MLPEncoder expects input of shape (N, {self.in_features}) "
                f"after flattening from dim 1, got {_shape_str(x)}"
            )
        return self.net(x)


class ConvEncoder(nn.Module):
    """Small convolutional encoder for image modalities.

    One stage per width in ``channels``: ``Conv2d(kernel_size, padding='same')
    -> ReLU -> MaxPool2d(2)``, where pooling is skipped once a spatial size is
    below 2 (maps never shrink below 1x1). No batch normalization, so the
    encoder is a per-sample function in both train and eval mode. A global
    average pool and a ``Linear`` give the embedding.

    Parameters
    ----------
    in_channels : int
        Number of input channels ``C``.
    out_features : int, default=32
        Size of the embedding.
    channels : tuple of int, default=(16, 32)
        Output width of each convolutional stage.
    kernel_size : int, default=3
        Convolution kernel size.

    Attributes
    ----------
    in_channels, out_features : int
    stages : torch.nn.Sequential
    fc : torch.nn.Linear

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import ConvEncoder
    >>> enc = ConvEncoder(3, out_features=8)
    >>> enc(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 8])
    >>> enc(torch.randn(2, 3, 1, 1)).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_features: int = 32,
        channels: tuple[int, ...] = (16, 32),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if int(in_channels) < 1 or not channels:
            raise ValueError(
                "ConvEncoder needs in_channels >= 1 and at least one stage in "
                f"channels, got in_channels={in_channels}, channels={channels}"
            )
        self.in_channels = int(in_channels)
        self.out_features = int(out_features)
        layers: list[nn.Module] = []
        width = self.in_channels
        for c in channels:
            layers += [
                nn.Conv2d(width, c, kernel_size, padding="same"),
                nn.ReLU(),
                _MaybePool2d(),
            ]
            width = c
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(width, self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``(N, in_channels, H, W)``."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = _shape_str(x) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"ConvEncoder expects input of shape (N, {self.in_channels}, H, W), "
                f"got {shape}"
            )
        h = self.stages(x)
        return self.fc(h.mean(dim=(2, 3)))


class _DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.ReLU(),
        )


class UNetEncoder(nn.Module):
    """UNet-style encoder producing a feature map at the input resolution.

    Down path: a double ``Conv3x3 + ReLU`` block per width in ``channels``,
    separated by ``MaxPool2d(2)`` (skipped for maps below 2x2). Up path: the
    deeper map is bilinearly resized to the skip connection's exact size (so
    any ``H, W`` works, e.g. 15x17), concatenated with the skip and passed
    through a double conv block of the skip's width. The output has
    ``out_channels = channels[0]`` channels and the input's ``H, W``.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    channels : tuple of int, default=(16, 32)
        Widths of the down-path levels (depth = ``len(channels)``).

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import UNetEncoder
    >>> UNetEncoder(3, channels=(8, 16))(torch.randn(2, 3, 15, 17)).shape
    torch.Size([2, 8, 15, 17])
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...] = (16, 32)) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if int(in_channels) < 1 or not channels:
            raise ValueError(
                "UNetEncoder needs in_channels >= 1 and at least one level, got "
                f"in_channels={in_channels}, channels={channels}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = channels[0]
        self.down = nn.ModuleList()
        width = self.in_channels
        for c in channels:
            self.down.append(_DoubleConv(width, c))
            width = c
        self.up = nn.ModuleList()
        for skip_c in reversed(channels[:-1]):
            self.up.append(_DoubleConv(width + skip_c, skip_c))
            width = skip_c

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(N, in_channels, H, W)`` to ``(N, out_channels, H, W)``."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = _shape_str(x) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"UNetEncoder expects input of shape (N, {self.in_channels}, H, W), "
                f"got {shape}"
            )
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i > 0:
                h = _pool_if_possible(h)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(
                    h, size=skip.shape[-2:], mode="bilinear", align_corners=False
                )
            h = block(torch.cat([h, skip], dim=1))
        return h
