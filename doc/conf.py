"""Sphinx configuration of the mmexplain documentation.

Build (from the repository root, offline, no warnings allowed)::

    python -m pip install -c constraints.txt -e ".[docs]"
    python -m sphinx -W -b html doc doc/_build/html

The gallery (``examples/``) is executed by sphinx-gallery at build time; set
``MMEXPLAIN_QUICK=1`` for a fast build whose numbers are not meaningful.
``MMEXPLAIN_DOC_PLOT_GALLERY=0`` skips running the examples altogether (the
gallery pages then show the code without outputs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "sphinxext"))

import mmexplain_api  # noqa: E402  (doc/sphinxext: the members of the class pages)

import mmexplain  # noqa: E402

# -- project ---------------------------------------------------------------
project = "mmexplain"
author = "the mmexplain developers"
copyright = "the mmexplain developers, BSD-3-Clause"  # noqa: A001
version = release = mmexplain.__version__

# -- general ---------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.extlinks",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "data",  # scripts that regenerate the bundled data, not pages
    "sphinxext",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "auto_examples/*.codeobj.json",
    "**/*.pickle",
]
templates_path = ["_templates"]
default_role = "literal"
nitpicky = False
# Links to the documentation of Python, NumPy, scikit-learn, skorch, PyTorch and
# shap. The build has no network: each project's inventory is a local file,
# written by doc/data/make_inventories.py for the names these docs refer to,
# and the links point at the projects' stable URLs.
_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "sklearn": "https://scikit-learn.org/stable/",
    "skorch": "https://skorch.readthedocs.io/en/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "shap": "https://shap.readthedocs.io/en/latest/",
}
intersphinx_mapping = {
    name: (url, str(HERE / "_inventories" / f"{name}.inv"))
    for name, url in _INVENTORIES.items()
}
# the docstrings' References sections cite with :doi: and :arxiv:
extlinks = {
    "doi": ("https://doi.org/%s", "doi:%s"),
    "arxiv": ("https://arxiv.org/abs/%s", "arXiv:%s"),
}

# -- MyST (the Markdown pages) ----------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
# the class template lists the members mmexplain_api.shown_members chooses
autosummary_context = mmexplain_api.autosummary_context()
autosummary_imported_members = False
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "none"  # the NumPy docstrings state the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # the autosummary templates list members
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# types in Parameters / Returns link to their documentation; only the words
# below are links (numpydoc_xref_ignore = "all"), the rest stays plain text
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "RandomState": "numpy.random.RandomState",
    "Generator": "numpy.random.Generator",
    "Tensor": "torch.Tensor",
    "nn.Module": "torch.nn.Module",
    "Module": "torch.nn.Module",
    "Dataset": "torch.utils.data.Dataset",
    "DataLoader": "torch.utils.data.DataLoader",
    "device": "torch.device",
    "BaseEstimator": "sklearn.base.BaseEstimator",
    "Pipeline": "sklearn.pipeline.Pipeline",
    "NeuralNet": "skorch.net.NeuralNet",
    "NeuralNetClassifier": "skorch.classifier.NeuralNetClassifier",
    "Callback": "skorch.callbacks.Callback",
    "ModalityExplanation": "mmexplain.ModalityExplanation",
    "ModalityDict": "mmexplain.ModalityDict",
    "Balancer": "mmexplain.balancers.Balancer",
    "dict": "dict",
    "list": "list",
    "tuple": "tuple",
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "callable": "callable",
    "None": "None",
}
numpydoc_validation_checks: set[str] = set()

# -- sphinx-gallery ----------------------------------------------------------
# Every example runs at build time; its figures are captured by the matplotlib
# scraper. The examples write PNG files only when MMEXPLAIN_EXAMPLES_OUT is set
# (the smoke tests of tests/test_examples.py), never into the source tree here.
os.environ.pop("MMEXPLAIN_EXAMPLES_OUT", None)
os.environ.setdefault("MPLBACKEND", "Agg")
_plot_gallery = os.environ.get("MMEXPLAIN_DOC_PLOT_GALLERY", "1") not in ("0", "")

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # execute every example, not only plot_*.py
    "ignore_pattern": r"(^|/)_",
    "within_subsection_order": "mmexplain_gallery.ExampleOrder",
    "plot_gallery": _plot_gallery,
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib", "mmexplain_gallery.reset_torch"),
    "capture_repr": ("_repr_html_", "__repr__"),
    "ignore_repr_types": r"matplotlib|Axes|Figure|shap\.|Explanation|Callback",
    "show_memory": False,
    "min_reported_time": 5,
    # the summary page would load scripts from CDNs; each page shows its own time
    "write_computation_times": False,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "reference_url": {"mmexplain": None},
    "doc_module": ("mmexplain",),
    "backreferences_dir": None,
    "show_api_usage": False,
    "thumbnail_size": (400, 280),
    "default_thumb_file": None,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"mmexplain {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "bibliography": [], "changelog": []}
html_context = {"default_mode": "light"}


def _skip_generated_members(app, what, name, obj, skip, options):
    """Skip scikit-learn's metadata-routing methods (``set_<method>_request``,
    ``get_metadata_routing``).

    scikit-learn attaches them to every estimator subclass; their docstrings are
    scikit-learn's and refer to its own glossary.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if name == "get_metadata_routing":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_generated_members)
