"""Profiler: parameters, MACs, elementwise gating work, peak activation memory and latency.

MACs are counted with :mod:`torch.utils.flop_counter` (which sees custom layers and
functional calls) and reported as multiply-accumulates = FLOPs / 2 of conv/matmul ops.
"""
from __future__ import annotations

import statistics
import time
import weakref
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from leannets.models import create_model, model_info

from .fold_bn import fold_bn as _fold

__all__ = ["ProfileResult", "count_params", "count_macs", "count_elementwise", "peak_activation_bytes",
           "measure_latency", "profile_model", "format_table", "LiveMemoryTracker", "training_step_peak_bytes",
           "median_iqr", "torch_threads"]

# Elementwise ops that gating activations (xUnit, SE, h-swish) spend their work on.
_ELEMENTWISE = {
    "mul", "add", "sub", "div", "sigmoid", "exp", "neg", "pow", "hardsigmoid", "hardswish",
    "relu", "relu6", "hardtanh", "threshold_backward", "silu", "gelu", "tanh", "clamp", "square",
}


@dataclass
class ProfileResult:
    """One model's measured figures (units in the field names)."""

    name: str
    input_size: tuple[int, ...]
    batch: int
    params: int
    trainable_params: int
    macs: int
    elementwise_ops: int | None = None
    peak_activation_bytes: int | None = None
    cpu_latency_ms: float | None = None
    cpu_latency_iqr_ms: float | None = None
    cpu_latency_folded_ms: float | None = None
    cpu_latency_folded_iqr_ms: float | None = None
    cuda_latency_ms: float | None = None
    cuda_latency_iqr_ms: float | None = None
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared parameters count once."""
    seen: dict[int, nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return total, trainable


def count_macs(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor]) -> int:
    """Multiply-accumulates of one forward pass (conv, linear, matmul, bmm)."""
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops()) // 2


class _ElementwiseCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        base = func._overloadpacket.__name__.rstrip("_")
        if base in _ELEMENTWISE and isinstance(out, torch.Tensor):
            self.ops += out.numel()
        return out


def count_elementwise(model: nn.Module, example_input: torch.Tensor) -> int:
    """Elementwise operations (one per output element of mul/add/sigmoid/exp/...) of one forward."""
    counter = _ElementwiseCounter()
    with torch.no_grad(), counter:
        model(example_input)
    return counter.ops


class LiveMemoryTracker(TorchDispatchMode):
    """Context manager tracking bytes of tensor storages created inside it that are still referenced.

    ``peak`` is the maximum over the context (works through backward too: CPU autograd
    runs on the calling thread). Storages that existed before entering are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}
        self._bytes: dict[int, int] = {}

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            self.live -= self._bytes.pop(key)
            del self._refs[key]

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        if key not in self._refs:
            self._refs[key] = 0
            self._bytes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self._refs[key] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (list, tuple)) else (out,)
        for t in outs:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def peak_activation_bytes(model: nn.Module, example_input: torch.Tensor, training: bool = False) -> int:
    """Peak bytes of tensors alive at once during one forward (parameters and input excluded).

    With ``training=True`` the forward keeps autograd's saved tensors, so this is the
    activation memory a training step holds before backward.
    """
    ctx = torch.enable_grad() if training else torch.no_grad()
    tracker = LiveMemoryTracker()
    with ctx, tracker:
        out = model(example_input)
        peak = tracker.peak
    del out
    return peak


def training_step_peak_bytes(model: nn.Module, example_input: torch.Tensor,
                             loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Peak bytes alive during one forward + backward (gradients included, parameters excluded)."""
    loss_fn = loss_fn or (lambda out: out.float().square().mean())
    tracker = LiveMemoryTracker()
    with tracker:
        loss_fn(model(example_input)).backward()
    model.zero_grad(set_to_none=True)
    return tracker.peak


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``/0: unchanged), restored afterwards."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _time_calls(fn: Callable[[], Any], warmup: int, repeats: int, sync: Callable[[], None]) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def median_iqr(times: list[float]) -> tuple[float, float]:
    """(median, interquartile range) of timings; the IQR is 0 for fewer than 4 samples."""
    if len(times) < 4:
        return statistics.median(times), 0.0
    q = statistics.quantiles(times, n=4)
    return statistics.median(times), q[2] - q[0]


def measure_latency(model: nn.Module, example_input: torch.Tensor, warmup: int = 3, repeats: int = 10,
                    threads: int | None = None, device: str = "cpu") -> tuple[float, float]:
    """(median, IQR) latency in ms of ``model(example_input)`` in eval mode, no grad.

    Args:
        threads: CPU threads to pin with ``torch.set_num_threads`` (restored afterwards).
        device: ``cpu`` or ``cuda`` (CUDA timings synchronize around each call).
    """
    model = model.to(device).eval()
    x = example_input.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch_threads(threads), torch.inference_mode():
        times = _time_calls(lambda: model(x), warmup, repeats, sync)
    return median_iqr(times)


def profile_model(
    model: nn.Module | str,
    input_size: Sequence[int] | None = None,
    batch: int = 1,
    latency: bool = True,
    fold_bn: bool = False,
    elementwise: bool = False,
    memory: bool = True,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    cuda: bool | None = None,
) -> ProfileResult:
    """Profile a model (or registered name) at ``(batch, *input_size)``.

    Args:
        model: module or registered name.
        input_size: (C, H, W); default from the registry (or 3×32×32).
        batch: batch size for memory and latency (MACs and params are per image).
        latency: measure CPU latency (and CUDA latency when ``cuda`` and available).
        fold_bn: also measure latency with BatchNorm folded into convs.
        elementwise: count elementwise gating work.
        memory: measure peak activation memory of one inference forward at ``batch``.
        threads: CPU threads pinned during timing (default: current setting).
        cuda: time on CUDA too; ``None`` means "if available".
    """
    name = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
    if isinstance(model, str):
        if input_size is None:
            input_size = model_info(model).input_size
        model = create_model(model)
    if input_size is None:
        in_chans = getattr(model, "in_chans", 3)
        input_size = (in_chans, 32, 32)
    input_size = tuple(int(v) for v in input_size)
    model = model.eval()
    one = torch.randn(1, *input_size)
    total, trainable = count_params(model)
    result = ProfileResult(name=name, input_size=input_size, batch=batch, params=total,
                           trainable_params=trainable, macs=count_macs(model, one))
    xb = torch.randn(batch, *input_size)
    if elementwise:
        result.elementwise_ops = count_elementwise(model, one)
    if memory:
        result.peak_activation_bytes = peak_activation_bytes(model, xb)
    if latency:
        result.threads = threads or torch.get_num_threads()
        result.cpu_latency_ms, result.cpu_latency_iqr_ms = measure_latency(model, xb, warmup, repeats, threads)
        if fold_bn:
            folded = _fold(model, one)
            result.cpu_latency_folded_ms, result.cpu_latency_folded_iqr_ms = measure_latency(
                folded, xb, warmup, repeats, threads)
        use_cuda = torch.cuda.is_available() if cuda is None else cuda
        if use_cuda and torch.cuda.is_available():
            result.cuda_latency_ms, result.cuda_latency_iqr_ms = measure_latency(
                model, xb, warmup, repeats, device="cuda")
            model.to("cpu")
    return result


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: Sequence[ProfileResult]) -> str:
    """A Markdown table of profile results; every header states its unit."""
    show_ew = any(r.elementwise_ops is not None for r in results)
    show_mem = any(r.peak_activation_bytes is not None for r in results)
    show_lat = any(r.cpu_latency_ms is not None for r in results)
    show_fold = any(r.cpu_latency_folded_ms is not None for r in results)
    show_cuda = any(r.cuda_latency_ms is not None for r in results)
    head = ["model", "input (C×H×W)", "params (M)", "params (exact)", "MACs (G, per image)"]
    if show_ew:
        head.append("elementwise ops (M, per image)")
    if show_mem:
        head.append("peak act. memory (MiB, batch)")
    if show_lat:
        head.append("CPU latency (ms, median ± IQR)")
    if show_fold:
        head.append("CPU latency BN-folded (ms)")
    if show_cuda:
        head.append("CUDA latency (ms)")
    rows = []
    for r in results:
        row = [r.name, "×".join(map(str, r.input_size)), f"{r.params / 1e6:.4f}", f"{r.params:,}",
               f"{r.macs / 1e9:.4f}"]
        if show_ew:
            row.append(_fmt(None if r.elementwise_ops is None else r.elementwise_ops / 1e6, ".3f"))
        if show_mem:
            row.append(_fmt(None if r.peak_activation_bytes is None else r.peak_activation_bytes / 2**20, ".2f"))
        if show_lat:
            row.append("-" if r.cpu_latency_ms is None else f"{r.cpu_latency_ms:.2f} ± {r.cpu_latency_iqr_ms:.2f}")
        if show_fold:
            row.append("-" if r.cpu_latency_folded_ms is None else
                       f"{r.cpu_latency_folded_ms:.2f} ± {r.cpu_latency_folded_iqr_ms:.2f}")
        if show_cuda:
            row.append("-" if r.cuda_latency_ms is None else f"{r.cuda_latency_ms:.3f} ± {r.cuda_latency_iqr_ms:.3f}")
        rows.append(row)
    batch_note = f"batch {results[0].batch}, {results[0].threads} CPU threads" if results and results[0].threads else ""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if batch_note:
        lines.append(f"\nLatency and memory at {batch_note}; MACs = multiply-accumulates (FLOPs/2).")
    return "\n".join(lines)
