"""doc/architecture.md as a contract: its recipes run as written, its layers hold.

* The ```python blocks of ``doc/architecture.md`` (a toy explainer,
  ``ModalityOcclusion``, and a toy balancer, ``ModalityNoise``) are executed
  here, in order, in one namespace: the page shows the code these tests run.
  The explainer must work on a fitted estimator, a plain ``nn.Module`` and a
  ``Pipeline``, give the closed-form result on a model that ignores a
  modality, and run unchanged under the engine's reductions (any
  ``batch_size``, a Dataset, two ``torch.distributed`` ranks). The balancer
  must train, validate its parameters before any epoch, and work with
  ``clone``, ``set_params`` and ``GridSearchCV`` over ``balancer__std``.
  Neither shows up in :func:`mmexplain.discovery.all_estimators`.
* The layer table of the page is the import rule of the package: every
  ``mmexplain`` import is checked against it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import Dataset

from mmexplain import MultimodalClassifier, results
from mmexplain.datasets import make_multimodal_classification
from mmexplain.discovery import all_estimators
from mmexplain.preprocessing import ModalityTransformer
from mmexplain.report import report_explainers

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "doc" / "architecture.md"
PACKAGE = ROOT / "mmexplain"


# ----------------------------------------------------------------------------
# the code of the page
# ----------------------------------------------------------------------------
def doc_blocks() -> list[str]:
    """The ```python blocks of doc/architecture.md, in page order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def doc_namespace() -> dict:
    """Execute the page's Python blocks in one fresh namespace and return it."""
    ns: dict = {"__name__": "architecture_doc"}
    for block in doc_blocks():
        exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    return ns


@pytest.fixture(scope="module")
def toy():
    """The page's classes; the toy method's registration is undone afterwards."""
    registered = dict(results._BY_METHOD)
    ns = doc_namespace()
    yield SimpleNamespace(**{k: v for k, v in ns.items() if not k.startswith("__")})
    results._BY_METHOD.clear()
    results._BY_METHOD.update(registered)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_classification(
        n_samples=160,
        modalities=["signal", "noise"],
        informativeness=[1.0, 0.0],
        random_state=0,
    )


@pytest.fixture(scope="module")
def clf(data):
    X, y = data
    return MultimodalClassifier(max_epochs=8, random_state=0).fit(X, y)


def test_the_page_holds_one_explainer_and_one_balancer():
    blocks = doc_blocks()
    assert [b.splitlines()[0] for b in blocks] == [
        "# mmexplain/explainers/occlusion.py",
        "# mmexplain/balancers/noise.py",
    ]
    text = DOC.read_text()
    for heading in ("## Adding an explainer", "## Adding a balancer", "## Glossary"):
        assert heading in text
    assert text.count("one file, its test and its export") == 2


# ----------------------------------------------------------------------------
# the toy explainer
# ----------------------------------------------------------------------------
def test_toy_explainer_on_a_fitted_classifier(toy, data, clf):
    X, y = data
    expl = toy.ModalityOcclusion().explain(clf, X, y)
    assert type(expl) is toy.OcclusionExplanation
    assert expl.method_spec is toy.OcclusionExplanation.spec
    assert expl.params["explainer"] == "ModalityOcclusion"
    assert expl.params["path"] == "embeddings"  # LateFusionNet: encode/fuse
    assert expl.shares.sum() == pytest.approx(100.0)
    assert expl.shares[0] > 50  # the informative modality
    assert set(expl.as_dict()["drops"]) == {"signal", "noise"}
    # a result rebuilt from its fields is the method's class (registered by spec)
    again = results.ModalityExplanation(
        modalities=expl.modalities,
        method="occlusion",
        params={},
        shares=expl.shares,
        drops=expl.drops,
        probability=expl.probability,
    )
    assert type(again) is toy.OcclusionExplanation
    assert "occlusion" in [s.name for s in results.registered_methods()]
    ax = expl.plot()
    assert ax.get_title() == "Zero-input modality occlusion"
    # fit / score: the scikit-learn side of an explainer comes from the base
    fitted = toy.ModalityOcclusion().fit(clf, X, y)
    np.testing.assert_array_equal(fitted.shares_, expl.shares)
    assert toy.ModalityOcclusion()(clf, X, y) <= 0


class OnlyA(nn.Module):
    """Logits from modality ``a`` only: modality ``b`` is ignored."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        with torch.no_grad():
            self.lin.bias.zero_()  # zeroed input -> logits 0 -> p = 1/2

    def forward(self, a, b):
        return self.lin(a)


def test_toy_explainer_closed_form_on_a_plain_module(toy):
    rng = np.random.default_rng(0)
    X = {
        "a": rng.normal(size=(50, 3)).astype(np.float32),
        "b": rng.normal(size=(50, 4)).astype(np.float32),
    }
    module = OnlyA().eval()
    with torch.no_grad():
        p = torch.softmax(module.lin(torch.as_tensor(X["a"])), dim=1).double().numpy()
    y = p.argmax(axis=1)  # the model is right everywhere: p(true class) >= 1/2
    expl = toy.ModalityOcclusion(batch_size=16).explain(module, X, y)
    assert expl.params["path"] == "full_forward"
    # zeroing 'a' leaves logits 0: p(true class) = 1/2 for every row
    want_a = p[np.arange(len(y)), y].mean() - 0.5
    np.testing.assert_allclose(expl.drops[0], want_a, rtol=1e-6)
    assert expl.drops[1] == 0.0  # the ignored modality: exactly nothing
    np.testing.assert_allclose(expl.shares, [100.0, 0.0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(expl.probability, p.max(axis=1).mean(), rtol=1e-6)


def test_toy_explainer_on_a_pipeline(toy, data):
    X, y = data
    pipe = make_pipeline(
        ModalityTransformer({"signal": StandardScaler()}),
        MultimodalClassifier(max_epochs=3, random_state=0),
    ).fit(X, y)
    expl = toy.ModalityOcclusion().explain(pipe, X, y)
    assert "Pipeline" in expl.params["unwrapped"]
    # the same as the final model on the transformed inputs
    direct = toy.ModalityOcclusion().explain(pipe[-1], pipe[:-1].transform(X), y)
    np.testing.assert_allclose(expl.drops, direct.drops, rtol=1e-6, atol=1e-9)


class Rows(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {m: torch.as_tensor(v[i]) for m, v in self.X.items()}, int(self.y[i])


def test_toy_explainer_runs_unchanged_under_the_engine_reductions(toy, data, clf):
    X, y = data
    ref = toy.ModalityOcclusion().explain(clf, X, y)
    for batch_size in (1, 7, 64):  # blocks of any size reduce to the same numbers
        got = toy.ModalityOcclusion(batch_size=batch_size).explain(clf, X, y)
        np.testing.assert_allclose(got.drops, ref.drops, rtol=1e-5, atol=1e-7)
    # out of core: a Dataset read row by row through a DatasetSource
    lazy = toy.ModalityOcclusion(batch_size=32).explain(clf, Rows(X, y))
    np.testing.assert_allclose(lazy.drops, ref.drops, rtol=1e-5, atol=1e-7)
    # the full-forward path (a plain callable) gives the embedding path's numbers
    module = clf.module_

    def forward(signal, noise):
        return module(signal=signal, noise=noise)

    full = toy.ModalityOcclusion().explain(forward, X, y)
    assert full.params["path"] == "full_forward"
    np.testing.assert_allclose(full.drops, ref.drops, rtol=1e-5, atol=1e-6)


def test_toy_explainer_validates_its_parameters(toy, data, clf):
    X, y = data
    with pytest.raises(ValueError, match="batch_size"):
        toy.ModalityOcclusion(batch_size=0).explain(clf, X, y)


WORKER = """
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, {tests!r})
from test_extending import doc_namespace

from mmexplain import MultimodalClassifier
from mmexplain.datasets import make_multimodal_classification

torch.set_num_threads(1)
ns = doc_namespace()
X, y = make_multimodal_classification(n_samples=101, random_state=0)  # odd N
# trained before the process group exists: the same model on every rank
clf = MultimodalClassifier(max_epochs=2, random_state=0).fit(X, y)
rank = "single"
if "RANK" in os.environ:
    dist.init_process_group("gloo")
    rank = f"rank{{dist.get_rank()}}"
module = clf.module_


def forward(a, b):
    return module(a=a, b=b)


explainer = ns["ModalityOcclusion"](batch_size=16)
np.savez(
    os.path.join(os.environ["OUT"], rank + ".npz"),
    embeddings=explainer.explain(clf, X, y).drops,
    full_forward=explainer.explain(forward, X, y).drops,
)
if rank != "single":
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_toy_explainer_on_two_ranks_returns_the_single_process_result(tmp_path):
    worker = tmp_path / "occlusion_worker.py"
    worker.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    launches = [
        [sys.executable, str(worker)],
        [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        + ["--nproc_per_node=2", str(worker)],
    ]
    for args in launches:
        proc = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            if any(
                s in proc.stderr
                for s in ("Address already in use", "Operation not permitted")
            ):
                pytest.skip(f"cannot start torch.distributed: {proc.stderr[-300:]}")
            raise AssertionError(proc.stdout[-2000:] + proc.stderr[-4000:])
    single, r0, r1 = (
        dict(np.load(tmp_path / f"{name}.npz")) for name in ("single", "rank0", "rank1")
    )
    for key, want in single.items():
        np.testing.assert_allclose(r0[key], want, rtol=1e-5, atol=1e-7, err_msg=key)
        np.testing.assert_array_equal(r1[key], r0[key], err_msg=key)


def test_test_local_classes_are_not_discovered(toy):
    names = [name for name, _ in all_estimators()]
    assert "ModalityOcclusion" not in names and "ModalityNoise" not in names
    assert "PermutationModalityImportance" in names and "ModalityDropout" in names
    assert toy.ModalityOcclusion.for_report(n_modalities=2) is None
    assert "occlusion" not in report_explainers(2, show_progress=False)


# ----------------------------------------------------------------------------
# the toy balancer
# ----------------------------------------------------------------------------
def test_toy_balancer_trains(toy, data):
    X, y = data

    def fit(balancer):
        return MultimodalClassifier(
            balancer=balancer, max_epochs=2, random_state=0
        ).fit(X, y)

    noisy = fit(toy.ModalityNoise("signal", std=2.0))
    assert noisy.balancer_.modality_ == "signal"
    assert noisy.balancer_.std == 2.0 and noisy.balancer is not noisy.balancer_
    again = fit(toy.ModalityNoise("signal", std=2.0))
    plain = fit(None)
    w = [next(c.module_.parameters()).detach() for c in (noisy, again, plain)]
    assert torch.equal(w[0], w[1])  # seeded from the estimator: reproducible
    assert not torch.equal(w[0], w[2])  # and the noise changed the training
    # the default modality is the first one of the data
    assert fit(toy.ModalityNoise()).balancer_.modality_ == "signal"
    # the hook itself: only the chosen modality moves, the input is not modified
    batch = {"signal": torch.zeros(4, 10), "noise": torch.zeros(4, 10)}
    out, _ = noisy.balancer_.transform_batch(noisy, X=batch, y=torch.zeros(4))
    assert out["signal"].abs().sum() > 0 and torch.equal(out["noise"], batch["noise"])
    assert torch.equal(batch["signal"], torch.zeros(4, 10))


def test_toy_balancer_validates_before_any_epoch(toy, data):
    X, y = data
    clf = MultimodalClassifier(balancer=toy.ModalityNoise(std=-1.0), max_epochs=2)
    with pytest.raises(ValueError, match="'std' parameter of ModalityNoise"):
        clf.fit(X, y)
    assert len(clf.history) == 0
    clf = MultimodalClassifier(balancer=toy.ModalityNoise(modality=3), max_epochs=2)
    with pytest.raises(ValueError, match="'modality' parameter of ModalityNoise"):
        clf.fit(X, y)
    assert len(clf.history) == 0
    # data-dependent: an unknown modality is refused by fit_started, before epoch 1
    clf = MultimodalClassifier(balancer=toy.ModalityNoise("sar"), max_epochs=2)
    with pytest.raises(ValueError, match="unknown modality 'sar'"):
        clf.fit(X, y)
    assert len(clf.history) == 0


def test_toy_balancer_clone_set_params_and_grid_search(toy, data):
    X, y = data
    balancer = toy.ModalityNoise("signal", std=0.3, random_state=0)
    copy = clone(balancer)
    assert copy is not balancer and copy.get_params() == balancer.get_params()
    clf = MultimodalClassifier(balancer=balancer, max_epochs=1, random_state=0)
    assert clf.get_params()["balancer__std"] == 0.3
    clf.set_params(balancer__std=0.7)
    assert clf.balancer.std == 0.7
    search = GridSearchCV(
        clf, {"balancer__std": [0.0, 1.0]}, cv=2, error_score="raise"
    ).fit(X, y)
    assert search.best_params_["balancer__std"] in (0.0, 1.0)
    assert list(search.cv_results_["param_balancer__std"]) == [0.0, 1.0]
    assert search.best_estimator_.balancer_.std == search.best_params_["balancer__std"]


# ----------------------------------------------------------------------------
# the layers
# ----------------------------------------------------------------------------
CLI = ("__main__", "_cli_args")


def _layer_rows() -> list[list[str]]:
    """Packages of each row of the page's layer table, top row first."""
    text = DOC.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            assert int(cells[0]) == len(rows) + 1, f"row numbers out of order: {line}"
            rows.append(re.findall(r"`([^`]+)`", cells[1]))
    return rows


def _package_of(module: str) -> str:
    """``mmexplain.explainers._engine`` -> ``explainers``; the CLI counts as one."""
    parts = module.split(".")
    if len(parts) == 1:
        return "mmexplain"
    return "cli" if parts[1] in CLI else parts[1]


def _from_top_level(name: str) -> str:
    """``from mmexplain import name``: a submodule, or the package's __init__."""
    if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file():
        return f"mmexplain.{name}"
    return "mmexplain"


def _imports() -> list[tuple[str, str, str]]:
    """(file, importing package, imported module) for every mmexplain import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        source = _package_of(".".join(parts))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "mmexplain":  # from mmexplain import results
                    targets = [_from_top_level(a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target == "mmexplain" or target.startswith("mmexplain."):
                    found.append((str(rel), source, target))
    return found


def _modules_of_the_package() -> set[str]:
    names = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    names |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    return {_package_of(f"mmexplain.{n}") for n in names} | {"mmexplain"}


def test_the_layer_table_names_every_package():
    listed = [
        pkg
        for row in _layer_rows()
        for pkg in {_package_of(f"mmexplain.{name}") for name in row}
    ]
    assert len(listed) == len(set(listed)), "a package is in two rows"
    assert set(listed) == _modules_of_the_package()


def test_imports_follow_the_layer_table():
    row_of = {}
    for i, row in enumerate(_layer_rows()):
        for name in row:
            row_of[_package_of(f"mmexplain.{name}")] = i
    upward, private = [], []
    for path, source, target in _imports():
        imported = _package_of(target)
        if imported == source:
            continue
        if row_of[imported] >= row_of[source]:
            upward.append(f"{path} imports {target}")
        private_parts = [p for p in target.split(".")[2:] if p.startswith("_")]
        if private_parts and imported not in ("_core", "cli"):
            private.append(f"{path} imports {target}")
    assert not upward, "imports against doc/architecture.md's layers:\n" + "\n".join(
        upward
    )
    assert not private, "private modules imported across packages:\n" + "\n".join(
        private
    )


def test_only_the_engine_uses_torch_distributed_in_the_explainers():
    users = {
        path
        for path, source, target in _imports()
        if source == "explainers" and target == "mmexplain._core.distributed"
    }
    engine = {
        f"mmexplain/explainers/{f}" for f in ("_engine", "_baselines", "_reductions")
    }
    assert users <= engine, sorted(users - engine)
