"""Scale policies shared by the paper declarations.

One rule per scale and data kind, applied to every experiment alike (nothing is tuned per table):

- smoke, classification: the embedded ``digits`` data, 64 training / 64 evaluation images,
  batch 16, one epoch of 2 steps, no warm-up.
- cpu, classification: the whole CIFAR-10 under ``--data-root`` (``cifar10-jpeg``: 50,000 training /
  10,000 test images, decoded once into a cache), every accuracy on all 10,000 test images; E epochs
  set by pilot runs and the time budget, batch 128, channels_last (1.25x faster on 2 cores); the recipe's optimiser and schedule otherwise
  unchanged. A comparison is judged only when its baseline reaches :data:`CPU_FLOOR` (75% top-1
  for CIFAR-10, 25 dB for σ = 50 denoising on BSD68): below that a model is too little trained for
  a difference to mean anything, and an experiment that cannot reach it in the budget is not
  trained at cpu scale ("not checked (budget)", with the measured throughput that rules it out).
- gpu, classification: the whole CIFAR-10 decoded once and resident on the device (the in-memory
  loader augments on the device), bf16 autocast, channels_last, the recipe's batch size and optimiser,
  E epochs per experiment (each paper file states why); ``torch.compile`` is off: its compile time
  (tens of seconds per model and per process) is a large share of runs this short.
- paper: the bundled recipe as published, datasets under ``--data-root`` (layout in docs/reproduce.md).
"""
from __future__ import annotations

from typing import Any

import torch

from ..spec import ModelSpec

SMOKE_CLASSIFICATION: dict[str, Any] = {
    "data.name": "digits", "data.root": None, "data.limit_train": 64, "data.limit_eval": 64, "data.batch_size": 16,
    "data.eval_batch_size": 64, "train.epochs": 1, "train.max_steps_per_epoch": 2, "schedule.warmup_epochs": 0.0,
    "train.eval_every": 1,
}

CIFAR10_JPEG = "{data_root}/cifar10-jpeg"
#: The least baseline score at which a cpu-scale comparison is judged, per metric.
CPU_FLOOR = {"acc1": 75.0, "psnr": 25.0}


def cpu_classification(epochs: int, limit_train: int | None = None, root: str = CIFAR10_JPEG, batch: int = 128,
                       warmup: float | None = None, **extra: Any) -> dict[str, Any]:
    """cpu-scale overrides: ``epochs`` epochs on the whole CIFAR-10 (or ``limit_train`` evenly spaced
    training images), evaluated once at the end on all 10,000 test images."""
    out: dict[str, Any] = {"data.name": "cifar10_jpeg", "data.root": root, "data.batch_size": batch,
                           "train.epochs": epochs, "train.eval_every": epochs, "data.limit_train": limit_train,
                           "train.channels_last": True}
    if warmup is not None:
        out["schedule.warmup_epochs"] = warmup
    out.update(extra)
    return out


#: The gpu scale's speed settings (see the module docstring).
GPU_SPEED: dict[str, Any] = {"data.in_memory": True, "train.amp": "bf16", "train.channels_last": True,
                             "train.compile": False}


def gpu_classification(epochs: int, warmup: float | None = None, **extra: Any) -> dict[str, Any]:
    """gpu-scale overrides: ``epochs`` epochs on the whole CIFAR-10 on the device, evaluated at the end on all
    10,000 test images."""
    out: dict[str, Any] = {"data.name": "cifar10_jpeg", "data.root": CIFAR10_JPEG, "train.epochs": epochs,
                           "train.eval_every": epochs, **GPU_SPEED}
    if warmup is not None:
        out["schedule.warmup_epochs"] = warmup
    out.update(extra)
    return out


def paper_data(folder: str) -> dict[str, Any]:
    """paper-scale overrides: the dataset lives in ``<data_root>/<folder>``."""
    return {"data.root": "{data_root}/" + folder}


def ms(name: str, **kwargs: Any) -> ModelSpec:
    return ModelSpec(name, kwargs)


def eval_tensors(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole evaluation split as ``(uint8 images, labels)`` tensors (file-based splits are read once)."""
    if hasattr(split, "images"):
        return split.images, split.labels
    items = [split[i] for i in range(len(split))]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items])
