"""Tests for mmexplain.modules (encoders, late fusion, MMTM, build_module)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from mmexplain.modules import (
    MMTM,
    ConvEncoder,
    LateFusionNet,
    LateFusionSegNet,
    MLPEncoder,
    MMTMNet,
    build_module,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _late_net(**kw):
    enc = {"eo": ConvEncoder(3, 6, channels=(4,)), "sar": MLPEncoder(5, 4, hidden=(8,))}
    return LateFusionNet(enc, n_classes=3, **kw)


def _late_X(n=6):
    return {"eo": torch.randn(n, 3, 8, 8), "sar": torch.randn(n, 5)}


# ---------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 12), (4, 3, 4), (4, 2, 2, 3)])
def test_mlp_encoder_shapes(shape):
    enc = MLPEncoder(12, out_features=7, hidden=(5, 6), dropout=0.1)
    assert enc.out_features == 7
    assert enc(torch.randn(*shape)).shape == (4, 7)
    assert MLPEncoder(12, 3, hidden=())(torch.randn(*shape)).shape == (4, 3)


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (8, 8), (15, 17)])
def test_conv_encoder_shapes(hw):
    enc = ConvEncoder(3, out_features=5, channels=(4, 6, 8))
    assert enc.out_features == 5
    assert enc(torch.randn(2, 3, *hw)).shape == (2, 5)


def test_encoder_errors():
    with pytest.raises(
        ValueError, match=r"ConvEncoder expects input of shape \(N, 3, H, W\)"
    ):
        ConvEncoder(3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(2, 1, 4, 4\)"):
        ConvEncoder(3)(torch.randn(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"MLPEncoder expects input of shape \(N, 4\)"):
        MLPEncoder(4)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="MLPEncoder expects"):
        MLPEncoder(4)(torch.randn(4))


# ---------------------------------------------------------------------------
# LateFusionNet
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("head", [None, "linear", nn.Sequential(nn.Linear(10, 3))])
def test_late_fusion_forward_equals_fuse_encode(head):
    net = _late_net(head=head).eval()
    X = _late_X()
    out = net(**X)
    assert out.shape == (6, 3)
    Z = net.encode(**X)
    assert list(Z) == ["eo", "sar"]
    assert Z["eo"].shape == (6, 6) and Z["sar"].shape == (6, 4)
    assert torch.equal(out, net.fuse(**Z))
    # kwargs order does not matter
    assert torch.equal(out, net.fuse(sar=Z["sar"], eo=Z["eo"]))
    assert net.modalities == ("eo", "sar")
    assert net.embedding_dims == {"eo": 6, "sar": 4}


def test_late_fusion_concat_vs_sum():
    enc = {"a": MLPEncoder(3, 4), "b": MLPEncoder(2, 4)}
    X = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    cat = LateFusionNet(copy.deepcopy(enc), 2, head="linear")
    add = LateFusionNet(copy.deepcopy(enc), 2, fusion="sum", head="linear")
    assert cat.head.in_features == 8 and add.head.in_features == 4
    Z = add.encode(**X)
    expected = add.head(Z["a"] + Z["b"])
    torch.testing.assert_close(add.fuse(**Z), expected)
    assert cat(**X).shape == add(**X).shape == (5, 2)
    assert add.embedding_slices() == {"a": slice(0, 4), "b": slice(0, 4)}
    with pytest.raises(ValueError, match="equal embedding sizes"):
        LateFusionNet({"a": MLPEncoder(3, 4), "b": MLPEncoder(2, 5)}, 2, fusion="sum")
    with pytest.raises(ValueError, match="fusion must be one of"):
        LateFusionNet(enc, 2, fusion="max")


def test_embedding_slices_match_linear_head():
    net = _late_net(head="linear").eval()
    assert isinstance(net.head, nn.Linear)
    slices = net.embedding_slices()
    assert slices == {"eo": slice(0, 6), "sar": slice(6, 10)}
    Z = net.encode(**_late_X())
    W = net.head.weight
    for m, sl in slices.items():
        Z0 = dict(Z)
        Z0[m] = torch.zeros_like(Z[m])
        delta = net.fuse(**Z) - net.fuse(**Z0)
        # the logits change exactly by that modality's columns of W
        torch.testing.assert_close(delta, Z[m] @ W[:, sl].T)


def test_embedding_dims_from_argument():
    class NoDim(nn.Module):
        def forward(self, x):
            return x * 2

    net = LateFusionNet(
        {"a": NoDim(), "b": MLPEncoder(2, 3)}, 2, embedding_dims={"a": 4}
    )
    assert net.embedding_dims == {"a": 4, "b": 3}
    assert net(a=torch.randn(3, 4), b=torch.randn(3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match="'a'.*out_features"):
        LateFusionNet({"a": NoDim(), "b": MLPEncoder(2, 3)}, 2)
    with pytest.raises(ValueError, match="disagrees"):
        LateFusionNet({"b": MLPEncoder(2, 3)}, 2, embedding_dims={"b": 5})


def test_late_fusion_modality_errors():
    net = _late_net()
    X = _late_X()
    msg = r"LateFusionNet got unknown modality 'x'; expected \['eo', 'sar'\]"
    with pytest.raises(ValueError, match=msg):
        net(**X, x=torch.randn(6, 2))
    with pytest.raises(ValueError, match="missing modality 'sar'"):
        net.encode(eo=X["eo"])
    Z = net.encode(**X)
    with pytest.raises(ValueError, match="missing modality 'eo'"):
        net.fuse(sar=Z["sar"])
    with pytest.raises(ValueError, match="unknown modality 'x'"):
        net.fuse(**Z, x=Z["sar"])
    with pytest.raises(ValueError, match="'sar'.*shape \\(N, 4\\)"):
        net.fuse(eo=Z["eo"], sar=Z["eo"])
    with pytest.raises(
        ValueError, match=r"ConvEncoder expects input of shape \(N, 3, H, W\)"
    ):
        net(eo=torch.randn(6, 5), sar=X["sar"])
    with pytest.raises(ValueError, match="head must be"):
        _late_net(head="mlp")


def test_late_fusion_seg_net_shapes():
    net = LateFusionSegNet({"rgb": 3, "nir": 1}, n_classes=4, channels=(4, 6, 8))
    for hw in [(15, 17), (8, 8), (1, 1), (3, 2)]:
        X = {"rgb": torch.randn(2, 3, *hw), "nir": torch.randn(2, 1, *hw)}
        out = net(**X)
        assert out.shape == (2, 4, *hw)
        Z = net.encode(**X)
        assert Z["rgb"].shape == (2, 4, *hw)
        assert torch.equal(out, net.fuse(**Z))
    with pytest.raises(ValueError, match="missing modality 'nir'"):
        net(rgb=torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="same N, H, W"):
        net(rgb=torch.randn(2, 3, 8, 8), nir=torch.randn(2, 1, 8, 9))


# ---------------------------------------------------------------------------
# MMTM
# ---------------------------------------------------------------------------


def test_mmtm_bottleneck_has_the_authors_width():
    # Wu et al.'s MMTM: dim_out = int(2 * (dim_visual + dim_skeleton) / ratio)
    for chans, ratio, width in [
        ({"a": 4, "b": 3}, 2, 7),
        ({"a": 16, "b": 16}, 4, 16),
        ({"a": 64, "b": 64}, 4, 64),
        ({"a": 1, "b": 1}, 8, 1),  # at least one unit
        ({"a": 5, "b": 6, "c": 7}, 4, 9),
    ]:
        block = MMTM(chans, ratio=ratio)
        assert block.hidden_features == width
        assert block.squeeze_fc.out_features == width
        assert all(fc.in_features == width for fc in block.gate_fcs)
    net = MMTMNet({"color": 3, "gray": 1}, n_classes=10, channels=(16, 32))
    assert [b.hidden_features for b in net.mmtms] == [16, 32]
    assert (
        MMTMNet({"a": 1, "b": 1}, 2, channels=(8,), ratio=2).mmtms[0].hidden_features
        == 16
    )
    with pytest.raises(ValueError, match="ratio"):
        MMTM({"a": 2, "b": 2}, ratio=0)


def test_mmtm_gates_and_running_averages():
    block = MMTM({"a": 4, "b": 3}, ratio=2)
    xa, xb = torch.randn(8, 4, 5, 5), torch.randn(8, 3, 2, 2)
    block.eval()
    ya, yb = block(xa, xb)
    assert ya.shape == xa.shape and yb.shape == xb.shape
    for g in block.last_gates.values():
        assert ((g > 0) & (g < 1)).all()
    # eval mode: no update
    assert int(block.num_batches_tracked) == 0
    assert torch.equal(block.running_gate("a"), torch.full((4,), 0.5))
    # train mode: cumulative mean of the batch means
    block.train()
    block(xa, xb)
    ga1 = block.last_gates["a"].mean(0)
    torch.testing.assert_close(block.running_gate("a"), ga1)
    torch.testing.assert_close(block.running_squeeze("b"), xb.mean(dim=(2, 3)).mean(0))
    xa2, xb2 = torch.randn(8, 4, 5, 5), torch.randn(8, 3, 2, 2)
    block(xa2, xb2)
    ga2 = block.last_gates["a"].mean(0)
    torch.testing.assert_close(block.running_gate("a"), (ga1 + ga2) / 2)
    sq = (xa.mean(dim=(2, 3)).mean(0) + xa2.mean(dim=(2, 3)).mean(0)) / 2
    torch.testing.assert_close(block.running_squeeze("a"), sq)
    assert int(block.num_batches_tracked) == 2
    # rebalance / ablate calls do not update, even in train mode
    state = {k: v.clone() for k, v in block.state_dict().items()}
    block(torch.randn(8, 4, 5, 5), xb, rebalance="a")
    block(torch.randn(8, 4, 5, 5), xb, ablate="b")
    for k, v in block.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert "running_gate_a" in state and "running_squeeze_b" in state
    # rebalanced gate equals the running average
    block(xa, xb, rebalance="a")
    assert torch.equal(block.last_gates["a"], block.running_gate("a").expand(8, 4))
    block.reset_running_stats()
    assert int(block.num_batches_tracked) == 0


def test_mmtm_vectors_sequence_and_dict():
    block = MMTM([3, 5, 2])
    assert block.modalities == ("0", "1", "2")
    xs = (torch.randn(4, 3), torch.randn(4, 5, 6), torch.randn(4, 2, 3, 3))
    ys = block(*xs)
    assert [y.shape for y in ys] == [x.shape for x in xs]
    d = block(dict(zip(("0", "1", "2"), xs)))
    assert list(d) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="at least 2"):
        MMTM([3])
    with pytest.raises(ValueError, match="unknown modality 'z'"):
        block(*xs, rebalance="z")
    with pytest.raises(ValueError, match="modality '1'"):
        block(xs[0], xs[0], xs[2])


def _mmtm_net(**kw):
    net = MMTMNet({"a": 2, "b": 1}, n_classes=3, channels=(4, 6), **kw)
    net.train()
    for _ in range(2):  # fill the running averages
        net(a=torch.randn(5, 2, 8, 8), b=torch.randn(5, 1, 8, 8))
    return net.eval()


def test_mmtmnet_forward_and_branch_logits():
    net = MMTMNet({"a": 2, "b": 1}, n_classes=3, channels=(4, 6, 8))
    X = {"a": torch.randn(4, 2, 9, 7), "b": torch.randn(4, 1, 1, 1)}
    out = net(**X)
    assert out.shape == (4, 3)
    assert sorted(net.branch_logits) == ["a", "b"]
    stacked = torch.stack([net.branch_logits["a"], net.branch_logits["b"]])
    torch.testing.assert_close(out, stacked.mean(0))
    loss = sum(
        nn.functional.cross_entropy(v, torch.zeros(4, dtype=torch.long))
        for v in net.branch_logits.values()
    )
    loss.backward()  # branch logits keep their graph
    assert net.heads["a"].weight.grad is not None
    assert net.modalities == ("a", "b")
    # deepcopy / pickle work after a forward with graph
    copy.deepcopy(net)
    pickle.loads(pickle.dumps(net))


def test_mmtmnet_rebalance_cuts_cross_modal_information():
    net = _mmtm_net()
    n = 6
    xa = torch.randn(n, 2, 8, 8)
    xb1, xb2 = torch.randn(n, 1, 8, 8), torch.randn(n, 1, 8, 8)

    def branch(which, xb, **kw):
        with torch.no_grad():
            net(a=xa, b=xb, **kw)
        return net.branch_logits[which]

    # without re-balancing, branch a depends on b
    assert not torch.allclose(branch("a", xb1), branch("a", xb2))
    # re-balancing a: branch a does not see b
    torch.testing.assert_close(
        branch("a", xb1, rebalance="a"), branch("a", xb2, rebalance="a")
    )
    with net.rebalancing("a"):
        assert net.rebalance == "a"
        torch.testing.assert_close(branch("a", xb1), branch("a", xb2))
    assert net.rebalance is None
    # ablating b: branch a is independent of b
    torch.testing.assert_close(
        branch("a", xb1, ablate="b"), branch("a", xb2, ablate="b")
    )
    with net.ablating("b"):
        torch.testing.assert_close(branch("a", xb1), branch("a", xb2))
    assert net.ablate is None
    # but branch b still depends on b
    assert not torch.allclose(
        branch("b", xb1, ablate="b"), branch("b", xb2, ablate="b")
    )


def test_mmtmnet_ablating_with_given_squeeze_vectors():
    net = _mmtm_net()
    X = {"a": torch.randn(6, 2, 8, 8), "b": torch.randn(6, 1, 8, 8)}
    # the values replace b's squeeze in every block: by hand, a pre-hook on each
    # block's shared layer overwriting b's columns (a's come first)
    values = [{"b": torch.randn(4)}, {"b": torch.randn(6)}]
    handles = []
    for block, v in zip(net.mmtms, values):
        lo = block.channels["a"]

        def hook(fc, args, lo=lo, v=v["b"]):
            h = args[0].clone()
            h[:, lo:] = v
            return (h,)

        handles.append(block.squeeze_fc.register_forward_pre_hook(hook))
    with torch.no_grad():
        net(**X)
        want = net.branch_logits["a"].clone()
    for h in handles:
        h.remove()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for squeeze in (values, {0: values[0]["b"], 1: values[1]["b"]}):
            with net.ablating("b", squeeze=squeeze):
                net(**X)
                torch.testing.assert_close(net.branch_logits["a"], want)
            assert net.ablate is None and net.ablate_squeeze is None
        # without values: the running averages, which differ
        with net.ablating("b"):
            net(**X)
        assert not torch.allclose(net.branch_logits["a"], want)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # extra modalities in an entry are ignored (squeeze_averages' output fits)
    averages = net.squeeze_averages(X)
    with net.ablating("b", squeeze=averages), torch.no_grad():
        net(**X)
    with pytest.raises(ValueError, match="one entry per MMTM block"):
        with net.ablating("b", squeeze=values[:1]):
            pass
    with pytest.raises(ValueError, match=r"block 1 must have shape \(6,\)"):
        with net.ablating("b", squeeze=[values[0], {"b": torch.zeros(4)}]):
            pass
    with pytest.raises(ValueError, match="lacks the ablated modalities"):
        with net.ablating(["a", "b"], squeeze=values):
            pass
    with pytest.raises(ValueError, match="bare tensor"):
        with net.ablating(["a", "b"], squeeze={0: torch.zeros(4), 1: torch.zeros(6)}):
            pass
    with pytest.raises(ValueError, match="not ablated"):
        net.mmtms[0](
            torch.randn(2, 4), torch.randn(2, 4), squeeze={"a": torch.zeros(4)}
        )


def test_mmtmnet_squeeze_averages_leave_the_module_unchanged():
    net = _mmtm_net()
    X = {"a": torch.randn(7, 2, 8, 8), "b": torch.randn(7, 1, 8, 8)}
    # by hand: the spatial means of the features entering each block, eval mode
    feats, h = [], dict(X)
    with torch.no_grad():
        for i, block in enumerate(net.mmtms):
            h = {m: net.branches[m][i](h[m]) for m in net.modalities}
            feats.append({m: h[m].mean(dim=(0, 2, 3)) for m in net.modalities})
            h = block(h)
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with net.rebalancing("a"):
        averages = net.squeeze_averages(
            {m: v.numpy() for m, v in X.items()}, batch_size=3
        )
        assert net.rebalance == "a"
    assert net.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert len(averages) == 2
    for got, want in zip(averages, feats):
        assert sorted(got) == ["a", "b"]
        for m in got:
            assert got[m].dtype == torch.float32
            torch.testing.assert_close(got[m], want[m])
    with pytest.raises(ValueError, match="missing modality 'b'"):
        net.squeeze_averages({"a": X["a"]})


def test_mmtmnet_no_update_in_rebalance_or_eval():
    net = _mmtm_net()
    assert int(net.mmtms[0].num_batches_tracked) == 2
    state = {k: v.clone() for k, v in net.state_dict().items()}
    X = {"a": torch.randn(3, 2, 8, 8), "b": torch.randn(3, 1, 8, 8)}
    net(**X)  # eval
    net.train()
    with net.rebalancing("b"):
        net(**X)
    net(**X, ablate="a")
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    net(**X)
    assert int(net.mmtms[1].num_batches_tracked) == 3


def test_mmtmnet_three_modalities():
    net = MMTMNet({"a": 1, "b": 2, "c": 3}, n_classes=4, channels=(4, 4))
    X = {m: torch.randn(3, c, 6, 6) for m, c in net.in_channels.items()}
    net.train()
    assert net(**X).shape == (3, 4)
    net.eval()
    xc2 = torch.randn(3, 3, 6, 6)
    with torch.no_grad():
        net(**X, ablate=["b", "c"])
        a1 = net.branch_logits["a"]
        net(a=X["a"], b=torch.randn(3, 2, 6, 6), c=xc2, ablate=["b", "c"])
        a2 = net.branch_logits["a"]
    torch.testing.assert_close(a1, a2)


def test_mmtmnet_modality_parameters():
    net = MMTMNet({"a": 2, "b": 1}, n_classes=3, channels=(4, 6))
    ga, gb = net.modality_parameters("a"), net.modality_parameters("b")
    ids = {k: {id(p) for p in v} for k, v in ga.items()}
    idsb = {k: {id(p) for p in v} for k, v in gb.items()}
    assert not ids["main"] & ids["bypass"]
    assert not idsb["main"] & idsb["bypass"]
    assert not ids["main"] & idsb["main"]
    expected_main = {id(p) for p in net.branches["a"].parameters()} | {
        id(p) for p in net.heads["a"].parameters()
    }
    assert ids["main"] == expected_main
    shared = {id(p) for blk in net.mmtms for p in blk.squeeze_fc.parameters()}
    gates_a = {id(p) for blk in net.mmtms for p in blk.gate_fcs[0].parameters()}
    assert ids["bypass"] == shared | gates_a
    assert ids["bypass"] & idsb["bypass"] == shared
    # every parameter belongs to some group
    union = set().union(*ids.values(), *idsb.values())
    assert union == {id(p) for p in net.parameters()}
    assert len(ga["main"]) == len(expected_main)


def test_mmtmnet_errors():
    net = MMTMNet({"color": 3, "gray": 1}, n_classes=2, channels=(4,))
    X = {"color": torch.randn(2, 3, 8, 8), "gray": torch.randn(2, 1, 8, 8)}
    with pytest.raises(
        ValueError, match=r"unknown modality 'x'; expected \['color', 'gray'\]"
    ):
        net(**X, x=X["gray"])
    with pytest.raises(ValueError, match="missing modality 'gray'"):
        net(color=X["color"])
    with pytest.raises(ValueError, match=r"'gray' of shape \(N, 1, H, W\)"):
        net(color=X["color"], gray=torch.randn(2, 8))
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        net(**X, rebalance="depth")
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        with net.ablating("depth"):
            pass
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        net.modality_parameters("depth")
    with pytest.raises(ValueError, match="at least 2"):
        MMTMNet({"a": 1}, 2)
    with pytest.raises(ValueError, match="reserved"):
        MMTMNet({"a": 1, "ablate": 1}, 2)


# ---------------------------------------------------------------------------
# build_module and persistence
# ---------------------------------------------------------------------------


def test_build_module_variants():
    vec = build_module({"x": (5,), "y": (3,)}, 2, embedding_dim=4, hidden=(8,))
    assert isinstance(vec, LateFusionNet)
    assert all(isinstance(e, MLPEncoder) for e in vec.encoders.values())
    assert vec(x=torch.randn(3, 5), y=torch.randn(3, 3)).shape == (3, 2)

    img = build_module({"a": (3, 8, 8), "b": (1, 5, 7)}, 4, channels=(4,))
    assert all(isinstance(e, ConvEncoder) for e in img.encoders.values())
    assert img(a=torch.randn(2, 3, 8, 8), b=torch.randn(2, 1, 5, 7)).shape == (2, 4)

    mixed = build_module(
        {"img": (1, 6, 6), "seq": (4, 3), "tab": (2,)}, 3, head="linear"
    )
    assert isinstance(mixed.encoders["seq"], MLPEncoder)
    assert mixed.encoders["seq"].in_features == 12
    assert isinstance(mixed.head, nn.Linear)
    X = {
        "img": torch.randn(2, 1, 6, 6),
        "seq": torch.randn(2, 4, 3),
        "tab": torch.randn(2, 2),
    }
    assert mixed(**X).shape == (2, 3)

    seg = build_module({"rgb": (3, 15, 17), "nir": (1, 15, 17)}, 5, task="segmentation")
    assert isinstance(seg, LateFusionSegNet)
    assert seg(rgb=torch.randn(1, 3, 15, 17), nir=torch.randn(1, 1, 15, 17)).shape == (
        1,
        5,
        15,
        17,
    )


def test_build_module_errors():
    with pytest.raises(ValueError, match=r"modality 'v'.*\(2, 3, 4, 5\)"):
        build_module({"a": (3,), "v": (2, 3, 4, 5)}, 2)
    with pytest.raises(ValueError, match=r"same H, W.*'b'"):
        build_module({"a": (3, 8, 8), "b": (1, 8, 9)}, 2, task="segmentation")
    with pytest.raises(ValueError, match=r"modality 'b'.*\(4,\)"):
        build_module({"a": (3, 8, 8), "b": (4,)}, 2, task="segmentation")
    with pytest.raises(ValueError, match="task must be"):
        build_module({"a": (3,)}, 2, task="ranking")


@pytest.mark.parametrize(
    "make, X",
    [
        (lambda: _late_net(), _late_X(3)),
        (
            lambda: LateFusionSegNet({"a": 2, "b": 1}, 3, channels=(4, 4)),
            {"a": torch.randn(2, 2, 7, 9), "b": torch.randn(2, 1, 7, 9)},
        ),
        (
            lambda: _mmtm_net(),
            {"a": torch.randn(3, 2, 8, 8), "b": torch.randn(3, 1, 8, 8)},
        ),
    ],
)
def test_state_dict_round_trip(make, X):
    net = make().eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)
    other = make().eval()
    if isinstance(net, MMTMNet):
        # running averages are part of the state and matter for ablate
        other.mmtms[0].reset_running_stats()
    other.load_state_dict(torch.load(buf))
    with torch.no_grad():
        torch.testing.assert_close(other(**X), net(**X), rtol=0, atol=0)
        if isinstance(net, MMTMNet):
            torch.testing.assert_close(
                other(**X, ablate="a"), net(**X, ablate="a"), rtol=0, atol=0
            )
