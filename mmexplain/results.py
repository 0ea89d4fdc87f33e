"""The result objects the explainers return.

Every explainer returns a :class:`ModalityExplanation`: the common fields
(``modalities``, ``method``, ``params``, ``shares``) and the export and
plotting methods live on the base class; each method's own fields live on its
subclass, as shap's ``Explanation`` carries generic fields and scikit-learn's
``permutation_importance`` a small ``Bunch``:

- :class:`PermutationExplanation` (``importances``, ``importances_mean``,
  ``importances_std``, ``baseline_score``, ``scoring``);
- :class:`ConditionalExplanation` (``score_full``, ``score_without``,
  ``score_reference``, ``rates``, ``d_util``, ``scoring``);
- :class:`ShapleyExplanation` (``values``, ``base_values``, ``mean_values``,
  ``standard_errors``; :meth:`~ShapleyExplanation.to_shap`);
- :class:`AttributionExplanation` (``sample_shares``).

``ModalityExplanation(method='permutation', ...)`` builds the method's
subclass, so results can be rebuilt from their fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

__all__ = [
    "AttributionExplanation",
    "ConditionalExplanation",
    "MethodSpec",
    "ModalityExplanation",
    "PermutationExplanation",
    "ShapleyExplanation",
    "method_spec",
    "registered_methods",
]

_BY_METHOD: dict[str, type[ModalityExplanation]] = {}


@dataclass(frozen=True)
class MethodSpec:
    """The facts about one explanation method, declared once on its result class.

    Plots, the modality report (:mod:`mmexplain.report`) and the command line
    read them from here; an explainer names its result class
    (``BaseModalityExplainer._result_class``), so a new method is declared in
    one place.

    Parameters
    ----------
    name : str
        The value of :attr:`ModalityExplanation.method` (``'permutation'``).
    title : str
        Title of its bar chart.
    short_title : str
        Title of its panel in the report figure.
    column : str
        Header of its column in the report table.
    field : str
        The per-modality attribute that column shows (``'shares'``,
        ``'rates'``, ``'mean_values'``).
    fmt : str
        Format of that column's numbers (``'.1f'``).
    legend : str
        What the column means, one sentence for the report's legend.
    order : int, default=100
        Position among the methods in the report (ascending).
    errors : bool, default=False
        Whether the report adds a ``+-`` column from :meth:`~ModalityExplanation.share_errors`.

    Examples
    --------
    >>> from mmexplain.results import method_spec
    >>> method_spec("permutation").title
    'Permutation modality utilization'
    >>> method_spec("unknown") is None
    True
    """

    name: str
    title: str
    short_title: str
    column: str
    field: str
    fmt: str
    legend: str
    order: int = 100
    errors: bool = False


def method_spec(method: str) -> MethodSpec | None:
    """The :class:`MethodSpec` of ``method`` (a result's ``method``), None if unknown.

    Parameters
    ----------
    method : str
        E.g. ``'permutation'``.

    Returns
    -------
    MethodSpec or None
    """
    cls = _BY_METHOD.get(method)
    return None if cls is None else cls.spec


def registered_methods() -> tuple[MethodSpec, ...]:
    """Every declared method, in report order.

    Examples
    --------
    >>> from mmexplain.results import registered_methods
    >>> [spec.name for spec in registered_methods()]
    ['permutation', 'conditional', 'shapley', 'attribution']
    """
    specs = [cls.spec for cls in _BY_METHOD.values() if cls.spec is not None]
    return tuple(sorted(specs, key=lambda s: (s.order, s.name)))


class ModalityExplanation:
    """How a model uses each modality, as measured by one explainer.

    The explainers build it; building one by hand (``method=`` picks the
    subclass) is for tests and for results computed elsewhere.

    Parameters
    ----------
    modalities : sequence of str
    method : str
        'permutation', 'conditional', 'shapley' or 'attribution'.
    params : dict
        The settings that produced the result.
    shares : array-like of shape (M,)
        Share of each modality in percent.
    **fields
        The method's own fields (see its subclass), by keyword.

    Attributes
    ----------
    modalities : tuple of str
    method : str
        'permutation', 'conditional', 'shapley' or 'attribution'.
    params : dict
        Settings that produced the result (scoring, ablation/baseline,
        n_repeats, random_state, fast path or full forward, model calls, ...).
    shares : ndarray of shape (M,)
        Share of each modality in percent; sums to 100 where defined (NaN
        when no modality contributes).

    Examples
    --------
    Building a result from its fields returns the method's subclass:

    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> expl = ModalityExplanation(
    ...     modalities=("a", "b"), method="permutation", params={"n_repeats": 2},
    ...     shares=[75, 25], importances=np.array([[0.3, 0.3], [0.1, 0.1]]),
    ...     importances_mean=np.array([0.3, 0.1]), importances_std=np.zeros(2),
    ...     baseline_score=0.9, scoring="accuracy")
    >>> expl
    PermutationExplanation(method='permutation', a=75.0%, b=25.0%)
    >>> expl.shares_by_modality
    {'a': 75.0, 'b': 25.0}
    >>> expl.as_dict()["importances_mean"]
    {'a': 0.3, 'b': 0.1}
    """

    #: the method's own fields (set by subclasses)
    _fields: ClassVar[tuple[str, ...]] = ()
    #: fields with one value per modality, reported by as_dict / to_frame
    _per_modality: ClassVar[tuple[str, ...]] = ()
    #: scalar fields reported by as_dict
    _scalars: ClassVar[tuple[str, ...]] = ()
    #: the method's facts (name, titles, report column); None on the base class
    spec: ClassVar[MethodSpec | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            _BY_METHOD[spec.name] = cls

    @property
    def method_spec(self) -> MethodSpec | None:
        """The :class:`MethodSpec` of this result's ``method`` (None if undeclared)."""
        return method_spec(self.method)

    def __new__(cls, *args: Any, **kwargs: Any) -> ModalityExplanation:
        if cls is ModalityExplanation:
            cls = _BY_METHOD.get(kwargs.get("method", ""), cls)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        modalities: tuple[str, ...],
        method: str,
        params: dict[str, Any],
        shares: np.ndarray,
        **fields: Any,
    ) -> None:
        self.modalities = tuple(modalities)
        self.method = method
        self.params = dict(params)
        self.shares = np.asarray(shares, dtype=float)
        for name in self._fields:
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(
                f"unexpected fields {sorted(fields)} for a {type(self).__name__}"
                + (f" (its fields: {list(self._fields)})" if self._fields else "")
            )

    # -- views --------------------------------------------------------------
    @property
    def utilization(self) -> np.ndarray:
        """Modality shares in percent (same as ``shares``), in ``modalities`` order."""
        return self.shares

    @property
    def shares_by_modality(self) -> dict[str, float]:
        """The shares in percent keyed by modality name (a labelled ``shares``).

        Examples
        --------
        >>> import numpy as np
        >>> from mmexplain import ModalityExplanation
        >>> expl = ModalityExplanation(modalities=("eo", "sar"), method="attribution",
        ...                            params={}, shares=np.array([75.0, 25.0]))
        >>> expl.shares_by_modality
        {'eo': 75.0, 'sar': 25.0}
        """
        return dict(zip(self.modalities, self.shares.tolist()))

    def to_series(self, name: str = "share_percent") -> Any:
        """The shares as a pandas ``Series`` indexed by modality (pandas must be installed).

        Parameters
        ----------
        name : str, default='share_percent'
            The name of the series.

        Returns
        -------
        pandas.Series
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("to_series() needs pandas: pip install pandas") from exc
        series = pd.Series(
            self.shares, index=pd.Index(self.modalities, name="modality"), name=name
        )
        series.attrs["method"] = self.method
        return series

    def __repr__(self) -> str:
        body = ", ".join(
            f"{m}={s:.1f}%" if np.isfinite(s) else f"{m}=nan"
            for m, s in zip(self.modalities, self.shares)
        )
        return f"{type(self).__name__}(method={self.method!r}, {body})"

    # -- export -----------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """Plain-Python summary: per-modality numbers keyed by modality name."""
        out: dict[str, Any] = {
            "method": self.method,
            "modalities": list(self.modalities),
            "params": dict(self.params),
            "shares": dict(zip(self.modalities, self.shares.tolist())),
        }
        for key in self._per_modality:
            arr = getattr(self, key)
            if arr is not None:
                arr = np.asarray(arr)
                if arr.ndim > 1:  # per-sample values (standard errors): their mean
                    arr = arr.mean(axis=0)
                out[key] = dict(zip(self.modalities, arr.tolist()))
        for key in self._scalars:
            value = getattr(self, key)
            if value is not None:
                out[key] = float(value)
        return out

    def to_frame(self) -> Any:
        """One row per modality (pandas ``DataFrame``; pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("to_frame() needs pandas: pip install pandas") from exc
        data: dict[str, Any] = {"share_percent": self.shares}
        for key in self._per_modality:
            arr = getattr(self, key)
            if arr is not None:
                arr = np.asarray(arr)
                name = "standard_error" if key == "standard_errors" else key
                data[name] = arr if arr.ndim == 1 else arr.mean(axis=0)
        frame = pd.DataFrame(data, index=pd.Index(self.modalities, name="modality"))
        frame.attrs["method"] = self.method
        return frame

    def plot(
        self,
        ax: Any = None,
        *,
        kind: str = "shares",
        title: str | None = None,
        color: Any = None,
    ) -> Any:
        """Plot the explanation; returns the matplotlib ``Axes``.

        Parameters
        ----------
        ax : matplotlib Axes or None
        kind : {'shares', 'classes', 'interactions'}, default='shares'
            'shares': bar chart of the modality shares (error bars from
            repeats / sampling); 'classes': modality x class heat map of the
            per-class shares (``per_class=True``); 'interactions': heat map
            of the pairwise Shapley interaction indices
            (``ModalityShapley(interactions=True)``).
        title : str or None
        color : matplotlib color or None
            Bar colour (``kind='shares'``).
        """
        if kind == "shares":
            from mmexplain.plotting import plot_shares

            return plot_shares(self, ax=ax, title=title, color=color)
        if kind == "classes":
            shares = getattr(self, "class_shares", None)
            if shares is None:
                raise ValueError(
                    f"this {self.method} explanation has no per-class shares: explain "
                    "with per_class=True (PermutationModalityImportance, ConditionalUtilization, "
                    "ModalityShapley)"
                )
            from mmexplain.plotting import plot_class_utilization

            return plot_class_utilization(
                np.asarray(shares, dtype=float).T,
                list(self.modalities),
                # the per-class results (with class_shares) have classes
                [str(c) for c in cast(Any, self).classes],
                ax=ax,
                title=title or "Utilization per class (%)",
            )
        if kind == "interactions":
            inter = getattr(self, "interactions", None)
            if inter is None:
                raise ValueError(
                    "no interaction indices: explain with "
                    "ModalityShapley(interactions=True)"
                )
            from mmexplain.plotting import plot_interactions

            return plot_interactions(self, ax=ax, title=title)
        raise ValueError(
            f"kind must be 'shares', 'classes' or 'interactions', got {kind!r}"
        )

    def share_errors(self) -> np.ndarray | None:
        """Standard deviation of the shares, in percent, where repeats exist."""
        return None

    # -- statistics (mmexplain.statistics) ---------------------------------------
    #: the field holding the method's raw per-modality values
    _raw_field: ClassVar[str] = "shares"

    def statistic(self, of: str = "shares") -> np.ndarray:
        """The shares (``of='shares'``, percent) or the method's raw values (``'values'``).

        Raw values: permutation ``importances_mean``, conditional ``rates``,
        Shapley ``mean_values``, attribution the shares themselves.
        """
        if of == "shares":
            return np.asarray(self.shares, dtype=float)
        if of == "values":
            return np.asarray(getattr(self, self._raw_field), dtype=float)
        raise ValueError(f"of must be 'shares' or 'values', got {of!r}")

    def n_rows(self) -> int | None:
        """Number of explained rows (samples), where the result knows it."""
        n = self.params.get("n_samples")
        return None if n is None else int(n)

    def _per_row_values(self) -> np.ndarray | None:
        """(N, M) per-sample raw values whose column means are the raw values."""
        return None

    def _replicates(
        self, of: str, n_resamples: Any, random_state: Any
    ) -> tuple[np.ndarray, int | None]:
        """Bootstrap replicates (B, M) of ``statistic(of)`` and the seed used."""
        from mmexplain import statistics as st

        self.statistic(of)  # validates ``of``
        stored = getattr(self, "bootstrap_values", None)
        if stored is not None:
            seed = self.params.get("bootstrap_seed")
            if n_resamples is not None and int(n_resamples) != len(stored):
                raise ValueError(
                    f"this explanation holds {len(stored)} bootstrap replicates "
                    f"(n_bootstrap={len(stored)}); explain again for {n_resamples}"
                )
            if random_state is not None and st.resolve_seed(random_state) != seed:
                raise ValueError(
                    f"this explanation was resampled with seed {seed}; explain again "
                    "with another random_state for other resamples"
                )
            # the resampled results (with bootstrap_values) have bootstrap_shares
            reps = stored if of == "values" else cast(Any, self).bootstrap_shares
            return np.asarray(reps, dtype=float), seed
        values = self._per_row_values()
        if values is None:
            raise ValueError(
                f"this {self.method} explanation holds no bootstrap replicates: "
                "explain it with n_bootstrap=1000 (resamples of the explained rows, "
                "no extra model call)"
            )
        n = st.DEFAULT_RESAMPLES if n_resamples is None else n_resamples
        seed = st.resolve_seed(0 if random_state is None else random_state)
        raw = st.bootstrap_means(values, n, seed)
        return (self._shares_of(raw) if of == "shares" else raw), seed

    def _shares_of(self, raw: np.ndarray) -> np.ndarray:
        """Shares (percent) of replicates of the raw values."""
        from mmexplain.statistics import normalize_rows

        return normalize_rows(raw)

    def replicates(
        self,
        of: str = "shares",
        *,
        n_resamples: int | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Bootstrap replicates of the shares or raw values, shape (n_resamples, M).

        Resamples of the explained rows with replacement (see
        :mod:`mmexplain.statistics`). Permutation and conditional
        utilization store theirs when explained with ``n_bootstrap``;
        Shapley and attribution results resample their per-sample values
        here (``n_resamples`` default 1000, ``random_state`` default 0).

        Parameters
        ----------
        of : {'shares', 'values'}, default='shares'
        n_resamples : int or None
        random_state : int, RandomState or None

        Returns
        -------
        ndarray of shape (n_resamples, M)
        """
        return self._replicates(of, n_resamples, random_state)[0]

    def confidence_interval(
        self,
        level: float = 0.95,
        *,
        of: str = "shares",
        n_resamples: int | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Percentile bootstrap interval of each modality's share (or raw value).

        Parameters
        ----------
        level : float, default=0.95
        of : {'shares', 'values'}, default='shares'
            Shares in percent, or the method's raw values (see
            :meth:`statistic`).
        n_resamples, random_state :
            See :meth:`replicates`.

        Returns
        -------
        ndarray of shape (M, 2)
            Lower and upper bounds, in ``modalities`` order.

        Examples
        --------
        >>> import numpy as np
        >>> from mmexplain import ModalityExplanation
        >>> rng = np.random.default_rng(0)
        >>> values = rng.normal([0.3, 0.0], 0.1, size=(500, 2))
        >>> expl = ModalityExplanation(
        ...     modalities=("a", "b"), method="shapley", params={}, shares=[100, 0],
        ...     values=values, base_values=np.zeros(500), mean_values=values.mean(0))
        >>> expl.confidence_interval(of="values").round(3).tolist()
        [[0.283, 0.3], [-0.009, 0.008]]
        >>> expl.p_values().round(3).tolist()  # 'a' is used, 'b' is not shown to be
        [0.001, 0.576]
        """
        from mmexplain.statistics import percentile_interval

        reps, _ = self._replicates(of, n_resamples, random_state)
        return percentile_interval(reps, level)

    def p_values(
        self, *, n_resamples: int | None = None, random_state: Any = None
    ) -> np.ndarray:
        """One-sided bootstrap p-value of "modality m is not used", per modality.

        H0: the raw value (utilization, rate, mean Shapley value,
        attribution share) is <= 0; see
        :func:`mmexplain.statistics.p_value_not_used`. A small p-value says
        the positive value is unlikely to be an accident of the sample.

        Parameters
        ----------
        n_resamples, random_state :
            See :meth:`replicates`.

        Returns
        -------
        ndarray of shape (M,)
        """
        from mmexplain.statistics import p_value_not_used

        reps, _ = self._replicates("values", n_resamples, random_state)
        return p_value_not_used(reps)

    def to_shap(self, X: Any = None, *, summary: Any = "mean") -> Any:
        """A ``shap.Explanation`` (Shapley and gradient-attribution results only)."""
        raise ValueError(
            "to_shap() needs per-sample values: a Shapley explanation "
            "(ModalityShapley) or a gradient attribution "
            f"(GradientModalityAttribution), not a {self.method} explanation"
        )


class PermutationExplanation(ModalityExplanation):
    """Result of :class:`~mmexplain.explainers.PermutationModalityImportance`.

    Parameters
    ----------
    modalities, method, params, shares :
        As in :class:`~mmexplain.ModalityExplanation`.
    **fields
        The attributes below, by keyword.

    Attributes
    ----------
    importances : ndarray (M, n_repeats)
        Score drop of each permutation (MU).
    importances_mean, importances_std : ndarray (M,)
    baseline_score : float
        The unpermuted score.
    scoring : str
    bootstrap_values, bootstrap_shares : ndarray (n_bootstrap, M) or None
        Bootstrap replicates of ``importances_mean`` and ``shares``
        (``n_bootstrap``); see :meth:`confidence_interval`.
    class_importances, class_shares : ndarray (C, M) or None
        ``per_class=True``: the mean score change when each modality is
        permuted, on the samples of each class, and its shares in percent
        (NaN for a class without samples or without a positive change).
    classes : ndarray (C,) or None
        The class labels of those rows.
    target_importances, target_shares : ndarray (T, M) or None
        Regression models with a scoring computed per target (``'loss'``,
        ``'r2'``, ``'neg_mean_squared_error'``, ...): the mean score change of
        each target (row) when each modality is permuted, and its shares in
        percent; ``importances`` are their uniform average over the targets.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain.results import PermutationExplanation
    >>> expl = PermutationExplanation(
    ...     modalities=("a", "b"), method="permutation", params={"n_repeats": 2},
    ...     shares=[75, 25], importances=np.array([[0.2, 0.4], [0.1, 0.1]]),
    ...     importances_mean=np.array([0.3, 0.1]),
    ...     importances_std=np.array([0.1, 0.0]), baseline_score=0.9,
    ...     scoring="accuracy")
    >>> expl.as_dict()["baseline_score"]
    0.9
    >>> expl.share_errors().round(2)
    array([6.67, 6.67])
    """

    spec = MethodSpec(
        name="permutation",
        title="Permutation modality utilization",
        short_title="Permutation MU",
        column="MU %",
        field="shares",
        fmt=".1f",
        legend="MU %: permutation modality utilization (share of the loss increase "
        "when the modality's rows are permuted, mean over the repeats, +- its std)",
        order=10,
        errors=True,
    )
    _fields = (
        "importances",
        "importances_mean",
        "importances_std",
        "baseline_score",
        "scoring",
        "bootstrap_values",
        "bootstrap_shares",
        "class_importances",
        "class_shares",
        "classes",
        "target_importances",
        "target_shares",
    )
    _per_modality = ("importances_mean", "importances_std")
    _scalars = ("baseline_score",)

    importances: np.ndarray
    importances_mean: np.ndarray
    importances_std: np.ndarray
    baseline_score: float
    scoring: str
    bootstrap_values: np.ndarray | None
    bootstrap_shares: np.ndarray | None
    class_importances: np.ndarray | None
    class_shares: np.ndarray | None
    classes: np.ndarray | None
    target_importances: np.ndarray | None
    target_shares: np.ndarray | None
    _raw_field = "importances_mean"

    def share_errors(self) -> np.ndarray | None:
        """Standard deviation of the shares over the repeats, in percent."""
        imp = np.asarray(self.importances, dtype=float)
        if imp.ndim != 2 or imp.shape[1] < 2:
            return None
        imp = np.clip(imp, 0, None)
        tot = imp.sum(axis=0, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_repeat = 100 * imp / tot
        per_repeat = per_repeat[:, np.isfinite(per_repeat).all(axis=0)]
        return per_repeat.std(axis=1) if per_repeat.size else None


class ConditionalExplanation(ModalityExplanation):
    """Result of :class:`~mmexplain.explainers.ConditionalUtilization`.

    Parameters
    ----------
    modalities, method, params, shares :
        As in :class:`~mmexplain.ModalityExplanation`.
    **fields
        The attributes below, by keyword.

    Attributes
    ----------
    score_full : float
    score_without : ndarray (M,)
        Score with each modality removed.
    score_reference : ndarray (M,)
        The score each rate is relative to.
    rates : ndarray (M,)
        ``u(m | rest)``.
    d_util : float or None
        ``u(m1 | m0) - u(m0 | m1)`` for two modalities.
    scoring : str
    bootstrap_values, bootstrap_shares : ndarray (n_bootstrap, M) or None
        Bootstrap replicates of ``rates`` and ``shares`` (``n_bootstrap``).
    class_rates, class_shares : ndarray (C, M) or None
        ``per_class=True``: the rates on the samples of each class, and their
        shares in percent.
    classes : ndarray (C,) or None
    target_rates, target_shares : ndarray (T, M) or None
        Regression models with a scoring computed per target (``'r2'``,
        ``'loss'``, ...): the rate of each target (row) and its shares in
        percent; ``rates`` are of the targets' averaged score.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> expl = ModalityExplanation(
    ...     modalities=("a", "b"), method="conditional", params={}, shares=[80, 20],
    ...     score_full=0.9, score_without=np.array([0.5, 0.8]),
    ...     score_reference=np.array([0.9, 0.9]), rates=np.array([0.4, 0.1]),
    ...     d_util=-0.3, scoring="accuracy")
    >>> expl
    ConditionalExplanation(method='conditional', a=80.0%, b=20.0%)
    >>> expl.as_dict()["rates"], expl.as_dict()["d_util"]
    ({'a': 0.4, 'b': 0.1}, -0.3)
    """

    spec = MethodSpec(
        name="conditional",
        title="Conditional utilization rate",
        short_title="Conditional rate",
        column="u(m|rest)",
        field="rates",
        fmt=".3f",
        legend="u(m|rest): relative accuracy lost when the modality is ablated "
        "(mean embedding for late-fusion networks)",
        order=20,
    )
    _fields = (
        "score_full",
        "score_without",
        "score_reference",
        "rates",
        "d_util",
        "scoring",
        "bootstrap_values",
        "bootstrap_shares",
        "class_rates",
        "class_shares",
        "classes",
        "target_rates",
        "target_shares",
    )
    _per_modality = ("score_without", "rates")
    _scalars = ("score_full", "d_util")

    score_full: float
    score_without: np.ndarray
    score_reference: np.ndarray
    rates: np.ndarray
    d_util: float | None
    scoring: str | None
    bootstrap_values: np.ndarray | None
    bootstrap_shares: np.ndarray | None
    class_rates: np.ndarray | None
    class_shares: np.ndarray | None
    classes: np.ndarray | None
    target_rates: np.ndarray | None
    target_shares: np.ndarray | None
    _raw_field = "rates"

    @property
    def method_spec(self) -> MethodSpec | None:
        """The spec, its legend naming the scoring the rates are of."""
        spec = super().method_spec
        scoring = self.scoring or self.params.get("scoring")
        if spec is None or scoring in (None, "accuracy"):
            return spec
        what = {"loss": "loss increase", "r2": "R^2 lost"}.get(
            scoring, f"{scoring} lost"
        )
        return dataclasses.replace(
            spec,
            legend=f"u(m|rest): relative {what} when the modality is ablated "
            "(mean embedding for late-fusion networks)",
        )


class ShapleyExplanation(ModalityExplanation):
    """Result of :class:`~mmexplain.explainers.ModalityShapley`.

    Parameters
    ----------
    modalities, method, params, shares :
        As in :class:`~mmexplain.ModalityExplanation`.
    **fields
        The attributes below, by keyword.

    Attributes
    ----------
    values : ndarray (N, M)
        Per-sample Shapley value of each modality.
    base_values : ndarray (N,)
        ``v(empty)`` per sample.
    mean_values : ndarray (M,)
    standard_errors : ndarray (N, M) or None
        Monte-Carlo standard errors (None when exact).
    interaction_values : ndarray (N, M, M) or None
        ``interactions=True``: the Shapley interaction index of each pair of
        modalities on each sample (symmetric, 0 on the diagonal).
    interactions : ndarray (M, M) or None
        Their mean over the samples.
    class_values, class_shares : ndarray (C, M) or None
        ``per_class=True``: the mean value per true class, and its shares.
    classes : ndarray (C,) or None

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> expl = ModalityExplanation(
    ...     modalities=("a", "b"), method="shapley", params={}, shares=[60, 40],
    ...     values=np.array([[0.4, 0.1], [0.2, 0.3]]), base_values=np.array([0.5, 0.5]),
    ...     mean_values=np.array([0.3, 0.2]))
    >>> type(expl).__name__
    'ShapleyExplanation'
    >>> expl.as_dict()["mean_values"]
    {'a': 0.3, 'b': 0.2}
    """

    spec = MethodSpec(
        name="shapley",
        title="Mean modality Shapley value",
        short_title="Mean Shapley",
        column="Shapley",
        field="mean_values",
        fmt=".3f",
        legend="Shapley: mean per-sample Shapley value (true-class probability, "
        "absent modalities zeroed)",
        order=30,
    )
    _fields = (
        "values",
        "base_values",
        "mean_values",
        "standard_errors",
        "interaction_values",
        "interactions",
        "class_values",
        "class_shares",
        "classes",
    )
    _per_modality = ("mean_values", "standard_errors")
    _raw_field = "mean_values"

    values: np.ndarray | None
    base_values: np.ndarray | None
    mean_values: np.ndarray
    standard_errors: np.ndarray | None
    interaction_values: np.ndarray | None
    interactions: np.ndarray | None
    class_values: np.ndarray | None
    class_shares: np.ndarray | None
    classes: np.ndarray | None

    @property
    def method_spec(self) -> MethodSpec | None:
        """The spec; for a regressor's prediction values, of the mean absolute value.

        A prediction's Shapley values move it both ways around the
        baseline's prediction and average out near 0, so the report shows
        ``mean_abs_values`` for ``value='prediction'`` (as the shares are).
        """
        spec = super().method_spec
        if spec is None or self.params.get("value") != "prediction":
            return spec
        return dataclasses.replace(
            spec,
            column="|Shapley|",
            field="mean_abs_values",
            legend="|Shapley|: mean absolute per-sample Shapley value of the "
            "prediction (absent modalities zeroed)",
        )

    def n_rows(self) -> int | None:
        return None if self.values is None else len(self.values)

    def _per_row_values(self) -> np.ndarray | None:
        return None if self.values is None else np.asarray(self.values, dtype=float)

    @property
    def mean_abs_values(self) -> np.ndarray | None:
        """Mean absolute Shapley value per modality (M,): what ``shap.plots.bar`` ranks by.

        It credits a modality whose values move predictions both ways, which
        the signed ``mean_values`` (and ``shares``) average out.
        """
        if self.values is None:
            return None
        return np.abs(np.asarray(self.values, dtype=float)).mean(axis=0)

    def to_shap(
        self, X: Any = None, *, summary: Any = "mean", interactions: bool = False
    ) -> Any:
        """The Shapley values as a ``shap.Explanation`` (samples x modalities).

        Parameters
        ----------
        X : mapping of str to array-like, array-like of shape (N, M), or None
            The explained inputs (the same N rows, in order), from which each
            sample's ``data`` value per modality is ``summary`` of its
            features; or that (N, M) summary itself. A modality has no single
            feature value, so without ``X`` ``data`` is None.
        summary : {'mean', 'norm', 'max'} or callable, default='mean'
            How a modality's features become one number per sample: their
            mean, Euclidean norm or maximum, or ``summary(array) -> (N,)``.
        interactions : bool, default=False
            Values of shape (N, M, M) in shap's interaction convention (as
            ``TreeExplainer``'s interaction values): half of each pair's
            interaction index off the diagonal, the main effect on it, so
            each row sums to the modality's Shapley value. Needs
            ``ModalityShapley(interactions=True)``.

        Returns
        -------
        shap.Explanation
            Usable with ``shap.plots.bar``, ``beeswarm``, ``heatmap``,
            ``violin``, ``decision`` and, for one sample (``expl[i]``),
            ``waterfall``; with ``X`` also ``scatter`` (``expl[:, 'eo']``)
            and the beeswarm's colour bar.

        Examples
        --------
        >>> import numpy as np
        >>> from mmexplain import ModalityExplanation
        >>> expl = ModalityExplanation(
        ...     modalities=("a", "b"), method="shapley", params={}, shares=[60, 40],
        ...     values=np.array([[0.4, 0.1], [0.2, 0.3]]),
        ...     base_values=np.array([0.5, 0.5]), mean_values=np.array([0.3, 0.2]))
        >>> X = {"a": np.array([[1.0, 3.0], [0.0, 0.0]]), "b": np.ones((2, 4))}
        >>> expl.to_shap(X).data.tolist()
        [[2.0, 1.0], [0.0, 1.0]]
        """
        if self.values is None:
            raise ValueError("this Shapley explanation holds no per-sample values")
        import shap

        values = np.asarray(self.values, dtype=float)
        data = modality_summary(X, self.modalities, len(values), summary)
        if interactions:
            if self.interaction_values is None:
                raise ValueError(
                    "to_shap(interactions=True) needs ModalityShapley(interactions=True)"
                )
            half = np.asarray(self.interaction_values, dtype=float) / 2
            idx = np.arange(values.shape[1])
            half[:, idx, idx] = 0.0
            half[:, idx, idx] = values - half.sum(axis=2)
            values = half
        return shap.Explanation(
            values=values,
            base_values=np.asarray(self.base_values, dtype=float),
            data=data,
            feature_names=list(self.modalities),
        )


class AttributionExplanation(ModalityExplanation):
    """Result of :class:`~mmexplain.explainers.GradientModalityAttribution`.

    Parameters
    ----------
    modalities, method, params, shares :
        As in :class:`~mmexplain.ModalityExplanation`.
    **fields
        The attributes below, by keyword.

    Attributes
    ----------
    sample_shares : ndarray (N, M)
        Per-sample attribution shares (rows sum to 1; NaN where undefined).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> expl = ModalityExplanation(
    ...     modalities=("a", "b"), method="attribution", params={}, shares=[70, 30],
    ...     sample_shares=np.array([[0.6, 0.4], [0.8, 0.2]]))
    >>> expl
    AttributionExplanation(method='attribution', a=70.0%, b=30.0%)
    >>> expl.share_errors().round(2)
    array([7.07, 7.07])
    """

    spec = MethodSpec(
        name="attribution",
        title="Gradient x input modality attribution",
        short_title="Grad x input",
        column="grad x in %",
        field="shares",
        fmt=".1f",
        legend="grad x in %: gradient x input share at the encoder outputs",
        order=40,
    )
    _fields = ("sample_shares",)

    sample_shares: np.ndarray | None

    def n_rows(self) -> int | None:
        return None if self.sample_shares is None else len(self.sample_shares)

    def _per_row_values(self) -> np.ndarray | None:
        if self.sample_shares is None:
            return None
        ss = np.asarray(self.sample_shares, dtype=float) * 100
        # the shares average the rows where every modality's share is defined
        ss[~np.isfinite(ss).all(axis=1)] = np.nan
        return ss

    def _shares_of(self, raw: np.ndarray) -> np.ndarray:
        return raw  # the raw values are the shares

    def share_errors(self) -> np.ndarray | None:
        """Standard error of the mean share over samples, in percent."""
        if self.sample_shares is None:
            return None
        ss = np.asarray(self.sample_shares, dtype=float) * 100
        return ss.std(axis=0) / np.sqrt(max(len(ss), 1))

    def to_shap(self, X: Any = None, *, summary: Any = "mean") -> Any:
        """The per-sample attribution shares as a ``shap.Explanation``, in percent.

        ``values[n, m]`` is sample n's share of modality m (rows sum to 100,
        NaN rows where the attribution is undefined), ``base_values`` zero.
        They are shares, not additive contributions to the output: use the
        plots that compare modalities across samples (``bar``,
        ``beeswarm``, ``heatmap``, ``violin``, ``scatter`` with ``X``);
        a waterfall of shares adds up to 100, not to the prediction.

        Parameters
        ----------
        X, summary :
            As in :meth:`ShapleyExplanation.to_shap`: the explained inputs (or
            their (N, M) summary) give each sample's ``data`` per modality.

        Returns
        -------
        shap.Explanation

        Examples
        --------
        >>> import numpy as np
        >>> from mmexplain import ModalityExplanation
        >>> expl = ModalityExplanation(
        ...     modalities=("a", "b"), method="attribution", params={}, shares=[70, 30],
        ...     sample_shares=np.array([[0.6, 0.4], [0.8, 0.2]]))
        >>> expl.to_shap().values.tolist()
        [[60.0, 40.0], [80.0, 20.0]]
        """
        if self.sample_shares is None:
            raise ValueError("this attribution explanation holds no per-sample shares")
        import shap

        values = np.asarray(self.sample_shares, dtype=float) * 100
        return shap.Explanation(
            values=values,
            base_values=np.zeros(len(values)),
            data=modality_summary(X, self.modalities, len(values), summary),
            feature_names=list(self.modalities),
        )


def modality_summary(
    X: Any, modalities: tuple[str, ...], n: int, summary: Any = "mean"
) -> np.ndarray | None:
    """One number per sample and modality: ``summary`` of its features, shape (N, M).

    ``X`` is a mapping of the explained inputs (N rows each), an (N, M) array
    (returned as float), or None (None). ``summary`` is 'mean', 'norm', 'max'
    or a callable ``array (N, ...) -> (N,)``.
    """
    if X is None:
        return None
    if not isinstance(X, Mapping):
        data = np.asarray(X, dtype=float)
        if data.shape != (n, len(modalities)):
            raise ValueError(
                f"X must be the explained inputs (a mapping) or their (N, M) = "
                f"({n}, {len(modalities)}) summary, got shape {data.shape}"
            )
        return data
    missing = [m for m in modalities if m not in X]
    if missing:
        raise ValueError(f"X lacks modality {missing[0]!r} of the explanation")
    reducers = {
        "mean": lambda a: a.mean(axis=1),
        "norm": lambda a: np.sqrt((a * a).sum(axis=1)),
        "max": lambda a: a.max(axis=1),
    }
    if callable(summary):
        reduce = summary
    elif summary in reducers:
        reduce = None
    else:
        raise ValueError(
            f"summary must be 'mean', 'norm', 'max' or a callable, got {summary!r}"
        )
    columns = []
    for m in modalities:
        value = X[m]
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if len(arr) != n:
            raise ValueError(
                f"modality {m!r} of X has {len(arr)} rows, the explanation {n}"
            )
        if reduce is not None:
            col = np.asarray(reduce(arr), dtype=float).reshape(-1)
        else:
            col = reducers[summary](arr.reshape(n, -1).astype(float))
        if col.shape != (n,):
            raise ValueError(
                f"summary of modality {m!r} gave shape {col.shape}, expected ({n},)"
            )
        columns.append(col)
    return np.column_stack(columns)
