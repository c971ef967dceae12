"""Peak training memory and step time: memory-efficient vs plain DenseNet-BC, measured in one run.

Usage: python benchmarks/densenet_memory.py [--model densenet_bc_cifar_16_16_16] [--batch 64] [--steps 3]

Peak memory is the maximum bytes of tensors alive during one forward+backward (tracked at
the ATen level, so it is exact and independent of the allocator); step time is the median
of ``--steps`` SGD steps after one warm-up step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import leannets
from leannets.analysis.profile import training_step_peak_bytes


def step_times(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i:  # first step is warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="densenet_bc_cifar_16_16_16")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    rows = {}
    for efficient in (False, True):
        torch.manual_seed(0)
        model = leannets.create_model(args.model, memory_efficient=efficient).train()
        loss_fn = lambda out: F.cross_entropy(out, y)  # noqa: E731
        peak = training_step_peak_bytes(model, x, loss_fn)
        rows[efficient] = (peak, step_times(model, x, y, args.steps))
    (p0, t0), (p1, t1) = rows[False], rows[True]
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads")
    print(f"{'variant':<18}{'peak train memory (MiB)':>26}{'step time (s)':>16}")
    print(f"{'plain':<18}{p0 / 2**20:>26.1f}{t0:>16.3f}")
    print(f"{'memory_efficient':<18}{p1 / 2**20:>26.1f}{t1:>16.3f}")
    print(f"ratio efficient/plain: memory {p1 / p0:.3f}x, step time {t1 / t0:.3f}x")


if __name__ == "__main__":
    main()
