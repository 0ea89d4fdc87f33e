"""Modality dropout: randomly hide whole modalities during training."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain.balancers.base import (
    Balancer,
    modality_means,
    modality_names,
    source_device,
)
from mmexplain.data.sources import RowSource

__all__ = ["ModalityDropout"]


class ModalityDropout(Balancer):
    """Drop random modalities of each training sample (never all of them).

    At every training step each modality of each sample is dropped
    independently with probability ``p`` (or ``p[modality]``): its input is
    replaced by zeros (``fill='zeros'``) or by the training-set mean of that
    modality (``fill='mean'``). A sample whose draw would drop every modality
    keeps one of them, chosen uniformly. This is the modality-dropout baseline
    of Yerramilli et al.; it forces each branch to be useful on its own.

    Parameters
    ----------
    p : float or dict of str to float, default=0.3
        Drop probability, shared or per modality, each in [0, 1).
    fill : {'zeros', 'mean'}, default='zeros'
        Value a dropped modality is replaced with.
    modalities : sequence of str or None, default=None
        Modalities that may be dropped; None means all.
    level : {'sample', 'batch'}, default='sample'
        Draw the mask per sample or once per mini-batch.
    random_state : int, RandomState or None, default=None
        Seed of the dropout draws. None uses the estimator's ``random_state``.

    References
    ----------
    .. [Yerramilli2024] S. Yerramilli, J. S. Tamarapalli, J. Francis and E. Nyberg,
       "Attribution Regularization for Multimodal Paradigms", 2024.
       :arxiv:`2404.02359`

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.balancers import ModalityDropout
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(balancer=ModalityDropout(p=0.5), max_epochs=2,
    ...                            random_state=0).fit(X, y)
    >>> clf.get_params()["balancer__p"]
    0.5
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "p": [Interval(Real, 0, 1, closed="left"), Mapping],
        "fill": [StrOptions({"zeros", "mean"})],
        "modalities": ["array-like", None],
        "level": [StrOptions({"sample", "batch"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        p: float | Mapping[str, float] = 0.3,
        *,
        fill: str = "zeros",
        modalities: tuple[str, ...] | None = None,
        level: str = "sample",
        random_state: Any = None,
    ) -> None:
        self.p = p
        self.fill = fill
        self.modalities = modalities
        self.level = level
        self.random_state = random_state

    def fit_started(
        self,
        net: Any,
        *,
        X: RowSource | Mapping[str, torch.Tensor],
        y: torch.Tensor,
        **kwargs: Any,
    ) -> None:
        names = modality_names(X)
        droppable = names if self.modalities is None else tuple(self.modalities)
        for m in droppable:
            if m not in names:
                raise ValueError(
                    f"ModalityDropout: unknown modality {m!r}; modalities are {list(names)}"
                )
        if isinstance(self.p, Mapping):
            for m in self.p:
                if m not in names:
                    raise ValueError(f"ModalityDropout: p names unknown modality {m!r}")
            probs = [
                float(self.p.get(m, 0.0)) if m in droppable else 0.0 for m in names
            ]
        elif isinstance(self.p, Real):
            probs = [float(self.p) if m in droppable else 0.0 for m in names]
        else:
            raise TypeError(
                f"p must be a float or a dict of floats, got {type(self.p).__name__}"
            )
        for m, q in zip(names, probs):
            if not 0.0 <= q < 1.0:
                raise ValueError(
                    f"ModalityDropout: drop probability of modality {m!r} must be in [0, 1), got {q}"
                )
        device = source_device(X, net)
        self.modalities_ = names
        self.probs_ = torch.tensor(probs, dtype=torch.float32, device=device)
        self.droppable_ = [m in droppable for m in names]
        self.generator_ = self._make_generator(net, device)
        self.means_: dict[str, torch.Tensor] | None = (
            modality_means(X, device) if self.fill == "mean" else None
        )

    def drop_mask(self, n: int, device: torch.device) -> torch.Tensor:
        """Boolean mask (n, M): True where a modality is dropped. Never all of a row."""
        gen = self.generator_
        if gen.device != device:  # the data moved (e.g. fit on another device)
            gen = self.generator_ = self._make_generator(None, device)
        m = len(self.modalities_)
        rows = n if self.level == "sample" else 1
        u = torch.rand((rows, m), generator=gen, device=device)
        mask = u < self.probs_.to(device)
        # a row that would lose every modality keeps one droppable modality,
        # chosen uniformly (all-dropped rows only arise when all are droppable)
        full = mask.all(dim=1, keepdim=True)
        keep = torch.randint(0, m, (rows,), generator=gen, device=device)
        mask = mask & ~(full & torch.nn.functional.one_hot(keep, m).bool())
        return mask.expand(n, m) if rows == 1 else mask

    def transform_batch(
        self,
        net: Any,
        *,
        X: dict[str, torch.Tensor],
        y: torch.Tensor,
        rows: Any = None,
        **kwargs: Any,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        first = next(iter(X.values()))
        keep = (~self.drop_mask(first.shape[0], first.device)).to(first.dtype)
        out = {}
        for j, m in enumerate(self.modalities_):
            x = X[m]
            if not self.droppable_[j]:
                out[m] = x
                continue
            k = keep[:, j].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
            out[m] = (
                x * k
                if self.means_ is None
                else x * k + self.means_[m].to(x.dtype) * (1 - k)
            )
        return out, y
