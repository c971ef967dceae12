"""Fast CPU kernels for depthwise convolutions, built from ``_kernels/depthwise.c`` on first use.

PyTorch runs each depthwise layer as its own oneDNN call; an XSepConv block is three of them plus
three activations, and at batch 1 the calls cost more than the arithmetic; a Multiception layer is
one call per kernel size; and PyTorch's CPU depthwise backward is slow for large kernels. The C
kernels (OpenMP, ``torch.get_num_threads()`` threads) provide:

- :func:`xsep_forward`: a whole BN-folded XSepConv block (2×2 → act → 1×k → act → k×1 → act) in one
  call. NHWC (channels_last): per (image, 16-channel block) in a zero-bordered scratch image, 16
  lanes wide, four output pixels per weight load. NCHW: one channel plane at a time through all
  three passes while it sits in cache, vectorised along rows.
- :func:`multi_depthwise_forward`: every BN-folded branch of a Multiception layer in one call (NHWC).
- :func:`depthwise_conv2d`: a depthwise conv whose backward (input and weight gradients) runs on
  the NHWC kernels, where :func:`fast_backward_applies` (measured faster); the forward stays oneDNN's.

The library is compiled with the system C compiler (``cc``/``gcc``/``clang``, ``-O3
-march=native -fopenmp``) into the cache folder (:func:`leannets._io.cache_dir`), named by a hash
of the source, the flags, the compiler and the CPU, so it is built once per machine. Without a
compiler, or with ``LEANNETS_KERNELS=0``, one warning is given (none when disabled on purpose) and
every layer keeps its PyTorch path: same results, slower. The PyTorch path is also what tracing,
``torch.compile``, ONNX export and the profilers see (:func:`graph_capture`), and it is the
correctness oracle of the tests.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils._python_dispatch import _get_current_dispatch_mode

from leannets._io import atomic_copy, cache_dir

__all__ = ["available", "library_path", "graph_capture", "fx_tracing", "tracing", "check_input", "act_code", "bn_is_affine", "bn_scale_shift",
           "cached_on_state", "cached_tensors", "xsep_forward", "depthwise_conv2d", "fast_backward_applies",
           "multi_depthwise_forward", "KERNELS_ENV"]

KERNELS_ENV = "LEANNETS_KERNELS"
_SOURCE = Path(__file__).with_name("_kernels") / "depthwise.c"
_FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp"], ["-O3", "-ffp-contract=fast"])
_P, _L, _I = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
_SIGNATURES = {
    "xsep_forward_nchw": [_P, _P, _L, _L, _L, _L, _P, _P, _P, _P, _P, _P, _P, _L, _L, _I, _I],
    "xsep_forward_nhwc": [_P, _P, _L, _L, _L, _L, _P, _P, _P, _P, _P, _P, _P, _L, _L, _I, _I],
    "dw_backward_input_nhwc": [_P, _P, _P] + [_L] * 12 + [_I],
    "multi_dw_forward_nhwc": [_P, _P, _L, _L, _L, _L, _L, _P, _P, _P, _L, _I, _I],
    "dw_backward_weight_nhwc": [_P, _P, _P, _P] + [_L] * 12 + [_I],
}
_STATE: dict[str, Any] = {"lib": None, "tried": False, "path": None}


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "|".join([platform.machine(), platform.processor(), *lines])


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(cc: str) -> tuple[Path | None, str]:
    """(path of the cached shared library, "") or (None, why it could not be built)."""
    source = _SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    last_error = ""
    for flags in _FLAG_SETS:
        key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), str(version).encode(),
                                         _cpu_signature().encode()])).hexdigest()[:16]
        target = cache_dir() / "kernels" / f"depthwise-{key}.so"
        if target.exists():
            return target, ""
        with tempfile.TemporaryDirectory(prefix="leannets-kernels-") as tmp:
            out = Path(tmp) / "depthwise.so"
            cmd = [cc, *flags, "-shared", "-fPIC", "-o", str(out), str(_SOURCE)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_copy(out, target)
                return target, ""
            last_error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return None, f"{cc} failed: {last_error}"


def _load() -> ctypes.CDLL | None:
    if _STATE["tried"]:
        return _STATE["lib"]
    _STATE["tried"] = True
    if os.environ.get(KERNELS_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    cc = _compiler()
    reason = "no C compiler found (cc, gcc or clang)" if cc is None else ""
    path = None
    if cc is not None:
        try:
            path, reason = _build(cc)
        except OSError as err:
            reason = f"{type(err).__name__}: {err}"
    if path is not None:
        try:
            lib = ctypes.CDLL(str(path))
            for name, argtypes in _SIGNATURES.items():
                getattr(lib, name).argtypes = argtypes
                getattr(lib, name).restype = _I
            _STATE["lib"], _STATE["path"] = lib, path
            return lib
        except (OSError, AttributeError) as err:
            reason = f"cannot load {path}: {err}"
    warnings.warn(f"leannets: fast depthwise CPU kernels unavailable ({reason}); using the PyTorch path "
                  f"(same results, slower). Set {KERNELS_ENV}=0 to silence.", RuntimeWarning, stacklevel=3)
    return None


def available() -> bool:
    """The C kernels are built and loaded (builds them on the first call)."""
    return _load() is not None


def library_path() -> Path | None:
    """Where the loaded kernel library lives (``None`` when unavailable)."""
    _load()
    return _STATE["path"]


def graph_capture() -> bool:
    """Tracing, scripting, compiling or a dispatch mode (profilers, BN-fold tracing) is active.

    Layers then take their plain PyTorch path, so exports and MAC counts see ordinary conv → BN modules.
    """
    if fx_tracing():
        return True
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)()
    try:
        mode = _get_current_dispatch_mode() is not None
    except (ImportError, RuntimeError):  # pragma: no cover - private API moved
        mode = False
    return torch.jit.is_tracing() or torch.jit.is_scripting() or compiling or mode


def fx_tracing() -> bool:
    """``torch.fx.symbolic_trace`` is running: inputs are proxies, so no branch may read their shape or flags."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def tracing() -> bool:
    """A graph is being traced or scripted (jit or fx): input checks are skipped (they would see proxies or fixed
    example shapes, and become part of the graph)."""
    return torch.jit.is_scripting() or torch.jit.is_tracing() or fx_tracing()


def check_input(x: torch.Tensor, channels: int, who: str) -> None:
    """``ValueError`` naming ``who`` unless ``x`` is (N, ``channels``, H, W); skipped while :func:`tracing`."""
    if tracing():
        return
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{who}: expected input (N, {channels}, H, W), got {tuple(x.shape)}")


def act_code(act: nn.Module | None) -> int | None:
    """The kernels' activation code (0 none, 1 ReLU, 2 hard-swish); ``None``: not supported."""
    if act is None or isinstance(act, nn.Identity):
        return 0
    if type(act) is nn.ReLU:
        return 1
    if type(act) is nn.Hardswish:
        return 2
    return None


def bn_is_affine(bn: nn.Module) -> bool:
    """The BN is a fixed per-channel affine map (eval with running statistics) or was folded away."""
    return isinstance(bn, nn.Identity) or (isinstance(bn, nn.BatchNorm2d) and not bn.training
                                           and bn.track_running_stats and bn.running_var is not None)


def bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
    """(scale, shift) of a BN that uses running statistics, (None, None) for Identity, else None."""
    if isinstance(bn, nn.Identity):
        return None, None
    if bn_is_affine(bn):
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.affine:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.affine:
            shift = shift + bn.bias
        return scale, shift
    return None


_GENERATION = [0]  # bumped whenever any module registers a parameter, buffer or submodule


def _bump_generation(*args: Any) -> None:
    _GENERATION[0] += 1


for _register in ("register_module_parameter_registration_hook", "register_module_buffer_registration_hook",
                  "register_module_module_registration_hook"):
    getattr(torch.nn.modules.module, _register)(_bump_generation)


@dataclass
class _Cached:
    generation: int
    extra: tuple
    tensors: list[torch.Tensor]
    stamps: list[tuple[int, int]]
    value: Any

    def valid(self, extra: tuple) -> bool:
        return (self.generation == _GENERATION[0] and self.extra == extra
                and all((t._version, t.data_ptr()) == s for t, s in zip(self.tensors, self.stamps)))


def cached_on_state(module: nn.Module, slot: str, compute: Callable[[], Any], extra: tuple = (),
                    tensors: Callable[[], Sequence[torch.Tensor]] | None = None) -> Any:
    """``compute()``, reused until a tensor it depends on changes in place or moves, a parameter, buffer or
    submodule is (re)assigned anywhere, or ``extra`` (state outside tensors) changes.

    Inference paths keep folded weights this way (training updates bump the tensors' versions). A hit
    costs one check per tensor: walking ``module.parameters()`` on every call would cost more than a
    small kernel call. ``tensors`` lists what ``compute`` reads (default: every parameter and buffer).
    """
    cached = module.__dict__.get(slot)
    if cached is not None and cached.valid(extra):
        return cached.value
    deps = list(tensors()) if tensors is not None else [*module.parameters(), *module.buffers()]
    entry = _Cached(_GENERATION[0], extra, deps, [(t._version, t.data_ptr()) for t in deps], compute())
    module.__dict__[slot] = entry
    return entry.value


def cached_tensors(module: nn.Module, slot: str) -> list[torch.Tensor]:
    """The tensors the cache entry ``slot`` of ``module`` depends on (empty before the first call)."""
    cached = module.__dict__.get(slot)
    return cached.tensors if cached is not None else []


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _xsep_pointers(stages: dict[str, Any], suffix: str) -> tuple[int | None, ...]:
    """Weight pointers of one layout, computed once per weights dict (the dict keeps the tensors alive)."""
    key = f"_ptrs{suffix}"
    if key not in stages:
        stages[key] = tuple(_ptr(stages[name]) for name in (f"w2{suffix}", "b2", "pad2", f"w1{suffix}", "b1",
                                                              f"wk{suffix}", "bk"))
    return stages[key]


def xsep_forward(x: torch.Tensor, stages: dict[str, Any], k: int, stride: int, act: int) -> torch.Tensor:
    """One BN-folded XSepConv block on the C kernels (inference only; no autograd).

    Args:
        x: (N, C, H, W) float32 on CPU; channels_last inputs give channels_last outputs.
        stages: folded weights from :meth:`leannets.layers.xsepconv.XSepConv.kernel_weights`:
            ``w2`` (or ``None`` without the 2×2 layer), ``b2``, ``pad2`` (C, 2) int32 (top, left),
            ``w1``, ``b1``, ``wk``, ``bk``; weights (C, taps) for NCHW, ``*_t`` (taps, C) for NHWC.
        k: kernel size of the 1×k / k×1 pair.
        stride: 1 or 2.
        act: activation code (:func:`act_code`).
    """
    lib = _load()
    if lib is None:
        raise RuntimeError("xsep_forward: the C kernels are not available")
    n, c, h, w = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if nhwc:
        out = torch.empty((n, c, ho, wo), memory_format=torch.channels_last)
        fn, ptrs = lib.xsep_forward_nhwc, _xsep_pointers(stages, "_t")
    else:
        x = x.contiguous()
        out = torch.empty((n, c, ho, wo))
        fn, ptrs = lib.xsep_forward_nchw, _xsep_pointers(stages, "")
    rc = fn(x.data_ptr(), out.data_ptr(), n, c, h, w, *ptrs, k, stride, act, torch.get_num_threads())
    if rc:
        raise MemoryError("xsep_forward: the kernel could not allocate its scratch memory")
    return out


def multi_depthwise_forward(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, kernel_sizes: torch.Tensor,
                            stride: int, act: int) -> torch.Tensor:
    """The BN-folded depthwise branches of a Multiception layer in one call (inference only).

    Args:
        x: (N, C, H, W) float32 on CPU (any layout; the result is channels_last).
        weights: every branch's tap-major (k·k, C) weights, flattened one after another.
        bias: (branches · C,) folded biases in concatenation order.
        kernel_sizes: (branches,) int64, odd.
        stride: the depthwise stride.
        act: activation code (:func:`act_code`).
    Returns:
        (N, branches · C, H_out, W_out), branch-major channels (the concatenation order).
    """
    lib = _load()
    if lib is None:
        raise RuntimeError("multi_depthwise_forward: the C kernels are not available")
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    kmax, nb = int(kernel_sizes.max()), kernel_sizes.numel()
    ho, wo = (h + 2 * (kmax // 2) - kmax) // stride + 1, (w + 2 * (kmax // 2) - kmax) // stride + 1
    out = torch.empty((n, nb * c, ho, wo), memory_format=torch.channels_last)
    if lib.multi_dw_forward_nhwc(x.data_ptr(), out.data_ptr(), n, c, h, w, nb, kernel_sizes.data_ptr(),
                                 weights.data_ptr(), bias.data_ptr(), stride, act, torch.get_num_threads()):
        raise MemoryError("multi_depthwise_forward: the kernel could not allocate its scratch memory")
    return out


def _conv_geometry(x: torch.Tensor, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int]) -> list[int]:
    n, c, h, w = x.shape
    ho = (h + 2 * padding[0] - kh) // stride[0] + 1
    wo = (w + 2 * padding[1] - kw) // stride[1] + 1
    return [n, c, h, w, ho, wo, kh, kw, stride[0], stride[1], padding[0], padding[1]]


class _DepthwiseConv2d(torch.autograd.Function):
    """Depthwise conv whose backward runs on the NHWC C kernels (forward: PyTorch's, i.e. oneDNN).

    Once differentiable: second derivatives (``create_graph=True``) raise; set ``LEANNETS_KERNELS=0``
    for them.

    Measured on 2 cores (benchmarks/README.md): oneDNN's depthwise forward is as fast as ours or faster,
    while its backward is 1.5–4× slower than ours for kernels with 25 taps or more and 1×k rows.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geo = _conv_geometry(x, weight.shape[2], weight.shape[3], stride, padding)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    @once_differentiable  # the C backward builds no graph: a double backward must fail, not return zeros
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        lib = _load()
        x, weight = ctx.saved_tensors
        geo, threads = ctx.geo, torch.get_num_threads()
        x = x.contiguous(memory_format=torch.channels_last)
        gy = gy.contiguous(memory_format=torch.channels_last)
        w_t = weight.detach().reshape(geo[1], -1).t().contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.empty(x.shape, memory_format=torch.channels_last)
            if lib.dw_backward_input_nhwc(gy.data_ptr(), w_t.data_ptr(), gx.data_ptr(), *geo, threads):
                raise MemoryError("depthwise_conv2d: the kernel could not allocate its scratch memory")
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            gw_t = torch.empty_like(w_t)
            gb = torch.empty(geo[1]) if ctx.has_bias else None
            if lib.dw_backward_weight_nhwc(gy.data_ptr(), x.data_ptr(), gw_t.data_ptr(), _ptr(gb), *geo, threads):
                raise MemoryError("depthwise_conv2d: the kernel could not allocate its scratch memory")
            gw = gw_t.t().reshape(weight.shape) if ctx.needs_input_grad[1] else None
            gb = gb if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                     padding: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=C)`` whose backward runs on the C kernels.

    The kernels work on channels_last data; NCHW inputs are converted (PyTorch's NCHW depthwise
    backward is the slowest path of all) and the output returns in the input's layout.
    """
    nchw = not (x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
    y = _DepthwiseConv2d.apply(x.contiguous(memory_format=torch.channels_last), weight, bias, tuple(stride),
                               tuple(padding))
    return y.contiguous() if nchw else y


def fast_backward_applies(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """The C backward is used for ``conv(x)``: autograd needs it, the op is a plain float32 CPU depthwise
    conv, and it is measured faster here: any NCHW input, or channels_last with ≥ 25 taps or a 1×k row."""
    if graph_capture() or not torch.is_grad_enabled() or not (x.requires_grad or conv.weight.requires_grad):
        return False
    if not (x.device.type == "cpu" and x.dtype == torch.float32 and conv.weight.dtype == torch.float32
            and x.dim() == 4 and conv.groups == conv.in_channels == conv.out_channels == x.shape[1]
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and x.numel() > 0):
        return False
    kh, kw = conv.kernel_size
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last and not (kh * kw >= 25 or (kh == 1 and kw >= 5)):
        return False
    return available()
