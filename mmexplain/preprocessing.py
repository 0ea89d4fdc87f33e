"""Per-modality preprocessing for scikit-learn pipelines."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_array, check_is_fitted

from mmexplain.data import ModalityDict, check_X

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - scikit-learn < 1.6
    _sk_validate_data = None

__all__ = ["ModalitySplitter", "ModalityTransformer"]

#: check_array's keyword for letting NaN and inf through (renamed in 1.6)
_FINITE_KW = (
    "ensure_all_finite"
    if "ensure_all_finite" in inspect.signature(check_array).parameters
    else "force_all_finite"
)


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


class ModalityTransformer(
    TransformerMixin,
    BaseEstimator,
    auto_wrap_output_keys=None,  # type: ignore[call-arg]  # sklearn's __init_subclass__ (untyped)
):
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
        # a copy, set only when params change it (unused without params)
        transformers: dict[str, Any] = dict(self.transformers) if params else {}
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
        for name, sub_params in nested.items():
            transformers[name].set_params(**sub_params)
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
        names: list[str] = []
        for m in self.transformers_:
            given = None if input_features is None else input_features.get(m)
            names.extend(f"{m}__{n}" for n in self._modality_names_out(m, given))
        return np.asarray(names, dtype=object)


# ----------------------------------------------------------------------------
# one table -> {modality: columns}
# ----------------------------------------------------------------------------
#: the name of the modality that ``remainder='passthrough'`` adds
_REMAINDER = "remainder"


def _validate_table(est: Any, X: Any, reset: bool) -> np.ndarray:
    """``X`` as a 2-D numeric array, with scikit-learn's feature name/count checks."""
    kw: dict[str, Any] = {"dtype": "numeric", _FINITE_KW: False}
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, reset=reset, **kw)
    return est._validate_data(X, reset=reset, **kw)  # pragma: no cover


def _is_pandas_frame(X: Any) -> bool:
    return hasattr(X, "iloc") and getattr(X, "ndim", 0) == 2


def _shorten(names: Any, n: int = 10) -> str:
    names = [str(v) for v in names]
    return str(names[:n])[:-1] + (
        f", ... ({len(names)} in all)]" if len(names) > n else "]"
    )


class ModalitySplitter(
    TransformerMixin,
    BaseEstimator,
    auto_wrap_output_keys=None,  # type: ignore[call-arg]  # sklearn's __init_subclass__ (untyped)
):
    """Split the columns of one table into modalities, as the first step of a Pipeline.

    A 2-D array or pandas ``DataFrame`` goes in; a
    :class:`~mmexplain.ModalityDict` ``{modality: 2-D array}`` comes out, so
    ``make_pipeline(ModalitySplitter(...), MultimodalClassifier(...))`` takes
    the plain 2-D ``X`` that scikit-learn's tools pass
    (``permutation_importance``, ``check_estimator``, a ``ColumnTransformer``
    before it).

    Parameters
    ----------
    columns : dict of str to column selector
        The columns of each modality, selected as in scikit-learn's
        ``ColumnTransformer``: an integer index, a list or array of indices
        (negative ones count from the end), a column name or list of names
        (``X`` must then be a ``DataFrame`` with string column names), a
        slice (of indices, or of names with the stop included, as pandas'
        ``.loc``), a boolean mask of length ``n_features``, or a callable
        that takes the ``X`` given to ``fit`` and returns one of these (such
        as :func:`sklearn.compose.make_column_selector`). A modality keeps
        its columns in the order selected. Required: the default None is
        an error in ``fit`` (it exists so that the class can be constructed
        without arguments, as scikit-learn's tools do).
    remainder : {'drop', 'passthrough'}, default='drop'
        What happens to the columns no modality selects: 'drop' leaves them
        out; 'passthrough' makes them one more modality, named
        ``'remainder'``, after the others (none when every column is
        selected).

    Attributes
    ----------
    column_indices_ : dict of str to ndarray of int
        The positions in ``X`` of each output modality's columns, in output
        order (the remainder included).
    modalities_ : tuple of str
        The output modalities, in order.
    n_features_in_ : int
        Number of columns of the ``X`` seen in ``fit``.
    feature_names_in_ : ndarray of str objects
        The column names of ``X`` when it was a ``DataFrame`` whose column
        names are all strings.

    See Also
    --------
    ModalityTransformer : apply a transformer to each modality of the output.

    Notes
    -----
    *Every column belongs to at most one modality*: overlapping selections
    are refused (``ColumnTransformer`` allows them). A column in two
    modalities would let a model still see a modality that an explainer
    removes or permutes, so modality-level explanations would understate
    how much the model uses it; to feed one variable to two modalities on
    purpose, duplicate the column under another name first.

    Values are validated as scikit-learn's numeric estimators do (object
    arrays of numbers become floats; strings, complex numbers and sparse
    matrices are refused); NaN and infinite values pass through, for the
    classifier's ``on_nonfinite`` to handle. Encode categorical columns
    upstream, e.g. with a ``ColumnTransformer`` and ``set_output(transform='pandas')``.
    In ``transform``, ``X`` must have the number of columns, and (for a
    ``DataFrame``) the column names in the order, seen in ``fit``, with
    scikit-learn's error messages. The input is never modified: every
    output array is a copy.

    :func:`~mmexplain.persistence.save_model` stores a splitter whose
    selectors are positions, names or boolean masks; slices and callables
    cannot be stored in its safe format (write the fitted
    ``column_indices_`` as lists instead).

    :meth:`set_output` (or the global
    ``sklearn.set_config(transform_output='pandas')``) makes each modality a
    ``DataFrame`` of its columns (named by their names in ``X``, or
    ``x<position>``; a ``DataFrame`` input keeps its index and column
    dtypes), the modalities in a plain ``dict``. :meth:`get_feature_names_out`
    names every output column ``'<modality>__<column>'``, as
    ``ColumnTransformer`` does.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.preprocessing import ModalitySplitter
    >>> X = np.arange(10.0).reshape(2, 5)
    >>> splitter = ModalitySplitter({"eo": [0, 1], "sar": slice(2, 4)})
    >>> Xt = splitter.fit_transform(X)
    >>> Xt
    ModalityDict(n_samples=2, {'eo': ndarray(2, 2), 'sar': ndarray(2, 2)})
    >>> Xt["sar"].tolist()
    [[2.0, 3.0], [7.0, 8.0]]
    >>> splitter.get_feature_names_out().tolist()
    ['eo__x0', 'eo__x1', 'sar__x2', 'sar__x3']

    With a ``DataFrame``, columns are selected by name too, and the unselected
    ones can form a modality of their own:

    >>> import pandas as pd
    >>> df = pd.DataFrame(X, columns=["red", "green", "vv", "vh", "age"])
    >>> splitter = ModalitySplitter({"eo": ["red", "green"]}, remainder="passthrough")
    >>> splitter.fit(df).get_feature_names_out().tolist()
    ['eo__red', 'eo__green', 'remainder__vv', 'remainder__vh', 'remainder__age']
    """

    def __init__(
        self, columns: Mapping[str, Any] | None = None, remainder: str = "drop"
    ) -> None:
        self.columns = columns
        self.remainder = remainder

    # -- fitting ----------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> ModalitySplitter:
        """Resolve each modality's columns on ``X`` (2-D array or DataFrame).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        columns = self._check_params()
        Xa = _validate_table(self, X, reset=True)
        n = Xa.shape[1]
        names = getattr(self, "feature_names_in_", None)
        owner: dict[int, str] = {}
        indices: dict[str, np.ndarray] = {}
        for m, selector in columns.items():
            idx = self._select(m, selector, X, n, names)
            for i in idx.tolist():
                if i in owner:
                    label = repr(str(names[i])) if names is not None else str(i)
                    where = (
                        f"twice by modality {m!r}"
                        if owner[i] == m
                        else f"by modalities {owner[i]!r} and {m!r}"
                    )
                    raise ValueError(
                        f"column {label} is selected {where}; a column may belong "
                        "to one modality only (explanations that remove or permute "
                        "a modality would miss its copy elsewhere). Duplicate the "
                        "column under another name to use it twice."
                    )
                owner[i] = m
            indices[m] = idx
        if self.remainder == "passthrough":
            rest = np.asarray([i for i in range(n) if i not in owner], dtype=np.intp)
            if rest.size:
                indices[_REMAINDER] = rest
        if not indices:
            raise ValueError(
                "ModalitySplitter has no modality: columns is empty and "
                "remainder='drop'"
            )
        self.column_indices_ = indices
        self.modalities_ = tuple(indices)
        return self

    def _check_params(self) -> Mapping[str, Any]:
        if self.columns is None:
            raise ValueError(
                "ModalitySplitter needs columns={modality: column selector}, e.g. "
                "ModalitySplitter(columns={'eo': [0, 1, 2], 'sar': [3, 4]})"
            )
        if not isinstance(self.columns, Mapping):
            raise TypeError(
                "columns must be a dict {modality: column selector}, got "
                f"{type(self.columns).__name__}"
            )
        for m in self.columns:
            if not isinstance(m, str) or not m:
                raise TypeError(f"modality names must be non-empty strings, got {m!r}")
        if not (isinstance(self.remainder, str) and self.remainder in _SPECIAL):
            raise ValueError(
                f"remainder must be 'drop' or 'passthrough', got {self.remainder!r}"
            )
        if self.remainder == "passthrough" and _REMAINDER in self.columns:
            raise ValueError(
                f"modality name {_REMAINDER!r} is taken by remainder='passthrough'; "
                "rename that modality or use remainder='drop'"
            )
        return self.columns

    @staticmethod
    def _select(
        m: str, selector: Any, X: Any, n: int, names: np.ndarray | None
    ) -> np.ndarray:
        """Positions of the columns that ``selector`` picks for modality ``m``."""
        key = selector
        if callable(key) and not isinstance(key, type):
            key = key(X)
            if callable(key):
                raise TypeError(
                    f"the column selector of modality {m!r} returned a callable"
                )
        lookup = None if names is None else {str(c): i for i, c in enumerate(names)}

        def by_name(name: Any) -> int:
            if lookup is None:
                raise ValueError(
                    f"modality {m!r} selects column {name!r} by name, but X has no "
                    "column names (pass a pandas DataFrame with string column names, "
                    "or select by position)"
                )
            if name not in lookup:
                raise ValueError(
                    f"modality {m!r} selects column {name!r}, which is not a column "
                    f"of X; its columns are {_shorten(names)}"
                )
            return lookup[name]

        def by_position(i: Any) -> int:
            i = int(i)
            if not -n <= i < n:
                raise ValueError(
                    f"modality {m!r} selects column {i}, but X has {n} columns"
                )
            return i % n

        if isinstance(key, bool | np.bool_):
            raise TypeError(
                f"the column selector of modality {m!r} is a boolean; use a boolean "
                "mask with one entry per column"
            )
        if isinstance(key, int | np.integer):
            idx = [by_position(key)]
        elif isinstance(key, str):
            idx = [by_name(key)]
        elif isinstance(key, slice):
            if isinstance(key.start, str) or isinstance(key.stop, str):
                if key.step not in (None, 1):
                    raise ValueError(
                        f"the slice of column names of modality {m!r} must have step 1"
                    )
                start = 0 if key.start is None else by_name(key.start)
                stop = n if key.stop is None else by_name(key.stop) + 1
                idx = list(range(start, stop))
            else:
                idx = list(range(n)[key])
        else:
            try:  # object dtype: numpy would turn [0, 'a'] into two strings
                arr = np.asarray(key, dtype=object)
            except Exception as exc:  # reported with the modality
                raise TypeError(
                    f"the column selector of modality {m!r} is not understood: {key!r}"
                ) from exc
            if arr.ndim == 0:
                raise TypeError(
                    f"the column selector of modality {m!r} is not understood: "
                    f"{key!r} (use a position, a name, a slice, a list, a boolean "
                    "mask or a callable)"
                )
            if arr.ndim != 1:
                raise ValueError(
                    f"the column selector of modality {m!r} must be one-dimensional, "
                    f"got shape {arr.shape}"
                )
            values = arr.tolist()
            if values and all(isinstance(v, bool | np.bool_) for v in values):
                if len(values) != n:
                    raise ValueError(
                        f"the boolean mask of modality {m!r} has {len(values)} "
                        f"entries but X has {n} columns"
                    )
                idx = [i for i, v in enumerate(values) if v]
            elif all(
                isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
                for v in values
            ):
                idx = [by_position(i) for i in values]
            elif all(isinstance(v, str) for v in values):
                idx = [by_name(v) for v in values]
            else:
                raise TypeError(
                    f"the column selector of modality {m!r} must hold only integer "
                    f"positions, only column names or only booleans, got {key!r}"
                )
        if not idx:
            raise ValueError(
                f"modality {m!r} selects no column of X (X has {n} feature(s)); "
                "every modality needs at least one column"
            )
        return np.asarray(idx, dtype=np.intp)

    # -- transforming -------------------------------------------------------
    def transform(self, X: Any) -> Any:
        """Split ``X`` into its modalities.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            With the columns (number, and names in order for a DataFrame)
            seen in ``fit``.

        Returns
        -------
        ModalityDict or dict of DataFrame
            ``{modality: (n_samples, n_columns) array}``, new arrays; a
            ``dict`` of DataFrames after ``set_output(transform='pandas')``.
        """
        check_is_fitted(self, "column_indices_")
        Xa = _validate_table(self, X, reset=False)
        kind = _output_kind(self)
        if kind == "default":
            return ModalityDict({m: Xa[:, i] for m, i in self.column_indices_.items()})
        names = self._names_in()
        out: dict[str, Any] = {}
        for m, idx in self.column_indices_.items():
            cols = [str(c) for c in names[idx]]
            if kind == "pandas" and _is_pandas_frame(X):
                frame = X.iloc[:, idx].copy()  # keeps the index and column dtypes
                frame.columns = cols
                out[m] = frame
            else:
                out[m] = _frame(Xa[:, idx], cols, kind)
        return out

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """``fit(X).transform(X)``; see :meth:`transform`."""
        return self.fit(X, y).transform(X)

    # -- output containers and feature names (scikit-learn conventions) ------
    def set_output(self, *, transform: str | None = None) -> ModalitySplitter:
        """Choose the container of each modality, as scikit-learn's ``set_output``.

        Parameters
        ----------
        transform : {'default', 'pandas', 'polars'} or None, default=None
            'pandas' / 'polars': each modality is a DataFrame of its columns
            (named as in ``X``, or ``x<position>``), in a plain ``dict``;
            'default': arrays in a :class:`~mmexplain.ModalityDict`; None:
            leave the configuration as it is. Until this is called, the
            global ``sklearn.set_config(transform_output=...)`` applies.

        Returns
        -------
        self

        Examples
        --------
        >>> import pandas as pd
        >>> from mmexplain.preprocessing import ModalitySplitter
        >>> df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
        >>> splitter = ModalitySplitter({"ab": ["a", "b"], "c": ["c"]})
        >>> Xt = splitter.set_output(transform="pandas").fit_transform(df)
        >>> list(Xt), list(Xt["ab"].columns)
        (['ab', 'c'], ['a', 'b'])
        """
        _check_output_kind(transform)
        if transform is None:
            return self
        self._sklearn_output_config = {"transform": transform}
        return self

    # NaN and infinite values pass through (the classifier's on_nonfinite decides)
    def __sklearn_tags__(self) -> Any:  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # pragma: no cover - scikit-learn < 1.6
        return {"allow_nan": True}

    def _names_in(self) -> np.ndarray:
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = np.asarray(
                [f"x{i}" for i in range(self.n_features_in_)], dtype=object
            )
        return np.asarray(names, dtype=object)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names, ``'<modality>__<column>'``, modality by modality.

        Parameters
        ----------
        input_features : array-like of str, or None
            The column names of ``X``; None uses ``feature_names_in_`` (or
            ``x0, x1, ...``). When given, they must equal
            ``feature_names_in_`` if that is set.

        Returns
        -------
        ndarray of str objects

        Examples
        --------
        >>> import numpy as np
        >>> from mmexplain.preprocessing import ModalitySplitter
        >>> splitter = ModalitySplitter({"a": [2], "b": [0, 1]}).fit(np.zeros((3, 3)))
        >>> splitter.get_feature_names_out(["u", "v", "w"]).tolist()
        ['a__w', 'b__u', 'b__v']
        """
        check_is_fitted(self, "column_indices_")
        names = self._names_in()
        if input_features is not None:
            given = np.asarray(input_features, dtype=object)
            if given.ndim != 1 or len(given) != self.n_features_in_:
                raise ValueError(
                    "input_features should have length equal to number of features "
                    f"({self.n_features_in_}), got {len(given) if given.ndim else 0}"
                )
            if hasattr(self, "feature_names_in_") and not np.array_equal(given, names):
                raise ValueError("input_features is not equal to feature_names_in_")
            names = given
        return np.asarray(
            [
                f"{m}__{names[i]}"
                for m, idx in self.column_indices_.items()
                for i in idx
            ],
            dtype=object,
        )
