"""Which path a layer takes, decided in one place: the ops of :mod:`leannets.layers.ops` or the plain modules.

- Training (autograd) runs the modules; depthwise convs take the ``leannets::depthwise_conv2d`` op (its C
  backward) where :func:`depthwise_op_applies` (measured faster in float32; always in bf16), and Multiception's
  branches all take one ``leannets::multi_depthwise_conv`` op (``SeparableMultiKernel.branch_op_ok``).
- bf16: under CPU bf16 autocast, or with bf16 data and weights, every path runs its ops on the bf16
  activations with float32 weights and sums (oneDNN's bf16 depthwise convolution is slower than float32).
- CPU inference runs the fused ops (:func:`xsep_weights`, :func:`choose_impl`) on weights folded once per
  module and kept until the module's state changes (:func:`folded`).
- ``torch.compile`` and ``torch.export`` trace the same ops through their fake kernels, the folding
  inside the graph.
- ``torch.jit`` tracing/scripting and ``torch.fx`` symbolic tracing, and any code inside
  :func:`reference_path` (the profiler, BN folding), see the plain conv → BN → act modules: MACs are
  the layers' own, and BN folding and the TorchScript ONNX exporter see ordinary modules.
- Multiception inference on other devices times its two PyTorch paths once per input signature
  (:func:`choose_impl`, ``impl="autotune"``).
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn as nn

from . import kernels

__all__ = ["reference_path", "capturing", "compiling", "folded", "xsep_weights", "depthwise_op_applies",
           "autocast_bf16", "dtype_ok", "choose_impl", "clear_autotune_cache"]

_REFERENCE = [0]  # depth of reference_path() contexts (process-wide)
_AUTOTUNE_CACHE: dict[tuple, str] = {}


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
def clear_autotune_cache() -> None:
    """Forget the paths chosen by ``impl="autotune"`` (e.g. after changing threads)."""
    _AUTOTUNE_CACHE.clear()


def _time_path(module: Any, x: torch.Tensor, path: str, backward: bool, repeats: int = 3) -> float:
    fn = module.forward_fused if path == "fused" else module.forward_reference
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    params = [p for p in module.parameters() if p.requires_grad]
    best = float("inf")
    for i in range(repeats + 1):
        sync()
        t0 = time.perf_counter()
        if backward:
            xi = x.detach().requires_grad_(True)
            out = fn(xi)
            torch.autograd.grad(out, [xi] + params, torch.ones_like(out))
        else:
            with torch.no_grad():
                fn(x)
        sync()
        if i:  # the first run is a warm-up
            best = min(best, time.perf_counter() - t0)
    return best


def _autotune(module: Any, x: torch.Tensor) -> str:
    backward = module.training and torch.is_grad_enabled()
    key = (type(module).__name__, module.in_ch, module.out_ch, module.branches, module.stride, module.stride_in,
           module.mid_act, x.device.type, x.dtype, tuple(x.shape[1:]), module.training, backward)
    if key not in _AUTOTUNE_CACHE:
        probe = copy.deepcopy(module)  # timing must not touch the real BN statistics
        times = {p: _time_path(probe, x, p, backward) for p in ("reference", "fused")}
        _AUTOTUNE_CACHE[key] = min(times, key=times.get)
    return _AUTOTUNE_CACHE[key]


def choose_impl(module: Any, x: torch.Tensor) -> str:
    """``"kernels"``, ``"fused"`` or ``"reference"`` for this call of a
    :class:`~leannets.layers.multiception.SeparableMultiKernel`.

    - ``impl="reference"``/``"fused"``/``"kernels"``: as asked (``kernels`` needs a float32 CPU input,
      else it is the reference path).
    - While :func:`capturing` (MAC counting, BN folding, jit/fx tracing): the reference path, so MACs are
      the layer's own (no zero-embedded work) and exports/folds see plain conv → BN modules.
    - ``"auto"`` on CPU with the C kernels (or while compiling): ``kernels`` for training (C depthwise
      backward, one BN call) and for Multiception inference (``leannets::multi_depthwise``: all branches
      in one call); MixConv/DSConv inference takes ``fused`` (one oneDNN call with zero-embedded kernels:
      1.5–2.1× faster for MixConv, and oneDNN's single-kernel depthwise forward beats ours). Without
      the kernels: ``fused`` for multiplier-1 inference, else the reference (the fused multiplier-m conv
      is up to 4× slower than m depthwise calls on CPU: oneDNN has no fast kernel for it).
    - ``"auto"`` on other devices, and ``"autotune"``: time ``fused`` and ``reference`` once per
      input signature (batch size excluded) and keep the faster.
    """
    impl = module.impl
    if impl in ("reference", "fused"):
        return impl
    if capturing():  # before reading the input: under fx it is a proxy
        return "reference"
    pw = module.pw
    on_cpu = x.device.type == "cpu" and (dtype_ok(x, pw.weight) or (pw.bias is not None and dtype_ok(x, pw.bias)))
    on_cpu_kernels = on_cpu and (compiling() or kernels.available())
    if impl == "kernels":
        return impl if on_cpu else "reference"
    if impl == "auto" and x.device.type == "cpu":
        inference = not module.training and not torch.is_grad_enabled()
        if on_cpu_kernels and (not inference or module.kernel_inference_ok(x)):
            return "kernels"
        return "fused" if inference and module.multiplier == 1 and module.fused_supported() else "reference"
    if not module.fused_supported():
        return "reference"
    return _autotune(module, x)
