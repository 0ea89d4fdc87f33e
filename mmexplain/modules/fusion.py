"""Late-fusion networks (the architecture of Singh et al., 2023).

One encoder per modality, fusion of the per-modality embeddings, decision
layers. Both networks expose ``encode(**X) -> dict`` and ``fuse(**Z)`` with
``forward(**X) == fuse(**encode(**X))``, which the explainers use for their
fast path (encode each modality once, then re-run only the fusion head).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmexplain.modules.encoders import (
    UNetEncoder,
    _as_mapping,
    _check_modalities,
    _shape_str,
    _validate_modality_names,
)

__all__ = ["LateFusionNet", "LateFusionSegNet"]

_FUSIONS = ("concat", "sum")


def _mlp_head(
    in_features: int, n_classes: int, hidden: tuple[int, ...], dropout: float
) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in tuple(hidden):
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _module_dict(modules: Mapping[str, nn.Module], owner: str) -> nn.ModuleDict:
    if not isinstance(modules, Mapping) or not modules:
        raise ValueError(
            f"{owner} expects a non-empty dict mapping modality name -> encoder, "
            f"got {modules!r}"
        )
    names = _validate_modality_names(modules.keys(), owner)
    for name in names:
        if not isinstance(modules[name], nn.Module):
            raise ValueError(
                f"{owner}: encoder for modality {name!r} must be a torch.nn.Module, "
                f"got {type(modules[name]).__name__}"
            )
    return nn.ModuleDict({name: modules[name] for name in names})


def _embedding_sizes(
    encoders: nn.ModuleDict, embedding_dims: Any, owner: str
) -> dict[str, int]:
    """Each modality's embedding size: ``embedding_dims`` or its encoder's ``out_features``."""
    given = _as_mapping(embedding_dims, owner, "embedding_dims")
    for name in given:
        if name not in encoders:
            raise ValueError(
                f"{owner}: embedding_dims names unknown modality {name!r}; "
                f"expected {list(encoders)}"
            )
    dims: dict[str, int] = {}
    for name, enc in encoders.items():
        attr = getattr(enc, "out_features", None)
        if name in given:
            dims[name] = int(given[name])
            if attr is not None and int(attr) != dims[name]:
                raise ValueError(
                    f"{owner}: embedding_dims[{name!r}]={dims[name]} disagrees "
                    f"with the encoder's out_features={attr}"
                )
        elif attr is not None:
            dims[name] = int(attr)
        else:
            raise ValueError(
                f"{owner}: cannot tell the embedding size of modality {name!r}: "
                f"its encoder ({type(enc).__name__}) has no 'out_features' "
                "attribute; pass embedding_dims={" + repr(name) + ": D}"
            )
        if dims[name] < 1:
            raise ValueError(
                f"{owner}: embedding size of modality {name!r} must be >= 1, "
                f"got {dims[name]}"
            )
    return dims


def _fusion_head(
    head: str | nn.Module | None,
    fused: int,
    n_classes: int,
    hidden: tuple[int, ...],
    dropout: float,
    owner: str,
) -> nn.Module:
    """The decision layers on the fused embedding (``head`` of :class:`LateFusionNet`)."""
    if head is None:
        return _mlp_head(fused, n_classes, tuple(hidden), dropout)
    if isinstance(head, str):
        if head != "linear":
            raise ValueError(
                f"{owner}: head must be None, 'linear' or an nn.Module, got {head!r}"
            )
        return nn.Linear(fused, n_classes)
    if isinstance(head, nn.Module):
        return head
    raise ValueError(
        f"{owner}: head must be None, 'linear' or an nn.Module, "
        f"got {type(head).__name__}"
    )


class LateFusionNet(nn.Module):
    """Late (feature-level) fusion classifier.

    ``z_m = encoders[m](x_m)`` for each modality, fused by concatenation (in
    modality order) or summation, then passed through the decision layers
    ``head``.

    Parameters
    ----------
    encoders : dict of str to torch.nn.Module
        One encoder per modality; the dict order is the modality order. Each
        encoder maps ``(N, ...)`` to ``(N, D_m)`` (outputs with more dims are
        flattened from dim 1 before fusion).
    n_classes : int
        Number of output logits.
    fusion : {'concat', 'sum'}, default='concat'
        ``'concat'`` concatenates the embeddings (fused size ``sum(D_m)``);
        ``'sum'`` adds them (all ``D_m`` must be equal; fused size ``D``).
    head : None, 'linear' or torch.nn.Module, default=None
        Decision layers applied to the fused vector. ``None`` builds an MLP
        with the ``hidden`` widths then ``Linear(., n_classes)``; ``'linear'``
        builds a single ``nn.Linear(D_fused, n_classes)`` (the head OGM-GE
        assumes); a module is used as is.
    hidden : tuple of int, default=(64,)
        Hidden widths of the default MLP head.
    embedding_dims : dict of str to int, optional
        Embedding size of encoders that lack an ``out_features`` attribute.
        When an encoder has ``out_features`` and ``embedding_dims`` also names
        it, the two must agree.
    dropout : float, default=0.0
        Dropout after every hidden activation of the default MLP head.

    Attributes
    ----------
    encoders : torch.nn.ModuleDict
    head : torch.nn.Module
        The decision layers. For ``head='linear'`` with concat fusion it is one
        ``nn.Linear`` whose input columns are the embeddings concatenated in
        modality order (see :meth:`embedding_slices`).
    fusion : str
    embedding_dims : dict of str to int
    n_classes : int

    References
    ----------
    .. [Singh2023] S. Singh, P. P. Markopoulos, E. Saber, J. D. Lew and J. Heard,
       "Measuring Modality Utilization in Multi-Modal Neural Networks", IEEE
       Conference on Artificial Intelligence (CAI), 2023, pp. 11-14.
       :doi:`10.1109/CAI54212.2023.00014`

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import ConvEncoder, LateFusionNet, MLPEncoder
    >>> net = LateFusionNet(
    ...     {"eo": ConvEncoder(3, 16), "sar": MLPEncoder(10, 16)}, n_classes=4,
    ...     head="linear")
    >>> X = {"eo": torch.randn(5, 3, 8, 8), "sar": torch.randn(5, 10)}
    >>> net(**X).shape
    torch.Size([5, 4])
    >>> Z = net.encode(**X)
    >>> torch.equal(net.fuse(**Z), net(**X))
    True
    >>> net.embedding_slices()
    {'eo': slice(0, 16, None), 'sar': slice(16, 32, None)}
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        n_classes: int,
        fusion: str = "concat",
        head: str | nn.Module | None = None,
        hidden: tuple[int, ...] = (64,),
        embedding_dims: dict[str, int] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.encoders = _module_dict(encoders, owner)
        if fusion not in _FUSIONS:
            raise ValueError(
                f"{owner}: fusion must be one of {list(_FUSIONS)}, got {fusion!r}"
            )
        if int(n_classes) < 1:
            raise ValueError(f"{owner}: n_classes must be >= 1, got {n_classes}")
        self.fusion = fusion
        self.n_classes = int(n_classes)

        dims = _embedding_sizes(self.encoders, embedding_dims, owner)
        self._embedding_dims = dims

        if fusion == "sum":
            if len(set(dims.values())) != 1:
                raise ValueError(
                    f"{owner}: fusion='sum' needs equal embedding sizes, got {dims}"
                )
            fused = next(iter(dims.values()))
        else:
            fused = sum(dims.values())
        self.fused_features = fused

        self.head = _fusion_head(head, fused, self.n_classes, hidden, dropout, owner)

    # -- introspection ---------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in fusion order."""
        return tuple(self.encoders.keys())

    @property
    def embedding_dims(self) -> dict[str, int]:
        """Embedding size ``D_m`` of each modality (a copy)."""
        return dict(self._embedding_dims)

    def embedding_slices(self) -> dict[str, slice]:
        """Column range of each modality's embedding in the fused vector.

        With concat fusion the slices are consecutive, in modality order. With
        sum fusion every modality spans all columns (``slice(0, D)``), since
        the fused vector is the sum of the embeddings.

        Returns
        -------
        dict of str to slice
        """
        out: dict[str, slice] = {}
        start = 0
        for name in self.modalities:
            d = self._embedding_dims[name]
            if self.fusion == "sum":
                out[name] = slice(0, d)
            else:
                out[name] = slice(start, start + d)
                start += d
        return out

    # -- computation -----------------------------------------------------
    def encode(self, **X: Tensor) -> dict[str, Tensor]:
        """Run each modality through its encoder.

        Parameters
        ----------
        **X : Tensor
            One batch per modality, keyed by modality name.

        Returns
        -------
        dict of str to Tensor
            Embeddings in modality order.
        """
        _check_modalities(type(self).__name__, self.modalities, X)
        return {name: self.encoders[name](X[name]) for name in self.modalities}

    def fuse(self, **Z: Tensor) -> Tensor:
        """Fuse embeddings (in modality order, whatever the kwargs order) and
        apply the decision layers.

        Parameters
        ----------
        **Z : Tensor
            One embedding batch ``(N, D_m)`` per modality.

        Returns
        -------
        Tensor
            Logits ``(N, n_classes)``.
        """
        owner = type(self).__name__
        _check_modalities(owner, self.modalities, Z)
        zs = []
        for name in self.modalities:
            z = Z[name]
            if z.dim() > 2:
                z = z.flatten(1)
            if z.dim() != 2 or z.shape[1] != self._embedding_dims[name]:
                raise ValueError(
                    f"{owner} expects the embedding of modality {name!r} to have "
                    f"shape (N, {self._embedding_dims[name]}), got {_shape_str(z)}"
                )
            zs.append(z)
        if self.fusion == "concat":
            fused = torch.cat(zs, dim=1)
        else:
            fused = torch.stack(zs, dim=0).sum(dim=0)
        return self.head(fused)

    def forward(self, **X: Tensor) -> Tensor:
        """``fuse(**encode(**X))``: logits ``(N, n_classes)``."""
        return self.fuse(**self.encode(**X))


class LateFusionSegNet(nn.Module):
    """Late-fusion segmentation network (the MCubeS network of Singh et al., 2023).

    Each modality goes through its own :class:`UNetEncoder`, which returns a
    feature map at the input resolution; the maps are concatenated on the
    channel axis (modality order) and decoded by ``Conv3x3 -> ReLU ->
    Conv1x1`` into per-pixel logits.

    Parameters
    ----------
    in_channels : dict of str to int
        Input channels of each modality (dict order = modality order).
    n_classes : int
        Number of classes per pixel.
    channels : tuple of int, default=(16, 32)
        Widths of the UNet levels of every encoder.
    decoder_channels : int, default=32
        Width of the 3x3 convolution of the decision layers.

    Attributes
    ----------
    encoders : torch.nn.ModuleDict
        One :class:`UNetEncoder` per modality.
    head : torch.nn.Sequential
        The convolutional decision layers.
    embedding_dims : dict of str to int
        Channels ``C_m`` of each modality's feature map (``channels[0]``).

    References
    ----------
    .. [Singh2023] S. Singh, P. P. Markopoulos, E. Saber, J. D. Lew and J. Heard,
       "Measuring Modality Utilization in Multi-Modal Neural Networks", IEEE
       Conference on Artificial Intelligence (CAI), 2023, pp. 11-14.
       :doi:`10.1109/CAI54212.2023.00014`

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import LateFusionSegNet
    >>> net = LateFusionSegNet({"rgb": 3, "nir": 1}, n_classes=5, channels=(8, 16))
    >>> X = {"rgb": torch.randn(2, 3, 15, 17), "nir": torch.randn(2, 1, 15, 17)}
    >>> net(**X).shape
    torch.Size([2, 5, 15, 17])
    >>> {m: z.shape[1] for m, z in net.encode(**X).items()}
    {'rgb': 8, 'nir': 8}
    """

    def __init__(
        self,
        in_channels: dict[str, int],
        n_classes: int,
        channels: tuple[int, ...] = (16, 32),
        decoder_channels: int = 32,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(in_channels, Mapping) or not in_channels:
            raise ValueError(
                f"{owner} expects in_channels as a non-empty dict modality -> "
                f"channels, got {in_channels!r}"
            )
        names = _validate_modality_names(in_channels.keys(), owner)
        if int(n_classes) < 1:
            raise ValueError(f"{owner}: n_classes must be >= 1, got {n_classes}")
        self.n_classes = int(n_classes)
        self.in_channels = {m: int(in_channels[m]) for m in names}
        encoders = {m: UNetEncoder(self.in_channels[m], tuple(channels)) for m in names}
        self.encoders = nn.ModuleDict(encoders)
        self._embedding_dims = {m: encoders[m].out_channels for m in names}
        total = sum(self._embedding_dims.values())
        self.head = nn.Sequential(
            nn.Conv2d(total, int(decoder_channels), 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(int(decoder_channels), self.n_classes, 1),
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in fusion order."""
        return tuple(self.encoders.keys())

    @property
    def embedding_dims(self) -> dict[str, int]:
        """Channels of each modality's feature map (a copy)."""
        return dict(self._embedding_dims)

    def encode(self, **X: Tensor) -> dict[str, Tensor]:
        """Feature maps ``(N, C_m, H, W)`` of each modality."""
        _check_modalities(type(self).__name__, self.modalities, X)
        return {name: self.encoders[name](X[name]) for name in self.modalities}

    def fuse(self, **Z: Tensor) -> Tensor:
        """Concatenate the feature maps (modality order) and decode to
        per-pixel logits ``(N, n_classes, H, W)``."""
        owner = type(self).__name__
        _check_modalities(owner, self.modalities, Z)
        maps = [Z[name] for name in self.modalities]
        ref = None
        for name, z in zip(self.modalities, maps):
            c = self._embedding_dims[name]
            if z.dim() != 4 or z.shape[1] != c:
                raise ValueError(
                    f"{owner} expects the feature map of modality {name!r} to have "
                    f"shape (N, {c}, H, W), got {_shape_str(z)}"
                )
            if ref is None:
                ref = (name, z.shape[0], z.shape[-2:])
            elif (z.shape[0], z.shape[-2:]) != ref[1:]:
                raise ValueError(
                    f"{owner}: feature map of modality {name!r} has shape "
                    f"{_shape_str(z)}, which does not match modality {ref[0]!r} "
                    "in batch size or H, W; all modalities need the same N, H, W"
                )
        return self.head(torch.cat(maps, dim=1))

    def forward(self, **X: Tensor) -> Tensor:
        """``fuse(**encode(**X))``: per-pixel logits ``(N, n_classes, H, W)``."""
        return self.fuse(**self.encode(**X))
