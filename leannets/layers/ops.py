"""The C kernels as ``torch.library`` ops in the ``leannets`` namespace.

- ``leannets::xsep_block``: a whole BN-folded XSepConv block (2×2 → act → 1×k → act → k×1 → act), inference.
- ``leannets::multi_depthwise``: every BN-folded depthwise branch of a Multiception layer, inference.
- ``leannets::multi_depthwise_conv``: the raw depthwise branches of a Multiception layer (no BN, no bias), concatenated,
  for training: its backward, ``leannets::multi_depthwise_conv_backward``, computes every branch's gradients in
  one C call (the input gradient summed over the branches, written once).
- ``leannets::depthwise_conv2d``: a depthwise conv (PyTorch's forward) whose backward,
  ``leannets::depthwise_conv2d_backward``, runs on the NHWC C kernels.
- ``leannets::bn_pointwise``: a BatchNorm on batch statistics followed by a 1×1 conv, computed without the
  normalized tensor (training; PyTorch ops, no C): Multiception's BN over its wide concatenation folded into the
  1×1 conv that reads it, and a backward, ``leannets::bn_pointwise_backward``, that gets every gradient from two
  matrix products and one elementwise pass.

Each op has a fake (meta) kernel, so ``torch.compile`` and ``torch.export`` trace through it, and a
decomposition into ordinary PyTorch ops (:data:`DECOMPOSITIONS`, for
``ExportedProgram.run_decompositions`` and ONNX); the CPU kernel runs that decomposition when the C
library is unavailable. Gradients of ``depthwise_conv2d`` are registered with ``register_autograd``; its
backward cannot be differentiated again (a clear error).

**Precision.** Activations may be float32 or bfloat16, and the result has the input's dtype; weights are
used in float32 and every sum is float32 (the C kernels widen bf16 as they copy it in). Autocast does not
cast the ops' inputs: a bf16 activation from the layer before stays bf16 (half the memory traffic), and
oneDNN's bf16 depthwise convolution, slower than its float32 one on CPU, is never called.
"""
from __future__ import annotations

from typing import Optional, Sequence

import ctypes
import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

from . import kernels

__all__ = ["xsep_block", "multi_depthwise", "multi_depthwise_conv", "depthwise_conv2d", "bn_pointwise",
           "batch_norm_train", "xsep_block_reference", "multi_depthwise_reference", "DECOMPOSITIONS"]

_LIB = torch.library.Library("leannets", "DEF")
_LIB.define("xsep_block(Tensor x, Tensor? w2, Tensor? b2, Tensor? pad2, Tensor w1, Tensor b1, Tensor wk, Tensor bk, "
            "int k, int stride, int act, bool tap_major=False) -> Tensor")
_LIB.define("multi_depthwise(Tensor x, Tensor weights, Tensor bias, int[] kernel_sizes, int stride, int act) -> Tensor")
_LIB.define("multi_depthwise_conv(Tensor x, Tensor weights, int[] kernel_sizes, int stride) -> Tensor")
_LIB.define("multi_depthwise_conv_backward(Tensor grad, Tensor x, Tensor weights, int[] kernel_sizes, int stride, "
            "bool[] output_mask) -> (Tensor, Tensor)")
_LIB.define("depthwise_conv2d(Tensor x, Tensor weight, Tensor? bias, int[] stride, int[] padding) -> Tensor")
_LIB.define("bn_pointwise(Tensor z, Tensor gamma, Tensor beta, Tensor weight, Tensor? bias, float eps, int stride) "
            "-> (Tensor, Tensor, Tensor)")
_LIB.define("bn_pointwise_backward(Tensor grad, Tensor z, Tensor gamma, Tensor beta, Tensor weight, Tensor mean, "
            "Tensor invstd, int stride) -> (Tensor, Tensor, Tensor, Tensor, Tensor)")
_LIB.define("depthwise_conv2d_backward(Tensor grad, Tensor x, Tensor weight, int[] stride, int[] padding, "
            "bool[] output_mask) -> (Tensor, Tensor, Tensor)")
_LIB.define("batch_norm_train(Tensor x, Tensor weight, Tensor bias, float eps) -> (Tensor, Tensor, Tensor)")
_LIB.define("batch_norm_train_backward(Tensor grad, Tensor x, Tensor weight, Tensor mean, Tensor invstd) "
            "-> (Tensor, Tensor, Tensor)")


_KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def _bf(x: torch.Tensor) -> int:
    """The kernels' activation-dtype flag: 1 for bfloat16, 0 for float32."""
    return int(x.dtype == torch.bfloat16)


def _work_dtype(x: torch.Tensor, w: torch.Tensor) -> torch.dtype:
    """The dtype a reference computes in: float32 for bf16/fp16 data (the kernels' float32 sums)."""
    dtype = torch.promote_types(x.dtype, w.dtype)
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _without_autocast(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an op's CPU kernel with CPU autocast off: its PyTorch calls keep the dtypes it chose."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_autocast_enabled("cpu"):
            return fn(*args, **kwargs)
        with torch.autocast("cpu", enabled=False):
            return fn(*args, **kwargs)
    return run


def _act(y: torch.Tensor, act: int) -> torch.Tensor:
    return y if act == 0 else F.relu(y) if act == 1 else F.hardswish(y)


def _nhwc(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _xsep_out_shape(x: torch.Tensor, stride: int) -> tuple[int, int, int, int]:
    n, c, h, w = x.shape
    return n, c, (h - 1) // stride + 1, (w - 1) // stride + 1


# -- xsep_block ------------------------------------------------------------------------------------
def xsep_block_reference(x: torch.Tensor, w2: Optional[torch.Tensor], b2: Optional[torch.Tensor],
                         pad2: Optional[torch.Tensor], w1: torch.Tensor, b1: torch.Tensor, wk: torch.Tensor,
                         bk: torch.Tensor, k: int, stride: int, act: int, tap_major: bool = False) -> torch.Tensor:
    """``xsep_block`` in PyTorch ops (the decomposition). The 2×2 layer pads each channel on its own sides
    (``pad2``: top, left); its kernel sits in a 3×3 one at the offset those sides give, so that one
    padding-1 depthwise conv computes every channel (no shape depends on the data: exportable).
    bf16 data is computed in float32 and rounded once at the end, as the kernel does."""
    if tap_major:
        w2, w1, wk = (None if w2 is None else w2.t()), w1.t(), wk.t()
    dtype, work = x.dtype, _work_dtype(x, w1)
    if dtype != work or w1.dtype != work:
        x, w2, b2, w1, b1, wk, bk = (None if t is None else t.to(work) for t in (x, w2, b2, w1, b1, wk, bk))
    c = x.shape[1]
    y = x
    if w2 is not None:
        assert pad2 is not None
        w = w2.reshape(c, 2, 2)
        kernel = x.new_zeros(c, 3, 3)
        for top in (0, 1):
            for left in (0, 1):
                mask = ((pad2[:, 0] == top) & (pad2[:, 1] == left)).to(x.dtype)
                kernel = kernel + mask[:, None, None] * F.pad(w, (1 - left, left, 1 - top, top))
        y = _act(F.conv2d(x, kernel.unsqueeze(1), b2, 1, 1, groups=c), act)
    p = k // 2
    y = _act(F.conv2d(y, w1.reshape(c, 1, 1, k), b1, (1, stride), (0, p), groups=c), act)
    return _act(F.conv2d(y, wk.reshape(c, 1, k, 1), bk, (stride, 1), (p, 0), groups=c), act).to(dtype)


@_without_autocast
def _xsep_block_cpu(x: torch.Tensor, w2: Optional[torch.Tensor], b2: Optional[torch.Tensor],
                    pad2: Optional[torch.Tensor], w1: torch.Tensor, b1: torch.Tensor, wk: torch.Tensor,
                    bk: torch.Tensor, k: int, stride: int, act: int, tap_major: bool = False) -> torch.Tensor:
    args = (w2, b2, pad2, w1, b1, wk, bk)
    if not kernels.available() or x.dtype not in _KERNEL_DTYPES or k > 63 or x.numel() == 0:
        return xsep_block_reference(x, *args, k, stride, act, tap_major)
    w2, b2, w1, b1, wk, bk = (None if t is None else t.float() for t in (w2, b2, w1, b1, wk, bk))
    nhwc = _nhwc(x)
    if nhwc != tap_major:  # the NHWC kernel reads tap-major (taps, C) weights, the NCHW one (C, taps)
        w2, w1, wk = (None if w2 is None else w2.t().contiguous()), w1.t().contiguous(), wk.t().contiguous()
    if not nhwc:
        x = x.contiguous()
    out = torch.empty(_xsep_out_shape(x, stride), dtype=x.dtype, memory_format=torch.channels_last if nhwc else
                      torch.contiguous_format)
    fn = kernels.library().xsep_forward_nhwc if nhwc else kernels.library().xsep_forward_nchw
    held = [None if t is None else t.contiguous() for t in (w2, b2, pad2, w1, b1, wk, bk)]
    ptr = [None if t is None else t.data_ptr() for t in held]
    rc = fn(x.data_ptr(), out.data_ptr(), *x.shape, *ptr, k, stride, act, torch.get_num_threads(), _bf(x))
    if rc:
        raise MemoryError("leannets::xsep_block: the kernel could not allocate its scratch memory")
    return out


_LIB.impl("xsep_block", _xsep_block_cpu, "CPU")


@torch.library.register_fake("leannets::xsep_block")
def _xsep_block_fake(x, w2, b2, pad2, w1, b1, wk, bk, k, stride, act, tap_major=False):  # noqa: ANN001, ANN202
    fmt = torch.channels_last if _nhwc(x) else torch.contiguous_format
    return torch.empty(_xsep_out_shape(x, stride), dtype=x.dtype, device=x.device, memory_format=fmt)


# -- multi_depthwise -------------------------------------------------------------------------------
def _multi_out_shape(x: torch.Tensor, kernel_sizes: Sequence[int], stride: int) -> tuple[int, int, int, int]:
    n, c, h, w = x.shape
    kmax = max(kernel_sizes)
    p = kmax // 2
    return n, len(kernel_sizes) * c, (h + 2 * p - kmax) // stride + 1, (w + 2 * p - kmax) // stride + 1


def multi_depthwise_reference(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor,
                              kernel_sizes: Sequence[int], stride: int, act: int) -> torch.Tensor:
    """``multi_depthwise`` in PyTorch ops: one depthwise conv per branch, concatenated (bf16 data computed
    in float32, as the kernel does)."""
    dtype, work = x.dtype, _work_dtype(x, weights)
    x, weights, bias = x.to(work), weights.to(work), bias.to(work)
    c, outs, at = x.shape[1], [], 0
    for b, k in enumerate(kernel_sizes):
        w = weights[at:at + k * k * c].reshape(k * k, c).t().reshape(c, 1, k, k)
        at += k * k * c
        outs.append(_act(F.conv2d(x, w, bias[b * c:(b + 1) * c], stride, k // 2, groups=c), act))
    return torch.cat(outs, 1).to(dtype).contiguous(memory_format=torch.channels_last)


@functools.lru_cache(maxsize=None)
def _kernel_sizes_array(kernel_sizes: tuple[int, ...]) -> Any:
    """The branches' kernel sizes as the C ``long`` array the kernels read, made once per tuple; ``ValueError``
    unless they are odd and positive (the branches are centred)."""
    if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"leannets::multi_depthwise: kernel sizes must be odd and positive, got {list(kernel_sizes)}")
    return (ctypes.c_long * len(kernel_sizes))(*kernel_sizes)


@_without_autocast
def _multi_depthwise_cpu(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, kernel_sizes: list[int],
                         stride: int, act: int) -> torch.Tensor:
    ks = _kernel_sizes_array(tuple(kernel_sizes))
    if not kernels.available() or x.dtype not in _KERNEL_DTYPES:
        return multi_depthwise_reference(x, weights, bias, kernel_sizes, stride, act)
    x = x.contiguous(memory_format=torch.channels_last)
    weights, bias = weights.float().contiguous(), bias.float().contiguous()
    out = torch.empty(_multi_out_shape(x, kernel_sizes, stride), dtype=x.dtype, memory_format=torch.channels_last)
    if kernels.library().multi_dw_forward_nhwc(x.data_ptr(), out.data_ptr(), *x.shape, len(kernel_sizes),
                                               ctypes.addressof(ks), weights.data_ptr(), bias.data_ptr(), stride,
                                               act, torch.get_num_threads(), _bf(x)):
        raise MemoryError("leannets::multi_depthwise: the kernel could not allocate its scratch memory")
    return out


_LIB.impl("multi_depthwise", _multi_depthwise_cpu, "CPU")


@torch.library.register_fake("leannets::multi_depthwise")
def _multi_depthwise_fake(x, weights, bias, kernel_sizes, stride, act):  # noqa: ANN001, ANN202
    return torch.empty(_multi_out_shape(x, kernel_sizes, stride), dtype=x.dtype, device=x.device,
                       memory_format=torch.channels_last)


# -- multi_depthwise_conv (training) and its C backward -------------------------------------------------
def _multi_conv_reference(x: torch.Tensor, weights: torch.Tensor, kernel_sizes: Sequence[int],
                          stride: int) -> torch.Tensor:
    return multi_depthwise_reference(x, weights, weights.new_zeros(len(kernel_sizes) * x.shape[1]), kernel_sizes,
                                     stride, 0)


@_without_autocast
def _multi_conv_cpu(x: torch.Tensor, weights: torch.Tensor, kernel_sizes: list[int], stride: int) -> torch.Tensor:
    """The branches on ``multi_dw_forward_nhwc`` with zero bias (one pass over the input for every branch)."""
    return _multi_depthwise_cpu(x, weights, weights.new_zeros(len(kernel_sizes) * x.shape[1]), kernel_sizes, stride,
                                0)


_LIB.impl("multi_depthwise_conv", _multi_conv_cpu, "CPU")


@torch.library.register_fake("leannets::multi_depthwise_conv")
def _multi_conv_fake(x, weights, kernel_sizes, stride):  # noqa: ANN001, ANN202
    return _multi_depthwise_fake(x, weights, None, kernel_sizes, stride, 0)


def _multi_conv_backward_reference(grad: torch.Tensor, x: torch.Tensor, weights: torch.Tensor, kernel_sizes: list[int],
                                   stride: int, output_mask: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    work = _work_dtype(x, weights)
    with torch.enable_grad():
        xr = x.detach().to(work).requires_grad_(output_mask[0])
        wr = weights.detach().to(work).requires_grad_(output_mask[1])
        out = _multi_conv_reference(xr, wr, kernel_sizes, stride)
        wanted = [t for t, m in zip((xr, wr), output_mask) if m]
        got = list(torch.autograd.grad(out, wanted, grad.to(work))) if wanted else []
    gx = got.pop(0).to(x.dtype).contiguous(memory_format=torch.channels_last) if output_mask[0] else x.new_empty(0)
    gw = got.pop(0).to(weights.dtype) if output_mask[1] else weights.new_empty(0)
    return gx, gw


@_without_autocast
def _multi_conv_backward_cpu(grad: torch.Tensor, x: torch.Tensor, weights: torch.Tensor, kernel_sizes: list[int],
                             stride: int, output_mask: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad input, grad weights) of every branch in one C call each; an output not asked for is empty."""
    if not kernels.available() or x.dtype not in _KERNEL_DTYPES or x.numel() == 0:
        return _multi_conv_backward_reference(grad, x, weights, kernel_sizes, stride, output_mask)
    lib, threads, bf = kernels.library(), torch.get_num_threads(), _bf(x)
    ks, geo = ctypes.addressof(_kernel_sizes_array(tuple(kernel_sizes))), [*x.shape, len(kernel_sizes)]
    x = x.contiguous(memory_format=torch.channels_last)
    grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
    w = weights.float().contiguous()
    gx, gw = x.new_empty(0), weights.new_empty(0)
    if output_mask[0]:
        gx = torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last)
        if lib.multi_dw_backward_input_nhwc(grad.data_ptr(), w.data_ptr(), gx.data_ptr(), *geo, ks, stride,
                                            threads, bf):
            raise MemoryError("leannets::multi_depthwise_conv_backward: the kernel could not allocate its scratch")
    if output_mask[1]:
        gw = torch.empty_like(w)
        if lib.multi_dw_backward_weight_nhwc(grad.data_ptr(), x.data_ptr(), gw.data_ptr(), *geo, ks,
                                             stride, threads, bf):
            raise MemoryError("leannets::multi_depthwise_conv_backward: the kernel could not allocate its scratch")
        gw = gw.to(weights.dtype)
    return gx, gw


_LIB.impl("multi_depthwise_conv_backward", _multi_conv_backward_cpu, "CPU")


@torch.library.register_fake("leannets::multi_depthwise_conv_backward")
def _multi_conv_backward_fake(grad, x, weights, kernel_sizes, stride, output_mask):  # noqa: ANN001, ANN202
    return (torch.empty_like(x, memory_format=torch.channels_last) if output_mask[0] else x.new_empty(0),
            weights.new_empty(weights.shape) if output_mask[1] else weights.new_empty(0))


def _setup_multi_conv(ctx, inputs, output) -> None:  # noqa: ANN001
    x, weights, kernel_sizes, stride = inputs
    ctx.save_for_backward(x, weights)
    ctx.kernel_sizes, ctx.stride = kernel_sizes, stride


def _multi_conv_backward(ctx, grad):  # noqa: ANN001, ANN202
    x, weights = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1]]
    gx, gw = torch.ops.leannets.multi_depthwise_conv_backward(grad, x, weights, ctx.kernel_sizes, ctx.stride, mask)
    return gx if mask[0] else None, gw if mask[1] else None, None, None


# -- depthwise_conv2d and its C backward -----------------------------------------------------------
def _depthwise_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int],
                         padding: list[int]) -> torch.Tensor:
    dtype, work = x.dtype, _work_dtype(x, weight)
    if dtype == work and weight.dtype == work and (bias is None or bias.dtype == work):
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])
    bias = None if bias is None else bias.to(work)
    return F.conv2d(x.to(work), weight.to(work), bias, stride, padding, 1, x.shape[1]).to(dtype)


@_without_autocast
def _depthwise_cpu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: list[int],
                   padding: list[int]) -> torch.Tensor:
    """float32: PyTorch's forward (oneDNN's float32 depthwise is faster than the C one); bf16: the C forward."""
    if x.dtype != torch.bfloat16 or not kernels.available() or x.numel() == 0:
        return _depthwise_reference(x, weight, bias, stride, padding).contiguous(memory_format=torch.channels_last)
    geo = _geometry(x, weight, stride, padding)
    x = x.contiguous(memory_format=torch.channels_last)
    w_t = weight.float().reshape(geo[1], -1).t().contiguous()
    b = None if bias is None else bias.float().contiguous()
    y = torch.empty((geo[0], geo[1], geo[4], geo[5]), dtype=x.dtype, memory_format=torch.channels_last)
    if kernels.library().dw_forward_nhwc(x.data_ptr(), w_t.data_ptr(), None if b is None else b.data_ptr(),
                                         y.data_ptr(), *geo, torch.get_num_threads(), 1):
        raise MemoryError("leannets::depthwise_conv2d: the kernel could not allocate its scratch memory")
    return y


_LIB.impl("depthwise_conv2d", _depthwise_cpu, "CPU")


@torch.library.register_fake("leannets::depthwise_conv2d")
def _depthwise_fake(x, weight, bias, stride, padding):  # noqa: ANN001, ANN202
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    shape = (n, c, (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1)
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def _geometry(x: torch.Tensor, weight: torch.Tensor, stride: list[int], padding: list[int]) -> list[int]:
    n, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    ho, wo = (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1
    return [n, c, h, w, ho, wo, kh, kw, stride[0], stride[1], padding[0], padding[1]]


def _depthwise_backward_reference(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: list[int],
                                  padding: list[int], output_mask: list[bool]) -> tuple[torch.Tensor, ...]:
    work = _work_dtype(x, weight)
    gx, gw, gb = torch.ops.aten.convolution_backward(grad.to(work), x.to(work), weight.to(work), [weight.shape[0]],
                                                     stride, padding, [1, 1], False, [0, 0], x.shape[1], output_mask)
    return (gx.to(x.dtype).contiguous(memory_format=torch.channels_last) if output_mask[0] else x.new_empty(0),
            gw.to(weight.dtype) if output_mask[1] else weight.new_empty(0),
            gb.to(weight.dtype) if output_mask[2] else weight.new_empty(0))


@_without_autocast
def _depthwise_backward_cpu(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: list[int],
                            padding: list[int], output_mask: list[bool]) -> tuple[torch.Tensor, ...]:
    """(grad input, grad weight, grad bias); an output not asked for in ``output_mask`` is an empty tensor.
    Gradients take the dtypes of what they are for (bf16 input: bf16 grad input, float32 sums)."""
    if not kernels.available() or x.dtype not in _KERNEL_DTYPES or x.numel() == 0:
        return _depthwise_backward_reference(grad, x, weight, stride, padding, output_mask)
    lib, threads, bf = kernels.library(), torch.get_num_threads(), _bf(x)
    geo = _geometry(x, weight, stride, padding)
    x = x.contiguous(memory_format=torch.channels_last)
    grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
    w_t = weight.float().reshape(geo[1], -1).t().contiguous()
    gx, gw, gb = x.new_empty(0), weight.new_empty(0), weight.new_empty(0)
    if output_mask[0]:
        gx = torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last)
        if lib.dw_backward_input_nhwc(grad.data_ptr(), w_t.data_ptr(), gx.data_ptr(), *geo, threads, bf):
            raise MemoryError("leannets::depthwise_conv2d_backward: the kernel could not allocate its scratch memory")
    if output_mask[1] or output_mask[2]:
        gw_t = torch.empty_like(w_t)
        gb = torch.empty(geo[1]) if output_mask[2] else gb
        if lib.dw_backward_weight_nhwc(grad.data_ptr(), x.data_ptr(), gw_t.data_ptr(),
                                       gb.data_ptr() if output_mask[2] else None, *geo, threads, bf):
            raise MemoryError("leannets::depthwise_conv2d_backward: the kernel could not allocate its scratch memory")
        gw = gw_t.t().contiguous().reshape(weight.shape).to(weight.dtype) if output_mask[1] else gw
        gb = gb.to(weight.dtype)
    return gx, gw, gb


_LIB.impl("depthwise_conv2d_backward", _depthwise_backward_cpu, "CPU")


@torch.library.register_fake("leannets::depthwise_conv2d_backward")
def _depthwise_backward_fake(grad, x, weight, stride, padding, output_mask):  # noqa: ANN001, ANN202
    return (torch.empty_like(x, memory_format=torch.channels_last) if output_mask[0] else x.new_empty(0),
            weight.new_empty(weight.shape) if output_mask[1] else weight.new_empty(0),
            weight.new_empty(weight.shape[0]) if output_mask[2] else weight.new_empty(0))


def _setup_depthwise(ctx, inputs, output) -> None:  # noqa: ANN001
    x, weight, bias, stride, padding = inputs
    ctx.save_for_backward(x, weight)
    ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None


def _depthwise_backward(ctx, grad):  # noqa: ANN001, ANN202
    x, weight = ctx.saved_tensors
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    gx, gw, gb = torch.ops.leannets.depthwise_conv2d_backward(grad, x, weight, ctx.stride, ctx.padding, mask)
    return (gx if mask[0] else None, gw if mask[1] else None, gb if mask[2] else None, None, None)


def _no_double_backward(ctx, *grads):  # noqa: ANN001, ANN202
    raise RuntimeError("leannets: the backward of a leannets op cannot differentiate twice "
                       f"(create_graph=True); set {kernels.KERNELS_ENV}=0 for second derivatives")


def _no_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    pass


# -- bn_pointwise (training): BN on batch statistics folded into the 1×1 conv after it -------------------------
# With s = γ/σ (batch σ) and μ the batch mean, 1×1(BN(z)) = (W·diag(s)) z + W(β − μ s) + b: the normalized tensor
# (the widest one of a Multiception layer) is never written. Backward, with g the output gradient over P pixels,
# dy = Wᵀg (never formed): Σdy = WᵀΣg, Σdy·ẑ = diag(Wᵀ G) with G = Σ g ẑᵀ = (Σ g zᵀ − Σg μᵀ)/σ, and BN's
# dz = s(dy − Σdy/P − ẑ Σdy·ẑ/P) = (W diag(s))ᵀ g + a + b·z per channel.
def _pixels(t: torch.Tensor) -> torch.Tensor:
    """A channels_last (N, C, H, W) tensor as its (N·H·W, C) pixel matrix (a view)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _from_pixels(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    n, _, h, w = like.shape
    return m.view(n, h, w, m.shape[1]).permute(0, 3, 1, 2)


def _bn_pointwise_reference(z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, weight: torch.Tensor,
                            bias: Optional[torch.Tensor], eps: float, stride: int = 1
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    var, mean = torch.var_mean(z.float(), (0, 2, 3), correction=0)
    y = F.batch_norm(z.float(), None, None, gamma.float(), beta.float(), True, 0.0, eps)
    out = F.conv2d(y, weight.float(), None if bias is None else bias.float(), stride)
    return out.to(z.dtype).contiguous(memory_format=torch.channels_last), mean, var


def _bn_pointwise_cpu(z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor], eps: float, stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1×1(BN(z)) at ``stride``, batch mean, biased batch variance; float32 statistics). Fast on channels_last
    float32 ``z``; anything else runs the decomposition in float32."""
    if not (_nhwc(z) and z.dtype == weight.dtype == torch.float32) or z.numel() == 0:
        return _bn_pointwise_reference(z, gamma, beta, weight, bias, eps, stride)
    c = z.shape[1]
    mean, var = torch.batch_norm_update_stats(z, z.new_zeros(c), z.new_ones(c), 0.0)
    w = weight.view(weight.shape[0], -1)
    s = gamma * torch.rsqrt(var + eps)
    shift = w @ (beta - mean * s)
    zs = z if stride == 1 else z[:, :, ::stride, ::stride]
    out = torch.addmm(shift if bias is None else shift + bias, _pixels(zs), (w * s).t())
    return _from_pixels(out, zs), mean, var


_LIB.impl("bn_pointwise", _bn_pointwise_cpu, "CPU")


def _strided_shape(z: torch.Tensor, channels: int, stride: int) -> tuple[int, int, int, int]:
    n, _, h, w = z.shape
    return n, channels, (h - 1) // stride + 1, (w - 1) // stride + 1


@torch.library.register_fake("leannets::bn_pointwise")
def _bn_pointwise_fake(z, gamma, beta, weight, bias, eps, stride):  # noqa: ANN001, ANN202
    out = torch.empty(_strided_shape(z, weight.shape[0], stride), dtype=z.dtype, device=z.device,
                      memory_format=torch.channels_last)
    c = z.shape[1]
    return out, z.new_empty(c, dtype=torch.float32), z.new_empty(c, dtype=torch.float32)


def _pixel_gram(gp: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """``gpᵀ zp`` summed over the pixels in chunks: one product with a tiny result over a long sum leaves all but
    one core idle in BLAS; a batch of chunk products runs on every core."""
    chunks = 8
    if gp.shape[0] % chunks or gp.shape[0] < 4096:
        return gp.t() @ zp
    gc, zc = gp.view(chunks, -1, gp.shape[1]), zp.view(chunks, -1, zp.shape[1])
    return torch.bmm(gc.transpose(1, 2), zc).sum(0)


def _bn_pointwise_dz(z: torch.Tensor, zp: torch.Tensor, gp: torch.Tensor, ws: torch.Tensor, a: torch.Tensor,
                     b: torch.Tensor, stride: int) -> torch.Tensor:
    """BN1's input gradient as pixel rows, ``a + b·z + g Wsᵀ`` (the 1×1's part only at the pixels it read): one C
    pass over ``z`` (its own dtype) at stride 1, else the PyTorch decomposition in float32."""
    if stride == 1 and kernels.available() and z.dtype in _KERNEL_DTYPES and _nhwc(z):
        dz = torch.empty(zp.shape, dtype=z.dtype)
        ws, a, b = ws.contiguous(), a.contiguous(), b.contiguous()
        kernels.library().bn_pointwise_dz(z.data_ptr(), gp.data_ptr(), ws.data_ptr(), a.data_ptr(), b.data_ptr(),
                                          dz.data_ptr(), *zp.shape, gp.shape[1], torch.get_num_threads(), _bf(z))
        return dz
    dz = torch.addcmul(a, zp, b)
    if stride == 1:
        return dz.addmm_(gp, ws)
    n, _, h, wd = z.shape
    dz.view(n, h, wd, -1)[:, ::stride, ::stride] += (gp @ ws).view(n, (h - 1) // stride + 1, (wd - 1) // stride + 1, -1)
    return dz


def _bn_pointwise_backward_cpu(grad: torch.Tensor, z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                               weight: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, stride: int
                               ) -> tuple[torch.Tensor, ...]:
    """(dz, dγ, dβ, dW, db) of :func:`_bn_pointwise_cpu`, in float32 (dz in ``z``'s dtype)."""
    zf, gf = z.float(), grad.float().contiguous(memory_format=torch.channels_last)
    zs = zf if stride == 1 else zf[:, :, ::stride, ::stride]
    zp, gp = _pixels(zf), _pixels(gf)
    w = weight.float().view(weight.shape[0], -1)
    g_sum = gp.sum(0)
    zsp = _pixels(zs)
    gram = _pixel_gram(gp, zsp) if zsp.is_contiguous() else gp.t() @ zsp
    gz = (gram - g_sum[:, None] * mean) * invstd  # Σ g ẑᵀ over the pixels the 1×1 reads
    d_beta, d_gamma = w.t() @ g_sum, (w * gz).sum(0)
    s, p = gamma.float() * invstd, zp.shape[0]  # BN's means run over every pixel
    dz = _bn_pointwise_dz(z, zp, gp, w * s, -s * (d_beta - mean * invstd * d_gamma) / p, -s * invstd * d_gamma / p,
                          stride)
    d_weight = (gz * gamma.float() + g_sum[:, None] * beta.float()).view_as(weight)
    return (_from_pixels(dz, z).to(z.dtype), d_gamma.to(gamma.dtype), d_beta.to(beta.dtype), d_weight.to(weight.dtype),
            g_sum.to(weight.dtype))


_LIB.impl("bn_pointwise_backward", _bn_pointwise_backward_cpu, "CPU")


@torch.library.register_fake("leannets::bn_pointwise_backward")
def _bn_pointwise_backward_fake(grad, z, gamma, beta, weight, mean, invstd, stride):  # noqa: ANN001, ANN202
    return (torch.empty_like(z, memory_format=torch.channels_last), gamma.new_empty(gamma.shape),
            beta.new_empty(beta.shape), weight.new_empty(weight.shape), weight.new_empty(weight.shape[0]))


def _setup_bn_pointwise(ctx, inputs, output) -> None:  # noqa: ANN001
    z, gamma, beta, weight, bias, eps, stride = inputs
    _, mean, var = output
    ctx.save_for_backward(z, gamma, beta, weight, mean, torch.rsqrt(var + eps))
    ctx.has_bias, ctx.stride = bias is not None, stride
    ctx.set_materialize_grads(False)  # unused outputs' gradients arrive as None


def _bn_pointwise_backward(ctx, grad, grad_mean, grad_var):  # noqa: ANN001, ANN202
    if grad_mean is not None or grad_var is not None:
        raise RuntimeError("leannets::bn_pointwise: its batch statistics are not differentiable outputs")
    if grad is None:
        return None, None, None, None, None, None, None
    z, gamma, beta, weight, mean, invstd = ctx.saved_tensors
    dz, dg, db, dw, dbias = torch.ops.leannets.bn_pointwise_backward(grad, z, gamma, beta, weight, mean, invstd,
                                                                     ctx.stride)
    return dz, dg, db, dw, dbias if ctx.has_bias else None, None, None


# -- batch_norm_train: BatchNorm on batch statistics over channels_last rows (any channel count) ---------------
def _batch_norm_train_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    var, mean = torch.var_mean(x.float(), (0, 2, 3), correction=0)
    out = F.batch_norm(x, None, None, weight, bias, True, 0.0, eps)
    return out.contiguous(memory_format=torch.channels_last), mean, var


def _bn_rows_fast(x: torch.Tensor) -> bool:
    return kernels.available() and x.dtype in _KERNEL_DTYPES and _nhwc(x) and x.numel() > 0


def _batch_norm_train_cpu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(BN(x) on batch statistics, batch mean, biased batch variance): two C passes over the channels_last float32 or
    bf16 rows (shifted double sums, then the affine map; float32 statistics); anything else runs the PyTorch
    decomposition."""
    if not _bn_rows_fast(x):
        return _batch_norm_train_reference(x, weight, bias, eps)
    lib, threads, c, bf = kernels.library(), torch.get_num_threads(), x.shape[1], _bf(x)
    rows = x.numel() // c
    mean, var = torch.empty(c), torch.empty(c)
    if lib.bn_nhwc_stats(x.data_ptr(), mean.data_ptr(), var.data_ptr(), rows, c, threads, bf):
        raise MemoryError("leannets::batch_norm_train: the kernel could not allocate its sums")
    scale = (weight.float() * torch.rsqrt(var + eps)).contiguous()
    shift = bias.float().contiguous()
    out = torch.empty_like(x, memory_format=torch.channels_last)
    lib.bn_nhwc_affine(x.data_ptr(), mean.data_ptr(), scale.data_ptr(), shift.data_ptr(), out.data_ptr(), rows, c,
                       threads, bf)
    return out, mean, var


_LIB.impl("batch_norm_train", _batch_norm_train_cpu, "CPU")


@torch.library.register_fake("leannets::batch_norm_train")
def _batch_norm_train_fake(x, weight, bias, eps):  # noqa: ANN001, ANN202
    c = x.shape[1]
    return (torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(c, dtype=torch.float32),
            x.new_empty(c, dtype=torch.float32))


def _batch_norm_train_backward_cpu(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                                   invstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dγ, dβ) of :func:`_batch_norm_train_cpu`: per-channel Σg and Σg(x − μ) in one C pass, dx in another."""
    c, w = x.shape[1], weight.float()
    fast = _bn_rows_fast(x) and grad.dtype == x.dtype
    if fast:
        lib, threads, rows, bf = kernels.library(), torch.get_num_threads(), x.numel() // c, _bf(x)
        g = grad.contiguous(memory_format=torch.channels_last)
        sum_g, sum_gx = torch.empty(c), torch.empty(c)
        if lib.bn_nhwc_grad_sums(g.data_ptr(), x.data_ptr(), mean.data_ptr(), sum_g.data_ptr(), sum_gx.data_ptr(),
                                 rows, c, threads, bf):
            raise MemoryError("leannets::batch_norm_train_backward: the kernel could not allocate its sums")
    else:
        rows, g = x.numel() // c, grad.float()
        sum_g = g.sum((0, 2, 3))
        sum_gx = (g * (x.float() - mean.view(1, -1, 1, 1))).sum((0, 2, 3))
    d_gamma = sum_gx * invstd  # Σ g x̂
    a = w * invstd  # dx = a (g − Σg/P − x̂ Σg x̂/P) = a g + b (x − μ) + d
    b = -a * invstd * d_gamma / rows
    d = -a * sum_g / rows
    if fast:
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        a, b, d = a.contiguous(), b.contiguous(), d.contiguous()
        lib.bn_nhwc_grad_input(g.data_ptr(), x.data_ptr(), mean.data_ptr(), a.data_ptr(), b.data_ptr(), d.data_ptr(),
                               dx.data_ptr(), rows, c, threads, bf)
    else:
        view = (1, -1, 1, 1)
        dx = (g * a.view(view) + (x.float() - mean.view(view)) * b.view(view) + d.view(view)).to(x.dtype)
        dx = dx.contiguous(memory_format=torch.channels_last)
    return dx, d_gamma.to(weight.dtype), sum_g.to(weight.dtype)


_LIB.impl("batch_norm_train_backward", _batch_norm_train_backward_cpu, "CPU")


@torch.library.register_fake("leannets::batch_norm_train_backward")
def _batch_norm_train_backward_fake(grad, x, weight, mean, invstd):  # noqa: ANN001, ANN202
    return torch.empty_like(x, memory_format=torch.channels_last), weight.new_empty(weight.shape), \
        weight.new_empty(weight.shape)


def _setup_batch_norm_train(ctx, inputs, output) -> None:  # noqa: ANN001
    x, weight, _, eps = inputs
    _, mean, var = output
    ctx.save_for_backward(x, weight, mean, torch.rsqrt(var + eps))
    ctx.set_materialize_grads(False)


def _batch_norm_train_backward(ctx, grad, grad_mean, grad_var):  # noqa: ANN001, ANN202
    if grad_mean is not None or grad_var is not None:
        raise RuntimeError("leannets::batch_norm_train: its batch statistics are not differentiable outputs")
    if grad is None:
        return None, None, None, None
    x, weight, mean, invstd = ctx.saved_tensors
    dx, dg, db = torch.ops.leannets.batch_norm_train_backward(grad, x, weight, mean, invstd)
    return dx, dg, db, None


torch.library.register_autograd("leannets::batch_norm_train", _batch_norm_train_backward,
                                setup_context=_setup_batch_norm_train)
torch.library.register_autograd("leannets::batch_norm_train_backward", _no_double_backward, setup_context=_no_setup)
torch.library.register_autograd("leannets::depthwise_conv2d", _depthwise_backward, setup_context=_setup_depthwise)
torch.library.register_autograd("leannets::depthwise_conv2d_backward", _no_double_backward, setup_context=_no_setup)
torch.library.register_autograd("leannets::multi_depthwise_conv", _multi_conv_backward, setup_context=_setup_multi_conv)
torch.library.register_autograd("leannets::bn_pointwise", _bn_pointwise_backward, setup_context=_setup_bn_pointwise)
torch.library.register_autograd("leannets::bn_pointwise_backward", _no_double_backward, setup_context=_no_setup)
torch.library.register_autograd("leannets::multi_depthwise_conv_backward", _no_double_backward,
                                setup_context=_no_setup)


# -- FLOPs for torch.utils.flop_counter: the same as the convolutions the op stands for ---------------
@register_flop_formula(torch.ops.leannets.xsep_block)
def _xsep_flops(x_shape, w2_shape, b2_shape, pad2_shape, w1_shape, b1_shape, wk_shape, bk_shape, k, stride, act,  # noqa: ANN001
                tap_major=False, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001, ANN002, ANN003
    n, c, h, w = x_shape
    ho, wo = out_shape[2], out_shape[3]
    return 2 * n * c * ((4 * h * w if w2_shape is not None else 0) + k * h * wo + k * ho * wo)


@register_flop_formula(torch.ops.leannets.multi_depthwise)
def _multi_depthwise_flops(x_shape, w_shape, b_shape, kernel_sizes, stride, act, *args, out_shape=None,  # noqa: ANN001
                           **kwargs) -> int:  # noqa: ANN002, ANN003
    n, c = x_shape[0], x_shape[1]
    return 2 * n * c * out_shape[2] * out_shape[3] * sum(k * k for k in kernel_sizes)


@register_flop_formula(torch.ops.leannets.multi_depthwise_conv)
def _multi_conv_flops(x_shape, w_shape, kernel_sizes, stride, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001, ANN002, ANN003
    return 2 * x_shape[0] * x_shape[1] * out_shape[2] * out_shape[3] * sum(k * k for k in kernel_sizes)


@register_flop_formula(torch.ops.leannets.depthwise_conv2d)
def _depthwise_flops(x_shape, w_shape, b_shape, stride, padding, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001, ANN002, ANN003
    return 2 * out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * w_shape[2] * w_shape[3]


# -- entry points ----------------------------------------------------------------------------------
def xsep_block(x: torch.Tensor, weights: dict, k: int, stride: int) -> torch.Tensor:
    """The ``leannets::xsep_block`` op on the folded weights of
    :meth:`leannets.layers.xsepconv.XSepConv.kernel_weights`: the (C, taps) ones for an NCHW input, the
    tap-major ``*_t`` ones for a channels_last input (the layouts the C kernels read)."""
    tap_major = _nhwc(x)
    sfx = "_t" if tap_major else ""
    return torch.ops.leannets.xsep_block(x, weights[f"w2{sfx}"], weights["b2"], weights["pad2"], weights[f"w1{sfx}"],
                                         weights["b1"], weights[f"wk{sfx}"], weights["bk"], k, stride,
                                         weights["act"], tap_major)


def multi_depthwise(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, kernel_sizes: Sequence[int],
                    stride: int, act: int) -> torch.Tensor:
    """Every BN-folded branch of a Multiception layer in one ``leannets::multi_depthwise`` call.

    Args:
        x: (N, C, H, W); the result is channels_last.
        weights: every branch's tap-major (k·k, C) weights, flattened one after another.
        bias: (branches · C,) folded biases in concatenation order.
        kernel_sizes: odd kernel sizes, one per branch.
        stride: the depthwise stride.
        act: activation code (:func:`leannets.layers.kernels.act_code`).
    """
    return torch.ops.leannets.multi_depthwise(x, weights, bias, list(kernel_sizes), stride, act)


def multi_depthwise_conv(x: torch.Tensor, weights: torch.Tensor, kernel_sizes: Sequence[int],
                         stride: int) -> torch.Tensor:
    """The raw depthwise branches of a Multiception layer (no bias), concatenated, with the C backward.

    Args:
        x: (N, C, H, W); the result, (N, branches · C, H', W') in concatenation order, has the input's layout
            (the kernels run on channels_last data).
        weights: every branch's tap-major (k·k, C) weights, flattened one after another (differentiable).
        kernel_sizes: odd kernel sizes, one per branch (padding k // 2 each).
        stride: the depthwise stride.
    """
    y = torch.ops.leannets.multi_depthwise_conv(x, weights, list(kernel_sizes), stride)
    return y if _nhwc(x) else y.contiguous()


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Sequence[int],
                     padding: Sequence[int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=C)`` whose backward runs on the C kernels.

    The kernels work on channels_last data: the output is channels_last, and it returns in the input's
    layout.
    """
    nchw = not _nhwc(x)
    y = torch.ops.leannets.depthwise_conv2d(x.contiguous(memory_format=torch.channels_last), weight, bias,
                                            list(stride), list(padding))
    return y.contiguous() if nchw else y


def _xsep_decomposition(x, w2, b2, pad2, w1, b1, wk, bk, k, stride, act, tap_major=False):  # noqa: ANN001, ANN202
    return xsep_block_reference(x, w2, b2, pad2, w1, b1, wk, bk, k, stride, act, tap_major)


def bn_pointwise(z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None, eps: float, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``conv2d(batch_norm(z, batch statistics, gamma, beta, eps), weight, bias, stride)`` for a 1×1 ``weight``, and
    the batch mean and biased variance (float32, for the running statistics; not differentiable), without writing
    the normalized tensor. Fast on channels_last float32 CPU ``z``; other inputs run the decomposition in float32.
    The result is channels_last."""
    return torch.ops.leannets.bn_pointwise(z, gamma, beta, weight, bias, eps, stride)


def batch_norm_train(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch_norm(x)`` on batch statistics, and the batch mean and biased variance (float32, for the running
    statistics; not differentiable). Fast on channels_last float32 CPU ``x`` of any channel count; other inputs run
    the decomposition. The result is channels_last."""
    return torch.ops.leannets.batch_norm_train(x, weight, bias, eps)


#: Each op → its PyTorch decomposition (``ExportedProgram.run_decompositions(DECOMPOSITIONS)``).
DECOMPOSITIONS = {
    torch.ops.leannets.xsep_block.default: _xsep_decomposition,
    torch.ops.leannets.multi_depthwise.default: multi_depthwise_reference,
    torch.ops.leannets.multi_depthwise_conv.default: _multi_conv_reference,
    torch.ops.leannets.depthwise_conv2d.default: _depthwise_reference,
    torch.ops.leannets.bn_pointwise.default: _bn_pointwise_reference,
    torch.ops.leannets.batch_norm_train.default: _batch_norm_train_reference,
}
