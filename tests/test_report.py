"""The modality report as data: explainer choice, JSON-ready dict, CSV rows, progress."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest

from mmexplain import ModalityExplanation, MultimodalClassifier
from mmexplain._core.progress import LineProgress, progress_bar
from mmexplain.datasets import make_multimodal_classification
from mmexplain.report import (
    modality_report,
    report_as_dict,
    report_explainers,
    report_rows,
)

ALL = ["permutation", "conditional", "shapley", "attribution"]


@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal_classification(
        n_samples=120, n_classes=3, modalities=3, random_state=0
    )
    clf = MultimodalClassifier(max_epochs=3, random_state=0).fit(X, y)
    return clf, X, y


# ----------------------------------------------------------------------------
# choosing explainers
# ----------------------------------------------------------------------------
def test_explainers_are_chosen_by_name_in_report_order():
    assert list(report_explainers(3, show_progress=False)) == ALL
    chosen = report_explainers(3, explainers=["attribution", "permutation"])
    assert list(chosen) == ["permutation", "attribution"]
    assert type(chosen["permutation"]).__name__ == "PermutationModalityImportance"


@pytest.mark.parametrize(
    "explainers, error, match",
    [
        (["permutation", "lime"], ValueError, r"unknown explainer\(s\) \['lime'\]"),
        ([], ValueError, "no explainer chosen"),
        ("permutation", TypeError, "list of method names"),
        ([3], TypeError, "list of method names"),
    ],
)
def test_bad_explainer_names_are_refused_naming_the_known_ones(
    explainers, error, match
):
    with pytest.raises(error, match=match) as info:
        report_explainers(3, explainers=explainers)
    if error is ValueError:  # the message lists what is available, in report order
        assert "'permutation', 'conditional', 'shapley', 'attribution'" in str(
            info.value
        )


def test_n_bootstrap_reaches_the_explainers_that_take_it():
    chosen = report_explainers(3, n_bootstrap=30)
    have = {n: e.get_params().get("n_bootstrap") for n, e in chosen.items()}
    assert have == {
        "permutation": 30,
        "conditional": 30,
        "shapley": None,
        "attribution": None,
    }
    # drawn with the report's seed: the intervals repeat
    seeds = report_explainers(3, n_bootstrap=30, random_state=7)
    assert seeds["conditional"].random_state == 7
    assert seeds["permutation"].random_state == 7


def test_modality_report_runs_only_the_chosen_explainers(fitted):
    clf, X, y = fitted
    report = modality_report(
        clf, X, y, explainers=["shapley"], n_repeats=2, show_progress=False
    )
    assert list(report) == ["shapley"]
    with pytest.raises(ValueError, match="unknown explainer"):
        modality_report(clf, X, y, explainers=["nope"], show_progress=False)


# ----------------------------------------------------------------------------
# report_as_dict / report_rows: the numbers of the explanations
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(fitted):
    clf, X, y = fitted
    return modality_report(
        clf, X, y, n_repeats=3, n_bootstrap=40, random_state=0, show_progress=False
    )


def test_as_dict_holds_each_explanations_values_and_shares(report):
    d = report_as_dict(report)
    assert d["modalities"] == list(report["permutation"].modalities)
    assert list(d["explainers"]) == ALL
    raw = {
        "permutation": "importances_mean",
        "conditional": "rates",
        "shapley": "mean_values",
        "attribution": "shares",
    }
    for name, expl in report.items():
        entry = d["explainers"][name]
        assert entry["method"] == name and entry["value_name"] == raw[name]
        assert entry["column"] == expl.method_spec.column
        for j, m in enumerate(expl.modalities):
            assert entry["values"][m] == pytest.approx(getattr(expl, raw[name])[j])
            assert entry["shares"][m] == pytest.approx(expl.shares[j])
    errors = report["permutation"].share_errors()
    assert list(d["explainers"]["permutation"]["share_errors"].values()) == (
        pytest.approx(errors.tolist())
    )
    assert d["explainers"]["shapley"]["share_errors"] is None
    # strict JSON (no NaN), and it reads back unchanged
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_as_dict_has_intervals_exactly_where_bootstrap_replicates_exist(report):
    d = report_as_dict(report, level=0.9)
    for name in ("permutation", "conditional"):
        expl = report[name]
        intervals = d["explainers"][name]["intervals"]
        assert intervals["level"] == 0.9
        for of in ("values", "shares"):
            expected = expl.confidence_interval(0.9, of=of)
            got = [intervals[of][m] for m in expl.modalities]
            assert np.allclose(got, expected)
    assert d["explainers"]["shapley"]["intervals"] is None
    assert d["explainers"]["attribution"]["intervals"] is None


def test_nan_becomes_none():
    expl = ModalityExplanation(
        modalities=("a", "b"),
        method="attribution",
        params={"scale": float("nan"), "f": len},
        shares=np.array([np.nan, np.nan]),
    )
    d = report_as_dict({"attribution": expl})
    entry = d["explainers"]["attribution"]
    assert entry["shares"] == {"a": None, "b": None}
    assert entry["params"] == {"scale": None, "f": repr(len)}
    json.dumps(d, allow_nan=False)  # would raise on NaN


def test_rows_are_one_per_explainer_and_modality(report):
    d = report_as_dict(report)
    rows = report_rows(report)
    assert [(r["explainer"], r["modality"]) for r in rows] == [
        (name, m) for name in ALL for m in d["modalities"]
    ]
    assert list(rows[0]) == [
        "explainer",
        "modality",
        "value_name",
        "value",
        "share_percent",
        "share_error",
        "value_low",
        "value_high",
        "share_low",
        "share_high",
    ]
    for row in rows:
        entry = d["explainers"][row["explainer"]]
        m = row["modality"]
        assert row["value"] == entry["values"][m]
        assert row["share_percent"] == entry["shares"][m]
        if entry["intervals"] is None:
            assert row["share_low"] is None and row["value_high"] is None
        else:
            assert [row["share_low"], row["share_high"]] == entry["intervals"][
                "shares"
            ][m]
    assert all(math.isfinite(r["share_error"]) for r in rows[:3])


def test_empty_report_is_refused():
    with pytest.raises(ValueError, match="empty"):
        report_as_dict({})
    with pytest.raises(ValueError, match="empty"):
        report_rows({})


# ----------------------------------------------------------------------------
# progress: tqdm on a terminal, plain lines elsewhere
# ----------------------------------------------------------------------------
def test_line_progress_writes_a_line_per_tenth_and_no_carriage_return():
    out = io.StringIO()
    bar = LineProgress(30, desc="training", file=out)
    for epoch in range(30):
        bar.set_postfix({"train_loss": f"{1 / (epoch + 1):.4f}"})
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"training: {n}/30" for n in range(3, 31, 3)
    ]
    assert lines[-1].endswith("train_loss=0.0333")


def test_line_progress_close_reports_an_unfinished_run_once():
    out = io.StringIO()
    bar = LineProgress(100, desc="x", file=out)
    bar.update(5)  # below the first tenth: no line yet
    assert out.getvalue() == ""
    bar.close()
    bar_lines = out.getvalue().splitlines()
    assert len(bar_lines) == 1 and bar_lines[0].startswith("x: 5/100 (5%")


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_is_tqdm_on_a_terminal_and_lines_otherwise(monkeypatch):
    from tqdm import tqdm

    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    assert isinstance(progress_bar(3, "a"), LineProgress)
    monkeypatch.setattr(sys, "stderr", _Stream(tty=True))
    bar = progress_bar(3, "a", leave=False)
    try:
        assert isinstance(bar, tqdm)
    finally:
        bar.close()
