"""Build the sdist and the wheel, and check what a user would install.

Run by ``.ci/run`` (needs ``build`` and ``twine``): ``python -m build`` must
finish without setuptools warnings, ``twine check`` must pass, the file names
must carry ``mmexplain.__version__``, and the wheel must hold every module of
the package tracked by git, ``py.typed`` and the bundled data, and nothing
from ``tests/``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import mmexplain

    version = mmexplain.__version__
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", out, str(ROOT)],
            capture_output=True,
            text=True,
        )
        log = run.stdout + run.stderr
        if run.returncode != 0:
            print(log[-4000:])
            return 1
        if "!!" in log or "SetuptoolsDeprecationWarning" in log:
            problems.append("python -m build printed setuptools warnings")
        dist = sorted(pathlib.Path(out).iterdir())
        names = [p.name for p in dist]
        wheel = [p for p in dist if p.suffix == ".whl"]
        sdist = [p for p in dist if p.name.endswith(".tar.gz")]
        if len(wheel) != 1 or len(sdist) != 1:
            problems.append(f"expected one wheel and one sdist, got {names}")
        for name in names:
            if f"-{version}" not in name:
                problems.append(f"{name} does not carry version {version}")
        twine = subprocess.run(
            [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
            capture_output=True,
            text=True,
        )
        if twine.returncode != 0:
            problems.append("twine check failed:\n" + twine.stdout + twine.stderr)
        if wheel:
            inside = set(zipfile.ZipFile(wheel[0]).namelist())
            tracked = subprocess.run(
                ["git", "ls-files", "mmexplain"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            wanted = [
                f
                for f in tracked
                if f.endswith(".py") or f.endswith("py.typed") or "/datasets/data/" in f
            ]
            missing = [f for f in wanted if f not in inside]
            if missing:
                problems.append(f"the wheel lacks {missing}")
            stray = [f for f in inside if f.startswith("tests/")]
            if stray:
                problems.append(f"the wheel holds test files {stray[:5]}")
        print(f"check_dist: built {', '.join(names)}")
    for p in problems:
        print(f"check_dist: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
