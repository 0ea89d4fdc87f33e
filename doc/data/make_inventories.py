"""Write the intersphinx inventories of ``doc/_inventories/`` (run by hand).

The documentation links names of Python, NumPy, scikit-learn, skorch,
PyTorch and shap to those projects' documentation (``intersphinx_mapping`` in
``doc/conf.py``). The docs build has no network, and no installed package
ships its project's ``objects.inv`` (they are build outputs of each
project's docs, not in wheels or sdists), so this script writes small
inventories in Sphinx's format (version 2, zlib-compressed) holding only the
names these docs refer to: base classes of the public classes, the types of
the NumPy-style docstrings (``numpydoc_xref_aliases``, and the glossary terms
numpydoc links ``array-like`` and ``sequence`` to) and the names of the
guide's roles. Each entry points at the page where the project's own
documentation describes that object, under its stable URL.

An alias (e.g. ``torch.nn.modules.module.Module``, the path autodoc writes
for a base class, for ``torch.nn.Module``) points at the same page as the
name its project documents; the script checks, with the packages installed,
that every name exists and that an alias is the same object.

Usage, from the repository root::

    python doc/data/make_inventories.py

then commit ``doc/_inventories/*.inv``.
"""

from __future__ import annotations

import importlib
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "_inventories"

#: project -> (title, base URL, installed package or None, entries)
#: entry: (name, role, page#anchor relative to the base URL; '$' = the name)
PROJECTS: dict[str, tuple[str, str, str | None, list[tuple[str, str, str]]]] = {
    "python": (
        "Python",
        "https://docs.python.org/3/",
        None,
        [
            ("dict", "py:class", "library/stdtypes.html#$"),
            ("list", "py:class", "library/stdtypes.html#$"),
            ("tuple", "py:class", "library/stdtypes.html#$"),
            ("str", "py:class", "library/stdtypes.html#$"),
            ("int", "py:class", "library/functions.html#$"),
            ("float", "py:class", "library/functions.html#$"),
            ("bool", "py:class", "library/functions.html#$"),
            ("object", "py:class", "library/functions.html#$"),
            ("callable", "py:function", "library/functions.html#$"),
            ("None", "py:data", "library/constants.html#$"),
            ("ValueError", "py:exception", "library/exceptions.html#$"),
            ("TypeError", "py:exception", "library/exceptions.html#$"),
            ("RuntimeWarning", "py:exception", "library/exceptions.html#$"),
            ("FloatingPointError", "py:exception", "library/exceptions.html#$"),
            ("os.PathLike", "py:class", "library/os.html#$"),
            ("pathlib.Path", "py:class", "library/pathlib.html#$"),
            ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
            # glossary terms numpydoc links the words of docstring types to
            *[
                (term, "std:term", f"glossary.html#term-{term}")
                for term in ("sequence", "iterable", "generator", "mapping")
            ],
        ],
    ),
    "numpy": (
        "NumPy",
        "https://numpy.org/doc/stable/",
        "numpy",
        [
            ("numpy.ndarray", "py:class", "reference/generated/$.html#$"),
            ("numpy.memmap", "py:class", "reference/generated/$.html#$"),
            ("numpy.dtype", "py:class", "reference/generated/$.html#$"),
            ("numpy.random.RandomState", "py:class", "reference/random/legacy.html#$"),
            ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
            ("numpy.savez", "py:function", "reference/generated/$.html#$"),
            (
                "numpy.savez_compressed",
                "py:function",
                "reference/generated/$.html#$",
            ),
            ("numpy.load", "py:function", "reference/generated/$.html#$"),
            ("array_like", "std:term", "glossary.html#term-array_like"),
        ],
    ),
    "sklearn": (
        "scikit-learn",
        "https://scikit-learn.org/stable/",
        "sklearn",
        [
            (name, role, "modules/generated/$.html#$")
            for name, role in [
                ("sklearn.base.BaseEstimator", "py:class"),
                ("sklearn.base.TransformerMixin", "py:class"),
                ("sklearn.base.ClassifierMixin", "py:class"),
                ("sklearn.base.clone", "py:function"),
                ("sklearn.pipeline.Pipeline", "py:class"),
                ("sklearn.pipeline.make_pipeline", "py:function"),
                ("sklearn.compose.ColumnTransformer", "py:class"),
                ("sklearn.compose.make_column_selector", "py:class"),
                ("sklearn.model_selection.GridSearchCV", "py:class"),
                ("sklearn.model_selection.cross_val_score", "py:function"),
                ("sklearn.model_selection.train_test_split", "py:function"),
                ("sklearn.inspection.permutation_importance", "py:function"),
                ("sklearn.preprocessing.StandardScaler", "py:class"),
                ("sklearn.preprocessing.MinMaxScaler", "py:class"),
                ("sklearn.datasets.load_digits", "py:function"),
                ("sklearn.exceptions.NotFittedError", "py:class"),
                ("sklearn.utils.discovery.all_estimators", "py:function"),
                ("sklearn.utils.estimator_checks.check_estimator", "py:function"),
                ("sklearn.set_config", "py:function"),
            ]
        ],
    ),
    "skorch": (
        "skorch",
        "https://skorch.readthedocs.io/en/stable/",
        "skorch",
        [
            ("skorch.net.NeuralNet", "py:class", "net.html#$"),
            ("skorch.classifier.NeuralNetClassifier", "py:class", "classifier.html#$"),
            ("skorch.callbacks.Callback", "py:class", "callbacks.html#$"),
            ("skorch.dataset.ValidSplit", "py:class", "dataset.html#$"),
            ("skorch.history.History", "py:class", "history.html#$"),
        ],
    ),
    "torch": (
        "PyTorch",
        "https://docs.pytorch.org/docs/stable/",
        "torch",
        [
            ("torch.nn.Module", "py:class", "generated/$.html#$"),
            ("torch.nn.Linear", "py:class", "generated/$.html#$"),
            ("torch.nn.CrossEntropyLoss", "py:class", "generated/$.html#$"),
            ("torch.optim.Adam", "py:class", "generated/$.html#$"),
            ("torch.optim.SGD", "py:class", "generated/$.html#$"),
            ("torch.set_num_threads", "py:function", "generated/$.html#$"),
            ("torch.Tensor", "py:class", "tensors.html#$"),
            ("torch.device", "py:class", "tensor_attributes.html#$"),
            ("torch.utils.data.Dataset", "py:class", "data.html#$"),
            ("torch.utils.data.DataLoader", "py:class", "data.html#$"),
        ],
    ),
    "shap": (
        "SHAP",
        "https://shap.readthedocs.io/en/latest/",
        "shap",
        [
            ("shap.Explanation", "py:class", "generated/$.html#$"),
            *[
                (f"shap.plots.{name}", "py:function", "generated/$.html#$")
                for name in ("bar", "beeswarm", "scatter", "waterfall", "heatmap")
            ],
        ],
    ),
}

#: other public paths of documented objects -> the documented name
ALIASES = {
    "torch.nn.modules.module.Module": "torch.nn.Module",
    "torch.utils.data.dataset.Dataset": "torch.utils.data.Dataset",
    "torch.utils.data.dataloader.DataLoader": "torch.utils.data.DataLoader",
    "torch.nn.modules.loss.CrossEntropyLoss": "torch.nn.CrossEntropyLoss",
    "torch.optim.adam.Adam": "torch.optim.Adam",
    "skorch.NeuralNet": "skorch.net.NeuralNet",
    "skorch.NeuralNetClassifier": "skorch.classifier.NeuralNetClassifier",
    "skorch.callbacks.base.Callback": "skorch.callbacks.Callback",
    "shap._explanation.Explanation": "shap.Explanation",
}


def resolve(name: str) -> object:
    """The object a dotted name refers to (importing its module)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def entries(project: str) -> list[tuple[str, str, str]]:
    """The project's entries and its aliases, each checked against the package."""
    _, _, package, listed = PROJECTS[project]
    out = [(name, role, uri.replace("$", name)) for name, role, uri in listed]
    by_name = {name: (role, uri) for name, role, uri in listed}
    if package is not None:
        for name, role, _ in listed:
            if role.startswith("py:"):
                resolve(name)  # raises when the project has no such name
    for alias, name in ALIASES.items():
        if name in by_name and alias != name:
            if resolve(alias) is not resolve(name):
                raise ValueError(f"{alias} is not {name}")
            role, uri = by_name[name]
            out.append((alias, role, uri.replace("$", name)))
    return sorted(set(out))


def inventory(project: str) -> bytes:
    """The ``objects.inv`` bytes of one project."""
    title, _, package, _ = PROJECTS[project]
    if package is None:
        version = f"{sys.version_info.major}"
    else:
        version = importlib.import_module(package).__version__
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {title}\n"
        f"# Version: {version.split('+')[0]}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    lines = "".join(
        f"{name} {role} 1 {uri} -\n" for name, role, uri in entries(project)
    )
    return header + zlib.compress(lines.encode(), 9)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for project in PROJECTS:
        path = OUT / f"{project}.inv"
        path.write_bytes(inventory(project))
        print(f"wrote {path} ({len(entries(project))} names)")


if __name__ == "__main__":
    main()
