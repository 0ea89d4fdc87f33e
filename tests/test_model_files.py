"""Model files that cannot be turned against the user (issue 20: S1, S2, S3, W4).

A safe model file is checked at three levels, tested here:

- integrity: a SHA-256 of the header (and of each tensor member) detects a
  corrupted file or one edited without recomputing it;
- values: whoever edits a file on purpose can recompute the checksums, so
  every parameter value is checked against an allow-list (nothing that
  chooses deserialization, files, devices, compilers or processes), and the
  fitted attributes against their types, their ranges and the tensors;
- sizes: nothing is allocated beyond what the file holds (string dtypes,
  compressed members, networks are checked before they are built).

And the fitted balancer's state is saved, so training continues as it would
have (``partial_fit``), or is refused with a message when it cannot be.
The property tests mutate a valid header at random: every load either raises
a clear ``ValueError`` or gives the original model's probabilities.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pickle
import tempfile
import time
import warnings
import zipfile

import numpy as np
import pytest
import torch
from _required_args import construct
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmexplain import (
    LateFusionNet,
    MLPEncoder,
    MMTMNet,
    ModalityTransformer,
    MultimodalClassifier,
    MultimodalSegmenter,
)
from mmexplain.__main__ import main
from mmexplain.balancers import OGMGE, GreedyBalancer, ModalityDropout
from mmexplain.data import save_npz
from mmexplain.datasets import make_colored_digits, make_multimodal_classification
from mmexplain.persistence import load_model, save_model
from mmexplain.persistence._format import DIGEST_KEY, HEADER, header_digest
from mmexplain.persistence._policy import net_rules
from mmexplain.persistence.allowlist import allowed, kind_of

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "mmexplain-hypothesis"))

TINY = {"module__embedding_dim": 4, "module__hidden": (8,)}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    X, y = make_multimodal_classification(
        n_samples=60, n_classes=3, modalities=3, random_state=0
    )
    return X, np.array(["cat", "dog", "eel"])[y]


@pytest.fixture(scope="module")
def clf(data):
    X, y = data
    return MultimodalClassifier(max_epochs=2, random_state=0, **TINY).fit(X, y)


@pytest.fixture(scope="module")
def files(clf, data, tmp_path_factory):
    """A saved classifier and a saved pipeline (scalers + classifier)."""
    X, y = data
    d = tmp_path_factory.mktemp("files")
    pipe = make_pipeline(
        ModalityTransformer({m: StandardScaler() for m in X}),
        MultimodalClassifier(max_epochs=1, random_state=0, **TINY),
    ).fit(X, y)
    return {
        "clf": save_model(clf, d / "clf.mmx"),
        "pipe": save_model(pipe, d / "pipe.mmx"),
        "pipe_model": pipe,
    }


def _header(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(HEADER))


def _rewrite(path, out, header=None, members=None, digest=True, compress=None):
    """Copy the archive with a new header / members; ``digest`` recomputes the checksum."""
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    if header is not None:
        if digest and DIGEST_KEY in header:
            header[DIGEST_KEY] = header_digest(header)
        items[HEADER] = json.dumps(header).encode()
    items.update(members or {})
    with zipfile.ZipFile(out, "w") as z:
        for name, blob in items.items():
            z.writestr(name, blob, compress_type=(compress or {}).get(name, 0))
    return out


def _edit(path, out, change, digest=True):
    header = _header(path)
    change(header)
    return _rewrite(path, out, header=header, digest=digest)


def _root(header):
    return header["root"]["__object__"]


def _net(header):
    """The classifier entry of a file of a classifier or of a pipeline."""
    root = _root(header)
    if "steps" not in root["params"]:
        return root
    return root["params"]["steps"][-1]["__tuple__"][1]["__object__"]


# ----------------------------------------------------------------------------
# S1: parameter values from a file are allow-listed
# ----------------------------------------------------------------------------
REFUSED = [
    ("torch_load_kwargs", {"weights_only": False}),
    ("torch_load_kwargs", {"pickle_module": "os"}),
    ("device", "meta"),
    ("device", "cuda; rm"),
    ("compile", True),
    ("compile__backend", "inductor"),
    ("predict_nonlinearity", None),
    ("criterion", {"__class__": "torch.nn.MSELoss"}),
    ("criterion", {"__class__": "torch.nn.NLLLoss"}),
    ("criterion__reduction", "none"),
    ("module", {"__class__": "torch.nn.CrossEntropyLoss"}),
    ("optimizer", {"__class__": "torch.nn.L1Loss"}),
    ("iterator_train", {"__class__": "mmexplain.data.ModalityDataset"}),
    ("iterator_train__multiprocessing_context", "fork"),
    ("iterator_valid__num_workers", 10**6),
    ("dataset__X", 1),
    ("callbacks__print_log__sink", "print"),
    ("history", []),
    ("initialized_", True),
    ("virtual_params_", {}),
    ("lr", {"__float__": "nan"}),
    ("batch_size", 0),
    ("random_state", -1),
    ("warm_start", "yes"),
    ("classes", ["cat", "cat", "dog"]),
    ("balancer", {"__class__": "mmexplain.balancers.ModalityDropout"}),
    (
        "train_split",
        {"__object__": {"class": "mmexplain.balancers.ModalityDropout", "params": {}}},
    ),
]


@pytest.mark.parametrize("name, value", REFUSED, ids=[f"{n}={v}" for n, v in REFUSED])
def test_parameter_values_outside_the_allow_list_are_refused(
    name, value, files, tmp_path
):
    def change(header):
        _root(header)["params"][name] = value

    bad = _edit(files["clf"], tmp_path / "bad.mmx", change)
    with pytest.raises(ValueError, match=name.split("__")[0]) as info:
        load_model(bad)
    assert str(bad) in str(info.value)


def test_a_file_cannot_make_load_params_unpickle(files, clf, tmp_path):
    """The documented load_params route stays weights-only whatever the file says."""
    bad = _edit(
        files["clf"],
        tmp_path / "bad.mmx",
        lambda h: _root(h)["params"].update(torch_load_kwargs={"weights_only": False}),
    )
    with pytest.raises(ValueError, match="torch_load_kwargs.*weights_only"):
        load_model(bad)
    # what the file would have done: a weights file with a pickle that runs code
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"x": Evil()}, tmp_path / "weights.pt")
    loaded = load_model(files["clf"])
    with pytest.raises(pickle.UnpicklingError):
        loaded.load_params(f_params=tmp_path / "weights.pt")
    assert not marker.exists()


def test_a_pipeline_from_a_file_has_no_memory_directory(files, tmp_path):
    cache = tmp_path / "cache"
    bad = _edit(
        files["pipe"],
        tmp_path / "bad.mmx",
        lambda h: _root(h)["params"].update(memory=str(cache)),
    )
    with pytest.raises(ValueError, match=r"Pipeline\.memory .*steps and verbose"):
        load_model(bad)
    # nor can one be saved
    X = {"a": np.zeros((4, 2))}
    pipe = make_pipeline(
        ModalityTransformer({"a": StandardScaler()}), memory=str(cache)
    )
    with pytest.raises(ValueError, match="cannot save Pipeline.memory"):
        save_model(pipe.fit(X), tmp_path / "p.mmx")
    assert not (tmp_path / "p.mmx").exists()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"torch_load_kwargs": {"weights_only": False}}, "torch_load_kwargs"),
        ({"device": "meta"}, "device"),
        ({"compile": True}, "compile"),
        ({"criterion": torch.nn.NLLLoss}, "criterion"),
        ({"predict_nonlinearity": None}, "predict_nonlinearity"),
        ({"iterator_train__multiprocessing_context": "spawn"}, "multiprocessing"),
    ],
)
def test_save_refuses_what_load_would_refuse(params, match, tmp_path):
    with pytest.raises(ValueError, match=f"cannot save MultimodalClassifier.*{match}"):
        save_model(MultimodalClassifier(**params), tmp_path / "m.mmx")
    assert os.listdir(tmp_path) == []


def test_every_parameter_and_class_has_a_rule():
    """A parameter added to the estimators must get a rule (else: its default only)."""
    for cls in (MultimodalClassifier, MultimodalSegmenter):
        missing = set(cls().get_params(deep=False)) - set(net_rules())
        assert not missing, f"{cls.__name__}: no rule for {sorted(missing)}"
    for name in allowed():
        assert kind_of(name) is not None, name


# ----------------------------------------------------------------------------
# S3: edits are detected (checksum) or refused (values checked)
# ----------------------------------------------------------------------------
def test_an_edit_without_recomputing_the_checksum_is_detected(files, tmp_path):
    def change(header):
        _root(header)["params"]["lr"] = 0.5

    bad = _edit(files["clf"], tmp_path / "bad.mmx", change, digest=False)
    with pytest.raises(ValueError, match="checksum mismatch in the header"):
        load_model(bad)
    # the same edit with the checksum recomputed is a valid model file
    assert load_model(_edit(files["clf"], tmp_path / "ok.mmx", change)).lr == 0.5


def _swap_classes(header):
    arr = _net(header)["fitted"]["classes_inferred_"]["__ndarray__"]
    arr["data"] = arr["data"][::-1]


def test_swapped_classes_are_refused(files, clf, data, tmp_path):
    for key in ("clf", "pipe"):
        bad = _edit(files[key], tmp_path / f"{key}.mmx", _swap_classes)
        with pytest.raises(ValueError, match="classes_inferred_.*not sorted"):
            load_model(bad)
    # swapped consistently with the classes parameter, the file describes another
    # valid model (only the checksum tells it from the original): its class
    # probabilities are still the original's, under the labels it names
    X, _ = data

    def both(header):
        _swap_classes(header)
        _root(header)["params"]["classes"] = ["eel", "dog", "cat"]

    loaded = load_model(_edit(files["clf"], tmp_path / "both.mmx", both))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert list(loaded.classes_) == ["eel", "dog", "cat"]


def test_classes_must_fit_the_output_layer(files, tmp_path):
    def more(header):
        arr = _root(header)["fitted"]["classes_inferred_"]["__ndarray__"]
        arr["data"] = [*arr["data"], "fox"]
        arr["shape"] = [4]

    # the network built for 4 classes has other weights than the file
    with pytest.raises(
        ValueError, match=r"'head.2.weight' is .* \(3, 8\) but .*\(4, 8\)"
    ):
        load_model(_edit(files["clf"], tmp_path / "bad.mmx", more))

    def explicit(header):  # the same weights, for 3 classes: its output is too small
        more(header)
        _root(header)["params"]["module__n_classes"] = 3

    with pytest.raises(ValueError, match=r"outputs \(2, 3\) .* 4 classes"):
        load_model(_edit(files["clf"], tmp_path / "bad.mmx", explicit))


def test_loaded_probabilities_are_probabilities(files, data, tmp_path):
    """The criterion swap of the fuzz gave negative 'probabilities'; it is refused."""
    X, _ = data
    for loss in ("MSELoss", "NLLLoss", "L1Loss", "BCEWithLogitsLoss"):

        def change(header, loss=loss):
            _root(header)["params"]["criterion"] = {"__class__": f"torch.nn.{loss}"}

        with pytest.raises(ValueError, match="criterion .*CrossEntropyLoss"):
            load_model(_edit(files["clf"], tmp_path / "bad.mmx", change))
    proba = load_model(files["clf"]).predict_proba(X)
    assert (proba >= 0).all() and np.allclose(proba.sum(axis=1), 1, atol=1e-6)


def test_fitted_scalers_are_checked(files, tmp_path):
    def shorter(header):
        mt = _root(header)["params"]["steps"][0]["__tuple__"][1]["__object__"]
        mean = mt["fitted"]["transformers_"]["m0"]["__object__"]["fitted"]["mean_"]
        mean["__ndarray__"]["data"].pop()
        mean["__ndarray__"]["shape"] = [len(mean["__ndarray__"]["data"])]

    def dropped(header):
        mt = _root(header)["params"]["steps"][0]["__tuple__"][1]["__object__"]
        del mt["fitted"]["transformers_"]["m1"]

    with pytest.raises(ValueError, match=r"mean_: must be a f-array of shape \(10,\)"):
        load_model(_edit(files["pipe"], tmp_path / "a.mmx", shorter))
    with pytest.raises(ValueError, match=r"transformers_: must have the modalities"):
        load_model(_edit(files["pipe"], tmp_path / "b.mmx", dropped))


def _optimizer_state(header):
    pairs = _root(header)["state"]["optimizer"]["state"]["__dict__"]
    return {k: v for k, v in pairs}


def test_optimizer_state_is_checked_against_the_weights(files, tmp_path):
    def swap(header):
        state = _optimizer_state(header)
        a, b = state[0], state[1]  # a weight matrix and its bias
        a["exp_avg"], b["exp_avg"] = b["exp_avg"], a["exp_avg"]

    def amsgrad(header):
        _root(header)["state"]["optimizer"]["param_groups"][0]["amsgrad"] = True

    with pytest.raises(ValueError, match="exp_avg.*does not fit its shape"):
        load_model(_edit(files["clf"], tmp_path / "a.mmx", swap))
    with pytest.raises(ValueError, match="amsgrad=True"):
        load_model(_edit(files["clf"], tmp_path / "b.mmx", amsgrad))


def test_meta_device_gives_one_error_line_and_exit_2(files, data, tmp_path, capsys):
    X, y = data
    save_npz(tmp_path / "d.npz", X, y)
    bad = _edit(
        files["clf"],
        tmp_path / "meta.mmx",
        lambda h: _root(h)["params"].update(device="meta"),
    )
    rc = main(["--quiet", "explain", str(bad), str(tmp_path / "d.npz"), "--plot", ""])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "device = 'meta' is refused" in lines[0] and "Traceback" not in out + err


# ----------------------------------------------------------------------------
# S2: nothing is allocated beyond what the file holds
# ----------------------------------------------------------------------------
def test_a_huge_string_dtype_is_refused_before_allocating(files, tmp_path):
    def wide(header):
        _root(header)["fitted"]["classes_inferred_"]["__ndarray__"]["dtype"] = (
            "<U400000000"
        )

    start = time.perf_counter()
    with pytest.raises(ValueError, match="dtype <U400000000 would take"):
        load_model(_edit(files["clf"], tmp_path / "wide.mmx", wide))
    assert time.perf_counter() - start < 5


def test_a_header_that_expands_too_much_is_refused(files, tmp_path):
    header = _header(files["clf"])
    # 8 MiB of JSON whitespace: deflated to a few KiB, valid JSON, same model
    blob = (json.dumps(header) + " " * 8 * 2**20).encode()
    bomb = _rewrite(
        files["clf"],
        tmp_path / "bomb.mmx",
        members={HEADER: blob},
        compress={HEADER: zipfile.ZIP_DEFLATED},
    )
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ValueError, match="would expand to 8"):
        load_model(bomb)


def test_compressed_tensor_members_are_refused(files, tmp_path):
    (member,) = _header(files["clf"])["files"]
    bad = _rewrite(
        files["clf"], tmp_path / "z.mmx", compress={member: zipfile.ZIP_DEFLATED}
    )
    with pytest.raises(ValueError, match="compressed"):
        load_model(bad)


def test_huge_input_shapes_are_refused_before_the_network_is_built(
    files, tmp_path, monkeypatch
):
    def huge(header):
        shapes = _root(header)["fitted"]["input_shapes_"]
        shapes["m0"] = {"__tuple__": [10**7]}  # a 10**7 x 8 first layer

    def never(self):
        raise AssertionError("the network was built before its shapes were checked")

    monkeypatch.setattr(MultimodalClassifier, "initialize", never)
    with pytest.raises(
        ValueError, match=r"encoders\.m0.* \(8, 10\) but .*\(8, 10000000\)"
    ):
        load_model(_edit(files["clf"], tmp_path / "huge.mmx", huge))


def test_huge_encoder_arguments_are_refused_before_building(data, tmp_path):
    X, y = data
    encoders = {m: MLPEncoder(10, 4, hidden=()) for m in X}
    clf = MultimodalClassifier(
        module=LateFusionNet, module__encoders=encoders, max_epochs=1, random_state=0
    ).fit(X, y)
    path = save_model(clf, tmp_path / "enc.mmx")

    def huge(header):
        enc = _root(header)["params"]["module__encoders"]["m0"]["__module__"]
        enc["params"]["in_features"] = 10**10  # a 160 GB layer

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"\(4, 10\) but .* \(4, 10000000000\)"):
        load_model(_edit(path, tmp_path / "bad.mmx", huge))
    assert time.perf_counter() - start < 5


# ----------------------------------------------------------------------------
# W4: the fitted balancer's state is saved
# ----------------------------------------------------------------------------
def _balanced(cls):
    if cls is GreedyBalancer:
        X, y, _, _ = make_colored_digits(random_state=0)
        X, y = X[:40], y[:40]
        kw = {"module": MMTMNet, "module__channels": (4,), "module__ratio": 2}
    else:
        X, y = make_multimodal_classification(40, n_features=6, random_state=0)
        kw = (
            {"module__head": "linear", "optimizer": torch.optim.SGD}
            if cls is OGMGE
            else {}
        )
    balancer = construct(cls, modalities=list(X))
    if cls is GreedyBalancer:
        balancer.set_params(tolerance=0.0, window=2, warmup_epochs=0)
    net = MultimodalClassifier(
        balancer=balancer, max_epochs=2, batch_size=16, random_state=0, **kw
    )
    return net.fit(X, y), X, y


def _weights(net):
    return {k: v.clone() for k, v in net.module_.state_dict().items()}


@pytest.mark.parametrize(
    "cls", [GreedyBalancer, ModalityDropout, OGMGE], ids=lambda c: c.__name__
)
def test_training_continues_as_the_original_after_a_round_trip(cls, tmp_path):
    net, X, y = _balanced(cls)
    original = pickle.loads(pickle.dumps(net))  # pickle keeps everything
    loaded = load_model(save_model(net, tmp_path / "b.mmx"))
    original.partial_fit(X, y)
    loaded.partial_fit(X, y)
    want, got = _weights(original), _weights(loaded)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert loaded.history.to_list()[-1].keys() == original.history.to_list()[-1].keys()
    for key in ("train_loss", "greedy_rebalance_steps", "greedy_d_speed"):
        if key in original.history[-1]:
            assert loaded.history[-1, key] == original.history[-1, key], key


def test_state_that_cannot_be_saved_refuses_continuation(tmp_path):
    net, X, y = _balanced(ModalityDropout)
    net.balancer_.helper_ = object()  # state the safe format cannot describe
    with pytest.warns(UserWarning, match=r"balancer_ holds state .*\(helper_\)"):
        path = save_model(net, tmp_path / "b.mmx")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    with pytest.raises(ValueError, match=r"ModalityDropout \(helper_\).*partial_fit"):
        loaded.partial_fit(X, y)
    loaded.fit(X, y)  # a new training run needs no saved state
    with pytest.warns(UserWarning, match="helper_"):  # and the refusal is kept
        save_model(load_model(path), tmp_path / "again.mmx")


def test_a_generator_of_another_device_is_drawn_again(tmp_path):
    net, X, y = _balanced(ModalityDropout)
    path = save_model(net, tmp_path / "b.mmx")

    def elsewhere(header):
        state = _root(header)["balancer_state"]["attributes"]
        state["generator_"]["__generator__"]["device"] = "cuda"

    loaded = load_model(_edit(path, tmp_path / "gpu.mmx", elsewhere))
    assert "generator_" not in vars(loaded.balancer_)
    loaded.partial_fit(X, y)  # ModalityDropout draws its generator again
    assert len(loaded.history) == 4  # 2 epochs, then 2 more


# ----------------------------------------------------------------------------
# the format: safetensors, and files of version 1
# ----------------------------------------------------------------------------
def test_weights_are_safetensors_members(files, clf):
    from safetensors.torch import load

    header = _header(files["clf"])
    assert header["format_version"] == 2
    (member,) = header["files"]
    with zipfile.ZipFile(files["clf"]) as z:
        tensors = load(z.read(member))
    for key, value in clf.module_.state_dict().items():
        assert torch.equal(tensors[f"module.{key}"], value)


def _as_version_1(model, path, out):
    """The file of the bare classifier ``model`` as mmexplain wrote it in version 1."""
    header = _header(path)
    root = _root(header)
    state = {
        "module": model.module_.state_dict(),
        "criterion": model.criterion_.state_dict(),
        "optimizer": model.optimizer_.state_dict(),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    root["tensors"] = "tensors/0.pt"
    del root["state"]
    del header[DIGEST_KEY]
    header["format_version"] = 1
    header["files"] = {
        "tensors/0.pt": {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    }
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(HEADER, json.dumps(header), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("tensors/0.pt", blob)
    return out


def test_files_of_version_1_still_load(files, clf, data, tmp_path, monkeypatch):
    X, _ = data
    old = _as_version_1(clf, files["clf"], tmp_path / "v1.mmx")
    calls = []
    real = torch.load

    def recording(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    loaded = load_model(old)
    assert calls == [True]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    # and their values are checked as well
    bad = tmp_path / "v1bad.mmx"
    header = _header(old)
    _root(header)["params"]["device"] = "meta"
    _rewrite(old, bad, header=header)
    with pytest.raises(ValueError, match="device"):
        load_model(bad)


# ----------------------------------------------------------------------------
# properties: random edits of a valid header
# ----------------------------------------------------------------------------
PROPS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)

ODD = [
    None,
    True,
    False,
    0,
    -1,
    2**40,
    1e308,
    -0.5,
    "",
    "meta",
    "cuda",
    "os.system",
    "torch.nn.MSELoss",
    [],
    {},
    [0, 0],
    {"__class__": "builtins.eval"},
    {"__class__": "torch.nn.NLLLoss"},
    {"__float__": "nan"},
    {"__tuple__": [10**9]},
    {"__ndarray__": {"dtype": "<U400000000", "shape": [1], "data": ["x"]}},
    {"__object__": {"class": "mmexplain.balancers.ModalityDropout", "params": {}}},
    {"__tensor__": "module.head.0.weight"},
]


def _paths(value, path=()):
    """Paths to every value under ``value`` (containers included)."""
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _set(header, path, value):
    target = header
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _get(header, path):
    for part in path:
        header = header[part]
    return header


def _mutations(old):
    options = [st.sampled_from(ODD)]
    if isinstance(old, bool):
        options.append(st.just(not old))
    elif isinstance(old, int):
        options.append(st.integers(-3, 3).map(lambda d: old + d))
        options.append(st.just(old * 10**6))
    elif isinstance(old, float):
        options.append(st.sampled_from([old * 2, -old, old + 1e-3]))
    elif isinstance(old, str):
        options.append(st.sampled_from([old + "x", old[:-1], old.upper(), old * 2]))
    elif isinstance(old, list) and old:
        options.append(st.sampled_from([old[::-1], old[:-1], old + old[:1]]))
    elif isinstance(old, dict) and old:
        options.append(
            st.sampled_from(sorted(old)).map(
                lambda k: {key: v for key, v in old.items() if key != k}
            )
        )
    return st.one_of(options)


@pytest.fixture(scope="module")
def reference(files, clf, data):
    """The header, its paths by region (each region drawn as often), the probabilities."""
    X, _ = data
    header = _header(files["clf"])
    regions: dict[str, list] = {}
    for path in _paths(header):
        if path[:3] in (
            ("root", "__object__", "params"),
            ("root", "__object__", "fitted"),
        ):
            region = path[2]
        elif path[:3] == ("root", "__object__", "state"):
            region = "optimizer" if path[3:4] == ("optimizer",) else "state"
        else:
            region = (
                path[2] if path[:2] == ("root", "__object__") and path[2:] else "top"
            )
        regions.setdefault(region, []).append(path)
    return header, regions, clf.predict_proba(X)


def _mutated(reference, draw):
    header, regions, _ = reference
    paths = regions[draw(st.sampled_from(sorted(regions)))]
    path = paths[draw(st.integers(0, len(paths) - 1))]
    new = draw(_mutations(_get(header, path)))
    mutated = copy.deepcopy(header)
    _set(mutated, path, new)
    return mutated


@PROPS
@given(st.data())
def test_random_edits_are_refused_or_give_the_original_probabilities(
    files, data, reference, st_data
):
    X, _ = data
    mutated = _mutated(reference, st_data.draw)
    with tempfile.TemporaryDirectory() as d:
        bad = _rewrite(files["clf"], os.path.join(d, "m.mmx"), header=mutated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loaded = load_model(bad)
            except (ValueError, TypeError) as exc:
                assert str(bad) in str(exc)
                return
            proba = loaded.predict_proba(X)
            labels = loaded.predict(X)
    np.testing.assert_allclose(proba, reference[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, loaded.classes_[proba.argmax(axis=1)])


@settings(PROPS, max_examples=25)
@given(st.data())
def test_random_edits_without_the_checksum_are_detected(files, reference, st_data):
    mutated = _mutated(reference, st_data.draw)
    if json.dumps(mutated, sort_keys=True) == json.dumps(reference[0], sort_keys=True):
        return
    with tempfile.TemporaryDirectory() as d:
        bad = _rewrite(
            files["clf"], os.path.join(d, "m.mmx"), header=mutated, digest=False
        )
        with pytest.raises(ValueError) as info:
            load_model(bad)
        assert str(bad) in str(info.value)
