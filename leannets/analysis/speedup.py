"""WAE speed-up analysis: MAC breakdown, the paper's bound, and measured CPU/CUDA speed-ups.

Chen et al. (AAAI 2018) bound the speed-up of the WAE classifier over the full-resolution
backbone by ``1 / (1/4 + 1/64) ≈ 3.76``: the backbone on I_L runs at half resolution (¼ of the
MACs) and the fusion net on I_H has ¼ of the channels at half resolution (1/64). The bound
leaves out the encoder and the fully connected layers; :func:`mac_breakdown` counts each part.

Latencies of all models of one family are measured *interleaved* (one call of each model per
round, medians over rounds), so that load from other processes on a shared machine hits all
models alike and the ratios stay meaningful; every model is measured with BatchNorm folded
into its convs and prepared the same way (eager, channels_last or TorchScript-frozen), on the
same input batch.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from leannets.models import create_model, is_model, model_info
from leannets.models.wae_classifier import WAEClassifier

from .fold_bn import fold_bn
from .profile import count_macs, median_iqr, torch_threads

__all__ = ["paper_bound", "mac_breakdown", "family_of", "family_models", "prepare_for_inference",
           "interleaved_timings", "interleaved_latency", "PartTiming", "latency_breakdown",
           "format_breakdown", "OPTIMIZATIONS", "SpeedupRow", "SpeedupReport", "measure_speedups", "format_speedups",
           "WAE_PREFIXES"]

WAE_PREFIXES = ("wae", "decomp", "wavelet", "halfres", "ilonly", "caonly")
DEFAULT_VARIANTS = ("halfres", "wavelet", "ilonly", "wae")


def paper_bound(fusion_div: int = 4) -> float:
    """``1 / (1/4 + 1/(4·fusion_div²))``: 3.76 for the paper's ¼-width fusion net."""
    return 1.0 / (0.25 + 0.25 / fusion_div ** 2)


def mac_breakdown(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """MACs per image of each part of a :class:`~leannets.models.wae_classifier.WAEClassifier`.

    Returns ``front_end`` (WAE encoder or DWT; the resize has none), ``backbone`` (on I_L),
    ``fusion`` (on I_H), ``heads`` (fully connected layers), ``total`` and
    ``total_without_front_end`` (what the paper's 4.11 G for WAE-VGG16 corresponds to).
    """
    if not isinstance(model, WAEClassifier):
        raise ValueError(f"mac_breakdown: expected a WAEClassifier, got {type(model).__name__}")
    model = model.eval()
    x = torch.randn(1, *input_size)
    with torch.no_grad():
        i_l, i_h = model.decompose(x)
    front = 0
    if model.wae is not None:
        front = count_macs(model.wae.encoder, x)
    elif model.dwt is not None:
        front = count_macs(model.dwt, x)
    backbone = count_macs(model.backbone.forward_features, i_l)
    fusion = count_macs(model.fusion_net.forward_features, i_h) if model.fusion_net is not None else 0
    total = count_macs(model, x)
    return {"front_end": front, "backbone": backbone, "fusion": fusion, "heads": total - front - backbone - fusion,
            "total": total, "total_without_front_end": total - front}


def family_of(name: str) -> tuple[str, str]:
    """``("wae", "vgg16")`` for ``wae_vgg16``; ``("full", "vgg16")`` for ``vgg16``."""
    model_info(name)
    for prefix in WAE_PREFIXES:
        if name.startswith(prefix + "_"):
            return prefix, name[len(prefix) + 1:]
    return "full", name


def family_models(name: str, variants: Sequence[str] = DEFAULT_VARIANTS) -> list[str]:
    """The full-resolution backbone of ``name``'s family followed by its WAE-style variants."""
    _, family = family_of(name)
    bad = [v for v in variants if v not in WAE_PREFIXES]
    if bad:
        raise ValueError(f"unknown variants {bad}; allowed: {', '.join(WAE_PREFIXES)}")
    names = [family] + [f"{v}_{family}" for v in variants]
    missing = [n for n in names if not is_model(n)]
    if missing:
        raise ValueError(f"{name!r}: family {family!r} lacks the models {missing} (not a WAE family?)")
    return names


OPTIMIZATIONS = ("eager", "channels_last", "jit")


def prepare_for_inference(model: nn.Module, example: torch.Tensor, fold: bool = True,
                          channels_last: bool = False, jit: bool = False) -> nn.Module:
    """Eval-mode copy for timing.

    Args:
        model: any module.
        example: an input of the shape that will be timed (used to find conv→BN pairs and to trace).
        fold: fold BatchNorm into the preceding convs.
        channels_last: weights (and the traced graph) in channels_last layout.
        jit: ``torch.jit.trace`` → ``freeze`` → ``optimize_for_inference`` (oneDNN layouts, conv+ReLU
            fusion on CPU). The traced graph is valid for ``example``'s shape only.
    """
    model = fold_bn(model, example[:1]) if fold else model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        example = example.contiguous(memory_format=torch.channels_last)
    if jit:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated but still the
            # fastest frozen-graph path on CPU here (oneDNN conv+ReLU fusion, prepacked weights)
            traced = torch.jit.trace(model, example, check_trace=False)
            model = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return model


def interleaved_timings(calls: dict[str, Callable[[], Any]], warmup: int = 1, repeats: int = 5,
                        device: str = "cpu") -> dict[str, tuple[float, float]]:
    """(median, IQR) ms per call, timed round-robin: each call once per round, in inference mode."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in calls}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in calls.values():
                fn()
        sync()
        for _ in range(repeats):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: median_iqr(ts) for name, ts in times.items()}


def interleaved_latency(models: dict[str, nn.Module], x: torch.Tensor, warmup: int = 1, repeats: int = 5,
                        device: str = "cpu") -> dict[str, tuple[float, float]]:
    """(median, IQR) ms per model on the same input, timed round-robin: one call of every model per round."""
    x = x.to(device)
    return interleaved_timings({name: (lambda m=m: m(x)) for name, m in models.items()}, warmup, repeats, device)


@dataclass
class SpeedupRow:
    """One model: MACs (per image), MAC ratio vs the full-res model, latency and speed-up per batch."""

    name: str
    variant: str
    macs: int
    front_end_macs: int
    mac_speedup: float
    latency_ms: dict[int, float] = field(default_factory=dict)
    latency_iqr_ms: dict[int, float] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)


@dataclass
class SpeedupReport:
    family: str
    input_size: tuple[int, int, int]
    device: str
    threads: int
    batch_sizes: tuple[int, ...]
    repeats: int
    optimize: str
    paper_bound: float
    rows: list[SpeedupRow]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, variant: str) -> SpeedupRow:
        for r in self.rows:
            if r.variant == variant:
                return r
        raise KeyError(f"no row for variant {variant!r}")


def measure_speedups(name: str, batch_sizes: Sequence[int] = (1, 8), device: str = "cpu", threads: int | None = None,
                     repeats: int = 5, warmup: int = 1, optimize: str = "channels_last",
                     variants: Sequence[str] = DEFAULT_VARIANTS, input_size: Sequence[int] | None = None,
                     seed: int = 0) -> SpeedupReport:
    """Latency of the full-res backbone vs every variant of ``name``'s family, BN folded, one run.

    Args:
        name: any model of the family (``wae_vgg16``, ``vgg16``, ...).
        batch_sizes: batches to time (per-batch latency is reported; speed-up is the ratio).
        device: ``cpu`` or ``cuda``.
        threads: CPU threads while timing (restored afterwards).
        repeats: timed rounds (medians reported).
        optimize: ``eager`` (BN folded), ``channels_last`` (+ channels_last layout) or ``jit``
            (+ traced, frozen and optimised for inference); applied to every model alike.
        variants: WAE-style prefixes to compare with the full-res model.
        input_size: (C, H, W); default: the registered size.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    if optimize not in OPTIMIZATIONS:
        raise ValueError(f"optimize must be one of {OPTIMIZATIONS}, got {optimize!r}")
    names = family_models(name, variants)
    size = tuple(int(v) for v in (input_size or model_info(names[0]).input_size))
    channels_last = optimize in ("channels_last", "jit")
    with torch_threads(threads):
        torch.manual_seed(seed)
        probe = torch.randn(1, *size)
        raw: dict[str, nn.Module] = {}
        rows = []
        for n in names:
            raw[n] = create_model(n).eval()
            variant = family_of(n)[0]
            front = mac_breakdown(raw[n], size)["front_end"] if variant != "full" else 0
            rows.append(SpeedupRow(n, variant, count_macs(raw[n], probe), front, 0.0))
        for r in rows:
            r.mac_speedup = rows[0].macs / r.macs
        for b in batch_sizes:
            x = torch.randn(b, *size)
            prepared = {n: prepare_for_inference(m, x, channels_last=channels_last, jit=optimize == "jit").to(device)
                        for n, m in raw.items()}
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lat = interleaved_latency(prepared, x, warmup, repeats, device)
            del prepared
            for r in rows:
                r.latency_ms[b], r.latency_iqr_ms[b] = lat[r.name]
                r.speedup[b] = lat[names[0]][0] / lat[r.name][0]
    return SpeedupReport(family_of(name)[1], size, device, threads or torch.get_num_threads(), tuple(batch_sizes),
                         repeats, optimize, paper_bound(), rows)


def format_speedups(report: SpeedupReport) -> str:
    """Markdown table: MACs, MAC-ratio, measured latency and speed-up per batch size."""
    head = ["model", "MACs (G/img)", "encoder/DWT MACs (M)", "MAC ratio"]
    for b in report.batch_sizes:
        head += [f"latency b{b} (ms, median ± IQR)", f"speed-up b{b} (×)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report.rows:
        row = [r.name, f"{r.macs / 1e9:.3f}", f"{r.front_end_macs / 1e6:.1f}", f"{r.mac_speedup:.2f}"]
        for b in report.batch_sizes:
            row += [f"{r.latency_ms[b]:.1f} ± {r.latency_iqr_ms[b]:.1f}", f"{r.speedup[b]:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"\n{report.family} at {'×'.join(map(str, report.input_size))}, device {report.device}, "
                 f"{report.threads} threads, BN folded, optimisation '{report.optimize}', "
                 f"medians of {report.repeats} interleaved rounds. Paper bound 1/(1/4+1/64) = "
                 f"{report.paper_bound:.2f}× (excludes encoder and fc layers).")
    return "\n".join(lines)


# Rows of a breakdown that time a whole model (the others are parts of the WAE model's forward).
WHOLE_MODEL_ROWS = ("full-resolution model", "full-resolution convs", "whole model")


@dataclass
class PartTiming:
    """One part of a WAE-style model (or the whole model, or the full-res reference) timed in isolation."""

    part: str
    macs: int
    latency_ms: float
    latency_iqr_ms: float

    @property
    def gmacs_per_s(self) -> float:
        """Achieved multiply-accumulate throughput: how close the part runs to the hardware's peak."""
        return self.macs / self.latency_ms / 1e6 if self.latency_ms > 0 else 0.0


def latency_breakdown(name: str, device: str = "cpu", threads: int | None = None, repeats: int = 5,
                      warmup: int = 1, channels_last: bool = True, input_size: Sequence[int] | None = None,
                      seed: int = 0) -> list[PartTiming]:
    """Where a WAE-style model's time goes: front end, backbone on I_L, fusion net on I_H, the whole model
    and the full-resolution model (whole and convs only), BN folded, batch 1, timed interleaved in one run.

    The achieved GMAC/s of each part shows which parts run far below the convolution library's peak, i.e.
    why the measured speed-up falls short of the MAC ratio. The classifier heads are the remainder
    (whole model minus the timed parts).
    """
    variant, family = family_of(name)
    if variant == "full":
        raise ValueError(f"latency_breakdown: {name!r} is a full-resolution model; pass a WAE-style model "
                         f"({', '.join(p + '_' + family for p in WAE_PREFIXES)})")
    size = tuple(int(v) for v in (input_size or model_info(name).input_size))
    with torch_threads(threads):
        torch.manual_seed(seed)
        x = torch.randn(1, *size)
        raw = create_model(name).eval()
        macs = mac_breakdown(raw, size)
        full_raw = create_model(family).eval()
        full_macs = count_macs(full_raw, x)
        full_conv_macs = count_macs(full_raw.forward_features, x)
        model = prepare_for_inference(raw, x, channels_last=channels_last).to(device)
        full = prepare_for_inference(full_raw, x, channels_last=channels_last).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.to(device)
        with torch.inference_mode():
            i_l, i_h = model.decompose(x)
        calls: dict[str, Callable[[], Any]] = {
            "full-resolution model": lambda: full(x),
            "full-resolution convs": lambda: full.forward_features(x),
            "whole model": lambda: model(x),
            "front end": lambda: model.decompose(x),
            "backbone on I_L": lambda: model.backbone.forward_features(i_l),
        }
        if model.fusion_net is not None:
            calls["fusion net on I_H"] = lambda: model.fusion_net.forward_features(i_h)
        lat = interleaved_timings(calls, warmup, repeats, device)
    part_macs = {"full-resolution model": full_macs, "full-resolution convs": full_conv_macs,
                 "whole model": macs["total"], "front end": macs["front_end"],
                 "backbone on I_L": macs["backbone"], "fusion net on I_H": macs["fusion"]}
    rows = [PartTiming(part, part_macs[part], *lat[part]) for part in calls]
    timed = sum(lat[part][0] for part in calls if part not in WHOLE_MODEL_ROWS)
    rows.append(PartTiming("heads (remainder)", macs["heads"], max(lat["whole model"][0] - timed, 0.0), 0.0))
    return rows


def format_breakdown(name: str, rows: Sequence[PartTiming]) -> str:
    """Markdown table of :func:`latency_breakdown`: MACs, latency, share of the whole model, GMAC/s."""
    whole = next(r for r in rows if r.part == "whole model").latency_ms
    lines = [f"| {name}: part | MACs (G) | latency (ms, median ± IQR) | share of whole model | GMAC/s |",
             "|---|---|---|---|---|"]
    for r in rows:
        share = "—" if r.part in WHOLE_MODEL_ROWS else f"{r.latency_ms / whole:.0%}"
        lines.append(f"| {r.part} | {r.macs / 1e9:.3f} | {r.latency_ms:.2f} ± {r.latency_iqr_ms:.2f} | {share} | "
                     f"{r.gmacs_per_s:.0f} |")
    return "\n".join(lines)
