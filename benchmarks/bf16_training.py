"""bf16 autocast against fp32 in CPU training, per model of the cpu scale, and what ``train.amp: auto`` picks.

Usage: python benchmarks/bf16_training.py [--threads 2] [--rounds 8] [--json PATH] [--models NAME ...]

Each row: one SGD step (forward + backward + update, batch 128, 32², channels_last) of a registered model under
bf16 autocast against the same step in fp32, interleaved rounds, throughput ratio bf16 / fp32 with its 95% CI.
``auto`` gives the choice the trainer makes for the model on this machine (:mod:`leannets.engine.amp`: bf16 only
on a CPU with native bf16 and when its own measured step is >= 1.1x faster). Goal: no model that ``auto`` puts in
bf16 trains slower than in fp32 (ratio >= 1 for every row whose choice is bf16).
"""
from __future__ import annotations

import argparse
import sys

import torch

from leannets.engine.amp import CPU_BF16_MIN_GAIN, bf16_step_gain, native_bf16_cpu

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, add_output_args, ratio_target, run, time_pair, train_step  # noqa: E402

#: the models the cpu scale trains (or would), one per family
MODELS = ["resnet20_standard", "resnet20_dsconv", "resnet20_multiception", "densenet_bc_cifar_6_6_6",
          "dxnet_cifar_4_4_4", "mobilenetv3_small_cifar_100", "mobilenetv3_small_cifar_100_xsep"]
BATCH = 128


def _bf16(step):
    def run_bf16() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()
    return run_bf16


def _auto_choice(name: str) -> str:
    if not native_bf16_cpu():
        return "fp32 (no native bf16)"
    torch.manual_seed(0)
    import leannets

    model = leannets.create_model(name, num_classes=10).train().to(memory_format=torch.channels_last)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    gain = bf16_step_gain(model, x)
    return f"{'bf16' if gain >= CPU_BF16_MIN_GAIN else 'fp32'} (probe {gain:.2f}x)"


def targets(args: argparse.Namespace) -> list[Target]:
    out = []
    for name in args.models:
        lats = time_pair({"fp32": train_step(name, BATCH), "bf16": _bf16(train_step(name, BATCH))}, args.rounds,
                         args.threads)
        choice = _auto_choice(name)
        out.append(ratio_target("training", f"{name} bf16", f"{name} fp32", lats[1],
                                ">= 1.0" if choice.startswith("bf16") else "",
                                f"fwd+bwd+SGD, batch {BATCH}, 32², channels_last, {args.threads} CPU threads, "
                                f"{args.rounds} rounds; auto: {choice}", quantity="throughput", invert=True,
                                img_per_s=[BATCH / (lat.latency_ms / 1e3) for lat in lats], auto=choice))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_args(p)
    p.set_defaults(rounds=8)
    p.add_argument("--models", nargs="+", default=MODELS)
    args = p.parse_args(argv)
    return run("bf16 autocast vs fp32 training on CPU", "bf16_training.py", targets(args), args, argv)


if __name__ == "__main__":
    sys.exit(main())
