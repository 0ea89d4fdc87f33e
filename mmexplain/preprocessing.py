"""Per-modality preprocessing for scikit-learn pipelines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from mmexplain.data import ModalityDict, check_X

__all__ = ["ModalityTransformer"]


def _column_names(X: Any) -> dict[str, Any]:
    """The column names of the modalities given as DataFrames."""
    if not isinstance(X, Mapping):
        return {}
    return {
        m: np.asarray([str(c) for c in v.columns], dtype=object)
        for m, v in X.items()
        if hasattr(v, "columns") and getattr(v, "ndim", 0) == 2
    }


def _frame(value: np.ndarray, columns: list[str], kind: str) -> Any:
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(value, columns=columns)
    try:
        import polars as pl
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError("set_output(transform='polars') needs polars") from exc
    return pl.DataFrame(value, schema=columns, orient="row")


_SPECIAL = ("passthrough", "drop")


_OUTPUTS = ("default", "pandas", "polars")


def _output_kind(est: Any) -> str:
    """The container ``est`` returns: its ``set_output``, else the global config.

    As scikit-learn's own transformers: ``est.set_output(transform=...)``
    wins; without it, ``sklearn.set_config(transform_output=...)`` (or a
    ``sklearn.config_context``) applies.
    """
    kind = getattr(est, "_sklearn_output_config", {}).get("transform")
    if kind is None:
        kind = sklearn.get_config().get("transform_output", "default")
    if kind not in _OUTPUTS:
        raise ValueError(
            f"{type(est).__name__} supports transform_output {list(_OUTPUTS)}, "
            f"got {kind!r}"
        )
    return str(kind)


def _check_output_kind(transform: str | None) -> None:
    if transform is not None and transform not in _OUTPUTS:
        raise ValueError(
            f"transform must be one of {list(_OUTPUTS)} or None, got {transform!r}"
        )


class ModalityTransformer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
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
    input_shapes_ : dict of str to tuple
        Per-sample shape of each modality seen in ``fit``.
    n_features_in_ : int
        Input features per sample seen in ``fit``, summed over the modalities
        (the product of each per-sample shape).

    Notes
    -----
    :meth:`set_output` chooses the container of each transformed 2-D
    modality (``'pandas'``: a ``DataFrame`` whose columns are that
    modality's output feature names, the modalities in a ``dict``); a
    scikit-learn container cannot hold several modalities itself. Without
    :meth:`set_output`, the global ``sklearn.set_config(transform_output=...)``
    applies, as for scikit-learn's transformers. :meth:`get_feature_names_out`
    names every output feature ``'<modality>__<feature>'``, as
    ``ColumnTransformer`` does.

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
            dtype = info[0]
            if z.dtype.kind == "f" and not dtype.is_floating_point:
                dtype = torch.float32  # scaled values of an integer/bool tensor
            return torch.as_tensor(
                z, dtype=dtype if z.dtype.kind == "f" else None, device=info[1]
            )
        return z

    def fit(self, X: Any, y: Any = None) -> ModalityTransformer:
        """Fit each modality's transformer. Returns ``self``."""
        self._fit(X, y, transform=False)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit and transform in one pass over each modality."""
        return self._fit(X, y, transform=True)

    def _fit(self, X: Any, y: Any, transform: bool) -> Any:
        columns = _column_names(X)
        Xv = check_X(X, min_ndim=2, ensure_finite=False)
        spec = self._check_spec(Xv)
        self.input_shapes_ = {m: tuple(int(d) for d in Xv[m].shape[1:]) for m in Xv}
        self.n_features_in_ = int(
            sum(int(np.prod(s, dtype=np.int64)) for s in self.input_shapes_.values())
        )
        self._input_feature_names_ = {
            m: columns.get(m)
            if columns.get(m) is not None
            else np.asarray(
                [f"x{i}" for i in range(int(np.prod(shape, dtype=np.int64)))],
                dtype=object,
            )
            for m, shape in self.input_shapes_.items()
        }
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
        return self._wrap_output(out) if transform else None

    def transform(self, X: Any) -> Any:
        """Transform each modality; returns a new :class:`~mmexplain.ModalityDict`.

        (A ``dict`` of DataFrames after ``set_output(transform='pandas')``.)
        """
        check_is_fitted(self, "transformers_")
        Xv = check_X(X, modalities=self.modalities_, ensure_finite=False)
        for m, shape in self.input_shapes_.items():
            got = tuple(int(d) for d in Xv[m].shape[1:])
            if got != tuple(shape):
                raise ValueError(
                    f"modality {m!r} has per-sample shape {got} but the "
                    f"ModalityTransformer was fitted on {tuple(shape)}"
                )
        out = {}
        for m, est in self.transformers_.items():
            if est == "passthrough":
                out[m] = Xv[m]
            else:
                x2, shape, info = self._to_2d(Xv[m])
                out[m] = self._from_2d(est.transform(x2), shape, info)
        return self._wrap_output(out)

    # -- output containers and feature names (scikit-learn conventions) ------
    def set_output(self, *, transform: str | None = None) -> ModalityTransformer:
        """Choose the container of each transformed modality, as scikit-learn's ``set_output``.

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None, default=None
            'pandas' / 'polars': every transformed 2-D NumPy modality is a
            DataFrame whose columns are that modality's output feature names
            (images and tensors keep their type), in a plain ``dict`` (a
            :class:`~mmexplain.ModalityDict` holds arrays); 'default': arrays
            in a ``ModalityDict``; None: leave the configuration as it is. A
            ``Pipeline``'s ``set_output`` calls this on the step; the
            estimators accept either container. Until it is called, the
            global ``sklearn.set_config(transform_output=...)`` applies.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.preprocessing import StandardScaler
        >>> from mmexplain import ModalityTransformer
        >>> X = {"eo": np.arange(6.0).reshape(3, 2), "sar": np.ones((3, 1))}
        >>> mt = ModalityTransformer({"eo": StandardScaler()}).set_output(transform="pandas")
        >>> list(mt.fit_transform(X)["eo"].columns)
        ['x0', 'x1']
        """
        _check_output_kind(transform)
        if transform is None:
            return self
        self._sklearn_output_config = {"transform": transform}
        return self

    def _wrap_output(self, out: dict[str, Any]) -> Any:
        kind = _output_kind(self)
        if kind == "default":
            return ModalityDict(out)
        for m, value in out.items():
            if isinstance(value, np.ndarray) and value.ndim == 2:
                names = list(self._modality_names_out(m))
                if len(names) != value.shape[1]:
                    names = [f"x{i}" for i in range(value.shape[1])]
                out[m] = _frame(value, names, kind)
        return out  # a plain dict: a ModalityDict stores arrays, not DataFrames

    def _modality_names_out(self, m: str, names_in: Any = None) -> np.ndarray:
        est = self.transformers_[m]
        names_in = self._input_feature_names_[m] if names_in is None else names_in
        if isinstance(est, str):  # 'passthrough'
            return np.asarray(names_in, dtype=object)
        if not hasattr(est, "get_feature_names_out"):
            raise AttributeError(
                f"the transformer of modality {m!r} ({type(est).__name__}) does not "
                "provide get_feature_names_out"
            )
        return np.asarray(est.get_feature_names_out(names_in), dtype=object)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names, ``'<modality>__<feature>'``, modality by modality.

        Parameters
        ----------
        input_features : mapping of str to array-like of str, or None
            Input feature names per modality; None uses the DataFrame columns
            seen in ``fit`` or ``x0, x1, ...`` (images: their flattened
            features).

        Returns
        -------
        ndarray of str objects

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.preprocessing import StandardScaler
        >>> from mmexplain import ModalityTransformer
        >>> X = {"eo": np.zeros((4, 2)), "sar": np.ones((4, 1))}
        >>> ModalityTransformer({"eo": StandardScaler()}).fit(X).get_feature_names_out().tolist()
        ['eo__x0', 'eo__x1', 'sar__x0']
        """
        check_is_fitted(self, "transformers_")
        if input_features is not None and not isinstance(input_features, Mapping):
            raise ValueError(
                "input_features must be a mapping {modality: feature names} (a "
                "ModalityTransformer has one set of features per modality)"
            )
        names = []
        for m in self.transformers_:
            given = None if input_features is None else input_features.get(m)
            names.extend(f"{m}__{n}" for n in self._modality_names_out(m, given))
        return np.asarray(names, dtype=object)
