"""WAE speed-up: full-resolution backbone vs WAE model and baselines, in the deployment path, one run.

Usage: python benchmarks/wae_speedup.py [--families vgg16 resnet50] [--threads 2] [--rounds 30]
                                        [--precisions fp32 bf16] [--breakdown] [--json PATH]

For VGG16 and ResNet-50 at 224×224, batch 1, every model prepared by ``leannets.prepare_for_inference``
(BN folded) and timed interleaved by the library's harness; speed-up = t_full / t_model from the
per-round pairs with its 95% CI, next to the MAC ratio and the paper's bound 1/(1/4 + 1/64) = 3.76×.
Every row in fp32 (``channels_last``) and in bf16 (the ``bf16`` backend: bf16 weights and input), at 2 threads and at 1 (the paper's
Caffe timing, 3.13× and 1.88×, implies a single thread). Targets: WAE-VGG16 ≥ 3.4× at 2 threads and ≥ 3.13×
at 1; WAE-ResNet-50 ≥ 1.6× at 2 threads and ≥ 2.0× at 1.
"""
from __future__ import annotations

import argparse
import sys

from leannets.analysis.speedup import format_breakdown, format_speedups, latency_breakdown, measure_speedups

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, add_output_args, inference_backend, print_targets  # noqa: E402

#: (family, threads) → target (rows at other thread counts are reported without one)
GOALS = {("vgg16", 2): ">= 3.4", ("vgg16", 1): ">= 3.13", ("resnet50", 2): ">= 1.6", ("resnet50", 1): ">= 2.0"}
FAMILIES = ("vgg16", "resnet50", "vgg_cifar_small")
PAPER_CPU = {"vgg16": 3.13, "resnet50": 1.88}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--families", nargs="+", default=["vgg16", "resnet50"], choices=FAMILIES)
    p.add_argument("--variants", nargs="+", default=["halfres", "wae"])
    p.add_argument("--breakdown", action="store_true", help="also time WAE's parts at batch 1 (fp32)")
    args = p.parse_args(argv)
    targets, notes = [], []
    for family in args.families:
        for precision in args.precisions:
            for threads in (args.threads, 1):
                targets.append(_target(args, family, precision, threads))
        if args.breakdown:
            rows = latency_breakdown(f"wae_{family}", threads=args.threads, rounds=args.rounds)
            title = f"where wae_{family}'s time goes (fp32, {args.threads} threads)"
            text = format_breakdown(f"wae_{family}", rows)
            print(f"\n### {title}\n\n{text}")
            notes.append({"title": title, "lines": text.splitlines()})
    print_targets("WAE speed-ups", targets, args.json,
                  "python benchmarks/wae_speedup.py " + " ".join(argv if argv is not None else sys.argv[1:]), notes)
    return 0


def _target(args: argparse.Namespace, family: str, precision: str, threads: int) -> Target:
    rep = measure_speedups(f"wae_{family}", (1,), threads=threads, rounds=args.rounds,
                           backend=inference_backend(precision), variants=args.variants)
    print(f"\n### {family}, {precision}, {threads} thread(s)\n\n{format_speedups(rep)}")
    wae = rep.row("wae")
    goal = GOALS.get((family, threads), "")
    settings = f"backend {rep.backend}, {rep.threads} CPU threads, batch 1, {rep.rounds} rounds"
    return Target(f"WAE-{family}, {rep.input_size[-1]}², batch 1, {threads} thread{'s' if threads > 1 else ''}", f"wae_{family}", family, "speed-up", wae.speedup[1],
                  tuple(wae.speedup_ci[1]), goal, settings,
                  {"mac_ratio": wae.mac_speedup, "paper_cpu": PAPER_CPU.get(family),
                   "ms": [rep.rows[0].latency_ms[1], wae.latency_ms[1]]}, precision=precision)


if __name__ == "__main__":
    sys.exit(main())
