"""The C kernels as torch.library ops: torch.compile and torch.export trace them through their fake kernels,
their decompositions match the modules, and no global hook or private dispatch API is used."""
from __future__ import annotations

import copy
import random
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torch.nn as nn

import leannets
from leannets.layers import dispatch, ops
from leannets.layers.multiception import MulticeptionConv
from leannets.layers.xsepconv import XSepConv
from leannets.layers.xunit import XUnit


def _randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
    return module


def _models() -> dict[str, tuple[nn.Module, str | None]]:
    """name → (eval model, the leannets op its inference runs or None)."""
    xsep = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), XSepConv(16, 5, 2, act="hswish"), nn.Conv2d(16, 8, 1))
    multi = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), MulticeptionConv(8, 12, (3, 5, 7), stride=2))
    xunit = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), XUnit(8, 9), nn.Conv2d(8, 4, 1))
    return {"xsepconv": (_randomize_bn(xsep).eval(), "xsep_block"),
            "multiception": (_randomize_bn(multi).eval(), "multi_depthwise"),
            "xunit": (_randomize_bn(xunit).eval(), None)}


@pytest.mark.parametrize("name", ["xsepconv", "multiception", "xunit"])
def test_compile_and_export_match_eager(name: str) -> None:
    model, op = _models()[name]
    x = torch.randn(2, 3, 14, 14)
    with torch.no_grad():
        eager = model(x)
        with dispatch.reference_path():
            reference = model(x)
        torch.testing.assert_close(eager, reference, atol=1e-5, rtol=1e-5)
        compiled = torch.compile(model, backend="inductor", fullgraph=True)(x)
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
        program = torch.export.export(model, (x,))
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        if op is not None:  # the op itself is in the exported graph, through its fake kernel
            assert f"leannets.{op}.default" in targets, targets
        torch.testing.assert_close(program.module()(x), eager, atol=1e-5, rtol=1e-5)
        decomposed = program.run_decompositions(ops.DECOMPOSITIONS)
        left = {str(n.target) for n in decomposed.graph.nodes if n.op == "call_function"}
        assert not any(t.startswith("leannets.") for t in left), left
        torch.testing.assert_close(decomposed.module()(x), eager, atol=1e-5, rtol=1e-5)


def test_compiled_training_step_takes_the_c_backward() -> None:
    conv = leannets.layers.depthwise.conv2d(8, 8, 5, 1, 2, groups=8, bias=True)
    x = torch.randn(2, 8, 9, 9)  # NCHW: the C backward applies to any kernel size
    grads = []
    for fn in (conv, torch.compile(conv, backend="inductor")):
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        fn(xi).square().sum().backward()
        grads.append([xi.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_compiled_multiception_training_step_takes_the_branch_op() -> None:
    """Training a Multiception layer runs every branch in ``leannets::multi_depthwise_conv`` (eager and
    compiled), with the outputs, gradients and BN statistics of the per-branch PyTorch layer."""
    torch.manual_seed(0)
    base = MulticeptionConv(8, 12, (3, 5, 7)).train()
    x = torch.randn(2, 8, 9, 9).contiguous(memory_format=torch.channels_last)
    results = []
    for run in ("reference", "eager", "compiled"):
        layer = copy.deepcopy(base)
        xi = x.clone().requires_grad_(True)
        if run == "reference":
            with dispatch.reference_path():
                out = layer(xi)
        else:
            out = (layer if run == "eager" else torch.compile(layer, backend="inductor"))(xi)
        if run == "eager":
            names = _graph_names(out.grad_fn)
            assert any("leannets_multi_depthwise_conv" in name for name in names)
            assert any("leannets_bn_pointwise" in name for name in names)  # BN1 folded into the 1×1
        out.square().sum().backward()
        results.append([out.detach(), xi.grad, *(p.grad for p in layer.parameters()), *layer.buffers()])
    scale = max(float(g.abs().max()) for g in results[0][1:])
    for got in results[1:]:
        for g, want in zip(got, results[0]):
            assert (g - want).abs().max() <= 1e-5 * max(scale, float(want.abs().max()))


def _graph_names(fn, seen: set | None = None) -> set[str]:  # noqa: ANN001
    """Class names of every autograd node reachable from ``fn``."""
    seen = set() if seen is None else seen
    if fn is None or fn in seen:
        return set()
    seen.add(fn)
    names = {type(fn).__name__}
    for nxt, _ in fn.next_functions:
        names |= _graph_names(nxt, seen)
    return names


def _op_samples() -> list[tuple[object, tuple]]:
    block = _randomize_bn(XSepConv(8, 5)).eval()
    w = block.kernel_weights()
    x = torch.randn(2, 8, 7, 7)
    xsep = (x, w["w2"], w["b2"], w["pad2"], w["w1"], w["b1"], w["wk"], w["bk"], 5, 2, w["act"], False)
    multi = (x, torch.randn(8 * (9 + 25)), torch.randn(16), [3, 5], 1, 1)
    dw = (x.contiguous(memory_format=torch.channels_last).requires_grad_(True), torch.randn(8, 1, 5, 5,
          requires_grad=True), torch.randn(8, requires_grad=True), [1, 1], [2, 2])
    multi_conv = (x.contiguous(memory_format=torch.channels_last).requires_grad_(True),
                  torch.randn(8 * (9 + 25 + 49), requires_grad=True), [3, 5, 7], 2)
    z = (torch.randn(4, 12, 5, 5) * 2 + 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    bn_pw = (z, torch.rand(12, requires_grad=True) + 0.5, torch.randn(12, requires_grad=True),
             torch.randn(6, 12, 1, 1, requires_grad=True), torch.randn(6, requires_grad=True), 1e-5, 2)
    bn = ((torch.randn(4, 12, 5, 5) * 2 + 1).contiguous(memory_format=torch.channels_last).requires_grad_(True),
          torch.rand(12, requires_grad=True) + 0.5, torch.randn(12, requires_grad=True), 1e-5)
    return [(torch.ops.leannets.xsep_block.default, xsep), (torch.ops.leannets.multi_depthwise.default, multi),
            (torch.ops.leannets.depthwise_conv2d.default, dw),
            (torch.ops.leannets.multi_depthwise_conv.default, multi_conv), (torch.ops.leannets.bn_pointwise.default, bn_pw),
            (torch.ops.leannets.batch_norm_train.default, bn)]


SMALL, WIDE, LARGE = (6, 10, 7, 5), (6, 40, 7, 5), (2, 40, 64, 64)  # WIDE: 16-channel blocks and a tail; LARGE:
# enough pixels for Σ g zᵀ in chunks


@pytest.mark.parametrize("bias,stride,dtype,shape", [
    (True, 1, torch.float32, SMALL), (False, 1, torch.float32, SMALL), (True, 2, torch.float32, SMALL),
    (True, 2, torch.bfloat16, SMALL), (True, 1, torch.float32, WIDE), (False, 1, torch.bfloat16, WIDE),
    (True, 1, torch.float32, LARGE)])
def test_bn_pointwise_equals_batch_norm_then_1x1(bias: bool, stride: int, dtype: torch.dtype,
                                                 shape: tuple[int, int, int, int]) -> None:
    """``leannets::bn_pointwise`` = conv1x1(batch_norm(z) on batch statistics, stride): output, the statistics (biased
    variance, float32) and every gradient, to float32 rounding (bf16 data: computed in float32, rounded once);
    differentiating its statistics is a clear error."""
    torch.manual_seed(0)
    c = shape[1]
    z = (torch.randn(*shape) * 3 - 2).to(dtype).contiguous(memory_format=torch.channels_last)
    gamma, beta = torch.rand(c) + 0.5, torch.randn(c)
    weight, b = torch.randn(4, c, 1, 1), torch.randn(4) if bias else None
    leaves = [t.clone().requires_grad_(True) for t in (z, gamma, beta, weight, *([b] if bias else []))]
    out, mean, var = ops.bn_pointwise(*leaves[:4], leaves[4] if bias else None, 1e-5, stride)
    refs = [t.detach().float().requires_grad_(True) for t in leaves]
    want = F.conv2d(F.batch_norm(refs[0], None, None, refs[1], refs[2], True, 0.0, 1e-5), refs[3],
                    refs[4] if bias else None, stride)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    tol = 1e-5 if dtype == torch.float32 else 2 ** -8
    assert (out.float() - want).abs().max() <= tol * want.abs().max()
    torch.testing.assert_close(mean, z.float().mean((0, 2, 3)))
    torch.testing.assert_close(var, z.float().var((0, 2, 3), unbiased=False), rtol=1e-5, atol=1e-5)
    g = torch.randn_like(want).to(dtype).float()  # the same (bf16-representable) output gradient for both
    for got, exp in zip(torch.autograd.grad(out, leaves, g.to(dtype)), torch.autograd.grad(want, refs, g)):
        assert got.dtype == exp.dtype or got.dtype == dtype
        assert (got.float() - exp).abs().max() <= tol * exp.abs().max().clamp_min(1.0)
    out, mean, _ = ops.bn_pointwise(*leaves[:4], None, 1e-5, stride)
    with pytest.raises(RuntimeError, match="batch statistics are not differentiable"):
        (out.float().sum() + mean.sum()).backward()


@pytest.mark.parametrize("channels,dtype,layout", [(12, torch.float32, "cl"), (40, torch.float32, "cl"),
                                                    (3, torch.float32, "cl"), (12, torch.bfloat16, "cl"),
                                                    (12, torch.float32, "nchw")])
def test_batch_norm_train_equals_batch_norm(channels: int, dtype: torch.dtype, layout: str) -> None:
    """``leannets::batch_norm_train`` = batch_norm on batch statistics: output, mean and biased variance (float32) and
    every gradient to float32 rounding, for channel counts with and without a 16-channel block (C kernel), bf16
    maps to bf16 rounding (against PyTorch's BatchNorm on the same bf16 data), and the decomposition for NCHW maps."""
    torch.manual_seed(0)
    x = (torch.randn(8, channels, 9, 7) * 3 + 5).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last) if layout == "cl" else x.contiguous()
    leaves = [t.clone().requires_grad_(True) for t in (x, torch.rand(channels) + 0.5, torch.randn(channels))]
    out, mean, var = ops.batch_norm_train(*leaves, 1e-5)
    refs = [t.detach().clone().requires_grad_(True) for t in leaves]
    want = F.batch_norm(refs[0], None, None, refs[1], refs[2], True, 0.0, 1e-5)
    tol = 1e-5 if dtype == torch.float32 else 2 ** -7
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert (out.float() - want.float()).abs().max() <= tol * want.float().abs().max()
    torch.testing.assert_close(mean, x.float().mean((0, 2, 3)), rtol=tol, atol=tol)
    torch.testing.assert_close(var, x.float().var((0, 2, 3), unbiased=False), rtol=tol, atol=tol)
    g = torch.randn_like(want)
    for got, exp in zip(torch.autograd.grad(out, leaves, g), torch.autograd.grad(want, refs, g)):
        assert got.dtype == exp.dtype and got.shape == exp.shape
        assert (got.float() - exp.float()).abs().max() <= tol * exp.float().abs().max().clamp_min(1.0)
    out, mean, _ = ops.batch_norm_train(*leaves, 1e-5)
    with pytest.raises(RuntimeError, match="batch statistics are not differentiable"):
        (out.float().sum() + mean.sum()).backward()


@pytest.mark.parametrize("index", range(6))
def test_opcheck(index: int) -> None:
    """torch.library's own checks: schema, fake kernel against the real one, autograd registration."""
    op, args = _op_samples()[index]
    torch.library.opcheck(op, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("seed", range(20))
def test_xsep_decomposition_equals_the_modules(seed: int) -> None:
    rng = random.Random(seed)
    c = rng.choice([1, 5, 16, 24])
    block = _randomize_bn(XSepConv(c, rng.choice([3, 5, 7]), rng.choice([1, 2]), variant=rng.choice(["standard", "no2x2"]),
                                   padding=rng.choice(["asymmetric", "symmetric", "improved"]),
                                   act=rng.choice(["relu", "hswish", None])), seed).eval()
    x = torch.randn(2, c, rng.choice([1, 4, 7]), rng.choice([2, 5, 8]))
    with torch.no_grad():
        w = block.kernel_weights()
        for tap_major in (False, True):
            sfx = "_t" if tap_major else ""
            got = ops.xsep_block_reference(x, w[f"w2{sfx}"], w["b2"], w["pad2"], w[f"w1{sfx}"], w["b1"], w[f"wk{sfx}"],
                                           w["bk"], block.kernel_size, block.stride, w["act"], tap_major)
            torch.testing.assert_close(got, block.forward_reference(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["xsepconv", "multiception", "xunit"])
def test_bf16_autocast_inference_keeps_bf16_through_the_ops(name: str) -> None:
    """Under bf16 autocast the ops take the bf16 activations as they come (no cast to float32) and the model
    stays within bf16 accuracy of float32: 3% of the output's largest value (stated tolerance: a few
    bf16 roundings, 2^-8 each, through every layer)."""
    model, op = _models()[name]
    x = torch.randn(2, 3, 14, 14)
    seen: list[torch.dtype] = []
    with torch.no_grad():
        want = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16), _OpDtypes(seen):
            got = model(x)
    if op is not None:
        assert seen and set(seen) == {torch.bfloat16}, seen
    assert (got.float() - want).abs().max() <= 0.03 * want.abs().max()


class _OpDtypes(torch.overrides.TorchFunctionMode):
    """Records the input dtype of every leannets op called."""

    def __init__(self, seen: list[torch.dtype]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if str(getattr(func, "__module__", "")) == "torch._ops.leannets" or "leannets." in str(func):
            self.seen.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_bf16_multi_depthwise_equals_float32_on_the_same_inputs() -> None:
    """The Multiception op on bf16 data: its float32 result on the same inputs rounded once (stated
    tolerance: relative 2^-8 plus 1e-5 of the largest value)."""
    gen = torch.Generator().manual_seed(0)
    for c, ks, stride, act in [(8, [3, 5], 1, 1), (17, [3, 5, 7], 2, 2), (32, [3, 3], 1, 0)]:
        x = torch.randn(2, c, 9, 11, generator=gen).bfloat16()
        w = torch.randn(sum(k * k for k in ks) * c, generator=gen)
        b = torch.randn(len(ks) * c, generator=gen)
        got = ops.multi_depthwise(x, w, b, ks, stride, act)
        want = ops.multi_depthwise_reference(x.double(), w.double(), b.double(), ks, stride, act)
        assert got.dtype == torch.bfloat16
        err = (got.double() - want).abs()
        assert (err <= want.abs() * 2 ** -8 + 1e-5 * want.abs().max()).all()


def test_no_private_dispatch_api_and_no_global_hooks() -> None:
    root = Path(leannets.__file__).parent
    pattern = re.compile(r"_python_dispatch|register_module_\w*_hook")
    found = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, found
