"""Training steps with host memory kept in the process (``train.allocator: keep``, the default) against the C
library's default (``system``), one row per model the cpu scale trains.

Usage: python benchmarks/allocator.py [--threads 2] [--rounds 8] [--steps 6] [--json PATH] [--models NAME ...]

The setting is process-wide and cannot be undone (:mod:`leannets.engine.allocator`), so each round runs one fresh
process per setting, in alternating order, each timing ``--steps`` SGD steps (batch 128, 32², channels_last,
fp32) after 3 warm-up steps: the round's figure is the median step. Ratio: throughput keep / system (= t_system
/ t_keep per round), goal >= 1.0 (keeping memory is not slower); beside it the minor page faults per step of
each setting.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, add_output_args, ratio_target, run, train_step  # noqa: E402

from leannets.analysis.latency import summarize_rounds  # noqa: E402

MODELS = ["resnet20_standard", "resnet20_multiception", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4",
          "mobilenetv3_small_cifar_050", "mobilenetv3_small_cifar_050_xsep", "vgg_cifar_small"]
BATCH, WARMUP = 128, 3
SETTINGS = ("system", "keep")


def child(name: str, allocator: str, steps: int, threads: int) -> None:
    """Runs in the child process: prints ``[median ms per step, minor faults per step]`` as JSON."""
    torch.set_num_threads(threads)
    step = train_step(name, BATCH, allocator=allocator)
    for _ in range(WARMUP):
        step()
    times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps([statistics.median(times), faults / steps]))


def _measure(name: str, allocator: str, args: argparse.Namespace) -> tuple[float, float]:
    cmd = [sys.executable, __file__, "--child", name, allocator, "--steps", str(args.steps),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    ms, faults = json.loads(out.stdout.strip().splitlines()[-1])
    return float(ms), float(faults)


def model_target(name: str, args: argparse.Namespace) -> Target:
    samples: dict[str, list[float]] = {s: [] for s in SETTINGS}
    faults: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        for setting in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
            ms, f = _measure(name, setting, args)
            samples[setting].append(ms)
            faults[setting].append(f)
    lats = summarize_rounds(samples)
    per_step = {s: round(statistics.median(v)) for s, v in faults.items()}
    return ratio_target("training, host allocator", f"{name} keep", f"{name} system", lats[1], ">= 1.0",
                        f"fwd+bwd+SGD, batch {BATCH}, 32², channels_last, fp32, {args.threads} CPU threads, "
                        f"{args.rounds} rounds of one process per setting (median of {args.steps} steps); minor "
                        f"page faults per step: system {per_step['system']}, keep {per_step['keep']}",
                        quantity="throughput", invert=True, faults_per_step=per_step,
                        ms_per_step={s: lat.latency_ms for s, lat in zip(SETTINGS, lats)})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_args(parser)
    parser.set_defaults(rounds=8)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process (default: 6)")
    parser.add_argument("--models", nargs="+", default=MODELS, help="registered models (default: the cpu scale's)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "ALLOCATOR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.steps, args.threads)
        return 0
    targets = [model_target(name, args) for name in args.models]
    return run("Host allocator: memory kept in the process vs the C library's default", "allocator.py", targets,
               args, argv)


if __name__ == "__main__":
    sys.exit(main())
