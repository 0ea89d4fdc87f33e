"""The multimodal transfer module (MMTM; Joze et al., 2020) as a block.

An :class:`MMTM` block squeezes each modality's feature map to a vector,
mixes them in one shared layer and re-scales every branch by a gate; it keeps
running averages of the squeeze vectors and gates for re-balancing and
ablation (Wu et al., 2022). :class:`~mmexplain.modules.MMTMNet` stacks them;
import both from :mod:`mmexplain.modules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmexplain.modules.encoders import (
    _check_modalities,
    _shape_str,
    _validate_modality_names,
)

__all__ = ["MMTM"]

ModalitySelection = str | Sequence[str] | None
#: per MMTM block, the squeeze vector of each ablated modality: a sequence with
#: one entry per block, or a mapping block index -> entry; an entry is a dict
#: ``{modality: (C_m,) tensor}`` or, when one modality is ablated, the tensor
SqueezeValues = (
    Sequence[Tensor | Mapping[str, Tensor]]
    | Mapping[int, Tensor | Mapping[str, Tensor]]
)


class MMTM(nn.Module):
    """Multimodal transfer module joining M >= 2 branches (Joze et al., 2020).

    For feature maps ``x_m`` of shape ``(N, C_m, H_m, W_m)`` (or vectors
    ``(N, C_m)``; any number of trailing spatial dims works):

    1. squeeze: ``s_m = mean over spatial dims of x_m`` -> ``(N, C_m)``;
    2. ``h = ReLU(squeeze_fc(concat(s_1, ..., s_M)))`` with
       ``max(1, int(2 * sum(C_m) / ratio))`` units, the width of the MMTM of
       Wu et al. (2022) (their ``dim_out = int(2 * (dim_visual +
       dim_skeleton) / ratio)``);
    3. ``g_m = sigmoid(gate_fcs[m](h))`` -> ``(N, C_m)``, in (0, 1);
    4. output ``x_m * g_m`` (channel-wise).

    Running averages (buffers, saved in the ``state_dict``): for each
    modality ``m`` the buffer ``running_gate_<m>`` holds the average gate
    ``g_m`` and ``running_squeeze_<m>`` the average squeeze vector ``s_m``,
    both of shape ``(C_m,)`` and detached. They are **cumulative means over
    training steps**: each forward call in training mode (without
    ``rebalance``/``ablate``) computes the batch means and updates
    ``avg <- avg + (batch_mean - avg) / (t + 1)``, ``t`` being the buffer
    ``num_batches_tracked``; every step weighs the same, and nothing is
    forgotten. The gate average is what a re-balancing step of Wu et al.
    (2022, eq. 13) uses ("the average over the samples used in the previous
    regular steps"). The squeeze average is only a *fallback* for ``ablate``:
    it mixes every state the weights went through, whereas the paper's
    ablation (eq. 6) uses the average squeeze vector of the *trained* model
    over the training split; pass that as ``squeeze=`` (see
    :meth:`MMTMNet.squeeze_averages`). Before any update the buffers hold
    ``0.5`` (the gate of a zero pre-activation) and ``0`` respectively.
    Eval-mode calls never update them; call ``reset_running_stats()`` to
    start over.

    Parameters
    ----------
    channels : dict of str to int, or sequence of int
        Channels ``C_m`` of each branch. With a sequence the modalities are
        named ``'0'``, ``'1'``, ...
    ratio : float, default=4
        Bottleneck reduction of the shared layer: it has
        ``max(1, int(2 * sum(C_m) / ratio))`` units.

    Attributes
    ----------
    modalities : tuple of str
    channels : dict of str to int
    hidden_features : int
        Width of the shared layer.
    squeeze_fc : torch.nn.Linear
        The shared layer (joint representation of all squeeze vectors).
    gate_fcs : torch.nn.ModuleList
        One ``Linear`` per modality (modality order) producing its gate.
    last_gates, last_squeezes : dict of str to Tensor
        Detached gates ``(N, C_m)`` and squeeze vectors ``(N, C_m)`` (before
        any ablation) of the last forward call.

    References
    ----------
    .. [Joze2020] H. R. V. Joze, A. Shaban, M. L. Iuzzolino and K. Koishida,
       "MMTM: Multimodal Transfer Module for CNN Fusion", CVPR 2020.
    .. [Wu2022] N. Wu, S. Jastrzebski, K. Cho and K. J. Geras,
       "Characterizing and Overcoming the Greedy Nature of Learning in
       Multi-modal Deep Neural Networks", ICML 2022.

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules import MMTM
    >>> block = MMTM({"a": 4, "b": 6})
    >>> block.hidden_features  # int(2 * (4 + 6) / 4)
    5
    >>> xa, xb = torch.randn(8, 4, 5, 5), torch.randn(8, 6, 3, 3)
    >>> ya, yb = block(xa, xb)
    >>> ya.shape, yb.shape
    (torch.Size([8, 4, 5, 5]), torch.Size([8, 6, 3, 3]))
    >>> out = block({"a": xa, "b": xb}, rebalance="a")  # dicts work too
    >>> sorted(out)
    ['a', 'b']
    >>> block.running_gate("a").shape
    torch.Size([4])
    >>> out = block(xa, xb, ablate="b", squeeze={"b": torch.zeros(6)})
    """

    #: a buffer (registered in ``__init__``), declared for the type checker
    num_batches_tracked: Tensor

    def __init__(
        self, channels: Mapping[str, int] | Sequence[int], ratio: float = 4
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if isinstance(channels, Mapping):
            names = _validate_modality_names(channels.keys(), owner)
            chans = {m: int(channels[m]) for m in names}
        else:
            values = [int(c) for c in channels]
            chans = {str(i): c for i, c in enumerate(values)}
            names = tuple(chans)
        if len(names) < 2:
            raise ValueError(f"{owner} needs at least 2 modalities, got {len(names)}")
        if any(c < 1 for c in chans.values()):
            raise ValueError(f"{owner}: channels must all be >= 1, got {chans}")
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
            raise ValueError(f"{owner}: ratio must be a number > 0, got {ratio!r}")
        self.modalities: tuple[str, ...] = names
        self.channels: dict[str, int] = chans
        self.ratio = ratio
        total = sum(chans.values())
        # the authors' width: dim_out = int(2 * (dim_visual + dim_skeleton) / ratio)
        self.hidden_features = max(1, int(2 * total / ratio))
        self.squeeze_fc = nn.Linear(total, self.hidden_features)
        self.gate_fcs = nn.ModuleList(
            nn.Linear(self.hidden_features, chans[m]) for m in names
        )
        for m in names:
            self.register_buffer(f"running_gate_{m}", torch.full((chans[m],), 0.5))
            self.register_buffer(f"running_squeeze_{m}", torch.zeros(chans[m]))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.last_gates: dict[str, Tensor] = {}
        self.last_squeezes: dict[str, Tensor] = {}

    # -- running statistics ----------------------------------------------
    def running_gate(self, modality: str) -> Tensor:
        """Running (cumulative) average gate of ``modality``, shape ``(C_m,)``."""
        return getattr(self, f"running_gate_{self._name(modality)}")

    def running_squeeze(self, modality: str) -> Tensor:
        """Running (cumulative, over training steps) average squeeze vector of ``modality``."""
        return getattr(self, f"running_squeeze_{self._name(modality)}")

    def reset_running_stats(self) -> None:
        """Reset the running averages to their initial values."""
        for m in self.modalities:
            self.running_gate(m).fill_(0.5)
            self.running_squeeze(m).zero_()
        self.num_batches_tracked.zero_()

    def gate_parameters(self, modality: str) -> list[nn.Parameter]:
        """Parameters of the layer producing ``modality``'s gate."""
        return list(
            self.gate_fcs[self.modalities.index(self._name(modality))].parameters()
        )

    def _name(self, modality: str | int) -> str:
        if isinstance(modality, int) and not isinstance(modality, bool):
            if 0 <= modality < len(self.modalities):
                return self.modalities[modality]
        elif modality in self.modalities:
            return modality
        raise ValueError(
            f"{type(self).__name__} got unknown modality {modality!r}; "
            f"expected {list(self.modalities)}"
        )

    def _selection(self, sel: ModalitySelection, what: str) -> frozenset[str]:
        if sel is None:
            return frozenset()
        if isinstance(sel, str | int):
            sel = [sel]
        try:
            return frozenset(self._name(m) for m in sel)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None

    # -- forward ---------------------------------------------------------
    def forward(
        self,
        *features: Tensor | Mapping[str, Tensor] | Sequence[Tensor],
        rebalance: ModalitySelection = None,
        ablate: ModalitySelection = None,
        squeeze: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, ...] | dict[str, Tensor]:
        """Re-scale every branch's features by its gate.

        Parameters
        ----------
        *features : Tensor
            One tensor per modality in modality order; alternatively a single
            dict keyed by modality (then a dict is returned) or a single
            list/tuple.
        rebalance : str or sequence of str, optional
            Modalities whose gate is replaced by its running average (the
            re-balancing step of Wu et al., 2022, eq. 13-14: those branches get
            no sample-specific cross-modal information).
        ablate : str or sequence of str, optional
            Modalities whose squeeze vector is replaced by a constant before
            the shared layer (Wu et al., 2022, eq. 7: the other branches get no
            sample-specific information from them).
        squeeze : dict of str to Tensor, optional
            The constant ``(C_m,)`` squeeze vector of ablated modalities (the
            paper's: the trained model's average over the training split);
            ablated modalities missing here use their running average.

        Returns
        -------
        tuple of Tensor or dict of str to Tensor
            Re-scaled features, same shapes as the inputs.
        """
        xs, as_dict = self._features(features)
        rebalanced = self._selection(rebalance, "rebalance")
        ablated = self._selection(ablate, "ablate")
        given = self._squeeze_values(squeeze, ablated)

        squeezes = [x.flatten(2).mean(dim=2) if x.dim() > 2 else x for x in xs]
        self.last_squeezes = {m: s.detach() for m, s in zip(self.modalities, squeezes)}
        joint_in = []
        for m, s in zip(self.modalities, squeezes):
            if m in ablated:
                value = given.get(m)
                if value is None:
                    value = self.running_squeeze(m)
                s = value.to(device=s.device, dtype=s.dtype).expand_as(s)
            joint_in.append(s)
        h = torch.relu(self.squeeze_fc(torch.cat(joint_in, dim=1)))
        gates = [torch.sigmoid(fc(h)) for fc in self.gate_fcs]

        if self.training and not rebalanced and not ablated:
            self._update_running(squeezes, gates)

        outs = []
        last = {}
        for m, x, g in zip(self.modalities, xs, gates):
            if m in rebalanced:
                g = self.running_gate(m).to(x.dtype).expand_as(g)
            last[m] = g.detach()
            outs.append(x * g.reshape(g.shape + (1,) * (x.dim() - 2)))
        self.last_gates = last
        if as_dict:
            return dict(zip(self.modalities, outs))
        return tuple(outs)

    def _features(self, features: tuple[Any, ...]) -> tuple[list[Tensor], bool]:
        """The per-modality feature tensors of ``forward``'s arguments, checked.

        Also whether they came as a dict (then ``forward`` returns a dict).
        """
        owner = type(self).__name__
        as_dict = False
        if len(features) == 1 and isinstance(features[0], Mapping):
            _check_modalities(owner, self.modalities, features[0])
            xs = [features[0][m] for m in self.modalities]
            as_dict = True
        elif len(features) == 1 and isinstance(features[0], list | tuple):
            xs = list(features[0])
        else:
            xs = list(features)
        if len(xs) != len(self.modalities):
            raise ValueError(
                f"{owner} expects {len(self.modalities)} feature tensors "
                f"({list(self.modalities)}), got {len(xs)}"
            )
        for m, x in zip(self.modalities, xs):
            if (
                not isinstance(x, Tensor)
                or x.dim() < 2
                or x.shape[1] != self.channels[m]
            ):
                shape = _shape_str(x) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"{owner} expects features of modality {m!r} of shape "
                    f"(N, {self.channels[m]}, ...), got {shape}"
                )
        return xs, as_dict

    def _update_running(self, squeezes: list[Tensor], gates: list[Tensor]) -> None:
        """Fold a training batch's squeeze vectors and gates into the running averages."""
        with torch.no_grad():
            # 0-d tensor, not .item(): no device sync per training step
            count = self.num_batches_tracked + 1
            for m, s, g in zip(self.modalities, squeezes, gates):
                for buf, batch in (
                    (self.running_squeeze(m), s.mean(dim=0)),
                    (self.running_gate(m), g.mean(dim=0)),
                ):
                    buf.add_((batch.to(buf.dtype) - buf) / count)
            self.num_batches_tracked.add_(1)

    def _squeeze_values(
        self, squeeze: Mapping[str, Tensor] | None, ablated: frozenset[str]
    ) -> dict[str, Tensor]:
        """``squeeze`` checked: known modalities, ablated ones only, shape (C_m,)."""
        if squeeze is None:
            return {}
        if not isinstance(squeeze, Mapping):
            raise TypeError(
                f"{type(self).__name__}: squeeze must be a dict modality -> (C_m,) "
                f"tensor, got {type(squeeze).__name__}"
            )
        out = {}
        for key, value in squeeze.items():
            m = self._name(key)
            if m not in ablated:
                raise ValueError(
                    f"{type(self).__name__}: squeeze given for {m!r}, which is not "
                    f"ablated (ablate={sorted(ablated)})"
                )
            value = torch.as_tensor(value)
            if value.shape != (self.channels[m],):
                raise ValueError(
                    f"{type(self).__name__}: the squeeze vector of {m!r} must have "
                    f"shape ({self.channels[m]},), got {tuple(value.shape)}"
                )
            out[m] = value.detach()
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, ratio={self.ratio}, "
            f"hidden_features={self.hidden_features}"
        )

    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else None
        state = dict(self.__dict__ if state is None else state)
        state["last_gates"] = {}
        state["last_squeezes"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("last_squeezes", {})  # pickles from before it existed
        super().__setstate__(state)
