"""Fused vs reference path of Multiception / MixConv / DSConv, measured side by side in one run.

Usage: python benchmarks/multiception_speed.py [--threads 1] [--repeats 5] [--device cpu] [--quick]

For every layer shape of a ResNet-20 stage (kernel sets {3,5,7}, {3,5}, {3,3}) the whole
conv-type module (depthwise branches → BN → pointwise → BN) is timed with the per-branch
reference path and with the fused path (one depthwise ``conv2d`` call with zero-embedded
kernels), interleaved, best of ``--repeats``:

- ``infer``: eval mode, no grad (BN folded on the fly by the fused path);
- ``train``: training mode forward + backward (gradients w.r.t. input and parameters).

``speedup`` = reference time / fused time (> 1: fused is faster). ``auto`` is the path
``impl="auto"`` takes for that call; the summary reports the speedup where auto uses fused.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from leannets.layers import create_conv
from leannets.layers.multiception import SeparableMultiKernel, choose_impl

# (name, in_ch, out_ch, size, stride, multi-kernel set) — ResNet-20 first convs per stage.
SHAPES = [
    ("stage1", 16, 16, 32, 1, (3, 5, 7)),
    ("stage2/s2", 16, 32, 32, 2, (3, 5)),
    ("stage2", 32, 32, 16, 1, (3, 5)),
    ("stage3/s2", 32, 64, 16, 2, (3, 3)),
    ("stage3", 64, 64, 8, 1, (3, 3)),
]


def _step(module: SeparableMultiKernel, x: torch.Tensor, path: str, train: bool) -> None:
    fn = module.forward_fused if path == "fused" else module.forward_reference
    if train:
        xi = x.detach().requires_grad_(True)
        out = fn(xi)
        params = [p for p in module.parameters() if p.requires_grad]
        torch.autograd.grad(out, [xi] + params, torch.ones_like(out))
    else:
        with torch.no_grad():
            fn(x)


def time_pair(module: SeparableMultiKernel, x: torch.Tensor, train: bool, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` ms of both paths, runs interleaved so machine load hits both alike."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    module.train(train)
    best = {"reference": float("inf"), "fused": float("inf")}
    for i in range(repeats + 1):
        for path in best:
            sync()
            t0 = time.perf_counter()
            _step(module, x, path, train)
            sync()
            if i:  # first round is warm-up
                best[path] = min(best[path], (time.perf_counter() - t0) * 1e3)
    return best


def auto_choice(module: SeparableMultiKernel, x: torch.Tensor, train: bool) -> str:
    probe = copy.deepcopy(module).train(train)
    probe.impl = "auto"
    with torch.set_grad_enabled(train):
        return choose_impl(probe, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="two shapes, fewer repeats (smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = SHAPES[:1] + SHAPES[-1:] if args.quick else SHAPES
    repeats = 2 if args.quick else args.repeats
    print(f"device {args.device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"best of {repeats}; speedup = reference / fused")
    print("| conv type | shape | kernels | mode | batch | reference (ms) | fused (ms) | speedup | auto |")
    print("|---|---|---|---|---|---|---|---|---|")
    used = []
    for conv_type in ("multiception", "mixconv", "dsconv"):
        for name, cin, cout, size, stride, ks in shapes:
            kernels = 3 if conv_type == "dsconv" else ks
            module = create_conv(conv_type, cin, cout, kernels, stride).to(args.device)
            runs = [("infer", b) for b in args.batches] + [("train", args.train_batch)]
            for mode, batch in runs:
                x = torch.randn(batch, cin, size, size, device=args.device)
                train = mode == "train"
                t = time_pair(module, x, train, repeats)
                speedup = t["reference"] / t["fused"]
                auto = auto_choice(module, x, train)
                if auto == "fused":
                    used.append(speedup)
                print(f"| {conv_type} | {name} {cin}→{cout} {size}×{size} s{stride} | {kernels} | {mode} | {batch} "
                      f"| {t['reference']:.3f} | {t['fused']:.3f} | {speedup:.2f}× | {auto} |", flush=True)
    if used:
        print(f"\nauto uses fused in {len(used)} case(s): speedup min {min(used):.2f}×, "
              f"max {max(used):.2f}×")
    else:
        print("\nauto uses the reference path everywhere in this run")


if __name__ == "__main__":
    main()
