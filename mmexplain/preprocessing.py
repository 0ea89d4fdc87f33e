"""Per-modality preprocessing for scikit-learn pipelines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from mmexplain.data import ModalityDict, check_X

__all__ = ["ModalityTransformer"]

_SPECIAL = ("passthrough", "drop")


class ModalityTransformer(TransformerMixin, BaseEstimator):
    """Apply a scikit-learn transformer to each modality of ``X``.

    The multimodal counterpart of ``ColumnTransformer``: ``X`` is a mapping
    ``{modality: array}`` and the output is a :class:`~mmexplain.ModalityDict`,
    so ``make_pipeline(ModalityTransformer(...), MultimodalClassifier(...))``
    works, including inside ``GridSearchCV``. Arrays with more than two
    dimensions (images) are flattened per sample for the transformer and
    reshaped back when the transformer keeps the number of features.

    Parameters
    ----------
    transformers : dict of str to transformer, 'passthrough' or 'drop'
        What to apply to each named modality. Each transformer is cloned in
        ``fit``. Nested parameters are addressed as ``<modality>__<param>``.
    remainder : transformer, 'passthrough' or 'drop', default='passthrough'
        What happens to modalities not named in ``transformers``.

    Attributes
    ----------
    transformers_ : dict
        Fitted transformer (or 'passthrough') of every kept modality.
    modalities_ : tuple of str
        Modalities seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmexplain import ModalityTransformer
    >>> X = {"eo": np.arange(12.0).reshape(4, 3), "sar": np.ones((4, 2))}
    >>> Xt = ModalityTransformer({"eo": StandardScaler()}).fit_transform(X)
    >>> np.round(Xt["eo"].mean(axis=0), 6).tolist(), Xt["sar"] is X["sar"]
    ([0.0, 0.0, 0.0], True)
    """

    def __init__(
        self, transformers: Mapping[str, Any], remainder: Any = "passthrough"
    ) -> None:
        self.transformers = transformers
        self.remainder = remainder

    # -- nested parameters (like sklearn's _BaseComposition) ------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=False)
        if not deep or not isinstance(self.transformers, Mapping):
            return params
        for name, est in self.transformers.items():
            params[name] = est
            if hasattr(est, "get_params") and not isinstance(est, type):
                for key, value in est.get_params(deep=True).items():
                    params[f"{name}__{key}"] = value
        return params

    def set_params(self, **params: Any) -> ModalityTransformer:
        if "transformers" in params:
            self.transformers = params.pop("transformers")
        if "remainder" in params:
            self.remainder = params.pop("remainder")
        transformers = dict(self.transformers) if params else self.transformers
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in transformers:
                raise ValueError(
                    f"invalid parameter {key!r} for {type(self).__name__}; modalities "
                    f"with transformers are {list(transformers)}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                transformers[name] = value
        for name, sub in nested.items():
            transformers[name].set_params(**sub)
        if params:
            self.transformers = transformers
        return self

    # -- fitting ----------------------------------------------------------
    def _check_spec(self, X: ModalityDict) -> dict[str, Any]:
        if not isinstance(self.transformers, Mapping):
            raise TypeError(
                "transformers must be a dict {modality: transformer}, got "
                f"{type(self.transformers).__name__}"
            )
        unknown = [m for m in self.transformers if m not in X]
        if unknown:
            raise ValueError(
                f"ModalityTransformer names unknown modality {unknown[0]!r}; X has {list(X)}"
            )
        spec = {}
        for m in X:
            est = self.transformers.get(m, self.remainder)
            if isinstance(est, str):
                if est not in _SPECIAL:
                    raise ValueError(
                        f"transformer for modality {m!r} must be an estimator, "
                        f"'passthrough' or 'drop', got {est!r}"
                    )
            elif not (hasattr(est, "fit") and hasattr(est, "transform")):
                raise TypeError(
                    f"transformer for modality {m!r} must implement fit and transform, "
                    f"got {type(est).__name__}"
                )
            spec[m] = est
        if all(isinstance(e, str) and e == "drop" for e in spec.values()):
            raise ValueError("ModalityTransformer would drop every modality")
        return spec

    @staticmethod
    def _to_2d(x: Any) -> tuple[np.ndarray, tuple[int, ...], Any]:
        if isinstance(x, torch.Tensor):
            info = (x.dtype, x.device)
            x = x.detach().cpu().numpy()
        else:
            info = None
        return x.reshape(x.shape[0], -1), tuple(x.shape[1:]), info

    @staticmethod
    def _from_2d(z: Any, shape: tuple[int, ...], info: Any) -> Any:
        z = z.toarray() if hasattr(z, "toarray") else np.asarray(z)
        if int(np.prod(shape)) == z.shape[1] and len(shape) > 1:
            z = z.reshape(z.shape[0], *shape)
        if info is not None:
            return torch.as_tensor(
                z, dtype=info[0] if z.dtype.kind == "f" else None, device=info[1]
            )
        return z

    def fit(self, X: Any, y: Any = None) -> ModalityTransformer:
        """Fit each modality's transformer. Returns ``self``."""
        self._fit(X, y, transform=False)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> ModalityDict:
        """Fit and transform in one pass over each modality."""
        return self._fit(X, y, transform=True)

    def _fit(self, X: Any, y: Any, transform: bool) -> Any:
        Xv = check_X(X, min_ndim=2, ensure_finite=False)
        spec = self._check_spec(Xv)
        fitted: dict[str, Any] = {}
        out: dict[str, Any] = {}
        for m, est in spec.items():
            if est == "drop":
                continue
            if est == "passthrough":
                fitted[m] = "passthrough"
                out[m] = Xv[m]
                continue
            x2, shape, info = self._to_2d(Xv[m])
            est = clone(est)
            if transform and hasattr(est, "fit_transform"):
                z = est.fit_transform(x2, y)
            else:
                est.fit(x2, y)
                z = est.transform(x2) if transform else None
            fitted[m] = est
            if transform:
                out[m] = self._from_2d(z, shape, info)
        self.transformers_ = fitted
        self.modalities_ = Xv.modalities
        return ModalityDict(out) if transform else None

    def transform(self, X: Any) -> ModalityDict:
        """Transform each modality; returns a new :class:`~mmexplain.ModalityDict`."""
        check_is_fitted(self, "transformers_")
        Xv = check_X(X, modalities=self.modalities_, ensure_finite=False)
        out = {}
        for m, est in self.transformers_.items():
            if est == "passthrough":
                out[m] = Xv[m]
            else:
                x2, shape, info = self._to_2d(Xv[m])
                out[m] = self._from_2d(est.transform(x2), shape, info)
        return ModalityDict(out)
