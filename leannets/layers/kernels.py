"""Build and load the C kernels of ``_kernels/`` (one source per op family), and the helpers their ops share.

The sources (``xsep.c``, ``multi_dw.c``, ``depthwise.c``, ``batch_norm.c`` and ``common.h``) are compiled with
the system C compiler (``cc``/``gcc``/``clang``, ``-O3 -march=native -fopenmp``) into one shared library in the cache
folder (:func:`leannets._io.cache_dir`), named by a hash of the sources, the flags, the compiler and the
CPU, so it is built once per machine. Without a compiler, or with ``LEANNETS_KERNELS=0``, one warning is
given (none when disabled on purpose) and the ops of :mod:`leannets.layers.ops` run their PyTorch
decompositions: same results, slower.

Which path a layer takes is decided in :mod:`leannets.layers.dispatch`; the ops themselves are registered
with ``torch.library`` in :mod:`leannets.layers.ops`.
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
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from leannets._io import atomic_copy, cache_dir

__all__ = ["available", "library", "library_path", "fx_tracing", "tracing", "check_input", "act_code", "bn_is_affine",
           "bn_scale_shift", "cached_on_state", "cached_tensors", "KERNELS_ENV"]

KERNELS_ENV = "LEANNETS_KERNELS"
_SOURCE_DIR = Path(__file__).with_name("_kernels")
_SOURCES = ("xsep.c", "multi_dw.c", "depthwise.c", "batch_norm.c")  # one per op family; common.h is shared
_FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp"], ["-O3", "-ffp-contract=fast"])
_P, _L, _I = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
_SIGNATURES = {  # every kernel ends with (threads, bf16 activations)
    "xsep_forward_nchw": [_P, _P, _L, _L, _L, _L, _P, _P, _P, _P, _P, _P, _P, _L, _L, _I, _I, _I],
    "xsep_forward_nhwc": [_P, _P, _L, _L, _L, _L, _P, _P, _P, _P, _P, _P, _P, _L, _L, _I, _I, _I],
    "multi_dw_forward_nhwc": [_P, _P, _L, _L, _L, _L, _L, _P, _P, _P, _L, _I, _I, _I],
    "multi_dw_backward_input_nhwc": [_P, _P, _P, _L, _L, _L, _L, _L, _P, _L, _I, _I],
    "multi_dw_backward_weight_nhwc": [_P, _P, _P, _L, _L, _L, _L, _L, _P, _L, _I, _I],
    "bn_pointwise_dz": [_P, _P, _P, _P, _P, _P, _L, _L, _L, _I, _I],
    "bn_nhwc_stats": [_P, _P, _P, _L, _L, _I, _I],
    "bn_nhwc_affine": [_P, _P, _P, _P, _P, _L, _L, _I, _I],
    "bn_nhwc_grad_sums": [_P, _P, _P, _P, _P, _L, _L, _I, _I],
    "bn_nhwc_grad_input": [_P, _P, _P, _P, _P, _P, _P, _L, _L, _I, _I],
    "dw_forward_nhwc": [_P, _P, _P, _P] + [_L] * 12 + [_I, _I],
    "dw_backward_input_nhwc": [_P, _P, _P] + [_L] * 12 + [_I, _I],
    "dw_backward_weight_nhwc": [_P, _P, _P, _P] + [_L] * 12 + [_I, _I],
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
    files = sorted([*_SOURCES, "common.h"])
    source = b"\0".join(f.encode() + b"\0" + (_SOURCE_DIR / f).read_bytes() for f in files)
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    last_error = ""
    for flags in _FLAG_SETS:
        key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), str(version).encode(),
                                         _cpu_signature().encode()])).hexdigest()[:16]
        target = cache_dir() / "kernels" / f"leannets-{key}.so"
        if target.exists():
            return target, ""
        with tempfile.TemporaryDirectory(prefix="leannets-kernels-") as tmp:
            out = Path(tmp) / "leannets.so"
            cmd = [cc, *flags, "-shared", "-fPIC", "-o", str(out), *(str(_SOURCE_DIR / f) for f in _SOURCES)]
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


def library() -> ctypes.CDLL:
    """The loaded kernel library; ``RuntimeError`` when it is unavailable."""
    lib = _load()
    if lib is None:
        raise RuntimeError("leannets: the C kernels are not available")
    return lib


def library_path() -> Path | None:
    """Where the loaded kernel library lives (``None`` when unavailable)."""
    _load()
    return _STATE["path"]


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


@dataclass
class _Cached:
    extra: tuple
    slots: list[tuple[dict, str, Any, int, int]]  # (owner dict, key, object, version, data_ptr)
    value: Any

    def valid(self, extra: tuple) -> bool:
        if self.extra != extra:
            return False
        for owner, key, obj, version, ptr in self.slots:
            if owner.get(key) is not obj or (ptr >= 0 and (obj._version != version or obj.data_ptr() != ptr)):
                return False
        return True


def _slots(modules: Iterable[nn.Module]) -> list[tuple[dict, str, Any, int, int]]:
    """Every submodule, parameter and buffer the modules hold, with what identifies its current state."""
    out: list[tuple[dict, str, Any, int, int]] = []
    for m in modules:
        for key, child in m._modules.items():
            out.append((m._modules, key, child, 0, -1))
        for owner in (m._parameters, m._buffers):
            for key, t in owner.items():
                if t is not None:
                    out.append((owner, key, t, t._version, t.data_ptr()))
    return out


def cached_on_state(module: nn.Module, slot: str, compute: Callable[[], Any], extra: tuple = (),
                    modules: Callable[[], Iterable[nn.Module]] | None = None) -> Any:
    """``compute()``, reused until the state it was computed from changes: a tensor changed in place or
    moved, or a parameter, buffer or submodule of ``modules()`` (default: every module under ``module``)
    (re)assigned, or ``extra`` (state outside tensors) changed.

    Inference paths keep folded weights this way, per module (training updates bump the tensors'
    versions). A hit costs one check per tensor and submodule of those modules.
    """
    cached = module.__dict__.get(slot)
    if cached is not None and cached.valid(extra):
        return cached.value
    owners = list(modules()) if modules is not None else list(module.modules())
    entry = _Cached(extra, _slots(owners), compute())
    module.__dict__[slot] = entry
    return entry.value


def cached_tensors(module: nn.Module, slot: str) -> list[torch.Tensor]:
    """The tensors the cache entry ``slot`` of ``module`` depends on (empty before the first call)."""
    cached = module.__dict__.get(slot)
    return [obj for _, _, obj, _, ptr in cached.slots if ptr >= 0] if cached is not None else []
