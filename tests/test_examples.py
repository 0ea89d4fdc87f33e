"""Smoke tests of the example scripts in ``examples/``.

Each example runs as a subprocess (``sys.executable path``) in QUICK mode
(``MMEXPLAIN_QUICK=1``: a few epochs on little data) with its figures written
to a temporary directory (``MMEXPLAIN_EXAMPLES_OUT``); the test checks the
exit code and that the expected PNG files were written. The numbers the
examples print are not checked: QUICK mode is too short for them to mean
anything.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

#: example script -> figures it must write
EXPECTED = {
    "quickstart.py": [
        "quickstart_permutation.png",
        "quickstart_explainers.png",
        "quickstart_shap_beeswarm.png",
    ],
    "which_explainer.py": [
        "which_explainer_shares.png",
        "which_explainer_rates_runtime.png",
        "which_explainer_shap_bar.png",
        "which_explainer_shap_waterfall.png",
    ],
    "grid_search_balance.py": ["grid_search_balance.png"],
    "segmentation_utilization.py": [
        "segmentation_utilization.png",
        "segmentation_per_class_iou.png",
        "segmentation_class_utilization.png",
        "segmentation_pixel_maps.png",
        "segmentation_rgb_blackout.png",
    ],
    "mu_over_epochs.py": ["mu_over_epochs.png", "mu_over_epochs_accuracy.png"],
    "blackout_sweep.py": ["blackout_sweep.png"],
    "how_sure.py": [
        "how_sure_intervals_classes.png",
        "how_sure_interactions.png",
        "how_sure_spread.png",
    ],
    "duplicated_modality.py": [
        "duplicated_modality.png",
        "duplicated_modality_conditional.png",
    ],
    "colored_digits_conditional.py": ["colored_digits_conditional.png"],
    "noise_robustness.py": ["noise_robustness.png"],
    "greedy_rebalancing.py": [
        "greedy_rebalancing_speed.png",
        "greedy_rebalancing_accuracy.png",
    ],
    "utilization_target.py": [
        "utilization_target_mu.png",
        "utilization_target_noise.png",
        "utilization_target_history.png",
    ],
    "attribution_regularization.py": [
        "attribution_regularization_history.png",
        "attribution_regularization_shares.png",
    ],
    "ogm_ge_and_valuation.py": [
        "ogm_ge_and_valuation.png",
        "ogm_ge_coefficients.png",
    ],
    "out_of_core.py": ["out_of_core_explainers.png"],
    "regression_utilization.py": [
        "regression_known_truth.png",
        "regression_diabetes.png",
    ],
}

TIMEOUT_S = 180
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

Run = tuple[subprocess.Popen, Path, Path]  # process, output directory, log file


def _start(script: str, out: Path) -> Run:
    env = {
        **os.environ,
        "MMEXPLAIN_QUICK": "1",
        "MMEXPLAIN_EXAMPLES_OUT": str(out),
        "MPLBACKEND": "Agg",
        # one thread per process: the scripts run side by side, and OpenMP
        # threads competing for busy cores are many times slower
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = out / "output.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES_DIR / script)],
            cwd=out,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return proc, out, log


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """``run(script) -> (process, output dir, log)``, starting it if needed.

    The first call starts every example at once: most of each run is spent
    importing torch and friends, so running them side by side roughly halves
    the wall time on a 2-core machine. Under pytest-xdist each worker starts
    only the examples it is given.
    """
    runs: dict[str, Run] = {}
    lazy = bool(os.environ.get("PYTEST_XDIST_WORKER"))

    def run(script: str) -> Run:
        for name in [script] if lazy else list(EXPECTED):
            if name not in runs:
                out = tmp_path_factory.mktemp(name.removesuffix(".py"))
                runs[name] = _start(name, out)
        return runs[script]

    yield run
    for proc, _, _ in runs.values():  # e.g. after a failure with -x
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_example_is_smoke_tested_and_in_gallery_format():
    """Each script is listed above and has what sphinx-gallery needs."""
    scripts = sorted(
        p.name for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_")
    )
    assert scripts == sorted(EXPECTED)
    assert len(scripts) >= 12
    for name in scripts:
        source = (EXAMPLES_DIR / name).read_text()
        docstring = ast.get_docstring(ast.parse(source), clean=False)
        assert docstring, f"{name} has no module docstring"
        title, underline = docstring.strip("\n").splitlines()[:2]
        assert set(underline) == {"="} and len(underline) >= len(title), (
            f"{name}: the docstring must start with a title underlined by '='"
        )
        assert "\n# %%\n" in source, f"{name} has no '# %%' cells"
        for variable in ("MMEXPLAIN_QUICK", "MMEXPLAIN_EXAMPLES_OUT"):
            assert variable in source, f"{name} ignores {variable}"
        assert "matplotlib.use(" not in source, (
            f"{name} sets a backend; the gallery's scraper and MPLBACKEND choose it"
        )


@pytest.mark.parametrize("script", list(EXPECTED))
def test_example_runs_and_writes_figures(script, example_run):
    proc, out, log = example_run(script)
    try:
        returncode = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{script} did not finish within {TIMEOUT_S} s")
    output = log.read_text()
    assert returncode == 0, f"{script} exited with {returncode}:\n{output[-4000:]}"
    for name in EXPECTED[script]:
        figure = out / name
        assert figure.is_file(), f"{script} did not write {name}:\n{output[-2000:]}"
        assert figure.read_bytes()[:8] == PNG_SIGNATURE, f"{name} is not a PNG file"
    assert "done in" in output, output[-2000:]
