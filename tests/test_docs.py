"""The Python snippets of the user guide run as written, in order."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

GUIDE = Path(__file__).resolve().parents[1] / "doc" / "index.md"


def test_user_guide_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) >= 5
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), ns)  # noqa: S102 - our own documentation
    assert abs(ns["mu"].utilization.sum() - 100) < 1e-6
    assert ns["search"].best_params_["balancer__p"] in (0.1, 0.3, 0.5)
