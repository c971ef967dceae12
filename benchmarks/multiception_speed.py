"""Multiception on CPU: the library's fast path vs the per-kernel PyTorch reference, and ResNet-20 training.

Usage: python benchmarks/multiception_speed.py [--threads 2] [--rounds 30] [--precisions fp32 bf16] [--json PATH]
                                              [--quick]

Rows (interleaved rounds, ratios with 95% CIs from the per-round pairs), each in fp32 and in bf16 (both sides
alike; training under CPU bf16 autocast, inference with bf16 weights and input):

- layer, training: forward + backward (input and parameter gradients) of the whole Multiception conv
  (depthwise branches → BN → pointwise → BN) at the ResNet-20 shapes, batch 128, channels_last:
  the layer as it runs (all branches in one ``leannets::multi_depthwise_conv`` op with its C backward, one BN
  call over the concatenation) against the per-branch PyTorch formulation (one PyTorch conv and BN per branch,
  what ``leannets.layers.dispatch.reference_path`` runs). Target: speed-up ≥ 1.5×.
- layer, inference: eval mode, batch 1, BN folded on the fly: all branches in one C-kernel call vs the
  reference. Target ≥ 1.5×.
- model: ``resnet20_multiception`` vs ``resnet20_standard`` training throughput (forward + backward +
  SGD, batch 128, 32², channels_last). Target ≥ 0.8×.
"""
from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, Callable

import torch

from leannets.layers import create_conv
from leannets.layers.dispatch import reference_path
from leannets.layers.kernels import available as kernels_available

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import (Target, add_output_args, autocast_if, ratio_target, run, throughput_target,  # noqa: E402
                     time_pair)

# (name, in_ch, out_ch, size, stride, kernel set): the ResNet-20 convs that change shape, per stage.
SHAPES = [
    ("stage1", 16, 16, 32, 1, (3, 5, 7)),
    ("stage2/s2", 16, 32, 32, 2, (3, 5)),
    ("stage2", 32, 32, 16, 1, (3, 5)),
    ("stage3/s2", 32, 64, 16, 2, (3, 3)),
    ("stage3", 64, 64, 8, 1, (3, 3)),
]


def _per_branch(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` on the per-branch PyTorch formulation (no op: one conv and BN per branch)."""
    def run_reference() -> Any:
        with reference_path():
            return fn()
    return run_reference


def _grad_step(module: torch.nn.Module, x: torch.Tensor):
    params = list(module.parameters())

    def step() -> None:
        xi = x.detach().requires_grad_(True)
        out = module(xi)
        torch.autograd.grad(out, [xi] + params, torch.ones_like(out))

    return step


def layer_targets(args: argparse.Namespace, precision: str) -> list[Target]:
    out = []
    rounds = max(6, args.rounds // 3)
    for name, cin, cout, size, stride, ks in SHAPES[:2] if args.quick else SHAPES:
        base = create_conv("multiception", cin, cout, ks, stride)
        ref, fast = copy.deepcopy(base), copy.deepcopy(base)
        shape = f"{cin}→{cout}, {size}², s{stride}, k{'/'.join(map(str, ks))}"
        x = torch.randn(args.train_batch, cin, size, size).contiguous(memory_format=torch.channels_last)
        lats = time_pair({"reference": autocast_if(precision, _per_branch(_grad_step(ref.train(), x))),
                          "kernels": autocast_if(precision, _grad_step(fast.train(), x))}, rounds, args.threads)
        out.append(ratio_target("Multiception layer, fwd+bwd", f"{name} {shape}", "per-kernel reference", lats[1],
                                ">= 1.5", f"batch {args.train_batch}, channels_last, {args.threads} CPU threads, "
                                f"{rounds} rounds", quantity="speed-up", invert=True, precision=precision))
        x1 = torch.randn(1, cin, size, size).contiguous(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        ref_i, fast_i, x1 = ref.eval().to(dtype), fast.eval().to(dtype), x1.to(dtype)
        lats = time_pair({"reference": _per_branch(lambda: ref_i(x1)), "kernels": lambda: fast_i(x1)}, args.rounds,
                         args.threads, min_sample_ms=5.0, inference=True)
        out.append(ratio_target("Multiception layer, inference", f"{name} {shape}", "per-kernel reference", lats[1],
                                ">= 1.5", f"batch 1, eval, channels_last, {args.threads} CPU threads, "
                                f"{args.rounds} rounds", quantity="speed-up", invert=True, precision=precision))
    return out


def model_targets(args: argparse.Namespace, precision: str) -> list[Target]:
    return [throughput_target("ResNet-20 training throughput", "resnet20_standard", "resnet20_multiception",
                              args.train_batch, ">= 0.8", max(6, args.rounds // 3), args.threads,
                              precision=precision)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="two shapes (smoke run)")
    args = p.parse_args(argv)
    if not kernels_available():
        print("note: the C kernels are unavailable here; the layer runs its modules")
    targets = [t for p in args.precisions for t in layer_targets(args, p) + model_targets(args, p)]
    return run("Multiception: fast path vs reference", "multiception_speed.py", targets, args, argv)


if __name__ == "__main__":
    sys.exit(main())
