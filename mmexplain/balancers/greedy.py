"""Greedy-learning re-balancing for MMTM networks (Wu et al., 2022)."""

from __future__ import annotations

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

    The fitted copy records, per epoch, ``greedy_rebalance_steps`` (a dict of
    re-balancing steps per modality) and ``greedy_d_speed`` (the d_speed it acts
    on, from regular steps only) in ``net.history``.

    Parameters
    ----------
    mode : {'guided', 'random'}, default='guided'
    tolerance : float, default=0.1
        Imbalance tolerance on ``abs(d_speed)`` (paper: 0.1 for
        Colored-and-gray-MNIST and NVGesture, 0.01 for ModelNet40).
    window : int, default=5
        Re-balancing steps taken each time the tolerance is exceeded.
    warmup_epochs : int, default=1
        Epochs of regular steps only at the start of training.
    random_state : int, RandomState or None, default=None
        Seeds the random mode (default: the estimator's seed).

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

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "mode": [StrOptions({"guided", "random"})],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        mode: str = "guided",
        tolerance: float = 0.1,
        window: int = 5,
        warmup_epochs: int = 1,
        random_state: Any = None,
    ) -> None:
        self.mode = mode
        self.tolerance = tolerance
        self.window = window
        self.warmup_epochs = warmup_epochs
        self.random_state = random_state

    def fit_started(self, net: Any, *, X: Any, y: Any, **kwargs: Any) -> None:
        module = net.module_
        modalities = tuple(module.modalities)
        if (
            getattr(self, "meter_", None) is None
            or self.meter_.modalities != modalities
        ):
            self.meter_ = ConditionalSpeedMeter(module, modalities)
            self.current_ = None
            self.steps_left_ = 0
        self.rng_ = self._make_rng(net)
        self.modalities_ = modalities

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
        if self.mode == "random":
            choice = int(self.rng_.randint(len(self.modalities_) + 1))
            self.current_ = None if choice == 0 else self.modalities_[choice - 1]
            return
        if regular:
            bdr = self.meter_.bdr()
            values = np.array(list(bdr.values()))
            if (
                np.all(np.isfinite(values))
                and values.max() - values.min() > self.tolerance
            ):
                self.current_ = self.modalities_[int(values.argmax())]
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
