"""Shared output of the benchmark scripts: target rows (measured ratio with its 95% CI) as a table or JSON.

Every timing comes from the library's harness (:mod:`leannets.analysis.latency`): interleaved
rounds, medians, per-round ratios with order-statistic intervals. A target is *met* when the whole
interval is on the right side of it, *missed* when the whole interval is on the wrong side, and
*not distinguishable* when the interval contains it.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

import leannets
from leannets._io import atomic_write_json
from leannets.analysis.latency import Latency, summarize_rounds, time_interleaved, torch_threads
from leannets.engine.allocator import keep_freed_memory


RATIO_NOTE = ("Ratios: medians of per-round ratios over interleaved rounds, 95% CIs from order statistics "
                "(leannets.analysis.latency). Verdict: met / missed when the whole interval is on one side of the "
                "target, else not distinguishable.")


@dataclass
class Target:
    """One measured comparison: ``ratio`` = what / reference (time, throughput or memory)."""

    area: str
    what: str
    reference: str
    quantity: str  # "time", "throughput" or "memory"
    ratio: float
    ci: tuple[float, float] | None
    goal: str  # e.g. "<= 0.8" or ">= 1.5"; "" for a reported figure without a target
    settings: str
    extra: dict[str, Any] = field(default_factory=dict)
    exact: bool = False  # a deterministic figure (e.g. tracked memory): judged on its value, no interval needed
    precision: str = "fp32"  # "bf16": both sides run under CPU bf16 autocast

    @property
    def verdict(self) -> str:
        if not self.goal:
            return "—"
        if self.ci is None and not self.exact:
            return "no CI (too few rounds)"
        op, value = self.goal.split()
        lo, hi = self.ci if self.ci is not None else (self.ratio, self.ratio)
        good_all = hi <= float(value) if op == "<=" else lo >= float(value)
        bad_all = lo > float(value) if op == "<=" else hi < float(value)
        return "met" if good_all else "missed" if bad_all else "not distinguishable"


def ratio_target(area: str, what: str, reference: str, lat: Latency, goal: str, settings: str,
                 quantity: str = "time", invert: bool = False, precision: str = "fp32", **extra: Any) -> Target:
    """A target from a harness ratio (``lat`` timed against ``reference``); ``invert``: report 1/ratio
    (throughput of ``what`` relative to ``reference`` = t_reference / t_what)."""
    ratio, ci = lat.ratio_to_first, lat.ratio_ci
    if ci is not None and any(v != v for v in ci):  # NaN bounds: fewer than 6 rounds
        ci = None
    if invert:
        ratio, ci = 1.0 / ratio, None if ci is None else (1.0 / ci[1], 1.0 / ci[0])
    return Target(area, what, reference, quantity, ratio, ci, goal, settings, extra, precision=precision)


PRECISIONS = ("fp32", "bf16")


def inference_backend(precision: str, exact: bool = False) -> str:
    """The latency harness backend of an inference row: ``channels_last``, or ``bf16`` (bf16 in and out; the prepared
    model computes in bf16, or in float32 where that was measured faster), ``bf16-exact`` with ``exact`` (always
    computing in bf16: kernel rows)."""
    if precision != "bf16":
        return "channels_last"
    return "bf16-exact" if exact else "bf16"


def autocast_if(precision: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn``, run under CPU bf16 autocast when ``precision`` is ``bf16``."""
    if precision != "bf16":
        return fn

    def under_autocast() -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()
    return under_autocast


def short_settings(report: Any) -> str:
    """``channels_last, 2 threads, batch 1, BN folded, 30 rounds`` for a harness LatencyReport."""
    text = f"{report.backend}, {report.threads} threads, batch {report.batch}, BN folded, {report.rounds} rounds"
    return text + computes_in(report.results) if report.backend == "bf16" else text


def computes_in(results: Any) -> str:
    """``; computing in float32 (both)`` / ``; computing in: a bfloat16, b float32``: what each prepared model of a
    ``bf16`` row chose (``leannets.prepare_for_inference``, precision ``fastest``)."""
    dtypes = [r.compute_dtype for r in results]
    if len(set(dtypes)) == 1:
        return f"; computing in {dtypes[0]} ({'both' if len(dtypes) == 2 else 'all'})"
    return "; computing in: " + ", ".join(f"{r.name} {r.compute_dtype}" for r in results)


def time_pair(calls: Mapping[str, Callable[[], Any]], rounds: int, threads: int, warmup: int = 2,
              min_sample_ms: float = 20.0, inference: bool = False) -> list[Latency]:
    """Interleaved timings of any calls (training steps by default) with ratios to the first."""
    with torch_threads(threads):
        samples, inner = time_interleaved(calls, rounds, warmup, min_sample_ms, inference=inference)
    return summarize_rounds(samples, inner)


def train_step(name: str, batch: int, channels_last: bool = True, precision: str = "fp32",
               allocator: str = "keep", **model_kwargs: Any) -> Callable[[], None]:
    """One SGD step (forward + backward + update) of a registered model on a fixed random CIFAR-size batch,
    the forward and loss under CPU bf16 autocast for ``precision="bf16"``, host memory kept in the process for
    ``allocator="keep"`` (both as the trainer runs them by default; the allocator setting is process-wide)."""
    if allocator == "keep":
        keep_freed_memory()
    torch.manual_seed(0)
    model = leannets.create_model(name, num_classes=10, **model_kwargs).train()
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    forward = autocast_if(precision, lambda: F.cross_entropy(model(x), y))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        forward().backward()
        opt.step()

    return step


def throughput_target(area: str, reference: str, what: str, batch: int, goal: str, rounds: int, threads: int,
                      channels_last: bool = True, precision: str = "fp32") -> Target:
    """Training throughput of ``what`` relative to ``reference`` (= t_reference / t_what per round), both in
    ``precision``."""
    lats = time_pair({reference: train_step(reference, batch, channels_last, precision),
                      what: train_step(what, batch, channels_last, precision)}, rounds, threads)
    layout = "channels_last" if channels_last else "NCHW"
    return ratio_target(area, what, reference, lats[1], goal, f"fwd+bwd+SGD, batch {batch}, 32², {layout}, "
                        f"{threads} CPU threads, {rounds} rounds, allocator keep", quantity="throughput", invert=True,
                        precision=precision, img_per_s=[batch / (lat.latency_ms / 1e3) for lat in lats])


def run(title: str, script: str, targets: list[Target], args: argparse.Namespace, argv: list[str] | None,
        notes: list[dict[str, Any]] | None = None) -> int:
    """Print the targets (and write the JSON) with the command line that produced them."""
    print_targets(title, targets, args.json, f"python benchmarks/{script} "
                  + " ".join(argv if argv is not None else sys.argv[1:]), notes)
    return 0


def machine() -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu": _cpu_name(), "platform": platform.platform()}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timed rounds (default: 30)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON "
                        "(benchmarks/results/SCRIPT.json feeds benchmarks/README.md: make_readme.py)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
                        help="fp32 and/or bf16 (CPU bf16 autocast) rows (default: both)")


def target_table(targets: list[Target]) -> list[str]:
    """The markdown rows of a target table (printed by the scripts, rendered into the README)."""
    lines = ["| area | measured | against | precision | ratio (95% CI) | target | verdict | settings |",
             "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        ci = "no CI" if t.ci is None else f"{t.ci[0]:.3f}–{t.ci[1]:.3f}"
        lines.append(f"| {t.area} | {t.what} | {t.reference} | {t.precision} | {t.quantity} ×{t.ratio:.3f} ({ci}) "
                     f"| {t.goal or '—'} | {t.verdict} | {t.settings} |")
    return lines


def print_targets(title: str, targets: list[Target], json_path: str | None, command: str,
                  notes: list[dict[str, Any]] | None = None) -> None:
    """The side-by-side table every benchmark prints, and the optional JSON file (``notes``: extra tables,
    each ``{"title": ..., "lines": [markdown lines]}``, kept in the JSON for the README)."""
    print(f"\n## {title}\n")
    print("\n".join(target_table(targets)))
    info = machine()
    print(f"\nMachine: {info['cpu']}, {info['cpus']} CPUs, torch {info['torch']}. Command: `{command}`")
    print(RATIO_NOTE)
    if json_path:
        atomic_write_json(json_path, {"title": title, "command": command, "machine": info,
                                      "date": datetime.date.today().isoformat(), "ratio_note": RATIO_NOTE,
                                      "targets": [asdict(t) | {"verdict": t.verdict} for t in targets],
                                      "notes": list(notes or [])})
