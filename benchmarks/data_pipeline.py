"""Data-pipeline overhead of the trainer on CIFAR-size data (CPU).

Prints ``epoch time ÷ Σ(pure model step time)``: one training epoch of the real trainer (in-memory
uint8 data, on-device crop + flip + cutout + normalisation, LR schedule, logging, NaN tracking)
against the same number of bare ``forward + backward + optimizer.step`` calls on pre-made float
tensors, measured side by side in one run. Goal: ≤ 1.10.

    python benchmarks/data_pipeline.py [--model densenet_bc_cifar_6_6_6] [--images 1024] [--batch 64]
                                       [--threads 2] [--repeats 6] [--data-root ../shared/data/cifar10-subset]
                                       [--json PATH]

The ratio is the median over ``--repeats`` alternating trainer/pure measurements, with its 95%
order-statistic interval (needs ≥ 6 repeats).

Without ``--data-root`` the images are random uint8 CIFAR-size tensors (the pipeline cost does not
depend on the pixel values); with it the CIFAR-10 pickles are read through ``leannets.data``.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from leannets.analysis.statistics import median_ci
from leannets.data import DataSplits, ImageTensors, register_dataset
from leannets.engine import train
from leannets.models import create_model

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import Target, print_targets  # noqa: E402

_BENCH: dict[str, ImageTensors] = {}


def _bench_builder(cfg: dict) -> DataSplits:
    tr = _BENCH["train"]
    return DataSplits(train=tr, eval=ImageTensors(tr.images[:64], tr.labels[:64]), num_classes=10, in_chans=3,
                      input_size=(3, 32, 32), mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), name="bench")


def _pure_epoch(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                opt: torch.optim.Optimizer) -> float:
    """Σ of per-step times of forward + backward + step (each step timed on its own)."""
    total = 0.0
    model.train()
    for x, y in batches:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += time.perf_counter() - t0
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="densenet_bc_cifar_6_6_6")
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--repeats", type=int, default=6, help="alternating trainer/pure measurements (default: 6)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the row as JSON")
    args = p.parse_args(argv)
    threads = args.threads
    torch.set_num_threads(threads)

    if args.data_root:
        from leannets.data.cifar import read_cifar10

        train_split = read_cifar10(args.data_root)[0]
        train_split = train_split.subset(range(min(args.images, len(train_split))))
    else:
        g = torch.Generator().manual_seed(0)
        train_split = ImageTensors(torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8),
                                   torch.randint(0, 10, (args.images,), generator=g))
    _BENCH["train"] = train_split
    register_dataset("_bench_cifar_size", _bench_builder, needs_root=False)
    steps = len(train_split) // args.batch
    recipe = {
        "model": {"name": args.model},
        "data": {"name": "_bench_cifar_size", "batch_size": args.batch, "crop_padding": 4, "flip": True,
                 "cutout": 16},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 0.5},
        "train": {"epochs": 2, "eval_every": 100, "threads": threads, "progress": False},
        "checkpoint": {"save_best": False},
    }
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch,), generator=g))
               for _ in range(steps)]
    model = create_model(args.model, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    _pure_epoch(model, batches[:2], opt)  # warm-up

    ratios, epochs, pures = [], [], []
    for _ in range(args.repeats):
        res = train(recipe, save=False, verbose=False, progress=False)
        epoch_time = res["history"][-1]["epoch_time_s"]  # 2nd epoch: allocator and caches warm
        pure = _pure_epoch(model, batches, opt)
        epochs.append(epoch_time)
        pures.append(pure)
        ratios.append(epoch_time / pure)
    print(f"model {args.model}, {len(train_split)} images 3x32x32 ({'CIFAR-10' if args.data_root else 'random'}), "
          f"batch {args.batch}, {steps} steps/epoch, {threads} thread(s); augmentation crop4+flip+cutout16 on device")
    for i, (e, s, r) in enumerate(zip(epochs, pures, ratios), 1):
        print(f"  run {i}: trainer epoch {e:.3f} s, Σ pure model steps {s:.3f} s, ratio {r:.3f}")
    med, lo, hi = median_ci(ratios)
    ci = None if lo != lo else (lo, hi)  # NaN: too few repeats for an interval
    target = Target("data pipeline overhead", f"trainer epoch ({args.model})", "Σ pure model steps", "time", med, ci,
                    "<= 1.10", f"eager NCHW, {threads} CPU threads, batch {args.batch}, {args.repeats} repeats",
                    {"epoch_s": epochs, "pure_s": pures})
    print_targets("Data-pipeline overhead", [target], args.json,
                  "python benchmarks/data_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
