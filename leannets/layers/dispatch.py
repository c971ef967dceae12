"""Which path a layer takes, decided in one place: the ops of :mod:`leannets.layers.ops` or the plain modules.

Every layer has one forward that asks here which op computes the call:

- Training (autograd) runs the modules; depthwise convs take the ``leannets::depthwise_conv2d`` op (its C
  backward) where :func:`depthwise_op_applies` (measured faster in float32; always in bf16), and Multiception's
  branches all take one ``leannets::multi_depthwise_conv`` op (:func:`multi_branch_op_applies`), its BN and 1×1
  conv one ``leannets::bn_pointwise`` op (:func:`bn_pointwise_applies`); the dense layers' BatchNorms on channel
  counts PyTorch handles slowly the ``leannets::batch_norm_train`` op (:func:`batch_norm_op_applies`).
- bf16: under CPU bf16 autocast, or with bf16 data and weights, every path runs its ops on the bf16
  activations with float32 weights and sums (oneDNN's bf16 depthwise convolution is slower than float32).
- Inference runs the fused ops (:func:`xsep_weights`, :func:`multi_inference_weights`) on weights folded once per
  module and kept until the module's state changes (:func:`folded`).
- ``torch.compile`` and ``torch.export`` trace the same ops through their fake kernels, the folding
  inside the graph.
- ``torch.jit`` tracing/scripting and ``torch.fx`` symbolic tracing, and any code inside
  :func:`reference_path` (the profiler, BN folding, tests' oracles), see the plain conv → BN → act modules: MACs
  are the layers' own, and BN folding and the TorchScript ONNX exporter see ordinary modules.
- Other devices run the modules (MixConv/DSConv inference: its one zero-embedded depthwise conv).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn as nn

from . import kernels

__all__ = ["reference_path", "capturing", "compiling", "folded", "xsep_weights", "depthwise_op_applies",
           "autocast_bf16", "dtype_ok", "multi_inference_weights", "multi_branch_op_applies", "bn_pointwise_applies",
           "batch_norm_op_applies"]

_REFERENCE = [0]  # depth of reference_path() contexts (process-wide)


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Inside, every layer runs its plain PyTorch modules (no fused op): for profilers, MAC counts and
    module-level analyses that must see each conv and BN."""
    _REFERENCE[0] += 1
    try:
        yield
    finally:
        _REFERENCE[0] -= 1


def capturing() -> bool:
    """A jit/fx graph is being captured or :func:`reference_path` is active: layers take their modules."""
    return bool(_REFERENCE[0]) or kernels.tracing()


def compiling() -> bool:
    """``torch.compile`` or ``torch.export`` is tracing: the ops appear in the graph through their fake kernels."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def folded(module: nn.Module, slot: str, compute: Callable[[], Any],
           modules: Callable[[], Iterable[nn.Module]] | None = None, extra: tuple = ()) -> Any:
    """``compute()``: kept on the module until its state changes (:func:`~leannets.layers.kernels.cached_on_state`)
    in eager mode, computed inside the graph when compiling."""
    if compiling():
        return compute()
    return kernels.cached_on_state(module, slot, compute, extra, modules)


def autocast_bf16() -> bool:
    """CPU autocast to bfloat16 is on."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def dtype_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The ops compute this call: float32 or bf16 data with weights of its dtype, or float32 weights under CPU
    bf16 autocast (the dtypes PyTorch's own layer would accept)."""
    if x.dtype not in (torch.float32, torch.bfloat16):
        return False
    return x.dtype == weight.dtype or (weight.dtype == torch.float32 and autocast_bf16())


def _no_autograd(x: torch.Tensor, tensors: Iterable[torch.Tensor]) -> bool:
    return not torch.is_grad_enabled() or not (x.requires_grad or any(t.requires_grad for t in tensors))


def xsep_weights(block: Any, x: torch.Tensor) -> dict[str, Any] | None:
    """The folded weights of an XSepConv block if ``leannets::xsep_block`` computes this call (CPU float32
    or bf16 inference of a supported variant and activation, no autograd, no capture), else ``None``."""
    if block.training or block.variant not in ("standard", "no2x2") or block.kernel_size > 63 or capturing():
        return None
    if x.device.type != "cpu" or x.dim() != 4 or x.shape[1] != block.channels:
        return None
    if not dtype_ok(x, block.conv_1xk.conv.weight):
        return None
    if not compiling() and (x.numel() == 0 or not kernels.available()):
        return None
    if not _no_autograd(x, block.parameters()):
        return None
    pad = block._modules.get("conv_2x2")
    extra = (pad.pad.direction,) if pad is not None else ()
    weights = folded(block, "_kernel_cache", block.kernel_weights, block.kernel_modules, extra)
    return weights if weights is not None and weights["act"] is not None else None


def depthwise_op_applies(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """``conv(x)`` runs the ``leannets::depthwise_conv2d`` op (a plain CPU depthwise conv):

    - bf16 (bf16 data, or CPU bf16 autocast): always, training or not — the op keeps float32 data in
      float32 (oneDNN's float32 depthwise) and runs bf16 data on the C kernels with float32 sums, where
      autocast would call oneDNN's slower bf16 depthwise conv;
    - float32: when autograd needs the C backward and it is measured faster here: any NCHW input, or
      channels_last with ≥ 25 taps or a 1×k row.
    """
    if capturing():
        return False
    if not (x.device.type == "cpu" and dtype_ok(x, conv.weight) and x.dim() == 4
            and conv.groups == conv.in_channels == conv.out_channels == x.shape[1]
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and x.numel() > 0):
        return False
    if x.dtype == torch.bfloat16 or autocast_bf16():
        return True
    if _no_autograd(x, (conv.weight,)):
        return False
    kh, kw = conv.kernel_size
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last and not (kh * kw >= 25 or (kh == 1 and kw >= 5)):
        return False
    return kernels.available()


# -- Multiception / MixConv / DSConv ---------------------------------------------------------------
def multi_inference_weights(layer: Any, x: torch.Tensor) -> dict[str, Any] | None:
    """The BN-folded weights of a :class:`~leannets.layers.multiception.SeparableMultiKernel` if its inference op
    computes this call, else ``None`` (the layer's modules run):

    - no autograd, no graph capture, every BN a fixed affine map and an act that commutes with subsampling
      (``layer.foldable()``);
    - Multiception (several branches over all channels): CPU float32 or bf16 data, an activation the C kernel
      computes, and the kernels built (or ``torch.compile``/``export`` tracing the op);
    - MixConv / DSConv: any device (one depthwise conv with the smaller kernels zero-embedded: one oneDNN call
      instead of one per branch).
    """
    if capturing() or not _no_autograd(x, layer.parameters()) or not layer.foldable():
        return None
    if layer.all_channel_branches:
        if not (x.device.type == "cpu" and x.dim() == 4 and kernels.act_code(layer.act) is not None
                and dtype_ok(x, layer.pw.weight)):
            return None
        if not compiling() and (x.numel() == 0 or not kernels.available()):
            return None
    return folded(layer, "_kernel_cache", layer.inference_weights)


def multi_branch_op_applies(layer: Any, x: torch.Tensor) -> bool:
    """All branches of this (training) call run as one ``leannets::multi_depthwise_conv`` op (C forward and
    backward): Multiception (several branches, each over all channels, no bias) on CPU float32 or bf16 data, with
    the kernels built (or compiling), outside graph capture."""
    return (layer.all_channel_branches and not capturing()
            and all(conv.bias is None and conv.padding_mode == "zeros" for conv in layer.dw)
            and x.device.type == "cpu" and x.dim() == 4 and dtype_ok(x, layer.dw[0].weight)
            and (compiling() or kernels.available()))


def bn_pointwise_applies(layer: Any, z: torch.Tensor) -> bool:
    """BN1 and the 1×1 conv of this training call run as one ``leannets::bn_pointwise`` op: the branch op's
    channels_last float32 CPU output ``z`` (no autocast), BN1 on batch statistics in one call
    (``layer.bn1_one_call()``, affine) and no activation between BN1 and the 1×1 (any 1×1 stride). One value per
    channel goes to the modules, whose BatchNorm refuses it as PyTorch's does."""
    return (layer.mid_act is None and layer.bn1_one_call() and layer.bn1[0].affine and z.numel() > z.shape[1]
            and z.dtype == layer.pw.weight.dtype == torch.float32 and not autocast_bf16()
            and z.device.type == "cpu" and z.dim() == 4 and z.is_contiguous(memory_format=torch.channels_last))


def batch_norm_op_applies(module: Any, x: torch.Tensor) -> bool:
    """This call of ``module`` runs as the ``leannets::batch_norm_train`` op (:func:`leannets.layers.norm.batch_norm`):
    exactly an affine ``nn.BatchNorm2d`` (not a synchronised subclass) on batch statistics, outside graph capture and
    compilation, on a channels_last float32 CPU map, or a bf16 one with float32 weights (bf16 autocast), with more than
    one value per channel and a channel count that is not a multiple of 16 (PyTorch's own kernel is faster on
    those), with the kernels built."""
    return (type(module) is nn.BatchNorm2d and module.training and module.affine and not capturing()
            and not compiling() and x.device.type == "cpu" and x.dim() == 4 and module.weight.dtype == torch.float32
            and x.dtype in (torch.float32, torch.bfloat16) and x.shape[1] % 16 != 0 and x.numel() > x.shape[1]
            and x.is_contiguous(memory_format=torch.channels_last) and kernels.available())
