"""skorch callbacks for multimodal training."""

from __future__ import annotations

from typing import Any

from skorch.callbacks import Callback

__all__ = ["ConditionalLearningSpeed", "EpochProgressBar", "UtilizationHistory"]


class EpochProgressBar(Callback):
    """A tqdm bar over epochs showing the latest losses (lighter than skorch's per-batch bar).

    When standard error is not a terminal (a log file, CI), the bar is
    plain lines instead, one every 10 % of the epochs, without the carriage
    returns a tqdm bar writes.

    Parameters
    ----------
    desc : str, default='training'
    keys : tuple of str, default=('train_loss', 'valid_loss', 'valid_acc')
        History entries shown when present.

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.callbacks import EpochProgressBar
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=2, random_state=0,
    ...                            callbacks=[EpochProgressBar(desc="fit")]).fit(X, y)
    >>> len(clf.history)
    2
    """

    def __init__(
        self,
        desc: str = "training",
        keys: tuple[str, ...] = ("train_loss", "valid_loss", "valid_acc"),
    ) -> None:
        self.desc = desc
        self.keys = keys

    def on_train_begin(
        self, net: Any, X: Any = None, y: Any = None, **kwargs: Any
    ) -> None:
        from mmexplain._core.progress import progress_bar

        self.bar_ = progress_bar(net.max_epochs, self.desc, leave=True)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        last = net.history[-1]
        self.bar_.set_postfix({k: f"{last[k]:.4f}" for k in self.keys if k in last})
        self.bar_.update(1)

    def on_train_end(
        self, net: Any, X: Any = None, y: Any = None, **kwargs: Any
    ) -> None:
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.close()
            del self.bar_

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("bar_", None)
        return state


class UtilizationHistory(Callback):
    """Record modality utilization on fixed data after training epochs (Singh et al., 2023, Fig. 4).

    Every ``every`` epochs the explainer runs on ``(X, y)`` with the current
    network (eval mode, restored afterwards) and ``net.history`` gets
    ``key`` = ``{modality: share in percent}`` for that epoch. Plot with
    :func:`mmexplain.plotting.plot_utilization_history`.

    Parameters
    ----------
    explainer : explainer or None, default=None
        Any mmexplain explainer; None is
        ``PermutationModalityImportance(n_repeats=3, random_state=0)``.
    X, y : evaluation data (e.g. a validation split).
    every : int, default=1
    key : str, default='utilization'

    References
    ----------
    .. [Singh2023] S. Singh, P. P. Markopoulos, E. Saber, J. D. Lew and J. Heard,
       "Measuring Modality Utilization in Multi-Modal Neural Networks", IEEE
       Conference on Artificial Intelligence (CAI), 2023, pp. 11-14.
       :doi:`10.1109/CAI54212.2023.00014`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.callbacks import UtilizationHistory
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=3, random_state=0,
    ...                            callbacks=[UtilizationHistory(X=X, y=y)]).fit(X, y)
    >>> len(clf.history[:, "utilization"])
    3
    """

    def __init__(
        self,
        explainer: Any = None,
        X: Any = None,
        y: Any = None,
        every: int = 1,
        key: str = "utilization",
    ) -> None:
        self.explainer = explainer
        self.X = X
        self.y = y
        self.every = every
        self.key = key

    def initialize(self) -> UtilizationHistory:
        if self.X is None:
            raise ValueError(
                "UtilizationHistory needs the data to measure on: UtilizationHistory(explainer, X, y)"
            )
        if int(self.every) < 1:
            raise ValueError(f"every must be >= 1, got {self.every!r}")
        return self

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        epoch = len(net.history)
        if epoch % int(self.every):
            return
        explainer = self.explainer
        if explainer is None:
            from mmexplain.explainers import PermutationModalityImportance

            explainer = PermutationModalityImportance(n_repeats=3, random_state=0)
        expl = explainer.explain(net, self.X, self.y)
        net.history.record(self.key, dict(zip(expl.modalities, expl.shares.tolist())))


class ConditionalLearningSpeed(Callback):
    """Record each modality's conditional learning speed and ``d_speed`` per epoch (Wu et al., 2022).

    After every backward pass (skorch's ``on_grad_computed``), the ratio
    ``sum ||grad||^2 / sum ||theta||^2`` of each modality's 'main' (branch)
    and 'bypass' (fusion parameters feeding it) groups is accumulated from
    the first step on; at each epoch end ``net.history`` gets
    ``learning_speed`` = ``{modality: BDR_m}`` with
    ``BDR_m = log10(cum_bypass_m / cum_main_m)`` and ``d_speed`` =
    ``BDR_0 - BDR_1`` (largest minus smallest for more modalities). Needs a
    module with ``modality_parameters(m)`` (e.g. :class:`~mmexplain.MMTMNet`).

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
    >>> from mmexplain.callbacks import ConditionalLearningSpeed
    >>> rng = np.random.RandomState(0)
    >>> X = {"gray": rng.rand(32, 1, 8, 8).astype("float32"),
    ...      "color": rng.rand(32, 3, 8, 8).astype("float32")}
    >>> y = rng.randint(0, 2, 32)
    >>> clf = MultimodalClassifier(MMTMNet, module__channels=(4, 8), max_epochs=1,
    ...                            random_state=0,
    ...                            callbacks=[ConditionalLearningSpeed()]).fit(X, y)
    >>> sorted(clf.history[-1, "learning_speed"])
    ['color', 'gray']
    >>> isinstance(clf.history[-1, "d_speed"], float)
    True
    """

    def on_train_begin(
        self, net: Any, X: Any = None, y: Any = None, **kwargs: Any
    ) -> None:
        from mmexplain.balancers import ConditionalSpeedMeter

        # accumulate from the first step on, across partial_fit calls, until
        # the network is re-initialized (a new module object)
        if (
            getattr(self, "module_id_", None) != id(net.module_)
            or getattr(self, "meter_", None) is None
        ):
            self.meter_ = ConditionalSpeedMeter(net.module_)
            self.module_id_ = id(net.module_)

    def on_grad_computed(
        self,
        net: Any,
        named_parameters: Any,
        X: Any = None,
        y: Any = None,
        training: bool = False,
        **kwargs: Any,
    ) -> None:
        if training:
            self.meter_.update()

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if self.meter_.steps:
            net.history.record("learning_speed", self.meter_.bdr())
            net.history.record("d_speed", self.meter_.d_speed())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("meter_", None)
        state.pop("module_id_", None)
        return state
