import pickle

import numpy as np
import pytest

from mmexplain.__main__ import main


def test_cli_train_then_explain(tmp_path, capsys):
    plot = tmp_path / "report.png"
    model = tmp_path / "model.pkl"
    rc = main(
        [
            "--quiet",
            "--repeats",
            "2",
            "--plot",
            str(plot),
            "train",
            "--epochs",
            "3",
            "--save-model",
            str(model),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "6 modalities" in out and "test accuracy" in out
    for m in ("fourier", "profile", "karhunen", "pixel", "zernike", "morphological"):
        assert m in out
    rows = [
        line
        for line in out.splitlines()
        if line.split()[:1]
        and line.split()[0]
        in ("fourier", "pixel", "zernike", "profile", "karhunen", "morphological")
    ]
    mu = [float(r.split()[2]) for r in rows]
    assert len(mu) == 6 and sum(mu) == pytest.approx(100, abs=0.2)
    assert plot.stat().st_size > 10_000
    # explain the saved model on an npz of (standardized-at-train-time is not needed) raw modalities
    with open(model, "rb") as fh:
        clf = pickle.load(fh)
    rng = np.random.default_rng(0)
    data = {
        m: rng.normal(size=(40, *shape)).astype(np.float32)
        for m, shape in clf.input_shapes_.items()
    }
    data["y"] = rng.integers(0, 10, 40)
    npz = tmp_path / "data.npz"
    np.savez(npz, **data)
    rc = main(
        ["--quiet", "--repeats", "2", "--plot", "", "explain", str(model), str(npz)]
    )
    assert rc == 0
    assert "score on" in capsys.readouterr().out
    np.savez(npz, **{k: v for k, v in data.items() if k != "y"})
    assert main(["--quiet", "--plot", "", "explain", str(model), str(npz)]) == 2


def test_cli_default_runs_with_no_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["mmexplain"])
    # the real default trains 30 epochs; check the defaults wire through
    from mmexplain import __main__ as cli

    args = cli._parser().parse_args([])
    assert args.command is None and args.plot == "mmexplain_report.png"
    assert main(["--quiet", "--repeats", "2", "train", "--epochs", "1"]) == 0
    assert (tmp_path / "mmexplain_report.png").exists()
