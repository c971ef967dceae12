"""The one latency harness: deployment preparation, backends, interleaved rounds, ratios with CIs.

Every latency figure of the library (``profile``, ``compare``, ``speedup``, ``reproduce``,
``benchmarks/``) comes from :func:`measure_latency` / :func:`time_interleaved`:

- **Preparation.** :func:`prepare_for_inference` is the documented one-call deployment path:
  an eval-mode copy with BatchNorm folded into the convolutions, autograd off and channels_last
  weights, and each plain 1×1 conv timed on its own input and run as a matrix product where that is faster
  (:func:`tune_pointwise`). Layers with fast CPU kernels (:mod:`leannets.layers.kernels`) use them from then on.
- **Backends.** ``eager`` (prepared, NCHW), ``channels_last`` (prepared, NHWC input; the default),
  ``bf16`` (bfloat16 input and output, ``prepare_for_inference(model, dtype=torch.bfloat16)(x.bfloat16())``: the
  channels_last model with its folded weights in bfloat16, or computing in float32 where that is measured
  faster), ``bf16-exact`` (always computing in bfloat16), ``compiled`` (``torch.compile`` with inductor and weight
  freezing, on the channels_last model) and ``onnxruntime`` (the folded model exported to ONNX, run
  by onnxruntime; the ``export`` extra; ``onnxruntime-int8`` statically quantized).
- **Rounds.** After warm-up (which also triggers compilation), each call is calibrated to run
  ``n`` times per sample so that a sample lasts ≥ ``min_sample_ms``; then every round times one
  sample of every model, in alternating order (A B, B A, …) so drift and order effects hit all
  models alike. ``torch.utils.benchmark.Timer`` times one statement at a time, so it cannot give
  these per-round pairs; the harness uses ``time.perf_counter`` around the same calls instead.
- **Statistics.** Per model: the median over rounds and a distribution-free 95% interval of the
  median (order statistics, :func:`~leannets.analysis.statistics.median_ci`). Per model after the
  first: the per-round ratios t_model / t_first, their median and its interval, the same way, so
  the load a round shares cancels in its ratio.
- **Settings.** Threads are pinned (``torch.set_num_threads``; ORT's intra-op threads) and every
  report states backend, threads, batch and rounds.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from leannets.layers.pointwise import PointwiseConv2d, gemm_tunable, pointwise_candidate

from .fold_bn import fold_bn, probe_inputs
from .statistics import median_ci

__all__ = ["BACKENDS", "PRECISIONS", "DEFAULT_BACKEND", "DEFAULT_THREADS", "DEFAULT_ROUNDS", "prepare_for_inference",
           "tune_pointwise", "build_call", "time_interleaved", "summarize_rounds", "Latency", "LatencyReport",
           "measure_latency", "torch_threads", "describe_settings", "format_with_ci", "load_average", "ratio_caveat"]

BACKENDS = ("eager", "channels_last", "bf16", "bf16-exact", "compiled", "onnxruntime", "onnxruntime-int8")
DEFAULT_BACKEND = "channels_last"
DEFAULT_THREADS = 2
DEFAULT_ROUNDS = 30
PRECISIONS = ("fastest", "exact")
_POINTWISE_CHOICES: dict[tuple, bool] = {}  # tune_pointwise's decisions for this process
_MODEL_CHOICES: dict[tuple, bool] = {}  # whole-model decisions (keep the 1×1 switches; compute in low precision)


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


def prepare_for_inference(model: nn.Module, example: torch.Tensor | None = None, fold: bool = True,
                          channels_last: bool = True, dtype: torch.dtype | None = None, tune: bool = True,
                          precision: str = "fastest") -> nn.Module:
    """The deployment path: an eval copy with BN folded, no autograd, channels_last weights.

    ``model = leannets.prepare_for_inference(create_model(name))`` is what the latency figures of
    the library measure. The caller's module is not changed.

    Args:
        model: any module.
        example: a probe input used to find conv → BN pairs (default: the model's smallest input) and to time
            the 1×1 convs and the precision (default: one image of the model's ``pretrained_cfg`` input size).
        fold: fold every BatchNorm that directly follows a convolution.
        channels_last: store 4-D weights channels_last (feed channels_last inputs for full speed).
        dtype: the dtype the prepared model takes and returns, e.g. ``torch.bfloat16`` on a CPU with native bf16
            (feed inputs of that dtype). The folded weights are converted once; autocast would instead cast
            every weight on every call (autograd-free weights are not in its cast cache).
        tune: with ``channels_last``, time every plain 1×1 conv on its own input and run it as a matrix product
            where that is faster (:func:`tune_pointwise`), kept if the whole model is then measurably faster on
            the probe input (≤ 0.98 of its time). Prepare with the thread count you deploy with.
        precision: ``"fastest"``: with ``tune`` and a reduced ``dtype``, time the model computing in ``dtype``
            against the same model computing in float32 on the probe input (interleaved, medians) and keep the
            float32 computation, with the input cast to float32 and the output back to ``dtype``, when it is
            faster (small nets at batch 1, where bf16 elementwise and depthwise work costs more than it saves).
            ``"exact"``: always compute in ``dtype``. The result's ``compute_dtype`` says which it runs.

    Whole-model decisions are made once per architecture, input shape, dtype and thread count in a process (like
    the per-conv ones), so two preparations of one architecture, or a model and its float32 fallback, run alike.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    prepared = fold_bn(model, None if example is None else example[:1]) if fold else copy.deepcopy(model).eval()
    prepared.requires_grad_(False)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    probe = _tuning_input(prepared, example) if tune and channels_last else None
    low_precision = dtype in (torch.bfloat16, torch.float16)
    if dtype is not None and not low_precision:
        prepared = prepared.to(dtype)
    candidates = {"low": copy.deepcopy(prepared).to(dtype)} if low_precision else {}
    if not low_precision or (precision == "fastest" and probe is not None):
        candidates["float32"] = prepared
    for cand in candidates.values():
        if probe is not None:
            _tune_model(cand, probe.to(next(_floats(cand), probe).dtype))
    if len(candidates) == 2:
        return _faster_precision(candidates["low"], candidates["float32"], probe, dtype)
    chosen = next(iter(candidates.values()))
    chosen.compute_dtype = dtype or torch.float32
    return chosen


def _tune_model(model: nn.Module, x: torch.Tensor, rounds: int = 15, margin: float = 0.98) -> list[str]:
    """:func:`tune_pointwise`, kept only if the whole model with the switched 1×1 convs takes at most ``margin`` of
    its time without them on ``x`` (interleaved medians): per-conv timings miss what a layout or dtype change costs
    the layers around them, and a gain the harness cannot see (≈ 3 %) is not worth a second code path."""
    key = ("gemm", _structure(model), tuple(x.shape), x.dtype, torch.get_num_threads(), rounds, margin)
    names = tune_pointwise(model, x)
    if not names:
        return names
    modules = dict(model.named_modules())
    switched = [modules[n] for n in names]
    if key not in _MODEL_CHOICES:
        _MODEL_CHOICES[key] = _gemm_pays(switched, lambda: model(x), rounds, margin, min_sample_ms=2.0)
    keep = _MODEL_CHOICES[key]
    for m in switched:
        m.gemm = keep
    return names if keep else []


def _structure(model: nn.Module) -> str:
    """A digest of the module tree (types and shapes, not values): prepared models of one architecture share the
    whole-model decisions of a process, so two preparations of it, or a model and its float32 fallback, are alike."""
    return hashlib.sha1(repr(model).encode()).hexdigest()


def _floats(model: nn.Module) -> Iterator[torch.Tensor]:
    return (p for p in model.parameters() if p.is_floating_point())


class _CastFloats:
    """A forward (pre-)hook that casts the floating tensors of a call's inputs or output to one dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, module: nn.Module, *args: Any) -> Any:
        return _cast_floats(args[-1], self.dtype)


def _cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast_floats(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype) for k, v in obj.items()}
    return obj


def _faster_precision(low: nn.Module, high: nn.Module, probe: torch.Tensor, dtype: torch.dtype,
                      rounds: int = 9) -> nn.Module:
    """``low`` (computing in ``dtype``) unless ``high`` (float32, input and output cast) is faster on ``probe``."""
    key = ("precision", _structure(high), tuple(probe.shape), dtype, torch.get_num_threads(), rounds)
    high.register_forward_pre_hook(_CastFloats(torch.float32))
    high.register_forward_hook(_CastFloats(dtype))
    if key not in _MODEL_CHOICES:
        x = probe.to(dtype)
        _MODEL_CHOICES[key] = _second_takes_at_most(1.0, {"float32": lambda: high(x), "low": lambda: low(x)},
                                                    rounds, min_sample_ms=2.0)
    chosen = low if _MODEL_CHOICES[key] else high
    chosen.compute_dtype = dtype if chosen is low else torch.float32
    return chosen


def _second_takes_at_most(margin: float, calls: Mapping[str, Callable[[], Any]], rounds: int,
                          min_sample_ms: float) -> bool:
    """Whether the second of two calls takes at most ``margin`` of the first's time: medians of ``rounds``
    interleaved samples."""
    samples, _ = time_interleaved(calls, rounds, warmup=1, min_sample_ms=min_sample_ms)
    base, other = (sorted(samples[name])[rounds // 2] for name in calls)
    return other <= margin * base


def _gemm_pays(modules: Sequence[nn.Module], forward: Callable[[], Any], rounds: int, margin: float,
               min_sample_ms: float) -> bool:
    """Whether ``forward()`` with ``gemm`` on in ``modules`` takes at most ``margin`` of its time with it off."""
    def run(on: bool) -> Callable[[], Any]:
        def call() -> Any:
            for m in modules:
                m.gemm = on
            return forward()
        return call

    return _second_takes_at_most(margin, {"conv": run(False), "gemm": run(True)}, rounds, min_sample_ms)


def _gemm_faster(m: nn.Module, x: torch.Tensor, rounds: int, margin: float) -> bool:
    """Whether ``m`` with its 1×1 conv as a matrix product (``m.gemm``) takes at most ``margin`` of its time with
    the convolution, on ``x``."""
    return _gemm_pays([m], lambda: m(x), rounds, margin, min_sample_ms=0.5)


def _tuning_input(model: nn.Module, example: torch.Tensor | None) -> torch.Tensor | None:
    """The input the 1×1 convs are timed on: the example, or one image of the model's declared input size."""
    if example is None:
        size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
        if not size:
            return None
        example = torch.randn(1, *size)
    if example.dim() != 4 or example.device.type != "cpu":
        return None
    return example.float().contiguous(memory_format=torch.channels_last)


def tune_pointwise(model: nn.Module, x: torch.Tensor, rounds: int = 9, margin: float = 0.9) -> list[str]:
    """Turn each plain 1×1 conv in eval mode of ``model`` whose matrix-product form
    (:class:`~leannets.layers.pointwise.PointwiseConv2d`) runs in at most ``margin`` of the convolution's time on
    its own input (the median of ``rounds`` interleaved pairs) into that class, and switch ``gemm`` on in the
    layers that end with a 1×1 conv (``gemm_switch``: Multiception, MixConv, DSConv) where that is as much faster; returns their
    names.

    A decision is kept for the process per conv shape, input shape, dtype and thread count: models that share a
    layer shape get the same choice (a comparison of two models then differs only where they do), and each
    shape is timed once."""
    names = {m: n for n, m in model.named_modules() if gemm_tunable(m) and not m.training}
    switched = []
    for m, xi in probe_inputs(model, names, x).items():
        if not (isinstance(xi, torch.Tensor) and xi.dim() == 4 and xi.is_contiguous(memory_format=torch.channels_last)):
            continue
        plain = pointwise_candidate(m)
        key = (type(m).__name__, m.extra_repr(), tuple(xi.shape), xi.dtype, torch.get_num_threads(), rounds, margin)
        if plain:
            m.__class__ = PointwiseConv2d
        if key not in _POINTWISE_CHOICES:
            _POINTWISE_CHOICES[key] = _gemm_faster(m, xi, rounds, margin)
        if _POINTWISE_CHOICES[key]:
            m.gemm = True
            switched.append(names[m])
        else:
            m.__dict__.pop("gemm", None)
            if plain:
                m.__class__ = nn.Conv2d
    return switched


def _compiled(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        fn = torch.compile(model, backend="inductor", dynamic=False)
        with torch.inference_mode():
            fn(x)  # compile now, under the freezing setting
    return lambda: fn(x)


def _onnxruntime(model: nn.Module, x: torch.Tensor, threads: int | None, int8: bool = False) -> Callable[[], Any]:
    """onnxruntime on the exported model; ``int8``: the file ``leannets export --quantize int8`` writes, calibrated
    here on 16 random inputs (the timing does not depend on the calibration's quality)."""
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - the export extra is missing
        raise ValueError("backend 'onnxruntime' needs the export extra: pip install 'leannets[export]'") from err
    from .export import export_model

    with tempfile.TemporaryDirectory(prefix="leannets-latency-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_model(model, path, "onnx", input_size=tuple(x.shape[1:]), verify=False, dynamic_batch=x.shape[0] != 1)
        if int8:
            from .quantize import quantize_int8
            calib = torch.randn(16, *x.shape[1:], generator=torch.Generator().manual_seed(0))
            quantize_int8(path, Path(tmp) / "int8.onnx", calib, "random inputs (latency only)")
            path = Path(tmp) / "int8.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        # Sessions timed side by side must not spin-wait for work between calls: an idle session's
        # spinning threads would take the cores of the one being timed.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.contiguous().numpy()}
    return lambda: sess.run(None, feed)


def build_call(model: nn.Module, x: torch.Tensor, backend: str = DEFAULT_BACKEND, threads: int | None = None,
               fold: bool = True, device: str = "cpu") -> Callable[[], Any]:
    """A zero-argument callable running one inference of the prepared ``model`` on ``x``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend.startswith("onnxruntime"):
        if device != "cpu":
            raise ValueError(f"backend {backend!r} runs on the CPU only; use --device cpu")
        folded = fold_bn(model, x[:1]) if fold else copy.deepcopy(model).eval()
        return _onnxruntime(folded, x, threads, int8=backend == "onnxruntime-int8")
    dtype = torch.bfloat16 if backend.startswith("bf16") else None
    precision = "exact" if backend == "bf16-exact" else "fastest"
    prepared = prepare_for_inference(model, x, fold=fold, channels_last=backend != "eager", dtype=dtype,
                                     tune=device == "cpu", precision=precision).to(device)
    x = x.to(device, dtype)
    if backend != "eager":
        x = x.contiguous(memory_format=torch.channels_last)
    call = _compiled(prepared, x) if backend == "compiled" else (lambda: prepared(x))
    call.compute_dtype = str(prepared.compute_dtype).removeprefix("torch.")  # type: ignore[attr-defined]
    return call


def _calibrate(fn: Callable[[], Any], min_sample_ms: float, sync: Callable[[], None]) -> int:
    t0 = time.perf_counter()
    fn()
    sync()
    once = (time.perf_counter() - t0) * 1e3
    return max(1, min(1000, math.ceil(min_sample_ms / max(once, 1e-3))))


def time_interleaved(calls: Mapping[str, Callable[[], Any]], rounds: int = DEFAULT_ROUNDS, warmup: int = 3,
                     min_sample_ms: float = 5.0, device: str = "cpu", inference: bool = True
                     ) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per-round samples (ms per call) of every call, interleaved.

    Args:
        inference: run the calls in ``torch.inference_mode`` (``False`` for training steps).

    Returns ``(samples, calls_per_sample)``; round ``r`` of every call was taken back to back.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    names = list(calls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode(inference):
        for _ in range(warmup):
            for fn in calls.values():
                fn()
        sync()
        inner = {n: _calibrate(calls[n], min_sample_ms, sync) for n in names}
        for r in range(rounds):
            for n in (names if r % 2 == 0 else names[::-1]):
                fn, k = calls[n], inner[n]
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                sync()
                samples[n].append((time.perf_counter() - t0) * 1e3 / k)
    return samples, inner


@dataclass
class Latency:
    """One model's latency (median over rounds, ms) with its 95% CI, and its ratio to the first model."""

    name: str
    latency_ms: float
    latency_ci_ms: tuple[float, float]
    ratio_to_first: float | None = None
    ratio_ci: tuple[float, float] | None = None
    calls_per_sample: int = 1
    samples_ms: list[float] = field(default_factory=list, repr=False)
    compute_dtype: str | None = None  # what the prepared model computes in (bf16 backend: see prepare_for_inference)

    def speedup_vs_first(self) -> tuple[float, tuple[float, float]] | None:
        """(first / this, its CI): how many times faster than the first model."""
        if self.ratio_to_first is None or self.ratio_ci is None:
            return None
        lo, hi = self.ratio_ci
        return 1.0 / self.ratio_to_first, (1.0 / hi if hi > 0 else math.inf, 1.0 / lo if lo > 0 else math.inf)


def summarize_rounds(samples: Mapping[str, Sequence[float]], inner: Mapping[str, int] | None = None,
                     level: float = 0.95) -> list[Latency]:
    """Medians with CIs, and per-round ratios to the first entry (its own ratio is 1 with no interval)."""
    names = list(samples)
    out = []
    for i, n in enumerate(names):
        med, lo, hi = median_ci(samples[n], level)
        lat = Latency(n, med, (lo, hi), calls_per_sample=(inner or {}).get(n, 1), samples_ms=list(samples[n]))
        if i:
            ratios = [b / a for a, b in zip(samples[names[0]], samples[n]) if a > 0]
            r, rlo, rhi = median_ci(ratios, level)
            lat.ratio_to_first, lat.ratio_ci = r, (rlo, rhi)
        out.append(lat)
    return out


def format_with_ci(value: float | None, ci: Sequence[float] | None, digits: int = 2) -> str:
    """``"3.21 (3.10–3.49)"``; ``"3.21 (no CI)"`` without bounds (NaN: too few rounds); ``"-"`` without a value."""
    if value is None:
        return "-"
    if not ci or any(v != v for v in ci):
        return f"{value:.{digits}f} (no CI)"
    return f"{value:.{digits}f} ({ci[0]:.{digits}f}–{ci[1]:.{digits}f})"


def describe_settings(backend: str, threads: int, batch: int, rounds: int, device: str = "cpu") -> str:
    """The line every latency figure carries."""
    where = f"{threads} CPU threads" if device == "cpu" else device
    return (f"backend {backend}, {where}, batch {batch}, BN folded, median of {rounds} interleaved rounds "
            f"(95% CIs from order statistics; ratios from per-round pairs)")


@dataclass
class LatencyReport:
    """Latencies of several models measured together; ``results[0]`` is the reference of the ratios."""

    backend: str
    threads: int
    batch: int
    rounds: int
    device: str
    results: list[Latency]
    torch_version: str = torch.__version__

    def result(self, name: str) -> Latency:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no latency for {name!r}; measured: {[r.name for r in self.results]}")

    @property
    def settings(self) -> str:
        return describe_settings(self.backend, self.threads, self.batch, self.rounds, self.device)

    def as_dict(self, samples: bool = False) -> dict[str, Any]:
        doc = asdict(self)
        for r in doc["results"]:
            if not samples:
                r.pop("samples_ms")
        doc["settings"] = self.settings
        return doc


def measure_latency(models: Mapping[str, nn.Module], input_size: Sequence[int] | Mapping[str, Sequence[int]],
                    batch: int = 1,
                    backend: str = DEFAULT_BACKEND, threads: int | None = DEFAULT_THREADS,
                    rounds: int = DEFAULT_ROUNDS, warmup: int = 3, fold: bool = True, device: str = "cpu",
                    min_sample_ms: float = 5.0, seed: int = 0) -> LatencyReport:
    """Latency of every model on the same random ``(batch, *input_size)`` input, measured interleaved.

    Args:
        models: name → module; the first is the reference of ``ratio_to_first``.
        input_size: (C, H, W), or one per model name (models of different input sizes).
        backend: one of :data:`BACKENDS`.
        threads: CPU threads pinned while preparing and timing (``None``: unchanged).
        rounds: timed rounds (≥ 30 for the published figures).
        fold: fold BatchNorm (the deployment path); ``False`` times the unfolded eval model.
        device: ``cpu`` or ``cuda`` (``onnxruntime`` is CPU only).
    """
    if not models:
        raise ValueError("measure_latency needs at least one model")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    sizes = {n: tuple(input_size[n] if isinstance(input_size, Mapping) else input_size) for n in models}
    gen = torch.Generator().manual_seed(seed)
    inputs = {n: torch.randn(batch, *sizes[n], generator=gen) for n in models}
    with torch_threads(threads):
        calls = {n: build_call(m, inputs[n], backend, threads, fold, device) for n, m in models.items()}
        samples, inner = time_interleaved(calls, rounds, warmup, min_sample_ms, device)
        used = torch.get_num_threads()
    results = summarize_rounds(samples, inner)
    for r in results:
        r.compute_dtype = getattr(calls[r.name], "compute_dtype", None)
    return LatencyReport(backend, used, batch, rounds, device, results)


def load_average() -> float | None:
    """The machine's 1-minute load average (``None`` where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def ratio_caveat(ratio: float | None, ratio_ci: Sequence[float] | None, latency_ms: float, base_ms: float,
                 load: float | None, threads: int) -> str | None:
    """Why a latency ratio must not be judged, or ``None`` when it may be: the machine was busier than the
    threads timed (``load`` > ``threads``: other work shared the cores), or the ratio of the medians falls outside
    the ratio's 95% interval (the rounds were too spread for the paired ratio to describe the latencies)."""
    if load is not None and load > threads:
        return f"not judged: the machine was busy (load average {load:.1f} with {threads} thread(s) timed)"
    if ratio is None or not ratio_ci or base_ms <= 0:
        return None
    medians = latency_ms / base_ms
    if not ratio_ci[0] <= medians <= ratio_ci[1]:
        return (f"not judged: the rounds were too spread (the medians' ratio {medians:.3f} lies outside the "
                f"ratio's interval)")
    return None
