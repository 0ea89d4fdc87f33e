"""Multimodal transfer module (MMTM; Joze et al., 2020) and the
intermediate-fusion network of Wu et al. (2022), "Characterizing and
overcoming the greedy nature of learning in multi-modal deep neural
networks" (ICML 2022).

The :class:`MMTM` block lives in :mod:`mmexplain.modules._mmtm_block`; this
module holds :class:`MMTMNet` and re-exports the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from mmexplain._core.torch_state import eval_mode
from mmexplain.modules._mmtm_block import MMTM, ModalitySelection, SqueezeValues
from mmexplain.modules.encoders import (
    _RESERVED_NAMES,
    _check_modalities,
    _MaybePool2d,
    _shape_str,
    _validate_modality_names,
)

__all__ = ["MMTM", "MMTMNet"]


def _rows(value: Any, start: int, stop: int, device: torch.device) -> Tensor:
    """Rows ``start:stop`` of an array or tensor, as float32 on ``device``."""
    if isinstance(value, Tensor):
        rows = value[start:stop]
    else:
        rows = torch.from_numpy(np.ascontiguousarray(value[start:stop]))
    return rows.to(device=device, dtype=torch.float32)


class _Stage(nn.Sequential):
    """``Conv3x3 -> ReLU -> MaxPool2d(2)`` (pooling skipped below 2x2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), _MaybePool2d()
        )


class MMTMNet(nn.Module):
    """Intermediate-fusion classifier with MMTM blocks (Wu et al., 2022).

    One convolutional branch per image modality; branch ``m`` has one stage
    per width in ``channels`` (``Conv3x3 -> ReLU -> MaxPool2d(2)``, the pool
    skipped once a map is below 2x2; no batch normalization). After each stage
    an :class:`MMTM` block joins all branches. Each branch ends in its own
    head (global average pool + ``Linear``), and the output is the average of
    the branch logits. Branches may have different spatial sizes.

    Parameters
    ----------
    in_channels : dict of str to int
        Input channels per modality (at least two; dict order = modality
        order). ``'rebalance'`` and ``'ablate'`` are reserved names.
    n_classes : int
        Number of classes.
    channels : tuple of int, default=(16, 32, 64)
        Width of each stage (one MMTM block per stage).
    ratio : float, default=4
        Bottleneck reduction of every MMTM block: its shared layer has
        ``int(2 * M * c / ratio)`` units for stage width ``c`` (the authors'
        width; see :class:`MMTM`).

    Attributes
    ----------
    branches : torch.nn.ModuleDict
        Per modality, a ``ModuleList`` of stages.
    mmtms : torch.nn.ModuleList
        The MMTM blocks, one per stage.
    heads : torch.nn.ModuleDict
        Per modality, the ``Linear`` head applied after global average pooling.
    rebalance, ablate : str, sequence of str or None
        Defaults of the forward options of the same names (set them with
        :meth:`rebalancing` / :meth:`ablating`).
    ablate_squeeze : list of dict or None
        Per MMTM block, the squeeze vectors replacing the ablated modalities'
        (set by ``ablating(m, squeeze=...)``; None: running averages).
    branch_logits : dict of str to Tensor
        Per-branch logits of the last forward call, **kept with their graph**
        so a training loop can use ``sum(CE(l, y) for l in
        net.branch_logits.values())`` as the paper does.

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import MMTMNet
    >>> net = MMTMNet({"color": 3, "gray": 1}, n_classes=10, channels=(8, 16))
    >>> X = {"color": torch.randn(4, 3, 12, 12), "gray": torch.randn(4, 1, 12, 12)}
    >>> net(**X).shape
    torch.Size([4, 10])
    >>> sorted(net.branch_logits)
    ['color', 'gray']
    >>> with net.rebalancing("color"):
    ...     out = net(**X)
    >>> groups = net.modality_parameters("gray")
    >>> sorted(groups)
    ['bypass', 'main']
    >>> averages = net.squeeze_averages(X)  # the trained model's, in eval mode
    >>> [tuple(a["color"].shape) for a in averages]
    [(8,), (16,)]
    >>> with net.ablating("color", squeeze=averages):
    ...     out = net(**X)  # branch 'gray' gets no sample-specific colour signal
    """

    def __init__(
        self,
        in_channels: dict[str, int],
        n_classes: int,
        channels: tuple[int, ...] = (16, 32, 64),
        ratio: float = 4,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(in_channels, Mapping):
            raise ValueError(
                f"{owner} expects in_channels as a dict modality -> channels, "
                f"got {in_channels!r}"
            )
        names = _validate_modality_names(in_channels.keys(), owner)
        if len(names) < 2:
            raise ValueError(f"{owner} needs at least 2 modalities, got {list(names)}")
        for m in names:
            if m in _RESERVED_NAMES:
                raise ValueError(
                    f"{owner}: {m!r} is reserved for a forward option and cannot "
                    "name a modality"
                )
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise ValueError(f"{owner} needs at least one stage in channels")
        if int(n_classes) < 1:
            raise ValueError(f"{owner}: n_classes must be >= 1, got {n_classes}")
        self.in_channels = {m: int(in_channels[m]) for m in names}
        self.n_classes = int(n_classes)
        self.channels = channels
        self.branches = nn.ModuleDict()
        for m in names:
            stages = []
            width = self.in_channels[m]
            for c in channels:
                stages.append(_Stage(width, c))
                width = c
            self.branches[m] = nn.ModuleList(stages)
        self.mmtms = nn.ModuleList(MMTM({m: c for m in names}, ratio) for c in channels)
        self.heads = nn.ModuleDict(
            {m: nn.Linear(channels[-1], self.n_classes) for m in names}
        )
        self.rebalance: ModalitySelection = None
        self.ablate: ModalitySelection = None
        self.ablate_squeeze: list[dict[str, Tensor]] | None = None
        self.branch_logits: dict[str, Tensor] = {}

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names (branch order)."""
        return tuple(self.branches.keys())

    def _blocks(self) -> Iterable[MMTM]:
        """The MMTM blocks, in order (``self.mmtms``, typed)."""
        return cast("Iterable[MMTM]", self.mmtms)

    def _check_selection(self, sel: ModalitySelection, what: str) -> None:
        if sel is None:
            return
        items: Iterable = [sel] if isinstance(sel, str) else sel
        for m in items:
            if m not in self.modalities:
                raise ValueError(
                    f"{type(self).__name__}: {what} got unknown modality {m!r}; "
                    f"expected {list(self.modalities)}"
                )

    def forward(
        self,
        rebalance: ModalitySelection = None,
        ablate: ModalitySelection = None,
        **X: Tensor,
    ) -> Tensor:
        """Average of the branch logits, ``(N, n_classes)``.

        Parameters
        ----------
        rebalance, ablate : str or sequence of str, optional
            Override the module attributes of the same names for this call
            (``None`` uses the attributes); passed to every MMTM block. An
            explicit ``ablate`` uses the running squeeze averages; the values
            given to :meth:`ablating` apply to its own selection only.
        **X : Tensor
            One image batch ``(N, C_m, H_m, W_m)`` per modality.
        """
        owner = type(self).__name__
        _check_modalities(owner, self.modalities, X)
        rebalance = self.rebalance if rebalance is None else rebalance
        # the squeeze values set by ablating(m, squeeze=...) go with its selection
        given = self.ablate_squeeze if ablate is None and self.ablate else None
        ablate = self.ablate if ablate is None else ablate
        self._check_selection(rebalance, "rebalance")
        self._check_selection(ablate, "ablate")
        hs = []
        for m in self.modalities:
            x = X[m]
            if (
                not isinstance(x, Tensor)
                or x.dim() != 4
                or x.shape[1] != self.in_channels[m]
            ):
                shape = _shape_str(x) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"{owner} expects modality {m!r} of shape "
                    f"(N, {self.in_channels[m]}, H, W), got {shape}"
                )
            hs.append(x)
        for i, block in enumerate(self.mmtms):
            hs = [
                cast(nn.ModuleList, self.branches[m])[i](h)
                for m, h in zip(self.modalities, hs)
            ]
            squeeze = given[i] if given is not None else None
            hs = list(block(*hs, rebalance=rebalance, ablate=ablate, squeeze=squeeze))
        logits = {
            m: self.heads[m](h.mean(dim=(2, 3))) for m, h in zip(self.modalities, hs)
        }
        self.branch_logits = logits
        return torch.stack(list(logits.values()), dim=0).mean(dim=0)

    @contextlib.contextmanager
    def rebalancing(self, modality: ModalitySelection) -> Iterator[MMTMNet]:
        """Context manager: forward calls inside re-balance ``modality``.

        Examples
        --------
        >>> import torch
        >>> from mmexplain.modules import MMTMNet
        >>> net = MMTMNet({"a": 1, "b": 1}, n_classes=2, channels=(4,))
        >>> with net.rebalancing("a"):
        ...     net.rebalance
        'a'
        >>> net.rebalance is None
        True
        """
        self._check_selection(modality, "rebalance")
        old = self.rebalance
        self.rebalance = modality
        try:
            yield self
        finally:
            self.rebalance = old

    @contextlib.contextmanager
    def ablating(
        self, modality: ModalitySelection, squeeze: SqueezeValues | None = None
    ) -> Iterator[MMTMNet]:
        """Context manager: forward calls inside ablate ``modality``.

        In every MMTM block the ablated modalities' squeeze vectors are
        replaced by constants, so the other branches receive no
        sample-specific information from them (Wu et al., 2022, eq. 7).

        Parameters
        ----------
        modality : str or sequence of str
            The modalities to ablate.
        squeeze : sequence or mapping, optional
            The constants, per block: what :meth:`squeeze_averages` returns
            (one ``{modality: (C_m,) tensor}`` per block; extra modalities are
            ignored), or a mapping ``{block_index: tensor}`` when one modality
            is ablated. The paper's choice is the trained model's average over
            the training split, ``net.squeeze_averages(X_train)``. None uses
            each block's running squeeze average (a cumulative mean over the
            training steps, which mixes the weights' whole trajectory).
        """
        self._check_selection(modality, "ablate")
        values = self._check_squeeze(modality, squeeze)
        old = self.ablate, self.ablate_squeeze
        self.ablate, self.ablate_squeeze = modality, values
        try:
            yield self
        finally:
            self.ablate, self.ablate_squeeze = old

    def _check_squeeze(
        self, modality: ModalitySelection, squeeze: SqueezeValues | None
    ) -> list[dict[str, Tensor]] | None:
        """``squeeze`` as one ``{modality: tensor}`` per block, for ``modality``."""
        if squeeze is None:
            return None
        owner = type(self).__name__
        selected = [modality] if isinstance(modality, str) else list(modality or ())
        n_blocks = len(self.mmtms)
        if isinstance(squeeze, Mapping):
            keys = sorted(squeeze)
            if keys != list(range(n_blocks)):
                raise ValueError(
                    f"{owner}: squeeze needs one entry per MMTM block (keys "
                    f"0..{n_blocks - 1}), got keys {keys}"
                )
            entries = [squeeze[i] for i in range(n_blocks)]
        elif isinstance(squeeze, Sequence) and not isinstance(squeeze, str):
            entries = list(squeeze)
            if len(entries) != n_blocks:
                raise ValueError(
                    f"{owner}: squeeze needs one entry per MMTM block ({n_blocks}), "
                    f"got {len(entries)}"
                )
        else:
            raise TypeError(
                f"{owner}: squeeze must be a list (one entry per MMTM block) or a "
                f"dict block index -> entry, got {type(squeeze).__name__}"
            )
        device = next(self.parameters()).device
        values = []
        for i, entry in enumerate(entries):
            if isinstance(entry, Tensor):
                if len(selected) != 1:
                    raise ValueError(
                        f"{owner}: a bare tensor per block is for one ablated "
                        f"modality; with {selected} pass {{modality: tensor}} per block"
                    )
                entry = {selected[0]: entry}
            if not isinstance(entry, Mapping):
                raise TypeError(
                    f"{owner}: squeeze entry of block {i} must be a tensor or a dict "
                    f"modality -> tensor, got {type(entry).__name__}"
                )
            missing = [m for m in selected if m not in entry]
            if missing:
                raise ValueError(
                    f"{owner}: squeeze entry of block {i} lacks the ablated "
                    f"modalities {missing}"
                )
            block = {}
            for m in selected:
                value = torch.as_tensor(entry[m])
                width = cast(MMTM, self.mmtms[i]).channels[m]
                if value.shape != (width,):
                    raise ValueError(
                        f"{owner}: the squeeze vector of {m!r} in block {i} must have "
                        f"shape ({width},), got {tuple(value.shape)}"
                    )
                block[m] = value.detach().to(device=device, dtype=torch.float32)
            values.append(block)
        return values

    def squeeze_averages(
        self, X: Mapping[str, Any], batch_size: int = 256
    ) -> list[dict[str, Tensor]]:
        """Average squeeze vector of every modality in every MMTM block over ``X``.

        The model as it is now, in eval mode and without ablation or
        re-balancing: for block ``i`` and modality ``m``, the mean over the
        samples of ``X`` of the spatial mean of the features entering block
        ``i`` from branch ``m``. With ``X`` the training split this is the
        average that Wu et al. (2022, eq. 6) substitute for a removed modality
        (their evaluation code computes it with the trained model). The
        module's train/eval modes, options and buffers are left unchanged.

        Parameters
        ----------
        X : mapping of str to array-like
            ``{modality: (N, C_m, H, W)}`` NumPy arrays or tensors.
        batch_size : int, default=256
            Rows per forward call.

        Returns
        -------
        list of dict of str to Tensor
            One ``{modality: (C_m,) float32 tensor}`` per block, on the
            module's device; pass it to :meth:`ablating` as ``squeeze=``.
        """
        owner = type(self).__name__
        _check_modalities(owner, self.modalities, X)
        n = len(X[self.modalities[0]])
        if n < 1 or any(len(X[m]) != n for m in self.modalities):
            raise ValueError(
                f"{owner}.squeeze_averages needs the same number (>= 1) of rows "
                "for every modality"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = next(self.parameters()).device
        sums: list[dict[str, Tensor]] = [{} for _ in self.mmtms]
        options = self.rebalance, self.ablate, self.ablate_squeeze, self.branch_logits
        self.rebalance = self.ablate = self.ablate_squeeze = None
        try:
            with eval_mode(self), torch.no_grad():
                for start in range(0, n, int(batch_size)):
                    stop = min(start + int(batch_size), n)
                    self(
                        **{m: _rows(X[m], start, stop, device) for m in self.modalities}
                    )
                    for block, total in zip(self._blocks(), sums):
                        for m, s in block.last_squeezes.items():
                            part = s.double().sum(dim=0)
                            total[m] = part if m not in total else total[m] + part
        finally:
            self.rebalance, self.ablate, self.ablate_squeeze, self.branch_logits = (
                options
            )
            for block in self._blocks():
                block.last_squeezes = {}
        return [{m: (t / n).float() for m, t in total.items()} for total in sums]

    def modality_parameters(self, modality: str) -> dict[str, list[nn.Parameter]]:
        """Parameter groups for the conditional learning speed (Wu et al., 2022).

        Parameters
        ----------
        modality : str

        Returns
        -------
        dict
            ``'main'``: the modality's conv stages and head; ``'bypass'``: in
            every MMTM block, the layer producing this modality's gate plus
            the shared squeeze layer (which is in every modality's bypass).
        """
        self._check_selection(modality, "modality_parameters")
        if not isinstance(modality, str):
            raise ValueError(
                f"modality_parameters expects one modality name, got {modality!r}"
            )
        main = list(self.branches[modality].parameters()) + list(
            self.heads[modality].parameters()
        )
        bypass: list[nn.Parameter] = []
        for block in self._blocks():
            bypass += list(block.squeeze_fc.parameters())
            bypass += block.gate_parameters(modality)
        return {"main": main, "bypass": bypass}

    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else None
        state = dict(self.__dict__ if state is None else state)
        state["branch_logits"] = {}
        return state
