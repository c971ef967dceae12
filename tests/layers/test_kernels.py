"""The C kernels against the PyTorch path (the oracle): random shapes, strides, paddings, layouts."""
from __future__ import annotations

import copy
import random
import warnings

import pytest
import torch
import torch.nn as nn

from leannets.analysis.fold_bn import fold_bn
from leannets.layers import dispatch, kernels, ops
from leannets.layers.depthwise import DepthwiseConv2d
from leannets.layers.padding import assign_padding_schedule
from leannets.layers.xsepconv import XSepConv

pytestmark = pytest.mark.skipif(not kernels.available(), reason="no C compiler: the PyTorch path is used")


def _randomize_bn(module: nn.Module, gen: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=gen))
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)


def _case(seed: int) -> tuple[XSepConv, torch.Tensor]:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    c = rng.choice([1, 3, 8, 16, 17, 24, 40, 72])
    h, w = rng.choice([1, 2, 5, 7, 8, 13, 14, 28]), rng.choice([1, 2, 6, 7, 9, 14, 31])
    block = XSepConv(c, rng.choice([3, 5, 7, 9]), rng.choice([1, 2]), variant=rng.choice(["standard", "no2x2"]),
                     padding=rng.choice(["asymmetric", "symmetric", "improved"]),
                     act=rng.choice(["relu", "hswish", None]))
    pad = getattr(getattr(block, "conv_2x2", None), "pad", None)
    if pad is not None and pad.strategy == "improved":
        pad.total = rng.choice([1, 2, 4, 5, 9])
        pad.index = rng.randint(1, pad.total)
    _randomize_bn(block, gen)
    x = torch.randn(rng.choice([1, 3]), c, h, w, generator=gen)
    if rng.random() < 0.5:
        x = x.contiguous(memory_format=torch.channels_last)
    return block.eval(), x


@pytest.mark.parametrize("seed", range(60))
def test_xsep_kernel_equals_reference(seed: int) -> None:
    block, x = _case(seed)
    with torch.no_grad():
        ref = block.forward_reference(x)
        assert dispatch.xsep_weights(block, x) is not None
        out = block(x)
    assert out.shape == ref.shape
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    scale = ref.abs().max().clamp_min(1.0)
    assert (out - ref).abs().max() <= 1e-5 * scale


@pytest.mark.parametrize("seed", [3, 7, 11])
def test_xsep_kernel_after_fold_bn(seed: int) -> None:
    block, x = _case(seed)
    folded = fold_bn(block, x[:1])
    assert folded.folded_bn_pairs >= 2
    with torch.no_grad():
        ref = block.forward_reference(x)
        out = folded(x)
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max().clamp_min(1.0)


def test_padding_schedule_reaches_the_kernel() -> None:
    """Four improved-padding directions give four different outputs, each equal to the reference."""
    net = nn.Sequential(*[XSepConv(8, 3, padding="improved") for _ in range(4)]).eval()
    assign_padding_schedule(net, torch.zeros(1, 8, 6, 6))
    x = torch.randn(1, 8, 6, 6)
    outs = []
    with torch.no_grad():
        for block in net:
            out, ref = block(x), block.forward_reference(x)
            assert torch.allclose(out, ref, atol=1e-5)
            outs.append(out)
    assert all(not torch.allclose(outs[0], o) for o in outs[1:])


def test_kernel_not_used_for_training_autograd_or_capture() -> None:
    block = XSepConv(8, 5).eval()
    assert dispatch.xsep_weights(XSepConv(8, 5, act="prelu").eval().requires_grad_(False), torch.randn(1, 8, 7, 7)) is None
    x = torch.randn(1, 8, 7, 7)
    assert dispatch.xsep_weights(block, x) is None  # parameters require grad and autograd is on
    with torch.no_grad():
        assert dispatch.xsep_weights(block, x) is not None
        assert dispatch.xsep_weights(block, x.double()) is None
        assert dispatch.xsep_weights(block.train(), x) is None
    block.eval()
    traced = torch.jit.trace(block, x, check_trace=False)  # tracing sees the PyTorch layers, not the kernel
    assert any(n.kind() == "aten::_convolution" for n in traced.inlined_graph.nodes())
    for variant in ("behind", "parallel"):
        with torch.no_grad():
            assert dispatch.xsep_weights(XSepConv(8, 5, variant=variant).eval(), x) is None


def test_cached_weights_follow_parameter_updates() -> None:
    block = XSepConv(8, 3).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        before = block(x)
        block.conv_1xk.conv.weight.mul_(2.0)
        after = block(x)
        assert torch.allclose(after, block.forward_reference(x), atol=1e-5)
    assert not torch.allclose(before, after)


def test_disabled_kernels_fall_back_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kernels._STATE, "tried", False)
    monkeypatch.setitem(kernels._STATE, "lib", None)
    monkeypatch.setenv(kernels.KERNELS_ENV, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kernels.available()
        block = XSepConv(8, 3).eval()
        with torch.no_grad():
            x = torch.randn(1, 8, 5, 5)
            assert torch.equal(block(x), block.forward_reference(x))


def test_missing_compiler_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kernels._STATE, "tried", False)
    monkeypatch.setitem(kernels._STATE, "lib", None)
    monkeypatch.delenv(kernels.KERNELS_ENV, raising=False)
    monkeypatch.setattr(kernels, "_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        assert not kernels.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kernels.available()  # decided once per process


def test_library_is_cached_by_content(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEANNETS_CACHE", str(tmp_path))
    cc = kernels._compiler()
    first, why = kernels._build(cc)
    assert first is not None and first.parent == tmp_path / "kernels", why
    mtime = first.stat().st_mtime_ns
    second, _ = kernels._build(cc)
    assert second == first and second.stat().st_mtime_ns == mtime


def _grad_case(seed: int) -> tuple[DepthwiseConv2d, torch.Tensor]:
    rng = random.Random(1000 + seed)
    c = rng.choice([1, 3, 16, 17, 24, 40])
    kh, kw = rng.choice([(2, 2), (3, 3), (1, 5), (5, 1), (5, 5), (7, 7), (9, 9), (1, 7)])
    stride = (rng.choice([1, 2]), rng.choice([1, 2]))
    padding = (rng.randint(0, kh // 2 + 1), rng.randint(0, kw // 2 + 1))
    conv = DepthwiseConv2d(c, c, (kh, kw), stride, padding, groups=c, bias=rng.random() < 0.5)
    h, w = rng.choice([kh, 7, 8, 13, 16]), rng.choice([kw, 6, 9, 16])
    x = torch.randn(rng.choice([1, 2, 5]), c, max(h, kh), max(w, kw))
    if rng.random() < 0.5:
        x = x.contiguous(memory_format=torch.channels_last)
    return conv, x


@pytest.mark.parametrize("seed", range(40))
def test_depthwise_fast_backward_equals_pytorch(seed: int) -> None:
    conv, x = _grad_case(seed)
    xk = x.clone().requires_grad_(True)
    out = ops.depthwise_conv2d(xk, conv.weight, conv.bias, conv.stride, conv.padding)
    x64 = x.double().requires_grad_(True)
    params64 = [p.detach().double().requires_grad_(True) for p in conv.parameters()]
    ref = torch.nn.functional.conv2d(x64, params64[0], params64[1] if conv.bias is not None else None, conv.stride,
                                     conv.padding, 1, conv.groups)
    grad = torch.randn(ref.shape, dtype=torch.float64)
    out.backward(grad.float())
    ref.backward(grad)
    assert out.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
    for got, want in [(out, ref), (xk.grad, x64.grad), *((p.grad, q.grad) for p, q in zip(conv.parameters(),
                                                                                          params64))]:
        assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max().clamp_min(1.0)


def test_depthwise_module_takes_the_op_where_measured_faster() -> None:
    big = DepthwiseConv2d(16, 16, 5, 1, 2, groups=16, bias=False)
    small = DepthwiseConv2d(16, 16, 3, 1, 1, groups=16, bias=False)
    nchw = torch.randn(2, 16, 8, 8)
    nhwc = nchw.contiguous(memory_format=torch.channels_last)
    assert dispatch.depthwise_op_applies(nhwc, big)
    assert dispatch.depthwise_op_applies(nchw, small)  # any kernel size in NCHW
    assert not dispatch.depthwise_op_applies(nhwc, small)  # oneDNN's 3×3 backward is faster
    with torch.no_grad():
        assert not dispatch.depthwise_op_applies(nhwc, big)  # float32 inference: PyTorch's forward
    assert not dispatch.depthwise_op_applies(nhwc.double(), copy.deepcopy(big).double())
    out = big(nhwc.requires_grad_(True))
    assert "leannets_depthwise_conv2d" in type(out.grad_fn).__name__  # the op with its registered C backward
    torch.testing.assert_close(out, torch.nn.functional.conv2d(nhwc, big.weight, None, 1, 2, 1, 16))


def test_bf16_depthwise_always_takes_the_op() -> None:
    """oneDNN's bf16 depthwise conv is slower than float32: under bf16 autocast, or with bf16 data and
    weights, every depthwise conv runs the op (training or not); bf16 data with float32 weights outside
    autocast is an error in PyTorch, and stays PyTorch's."""
    small = DepthwiseConv2d(16, 16, 3, 1, 1, groups=16, bias=False)
    nhwc = torch.randn(2, 16, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dispatch.depthwise_op_applies(nhwc, small)
        assert dispatch.depthwise_op_applies(nhwc.bfloat16(), small)
        with torch.no_grad():
            assert dispatch.depthwise_op_applies(nhwc.bfloat16(), small)
            y = small(nhwc)
        assert y.dtype == torch.float32  # float32 data stays float32 (not autocast to oneDNN's bf16 conv)
    assert dispatch.depthwise_op_applies(nhwc.bfloat16(), copy.deepcopy(small).bfloat16())
    assert not dispatch.depthwise_op_applies(nhwc.bfloat16(), small)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = small(nhwc.bfloat16().requires_grad_(True))
    assert out.dtype == torch.bfloat16 and "leannets_depthwise_conv2d" in type(out.grad_fn).__name__


@pytest.mark.parametrize("seed", range(20))
def test_bf16_depthwise_forward_and_backward(seed: int) -> None:
    """bf16 data, float32 weights and sums: the C forward and backward equal a float64 computation on the
    same bf16 inputs to within one bf16 rounding of the result (relative 2^-8, plus 1e-5 of the largest
    value for sums that cancel); the float32 weight gradient to 1e-4 of its largest value."""
    conv, x = _grad_case(seed)
    xb = x.bfloat16().requires_grad_(True)
    out = ops.depthwise_conv2d(xb, conv.weight, conv.bias, conv.stride, conv.padding)
    x64 = xb.detach().double().requires_grad_(True)
    params64 = [p.detach().double().requires_grad_(True) for p in conv.parameters()]
    ref = torch.nn.functional.conv2d(x64, params64[0], params64[1] if conv.bias is not None else None, conv.stride,
                                     conv.padding, 1, conv.groups)
    grad = torch.randn(ref.shape, dtype=torch.float64).bfloat16()
    out.backward(grad)
    ref.backward(grad.double())
    assert out.dtype == xb.grad.dtype == torch.bfloat16 and conv.weight.grad.dtype == torch.float32
    for got, want in [(out, ref), (xb.grad, x64.grad)]:
        err = (got.double() - want).abs()
        assert (err <= want.abs() * 2 ** -8 + 1e-5 * want.abs().max().clamp_min(1.0)).all()
    for p, q in zip(conv.parameters(), params64):
        assert (p.grad.double() - q.grad).abs().max() <= 1e-4 * q.grad.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("seed", range(30))
def test_bf16_xsep_kernel_equals_float32_on_the_same_inputs(seed: int) -> None:
    """The XSep op on bf16 data (both layouts): the float32 block on the same (bf16-representable) input,
    rounded once to bf16 (within one bf16 rounding: relative 2^-8, plus 1e-5 of the largest value)."""
    block, x = _case(seed)
    xb = x.bfloat16()
    with torch.no_grad():
        w = dispatch.xsep_weights(block, xb.float())
        got = ops.xsep_block(xb, w, block.kernel_size, block.stride)
        want = block.forward_reference(xb.float()).double()
    assert got.dtype == torch.bfloat16
    err = (got.double() - want).abs()
    assert (err <= want.abs() * 2 ** -8 + 1e-5 * want.abs().max().clamp_min(1.0)).all()


def test_double_backward_through_the_c_backward_fails_loudly() -> None:
    conv = DepthwiseConv2d(16, 16, 5, 1, 2, groups=16, bias=False)
    x = torch.randn(1, 16, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    (g,) = torch.autograd.grad(conv(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        g.sum().backward()


def _multi_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
    rng = random.Random(2000 + seed)
    c = rng.choice([1, 5, 16, 17, 32])
    ks = rng.choice([[3, 5, 7], [3, 5], [3, 3], [5], [7, 3]])
    h, w = rng.choice([1, 5, 8, 13, 16]), rng.choice([2, 6, 9, 16])
    x = torch.randn(rng.choice([1, 2, 3]), c, h, w)
    if rng.random() < 0.5:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randn(c * sum(k * k for k in ks)), ks, rng.choice([1, 2])


def _multi_against_float64(x: torch.Tensor, weights: torch.Tensor, ks: list[int], stride: int,
                           grad: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(op, float64 reference) pairs of the output and both gradients of ``leannets::multi_depthwise_conv``."""
    xk, wk = x.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    out = ops.multi_depthwise_conv(xk, wk, ks, stride)
    x64, w64 = x.detach().double().requires_grad_(True), weights.double().requires_grad_(True)
    ref = ops.multi_depthwise_reference(x64, w64, w64.new_zeros(len(ks) * x.shape[1]), ks, stride, 0)
    grad = torch.randn(ref.shape, dtype=torch.float64).to(x.dtype) if grad is None else grad
    out.backward(grad)
    ref.backward(grad.double())
    if x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1:  # else both layouts are one
        assert out.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
    assert out.dtype == xk.grad.dtype == x.dtype and wk.grad.dtype == torch.float32
    return [(out, ref), (xk.grad, x64.grad), (wk.grad, w64.grad)]


@pytest.mark.parametrize("seed", range(24))
def test_multi_depthwise_conv_forward_and_backward_equal_float64(seed: int) -> None:
    """All Multiception branches in one op (the training path): output, input gradient (summed over the
    branches) and every branch's weight gradient within 1e-5 of their largest value."""
    for got, want in _multi_against_float64(*_multi_case(seed)):
        assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max().clamp_min(1.0)


@pytest.mark.parametrize("seed", range(12))
def test_bf16_multi_depthwise_conv_forward_and_backward(seed: int) -> None:
    """bf16 data, float32 weights and sums: output and input gradient within one bf16 rounding of a float64
    computation on the same bf16 inputs (relative 2^-8, plus 1e-5 of the largest value); the float32 weight
    gradient within 1e-4 of its largest value."""
    x, weights, ks, stride = _multi_case(seed)
    (out, ref), (gx, gx64), (gw, gw64) = _multi_against_float64(x.bfloat16(), weights, ks, stride)
    for got, want in [(out, ref), (gx, gx64)]:
        err = (got.double() - want).abs()
        assert (err <= want.abs() * 2 ** -8 + 1e-5 * want.abs().max().clamp_min(1.0)).all()
    assert (gw.double() - gw64).abs().max() <= 1e-4 * gw64.abs().max().clamp_min(1.0)


def test_multi_depthwise_ops_reject_even_kernels() -> None:
    x = torch.randn(1, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="odd and positive"):
        ops.multi_depthwise_conv(x, torch.randn(4 * (9 + 16)), [3, 4], 1)
    with pytest.raises(ValueError, match="odd and positive"):
        ops.multi_depthwise(x, torch.randn(4 * (9 + 16)), torch.zeros(8), [3, 4], 1, 0)
