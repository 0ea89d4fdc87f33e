"""A self-contained HTML page of one model's modality report.

Everything is inline (CSS, figures as base64 PNG); no script, no external
resource, so the file can be mailed or archived and opens offline. Built by
:func:`mmexplain.report.html_report`.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplain.results import MethodSpec, ModalityExplanation

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
     margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.7em; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.top { font-weight: 600; }
.legend { color: #444; font-size: 0.9em; }
.legend li { margin: 0.2em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.verdict { background: #f7f7fb; border-left: 4px solid #6a6fd1; padding: 0.6em 1em; }
.note { color: #8a5a00; }
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmexplain")
    except PackageNotFoundError:  # pragma: no cover - a source tree not installed
        return "(not installed)"


def _png(fig: Any) -> str:
    """The figure as an ``<img>`` with a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _figure(fig: Any, caption: str) -> str:
    return (
        f"<figure>{_png(fig)}<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple):  # (text, css class)
                text, css = cell
                cells.append(f'<td class="{css}">{html.escape(str(text))}</td>')
            else:
                cells.append(f"<td>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>{thead}<tbody>{''.join(body)}</tbody></table>"


def _fmt(value: float, fmt: str) -> str:
    return "nan" if not np.isfinite(value) else format(value, fmt)


def _spec(expl: ModalityExplanation) -> MethodSpec:
    """The result's spec (html_report checked that every entry has one)."""
    spec = expl.method_spec
    if spec is None:
        raise ValueError(f"a {expl.method!r} result has no MethodSpec")
    return spec


def _shares_table(report: Mapping[str, ModalityExplanation]) -> str:
    first = next(iter(report.values()))
    mods = list(first.modalities)
    header = ["modality"]
    columns: list[tuple[np.ndarray, str, bool]] = []
    for expl in report.values():
        spec = _spec(expl)
        values = np.asarray(getattr(expl, spec.field), dtype=float)
        header.append(spec.column)
        columns.append((values, spec.fmt, True))
        if spec.errors:
            err = expl.share_errors()
            header.append("+-")
            columns.append(
                (
                    np.full(len(mods), np.nan) if err is None else np.asarray(err),
                    ".1f",
                    False,
                )
            )
    rows = []
    for j, m in enumerate(mods):
        row: list[Any] = [m]
        for values, fmt, headline in columns:
            top = (
                headline
                and np.isfinite(values).any()
                and j == int(np.nanargmax(values))
            )
            row.append((_fmt(values[j], fmt), "num top" if top else "num"))
        rows.append(row)
    return _table(header, rows, cls="shares")


def _verdict(report: Mapping[str, ModalityExplanation]) -> str:
    """One sentence per method: the modality with the largest share and its share."""
    items = []
    for expl in report.values():
        shares = np.asarray(expl.shares, dtype=float)
        if not np.isfinite(shares).any():
            items.append(
                f"<li>{html.escape(_spec(expl).title)}: no modality contributes "
                "(shares undefined).</li>"
            )
            continue
        j = int(np.nanargmax(shares))
        items.append(
            f"<li>{html.escape(_spec(expl).title)}: "
            f"<b>{html.escape(expl.modalities[j])}</b> has the largest share, "
            f"{shares[j]:.1f}% (uniform would be {100 / len(shares):.1f}%).</li>"
        )
    return '<div class="verdict"><ul>' + "".join(items) + "</ul></div>"


def _final(model: Any) -> Any:
    """The estimator at the end of a fitted search and/or Pipeline."""
    for _ in range(16):
        if hasattr(model, "best_estimator_"):
            model = model.best_estimator_
        elif hasattr(model, "steps"):
            model = model.steps[-1][1]
        else:
            break
    return model


def _model_card(
    model: Any,
    input_shapes: Mapping[str, tuple[int, ...]] | None,
    n_samples: int | None,
    y: Any,
) -> str:
    rows: list[list[Any]] = []
    if model is not None:
        rows.append(["model", type(model).__name__])
        final = _final(model)
        if final is not model:
            rows.append(["final estimator", type(final).__name__])
        module = getattr(final, "module_", None)
        if module is not None:
            rows.append(["network", type(module).__name__])
            n_params = sum(int(p.numel()) for p in module.parameters())
            rows.append(["parameters", f"{n_params:,}"])
        balancer = getattr(final, "balancer", None)
        rows.append(["balancer", "none" if balancer is None else repr(balancer)])
        classes = getattr(final, "classes_", None)
        if classes is not None:
            shown = ", ".join(str(c) for c in list(classes)[:20])
            more = " ..." if len(classes) > 20 else ""
            rows.append(["classes", f"{len(classes)}: {shown}{more}"])
        device = getattr(final, "device", None)
        if device is not None:
            rows.append(["device", str(device)])
    if input_shapes:
        for m, shape in input_shapes.items():
            rows.append(
                [f"modality {m!s}", "x".join(str(s) for s in shape) or "scalar"]
            )
    if n_samples is not None:
        rows.append(["explained samples", f"{n_samples:,}"])
    if y is not None:
        labels, counts = np.unique(np.asarray(y), return_counts=True)
        if len(labels) <= 20:
            rows.append(
                [
                    "target counts",
                    ", ".join(f"{lab}: {c}" for lab, c in zip(labels, counts)),
                ]
            )
    return _table(["", ""], rows, cls="card")


def _history_figure(model: Any) -> str:
    history = getattr(_final(model), "history", None)
    if history is None or not len(history):
        return ""
    import matplotlib.pyplot as plt

    keys = [k for k in ("train_loss", "valid_loss") if k in history[-1]]
    if not keys:
        return ""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    epochs = np.arange(1, len(history) + 1)
    for k in keys:
        values = [h.get(k, np.nan) for h in history]
        ax.plot(epochs, values, marker="o", ms=3, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    scores = [k for k in ("valid_acc",) if k in history[-1]]
    if scores:
        ax2 = ax.twinx()
        ax2.plot(
            epochs,
            [h.get(scores[0], np.nan) for h in history],
            color="C2",
            ls="--",
            label=scores[0],
        )
        ax2.set_ylabel(scores[0])
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels)
    last = ", ".join(f"{k} {history[-1][k]:.4g}" for k in keys + scores)
    return _figure(fig, f"Training history ({len(history)} epochs; last: {last}).")


def _per_sample_figure(report: Mapping[str, ModalityExplanation]) -> str:
    """Distribution of per-sample values: Shapley values, or attribution shares."""
    import matplotlib.pyplot as plt

    expl = report.get("shapley")
    values: np.ndarray | None = None
    label = ""
    shapley_values = getattr(expl, "values", None)
    if expl is not None and shapley_values is not None:
        values, label = np.asarray(shapley_values, dtype=float), "Shapley value"
    else:
        expl = report.get("attribution")
        sample_shares = getattr(expl, "sample_shares", None)
        if expl is not None and sample_shares is not None:
            values = np.asarray(sample_shares, dtype=float) * 100
            label = "attribution share (%)"
    if values is None or not len(values):
        return ""
    assert expl is not None  # the values are expl's
    fig, ax = plt.subplots(figsize=(6, 3.2))
    finite = [v[np.isfinite(v)] for v in values.T]
    ax.boxplot(finite, showfliers=False)
    for j, v in enumerate(finite, start=1):
        x: np.ndarray | list[float] = (
            j + np.linspace(-0.18, 0.18, len(v)) if len(v) else []
        )
        ax.scatter(x, v, s=4, alpha=0.25, color="C0")
    ax.set_xticks(range(1, len(expl.modalities) + 1))
    ax.set_xticklabels(expl.modalities)
    ax.set_ylabel(label)
    ax.axhline(0, color="#999", lw=0.8)
    return _figure(
        fig,
        f"Per-sample view: the {label} of every explained sample, per modality "
        "(box: quartiles; dots: samples). A modality whose values spread on both "
        "sides of 0 moves predictions both ways.",
    )


def _per_class_section(report: Mapping[str, ModalityExplanation], y: Any) -> str:
    """Mean Shapley value per modality and class (the per-class picture)."""
    expl = report.get("shapley")
    shapley_values = getattr(expl, "values", None)
    if expl is None or shapley_values is None or y is None:
        return ""
    y = np.asarray(y)
    values = np.asarray(shapley_values, dtype=float)
    if y.ndim != 1 or len(y) != len(values):
        return ""
    classes = np.unique(y)
    if len(classes) > 30:
        return ""
    table = np.array(
        [[values[y == c, j].mean() for c in classes] for j in range(values.shape[1])]
    )
    from mmexplain.plotting import plot_class_utilization

    ax = plot_class_utilization(
        table,
        list(expl.modalities),
        [str(c) for c in classes],
        fmt="{:.2f}",
        colorbar_label="mean Shapley value",
        title="Mean Shapley value per class",
    )
    rows = [
        [m] + [(f"{table[j, k]:.3f}", "num") for k in range(len(classes))]
        for j, m in enumerate(expl.modalities)
    ]
    return (
        "<h2>Per class</h2>"
        + _figure(
            ax.figure,
            "Mean per-sample Shapley value of each modality over the samples of each "
            "class: which modality the model leans on for which class.",
        )
        + _table(["modality"] + [str(c) for c in classes], rows, cls="per-class")
    )


def render_html(
    report: Mapping[str, ModalityExplanation],
    *,
    model: Any = None,
    y: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    title: str | None = None,
    summary_figure: Any = None,
) -> str:
    """The HTML text of the page (see :func:`mmexplain.report.html_report`).

    ``summary_figure`` is the figure of every method's shares
    (:func:`mmexplain.report.plot_report`), drawn by the caller.
    """
    __version__ = _version()
    import matplotlib

    if not report:
        raise ValueError("the report is empty: no explainer could run")
    first = next(iter(report.values()))
    n_samples = first.params.get("n_samples")
    if n_samples is None and y is not None:
        n_samples = len(y)
    title = title or "Modality report"
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with matplotlib.rc_context({"figure.max_open_warning": 0}):
        summary_fig = _figure(
            summary_figure,
            "Each method's modality shares (percent; error bars where the method has "
            "them).",
        )
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">mmexplain {html.escape(__version__)} &middot; {stamp}'
            f" &middot; {len(first.modalities)} modalities &middot; "
            f"{len(report)} methods</p>",
            "<h2>Summary</h2>",
            _verdict(report),
            _shares_table(report),
            '<ul class="legend">'
            + "".join(
                f"<li>{html.escape(_spec(e).legend)}.</li>" for e in report.values()
            )
            + "</ul>",
            summary_fig,
        ]
        per_class = _per_class_section(report, y)
        if per_class:
            parts.append(per_class)
        per_sample = _per_sample_figure(report)
        if per_sample:
            parts += ["<h2>Per sample</h2>", per_sample]
        parts += ["<h2>Model card</h2>", _model_card(model, input_shapes, n_samples, y)]
        if model is not None:
            history = _history_figure(model)
            if history:
                parts += ["<h2>Training</h2>", history]
        parts.append("<h2>Settings</h2>")
        rows = [
            [_spec(e).title, ", ".join(f"{k}={v}" for k, v in e.params.items())]
            for e in report.values()
        ]
        parts.append(_table(["method", "parameters"], rows, cls="settings"))
        parts.append("</body></html>")
    return "\n".join(parts)
