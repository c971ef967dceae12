"""XSepConv vs vanilla depthwise on CPU, in the path users get, measured side by side in one run.

Usage: python benchmarks/xsepconv_speed.py [--threads 2] [--rounds 30] [--precisions fp32 bf16] [--json PATH]
                                           [--quick]

Rows (every ratio = XSep / DW from interleaved rounds, with its 95% CI), each in fp32 and in bf16 (both sides
alike; training under CPU bf16 autocast, inference on the harness's ``bf16`` backend: bf16 weights and input;
the 1-thread and onnxruntime rows in fp32):

- block inference: ``XSepConv(C, k)`` vs a k×k depthwise conv → BN → h-swish, batch 1, at the
  MobileNetV3 shapes 96×28² and 240×14², both through ``leannets.prepare_for_inference`` (BN folded)
  on the default ``channels_last`` backend, where XSepConv runs on the library's C kernel; again at
  1 thread. Targets: k = 5 ≤ 0.8×, k = 7 ≤ 0.6×.
- ``mobilenetv3_small_100_xsep`` vs ``mobilenetv3_small_100``, 224², batch 1, same path. Target ≤ 0.93×
  (the MAC ratio); also reported at 1 thread and on onnxruntime.
- training: ``mobilenetv3_small_cifar_050_xsep`` vs ``mobilenetv3_small_cifar_050``, forward + backward
  + SGD step, batch 128, 32², channels_last (the trainer's ``train.channels_last``). Target: XSep
  throughput ≥ 1.0× the DW model's.
"""
from __future__ import annotations

import argparse
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

import leannets
from leannets.analysis.latency import measure_latency
from leannets.layers.kernels import available as kernels_available
from leannets.layers.xsepconv import DWConvBnAct, XSepConv

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import (Target, add_output_args, inference_backend, ratio_target, run,  # noqa: E402
                     short_settings, throughput_target)

BLOCK_SHAPES = ((96, 28), (240, 14))
GOALS = {5: "<= 0.8", 7: "<= 0.6"}


def _randomize_bn(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _runs(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(precision, threads) of the rows: every precision at --threads, then fp32 at 1 thread."""
    return [(p, args.threads) for p in args.precisions] + ([("fp32", 1)] if args.threads != 1 else [])


def block_targets(args: argparse.Namespace) -> list[Target]:
    out = []
    for precision, threads in _runs(args):
        for c, h in BLOCK_SHAPES[:1] if args.quick else BLOCK_SHAPES:
            for k in (5, 7):
                models = OrderedDict(dw=_randomize_bn(DWConvBnAct(c, (k, k), act="hswish")),
                                     xsep=_randomize_bn(XSepConv(c, k, act="hswish")))
                rep = measure_latency(models, (c, h, h), 1, inference_backend(precision, exact=True), threads,
                                      args.rounds)
                goal = GOALS[k] if threads == args.threads else ""
                out.append(ratio_target("XSepConv block, inference", f"XSepConv k={k}, {c}×{h}²", f"DW {k}×{k}",
                                        rep.result("xsep"), goal, short_settings(rep), precision=precision,
                                        dw_ms=rep.result("dw").latency_ms, xsep_ms=rep.result("xsep").latency_ms))
    return out


def model_targets(args: argparse.Namespace) -> list[Target]:
    names = ("mobilenetv3_small_100", "mobilenetv3_small_100_xsep")
    models = OrderedDict((n, leannets.create_model(n).eval()) for n in names)
    out = []
    runs = [(p, args.threads, "<= 0.93") for p in args.precisions] + [("fp32", 1, ""), ("onnxruntime", args.threads, "")]
    for precision, threads, goal in runs[:1] if args.quick else runs:
        backend = "onnxruntime" if precision == "onnxruntime" else inference_backend(precision)
        rep = measure_latency(models, (3, 224, 224), 1, backend, threads, args.rounds)
        xs = rep.result(names[1])
        out.append(ratio_target("MobileNetV3-Small ×1.0, 224², end to end", names[1], names[0], xs, goal,
                                short_settings(rep), precision="fp32" if precision == "onnxruntime" else precision,
                                ms=[rep.result(names[0]).latency_ms, xs.latency_ms]))
    return out


def training_targets(args: argparse.Namespace) -> list[Target]:
    return [throughput_target("XSep MobileNetV3-Small CIFAR ×0.5, training", "mobilenetv3_small_cifar_050",
                              "mobilenetv3_small_cifar_050_xsep", args.train_batch, ">= 1.0",
                              max(6, args.rounds // 3), args.threads, precision=p) for p in args.precisions]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(p)
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="one block shape, fewer rows (smoke run)")
    args = p.parse_args(argv)
    if not kernels_available():
        print("note: the C kernels are unavailable here, XSepConv runs its PyTorch path")
    return run("XSepConv vs depthwise", "xsepconv_speed.py",
               block_targets(args) + model_targets(args) + training_targets(args), args, argv)


if __name__ == "__main__":
    sys.exit(main())
