"""The ``[test]`` extra installs everything the suite imports.

A fresh virtual environment with ``pip install -e ".[test]"`` must run every
test, example and benchmark smoke run: a module imported here but installed
only by another extra (or by hand) is a failure on a new machine that a
machine with leftovers would hide. So every third-party import under
``tests/``, ``examples/`` and ``benchmarks/`` must be provided by
``install_requires`` + ``[test]`` (directly or as a dependency of one of them),
and ``[dev]`` must contain ``[test]``.
"""

from __future__ import annotations

import ast
import configparser
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tests", "examples", "benchmarks")


def _requirements(field: str, extra: str | None = None) -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    section = "options" if extra is None else "options.extras_require"
    text = cfg[section][field if extra is None else extra]
    return {
        canonicalize_name(Requirement(line).name)
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    }


def _closure(names: set[str]) -> set[str]:
    """The distributions that installing ``names`` installs (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen


def _imported_modules() -> dict[str, list[str]]:
    """Top-level module name -> files importing it (anywhere in the file)."""
    local = {p.stem for d in SCANNED for p in (ROOT / d).rglob("*.py")}
    local |= {p.name for d in SCANNED for p in (ROOT / d).rglob("*") if p.is_dir()}
    found: dict[str, list[str]] = {}
    for d in SCANNED:
        for path in sorted((ROOT / d).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in local:
                        continue
                    if top in ("mmexplain", "__future__"):
                        continue
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_test_extra_provides_every_import_of_tests_examples_and_benchmarks():
    provided = _closure(_requirements("install_requires") | _requirements("", "test"))
    owners = md.packages_distributions()
    missing = {}
    for module, files in _imported_modules().items():
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if not dists:
            missing[module] = f"not installed at all (imported by {files[0]})"
        elif not dists & provided:
            missing[module] = (
                f"installed here by {sorted(dists)}, which setup.cfg's install_requires "
                f"and [test] do not install (imported by {files[0]})"
            )
    assert not missing, missing


def test_dev_extra_contains_test_extra():
    assert _requirements("", "test") <= _requirements("", "dev")


def test_readme_commands_are_what_ci_runs():
    """``.ci/run`` runs the README's install-and-test and docs commands verbatim."""
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(?:TEST|DOCS)_COMMAND='(.+)'$", ci, flags=re.M)
    assert len(commands) == 2, "'.ci/run' defines TEST_COMMAND and DOCS_COMMAND"
    for command in commands:
        assert f"\n{command}\n" in readme, f"README.md does not show: {command}"
    assert "python3 -m venv" in ci  # a fresh environment on every run
