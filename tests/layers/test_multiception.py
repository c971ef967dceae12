"""Multiception / MixConv / DSConv layers: shapes, ops == per-branch PyTorch, paper formulas, factory errors."""
import contextlib
import copy
import math

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_macs, count_params
from leannets.layers import create_conv, kernels, list_conv_types
from leannets.layers import dispatch
from leannets.layers.dispatch import reference_path
from leannets.layers.multiception import (DSConv, MixConv, MulticeptionConv, dsconv_params, multiception_params,
                                          split_channels, stage_kernel_sizes, standard_params, validate_kernel_sizes)

TYPES = [("standard", 3), ("dsconv", 3), ("mixconv", (3, 5, 7)), ("multiception", (3, 5, 7)),
         ("multiception", (3, 3))]


class _ConvCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.convs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._overloadpacket.__name__ == "convolution":
            self.convs.append(tuple(args[1].shape))
        return func(*args, **(kwargs or {}))


def test_conv_types_are_registered():
    assert {"standard", "dsconv", "mixconv", "multiception"} <= set(list_conv_types())


@pytest.mark.parametrize("conv_type,ks", TYPES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (8, 8), (9, 12)])
def test_shapes_match_standard_conv(conv_type, ks, stride, hw):
    m = create_conv(conv_type, 6, 10, ks, stride)
    y = m(torch.randn(2, 6, *hw))
    assert y.shape == (2, 10, math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(2, 6, *hw)).shape == y.shape


@pytest.mark.parametrize("conv_type,ks", TYPES)
def test_every_type_ends_with_batchnorm(conv_type, ks):
    m = create_conv(conv_type, 5, 7, ks, 1).train()
    y = m(torch.randn(8, 5, 6, 6) * 3 + 2)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var((0, 2, 3), unbiased=False), torch.ones(7), atol=1e-3, rtol=0)


def test_multiception_applies_every_kernel_to_all_channels_and_keeps_weights_separate():
    m = MulticeptionConv(4, 6, (3, 5, 7))
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters() if n.startswith("dw.")}
    assert shapes == {"dw.0.weight": (4, 1, 3, 3), "dw.1.weight": (4, 1, 5, 5), "dw.2.weight": (4, 1, 7, 7)}
    assert m.pw.in_channels == 12 and m.multiplier == 3
    mix = MixConv(10, 6, (3, 5, 7))
    assert [c.in_channels for c in mix.dw] == [4, 3, 3] == split_channels(10, 3)  # remainder to group 1
    assert [c.kernel_size for c in mix.dw] == [(3, 3), (5, 5), (7, 7)] and mix.pw.in_channels == 10


def test_multiception_follows_the_paper_definition(randomize_bn):
    """Concat of per-kernel depthwise outputs (kernel-major, as the authors' torch.cat) → BN → 1×1 → BN."""
    torch.manual_seed(0)
    m = randomize_bn(MulticeptionConv(3, 4, (3, 5), stride=2)).eval()
    x = torch.randn(2, 3, 9, 9)
    f = nn.functional
    ys = [f.conv2d(x, c.weight, padding=c.kernel_size[0] // 2, groups=3) for c in m.dw]
    cat = torch.cat(ys, 1)
    bn1_w = torch.cat([b.weight for b in m.bn1])
    bn1_b = torch.cat([b.bias for b in m.bn1])
    rm = torch.cat([b.running_mean for b in m.bn1])
    rv = torch.cat([b.running_var for b in m.bn1])
    h = f.batch_norm(cat, rm, rv, bn1_w, bn1_b, False, 0.0, 1e-5)
    h = f.conv2d(h, m.pw.weight, m.pw.bias, stride=2)
    ref = f.batch_norm(h, m.bn2.running_mean, m.bn2.running_var, m.bn2.weight, m.bn2.bias, False, 0.0, 1e-5)
    for path in (reference_path, contextlib.nullcontext):  # the per-branch modules, and the inference op
        with torch.no_grad(), path():
            torch.testing.assert_close(m(x), ref, rtol=1e-5, atol=1e-5)


def test_single_kernel_multiception_is_dsconv():
    torch.manual_seed(0)
    mc = MulticeptionConv(5, 6, (3,), stride=2, stride_in="depthwise")
    ds = DSConv(5, 6, 3, stride=2)
    ds.load_state_dict(mc.state_dict())
    x = torch.randn(3, 5, 8, 8)
    torch.testing.assert_close(mc(x), ds(x))


CASES = [
    ("multiception", (3, 5, 7), 1, "pointwise", None),
    ("multiception", (3, 5, 7), 2, "pointwise", "relu"),
    ("multiception", (3, 5), 2, "depthwise", None),
    ("multiception", (3, 3), 2, "pointwise", "relu6"),
    ("mixconv", (3, 5, 7), 2, "depthwise", None),
    ("mixconv", (5, 3), 1, "pointwise", "relu"),
    ("dsconv", 5, 2, "depthwise", None),
]


def _max_rel(a: torch.Tensor, b: torch.Tensor, scale: float | None = None) -> float:
    scale = float(b.detach().abs().max().clamp_min(1e-6)) if scale is None else scale
    return float((a - b).detach().abs().max()) / scale


def _reference(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with reference_path():  # the per-branch PyTorch formulation: one conv and BN per branch, concatenated
        return m(x)


def _train_alike(ref: nn.Module, fast: nn.Module, x: torch.Tensor, steps: int) -> None:
    """``steps`` training steps of ``fast`` (its one forward) and of ``ref`` (the per-branch formulation) on ``x``:
    outputs, input and parameter gradients and the BN buffers agree (running statistics over several steps)."""
    for _ in range(steps):
        xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
        yr, yf = _reference(ref, xr), fast(xf)
        g = torch.randn_like(yr)
        yr.backward(g)
        yf.backward(g)
        assert _max_rel(yf, yr) < 1e-5
        assert _max_rel(xf.grad, xr.grad) < 1e-5
    # some gradients are exactly 0 in theory (BN1's bias: BN2 removes constant shifts), so compare
    # against the largest gradient of the layer
    scale = max(float(p.grad.abs().max()) for p in ref.parameters())
    for (name, pr), pf in zip(ref.named_parameters(), fast.parameters()):
        assert _max_rel(pf.grad, pr.grad, scale) < 1e-5, name
    for (name, br), bf in zip(ref.named_buffers(), fast.buffers()):
        torch.testing.assert_close(bf, br, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("conv_type,ks,stride,stride_in,act", CASES)
def test_ops_equal_the_per_branch_pytorch_outputs_gradients_and_bn_stats(conv_type, ks, stride, stride_in, act,
                                                                         channels_last, randomize_bn):
    """The one forward (training: Multiception's branch op, one BN call; inference: the folded ops) against the
    per-branch PyTorch formulation, before and after BN folding."""
    torch.manual_seed(0)
    base = randomize_bn(create_conv(conv_type, 7, 5, ks, stride, stride_in=stride_in, mid_act=act))
    ref, fast = copy.deepcopy(base), copy.deepcopy(base)
    x = torch.randn(4, 7, 9, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    _train_alike(ref, fast, x, steps=2)
    ref.eval()
    fast.eval()
    with torch.no_grad():
        c_op = conv_type != "multiception" or (kernels.available() and kernels.act_code(fast.act) is not None)
        assert (dispatch.multi_inference_weights(fast, x) is not None) == c_op
        expected = _reference(ref, x)
        assert _max_rel(fast(x), expected) < 1e-5
        # after BN folding (done on the modules) the layer still agrees with the unfolded one
        folded = fold_bn(ref, x)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert _max_rel(folded(x), expected) < 1e-5
        assert _max_rel(_reference(folded, x), expected) < 1e-5


def test_mixconv_inference_makes_one_zero_embedded_depthwise_call():
    m = MixConv(4, 6, (3, 5, 7)).eval()
    with torch.no_grad():
        with _ConvCounter() as counter:
            m(torch.randn(2, 4, 8, 8))
        assert counter.convs == [(4, 1, 7, 7), (6, 4, 1, 1)]
        with reference_path(), _ConvCounter() as counter:
            m(torch.randn(2, 4, 8, 8))
    assert counter.convs == [(2, 1, 3, 3), (1, 1, 5, 5), (1, 1, 7, 7), (6, 4, 1, 1)]


def test_inference_cache_follows_weight_updates(randomize_bn):
    torch.manual_seed(0)
    for m in (randomize_bn(MixConv(6, 4, (3, 5))).eval(), randomize_bn(MulticeptionConv(6, 4, (3, 5))).eval()):
        x = torch.randn(2, 6, 8, 8)
        with torch.no_grad():
            m(x)
            m.dw[1].weight.mul_(2.0)
            m.bn2.running_mean.add_(0.5)
            torch.testing.assert_close(m(x), _reference(m, x), rtol=1e-5, atol=1e-5)


def test_stride_position_is_irrelevant_in_eval_but_not_in_training(randomize_bn):
    torch.manual_seed(0)
    pw = randomize_bn(MulticeptionConv(4, 6, (3, 5), stride=2, stride_in="pointwise"))
    dw = MulticeptionConv(4, 6, (3, 5), stride=2, stride_in="depthwise")
    dw.load_state_dict(pw.state_dict())
    x = torch.randn(4, 4, 10, 10)
    assert not torch.allclose(pw(x), dw(x), atol=1e-3)  # BN batch stats over 10×10 vs 5×5 positions
    dw.load_state_dict(pw.state_dict())  # same running statistics again
    pw.eval()
    dw.eval()
    with torch.no_grad():
        torch.testing.assert_close(pw(x), dw(x))
        # in eval the depthwise convs run at stride 2: C·Σk²·(H/2)² + m·C·C_out·(H/2)² MACs
        assert count_macs(pw, x[:1]) == 4 * (9 + 25) * 25 + 8 * 6 * 25
    pw.train()
    with FlopCounterMode(display=False) as fc:
        pw(x[:1])
    assert fc.get_total_flops() // 2 == 4 * (9 + 25) * 100 + 8 * 6 * 25


@pytest.mark.parametrize("cin,cout,ks", [(16, 16, (3, 5, 7)), (16, 32, (3, 5)), (32, 64, (3, 3)), (8, 5, (7,)),
                                         (3, 11, (1, 3, 9))])
def test_parameter_count_is_paper_eq6(cin, cout, ks):
    m = MulticeptionConv(cin, cout, ks, pointwise_bias=False)
    weights = sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))
    m_ = len(ks)
    assert weights == cin * sum(k * k for k in ks) + m_ * cin * cout == multiception_params(cin, cout, ks)
    assert count_params(m)[0] == multiception_params(cin, cout, ks, bn=True)
    assert count_params(MulticeptionConv(cin, cout, ks))[0] == multiception_params(cin, cout, ks, True, True)


@pytest.mark.parametrize("cin,cout,k", [(16, 16, 3), (32, 64, 3), (8, 24, 5)])
def test_standard_and_dsconv_params_eq1_eq3_and_cost_ratio_eq5(cin, cout, k):
    std = create_conv("standard", cin, cout, k, 1)
    ds = create_conv("dsconv", cin, cout, k, 1, pointwise_bias=False)
    assert std[0].weight.numel() == standard_params(cin, cout, k)
    assert sum(c.weight.numel() for c in ds.modules() if isinstance(c, nn.Conv2d)) == dsconv_params(cin, cout, k)
    x = torch.randn(1, cin, 12, 12)
    ratio = count_macs(ds.eval(), x) / count_macs(std.eval(), x)
    assert ratio == pytest.approx(1 / cout + 1 / k**2)  # eq. 5
    assert dsconv_params(cin, cout, k) / standard_params(cin, cout, k) == pytest.approx(1 / cout + 1 / k**2)


def test_multiception_saves_weights_once_output_channels_reach_about_16():
    # "Multiception significantly reduces the required number of network parameters if the number of
    # output channels reaches some extent (i.e. 16)": {3,5,7} vs standard 3×3 breaks even at C_out = 83/6.
    assert multiception_params(16, 16, (3, 5, 7)) < standard_params(16, 16, 3)
    assert multiception_params(16, 13, (3, 5, 7)) > standard_params(16, 13, 3)
    assert multiception_params(16, 14, (3, 5, 7)) < standard_params(16, 14, 3)


@pytest.mark.parametrize("conv_type", ["multiception", "mixconv", "dsconv"])
@pytest.mark.parametrize("bad,needle", [([], "empty"), ([3, 4], "4"), (4, "not odd"), ([0], "0"), ([-3], "-3"),
                                        ([3.0], "not an int"), (["3"], "not an int"), ("3", "must be"),
                                        ([True], "not an int"), (None, "must be"), ({3, 5}, "must be")])
def test_bad_kernel_sets_raise_clear_errors(conv_type, bad, needle):
    with pytest.raises(ValueError, match=conv_type) as err:
        create_conv(conv_type, 8, 8, bad, 1)
    assert needle in str(err.value)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="mixconv: in_ch=2 cannot be split into 3 groups"):
        create_conv("mixconv", 2, 8, (3, 5, 7), 1)
    with pytest.raises(ValueError, match="stride_in must be one of"):
        create_conv("multiception", 4, 8, (3, 5), 2, stride_in="middle")
    with pytest.raises(ValueError, match="conv_type 'multiception' got unknown options \\['impl'\\]; allowed: "
                                         "stride_in, pointwise_bias, mid_act"):
        create_conv("multiception", 4, 8, (3, 5), 1, impl="fast")
    with pytest.raises(ValueError, match="stride must be a positive int"):
        create_conv("dsconv", 4, 8, 3, 0)
    with pytest.raises(ValueError, match="expected input"):
        create_conv("multiception", 4, 8, (3, 5), 1)(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="one kernel size .* per stage"):
        stage_kernel_sizes("multiception", [(3, 5)], 3)
    assert validate_kernel_sizes("multiception", [3, 3]) == (3, 3)
    assert stage_kernel_sizes("multiception", None, 3) == [(3, 5, 7), (3, 5), (3, 3)]
    assert stage_kernel_sizes("dsconv", None, 3) == [3, 3, 3]


def test_dsconv_takes_the_largest_of_a_list_like_every_single_kernel_type():
    assert create_conv("dsconv", 4, 4, [3, 5], 1).kernel_sizes == (5,)


def test_which_op_computes_each_call_on_cpu():
    x = torch.randn(2, 8, 8, 8)
    mc, mix, ds = MulticeptionConv(8, 8, (3, 5)), MixConv(8, 8, (3, 5)), DSConv(8, 8, 3)
    fast = kernels.available()
    for m in (mc, mix, ds):
        m.train()
        assert dispatch.multi_branch_op_applies(m, x) == (fast and m is mc)
        assert dispatch.multi_inference_weights(m, x) is None  # training: the modules
        m.eval()
        with torch.no_grad():
            assert (dispatch.multi_inference_weights(m, x) is not None) == (fast or m is not mc)
            with reference_path():  # the profiler and BN folding see the layer's own modules
                assert dispatch.multi_inference_weights(m, x) is None
                assert not dispatch.multi_branch_op_applies(m, x)
            if m is mc:  # a user's FLOP counter counts the multi_depthwise op as the branches it stands for
                with FlopCounterMode(display=False) as counter:
                    m(x)
                assert counter.get_total_flops() // 2 == count_macs(m, x)
        assert dispatch.multi_inference_weights(m, x) is None  # eval, but autograd needs the modules


def test_mixconv_inference_macs_are_its_own_not_the_zero_embedded_ones():
    m = MixConv(6, 4, (3, 7)).eval()
    assert count_macs(m, torch.randn(1, 6, 8, 8)) == (3 * 9 + 3 * 49 + 6 * 4) * 64


def test_per_channel_mid_act_runs_the_modules_for_multiplier_gt_1():
    """PReLU over Multiception's concatenation is per channel: the C op (elementwise acts only) does not apply."""
    torch.manual_seed(0)
    m = MulticeptionConv(3, 4, (3, 5), mid_act="prelu").eval()
    m.act.weight.data = torch.linspace(0.1, 0.6, 6)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert dispatch.multi_inference_weights(m, x) is None
        torch.testing.assert_close(m(x), _reference(m, x))


@pytest.mark.parametrize("stride_in", ["depthwise", "pointwise"])
def test_training_folds_bn1_into_the_1x1_and_keeps_the_running_statistics(randomize_bn, stride_in):
    """Multiception training with BN1 on batch statistics runs BN1 → 1×1 as ``leannets::bn_pointwise`` (channels_last
    float32 CPU, no mid act; the 1×1 strided too, as the authors' layer trains) and updates each branch BN as
    BatchNorm would, also with momentum=None (cumulative average)."""
    torch.manual_seed(0)
    base = randomize_bn(MulticeptionConv(6, 5, (3, 5), stride=2, stride_in=stride_in)).train()
    for bn in base.bn1:
        bn.momentum = None
    ref, fast = copy.deepcopy(base), copy.deepcopy(base)
    x = torch.randn(4, 6, 9, 9).contiguous(memory_format=torch.channels_last)
    s_dw, _ = fast._strides()
    z, _ = fast._depthwise(x, s_dw)
    assert (z is not None and dispatch.bn_pointwise_applies(fast, z)) == kernels.available()
    if z is not None:
        assert not dispatch.bn_pointwise_applies(MulticeptionConv(6, 5, (3, 5), mid_act="relu"), z)
    _train_alike(ref, fast, x, steps=3)


def test_one_value_per_channel_in_training_is_refused_as_batchnorm_does():
    """bn_pointwise leaves one value per channel to BatchNorm, which refuses it (no variance to normalise by)."""
    m = MulticeptionConv(4, 4, (3, 5)).train()
    one = torch.randn(1, 8, 1, 1).contiguous(memory_format=torch.channels_last)
    assert not dispatch.bn_pointwise_applies(m, one)
    assert dispatch.bn_pointwise_applies(m, torch.randn(2, 8, 1, 1).contiguous(memory_format=torch.channels_last))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        m(torch.randn(1, 4, 1, 1).contiguous(memory_format=torch.channels_last))
