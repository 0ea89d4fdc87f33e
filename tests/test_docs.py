"""Checks of the documentation in ``doc/`` that need no Sphinx build.

* The Python snippets of the user guide run as written: every ```python block
  of the pages in ``doc/user_guide/`` listed in the toctree of its
  ``index.md``, page after page, in one namespace. Blocks meant to be read only use another fence
  (```{code-block} python, ```text, ```bash).
* The API reference (``doc/api.rst``) documents every name in
  ``mmexplain.__all__`` and in the ``__all__`` of each public module.
* The changelog's sections carry versions, the newest being the package's.
* The ```python blocks of README.md run as written, in order, in one
  namespace (``README_SKIPPED`` names any block left out, with its reason).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

DOC = Path(__file__).resolve().parents[1] / "doc"
GUIDE = DOC / "user_guide"
API = DOC / "api.rst"


def _guide_pages() -> list[Path]:
    """The user guide pages in their toctree order (those in doc/user_guide/).

    Pages elsewhere that the toctree links to (e.g. ``doc/scaling_out_dask.md``,
    whose snippets need a cluster) are not run here.
    """
    index = (GUIDE / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, re.S)
    assert toctree, "doc/user_guide/index.md has no toctree"
    pages = []
    for line in toctree.group(1).splitlines():
        line = line.strip()
        if line and not line.startswith(":") and not line.startswith(".."):
            pages.append((GUIDE / line).with_suffix(".md").resolve())
    return pages


def test_user_guide_pages_exist():
    pages = _guide_pages()
    assert len(pages) >= 8
    for page in pages:
        assert page.is_file(), f"toctree entry {page} has no page"


def test_user_guide_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    ns: dict = {}
    n_blocks = 0
    for page in _guide_pages():
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            n_blocks += 1
            code = compile(block, str(page), "exec")
            exec(code, ns)  # noqa: S102 - our own documentation
    assert n_blocks >= 15
    # the headline objects of the guide exist and hold what the text says
    assert abs(ns["mu"].utilization.sum() - 100) < 1e-6
    assert ns["search"].best_params_["balancer__p"] in (0.1, 0.3, 0.5)
    assert len(ns["tracked"].history[:, "utilization"]) == 3
    # the model-selection search picks among models better than chance
    majority = max(ns["y"].mean(), 1 - ns["y"].mean())
    accs = list(ns["search"].cv_results_["mean_test_acc"])  # p = 0.1, 0.3, 0.5
    assert min(accs) > majority + 0.1
    assert accs == sorted(accs, reverse=True)  # "more dropout costs accuracy"
    # the UtilizationTarget snippet reaches its target on the training data
    target = ns["target_clf"].balancer_.target
    shares = (
        ns["PermutationModalityImportance"](n_repeats=5, random_state=0)
        .explain(ns["target_clf"], ns["X"], ns["y"])
        .shares_by_modality
    )
    assert all(abs(shares[m] - 100 * t) <= 10 for m, t in target.items()), shares


def _public_modules() -> list[str]:
    import mmexplain

    names = ["mmexplain"]
    for info in pkgutil.iter_modules(mmexplain.__path__):
        if not info.name.startswith("_"):
            names.append(f"mmexplain.{info.name}")
    return names


def _documented_objects() -> tuple[list[object], str]:
    """Objects listed in the autosummary tables of doc/api.rst, and its text."""
    text = API.read_text()
    objects = []
    module = None
    in_table = False
    for line in text.splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = importlib.import_module(current.group(1))
            continue
        if line.startswith(".. autosummary::"):
            in_table = True
            continue
        if in_table:
            if not line.strip() or line.strip().startswith(":"):
                continue
            if not line.startswith("   "):
                in_table = False
                continue
            assert module is not None, "autosummary before any currentmodule"
            objects.append(getattr(module, line.strip()))
    return objects, text


@pytest.mark.parametrize("module_name", _public_modules())
def test_api_reference_lists_every_public_name(module_name):
    module = importlib.import_module(module_name)
    public = getattr(module, "__all__", None)
    assert public is not None, f"{module_name} has no __all__"
    documented, text = _documented_objects()
    assert f"``{module_name}``" in text, f"doc/api.rst has no section for {module_name}"
    ids = {id(obj) for obj in documented}
    missing = []
    for name in public:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if id(obj) not in ids:
                missing.append(name)
        elif name not in text:  # constants: named in the text of the page
            missing.append(name)
    assert not missing, f"doc/api.rst does not document {module_name}: {missing}"


def test_api_reference_entries_have_docstrings():
    """Every documented class and function has a docstring (the page is empty otherwise)."""
    documented, _ = _documented_objects()
    undocumented = [
        f"{obj.__module__}.{obj.__qualname__}"
        for obj in documented
        if not (inspect.getdoc(obj) or "").strip()
    ]
    assert not undocumented, f"no docstring: {undocumented}"


def test_changelog_sections_carry_versions_and_the_newest_is_the_package_version():
    """``## X.Y.Z (YYYY-MM-DD)`` sections, newest first; an ``## Unreleased`` may lead."""
    import mmexplain

    heads = re.findall(r"^## (.*)$", (DOC / "changelog.md").read_text(), re.M)
    if heads and heads[0] == "Unreleased":
        heads = heads[1:]
    parsed = [
        re.fullmatch(r"(\d+)\.(\d+)\.(\d+) \((\d{4}-\d\d-\d\d)\)", h) for h in heads
    ]
    assert heads and all(parsed), f"changelog sections without a version: {heads}"
    versions = [tuple(int(p) for p in m.groups()[:3]) for m in parsed]
    dates = [m.group(4) for m in parsed]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(
        versions
    )
    assert dates == sorted(dates, reverse=True)
    assert heads[0].split()[0] == mmexplain.__version__


#: README ```python blocks not run here, by their first line, with the reason.
#: A block belongs here only when it needs a GPU or runs for minutes; none does now.
README_SKIPPED: dict[str, str] = {}


def _readme_blocks() -> list[str]:
    text = (DOC.parent / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    """Every ```python block of README.md runs as written, in order, in one namespace."""
    import torch

    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread (as the examples do)
    ns: dict = {"__name__": "__main__"}
    ran = []
    try:
        for block in _readme_blocks():
            first = block.splitlines()[0]
            if first in README_SKIPPED:
                continue
            exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own README
            ran.append(first)
            if len(ran) == 1:  # the Usage block: its classifier, before later ones
                usage_score = ns["clf"].score(ns["X_test"], ns["y_test"])
    finally:
        torch.set_num_threads(before)
    assert len(ran) >= 3 and not set(README_SKIPPED) - {
        b.splitlines()[0] for b in _readme_blocks()
    }
    # what the blocks say they compute
    assert usage_score > 0.9
    assert ns["clf"].score(ns["X_test"], ns["y_test"]) > 0.8  # trained on `tiles`
    assert ns["search"].best_params_["balancer__p"] in (0.1, 0.3, 0.5)
    assert abs(ns["expl"].utilization.sum() - 100) < 1e-6
    assert len(ns["tiles"]) == len(ns["y_train"])
