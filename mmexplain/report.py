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
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from mmexplain.discovery import all_estimators
from mmexplain.results import MethodSpec, ModalityExplanation

__all__ = [
    "format_report",
    "html_report",
    "modality_report",
    "plot_report",
    "report_explainers",
    "report_legend",
]


_REPORT_PARAMS = {
    "n_repeats": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "show_progress": ["boolean"],
}


@validate_params(
    {"n_modalities": [Interval(Integral, 1, None, closed="left")], **_REPORT_PARAMS},
    prefer_skip_nested_validation=True,
)
def report_explainers(
    n_modalities: int,
    *,
    n_repeats: int = 10,
    random_state: Any = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """The explainers the report runs, keyed by method name, in report order.

    Parameters
    ----------
    n_modalities : int
        Number of modalities of the model (an explainer may decline, e.g.
        exact Shapley beyond its limit).
    n_repeats : int, default=10
        Permutation repeats.
    random_state : int, RandomState or None, default=0
    show_progress : bool, default=True

    Returns
    -------
    dict of str to explainer

    Examples
    --------
    >>> from mmexplain.report import report_explainers
    >>> list(report_explainers(3, show_progress=False))
    ['permutation', 'conditional', 'shapley', 'attribution']
    """
    chosen = []
    for _, cls in all_estimators("explainer"):
        explainer = cls.for_report(
            n_modalities=n_modalities,
            n_repeats=n_repeats,
            random_state=random_state,
            show_progress=show_progress,
        )
        spec = cls._result_class.spec
        if explainer is None:
            continue
        if spec is None:
            raise TypeError(
                f"{cls.__name__}.for_report returns an explainer but its result class "
                f"{cls._result_class.__name__} declares no MethodSpec (spec = ...)"
            )
        chosen.append((spec.order, spec.name, explainer))
    return {
        name: explainer for _, name, explainer in sorted(chosen, key=lambda t: t[:2])
    }


@validate_params(
    {
        "model": "no_validation",
        "X": "no_validation",
        "y": "no_validation",
        **_REPORT_PARAMS,
    },
    prefer_skip_nested_validation=False,
)
def modality_report(
    model: Any,
    X: Any,
    y: Any,
    *,
    n_repeats: int = 10,
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
    n_repeats : int, default=10
        Permutation repeats of the utilization estimate.
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
    explainers = report_explainers(
        len(list(X.keys())),
        n_repeats=n_repeats,
        random_state=random_state,
        show_progress=show_progress,
    )
    out = {}
    for name, explainer in explainers.items():
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
