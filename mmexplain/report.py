"""The modality report: every explainer on one model, as a table and a figure.

Which explainers run, in which order, with which settings, and how each is
shown, is declared by the explainers themselves
(:meth:`~mmexplain.explainers.base.BaseModalityExplainer.for_report`) and by
their result classes (:class:`~mmexplain.results.MethodSpec`): a new explainer
that declares both joins the report, the command line's table and its figure
with no edit here.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from numbers import Integral
from typing import Any, cast

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from mmexplain.discovery import all_estimators
from mmexplain.explainers import BaseModalityExplainer
from mmexplain.results import MethodSpec, ModalityExplanation

__all__ = [
    "format_report",
    "html_report",
    "modality_report",
    "plot_report",
    "report_as_dict",
    "report_explainers",
    "report_legend",
    "report_rows",
]


def _for_report_function(cls: type[BaseModalityExplainer]) -> Any:
    """The function behind the classmethod ``cls.for_report``."""
    method: Any = cls.for_report
    return method.__func__


# the base class's for_report (None: not in the report)
_NO_REPORT = _for_report_function(BaseModalityExplainer)

_REPORT_PARAMS = {
    "n_repeats": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "show_progress": ["boolean"],
}


def _check_names(explainers: Any, known: list[str]) -> list[str] | None:
    """``explainers`` as a list of known method names (None: all of them)."""
    if explainers is None:
        return None
    if isinstance(explainers, str) or not all(
        isinstance(name, str) for name in explainers
    ):
        raise TypeError(
            "explainers must be a list of method names such as ['permutation', "
            f"'shapley'], got {explainers!r}"
        )
    names = list(explainers)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        what = f"unknown explainer(s) {unknown}" if unknown else "no explainer chosen"
        raise ValueError(
            f"{what}: the report's explainers are {', '.join(map(repr, known))}"
        )
    return names


@validate_params(
    {
        "n_modalities": [Interval(Integral, 1, None, closed="left")],
        "explainers": "no_validation",  # _check_names: a clearer message
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        **_REPORT_PARAMS,
    },
    prefer_skip_nested_validation=True,
)
def report_explainers(
    n_modalities: int,
    *,
    explainers: Any = None,
    n_repeats: int = 10,
    n_bootstrap: int = 0,
    random_state: Any = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """The explainers the report runs, keyed by method name, in report order.

    Parameters
    ----------
    n_modalities : int
        Number of modalities of the model (an explainer may decline, e.g.
        exact Shapley beyond its limit).
    explainers : list of str or None, default=None
        Method names of the explainers to run (``'permutation'``,
        ``'conditional'``, ``'shapley'``, ``'attribution'``), kept in report
        order; None runs all of them. An unknown name is a ``ValueError``
        that lists the known ones.
    n_repeats : int, default=10
        Permutation repeats.
    n_bootstrap : int, default=0
        Bootstrap resamples of the explained rows, set on the explainers
        that take ``n_bootstrap`` (permutation and conditional utilization),
        with ``random_state`` as their seed, so that their results hold
        confidence intervals; 0 for none.
    random_state : int, RandomState or None, default=0
        Seed of the permutations and of Monte-Carlo Shapley.
    show_progress : bool, default=True
        Progress bars.

    Returns
    -------
    dict of str to explainer

    Examples
    --------
    >>> from mmexplain.report import report_explainers
    >>> list(report_explainers(3, show_progress=False))
    ['permutation', 'conditional', 'shapley', 'attribution']
    >>> list(report_explainers(3, explainers=["shapley", "permutation"]))
    ['permutation', 'shapley']
    """
    chosen, known = [], []
    for _, found in all_estimators("explainer"):
        cls = cast("type[BaseModalityExplainer]", found)  # explainers only
        explainer = cls.for_report(
            n_modalities=n_modalities,
            n_repeats=n_repeats,
            random_state=random_state,
            show_progress=show_progress,
        )
        spec = cls._result_class.spec
        if spec is not None and _for_report_function(cls) is not _NO_REPORT:
            known.append((spec.order, spec.name))
        if explainer is None:
            continue
        if spec is None:
            raise TypeError(
                f"{cls.__name__}.for_report returns an explainer but its result class "
                f"{cls._result_class.__name__} declares no MethodSpec (spec = ...)"
            )
        params = explainer.get_params()
        if n_bootstrap and "n_bootstrap" in params:
            # the resamples are drawn with the report's seed, so they repeat
            seed = {"random_state": random_state} if "random_state" in params else {}
            explainer.set_params(n_bootstrap=n_bootstrap, **seed)
        chosen.append((spec.order, spec.name, explainer))
    names = _check_names(explainers, [name for _, name in sorted(known)])
    return {
        name: explainer
        for _, name, explainer in sorted(chosen, key=lambda t: t[:2])
        if names is None or name in names
    }


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "y": "no_validation",
        "explainers": "no_validation",  # _check_names: a clearer message
        "n_bootstrap": [Interval(Integral, 0, None, closed="left")],
        **_REPORT_PARAMS,
    },
    prefer_skip_nested_validation=False,
)
def modality_report(
    model: Any,
    X: Any,
    y: Any,
    *,
    explainers: Any = None,
    n_repeats: int = 10,
    n_bootstrap: int = 0,
    random_state: int = 0,
    show_progress: bool = True,
) -> dict[str, ModalityExplanation]:
    """Run every report explainer on ``(X, y)``; their explanations by method name.

    Parameters
    ----------
    model : fitted estimator, Pipeline, nn.Module or callable
        Anything an explainer's ``explain`` takes.
    X : mapping of str to array
        Modalities, as the model takes them.
    y : array-like
        Targets.
    explainers : list of str or None, default=None
        Which explainers run, by method name (see
        :func:`report_explainers`); None runs all of them.
    n_repeats : int, default=10
        Permutation repeats of the utilization estimate.
    n_bootstrap : int, default=0
        Bootstrap resamples for the explainers that store them (permutation
        and conditional utilization): their results then hold confidence
        intervals (:meth:`~mmexplain.ModalityExplanation.confidence_interval`,
        :func:`report_as_dict`). 0 for none.
    random_state : int, default=0
        Seed of the permutations (and of Monte-Carlo Shapley beyond 10
        modalities).
    show_progress : bool, default=True
        Progress bars.

    Returns
    -------
    dict
        ``{'permutation', 'conditional', 'shapley', 'attribution'}`` to
        :class:`~mmexplain.ModalityExplanation`, in report order; an
        explainer that cannot run on the model (a ``TypeError`` or
        ``ValueError``, e.g. an ablation the model lacks) is skipped with a
        note on stderr.

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.report import modality_report
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=200, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=3, random_state=0).fit(X, y)
    >>> list(modality_report(clf, X, y, n_repeats=2, show_progress=False))
    ['permutation', 'conditional', 'shapley', 'attribution']
    """
    chosen = report_explainers(
        len(list(X.keys())),
        explainers=explainers,
        n_repeats=n_repeats,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        show_progress=show_progress,
    )
    out = {}
    for name, explainer in chosen.items():
        try:
            out[name] = explainer.explain(model, X, y)
        except (TypeError, ValueError) as exc:
            print(f"  ({name} skipped: {exc})", file=sys.stderr)
    return out


def _specs(report: Mapping[str, ModalityExplanation]) -> list[MethodSpec]:
    specs = []
    for name, expl in report.items():
        spec = expl.method_spec
        if spec is None:
            raise ValueError(f"report entry {name!r} has no MethodSpec")
        specs.append(spec)
    return specs


def format_report(
    report: Mapping[str, ModalityExplanation],
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> str:
    """The report as a text table: one row per modality, one column per method.

    Parameters
    ----------
    report : mapping of str to ModalityExplanation
        E.g. the output of :func:`modality_report`.
    input_shapes : mapping of str to tuple or None
        Per-sample shape of each modality, shown in the 'shape' column.

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.report import format_report
    >>> expl = ModalityExplanation(modalities=("a", "b"), method="attribution",
    ...                            params={}, shares=np.array([75.0, 25.0]))
    >>> print(format_report({"attribution": expl}, {"a": (3,), "b": (2, 4)}))
    modality               shape grad x in %
    ----------------------------------------
    a                          3        75.0
    b                        2x4        25.0
    """
    if not report:
        raise ValueError("the report is empty: no explainer could run")
    input_shapes = dict(input_shapes or {})
    first = next(iter(report.values()))
    mods = first.modalities
    columns: list[tuple[str, int, Any]] = []  # header, width, value(j)
    for spec, expl in zip(_specs(report), report.values()):
        values = np.asarray(getattr(expl, spec.field), dtype=float)
        width = max(len(spec.column), 7)
        columns.append(
            (spec.column, width, lambda j, v=values, f=spec.fmt: format(v[j], f))
        )
        if spec.errors:
            err = expl.share_errors()
            columns.append(
                (
                    "+-",
                    5,
                    lambda j, e=err: format(e[j], ".1f") if e is not None else "nan",
                )
            )
    header = f"{'modality':15s} {'shape':>12s}" + "".join(
        f" {h:>{w}s}" for h, w, _ in columns
    )
    lines = [header, "-" * len(header)]
    for j, m in enumerate(mods):
        shape = "x".join(str(s) for s in input_shapes.get(m, ()))
        lines.append(
            f"{m:15s} {shape:>12s}" + "".join(f" {v(j):>{w}s}" for _, w, v in columns)
        )
    return "\n".join(lines)


def report_legend(report: Mapping[str, ModalityExplanation]) -> str:
    """One sentence per column of :func:`format_report`, from the methods' specs.

    Parameters
    ----------
    report : mapping of str to ModalityExplanation

    Returns
    -------
    str
    """
    return "\n".join(spec.legend + "." for spec in _specs(report))


def _number(value: Any) -> float | None:
    """A float for JSON: None for NaN and infinities."""
    value = float(value)
    return value if np.isfinite(value) else None


def _plain(value: Any) -> Any:
    """``value`` as JSON-safe Python (numbers, strings, lists, dicts, None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (Integral, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return repr(value)


def _by_modality(mods: tuple[str, ...], values: Any) -> dict[str, Any]:
    return {m: _plain(v) for m, v in zip(mods, np.asarray(values).tolist())}


def report_as_dict(
    report: Mapping[str, ModalityExplanation], *, level: float = 0.95
) -> dict[str, Any]:
    """The report as plain Python, ready for ``json.dumps``: numbers per modality.

    Parameters
    ----------
    report : mapping of str to ModalityExplanation
        E.g. the output of :func:`modality_report`.
    level : float, default=0.95
        Level of the confidence intervals, for the results that hold
        bootstrap replicates (``n_bootstrap``).

    Returns
    -------
    dict
        ``{'modalities': [...], 'explainers': {name: entry}}``, explainers
        in report order. Each entry has ``method``, ``column`` (the table's
        header), ``value_name`` and ``values`` (the method's raw value per
        modality: ``importances_mean``, ``rates``, ``mean_values``, or the
        attribution ``shares``), ``shares`` (percent per modality),
        ``share_errors`` (the table's ``+-``, or None), ``intervals`` (None,
        or ``{'level', 'values', 'shares'}`` with ``[low, high]`` per
        modality) and ``params``. NaN becomes None (JSON ``null``).

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.report import report_as_dict
    >>> expl = ModalityExplanation(modalities=("a", "b"), method="attribution",
    ...                            params={}, shares=np.array([75.0, 25.0]))
    >>> d = report_as_dict({"attribution": expl})
    >>> d["explainers"]["attribution"]["shares"]
    {'a': 75.0, 'b': 25.0}
    >>> json.loads(json.dumps(d)) == d
    True
    """
    if not report:
        raise ValueError("the report is empty: no explainer could run")
    entries: dict[str, Any] = {}
    for (name, expl), spec in zip(report.items(), _specs(report)):
        mods = expl.modalities
        errors = expl.share_errors()
        intervals = None
        if getattr(expl, "bootstrap_values", None) is not None:
            intervals = {
                "level": float(level),
                **{
                    of: _by_modality(mods, expl.confidence_interval(level, of=of))
                    for of in ("values", "shares")
                },
            }
        entries[name] = {
            "method": expl.method,
            "column": spec.column,
            "value_name": expl._raw_field,
            "values": _by_modality(mods, expl.statistic("values")),
            "shares": _by_modality(mods, expl.shares),
            "share_errors": None if errors is None else _by_modality(mods, errors),
            "intervals": intervals,
            "params": _plain(expl.params),
        }
    first = next(iter(report.values()))
    return {"modalities": list(first.modalities), "explainers": entries}


def report_rows(
    report: Mapping[str, ModalityExplanation], *, level: float = 0.95
) -> list[dict[str, Any]]:
    """The report as one row per explainer and modality (e.g. for a CSV file).

    Parameters
    ----------
    report : mapping of str to ModalityExplanation
        E.g. the output of :func:`modality_report`.
    level : float, default=0.95
        Level of the confidence intervals (see :func:`report_as_dict`).

    Returns
    -------
    list of dict
        Rows with the keys, in this order: ``explainer``,
        ``modality``, ``value_name``, ``value``, ``share_percent``,
        ``share_error`` and the interval bounds ``value_low``,
        ``value_high``, ``share_low``, ``share_high`` (None where the result
        has no such number).

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.report import report_rows
    >>> expl = ModalityExplanation(modalities=("a", "b"), method="attribution",
    ...                            params={}, shares=np.array([75.0, 25.0]))
    >>> [(r["modality"], r["share_percent"]) for r in report_rows({"g": expl})]
    [('a', 75.0), ('b', 25.0)]
    """
    rows = []
    for name, entry in report_as_dict(report, level=level)["explainers"].items():
        intervals = entry["intervals"] or {}
        for m, value in entry["values"].items():
            low_high = {
                f"{key}_{end}": (intervals[of][m][i] if of in intervals else None)
                for key, of in (("value", "values"), ("share", "shares"))
                for i, end in enumerate(("low", "high"))
            }
            rows.append(
                {
                    "explainer": name,
                    "modality": m,
                    "value_name": entry["value_name"],
                    "value": value,
                    "share_percent": entry["shares"][m],
                    "share_error": (entry["share_errors"] or {}).get(m),
                    **low_high,
                }
            )
    return rows


def plot_report(
    report: Mapping[str, ModalityExplanation], *, title: str | None = None
) -> Any:
    """A figure with one bar chart per method; returns the matplotlib ``Figure``.

    Parameters
    ----------
    report : mapping of str to ModalityExplanation
    title : str or None
        The figure's title.

    Examples
    --------
    >>> import numpy as np
    >>> from mmexplain import ModalityExplanation
    >>> from mmexplain.report import plot_report
    >>> expl = ModalityExplanation(modalities=("a", "b"), method="attribution",
    ...                            params={}, shares=np.array([75.0, 25.0]))
    >>> fig = plot_report({"attribution": expl}, title="demo")
    >>> [ax.get_title() for ax in fig.axes]
    ['Grad x input']
    """
    import matplotlib.pyplot as plt

    specs = _specs(report)
    fig, axes = plt.subplots(
        1, len(report), figsize=(4.2 * len(report), 3.8), squeeze=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN shares: empty bars
        for ax, spec, expl in zip(axes[0], specs, report.values()):
            expl.plot(ax=ax)
            ax.set_title(spec.short_title, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def html_report(
    report: Mapping[str, ModalityExplanation],
    path: Any = None,
    *,
    model: Any = None,
    y: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    title: str | None = None,
) -> str:
    """One self-contained HTML page with every view of a modality report.

    The page holds a summary (which modality each method finds most used,
    the per-modality table of :func:`format_report` and its legend, the
    figure of :func:`plot_report`), the per-class picture (mean Shapley
    value per modality and class, when ``y`` is given), the per-sample view
    (the distribution of per-sample Shapley values or attribution shares),
    a model card (estimator, network, parameters, balancer, classes, input
    shapes, explained samples, target counts), the training history, and
    every method's settings. Figures are inline PNGs and the style is inline
    CSS: no script and no external resource, so the file opens offline.

    Parameters
    ----------
    report : mapping of str to ModalityExplanation
        E.g. the output of :func:`modality_report`.
    path : str or path-like or None, default=None
        Where to write the page (UTF-8); None only returns it.
    model : estimator or None
        The explained model, for the model card and training history.
    y : array-like or None
        The explained targets, for the per-class picture and target counts.
    input_shapes : mapping of str to tuple or None
        Per-sample shape of each modality (model card); by default the
        model's ``input_shapes_`` when it has them.
    title : str or None
        Page title (default 'Modality report').

    Returns
    -------
    str
        The HTML text.

    Examples
    --------
    >>> from mmexplain import MultimodalClassifier
    >>> from mmexplain.datasets import make_multimodal_classification
    >>> from mmexplain.report import html_report, modality_report
    >>> X, y = make_multimodal_classification(n_samples=100, random_state=0)
    >>> clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> page = html_report(modality_report(clf, X, y, n_repeats=2, show_progress=False),
    ...                    model=clf, y=y)
    >>> page.startswith("<!DOCTYPE html>"), "<script" in page
    (True, False)
    """
    import pathlib

    from mmexplain._report_html import _final, render_html

    if input_shapes is None and model is not None:
        input_shapes = getattr(_final(model), "input_shapes_", None)
    if not report:
        raise ValueError("the report is empty: no explainer could run")
    text = render_html(
        report,
        model=model,
        y=y,
        input_shapes=input_shapes,
        title=title,
        summary_figure=plot_report(report),
    )
    if path is not None:
        pathlib.Path(path).write_text(text, encoding="utf-8")
    return text
