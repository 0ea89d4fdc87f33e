"""The model contract: what mmexplain asks of a network, and one place to ask it.

Every entry point calls a multimodal network as ``module(**X)`` with one
keyword argument per modality. Some methods need more, and each extra is a
*capability* that a module either has or lacks:

============================  ===============================================  =====================================
capability                    the module provides                              needed by
============================  ===============================================  =====================================
``'encode_fuse'``             ``encode(**X) -> {m: z_m}``, ``fuse(**Z)``       fast explainers, UtilizationTarget,
                                                                               AttributionRegularizer, SampleValuation
``'linear_head'``             encode/fuse, concat fusion, one ``nn.Linear``    OGM-GE
                              ``head`` and ``embedding_slices()``
``'modality_parameters'``     ``modality_parameters(m) -> {'main', 'bypass'}`` conditional learning speed
``'rebalancing'``             ``rebalancing(m)`` context manager               GreedyBalancer
``'ablating'``                ``ablating(m)`` context manager and              ConditionalUtilization('mmtm')
                              ``branch_logits`` after each forward
``'squeeze_averages'``        ``squeeze_averages(X)`` (and ``ablating``)       ConditionalUtilization('mmtm')
``'encoders'``                per-modality encoder parameters (an              OGM-GE, frozen-encoder training
                              ``encoders`` mapping or ``modality_parameters``)
============================  ===============================================  =====================================

:class:`~mmexplain.LateFusionNet` and :class:`~mmexplain.LateFusionSegNet`
are :class:`EncodeFuseModule`; :class:`~mmexplain.MMTMNet` is a
:class:`BranchedModule`. Any user module with the same methods works the same
way: nothing checks the class, only the methods (scikit-learn's
``HasMethods`` constraint, shap's per-explainer ``supports_model_with_masker``).

No other module in the package inspects a network with ``getattr``: they call
:func:`has_capability` / :func:`require` here, so a new capability or a new
kind of network is added in one file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import nn

__all__ = [
    "BranchedModule",
    "CAPABILITIES",
    "EncodeFuseModule",
    "MultimodalModule",
    "branch_loss",
    "branch_outputs",
    "encoder_parameters",
    "has_capability",
    "has_encode_fuse",
    "is_branched",
    "module_device",
    "module_modalities",
    "require",
    "select_branches",
    "unwrap_parallel",
]


# ----------------------------------------------------------------------------
# protocols
# ----------------------------------------------------------------------------
@runtime_checkable
class MultimodalModule(Protocol):
    """Any network called with one keyword argument per modality."""

    def __call__(self, **X: torch.Tensor) -> Any: ...


@runtime_checkable
class EncodeFuseModule(Protocol):
    """A late-fusion network split into per-modality encoders and a fusion head.

    ``fuse(**encode(**X))`` must equal ``module(**X)``, and in eval mode
    ``encode`` must be a per-sample function (row ``n`` of ``encode(X)[m]``
    depends on row ``n`` of ``X[m]`` only). That is what makes explaining on
    cached embeddings exact.
    """

    def encode(self, **X: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def fuse(self, **Z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class BranchedModule(Protocol):
    """A network with one branch (and one head) per modality, e.g. MMTM fusion.

    ``branch_logits`` holds each branch's logits of the last forward call
    (with their graph, for the per-branch training loss); ``rebalancing(m)``
    and ``ablating(m)`` are context managers under which forward calls
    re-balance or ablate modality ``m``; ``modality_parameters(m)`` groups the
    parameters by role for the conditional learning speed.
    """

    branch_logits: Mapping[str, torch.Tensor]

    @property
    def modalities(self) -> tuple[str, ...]: ...

    def modality_parameters(self, modality: str) -> dict[str, list[nn.Parameter]]: ...

    def rebalancing(self, modality: Any) -> AbstractContextManager[Any]: ...

    def ablating(self, modality: Any) -> AbstractContextManager[Any]: ...


# ----------------------------------------------------------------------------
# capabilities
# ----------------------------------------------------------------------------
def _methods(*names: str) -> Callable[[Any], bool]:
    def check(module: Any) -> bool:
        return all(callable(getattr(module, n, None)) for n in names)

    return check


def _linear_head(module: Any) -> bool:
    return (
        _methods("encode", "fuse", "embedding_slices")(module)
        and isinstance(getattr(module, "head", None), nn.Linear)
        and getattr(module, "fusion", "concat") == "concat"
    )


def _ablating(module: Any) -> bool:
    return _methods("ablating")(module) and hasattr(module, "branch_logits")


def _encoders(module: Any) -> bool:
    return isinstance(getattr(module, "encoders", None), Mapping | nn.ModuleDict) or (
        _methods("modality_parameters")(module)
    )


#: capability -> (test, what it means: used in error messages)
CAPABILITIES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "encode_fuse": (
        _methods("encode", "fuse"),
        "encode/fuse methods (encode(**X) -> {modality: embedding}, "
        "fuse(**Z) -> logits; e.g. LateFusionNet)",
    ),
    "linear_head": (
        _linear_head,
        "a late-fusion model with concat fusion, embedding_slices() and a single "
        "nn.Linear head (LateFusionNet(head='linear'); with module=None pass "
        "module__head='linear')",
    ),
    "modality_parameters": (
        _methods("modality_parameters"),
        "a modality_parameters(m) method returning {'main': [...], 'bypass': [...]} "
        "(e.g. MMTMNet)",
    ),
    "rebalancing": (
        _methods("rebalancing", "modality_parameters"),
        "an MMTM network with rebalancing(m) and modality_parameters(m) (e.g. MMTMNet)",
    ),
    "ablating": (
        _ablating,
        "an MMTM network with an ablating(m) context and branch_logits (e.g. MMTMNet)",
    ),
    "squeeze_averages": (
        _methods("squeeze_averages", "ablating"),
        "an MMTM network with squeeze_averages(X) and an ablating(m) context "
        "(e.g. MMTMNet)",
    ),
    "encoders": (
        _encoders,
        "per-modality encoders (an `encoders` mapping or modality_parameters(m))",
    ),
}


def unwrap_parallel(module: Any) -> Any:
    """The user's module behind a DistributedDataParallel/DataParallel wrapper.

    Explaining runs the wrapped module itself: evaluation needs no gradient
    synchronization, and the wrapper hides ``encode``/``fuse``.
    """
    if isinstance(module, nn.parallel.DistributedDataParallel | nn.DataParallel):
        return module.module
    return module


_unwrap = unwrap_parallel


def has_capability(module: Any, capability: str) -> bool:
    """Whether ``module`` provides ``capability`` (a key of :data:`CAPABILITIES`).

    Examples
    --------
    >>> from mmexplain.modules import LateFusionNet, MLPEncoder
    >>> from mmexplain.modules.contract import has_capability
    >>> net = LateFusionNet({"a": MLPEncoder(3, 4), "b": MLPEncoder(2, 4)}, n_classes=2)
    >>> has_capability(net, "encode_fuse"), has_capability(net, "rebalancing")
    (True, False)
    """
    try:
        test = CAPABILITIES[capability][0]
    except KeyError:
        raise ValueError(
            f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}"
        ) from None
    return bool(test(_unwrap(module)))


def has_encode_fuse(module: Any) -> bool:
    """Whether ``module`` is an :class:`EncodeFuseModule`."""
    return has_capability(module, "encode_fuse")


def is_branched(module: Any) -> bool:
    """Whether ``module`` has per-modality branches with ablation (MMTM-like)."""
    return has_capability(module, "ablating")


def require(
    module: Any,
    capability: str,
    who: str,
    *,
    error: type[Exception] = TypeError,
    hint: str | None = None,
) -> None:
    """Raise ``error`` naming ``who`` and what is missing unless ``module`` has it.

    Parameters
    ----------
    module : nn.Module
    capability : str
        A key of :data:`CAPABILITIES`.
    who : str
        The method or option that needs it, for the message (e.g.
        ``"OGMGE"`` or ``"ablation='mmtm'"``).
    error : exception class, default=TypeError
        ``TypeError`` for a model that cannot be used at all (a balancer);
        ``ValueError`` when an option of an explainer needs what the model
        lacks (another option works).
    hint : str or None
        What to do instead, appended to the message.

    Examples
    --------
    >>> import torch
    >>> from mmexplain.modules.contract import require
    >>> require(torch.nn.Linear(2, 2), "encode_fuse", "UtilizationTarget")
    Traceback (most recent call last):
    ...
    TypeError: UtilizationTarget needs encode/fuse methods (encode(**X) -> {modality: embedding}, fuse(**Z) -> logits; e.g. LateFusionNet); Linear has none
    """
    if not has_capability(module, capability):
        raise error(
            f"{who} needs {CAPABILITIES[capability][1]}; "
            f"{type(_unwrap(module)).__name__} has none" + (f": {hint}" if hint else "")
        )


# ----------------------------------------------------------------------------
# queries
# ----------------------------------------------------------------------------
def module_modalities(module: Any) -> tuple[str, ...] | None:
    """The module's modality names (its ``modalities`` attribute), or None."""
    mods = getattr(_unwrap(module), "modalities", None)
    if mods is None or isinstance(mods, str):
        return None
    try:
        return tuple(mods)
    except TypeError:
        return None


def module_device(module: nn.Module) -> torch.device:
    """Device of the module's first parameter (or buffer); CPU for neither."""
    for t in module.parameters():
        return t.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def encoder_parameters(module: nn.Module, modality: str) -> list[nn.Parameter]:
    """The trainable parameters of ``modality``'s encoder, found structurally.

    ``module.encoders[modality]`` when the module has an ``encoders`` mapping
    (late fusion), else the ``'main'`` group of ``modality_parameters``
    (branched networks). Never by parameter name.
    """
    module = _unwrap(module)
    encoders = getattr(module, "encoders", None)
    if encoders is not None and modality in encoders:
        return [p for p in encoders[modality].parameters() if p.requires_grad]
    if has_capability(module, "modality_parameters"):
        return [
            p
            # a branched module here (it has modality_parameters)
            for p in cast(BranchedModule, module).modality_parameters(modality)["main"]
            if p.requires_grad
        ]
    raise TypeError(
        f"{type(module).__name__} exposes no per-modality encoders: mmexplain needs "
        f"{CAPABILITIES['encoders'][1]}"
    )


def branch_outputs(module: Any) -> list[torch.Tensor] | None:
    """Per-branch logits of the last forward call of a branched module, or None."""
    branches = getattr(_unwrap(module), "branch_logits", None)
    if not branches:
        return None
    return list(branches.values()) if isinstance(branches, Mapping) else list(branches)


def branch_loss(
    module: Any, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y: Any
) -> torch.Tensor | None:
    """The branch-loss rule: ``sum_m criterion(branch_logits[m], y)``, or None.

    Branched modules (one head per branch, e.g. :class:`~mmexplain.MMTMNet`)
    are trained on the sum of their branch losses, as in Wu et al. (2022);
    other modules (None returned) on the criterion of their output.
    """
    outputs = branch_outputs(module)
    if outputs is None:
        return None
    return sum(criterion(out, y) for out in outputs)  # type: ignore[return-value]


def select_branches(module: Any, exclude: str) -> list[torch.Tensor]:
    """Branch logits of the last forward call, except ``exclude``'s."""
    branches = getattr(_unwrap(module), "branch_logits", None) or {}
    return [v for k, v in branches.items() if k != exclude]
