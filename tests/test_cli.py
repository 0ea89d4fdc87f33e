"""The command line: train / explain / export-data, saved pipelines, errors, help."""

import csv
import io
import json
import pickle
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mmexplain
from mmexplain import ModalityTransformer, MultimodalClassifier
from mmexplain import __main__ as cli
from mmexplain.__main__ import main
from mmexplain.datasets import make_multimodal_classification
from mmexplain.explainers import unwrap_model
from mmexplain.persistence import load_model, save_model
from mmexplain.report import modality_report

BUNDLED = ("fourier", "profile", "karhunen", "pixel", "zernike", "morphological")


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def table_rows(out, modalities):
    return [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in modalities
    ]


def accuracy(pattern, out):
    return float(re.search(pattern + r" ([0-9.]+)", out).group(1))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small .npz of 3 modalities (string labels) and a pipeline saved on it."""
    d = tmp_path_factory.mktemp("small")
    X, y = make_multimodal_classification(
        n_samples=120, n_classes=3, modalities=3, random_state=0
    )
    y = np.array(["ant", "bee", "cow"])[y]
    np.savez(d / "data.npz", **X, y=y)
    pipe = make_pipeline(
        ModalityTransformer({m: StandardScaler() for m in X}),
        MultimodalClassifier(max_epochs=3, random_state=0, module__embedding_dim=8),
    ).fit(X, y)
    save_model(pipe, d / "model.mmx")
    return d, dict(X), y, pipe


# ----------------------------------------------------------------------------
# the documented workflows
# ----------------------------------------------------------------------------
def test_train_save_explain_gives_the_train_time_test_accuracy(tmp_path, capsys):
    model, plot = tmp_path / "model.mmx", tmp_path / "r.png"
    # common options before and after the subcommand
    rc, out, _ = run(
        capsys,
        "--quiet",
        "train",
        "--epochs",
        "2",
        "--repeats",
        "2",
        "--plot",
        plot,
        "--save-model",
        model,
    )
    assert rc == 0
    assert "6 modalities" in out and "train 1500 / test 500" in out
    rows = table_rows(out, BUNDLED)
    assert len(rows) == 6
    assert sum(float(r[2]) for r in rows) == pytest.approx(100, abs=0.2)
    assert plot.stat().st_size > 10_000
    test_acc = accuracy("test accuracy", out)
    assert test_acc > 0.5
    # the raw (unscaled) held-out rows: the saved pipeline scales them itself
    assert run(capsys, "export-data", tmp_path / "test.npz", "--split", "test")[0] == 0
    rc, out, _ = run(
        capsys, "--quiet", "explain", model, tmp_path / "test.npz", "--plot", ""
    )
    assert rc == 0
    assert accuracy(r"score on \S+:", out) == pytest.approx(test_acc, abs=1e-9)
    assert len(table_rows(out, BUNDLED)) == 6


def _docstring_commands():
    block = cli.__doc__.split("::", 1)[1].split("\n\n")[1]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert lines and all(line.split()[0] == "mmexplain" for line in lines)
    return lines


def test_every_docstring_example_runs(tmp_path, monkeypatch, capsys):
    """Each command line of the module docstring runs as written, in order."""
    monkeypatch.chdir(tmp_path)
    # the bare `mmexplain` trains the default 30 epochs: keep the test fast
    monkeypatch.setattr(cli, "_DEFAULT_EPOCHS", 1)
    commands = _docstring_commands()
    assert commands[0] == "mmexplain"  # the no-argument default run is shown
    for line in commands:
        argv = shlex.split(line)[1:]
        rc, out, err = run(capsys, *argv)
        assert rc == 0, f"{line!r} failed:\n{err}"
        assert "Traceback" not in err
        assert "\r" not in err  # stderr is not a terminal: plain progress lines
        if line == "mmexplain":  # one epoch of the default training, as a line
            assert "training LateFusionNet: 1/1 (100%" in err
        command = next((a for a in argv if a in cli._COMMANDS), "train")
        if command not in ("train", "explain"):
            continue
        # both print the modality report, in the format asked for
        fmt = argv[argv.index("--format") + 1] if "--format" in argv else "table"
        if fmt == "table":
            assert len(table_rows(out, BUNDLED)) == 6, line
        elif fmt == "json":
            assert list(json.loads(out)["modalities"]) == list(BUNDLED), line
        else:
            assert {r["modality"] for r in csv.DictReader(io.StringIO(out))} == set(
                BUNDLED
            ), line
    for name in ("mmexplain_report.png", "report.png", "explain.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert load_model(tmp_path / "model.mmx").steps[0][0] == "modalitytransformer"
    with np.load(tmp_path / "train.npz") as data:
        assert sorted(data.files) == sorted([*BUNDLED, "label"])


def test_no_arguments_runs_train_with_its_defaults(monkeypatch):
    seen = {}
    monkeypatch.setitem(cli._COMMANDS, "train", lambda args: seen.update(vars(args)))
    main([])
    assert seen["command"] == "train" and seen["data"] is None
    assert seen["epochs"] == 30 and seen["plot"] == "mmexplain_report.png"
    assert seen["test_size"] == 0.25 and seen["seed"] == 0 and not seen["quiet"]


def test_options_before_or_after_the_subcommand():
    parser = cli._parser()
    before = parser.parse_args(
        "--seed 3 --plot r.png --quiet --repeats 4 train --epochs 3".split()
    )
    after = parser.parse_args(
        "train --epochs 3 --plot r.png --seed 3 --quiet --repeats 4".split()
    )
    assert vars(before) == vars(after)
    assert (after.seed, after.plot, after.quiet, after.repeats) == (3, "r.png", True, 4)
    # given after the subcommand, an option wins over the same one given before
    both = parser.parse_args("--plot a.png explain m d --plot b.png".split())
    assert both.plot == "b.png" and both.seed == 0


def test_train_on_own_npz_then_explain(small, tmp_path, capsys):
    d, X, y, _ = small
    data = tmp_path / "mine.npz"
    images = np.random.default_rng(0).normal(size=(120, 1, 4, 4))
    np.savez(data, **X, img=images, label=y)
    model = tmp_path / "mine.mmx"
    rc, out, err = run(
        capsys,
        "--seed",
        "1",
        "train",
        "--data",
        data,
        "--target-key",
        "label",
        "--test-size",
        "0.3",
        "--epochs",
        "2",
        "--scaler",
        "minmax",
        "--save-model",
        model,
        "--plot",
        "",
        "--quiet",
        "--repeats",
        "2",
    )
    assert rc == 0, err
    assert f"{data}: 120 samples, 4 modalities" in out and "img 1x4x4" in out
    assert "train 84 / test 36, minmax-scaled per modality" in out
    assert len(table_rows(out, ("m0", "m1", "m2", "img"))) == 4
    rc, out, err = run(
        capsys, "--quiet", "explain", model, data, "--target-key", "label", "--plot", ""
    )
    assert rc == 0, err
    pipe = load_model(model)
    Xd = {**X, "img": images}
    assert f"score on {data}: {pipe.score(Xd, y):.3f}" in out


def test_explain_a_trusted_pickle(small, tmp_path, capsys):
    d, _, _, pipe = small
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(pipe))
    rc, _, err = run(capsys, "--quiet", "explain", path, d / "data.npz", "--plot", "")
    assert rc == 2 and "--trust-pickle" in err
    rc, out, err = run(
        capsys,
        "--quiet",
        "explain",
        path,
        d / "data.npz",
        "--plot",
        "",
        "--trust-pickle",
    )
    assert rc == 0 and "score on" in out
    assert err.startswith("warning: loading the pickle")


class NotANetwork:
    """A picklable 'model' that no explainer can handle."""

    def predict(self, X):
        return np.zeros(len(next(iter(X.values()))))

    def score(self, X, y):
        return 0.0


def test_exit_status_1_when_no_explainer_can_run(small, tmp_path, capsys):
    d = small[0]
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps(NotANetwork()))
    rc, _, err = run(
        capsys,
        "--quiet",
        "explain",
        path,
        d / "data.npz",
        "--plot",
        "",
        "--trust-pickle",
    )
    assert rc == 1
    assert err.count("skipped") == 4
    assert err.strip().splitlines()[-1].startswith("error: no explainer could run")


# ----------------------------------------------------------------------------
# --version, --format, --explainers, --bootstrap, --html, --threads, progress
# ----------------------------------------------------------------------------
def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out == f"mmexplain {mmexplain.__version__}\n"


def _python_report(small, explainers, repeats=2, bootstrap=0, seed=0):
    """The report of the saved pipeline from Python, as the CLI computes it."""
    d, X, y, _ = small
    final, Xt, _ = unwrap_model(load_model(d / "model.mmx"), X)
    return modality_report(
        final,
        Xt,
        y,
        explainers=explainers,
        n_repeats=repeats,
        n_bootstrap=bootstrap,
        random_state=seed,
        show_progress=False,
    )


def test_json_output_is_the_python_apis_report(small, capsys):
    d, X, y, pipe = small
    rc, out, err = run(
        capsys,
        "--quiet",
        "explain",
        d / "model.mmx",
        d / "data.npz",
        "--plot",
        "",
        "--format",
        "json",
        "--explainers",
        "shapley,permutation",
        "--repeats",
        "2",
        "--seed",
        "3",
    )
    assert rc == 0, err
    payload = json.loads(out)  # stdout holds the JSON object and nothing else
    assert "score on" in err  # the messages went to stderr
    assert payload["mmexplain"] == mmexplain.__version__
    assert payload["n_samples"] == 120
    assert payload["score"] == pytest.approx(pipe.score(X, y))
    assert payload["modalities"] == ["m0", "m1", "m2"]
    assert list(payload["explainers"]) == ["permutation", "shapley"]
    report = _python_report(small, ["permutation", "shapley"], seed=3)
    perm, shap = report["permutation"], report["shapley"]
    got = payload["explainers"]
    for j, m in enumerate(perm.modalities):
        assert got["permutation"]["values"][m] == pytest.approx(
            perm.importances_mean[j], rel=1e-5, abs=1e-7
        )
        assert got["permutation"]["shares"][m] == pytest.approx(
            perm.shares[j], rel=1e-5, abs=1e-5
        )
        assert got["permutation"]["share_errors"][m] == pytest.approx(
            perm.share_errors()[j], rel=1e-5, abs=1e-5
        )
        assert got["shapley"]["values"][m] == pytest.approx(
            shap.mean_values[j], rel=1e-5, abs=1e-7
        )
        assert got["shapley"]["shares"][m] == pytest.approx(
            shap.shares[j], rel=1e-5, abs=1e-5
        )
    assert got["permutation"]["params"]["n_repeats"] == 2
    assert got["permutation"]["intervals"] is None  # no --bootstrap


def test_csv_output_is_one_row_per_explainer_and_modality(small, capsys):
    d = small[0]
    rc, out, err = run(
        capsys,
        "--quiet",
        "--format",
        "csv",
        "--bootstrap",
        "30",
        "explain",
        d / "model.mmx",
        d / "data.npz",
        "--plot",
        "",
        "--repeats",
        "2",
    )
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    report = _python_report(small, None, bootstrap=30)
    assert [(r["explainer"], r["modality"]) for r in rows] == [
        (name, m) for name in report for m in ("m0", "m1", "m2")
    ]
    for name, expl in report.items():
        mine = [r for r in rows if r["explainer"] == name]
        shares = [float(r["share_percent"]) for r in mine]
        assert shares == pytest.approx(expl.shares.tolist(), rel=1e-5, abs=1e-5)
        values = [float(r["value"]) for r in mine]
        raw = expl.statistic("values").tolist()
        assert values == pytest.approx(raw, rel=1e-5, abs=1e-7)
        if name in ("permutation", "conditional"):  # bootstrap intervals
            ci = expl.confidence_interval(of="shares")
            got = [[float(r["share_low"]), float(r["share_high"])] for r in mine]
            assert np.allclose(got, ci, rtol=1e-5, atol=1e-5)
        else:  # empty cells where a result has no interval
            assert {r["share_low"] for r in mine} == {""}


def test_explainers_option_is_checked_before_any_work(small, capsys, monkeypatch):
    d = small[0]
    monkeypatch.setattr(cli, "_read_model", lambda *a: pytest.fail("read the model"))
    rc, out, err = run(
        capsys, "explain", d / "model.mmx", d / "data.npz", "--explainers", "shap"
    )
    assert rc == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: --explainers: unknown explainer(s) ['shap']: the report's "
        "explainers are 'permutation', 'conditional', 'shapley', 'attribution'"
    ]
    rc, _, err = run(capsys, "train", "--explainers", "permutation,")
    assert rc == 2 and "error: argument --explainers" in err


def test_html_option_writes_the_page(small, tmp_path, capsys):
    d = small[0]
    page = tmp_path / "report.html"
    rc, out, err = run(
        capsys,
        "--quiet",
        "explain",
        d / "model.mmx",
        d / "data.npz",
        "--plot",
        "",
        "--repeats",
        "1",
        "--html",
        page,
    )
    assert rc == 0, err
    assert f"HTML report saved to {page}" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert text.count("data:image/png;base64,") >= 2  # the summary figure and more
    for m in ("m0", "m1", "m2"):
        assert f">{m}<" in text
    assert "ant" in text and "cow" in text  # the model card's classes
    rc, _, err = run(capsys, "explain", d / "model.mmx", d / "data.npz", "--html", d)
    assert rc == 2 and err.startswith("error: --html") and "is a directory" in err


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(small, capsys):
    d = small[0]
    rc, out, err = run(
        capsys,
        "--explainers",
        "permutation",
        "explain",
        d / "model.mmx",
        d / "data.npz",
        "--plot",
        "",
        "--repeats",
        "4",
    )
    assert rc == 0, err
    assert "\r" not in err and "\r" not in out
    lines = [line for line in err.splitlines() if line.startswith("permutation")]
    assert lines and re.match(r"permutation importance: (\d+)/\1 \(100%", lines[-1])


@pytest.mark.parametrize(
    "argv, omp, expected",
    [
        ([], None, 1),  # the default for small networks
        (["--threads", "2"], None, 2),
        ([], "3", "unchanged"),  # OMP_NUM_THREADS is the user's choice
        (["--threads", "0"], None, "unchanged"),  # torch's own setting
    ],
)
def test_threads(argv, omp, expected, monkeypatch):
    import torch

    seen = {}
    monkeypatch.setitem(
        cli._COMMANDS, "train", lambda args: seen.update(n=torch.get_num_threads())
    )
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    before = torch.get_num_threads()
    torch.set_num_threads(5)
    try:
        main([*argv, "train"])
        assert seen["n"] == (5 if expected == "unchanged" else expected)
        assert torch.get_num_threads() == 5  # restored for the caller
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------
# unusable input: one `error:` line, exit status 2, no traceback
# ----------------------------------------------------------------------------
def _npz(d, name, **arrays):
    np.savez(d / name, **arrays)
    return d / name


def _case_files(d, X, y):
    """Build the broken inputs; returns {case: (argv, expected message part)}."""
    model, data = d / "model.mmx", d / "data.npz"
    blob = model.read_bytes()
    (d / "trunc.mmx").write_bytes(blob[: len(blob) // 3])
    (d / "trunc.npz").write_bytes(data.read_bytes()[:500])
    (d / "text.npz").write_text("m0,m1\n1,2\n")
    np.save(d / "single.npy", X["m0"])
    (d / "evil.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    (d / "adir").mkdir(exist_ok=True)
    bad_y = np.where(np.arange(len(y)) == 0, "zebra", y)
    nan = {**X, "m0": X["m0"].copy()}
    nan["m0"][3, 2] = np.nan
    ex = ["--quiet", "explain"]
    tr = ["--quiet", "train", "--epochs", "1", "--data"]
    return {
        "missing model": (
            [*ex, d / "nope.mmx", data],
            "model file .*nope.mmx does not exist",
        ),
        "missing data": ([*ex, model, d / "nope.npz"], "data file .* does not exist"),
        "model is a directory": ([*ex, d / "adir", data], "cannot read model file"),
        "truncated model": ([*ex, d / "trunc.mmx", data], "truncated, corrupted"),
        "truncated data": ([*ex, model, d / "trunc.npz"], "cannot read"),
        "text as npz": ([*ex, model, d / "text.npz"], "text.npz is not an .npz file"),
        "npy not npz": ([*ex, model, d / "single.npy"], "single array"),
        "pickle not trusted": ([*ex, d / "evil.pkl", data], "--trust-pickle"),
        "pickle not a model": (
            [*ex, d / "evil.pkl", data, "--trust-pickle"],
            "not a fitted model",
        ),
        "no target key": (
            [*ex, model, _npz(d, "noy.npz", **X)],
            "has no 'y' array .*--target-key",
        ),
        "other target key": (
            [*ex, model, data, "--target-key", "label"],
            "has no 'label' array",
        ),
        "wrong modality names": (
            [*ex, model, _npz(d, "names.npz", m0=X["m0"], m1=X["m1"], m9=X["m2"], y=y)],
            r"does not fit the model: missing modality 'm2'; expected modalities "
            r"\['m0', 'm1', 'm2'\], got \['m0', 'm1', 'm9'\]",
        ),
        "wrong shape": (
            [*ex, model, _npz(d, "shape.npz", **{**X, "m1": X["m1"][:, :7]}, y=y)],
            r"does not fit the model: modality 'm1' has per-sample shape \(7,\) but "
            r"the ModalityTransformer was fitted on \(10,\)",
        ),
        "row mismatch": (
            [*ex, model, _npz(d, "rows.npz", **{**X, "m2": X["m2"][:50]}, y=y)],
            "modality 'm2' has 50 samples",
        ),
        "target rows": (
            [*ex, model, _npz(d, "yrows.npz", **X, y=y[:10])],
            "targets 'y' have 10 rows",
        ),
        "unknown labels": (
            [*ex, model, _npz(d, "labels.npz", **X, y=bad_y)],
            "does not fit the model.*zebra",
        ),
        "object array": (
            [*ex, model, _npz(d, "obj.npz", **X, y=y.astype(object))],
            "cannot read array 'y' .*allow_pickle",
        ),
        "plot dir missing": (
            [*ex, model, data, "--plot", d / "no" / "r.png"],
            "--plot .* does not exist",
        ),
        "train: no target": (
            [*tr, _npz(d, "noy2.npz", **X)],
            "has no 'y' array",
        ),
        "train: NaN": (
            [*tr, _npz(d, "nan.npz", **nan, y=y)],
            "modality 'm0' .*NaN .*in row 3",
        ),
        "train: modality not 2-D": (
            [*tr, _npz(d, "flat.npz", a=X["m0"][:, 0], y=y)],
            "modality 'a' .* shape \\(120,\\)",
        ),
        "train: one class": (
            [*tr, _npz(d, "one.npz", **X, y=np.zeros(120, int))],
            "single class",
        ),
        "train: save dir missing": (
            [*tr, data, "--save-model", d / "no" / "m.mmx"],
            "--save-model .* does not exist",
        ),
        "export: dir missing": (["export-data", d / "no" / "x.npz"], "does not exist"),
    }


CASES = [
    "missing model",
    "missing data",
    "model is a directory",
    "truncated model",
    "truncated data",
    "text as npz",
    "npy not npz",
    "pickle not trusted",
    "pickle not a model",
    "no target key",
    "other target key",
    "wrong modality names",
    "wrong shape",
    "row mismatch",
    "target rows",
    "unknown labels",
    "object array",
    "plot dir missing",
    "train: no target",
    "train: NaN",
    "train: modality not 2-D",
    "train: one class",
    "train: save dir missing",
    "export: dir missing",
]


@pytest.fixture(scope="module")
def broken(small):
    d, X, y, _ = small
    cases = _case_files(d, X, y)
    assert sorted(cases) == sorted(CASES)
    return cases


@pytest.mark.parametrize("case", CASES)
def test_unusable_input_gives_one_error_line_and_exit_2(case, broken, capsys):
    argv, expected = broken[case]
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    if "--trust-pickle" in argv:  # the opt-in always warns first
        assert lines[0].startswith("warning: loading the pickle")
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in out + err


def test_bad_option_values_are_usage_errors(capsys):
    for argv in (
        ["train", "--test-size", "2"],
        ["--repeats", "0"],
        ["train", "--lr", "-1"],
    ):
        rc, _, err = run(capsys, *argv)
        assert rc == 2 and "error: argument" in err and "Traceback" not in err


# ----------------------------------------------------------------------------
# help
# ----------------------------------------------------------------------------
def _parsers():
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {"mmexplain": parser, **sub.choices}


def _option_blocks(text):
    """{first option string: its help text} from an argparse help page."""
    blocks, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = line
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


def test_every_option_has_help_and_shows_its_default():
    for name, parser in _parsers().items():
        blocks = _option_blocks(parser.format_help())
        for action in parser._actions:
            assert action.help, (name, action.dest)
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            block = blocks[action.option_strings[0]]
            assert "(default: " in block, (name, block)
    train = _option_blocks(_parsers()["train"].format_help())
    assert "(default: 30)" in train["--epochs"]
    assert "(default: mmexplain_report.png)" in train["--plot"]


def test_python_m_mmexplain_help():
    res = subprocess.run(
        [sys.executable, "-m", "mmexplain", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0
    assert "--save-model" in res.stdout and "--target-key" in res.stdout


# ----------------------------------------------------------------------------
# regression (issue 22)
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def regression_npz(tmp_path_factory):
    from mmexplain.datasets import make_multimodal_regression

    d = tmp_path_factory.mktemp("reg")
    X, y = make_multimodal_regression(
        160, informativeness=[40.0, 10.0], bias=150.0, random_state=0
    )
    np.savez(d / "reg.npz", **X, y=y)
    return d / "reg.npz", X, y


def test_train_detects_a_regression_and_reports_the_python_apis_numbers(
    regression_npz, capsys
):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import train_test_split

    from mmexplain import MultimodalRegressor

    path, X, y = regression_npz
    argv = ["--quiet", "train", "--data", path, "--epochs", "4", "--plot", ""]
    argv += ["--format", "json", "--explainers", "permutation,shapley"]
    rc, out, err = run(capsys, *argv, "--repeats", "2")
    assert rc == 0, err
    payload = json.loads(out)
    assert payload["task"] == "regression"
    assert "test R^2" in err and "regression (targets standardized)" in err
    # the same model and report through the Python API
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    ttr = TransformedTargetRegressor(
        regressor=make_pipeline(
            ModalityTransformer({m: StandardScaler() for m in X}),
            MultimodalRegressor(max_epochs=4, lr=1e-3, batch_size=64, random_state=0),
        ),
        transformer=StandardScaler(),
    ).fit(X_tr, y_tr)
    assert payload["score"] == pytest.approx(ttr.score(X_te, y_te), rel=1e-5)
    report = modality_report(
        ttr,
        X_te,
        y_te,
        explainers=["permutation", "shapley"],
        n_repeats=2,
        random_state=0,
        show_progress=False,
    )
    for name, expl in report.items():
        got = payload["explainers"][name]
        assert got["params"]["unwrapped"] == ["TransformedTargetRegressor", "Pipeline"]
        for j, m in enumerate(expl.modalities):
            assert got["shares"][m] == pytest.approx(expl.shares[j], rel=1e-5, abs=1e-5)
    assert payload["explainers"]["shapley"]["params"]["value"] == "prediction"


def test_task_option_overrides_the_detection(regression_npz, small, capsys):
    path = regression_npz[0]
    rc, _, err = run(
        capsys,
        "--quiet",
        "train",
        "--data",
        path,
        "--task",
        "classification",
        "--epochs",
        "1",
        "--plot",
        "",
    )
    assert rc == 2 and err.startswith("error:"), err  # float targets are no labels
    rc, _, err = run(
        capsys,
        "--quiet",
        "train",
        "--data",
        small[0] / "data.npz",
        "--task",
        "regression",
        "--epochs",
        "1",
        "--plot",
        "",
    )
    assert rc == 2 and "real numbers" in err, err  # string labels are no targets


def test_regression_model_file_round_trip(regression_npz, tmp_path, capsys):
    """train --save-model on a regression, then explain: same score, same report."""
    path = regression_npz[0]
    model = tmp_path / "reg.mmx"
    common = ["--plot", "", "--format", "json", "--explainers", "permutation"]
    rc, out, err = run(
        capsys,
        "--quiet",
        "train",
        "--data",
        path,
        "--epochs",
        "3",
        "--save-model",
        model,
        "--test-size",
        "0.5",
        *common,
    )
    assert rc == 0, err
    trained = json.loads(out)
    pipe = load_model(model)
    assert type(pipe).__name__ == "TransformedTargetRegressor"
    rc, out, err = run(capsys, "--quiet", "explain", model, path, *common)
    assert rc == 0, err
    explained = json.loads(out)
    X, y = regression_npz[1], regression_npz[2]
    assert explained["score"] == pytest.approx(pipe.score(X, y), rel=1e-6)
    assert list(explained["explainers"]["permutation"]["shares"]) == ["a", "b"]
    assert trained["explainers"]["permutation"]["params"]["scoring"] == "loss"
