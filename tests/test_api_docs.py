"""The API reference is written for users: every parameter documented, pages that fit.

* Every public class (its constructor) and every public function documents
  each parameter of its signature in its NumPy ``Parameters`` section, and
  documents no parameter it does not have.
* The class pages (``doc/_templates/autosummary/class.rst`` with the member
  lists that ``doc/sphinxext/mmexplain_api.py`` computes) show the methods a
  user calls, inherited from skorch and scikit-learn included, and hide the
  hooks skorch calls internally.
* ``predict``, ``predict_proba`` and ``score`` of the estimators have
  ``Returns`` sections.
* The intersphinx inventories under ``doc/_inventories`` are local (the
  docs build has no network), valid, and hold the names the docs link to.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import zlib
from pathlib import Path

import pytest

import mmexplain
from mmexplain.discovery import public_classes

DOC = Path(__file__).resolve().parents[1] / "doc"


def _load(path: Path):
    """A module of ``doc/`` (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)  # conf.py imports it by name
    spec.loader.exec_module(module)
    return sys.modules[path.stem]


mmexplain_api = _load(DOC / "sphinxext" / "mmexplain_api.py")


# ----------------------------------------------------------------------------
# a small NumPy-docstring parser: the names of a section's entries
# ----------------------------------------------------------------------------
def section_lines(doc: str, title: str) -> list[str]:
    """The lines of the section ``title`` (underlined with dashes) of ``doc``."""
    lines = doc.splitlines()
    out: list[str] = []
    inside = False
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip())
        if underline and line.strip():
            inside = line.strip() == title
            continue
        if re.fullmatch(r"-{3,}", line.strip()):
            continue
        if inside:
            out.append(line)
    return out


def documented_parameters(doc: str) -> set[str]:
    """Entry names of the ``Parameters`` section, ``*`` stripped.

    An entry is an unindented line ``name : type``, ``name`` or
    ``a, b, **kwargs : type``; its description is indented.
    """
    names: set[str] = set()
    for line in section_lines(doc, "Parameters"):
        if line.strip() and not line[0].isspace():
            head = line.split(" :")[0]
            names.update(part.strip().lstrip("*") for part in head.split(","))
    names.discard("")
    return names


def test_the_parser_reads_numpy_parameter_sections():
    doc = inspect.cleandoc(
        """Summary.

        Parameters
        ----------
        a : int
            The a. Not an entry: b : str
        b, c : float, default=1
        **kwargs
            More.

        Returns
        -------
        d : int
        """
    )
    assert documented_parameters(doc) == {"a", "b", "c", "kwargs"}
    assert section_lines(doc, "Returns") == ["d : int"]
    assert documented_parameters("No sections.") == set()


# ----------------------------------------------------------------------------
# every parameter of every public class and function
# ----------------------------------------------------------------------------
def _public_modules() -> list[str]:
    names = ["mmexplain"]
    for info in pkgutil.iter_modules(mmexplain.__path__):
        if not info.name.startswith("_"):
            names.append(f"mmexplain.{info.name}")
    return names


def public_objects() -> dict[str, object]:
    """Every public class and function, by its shortest public path."""
    found: dict[int, tuple[str, object]] = {
        id(cls): (path, cls) for path, cls in public_classes().items()
    }
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("mmexplain"):
                continue
            path = f"{module_name}.{name}"
            old = found.get(id(obj))
            if old is None or len(path) < len(old[0]):
                found[id(obj)] = (path, obj)
    return dict(sorted(found.values(), key=lambda kv: kv[0]))


def signature_parameters(obj: object) -> list[str]:
    """The parameter names of a function, or of a class's constructor (no self)."""
    if inspect.isclass(obj):
        if obj.__init__ is object.__init__:  # e.g. a NamedTuple: its __new__
            return list(inspect.signature(obj).parameters)
        params = list(inspect.signature(obj.__init__).parameters)[1:]
    else:
        params = list(inspect.signature(obj).parameters)
    return params


def test_public_objects_are_found():
    objects = public_objects()
    assert len(objects) > 80
    assert objects["mmexplain.MultimodalClassifier"] is mmexplain.MultimodalClassifier
    assert "mmexplain.metrics.mean_iou" in objects
    assert "mmexplain.report.modality_report" in objects
    params = signature_parameters(mmexplain.MultimodalClassifier)
    assert params[:2] == ["module", "balancer"] and params[-1] == "kwargs"


def test_every_parameter_is_documented_and_no_documented_one_is_stale():
    problems = []
    for path, obj in public_objects().items():
        params = signature_parameters(obj)
        documented = documented_parameters(inspect.getdoc(obj) or "")
        missing = [p for p in params if p not in documented]
        stale = sorted(documented - set(params))
        if missing:
            problems.append(f"{path}: Parameters lacks {missing}")
        if stale:
            problems.append(f"{path}: Parameters documents {stale}, not in signature")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------
# class pages: the user's methods, not skorch's hooks
# ----------------------------------------------------------------------------
USER_METHODS = (
    "fit",
    "partial_fit",
    "predict",
    "predict_proba",
    "score",
    "save_params",
    "load_params",
    "get_params",
    "set_params",
    "initialize",
)


@pytest.mark.parametrize(
    "cls", [mmexplain.MultimodalClassifier, mmexplain.MultimodalSegmenter]
)
def test_estimator_pages_show_the_users_methods_and_hide_skorchs_hooks(cls):
    methods, attributes = mmexplain_api.shown_members(cls)
    for name in USER_METHODS:
        assert name in methods, f"{cls.__name__} page lacks {name}"
    assert "history" in attributes
    for name in (
        "get_iterator",
        "train_step_single",
        "on_epoch_end",
        "on_epoch_begin",
        "get_split_datasets",
        "run_single_epoch",
        "infer",
        "get_loss",
        "check_data",
        "get_dataset",
        "initialize_module",
        "notify_balancer",
        "check_is_fitted",
    ):
        assert name not in methods, f"{cls.__name__} page shows skorch's {name}"
    assert not [m for m in methods if m.startswith("_")]


def test_hidden_methods_are_an_explicit_list_of_real_methods():
    # every hidden name is a method some public class has: no stale entries
    every = {
        name
        for cls in public_classes().values()
        for name, _ in inspect.getmembers(cls, callable)
    }
    stale = sorted(set(mmexplain_api.INTERNAL_METHODS) - every)
    assert not stale, stale
    assert not set(mmexplain_api.INTERNAL_METHODS) & set(USER_METHODS)


def test_other_classes_keep_their_own_methods_and_gain_get_set_params():
    from mmexplain.balancers import ModalityDropout
    from mmexplain.explainers import PermutationModalityImportance

    methods, _ = mmexplain_api.shown_members(PermutationModalityImportance)
    assert {"explain", "fit", "score", "get_params", "set_params"} <= set(methods)
    methods, _ = mmexplain_api.shown_members(ModalityDropout)
    assert {"get_params", "set_params"} <= set(methods)
    # a dict subclass shows its own methods, not the dict's
    methods, _ = mmexplain_api.shown_members(mmexplain.ModalityDict)
    assert "keys" not in methods and "pop" not in methods


def test_conf_passes_the_member_lists_to_the_class_template():
    conf = {}
    source = (DOC / "conf.py").read_text()
    assert "mmexplain_api.autosummary_context()" in source
    template = (DOC / "_templates" / "autosummary" / "class.rst").read_text()
    assert "shown_methods" in template and "shown_attributes" in template
    context = mmexplain_api.autosummary_context()
    assert context["shown_methods"]["mmexplain.MultimodalClassifier"] == list(
        mmexplain_api.shown_members(mmexplain.MultimodalClassifier)[0]
    )
    # also under every public path a class is documented at
    assert "mmexplain.estimators.MultimodalClassifier" in context["shown_methods"]
    del conf


@pytest.mark.parametrize(
    "cls", [mmexplain.MultimodalClassifier, mmexplain.MultimodalSegmenter]
)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_estimator_methods_have_returns_sections(cls, method):
    doc = inspect.getdoc(getattr(cls, method)) or ""
    assert [line for line in section_lines(doc, "Returns") if line.strip()], (
        f"{cls.__name__}.{method} has no Returns section"
    )
    assert documented_parameters(doc) >= {"X"}


# ----------------------------------------------------------------------------
# intersphinx: local inventories
# ----------------------------------------------------------------------------
INVENTORIES = DOC / "_inventories"


def _load_inventory(path: Path) -> dict[str, dict[str, str]]:
    """``{role: {name: uri}}`` of a Sphinx inventory (version 2, zlib)."""
    raw = path.read_bytes()
    head = raw.split(b"\n", 4)
    assert head[0] == b"# Sphinx inventory version 2", head[0]
    assert head[3].startswith(b"# The remainder of this file is compressed")
    out: dict[str, dict[str, str]] = {}
    for line in zlib.decompress(head[4]).decode().splitlines():
        name, role, priority, uri, display = line.split(" ", 4)
        assert priority.lstrip("-").isdigit() and display
        out.setdefault(role, {})[name] = uri
    return out


@pytest.mark.parametrize(
    "project, names",
    [
        ("python", [("py:class", "dict"), ("py:exception", "ValueError")]),
        ("numpy", [("py:class", "numpy.ndarray")]),
        (
            "sklearn",
            [
                ("py:class", "sklearn.base.BaseEstimator"),
                ("py:class", "sklearn.pipeline.Pipeline"),
            ],
        ),
        (
            "skorch",
            [
                ("py:class", "skorch.NeuralNetClassifier"),
                ("py:class", "skorch.net.NeuralNet"),
            ],
        ),
        ("torch", [("py:class", "torch.nn.Module"), ("py:class", "torch.Tensor")]),
        ("shap", [("py:class", "shap.Explanation")]),
    ],
)
def test_local_inventories_hold_the_linked_names(project, names):
    path = INVENTORIES / f"{project}.inv"
    assert path.is_file(), f"no local inventory for {project}"
    inv = _load_inventory(path)
    for role, name in names:
        assert name in inv.get(role, {}), f"{project}.inv lacks {role} {name}"
    for uris in inv.values():  # pages of the project, relative to its base URL
        for uri in uris.values():
            assert "#" in uri and "://" not in uri and "$" not in uri, uri


def test_inventories_are_what_the_script_writes():
    """``doc/_inventories`` is up to date with ``doc/data/make_inventories.py``."""
    module = _load(DOC / "data" / "make_inventories.py")
    for project in module.PROJECTS:
        expected = {}
        for name, role, uri in module.entries(project):
            expected.setdefault(role, {})[name] = uri
        assert _load_inventory(INVENTORIES / f"{project}.inv") == expected, project


def test_conf_uses_the_local_inventories():
    namespace = {"__file__": str(DOC / "conf.py")}
    exec(compile((DOC / "conf.py").read_text(), "conf.py", "exec"), namespace)  # noqa: S102
    assert "sphinx.ext.intersphinx" in namespace["extensions"]
    mapping = namespace["intersphinx_mapping"]
    assert sorted(mapping) == sorted(
        ["python", "numpy", "sklearn", "skorch", "torch", "shap"]
    )
    for project, (url, path) in mapping.items():
        assert url.startswith("https://") and url.endswith("/")
        assert Path(path) == INVENTORIES / f"{project}.inv"  # local: no network
        assert Path(path).is_file()
    # the class pages get their member lists
    assert namespace["autosummary_context"] == mmexplain_api.autosummary_context()
