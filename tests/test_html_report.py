"""html_report: one self-contained page, checked by parsing it."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from skorch.dataset import ValidSplit  # noqa: E402

from mmexplain import MultimodalClassifier  # noqa: E402
from mmexplain.datasets import make_multimodal_classification  # noqa: E402
from mmexplain.report import html_report, modality_report  # noqa: E402


class _Page(HTMLParser):
    """Tables (rows of cell texts), images, headings, links and scripts of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.headings = [], [], []
        self.external, self.scripts = [], 0
        self._cell = None
        self._heading = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"class": attrs.get("class"), "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("h1", "h2"):
            self._heading = ""
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(self._cell.strip())
            self._cell = None
        elif tag in ("h1", "h2"):
            self.headings.append(self._heading.strip())
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    X, y = make_multimodal_classification(
        n_samples=150, n_classes=3, modalities=3, random_state=0
    )
    clf = MultimodalClassifier(
        max_epochs=3, random_state=0, train_split=ValidSplit(0.2)
    ).fit(X, y)
    report = modality_report(clf, X, y, n_repeats=2, show_progress=False)
    path = tmp_path_factory.mktemp("html") / "report.html"
    text = html_report(report, path, model=clf, y=y, title="Toy <model>")
    parsed = _Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return text, parsed, report, clf, X, y


def _table(parsed, cls):
    (table,) = [t for t in parsed.tables if t["class"] == cls]
    return table["rows"]


def test_self_contained(page):
    text, parsed, *_ = page
    assert text.startswith("<!DOCTYPE html>")
    assert parsed.scripts == 0 and parsed.external == []
    assert parsed.headings[0] == "Toy <model>"  # escaped in the page, shown as given
    assert "Toy &lt;model&gt;" in text
    for section in ("Summary", "Per class", "Per sample", "Model card", "Training"):
        assert section in parsed.headings
    assert len(parsed.images) == 4  # summary, per class, per sample, training
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.size[0] > 200 and img.size[1] > 100


def test_share_table_holds_the_explanations(page):
    _, parsed, report, *_ = page
    rows = _table(parsed, "shares")
    header, body = rows[0], rows[1:]
    first = next(iter(report.values()))
    assert [r[0] for r in body] == list(first.modalities)
    for expl in report.values():
        spec = expl.method_spec
        col = header.index(spec.column)
        values = np.asarray(getattr(expl, spec.field), dtype=float)
        shown = [float(r[col]) for r in body]
        np.testing.assert_allclose(shown, values, atol=0.51 * 10 ** -_digits(spec.fmt))


def _digits(fmt):
    return int(fmt.strip(".f"))


def test_per_class_table_is_the_mean_shapley_value_per_class(page):
    _, parsed, report, _, _, y = page
    rows = _table(parsed, "per-class")
    values = report["shapley"].values
    for j, row in enumerate(rows[1:]):
        for k, c in enumerate(np.unique(y)):
            assert float(row[k + 1]) == pytest.approx(
                values[y == c, j].mean(), abs=5e-4
            )


def test_model_card(page):
    _, parsed, _, clf, X, y = page
    card = dict(_table(parsed, "card"))
    assert card["model"] == "MultimodalClassifier"
    assert card["network"] == "LateFusionNet"
    n_params = sum(p.numel() for p in clf.module_.parameters())
    assert card["parameters"] == f"{n_params:,}"
    assert card["classes"].startswith("3: 0, 1, 2")
    for m, v in X.items():
        assert card[f"modality {m}"] == "x".join(str(s) for s in v.shape[1:])
    assert card["explained samples"] == f"{len(y):,}"
    counts = np.bincount(y)
    assert card["target counts"] == ", ".join(f"{k}: {c}" for k, c in enumerate(counts))


def test_without_model_or_targets(tmp_path):
    X, y = make_multimodal_classification(n_samples=60, random_state=0)
    clf = MultimodalClassifier(max_epochs=1, random_state=0).fit(X, y)
    report = modality_report(clf, X, y, n_repeats=1, show_progress=False)
    parsed = _Page()
    parsed.feed(html_report(report))
    assert "Per class" not in parsed.headings and "Training" not in parsed.headings
    with pytest.raises(ValueError, match="the report is empty"):
        html_report({})
