"""WAE speed-up analysis: MAC breakdown, the paper's bound, and measured CPU/CUDA speed-ups.

Chen et al. (AAAI 2018) bound the speed-up of the WAE classifier over the full-resolution
backbone by ``1 / (1/4 + 1/64) ≈ 3.76``: the backbone on I_L runs at half resolution (¼ of the
MACs) and the fusion net on I_H has ¼ of the channels at half resolution (1/64). The bound
leaves out the encoder and the fully connected layers; :func:`mac_breakdown` counts each part.

Latencies of all models of one family come from the library's one harness
(:mod:`leannets.analysis.latency`): the deployment path (BN folded), one backend for all, interleaved
rounds, speed-ups from the per-round pairs with 95% intervals.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from leannets.models import create_model, is_model, model_info
from leannets.models.wae_classifier import FULL_RESOLUTION, WAEClassifier

from .latency import (BACKENDS, DEFAULT_BACKEND, DEFAULT_ROUNDS, DEFAULT_THREADS, describe_settings, format_with_ci,
                      measure_latency, prepare_for_inference, summarize_rounds, time_interleaved, torch_threads)
from .profile import count_macs

__all__ = ["paper_bound", "mac_breakdown", "family_of", "family_models", "full_resolution_model", "PartTiming", "latency_breakdown",
           "format_breakdown", "SpeedupRow", "SpeedupReport", "measure_speedups", "format_speedups", "WAE_PREFIXES"]

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
    """``("wae", "vgg16")`` for ``wae_vgg16``; ``("full", "vgg16")`` for ``vgg16``; ``("full", "resnet50")`` for
    the family's full-resolution baseline ``resnet50_v1``."""
    model_info(name)
    for prefix in WAE_PREFIXES:
        if name.startswith(prefix + "_"):
            return prefix, name[len(prefix) + 1:]
    for family, full in FULL_RESOLUTION.items():
        if name == full:
            return "full", family
    return "full", name


def full_resolution_model(family: str) -> str:
    """The full-resolution baseline of a backbone family (``resnet50`` → ``resnet50_v1``, as the WAE backbone)."""
    return FULL_RESOLUTION.get(family, family)


def family_models(name: str, variants: Sequence[str] = DEFAULT_VARIANTS) -> list[str]:
    """The full-resolution backbone of ``name``'s family followed by its WAE-style variants."""
    _, family = family_of(name)
    bad = [v for v in variants if v not in WAE_PREFIXES]
    if bad:
        raise ValueError(f"unknown variants {bad}; allowed: {', '.join(WAE_PREFIXES)}")
    names = [full_resolution_model(family)] + [f"{v}_{family}" for v in variants]
    missing = [n for n in names if not is_model(n)]
    if missing:
        raise ValueError(f"{name!r}: family {family!r} lacks the models {missing} (not a WAE family?)")
    return names


@dataclass
class SpeedupRow:
    """One model: MACs (per image), MAC ratio vs the full-res model, latency and speed-up per batch."""

    name: str
    variant: str
    macs: int
    front_end_macs: int
    mac_speedup: float
    latency_ms: dict[int, float] = field(default_factory=dict)
    latency_ci_ms: dict[int, tuple[float, float]] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)
    speedup_ci: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass
class SpeedupReport:
    family: str
    input_size: tuple[int, int, int]
    device: str
    threads: int
    batch_sizes: tuple[int, ...]
    rounds: int
    backend: str
    paper_bound: float
    rows: list[SpeedupRow]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, variant: str) -> SpeedupRow:
        for r in self.rows:
            if r.variant == variant:
                return r
        raise KeyError(f"no row for variant {variant!r}")


def measure_speedups(name: str, batch_sizes: Sequence[int] = (1,), device: str = "cpu",
                     threads: int | None = DEFAULT_THREADS, rounds: int = DEFAULT_ROUNDS, warmup: int = 3,
                     backend: str = DEFAULT_BACKEND, variants: Sequence[str] = DEFAULT_VARIANTS,
                     input_size: Sequence[int] | None = None, seed: int = 0) -> SpeedupReport:
    """Latency of the full-res backbone vs every variant of ``name``'s family, in one interleaved run.

    Every model runs the deployment path (:func:`~leannets.analysis.latency.prepare_for_inference`:
    BN folded) on ``backend``; speed-up = t_full / t_variant from the per-round pairs, with its 95% CI.

    Args:
        name: any model of the family (``wae_vgg16``, ``vgg16``, ...).
        batch_sizes: batches to time (per-batch latency is reported; speed-up is the ratio).
        device: ``cpu`` or ``cuda``.
        threads: CPU threads while timing (restored afterwards).
        rounds: timed interleaved rounds.
        backend: one of :data:`~leannets.analysis.latency.BACKENDS`, applied to every model alike.
        variants: WAE-style prefixes to compare with the full-res model.
        input_size: (C, H, W); default: the registered size.
    """
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    names = family_models(name, variants)
    size = tuple(int(v) for v in (input_size or model_info(names[0]).input_size))
    with torch_threads(threads):
        torch.manual_seed(seed)
        probe = torch.randn(1, *size)
        raw = {n: create_model(n).eval() for n in names}
        rows = []
        for n, m in raw.items():
            variant = family_of(n)[0]
            front = mac_breakdown(m, size)["front_end"] if variant != "full" else 0
            rows.append(SpeedupRow(n, variant, count_macs(m, probe), front, 0.0))
        for r in rows:
            r.mac_speedup = rows[0].macs / r.macs
        used = torch.get_num_threads()
    for b in batch_sizes:
        report = measure_latency(raw, size, b, backend, threads, rounds, warmup, device=device, seed=seed)
        for r in rows:
            lat = report.result(r.name)
            r.latency_ms[b], r.latency_ci_ms[b] = lat.latency_ms, lat.latency_ci_ms
            sp = lat.speedup_vs_first()
            r.speedup[b], r.speedup_ci[b] = sp if sp is not None else (1.0, (1.0, 1.0))
    return SpeedupReport(family_of(name)[1], size, device, used, tuple(batch_sizes), rounds, backend, paper_bound(),
                         rows)


def format_speedups(report: SpeedupReport) -> str:
    """Markdown table: MACs, MAC ratio, measured latency and speed-up (95% CIs) per batch size."""
    head = ["model", "MACs (G/img)", "encoder/DWT MACs (M)", "MAC ratio"]
    for b in report.batch_sizes:
        head += [f"latency b{b} (ms, median, 95% CI)", f"speed-up b{b} (×, 95% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(report.rows):
        row = [r.name, f"{r.macs / 1e9:.3f}", f"{r.front_end_macs / 1e6:.1f}", f"{r.mac_speedup:.2f}"]
        for b in report.batch_sizes:
            row += [format_with_ci(r.latency_ms[b], r.latency_ci_ms[b]), "1 (reference)" if i == 0 else
                    format_with_ci(r.speedup[b], r.speedup_ci[b])]
        lines.append("| " + " | ".join(row) + " |")
    settings = describe_settings(report.backend, report.threads, report.batch_sizes[0], report.rounds, report.device)
    lines.append(f"\n{report.family} at {'×'.join(map(str, report.input_size))}; {settings}. Paper bound "
                 f"1/(1/4+1/64) = {report.paper_bound:.2f}× (excludes encoder and fc layers).")
    return "\n".join(lines)


# Rows of a breakdown that time a whole model (the others are parts of the WAE model's forward).
WHOLE_MODEL_ROWS = ("full-resolution model", "full-resolution convs", "whole model")


@dataclass
class PartTiming:
    """One part of a WAE-style model (or the whole model, or the full-res reference) timed in isolation."""

    part: str
    macs: int
    latency_ms: float
    latency_ci_ms: tuple[float, float]

    @property
    def gmacs_per_s(self) -> float:
        """Achieved multiply-accumulate throughput: how close the part runs to the hardware's peak."""
        return self.macs / self.latency_ms / 1e6 if self.latency_ms > 0 else 0.0


def latency_breakdown(name: str, device: str = "cpu", threads: int | None = DEFAULT_THREADS,
                      rounds: int = DEFAULT_ROUNDS, warmup: int = 3, channels_last: bool = True,
                      input_size: Sequence[int] | None = None, seed: int = 0) -> list[PartTiming]:
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
        full_raw = create_model(full_resolution_model(family)).eval()
        full_macs = count_macs(full_raw, x)
        full_conv_macs = count_macs(full_raw.forward_features, x)
        model = prepare_for_inference(raw, x, channels_last=channels_last).to(device)
        full = prepare_for_inference(full_raw, x, channels_last=channels_last).to(device)
        # prepared models are eval copies with folded BN: the parts run exactly as in the whole model
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
        samples, inner = time_interleaved(calls, rounds, warmup, device=device)
    lat = {t.name: t for t in summarize_rounds(samples, inner)}
    part_macs = {"full-resolution model": full_macs, "full-resolution convs": full_conv_macs,
                 "whole model": macs["total"], "front end": macs["front_end"],
                 "backbone on I_L": macs["backbone"], "fusion net on I_H": macs["fusion"]}
    rows = [PartTiming(part, part_macs[part], lat[part].latency_ms, lat[part].latency_ci_ms) for part in calls]
    timed = sum(lat[part].latency_ms for part in calls if part not in WHOLE_MODEL_ROWS)
    rest = max(lat["whole model"].latency_ms - timed, 0.0)
    rows.append(PartTiming("heads (remainder)", macs["heads"], rest, (math.nan, math.nan)))
    return rows


def format_breakdown(name: str, rows: Sequence[PartTiming]) -> str:
    """Markdown table of :func:`latency_breakdown`: MACs, latency, share of the whole model, GMAC/s."""
    whole = next(r for r in rows if r.part == "whole model").latency_ms
    lines = [f"| {name}: part | MACs (G) | latency (ms, median, 95% CI) | share of whole model | GMAC/s |",
             "|---|---|---|---|---|"]
    for r in rows:
        share = "—" if r.part in WHOLE_MODEL_ROWS else f"{r.latency_ms / whole:.0%}"
        lat = f"{r.latency_ms:.2f}" if math.isnan(r.latency_ci_ms[0]) else format_with_ci(r.latency_ms, r.latency_ci_ms)
        lines.append(f"| {r.part} | {r.macs / 1e9:.3f} | {lat} | {share} | "
                     f"{r.gmacs_per_s:.0f} |")
    return "\n".join(lines)
