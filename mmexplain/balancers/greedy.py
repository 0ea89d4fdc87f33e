"""Greedy-learning re-balancing for MMTM networks (Wu et al., 2022)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain.balancers.base import Balancer
from mmexplain.balancers.speed import ConditionalSpeedMeter

__all__ = ["GreedyBalancer"]


class GreedyBalancer(Balancer):
    """Balanced multi-modal learning: re-balancing steps driven by learning speed.

    The algorithm of Wu et al. (2022) for networks whose branches are joined by MMTM
    blocks (:class:`~mmexplain.MMTMNet`). After every *regular* training step
    the conditional learning speed of each modality is accumulated
    (``BDR_m = log10(cum_bypass_m / cum_main_m)``, see
    :class:`~mmexplain.callbacks.ConditionalLearningSpeed`).

    - ``mode='guided'``: after the warm-up, when a regular step finds
      ``abs(d_speed) > tolerance`` (``d_speed = BDR_0 - BDR_1``; with more than
      two modalities the two most different speeds), the next ``window`` steps
      are *re-balancing* steps for the modality with the larger BDR (the one
      that learns least from its own input): in every MMTM block its gate is
      replaced by its running average, so its branch receives no
      sample-specific cross-modal signal and must learn from its own input.
      Loss and optimizer are unchanged. Speeds are accumulated on regular
      steps only, as in the authors' code.
    - ``mode='random'``: after the warm-up every step is drawn uniformly from
      {regular, re-balance m_0, re-balance m_1, ...}.
    - ``mode='fixed'`` (a control, not in the paper): no speed signal. After
      the warm-up a deterministic schedule makes a fraction ``rate`` of the
      steps re-balancing steps, spread evenly: counting the steps after the
      warm-up from ``t = 0``, the step after step ``t`` re-balances iff
      ``floor((t + 1) * rate) > floor(t * rate)`` (so ``floor(T * rate)`` of
      the first ``T`` decisions re-balance). Re-balancing steps go to the
      re-balanceable modalities in turn. With ``rate`` set to the fraction of
      steps a guided run re-balanced, it takes the same number of
      re-balancing steps without knowing the speeds: it tells whether the
      guidance matters or only the amount of re-balancing.

    ``modalities`` restricts which modalities may be re-balanced (default:
    all). The guided mode still triggers on the speeds of all modalities but
    re-balances the re-balanceable modality with the largest BDR; the random
    mode draws from {regular} and the re-balanceable modalities. With the
    modality that guided re-balances left out (e.g. ``modalities=['color']``
    on colored digits, where guided re-balances gray), it is a control that
    never re-balances the weak modality.

    The fitted copy records, per epoch, ``greedy_rebalance_steps`` (a dict of
    re-balancing steps per modality) and ``greedy_d_speed`` (the d_speed it acts
    on, from regular steps only) in ``net.history``.

    Parameters
    ----------
    mode : {'guided', 'random', 'fixed'}, default='guided'
        How re-balancing steps are chosen (see above); ``'fixed'`` needs
        ``rate``.
    tolerance : float, default=0.1
        Imbalance tolerance on ``abs(d_speed)`` (paper: 0.1 for
        Colored-and-gray-MNIST and NVGesture, 0.01 for ModelNet40).
    window : int, default=5
        Re-balancing steps taken each time the tolerance is exceeded.
    warmup_epochs : int, default=1
        Epochs of regular steps only at the start of training.
    random_state : int, RandomState or None, default=None
        Seeds the random mode (default: the estimator's seed).
    modalities : list of str or None, default=None
        The modalities that may be re-balanced, a non-empty subset of the
        network's (default: all of them).
    rate : float in [0, 1] or None, default=None
        ``mode='fixed'`` only (required there): the fraction of the steps
        after the warm-up that are re-balancing steps.

    References
    ----------
    .. [Wu2022] N. Wu, S. Jastrzebski, K. Cho and K. J. Geras, "Characterizing and
       Overcoming the Greedy Nature of Learning in Multi-modal Deep Neural
       Networks", International Conference on Machine Learning (ICML), 2022.
       :arxiv:`2202.05306`

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import MMTMNet, MultimodalClassifier
    >>> from mmexplain.balancers import GreedyBalancer
    >>> from mmexplain.datasets import make_colored_digits
    >>> X, y, X_val, y_val = make_colored_digits(random_state=0)
    >>> clf = MultimodalClassifier(MMTMNet, module__channels=(8, 16), balancer=GreedyBalancer(),
    ...                            max_epochs=2, random_state=0).fit(X, y)
    >>> sorted(clf.history[-1, "greedy_rebalance_steps"])
    ['color', 'gray']
    """

    requires = ("rebalancing",)
    #: the speed meter of the current fit (``fit_started``)
    meter_: ConditionalSpeedMeter

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "mode": [StrOptions({"guided", "random", "fixed"})],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "modalities": [list, tuple, None],
        "rate": [Interval(Real, 0, 1, closed="both"), None],
    }

    def __init__(
        self,
        mode: str = "guided",
        tolerance: float = 0.1,
        window: int = 5,
        warmup_epochs: int = 1,
        random_state: Any = None,
        modalities: list[str] | None = None,
        rate: float | None = None,
    ) -> None:
        self.mode = mode
        self.tolerance = tolerance
        self.window = window
        self.warmup_epochs = warmup_epochs
        self.random_state = random_state
        self.modalities = modalities
        self.rate = rate

    def fit_started(self, net: Any, *, X: Any, y: Any, **kwargs: Any) -> None:
        module = net.module_
        modalities = tuple(module.modalities)
        if self.mode == "fixed" and self.rate is None:
            raise ValueError("GreedyBalancer(mode='fixed') needs rate= in [0, 1]")
        if self.modalities is None:
            rebalanceable = modalities
        else:
            rebalanceable = tuple(self.modalities)
            unknown = [m for m in rebalanceable if m not in modalities]
            if (
                not rebalanceable
                or unknown
                or len(set(rebalanceable)) < len(rebalanceable)
            ):
                raise ValueError(
                    "GreedyBalancer modalities must be distinct modalities of the "
                    f"network {list(modalities)}, at least one; got "
                    f"{list(rebalanceable)}"
                )
            # in the network's order, whatever order they were given in
            rebalanceable = tuple(m for m in modalities if m in rebalanceable)
        if (
            getattr(self, "meter_", None) is None
            or self.meter_.modalities != modalities
        ):
            self.meter_ = ConditionalSpeedMeter(module, modalities)
            self.current_ = None
            self.steps_left_ = 0
            self.fixed_steps_ = 0
            self.fixed_rebalanced_ = 0
        if not hasattr(self, "fixed_steps_"):  # state restored from an older file
            self.fixed_steps_ = 0
            self.fixed_rebalanced_ = 0
        self.rng_ = self._make_rng(net)
        self.modalities_ = modalities
        self.rebalanceable_ = rebalanceable

    def epoch_started(
        self, net: Any, *, epoch: int, X: Any, y: Any, **kwargs: Any
    ) -> None:
        self.epoch_ = epoch
        self.counts_ = dict.fromkeys(self.modalities_, 0)
        return None

    def forward(
        self, net: Any, *, X: dict[str, torch.Tensor], **kwargs: Any
    ) -> torch.Tensor | None:
        if self.current_ is None:
            return None
        self.counts_[self.current_] += 1
        with net.module_.rebalancing(self.current_):
            return net.module_(**X)

    def edit_gradients(
        self, net: Any, *, X: dict[str, torch.Tensor], y: torch.Tensor, **kwargs: Any
    ) -> None:
        unlocked = self.epoch_ >= self.warmup_epochs
        regular = self.current_ is None
        if regular:
            self.meter_.update()
        if not unlocked:
            return
        allowed = self.rebalanceable_
        if self.mode == "random":
            choice = int(self.rng_.randint(len(allowed) + 1))
            self.current_ = None if choice == 0 else allowed[choice - 1]
            return
        if self.mode == "fixed":
            assert self.rate is not None  # checked when the fit starts
            t, rate = self.fixed_steps_, float(self.rate)
            self.fixed_steps_ += 1
            if math.floor((t + 1) * rate) > math.floor(t * rate):
                self.current_ = allowed[self.fixed_rebalanced_ % len(allowed)]
                self.fixed_rebalanced_ += 1
            else:
                self.current_ = None
            return
        if regular:
            bdr = self.meter_.bdr()
            values = np.array(list(bdr.values()))
            if (
                np.all(np.isfinite(values))
                and values.max() - values.min() > self.tolerance
            ):
                self.current_ = max(allowed, key=bdr.__getitem__)
                self.steps_left_ = int(self.window)
        else:
            self.steps_left_ -= 1
            if self.steps_left_ <= 0:
                self.current_ = None

    def epoch_finished(self, net: Any, *, epoch: int, **kwargs: Any) -> None:
        net.history.record("greedy_rebalance_steps", dict(self.counts_))
        net.history.record(
            "greedy_d_speed",
            self.meter_.d_speed() if self.meter_.steps else float("nan"),
        )
