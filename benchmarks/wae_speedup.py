"""WAE speed-up benchmark: full-resolution backbone vs WAE model and baselines, measured side by side.

Prints, for VGG16 and ResNet-50 at 224×224 (BN folded, every model prepared the same way, latencies
timed interleaved so shared-machine load hits all models alike), the measured speed-up next to the
MAC ratio and the paper's bound 1/(1/4 + 1/64) = 3.76×, and the goal (≥ 3.5× VGG16, ≥ 2.0× ResNet-50).

    python benchmarks/wae_speedup.py                       # both families, batch 1 and 4, 2 threads
    python benchmarks/wae_speedup.py --families vgg16 --optimize jit --repeats 7
    python benchmarks/wae_speedup.py --breakdown           # + where WAE's time goes (part latencies, GMAC/s)
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from leannets.analysis.speedup import (OPTIMIZATIONS, format_breakdown, format_speedups, latency_breakdown,
                                      measure_speedups)

GOALS = {"vgg16": 3.5, "resnet50": 2.0, "vgg_cifar_small": None}
PAPER_CPU = {"vgg16": 3.13, "resnet50": 1.88}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", nargs="+", default=["vgg16", "resnet50"], choices=sorted(GOALS))
    p.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--optimize", nargs="+", default=["channels_last", "jit"], choices=OPTIMIZATIONS)
    p.add_argument("--variants", nargs="+", default=["halfres", "wavelet", "wae"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--breakdown", action="store_true",
                   help="also time WAE's parts (front end, backbone on I_L, fusion net) at batch 1, channels_last")
    args = p.parse_args(argv)
    summary = []
    for family in args.families:
        for opt in args.optimize:
            t0 = time.perf_counter()
            report = measure_speedups(f"wae_{family}", batch_sizes=args.batch, device=args.device,
                                      threads=args.threads, repeats=args.repeats, optimize=opt,
                                      variants=args.variants)
            print(f"\n## {family} ({opt}, {time.perf_counter() - t0:.0f} s)\n")
            print(format_speedups(report))
            wae = report.row("wae")
            for b in args.batch:
                goal = GOALS[family]
                summary.append(f"{family:<9} {opt:<13} batch {b:<3} WAE speed-up {wae.speedup[b]:.2f}× "
                               f"(MAC ratio {wae.mac_speedup:.2f}, bound {report.paper_bound:.2f}"
                               + (f", paper CPU {PAPER_CPU[family]:.2f}" if family in PAPER_CPU else "")
                               + (f", goal {goal:.1f}: {'met' if wae.speedup[b] >= goal else 'NOT met'}"
                                  if goal else "") + ")")
    if args.breakdown:
        for family in args.families:
            rows = latency_breakdown(f"wae_{family}", device=args.device, threads=args.threads, repeats=args.repeats)
            print(f"\n## where wae_{family}'s time goes (batch 1, BN folded, channels_last)\n")
            print(format_breakdown(f"wae_{family}", rows))
    print(f"\n## summary (torch {torch.__version__}, {args.threads} threads)\n")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
