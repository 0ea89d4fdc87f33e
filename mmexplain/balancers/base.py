"""The balancer hook protocol.

A *balancer* steers how a multimodal network uses its modalities while it
trains. It is a scikit-learn estimator (so ``clone``, ``get_params`` and nested
``balancer__<param>`` grid searches work) whose hooks are called by the
training loop of :class:`~mmexplain.MultimodalClassifier` and
:class:`~mmexplain.MultimodalSegmenter`. The estimator clones the balancer at
the start of ``fit`` (the fitted copy lives in ``net.balancer_``), so a
balancer may keep run-time state in attributes ending with ``_``.

Order of calls during ``fit``::

    check_model(net)                     once, after the module is built
    on_train_begin(net, X, y)            once per fit / partial_fit
    for each epoch:
        on_epoch_begin(net, epoch, X, y) -> optional replacement (X, y) for the epoch
        for each training batch:
            X_b, y_b = transform_batch(net, X_b, y_b)
            y_pred = forward(net, X_b)   (None -> the module's own forward)
            loss = criterion(y_pred, y_b) + penalty(net, X_b, y_b, y_pred)
            loss.backward()
            after_backward(net, X_b, y_b)   (gradient edits, extra optimizers)
            optimizer.step()
        on_epoch_end(net, epoch)
    on_train_end(net)

Every hook has a no-op default; a balancer overrides only what it needs.
``X`` arguments are ``dict[str, torch.Tensor]`` on the training device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from mmexplain.metrics import check_target  # re-exported: balancers validate targets

__all__ = ["Balancer", "check_target", "require_encode_fuse"]


class Balancer(BaseEstimator):
    """Base class of all balancers (see the module docstring for the protocol).

    Subclasses list the model interface they need in ``requires`` (used in
    error messages) and check it in :meth:`check_model`.
    """

    #: short description of what the balancer needs from the module
    requires: str = "any multimodal module taking one keyword argument per modality"

    # -- validation ------------------------------------------------------
    def check_model(self, net: Any) -> None:
        """Raise ``TypeError`` if ``net.module_`` cannot be balanced by this balancer."""

    # -- hooks -----------------------------------------------------------
    def on_train_begin(
        self, net: Any, X: Mapping[str, torch.Tensor], y: torch.Tensor
    ) -> None:
        """Called once at the start of training with the full training data."""

    def on_epoch_begin(
        self, net: Any, epoch: int, X: Mapping[str, torch.Tensor], y: torch.Tensor
    ) -> tuple[Mapping[str, torch.Tensor], torch.Tensor] | None:
        """Called before each epoch; may return replacement training data for it."""
        return None

    def transform_batch(
        self, net: Any, X: dict[str, torch.Tensor], y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Return the (possibly modified) training batch. Must not modify ``X`` in place."""
        return X, y

    def forward(self, net: Any, X: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Return the training-step output, or None to use the module's forward."""
        return None

    def penalty(
        self,
        net: Any,
        X: dict[str, torch.Tensor],
        y: torch.Tensor,
        y_pred: torch.Tensor,
    ) -> torch.Tensor | None:
        """Extra differentiable loss term added to the task loss (None for none)."""
        return None

    def after_backward(
        self, net: Any, X: dict[str, torch.Tensor], y: torch.Tensor
    ) -> None:
        """Called after ``loss.backward()`` and before the optimizer step."""

    def on_epoch_end(self, net: Any, epoch: int) -> None:
        """Called after each epoch (after validation)."""

    def on_train_end(self, net: Any) -> None:
        """Called once at the end of training."""

    # -- helpers for subclasses -------------------------------------------
    def _make_generator(
        self, net: Any, device: torch.device | str, offset: int = 0
    ) -> torch.Generator:
        """A local torch generator seeded from ``self.random_state`` or the net's seed.

        With neither set, the generator is seeded from fresh OS entropy.
        """
        random_state = getattr(self, "random_state", None)
        if random_state is not None:
            seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        elif getattr(net, "seed_", None) is not None:
            seed = int(net.seed_) + 104_729 + offset
        else:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        gen = torch.Generator(device=torch.device(device))
        gen.manual_seed(seed)
        return gen


def require_encode_fuse(balancer: Balancer, net: Any) -> None:
    """Raise ``TypeError`` unless ``net.module_`` has ``encode`` and ``fuse`` methods."""
    module = net.module_
    if not (
        callable(getattr(module, "encode", None))
        and callable(getattr(module, "fuse", None))
    ):
        raise TypeError(
            f"{type(balancer).__name__} needs {balancer.requires}; "
            f"{type(module).__name__} has no encode/fuse methods"
        )
