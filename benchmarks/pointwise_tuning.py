"""The 1×1 tuning of ``prepare_for_inference``: each model prepared as users get it against the same model prepared
with ``tune=False`` (every 1×1 conv on oneDNN), batch 1, interleaved rounds.

``prepare_for_inference`` times each plain 1×1 conv on its own input and runs it as one matrix product over the
pixels where that is faster (``leannets.layers.pointwise.PointwiseConv2d``), and so do the folded 1×1s of Multiception,
MixConv and DSConv; the switches stay when the whole model is then measurably faster. A ratio below 1 is the latency it
saves on the path users get; the goal is that it never costs (≤ 1.0).
"""
from __future__ import annotations

import argparse
import sys
from collections import OrderedDict

import torch

import leannets
from leannets.analysis.latency import prepare_for_inference, summarize_rounds, time_interleaved, torch_threads

from _common import Target, add_output_args, ratio_target, run

MODELS = ("resnet50", "wae_resnet50", "vgg16", "wae_vgg16", "mobilenetv3_small_100", "mobilenetv3_small_100_xsep",
          "mobilenetv2_100", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4", "resnet20_multiception",
          "mobilenetv2_cifar_multiception")


def model_target(name: str, threads: int, rounds: int, precision: str) -> Target:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with torch_threads(threads):
        model = leannets.create_model(name).eval()
        example = torch.randn(1, *model.pretrained_cfg["input_size"])
        plain = prepare_for_inference(model, example, dtype=dtype, tune=False)
        tuned = prepare_for_inference(model, example, dtype=dtype, precision="exact")  # the 1×1 choice only
        x = example.to(dtype).contiguous(memory_format=torch.channels_last)
        switched = sum(bool(getattr(m, "gemm", False)) for m in tuned.modules())
        samples, inner = time_interleaved(OrderedDict(plain=lambda: plain(x), tuned=lambda: tuned(x)), rounds)
    lat = summarize_rounds(samples, inner)
    return ratio_target("1×1 convs as matrix products, inference", f"{name} prepared",
                        f"{name} prepared with tune=False", lat[1], "<= 1.0",
                        f"batch 1, {tuple(x.shape[2:])}, BN folded, channels_last, {threads} CPU threads, {rounds} "
                        f"rounds; {switched} 1×1 convs switched", precision=precision,
                        ms=[lat[0].latency_ms, lat[1].latency_ms])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    args = p.parse_args(argv)
    targets = [model_target(n, args.threads, args.rounds, precision)
               for precision in args.precisions for n in args.models]
    return run("1×1 convolutions as matrix products", "pointwise_tuning.py", targets, args, argv)


if __name__ == "__main__":
    sys.exit(main())
