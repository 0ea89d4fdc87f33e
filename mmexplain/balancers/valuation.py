"""Sample-level modality valuation re-sampling (seed 004, Wei et al. 2024)."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from mmexplain.balancers.base import Balancer

__all__ = ["SampleValuation", "KEEP_KEY"]

#: extra batch entry carrying, per training row, which modalities are kept (N, M)
KEEP_KEY = "__keep__"


class SampleValuation(Balancer):
    """Re-sample training data by each sample's modality Shapley values (seed 004).

    After ``warmup_epochs``, at the start of every epoch the training samples
    are valued with :class:`~mmexplain.explainers.ModalityShapley` (the
    paper's value ``|S| * 1[correct]``, absent modalities' embeddings zeroed;
    zeroed inputs for models without ``encode``/``fuse``). Extra copies are
    then added to that epoch's data; a copy *trains only one modality*: the
    other modalities' embeddings (inputs) are zeroed for it.

    - ``level='sample'``: for each sample and each modality ``m`` with
      Shapley value ``phi_m``: 1 copy if ``0.4 < phi_m < 1``, 2 copies if
      ``-0.1 < phi_m <= 0.4``, 3 copies if ``phi_m <= -0.1``.
    - ``level='modality'`` (cheaper): the values are computed on a random
      ``subset`` (20%) of the samples; ``gap_m = 1 - mean phi_m``; the modality
      with the largest gap gets ``int(|gap_max - gap_min| * 2/3 * alpha * N)``
      extra random samples training only it.

    Per epoch ``net.history`` records ``valuation_mean_phi`` and
    ``valuation_extra_samples`` (per modality).

    Parameters
    ----------
    level : {'sample', 'modality'}, default='sample'
    warmup_epochs : int, default=5
    alpha : float, default=1.0
        Scale of the number of extra samples (modality level).
    subset : float, default=0.2
        Fraction of samples valued at the modality level.
    random_state : int, RandomState or None, default=None

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import SampleValuation
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(balancer=SampleValuation(warmup_epochs=1),
    ...                            max_epochs=2, random_state=0).fit(X, y)
    >>> sorted(clf.history[-1, "valuation_extra_samples"])
    ['a', 'b']
    """

    def __init__(
        self,
        level: str = "sample",
        warmup_epochs: int = 5,
        alpha: float = 1.0,
        subset: float = 0.2,
        random_state: Any = None,
    ) -> None:
        self.level = level
        self.warmup_epochs = warmup_epochs
        self.alpha = alpha
        self.subset = subset
        self.random_state = random_state

    def on_train_begin(self, net: Any, X: Any, y: Any) -> None:
        if self.level not in ("sample", "modality"):
            raise ValueError(
                f"level must be 'sample' or 'modality', got {self.level!r}"
            )
        if not isinstance(self.warmup_epochs, Integral) or self.warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}"
            )
        if not isinstance(self.alpha, Real) or self.alpha < 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if not isinstance(self.subset, Real) or not 0 < self.subset <= 1:
            raise ValueError(f"subset must be in (0, 1], got {self.subset!r}")
        if y is None or y.dim() != 1:
            raise ValueError(
                "SampleValuation is for classification (one label per sample)"
            )
        module = net.module_
        self.modalities_ = tuple(X.keys())
        self.split_ = callable(getattr(module, "encode", None)) and callable(
            getattr(module, "fuse", None)
        )
        seed = self.random_state
        if seed is None and getattr(net, "seed_", None) is not None:
            seed = (net.seed_ + 4242) % (2**31 - 1)
        self.rng_ = (
            np.random.RandomState(seed)
            if not isinstance(seed, np.random.RandomState)
            else seed
        )

    # -- valuation ----------------------------------------------------------
    def _values(
        self, net: Any, X: dict[str, torch.Tensor], y: torch.Tensor
    ) -> np.ndarray:
        from mmexplain.explainers import ModalityShapley

        explainer = ModalityShapley(
            value="correct", baseline="zeros" if self.split_ else "zero_input"
        )
        return explainer.explain(net.module_, X, y.detach().cpu().numpy()).values

    def on_epoch_begin(
        self, net: Any, epoch: int, X: dict[str, torch.Tensor], y: torch.Tensor
    ) -> Any:
        self.counts_ = None
        if epoch < self.warmup_epochs:
            return None
        n, M = len(y), len(self.modalities_)
        if self.level == "sample":
            phi = self._values(net, X, y)  # (N, M)
            copies = np.where(
                phi <= -0.1, 3, np.where(phi <= 0.4, 2, np.where(phi < 1.0, 1, 0))
            )
            rows, mods = [], []
            for j in range(M):
                idx = np.repeat(np.arange(n), copies[:, j])
                rows.append(idx)
                mods.append(np.full(len(idx), j))
            rows, mods = np.concatenate(rows), np.concatenate(mods)
            mean_phi = phi.mean(axis=0)
        else:
            k = max(1, int(round(self.subset * n)))
            sub = self.rng_.choice(n, k, replace=False)
            sub_t = torch.as_tensor(sub, device=y.device)
            phi = self._values(
                net,
                {m: v.index_select(0, sub_t.to(v.device)) for m, v in X.items()},
                y.index_select(0, sub_t),
            )
            mean_phi = phi.mean(axis=0)
            gap = 1.0 - mean_phi
            hi, lo = int(gap.argmax()), int(gap.argmin())
            n_extra = int(abs(gap[hi] - gap[lo]) * 2.0 / 3.0 * float(self.alpha) * n)
            rows = self.rng_.choice(n, n_extra, replace=n_extra > n)
            mods = np.full(n_extra, hi)
        self.mean_phi_ = dict(zip(self.modalities_, mean_phi.tolist()))
        self.counts_ = {
            m: int((mods == j).sum()) for j, m in enumerate(self.modalities_)
        }
        if len(rows) == 0:
            return None
        device = y.device
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=device)
        keep_extra = torch.zeros(len(rows), M, device=device)
        keep_extra[
            torch.arange(len(rows), device=device), torch.as_tensor(mods, device=device)
        ] = 1.0
        keep = torch.cat([torch.ones(n, M, device=device), keep_extra])
        X_epoch = {
            m: torch.cat([v, v.index_select(0, rows_t.to(v.device))])
            for m, v in X.items()
        }
        X_epoch[KEEP_KEY] = keep
        return X_epoch, torch.cat([y, y.index_select(0, rows_t)])

    # -- training forward -------------------------------------------------------
    def forward(self, net: Any, X: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if KEEP_KEY not in X:
            return None
        keep = X[KEEP_KEY]
        inputs = {m: v for m, v in X.items() if m != KEEP_KEY}
        module = net.module_

        def mask(j: int, t: torch.Tensor) -> torch.Tensor:
            return t * keep[:, j].to(t.dtype).view(-1, *([1] * (t.dim() - 1)))

        if self.split_:
            Z = module.encode(**inputs)
            return module.fuse(
                **{m: mask(j, Z[m]) for j, m in enumerate(self.modalities_)}
            )
        return module(**{m: mask(j, inputs[m]) for j, m in enumerate(self.modalities_)})

    def on_epoch_end(self, net: Any, epoch: int) -> None:
        if self.counts_ is not None:
            net.history.record("valuation_mean_phi", dict(self.mean_phi_))
            net.history.record("valuation_extra_samples", dict(self.counts_))
