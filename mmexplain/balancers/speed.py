"""Conditional learning speed (Wu et al., 2022), shared by GreedyBalancer and its callback."""

from __future__ import annotations

from typing import Any

import torch

from mmexplain.modules.contract import require

__all__ = ["ConditionalSpeedMeter"]


def _sq_norms(params: list[torch.nn.Parameter], grads: bool) -> torch.Tensor:
    tensors = (
        [p.grad for p in params if p.grad is not None]
        if grads
        else [p.detach() for p in params]
    )
    if not tensors:
        return torch.zeros(())
    if hasattr(torch, "_foreach_norm"):
        norms = torch._foreach_norm(tensors)
        return torch.stack(norms).pow(2).sum()
    return torch.stack([t.pow(2).sum() for t in tensors]).sum()


class ConditionalSpeedMeter:
    """Cumulative conditional learning speed of each modality.

    For modality ``m`` the module's ``modality_parameters(m)`` gives a 'main'
    group (its branch) and a 'bypass' group (the fusion parameters carrying
    information into it). After each backward pass, :meth:`update` adds
    ``sum ||grad||^2 / sum ||theta||^2`` of each group to a running sum
    (from the first step, never reset), and
    ``BDR_m = log10(cum_bypass_m / cum_main_m)``. The speeds stay on the
    parameters' device; only :meth:`bdr` and :meth:`d_speed` synchronize.

    Parameters
    ----------
    module : nn.Module
        A network with ``modality_parameters(m)`` (e.g. :class:`~mmexplain.MMTMNet`).
    modalities : sequence of str or None
        The modalities to follow (default: ``module.modalities``).
    """

    def __init__(self, module: Any, modalities: tuple[str, ...] | None = None) -> None:
        require(module, "modality_parameters", "The conditional learning speed")
        getter = module.modality_parameters
        self.modalities = tuple(
            modalities if modalities is not None else module.modalities
        )
        self.groups = {m: getter(m) for m in self.modalities}
        for m, g in self.groups.items():
            if not g.get("main") or not g.get("bypass"):
                raise ValueError(
                    f"modality {m!r} needs non-empty 'main' and 'bypass' parameter groups"
                )
        device = next(iter(self.groups.values()))["main"][0].device
        self.cum = torch.zeros(
            len(self.modalities), 2, dtype=torch.float64, device=device
        )  # [:,0] main, [:,1] bypass
        self.steps = 0

    def update(self) -> None:
        """Accumulate the current gradients (call after backward, before the step)."""
        ratios = []
        for m in self.modalities:
            row = []
            for key in ("main", "bypass"):
                params = self.groups[m][key]
                g = _sq_norms(params, grads=True).double()
                w = _sq_norms(params, grads=False).double()
                row.append(g / w.clamp_min(1e-30))
            ratios.append(torch.stack(row))
        self.cum += torch.stack(ratios).to(self.cum.device)
        self.steps += 1

    def bdr(self) -> dict[str, float]:
        """``{modality: BDR_m}`` (NaN before the first update)."""
        if self.steps == 0:
            return {m: float("nan") for m in self.modalities}
        vals = (
            torch.log10(self.cum[:, 1] / self.cum[:, 0].clamp_min(1e-300))
            .cpu()
            .tolist()
        )
        return dict(zip(self.modalities, vals))

    def d_speed(self) -> float:
        """BDR_0 - BDR_1 for two modalities; for more, the largest minus the smallest BDR."""
        values = list(self.bdr().values())
        if len(values) == 2:
            return values[0] - values[1]
        return max(values) - min(values)
