"""WAE speed-up: full-resolution backbone vs WAE model and baselines, in the deployment path, one run.

Usage: python benchmarks/wae_speedup.py [--families vgg16 resnet50] [--threads 2] [--rounds 30]
                                        [--backend channels_last] [--breakdown] [--json PATH]

For VGG16 and ResNet-50 at 224×224, batch 1, every model prepared by ``leannets.prepare_for_inference``
(BN folded) and timed interleaved by the library's harness; speed-up = t_full / t_model from the
per-round pairs with its 95% CI, next to the MAC ratio and the paper's bound 1/(1/4 + 1/64) = 3.76×.
Targets (2 threads): WAE-VGG16 ≥ 3.4×, WAE-ResNet-50 ≥ 2.0×. The 1-thread figures are reported beside
them, since the paper's Caffe timing (3.13× and 1.88×) implies a single thread.
"""
from __future__ import annotations

import argparse
import sys

from leannets.analysis.speedup import format_breakdown, format_speedups, latency_breakdown, measure_speedups

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, add_output_args, print_targets  # noqa: E402

GOALS = {"vgg16": ">= 3.4", "resnet50": ">= 2.0", "vgg_cifar_small": ""}
PAPER_CPU = {"vgg16": 3.13, "resnet50": 1.88}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--families", nargs="+", default=["vgg16", "resnet50"], choices=sorted(GOALS))
    p.add_argument("--backend", default="channels_last", choices=["eager", "channels_last", "compiled", "onnxruntime"])
    p.add_argument("--variants", nargs="+", default=["halfres", "wae"])
    p.add_argument("--breakdown", action="store_true", help="also time WAE's parts at batch 1")
    args = p.parse_args(argv)
    targets = []
    for family in args.families:
        for threads in (args.threads, 1):
            rep = measure_speedups(f"wae_{family}", (1,), threads=threads, rounds=args.rounds, backend=args.backend,
                                   variants=args.variants)
            print(f"\n### {family}, {threads} thread(s)\n\n{format_speedups(rep)}")
            wae = rep.row("wae")
            goal = GOALS[family] if threads == args.threads else ""
            settings = f"backend {rep.backend}, {rep.threads} CPU threads, batch 1, {rep.rounds} rounds"
            targets.append(Target(f"WAE-{family}, 224², batch 1", f"wae_{family}", family, "speed-up",
                                  wae.speedup[1], tuple(wae.speedup_ci[1]), goal, settings,
                                  {"mac_ratio": wae.mac_speedup, "paper_cpu": PAPER_CPU.get(family),
                                   "ms": [rep.rows[0].latency_ms[1], wae.latency_ms[1]]}))
        if args.breakdown:
            rows = latency_breakdown(f"wae_{family}", threads=args.threads, rounds=args.rounds)
            print(f"\n### where wae_{family}'s time goes ({args.threads} threads)\n")
            print(format_breakdown(f"wae_{family}", rows))
    print_targets("WAE speed-ups", targets, args.json,
                  "python benchmarks/wae_speedup.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
