"""Profiler: parameters, MACs, elementwise gating work, peak activation memory and latency.

MACs are counted with :mod:`torch.utils.flop_counter` (which sees custom layers and
functional calls) and reported as multiply-accumulates = FLOPs / 2 of conv/matmul ops.
"""
from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from leannets.layers.dispatch import reference_path
from leannets.models import create_model, model_info

from .latency import torch_threads  # noqa: F401 - re-exported for callers of the profiler
from .latency import (DEFAULT_BACKEND, DEFAULT_ROUNDS, DEFAULT_THREADS, describe_settings, format_with_ci,
                      load_average, measure_latency, ratio_caveat)

__all__ = ["ProfileResult", "count_params", "count_macs", "count_elementwise", "peak_activation_bytes",
           "profile_model", "profile_models", "format_table", "LiveMemoryTracker", "training_step_peak_bytes",
           "torch_threads"]

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
    latency_ms: float | None = None
    latency_ci_ms: list[float] | None = None
    ratio_to_first: float | None = None
    ratio_to_first_ci: list[float] | None = None
    backend: str | None = None
    threads: int | None = None
    rounds: int | None = None
    bn_folded: bool | None = None
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared parameters count once."""
    seen: dict[int, nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return total, trainable


def count_macs(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], only: str | None = None) -> int:
    """Multiply-accumulates of one forward pass (conv, linear, matmul, bmm); ``only="convolution"`` counts the
    ops whose name holds it (e.g. the convolutions alone, as papers that leave the fc layers out)."""
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), reference_path(), counter:  # the layers' own convs, not their fused ops
        model(*inputs)
    if only is None:
        return int(counter.get_total_flops()) // 2
    counts = counter.get_flop_counts().get("Global", {})
    return int(sum(v for k, v in counts.items() if only in str(k))) // 2


def _op_name(func: Any) -> str:
    """``relu`` for ``F.relu``/``torch.relu``/``Tensor.relu_``; ``mul`` for ``Tensor.__mul__``/``__rmul__``/``__imul__``."""
    name = getattr(func, "__name__", "").strip("_")
    if name not in _ELEMENTWISE and name[:1] in ("i", "r") and name[1:] in _ELEMENTWISE:
        name = name[1:]
    return name


class _ElementwiseCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if _op_name(func) in _ELEMENTWISE and isinstance(out, torch.Tensor):
            self.ops += out.numel()
        return out


def count_elementwise(model: nn.Module, example_input: torch.Tensor) -> int:
    """Elementwise operations (one per output element of mul/add/sigmoid/exp/...) of one forward."""
    counter = _ElementwiseCounter()
    with torch.no_grad(), reference_path(), counter:
        model(example_input)
    return counter.ops


class LiveMemoryTracker(TorchFunctionMode):
    """Context manager tracking bytes of tensor storages created inside it that are still referenced.

    Forward: every tensor a torch function returns inside the context. Backward: :meth:`track_backward`
    hooks every node of a graph, so the gradients each node produces are tracked as they are made.
    ``peak`` is the maximum over the context. Storages that existed before entering are not counted.
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

    def _track_all(self, out: Any) -> None:
        for t in out if isinstance(out, (list, tuple)) else (out,):
            if isinstance(t, torch.Tensor):
                self._track(t)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        self._track_all(out)
        return out

    def track_backward(self, root: torch.Tensor) -> None:
        """Track the gradients every autograd node under ``root`` produces during the next backward."""
        seen: set[int] = set()
        stack = [root.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            node.register_hook(lambda grad_inputs, grad_outputs: self._track_all(grad_inputs))
            stack.extend(next_node for next_node, _ in node.next_functions)


def peak_activation_bytes(model: nn.Module, example_input: torch.Tensor, training: bool = False) -> int:
    """Peak bytes of tensors alive at once during one forward (parameters and input excluded).

    With ``training=True`` the forward keeps autograd's saved tensors, so this is the
    activation memory a training step holds before backward.
    """
    ctx = torch.enable_grad() if training else torch.no_grad()
    tracker = LiveMemoryTracker()
    with ctx, reference_path(), tracker:
        out = model(example_input)
        peak = tracker.peak
    del out
    return peak


def training_step_peak_bytes(model: nn.Module, example_input: torch.Tensor,
                             loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Peak bytes alive during one forward + backward (gradients included, parameters excluded)."""
    loss_fn = loss_fn or (lambda out: out.float().square().mean())
    tracker = LiveMemoryTracker()
    with reference_path(), tracker:
        loss = loss_fn(model(example_input))
        tracker.track_backward(loss)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return tracker.peak


def profile_model(model: nn.Module | str, input_size: Sequence[int] | None = None, **kwargs: Any) -> ProfileResult:
    """Profile one model (or registered name); keyword arguments as :func:`profile_models`."""
    return profile_models([model], input_size, **kwargs)[0]


def _static_profile(model: nn.Module | str, input_size: Sequence[int] | None, batch: int, elementwise: bool,
                    memory: bool) -> tuple[ProfileResult, nn.Module]:
    name = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
    if isinstance(model, str):
        if input_size is None:
            input_size = model_info(model).input_size
        model = create_model(model)
    if input_size is None:
        input_size = (getattr(model, "in_chans", 3), 32, 32)
    size = tuple(int(v) for v in input_size)
    model = model.eval()
    one = torch.randn(1, *size)
    total, trainable = count_params(model)
    result = ProfileResult(name=name, input_size=size, batch=batch, params=total, trainable_params=trainable,
                           macs=count_macs(model, one))
    if elementwise:
        result.elementwise_ops = count_elementwise(model, one)
    if memory:
        result.peak_activation_bytes = peak_activation_bytes(model, torch.randn(batch, *size))
    return result, model


def profile_models(
    models: Sequence[nn.Module | str],
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    batch: int = 1,
    latency: bool = True,
    elementwise: bool = False,
    memory: bool = True,
    backend: str = DEFAULT_BACKEND,
    threads: int | None = DEFAULT_THREADS,
    rounds: int = DEFAULT_ROUNDS,
    fold_bn: bool = True,
    device: str = "cpu",
) -> list[ProfileResult]:
    """Profile models side by side; their latencies are measured together, interleaved.

    Args:
        models: modules or registered names; the first is the reference of ``ratio_to_first``.
        input_size: (C, H, W) for every model, or one per model; default: each model's registered
            size (or 3×32×32).
        batch: batch size for memory and latency (MACs and params are per image).
        latency: measure latency with :func:`leannets.analysis.latency.measure_latency` in the
            deployment path (:func:`~leannets.analysis.latency.prepare_for_inference`).
        elementwise: count elementwise gating work.
        memory: measure peak activation memory of one inference forward at ``batch``.
        backend, threads, rounds, fold_bn, device: latency settings (see the harness).
    """
    if input_size is None or isinstance(input_size[0], int):
        sizes = [input_size] * len(models)
    else:
        sizes = list(input_size)
        if len(sizes) != len(models):
            raise ValueError(f"profile_models: {len(sizes)} input sizes for {len(models)} models")
    pairs = [_static_profile(m, size, batch, elementwise, memory) for m, size in zip(models, sizes)]
    results = [r for r, _ in pairs]
    names = [r.name if [q.name for q in results].count(r.name) == 1 else f"{r.name}#{i}"
             for i, r in enumerate(results)]
    if latency:
        load = load_average()
        report = measure_latency({n: m for n, (_, m) in zip(names, pairs)},
                                 {n: r.input_size for n, r in zip(names, results)}, batch, backend, threads, rounds,
                                 fold=fold_bn, device=device)
        for n, r in zip(names, results):
            lat = report.result(n)
            r.latency_ms, r.latency_ci_ms = lat.latency_ms, list(lat.latency_ci_ms)
            r.ratio_to_first = lat.ratio_to_first
            r.ratio_to_first_ci = None if lat.ratio_ci is None else list(lat.ratio_ci)
            caveat = None if r is results[0] else ratio_caveat(r.ratio_to_first, r.ratio_to_first_ci, r.latency_ms,
                                                                report.results[0].latency_ms, load, report.threads)
            r.extra.update({"load_average": load, **({"latency_caveat": caveat} if caveat else {}),
                            **({"compute_dtype": lat.compute_dtype} if lat.compute_dtype else {})})
            r.backend, r.threads, r.rounds, r.bn_folded, r.device = (report.backend, report.threads, report.rounds,
                                                                    fold_bn, device)
    return results


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: Sequence[ProfileResult]) -> str:
    """A Markdown table of profile results; every header states its unit, the footer the latency settings."""
    show_ew = any(r.elementwise_ops is not None for r in results)
    show_mem = any(r.peak_activation_bytes is not None for r in results)
    show_lat = any(r.latency_ms is not None for r in results)
    head = ["model", "input (C×H×W)", "params (M)", "params (exact)", "MACs (G, per image)"]
    if show_ew:
        head.append("elementwise ops (M, per image)")
    if show_mem:
        head.append("peak act. memory (MiB, batch)")
    if show_lat:
        head += ["latency (ms, median, 95% CI)", f"latency ratio to {results[0].name} (95% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.name, "×".join(map(str, r.input_size)), f"{r.params / 1e6:.4f}", f"{r.params:,}",
               f"{r.macs / 1e9:.4f}"]
        if show_ew:
            row.append(_fmt(None if r.elementwise_ops is None else r.elementwise_ops / 1e6, ".3f"))
        if show_mem:
            row.append(_fmt(None if r.peak_activation_bytes is None else r.peak_activation_bytes / 2**20, ".2f"))
        if show_lat:
            row.append(format_with_ci(r.latency_ms, r.latency_ci_ms, 3))
            ratio = format_with_ci(r.ratio_to_first, r.ratio_to_first_ci, 3)
            caveat = r.extra.get("latency_caveat")
            row.append("1 (reference)" if r is results[0] else ratio + (f" ({caveat})" if caveat else ""))
        lines.append("| " + " | ".join(row) + " |")
    first = results[0] if results else None
    if first is not None and first.latency_ms is not None:
        settings = describe_settings(first.backend or "?", first.threads or 0, first.batch, first.rounds or 0,
                                     first.device or "cpu")
        if not first.bn_folded:
            settings = settings.replace("BN folded", "BN not folded")
        if first.backend == "bf16":
            computes = ", ".join(f"{r.name} {r.extra.get('compute_dtype', '?')}" for r in results)
            settings += (f"; computing in: {computes} (float32 where it was measured faster than bfloat16, "
                         "leannets.prepare_for_inference; backend bf16-exact always computes in bfloat16)")
        lines.append(f"\nLatency: {settings}. MACs = multiply-accumulates (FLOPs/2).")
    elif first is not None:
        lines.append("\nMACs = multiply-accumulates (FLOPs/2).")
    return "\n".join(lines)
