"""Shared contract of the explainers: explain / fit / score / __call__ and scoring."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar, cast

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils._param_validation import Interval, StrOptions

from mmexplain._core.params import validate_params
from mmexplain._core.torch_state import auto_batch_size, model_lock
from mmexplain.data import ModalityDict
from mmexplain.data.sources import (
    DatasetSource,
    RowSource,
    as_source,
    check_source,
    is_dataset,
)
from mmexplain.explainers._adapter import ModelAdapter, unwrap_model
from mmexplain.explainers._engine import EvaluationEngine, Perturbation
from mmexplain.metrics import check_target, utilization_distance
from mmexplain.results import ModalityExplanation

__all__ = [
    "BaseModalityExplainer",
    "ExplainContext",
    "Scoring",
    "normalize_shares",
    "resolve_scoring",
]


def normalize_shares(
    contributions: np.ndarray, *, what: str = "utilization"
) -> np.ndarray:
    """Percent shares from per-modality contributions.

    Negative contributions (a modality whose perturbation *improves* the
    score) count as zero use: they are clipped to 0 before normalizing, as
    Singh et al. (2023) normalize non-negative MU. If nothing is positive the shares are
    undefined: NaN with a ``RuntimeWarning``.
    """
    c = np.clip(np.asarray(contributions, dtype=float), 0.0, None)
    total = c.sum()
    if not np.isfinite(total) or total <= 0:
        warnings.warn(
            f"no modality has a positive contribution, so the {what} shares are undefined (NaN)",
            RuntimeWarning,
            stacklevel=3,
        )
        return np.full(c.shape, np.nan)
    return 100.0 * c / total


# ----------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------
@dataclass
class Scoring:
    """How a score is computed from the engine's per-row statistics."""

    name: str
    stat: str  # engine statistic kind
    greater_is_better: bool
    finalize: Callable[[np.ndarray], float]
    per_sample: bool = False  # finalize needs (N, P) rather than summed (P,)
    estimator_scorer: Callable | None = None  # sklearn-style (estimator, X, y) scorer
    #: regression: the score of each target from the same statistics, (T,)
    finalize_outputs: Callable[[np.ndarray], np.ndarray] | None = None


def _ratio(s: np.ndarray) -> float:
    return float(s[0] / s[1]) if s[1] > 0 else float("nan")


def _miou_from_confusion(s: np.ndarray) -> float:
    c = int(round(np.sqrt(s.shape[-1])))
    cm = s.reshape(c, c)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    present = union > 0
    return (
        float(np.mean(inter[present] / union[present]))
        if present.any()
        else float("nan")
    )


def resolve_scoring(
    scoring: Any, adapter: ModelAdapter, *, classification: bool, y_labels: Any = None
) -> Scoring:
    """Turn ``scoring`` into a :class:`Scoring`.

    ``'loss'`` (the model's criterion, per pixel for segmentation),
    ``'accuracy'`` (pixel accuracy for segmentation), ``'miou'`` (segmentation),
    any scikit-learn classification scorer name (``'balanced_accuracy'``,
    ``'f1_macro'``, ``'neg_log_loss'``, ``'roc_auc_ovr'``, ...), or a callable
    ``scorer(estimator, X, y)`` (higher is better; runs the estimator on
    materialized perturbed data, without the fast path).
    """
    if adapter.regression and not callable(scoring):
        return _regression_scoring(scoring, adapter, y_labels)
    if callable(scoring) and not isinstance(scoring, str):
        return Scoring(
            name=getattr(scoring, "__name__", type(scoring).__name__),
            stat="",
            greater_is_better=True,
            finalize=lambda s: float("nan"),
            estimator_scorer=scoring,
        )
    if not isinstance(scoring, str):
        raise TypeError(
            f"scoring must be a string or a callable, got {type(scoring).__name__}"
        )
    if scoring == "loss":
        return Scoring("loss", "loss", False, _ratio)
    if scoring == "accuracy":
        return Scoring("accuracy", "correct", True, _ratio)
    if scoring in ("miou", "mean_iou"):
        if classification:
            raise ValueError("scoring='miou' is for segmentation models")
        return Scoring("miou", "confusion", True, _miou_from_confusion)
    if not classification:
        raise ValueError(
            f"unknown scoring {scoring!r} for segmentation; use 'loss', 'accuracy' or 'miou'"
        )
    from sklearn.metrics import get_scorer

    try:
        scorer = get_scorer(scoring)
    except ValueError as exc:
        raise ValueError(f"unknown scoring {scoring!r}: {exc}") from exc
    classes = np.asarray(adapter.classes) if adapter.classes is not None else None
    y_true = np.asarray(y_labels)
    present = np.unique(y_true)
    needs_labels: list[bool] = []  # set on the first call that needs them
    routed = None
    if _scorer_takes_labels(scorer):
        from sklearn import config_context

        # the same scorer, passed the model's classes as ``labels`` through
        # scikit-learn's metadata routing (the scorers' public way to pass it)
        with config_context(enable_metadata_routing=True):
            routed = get_scorer(scoring).set_score_request(labels=True)

    def finalize(proba: np.ndarray) -> float:
        # scikit-learn's own scorer, through its public call: it asks a
        # stand-in estimator for predictions, which are the engine's outputs
        labels = classes if classes is not None else np.arange(proba.shape[1])
        stand_in = _FixedOutputs(labels, proba)
        X_dummy = np.zeros((len(proba), 1))
        absent = np.setdiff1d(labels, present) if routed is not None else np.array([])
        if not (len(absent) and needs_labels):
            try:
                return float(scorer(stand_in, X_dummy, y_true))
            except ValueError:
                if not len(absent):
                    raise
            # y lacks some of the model's classes and the metric, inferring
            # its classes from y, no longer matches the probability columns
            # (metrics of predicted labels, e.g. F1, keep scikit-learn's value)
            needs_labels.append(True)
        from sklearn import config_context

        # here ``absent`` is not empty, so the scorer takes labels (routed)
        assert routed is not None
        with config_context(enable_metadata_routing=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                value = float(routed(stand_in, X_dummy, y_true, labels=labels))
        if not np.isfinite(value):
            raise ValueError(
                f"scoring={scoring!r} is undefined on these y: they lack the "
                f"classes {absent.tolist()} of the model, and the metric needs "
                "samples of every class (e.g. a one-vs-rest AUC per class); pass "
                "rows of every class, or use a scoring defined without them (e.g. "
                "'neg_log_loss', 'roc_auc_ovr_weighted')"
            )
        return value

    return Scoring(scoring, "proba", True, finalize, per_sample=True)


#: named regression scorings computed from the additive 'regression' statistic:
#: the score of each target from its sums (columns: r, r^2, |r|, y - c,
#: (y - c)^2, loss per target, then the row count)
def _regression_parts(s: np.ndarray) -> tuple[np.ndarray, ...]:
    t = (s.shape[-1] - 1) // 6
    parts = [s[..., k * t : (k + 1) * t] for k in range(6)]
    n = s[..., 6 * t]
    return (*parts, n)


def _per_target_r2(s: np.ndarray) -> np.ndarray:
    _, r2, _, c, c2, _, n = _regression_parts(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        ss_tot = c2 - c * c / n
        out = 1.0 - r2 / ss_tot
    # scikit-learn's r2_score(force_finite=True): a constant target scores 1
    # when predicted exactly, else 0
    const = ~(ss_tot > 1e-12 * np.maximum(c2, 1e-300))
    return np.where(const, np.where(r2 == 0, 1.0, 0.0), out)


def _per_target_explained_variance(s: np.ndarray) -> np.ndarray:
    r, r2, _, c, c2, _, n = _regression_parts(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_y = c2 / n - (c / n) ** 2
        var_r = r2 / n - (r / n) ** 2
        out = 1.0 - var_r / var_y
    const = ~(var_y > 1e-12 * np.maximum(c2 / n, 1e-300))
    return np.where(const, np.where(var_r <= 0, 1.0, 0.0), out)


def _per_target_mean(k: int, sign: float, root: bool = False) -> Callable:
    def per_target(s: np.ndarray) -> np.ndarray:
        parts = _regression_parts(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = parts[k] / parts[-1]
        return sign * (np.sqrt(mean) if root else mean)

    return per_target


_REGRESSION_SCORINGS: dict[str, tuple[Callable, bool]] = {
    # name: (score of each target from the statistics, greater_is_better)
    "loss": (_per_target_mean(5, 1.0), False),
    "r2": (_per_target_r2, True),
    "explained_variance": (_per_target_explained_variance, True),
    "neg_mean_squared_error": (_per_target_mean(1, -1.0), True),
    "neg_root_mean_squared_error": (_per_target_mean(1, -1.0, root=True), True),
    "neg_mean_absolute_error": (_per_target_mean(2, -1.0), True),
}


def _regression_scoring(scoring: Any, adapter: ModelAdapter, y: Any) -> Scoring:
    """A regression model's scoring: additive ones from per-row sums, others per sample.

    ``'loss'`` (the model's criterion, mean squared error by default),
    ``'r2'``, ``'explained_variance'``, ``'neg_mean_squared_error'``,
    ``'neg_root_mean_squared_error'`` and ``'neg_mean_absolute_error'`` are
    computed from additive per-row statistics (so bootstrap intervals and
    per-target scores come from the same model calls); any other
    scikit-learn regression scorer (``'max_error'``,
    ``'neg_median_absolute_error'``, ``'d2_absolute_error_score'``, ...)
    is given the outputs themselves. Several targets are averaged uniformly,
    as scikit-learn's ``multioutput='uniform_average'``.
    """
    if not isinstance(scoring, str):
        raise TypeError(
            f"scoring must be a string or a callable, got {type(scoring).__name__}"
        )
    if scoring in _REGRESSION_SCORINGS:
        per_target, greater = _REGRESSION_SCORINGS[scoring]
        return Scoring(
            scoring,
            "regression",
            greater,
            lambda s: float(np.mean(per_target(s))),
            finalize_outputs=per_target,
        )
    hint = (
        "for a regression model use 'loss', 'r2', 'explained_variance', "
        "'neg_mean_squared_error', 'neg_root_mean_squared_error', "
        "'neg_mean_absolute_error' or another scikit-learn regression scorer"
    )
    from sklearn.metrics import get_scorer

    try:
        scorer = get_scorer(scoring)
    except ValueError:
        raise ValueError(f"unknown scoring {scoring!r}; {hint}") from None
    module = getattr(getattr(scorer, "_score_func", None), "__module__", "") or ""
    if not module.endswith("_regression"):
        raise ValueError(
            f"scoring={scoring!r} scores classes, but the model is a regression "
            f"model (real-valued outputs); {hint}"
        )
    y_true = np.asarray(y)

    def finalize(outputs: np.ndarray) -> float:
        pred = outputs[:, 0] if y_true.ndim == 1 else outputs
        return float(scorer(_FixedRegression(pred), np.zeros((len(pred), 1)), y_true))

    return Scoring(scoring, "outputs", True, finalize, per_sample=True)


class _FixedRegression(RegressorMixin, BaseEstimator):
    """A fitted regressor whose predictions on any ``X`` are the given outputs."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.outputs, dtype=np.float64)


def _scorer_takes_labels(scorer: Any) -> bool:
    """Whether a scikit-learn scorer's metric takes ``labels`` (e.g. log loss, ROC AUC).

    ``inspect.signature`` follows the ``functools.wraps`` of scikit-learn's
    parameter validation to the metric's own parameters (its wrapper's
    ``__code__`` would only show ``*args, **kwargs``).
    """
    func = getattr(scorer, "_score_func", None)
    if func is None:
        return False
    try:
        return "labels" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


class _FixedOutputs(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose outputs on any ``X`` are the given probabilities.

    Lets a scikit-learn scorer (``get_scorer(name)``) score the engine's class
    probabilities through its public ``scorer(estimator, X, y)`` call, with
    its own choice of response (``predict``, ``predict_proba``,
    ``decision_function``), positive label and label handling.
    """

    def __init__(self, classes: np.ndarray, proba: np.ndarray) -> None:
        self.classes = classes
        self.proba = proba

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.proba)

    def decision_function(self, X: Any) -> np.ndarray:
        proba = np.asarray(self.proba)
        return proba[:, 1] if proba.shape[1] == 2 else proba

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.asarray(self.proba).argmax(axis=1)]


def evaluate_scores(
    engine: EvaluationEngine, perturbations: list[Perturbation], scoring: Scoring
) -> np.ndarray:
    """One score per perturbation (memory-bounded for per-sample scorers)."""
    from mmexplain.explainers._stats import make_stat

    stat = make_stat(scoring.stat, engine.adapter)
    if not scoring.per_sample:
        stats = engine.evaluate(perturbations, stat).cpu().numpy()
        return np.array([scoring.finalize(s) for s in stats])
    # keep at most ~64M floats of per-sample outputs at a time
    n_out = None
    scores: list[float] = []
    start = 0
    while start < len(perturbations):
        if n_out is None:
            chunk = 1
        else:
            chunk = max(1, (1 << 26) // max(engine.n * n_out, 1))
        out = (
            engine.evaluate(perturbations[start : start + chunk], stat, per_sample=True)
            .cpu()
            .numpy()
        )
        n_out = out.shape[-1]
        scores.extend(scoring.finalize(o) for o in out)
        start += chunk
    return np.array(scores)


# ----------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------
@dataclass
class ExplainContext:
    """What :meth:`BaseModalityExplainer.explain` hands to ``_explain``.

    For a ``Pipeline`` (or a fitted search), ``model`` is the model at its end
    and ``X`` what that model receives (the inputs passed through the other
    steps' ``transform``); ``given`` is what the user passed and ``unwrapped``
    names what was unwrapped (see :func:`~mmexplain.explainers._adapter.unwrap_model`).
    """

    model: Any  #: the model ``X`` is fed to (a pipeline's last step)
    adapter: ModelAdapter  #: what the engine needs to know about it
    X: ModalityDict | RowSource  #: validated inputs of ``model``
    y: np.ndarray | None  #: targets as class indices (None when not needed)
    y_raw: Any  #: targets as given
    given: Any = None  #: the model as the user passed it
    unwrapped: tuple[str, ...] = ()  #: e.g. ('GridSearchCV', 'Pipeline')
    batch_size: int | None = None  #: rows per model call (``'auto'`` resolved)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.X.modalities


class BaseModalityExplainer(BaseEstimator):
    """Base of all modality explainers: the ``explain`` template and the scorer API.

    :meth:`explain` validates the parameters (``_parameter_constraints``, as
    in scikit-learn), checks the model and the data, calls the subclass's
    ``_explain(ctx)`` with an :class:`ExplainContext`, and stamps the common
    metadata (``explainer``, ``n_samples``, ``batch_size``) into the
    result's ``params``. A new explainer implements ``_explain`` only.

    ``fit`` stores the explanation in ``explanation_`` and the headline
    attribute (``_headline``); ``score`` returns minus the total-variation
    distance between the modality shares and ``target`` (uniform when None),
    so higher is better and 0 is perfect; calling the explainer as
    ``explainer(estimator, X, y)`` returns ``score``, which makes it a
    scikit-learn scorer.

    Examples
    --------
    A minimal explainer whose shares follow each modality's number of features
    (it needs no targets), explaining a plain callable ``f(**X) -> logits``:

    >>> import numpy as np
    >>> import torch
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.explainers.base import BaseModalityExplainer, normalize_shares
    >>> class FeatureCount(BaseModalityExplainer):
    ...     _requires_y = False
    ...     def __init__(self, target=None):
    ...         self.target = target
    ...     def _explain(self, ctx):
    ...         sizes = [ctx.X[m][0].size for m in ctx.modalities]
    ...         return ModalityExplanation(modalities=ctx.modalities, method="feature_count",
    ...                                    params={}, shares=normalize_shares(sizes))
    >>> def model(a, b):
    ...     return torch.zeros(len(a), 2)
    >>> X = {"a": np.zeros((4, 3)), "b": np.zeros((4, 1))}
    >>> expl = FeatureCount().explain(model, X)
    >>> expl
    ModalityExplanation(method='feature_count', a=75.0%, b=25.0%)
    >>> expl.params
    {'explainer': 'FeatureCount', 'n_samples': 4}
    >>> FeatureCount().fit(model, X).shares_
    array([75., 25.])
    >>> FeatureCount().score(model, X)  # minus the distance to uniform shares
    -0.25
    >>> FeatureCount(target={"a": 0.75, "b": 0.25})(model, X) == 0
    True
    """

    _headline = "shares_"
    _headline_field = "shares"
    #: the result class this explainer returns; its ``spec`` (a
    #: :class:`~mmexplain.results.MethodSpec`) holds the method's titles and
    #: report column
    _result_class: ClassVar[type[ModalityExplanation]] = ModalityExplanation
    #: whether ``explain`` needs targets (see :meth:`_needs_y`)
    _requires_y = True
    #: constraints every explainer shares; subclasses merge them into theirs
    #: (``{**BaseModalityExplainer._parameter_constraints, ...}``)
    _parameter_constraints: ClassVar[dict[str, list[Any] | str]] = {
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "device": "no_validation",
        "target": [dict, None],
        "show_progress": ["boolean"],
    }

    def explain(self, model: Any, X: Any, y: Any = None) -> ModalityExplanation:
        """Explain how ``model`` uses each modality of ``X`` (targets ``y``).

        Parameters
        ----------
        model : fitted estimator, Pipeline, search, nn.Module or callable
            A fitted :class:`~mmexplain.MultimodalClassifier` /
            :class:`~mmexplain.MultimodalSegmenter`, any fitted skorch net, an
            ``nn.Module`` called as ``module(**X)``, a
            :class:`~mmexplain.explainers.ForwardModel` or a plain callable
            ``f(**X) -> logits``; or a fitted ``Pipeline`` ending in one
            (``X`` goes through the other steps' ``transform`` once, up
            front) or a fitted search (its ``best_estimator_``). A fitted
            ``TransformedTargetRegressor`` is explained through its
            ``regressor_`` on ``transformer_.transform(y)``, the targets its
            network learned (losses are then in those units).
        X : mapping of str to array-like
            ``{modality: array}``, the modalities the model (the pipeline)
            was fitted on.
        y : array-like or None
            Targets (labels as the estimator knows them, or class indices
            for a plain module).

        Returns
        -------
        ModalityExplanation
        """
        validate_params(self)
        ctx = self._prepare(model, X, y, need_y=self._needs_y())
        self._check_target_param(getattr(self, "target", None), ctx.modalities)
        if "batch_size" in self.get_params(deep=False):
            # resolved once: copies of ctx made in _explain carry the same value
            self._batch_size(ctx)
        with model_lock(ctx.adapter.module):
            expl = self._explain(ctx)
        expl.params = {
            "explainer": type(self).__name__,
            "n_samples": len(ctx.X),
            **expl.params,
        }
        if ctx.unwrapped:
            expl.params.setdefault("unwrapped", ctx.unwrapped)
        if "batch_size" in self.get_params(deep=False):
            expl.params.setdefault("batch_size", self._batch_size(ctx))
        return expl

    def _explain(self, ctx: ExplainContext) -> ModalityExplanation:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def for_report(
        cls,
        *,
        n_modalities: int,
        n_repeats: int = 10,
        random_state: Any = 0,
        show_progress: bool = True,
    ) -> BaseModalityExplainer | None:
        """The instance :func:`mmexplain.report.modality_report` runs, or None.

        An explainer joins the report (and the command line's table and figure)
        by overriding this to return an instance with the settings the report
        describes; the default, None, leaves it out.
        """
        return None

    def _needs_y(self) -> bool:
        return self._requires_y

    def fit(self, model: Any, X: Any, y: Any = None) -> BaseModalityExplainer:
        """Explain ``model`` on ``(X, y)`` and store the result.

        Sets ``explanation_`` and the headline attribute. Returns ``self``.
        """
        expl = self.explain(model, X, y)
        self.explanation_ = expl
        setattr(self, self._headline, getattr(expl, self._headline_field))
        return self

    def score(self, model: Any, X: Any, y: Any = None) -> float:
        """Balance score: minus the distance of the shares to ``target`` (0 is perfect)."""
        return self._score_explanation(self.explain(model, X, y))

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        """scikit-learn scorer protocol: ``scorer(estimator, X, y) -> float``."""
        return self.score(estimator, X, y)

    def _score_explanation(self, expl: ModalityExplanation) -> float:
        """Minus the distance of the shares to ``target``; raises where undefined.

        A scorer that cannot score raises rather than returning NaN: inside
        ``GridSearchCV`` the default ``error_score=np.nan`` still records NaN
        for that split (with a warning carrying this message), and
        ``error_score='raise'`` stops with it.
        """
        if not np.all(np.isfinite(expl.shares)):
            raise ValueError(
                f"{type(self).__name__} cannot score this model: its {expl.method} "
                "shares are undefined (NaN) because no modality has a positive "
                "contribution (perturbing any modality leaves the score as good or "
                "better, e.g. an untrained model or one worse than chance on these "
                "data), so there is no distance to the target shares"
            )
        target = check_target(getattr(self, "target", None), expl.modalities)
        return -utilization_distance(dict(zip(expl.modalities, expl.shares)), target)

    # -- helpers ------------------------------------------------------------
    def _prepare(
        self, model: Any, X: Any, y: Any, *, need_y: bool = True
    ) -> ExplainContext:
        """Adapter, validated X, class-index y and the raw y.

        Pipelines and fitted searches are unwrapped first (their transforms
        applied to ``X`` once, see :func:`~mmexplain.explainers._adapter.unwrap_model`);
        a plain callable becomes a :class:`~mmexplain.explainers.ForwardModel`.
        """
        given = model
        model, X, unwrapped = unwrap_model(model, X)
        model, X, y, unwrapped = _unwrap_target(model, X, y, unwrapped)
        adapter = ModelAdapter(
            model,
            loss_fn=getattr(self, "loss_fn", None),
            device=getattr(self, "device", None),
            who=type(self).__name__,
        )
        Xv: ModalityDict | RowSource
        if is_dataset(X) or isinstance(X, RowSource):
            # a torch Dataset (or a row source): validated from its first item,
            # values checked batch by batch as they are loaded
            Xv = check_source(
                X, modalities=adapter.modalities, input_shapes=adapter.input_shapes
            )
            if y is None and need_y and getattr(Xv, "has_targets", False):
                # a source whose items carry targets (a DatasetSource)
                y = cast(DatasetSource, Xv).targets()
        else:
            Xv = adapter.check_X(X)
        if adapter.modalities is None:
            adapter.modalities = Xv.modalities
        if y is None:
            if need_y:
                raise ValueError(
                    f"{type(self).__name__} needs y (targets) to score the model"
                )
            return ExplainContext(model, adapter, Xv, None, None, given, unwrapped)
        y_idx = adapter.encode_y(y, len(Xv), spatial=image_size(Xv))
        return ExplainContext(model, adapter, Xv, y_idx, y, given, unwrapped)

    def _engine(
        self,
        ctx: ExplainContext,
        *,
        fast: bool | str,
        desc: str,
        needs_index: bool = True,
    ) -> EvaluationEngine:
        """The evaluation engine over ``ctx`` with this explainer's batching settings.

        ``needs_index=False`` (no permutations: own rows and constant
        baselines only) evaluates embeddings block by block when caching them
        would exceed the memory budget.
        """
        return EvaluationEngine(
            ctx.adapter,
            ctx.X,
            ctx.y,
            batch_size=self._batch_size(ctx),
            fast=fast,
            needs_index=needs_index,
            show_progress=self.show_progress,
            desc=desc,
        )

    #: rows per model call of ``batch_size='auto'`` on the CPU
    _cpu_batch_size: ClassVar[int] = 4096
    #: share of the free GPU memory the inputs of one call may take, x4 (``'auto'``)
    _device_memory_fraction: ClassVar[float] = 1 / 16

    def _batch_size(self, ctx: ExplainContext) -> int:
        """``batch_size``, with ``'auto'`` chosen for the model's device (once per explain)."""
        if ctx.batch_size is None:
            source = as_source(ctx.X)
            ctx.batch_size = auto_batch_size(
                self.batch_size,
                ctx.adapter.device,
                source.row_bytes(),
                cpu_default=self._cpu_batch_size,
                memory_fraction=self._device_memory_fraction,
            )
        return ctx.batch_size

    def _reference(self, ctx: ExplainContext) -> ModalityDict | None:
        """The validated ``reference`` parameter (a mapping or ``(X_ref, y_ref)``)."""
        reference = getattr(self, "reference", None)
        if isinstance(reference, tuple):
            reference = reference[0]
        if reference is None:
            return None
        if not isinstance(reference, Mapping):
            raise TypeError(
                "reference must be a mapping {modality: array} or a tuple (X_ref, y_ref)"
            )
        return ctx.adapter.check_X(reference)

    @staticmethod
    def _check_target_param(target: Any, modalities: tuple[str, ...]) -> None:
        if target is not None and not isinstance(target, Mapping):
            raise TypeError("target must be a dict {modality: share} summing to 1")
        check_target(target, modalities)


def _unwrap_target(
    model: Any, X: Any, y: Any, path: tuple[str, ...]
) -> tuple[Any, Any, Any, tuple[str, ...]]:
    """A fitted ``TransformedTargetRegressor`` stands for its ``regressor_``, on transformed y.

    Its network learned the transformed targets (e.g. standardized), so it
    is explained on ``transformer_.transform(y)``, as ``fit`` trained it:
    losses are in the transformed units; shares and R^2-based numbers do
    not depend on them.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import NotFittedError

    from mmexplain.data import check_y

    while isinstance(model, TransformedTargetRegressor):
        if not hasattr(model, "regressor_"):
            raise NotFittedError(
                "This TransformedTargetRegressor instance is not fitted yet: call "
                "fit(X, y) before explaining it"
            )
        if y is not None:
            y_arr = np.asarray(check_y(y, None), dtype=np.float64)
            y2 = y_arr.reshape(-1, 1) if y_arr.ndim == 1 else y_arr
            yt = np.asarray(model.transformer_.transform(y2))
            y = yt.reshape(len(yt)) if y_arr.ndim == 1 else yt
        model, X, inner = unwrap_model(model.regressor_, X)
        path = (*path, "TransformedTargetRegressor", *inner)
    return model, X, y, path


def image_size(X: Any) -> tuple[int, ...] | None:
    """The ``(H, W)`` the image modalities ``(C, H, W)`` of ``X`` share, else None."""
    shapes = (
        X.row_shapes.values()
        if isinstance(X, RowSource)
        else (tuple(v.shape[1:]) for v in X.values())
    )
    sizes = {tuple(int(d) for d in s[1:]) for s in shapes if len(s) == 3}
    return sizes.pop() if len(sizes) == 1 else None
