"""DenseNet-family training on CPU: throughput ratios, and the memory-efficient DenseNet's memory and time.

Usage: python benchmarks/densenet_memory.py [--threads 2] [--rounds 30] [--precisions fp32 bf16] [--json PATH]
                                           [--quick]

Rows (interleaved training steps: forward + backward + SGD, 32² inputs; ratios with 95% CIs); the throughput
rows in fp32 and under CPU bf16 autocast (both sides alike), the memory rows in fp32:

- ``densenet_bc_cifar_6_6_6`` (DenseNet-BC-40) vs ``resnet20_standard``, batch 128, channels_last:
  throughput ratio, target ≥ 0.4×.
- ``dxnet_cifar_4_4_4`` vs ``densenet_bc_cifar_6_6_6``, batch 128, NCHW and channels_last: throughput
  ratio, target ≥ 1.0× in both layouts (the xUnit's 9×9 depthwise backward runs on the C kernels).
- ``densenet_bc_cifar_16_16_16`` (DenseNet-BC-100) with ``memory_efficient=True`` vs plain, batch 64:
  peak training memory (exact: bytes of live tensors tracked at the ATen level, no CI needed) ≤ 0.5×,
  and step time ≤ 1.3×.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import leannets
from leannets.analysis.profile import training_step_peak_bytes

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import (Target, add_output_args, ratio_target, run, throughput_target, time_pair,  # noqa: E402
                     train_step)


def memory_targets(args: argparse.Namespace) -> list[Target]:
    name, batch = args.model, args.mem_batch
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    peaks = {}
    for efficient in (False, True):
        torch.manual_seed(0)
        model = leannets.create_model(name, num_classes=10, memory_efficient=efficient).train()
        peaks[efficient] = training_step_peak_bytes(model, x, lambda out: F.cross_entropy(out, y))
    rounds = max(6, args.rounds // 5)
    lats = time_pair({"plain": train_step(name, batch, False),
                      "memory_efficient": train_step(name, batch, False, memory_efficient=True)}, rounds,
                     args.threads)
    settings = f"batch {batch}, 32², NCHW, {args.threads} CPU threads"
    return [Target("memory-efficient DenseNet-BC-100", f"{name} memory_efficient", "plain", "peak memory",
                   peaks[True] / peaks[False], None, "<= 0.5", settings + " (exact peak of live tensors)",
                   {"peak_mib": [peaks[False] / 2**20, peaks[True] / 2**20]}, exact=True),
            ratio_target("memory-efficient DenseNet-BC-100", f"{name} memory_efficient", "plain", lats[1], "<= 1.3",
                         settings + f", {rounds} rounds", quantity="step time",
                         step_ms=[lat.latency_ms for lat in lats])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--model", default="densenet_bc_cifar_16_16_16", help="model of the memory rows")
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--mem-batch", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="small batches (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.train_batch, args.mem_batch = 16, 8
    rounds = max(6, args.rounds // 3)
    targets = [t for p in args.precisions for t in (
        throughput_target("DenseNet-BC-40 training", "resnet20_standard", "densenet_bc_cifar_6_6_6",
                          args.train_batch, ">= 0.4", rounds, args.threads, precision=p),
        throughput_target("DxNet 4-4-4 training", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4", args.train_batch,
                          ">= 1.0", rounds, args.threads, channels_last=False, precision=p),
        throughput_target("DxNet 4-4-4 training", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4", args.train_batch,
                          ">= 1.0", rounds, args.threads, precision=p))] + memory_targets(args)
    return run("DenseNet-family training", "densenet_memory.py", targets, args, argv)


if __name__ == "__main__":
    sys.exit(main())
