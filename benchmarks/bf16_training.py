"""bf16 autocast against fp32 on CPU, one row per model family: training steps, batch-1 inference, and what
``train.amp: auto`` picks.

Usage: python benchmarks/bf16_training.py [--threads 2] [--rounds 8] [--json PATH] [--models NAME ...]
                                          [--no-inference]

Training rows: one SGD step (forward + backward + update, batch 128, 32², channels_last) of a registered model
under bf16 autocast against the same step in fp32, interleaved rounds, throughput ratio bf16 / fp32 with its
95% CI. ``auto`` gives the choice the trainer makes for the model on this machine (:mod:`leannets.engine.amp`:
bf16 only on a CPU with native bf16 and when its own measured step is >= 1.1x faster). Inference rows: the
prepared model (``leannets.prepare_for_inference``, BN folded) at batch 1 on the harness's ``bf16`` backend (bf16 in
and out; the model computes in bf16, or in float32 where preparation measured that faster) against
``channels_last``, speed-up fp32 time / bf16 time, goal >= 1.0 (bf16 is not slower); beside it, without a goal, the
``bf16-exact`` backend (always computing in bf16), timed in the same rounds.
"""
from __future__ import annotations

import argparse
import sys

import torch

import leannets
from leannets.analysis.latency import build_call
from leannets.engine.amp import CPU_BF16_MIN_GAIN, bf16_step_gain, native_bf16_cpu

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, add_output_args, ratio_target, run, time_pair, train_step  # noqa: E402

#: one model per family the cpu scale trains (or would), classification at 32²
MODELS = ["resnet20_standard", "resnet20_multiception", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4",
          "mobilenetv3_small_cifar_050", "mobilenetv3_small_cifar_050_xsep", "mobilenetv2_cifar_multiception",
          "seresnet56_standard", "vgg_cifar_small", "convnext_cifar_atto_xsep"]
#: inference rows: every family of the registry, at the input its papers use
INFERENCE = {"resnet20_multiception": (3, 32, 32), "dxnet_cifar_4_4_4": (3, 32, 32),
             "mobilenetv3_small_100": (3, 224, 224), "mobilenetv3_small_100_xsep": (3, 224, 224),
             "mobilenetv2_100": (3, 224, 224), "resnet50": (3, 224, 224), "wae_vgg16": (3, 224, 224),
             "dxnet_denoise_4_4_4": (1, 64, 64), "convnext_cifar_atto_xsep": (3, 32, 32)}
BATCH = 128


def _auto_choice(name: str) -> str:
    if not native_bf16_cpu():
        return "fp32 (no native bf16)"
    torch.manual_seed(0)
    model = leannets.create_model(name, num_classes=10).train().to(memory_format=torch.channels_last)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    gain = bf16_step_gain(model, x)
    return f"{'bf16' if gain >= CPU_BF16_MIN_GAIN else 'fp32'} (probe {gain:.2f}x)"


def training_targets(args: argparse.Namespace) -> list[Target]:
    out = []
    for name in args.models:
        lats = time_pair({"fp32": train_step(name, BATCH), "bf16": train_step(name, BATCH, precision="bf16")},
                         args.rounds, args.threads)
        choice = _auto_choice(name)
        out.append(ratio_target("training", f"{name} bf16", f"{name} fp32", lats[1], ">= 1.0",
                                f"fwd+bwd+SGD, batch {BATCH}, 32², channels_last, allocator keep, {args.threads} CPU "
                                f"threads, {args.rounds} rounds; auto: {choice}", quantity="throughput", invert=True,
                                precision="bf16", img_per_s=[BATCH / (lat.latency_ms / 1e3) for lat in lats],
                                auto=choice))
    return out


def inference_targets(args: argparse.Namespace) -> list[Target]:
    """Per model: bf16 as users get it (``bf16`` backend: the prepared model computes in bf16, or in float32 where
    that was measured faster), with the goal; then ``bf16-exact`` (always computing in bf16), reported only."""
    out = []
    rounds = max(10, args.rounds)
    for name, size in INFERENCE.items():
        torch.manual_seed(0)
        model = leannets.create_model(name).eval()
        x = torch.randn(1, *size)
        calls = {"fp32": build_call(model, x, "channels_last", args.threads),
                 "bf16": build_call(model, x, "bf16", args.threads),
                 "bf16-exact": build_call(model, x, "bf16-exact", args.threads)}
        lats = time_pair(calls, rounds, args.threads, min_sample_ms=10.0, inference=True)
        base = (f"batch 1, {size[1]}², BN folded, channels_last, {args.threads} CPU threads, {rounds} rounds")
        chosen = calls["bf16"].compute_dtype
        out.append(ratio_target("inference", f"{name} bf16", f"{name} fp32", lats[1], ">= 1.0",
                                f"{base}; computing in {chosen}", quantity="speed-up", invert=True,
                                precision="bf16", ms=[lat.latency_ms for lat in lats[:2]], compute_dtype=chosen))
        out.append(ratio_target("inference, always computing in bf16", f"{name} bf16-exact", f"{name} fp32",
                                lats[2], "", base, quantity="speed-up", invert=True, precision="bf16",
                                ms=[lats[0].latency_ms, lats[2].latency_ms]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_args(p)
    p.set_defaults(rounds=8)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--no-inference", action="store_true", help="training rows only")
    args = p.parse_args(argv)
    targets = training_targets(args) + ([] if args.no_inference else inference_targets(args))
    return run("bf16 autocast vs fp32 on CPU", "bf16_training.py", targets, args, argv)


if __name__ == "__main__":
    sys.exit(main())
