"""Sample-level modality valuation re-sampling (Wei et al., 2024)."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any, ClassVar, cast

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain.balancers.base import (
    Balancer,
    EpochData,
    encode_fuse,
    modality_names,
    training_source,
)
from mmexplain.data.sources import RowSource
from mmexplain.modules.contract import has_encode_fuse
from mmexplain.results import ShapleyExplanation
from mmexplain.seeding import MAX_SEED

__all__ = ["SampleValuation", "KEEP_ROWS"]

#: name of the per-row side information (``rows=``) saying, for each training
#: row, which modalities it trains: a (N, M) 0/1 tensor
KEEP_ROWS = "keep"


class SampleValuation(Balancer):
    """Re-sample training data by each sample's modality Shapley values (Wei et al., 2024).

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

    References
    ----------
    .. [Wei2024] Y. Wei, R. Feng, Z. Wang and D. Hu, "Enhancing Multimodal
       Cooperation via Sample-level Modality Valuation", IEEE/CVF Conference on
       Computer Vision and Pattern Recognition (CVPR), 2024. :arxiv:`2309.06255`

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

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "level": [StrOptions({"sample", "modality"})],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "subset": [Interval(Real, 0, 1, closed="right")],
        "random_state": ["random_state"],
    }

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

    def fit_started(self, net: Any, *, X: Any, y: Any, **kwargs: Any) -> None:
        if getattr(net, "_task", None) == "regression":
            raise ValueError(
                "SampleValuation is for classification: its value |S| * "
                "1[prediction correct] and the re-sampling thresholds calibrated to "
                "it (0.4, -0.1, gap = 1 - mean value) have no regression "
                "counterpart; a loss-based value is in the targets' units, so the "
                "same rule would depend on the scale of y. Use ModalityDropout or "
                "UtilizationTarget for a regressor"
            )
        if y is None or y.dim() != 1:
            raise ValueError(
                "SampleValuation is for classification (one label per sample)"
            )
        self.modalities_ = modality_names(X)
        self.split_ = has_encode_fuse(net.module_)
        self.rng_ = self._make_rng(net)

    # -- valuation ----------------------------------------------------------
    def _values(self, net: Any, X: RowSource, y: torch.Tensor) -> np.ndarray:
        from mmexplain.explainers import ModalityShapley

        explainer = ModalityShapley(
            value="correct",
            baseline="zeros" if self.split_ else "zero_input",
            # Monte-Carlo orderings (more than max_exact modalities) are seeded too
            random_state=int(self.rng_.randint(MAX_SEED)),
        )
        expl = explainer.explain(net.module_, X, y.detach().cpu().numpy())
        values = cast(ShapleyExplanation, expl).values
        assert values is not None  # ModalityShapley keeps the per-sample values
        return values

    def epoch_started(
        self,
        net: Any,
        *,
        epoch: int,
        X: RowSource | Mapping[str, torch.Tensor],
        y: torch.Tensor,
        **kwargs: Any,
    ) -> EpochData | None:
        self.counts_ = None
        if epoch < self.warmup_epochs:
            return None
        source = training_source(X)
        n, M = len(y), len(self.modalities_)
        rows: np.ndarray
        mods: np.ndarray
        if self.level == "sample":
            phi = self._values(net, source, y)  # (N, M)
            copies = np.where(
                phi <= -0.1, 3, np.where(phi <= 0.4, 2, np.where(phi < 1.0, 1, 0))
            )
            row_parts, mod_parts = [], []
            for j in range(M):
                idx = np.repeat(np.arange(n), copies[:, j])
                row_parts.append(idx)
                mod_parts.append(np.full(len(idx), j))
            rows, mods = np.concatenate(row_parts), np.concatenate(mod_parts)
            mean_phi = phi.mean(axis=0)
        else:
            k = max(1, int(round(self.subset * n)))
            sub = self.rng_.choice(n, k, replace=False)
            sub_t = torch.as_tensor(sub, device=y.device)
            phi = self._values(net, source.subset(sub), y.index_select(0, sub_t))
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
        y_epoch = torch.cat([y, y.index_select(0, rows_t)])
        # the epoch's rows by index: the estimator reads them from memory or
        # from the Dataset, so this works in and out of core alike
        index = np.concatenate([np.arange(n), rows])
        return EpochData(None, y_epoch, rows={KEEP_ROWS: keep}, index=index)

    # -- training forward -------------------------------------------------------
    def forward(
        self,
        net: Any,
        *,
        X: dict[str, torch.Tensor],
        rows: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor | None:
        if rows is None or KEEP_ROWS not in rows:
            return None
        keep = rows[KEEP_ROWS]

        def mask(Z: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {
                m: Z[m] * keep[:, j].to(Z[m].dtype).view(-1, *([1] * (Z[m].dim() - 1)))
                for j, m in enumerate(self.modalities_)
            }

        if self.split_:
            return encode_fuse(net.module_, X, transform=mask)[0]
        return net.module_(**mask(X))

    def epoch_finished(self, net: Any, *, epoch: int, **kwargs: Any) -> None:
        if self.counts_ is not None:
            net.history.record("valuation_mean_phi", dict(self.mean_phi_))
            net.history.record("valuation_extra_samples", dict(self.counts_))
