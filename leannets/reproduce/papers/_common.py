"""Scale policies shared by the paper declarations.

One rule per scale and data kind, applied to every experiment alike (nothing is tuned per table):

- smoke, classification: the embedded ``digits`` data, 64 training / 64 evaluation images,
  batch 16, one epoch of 2 steps, no warm-up.
- cpu, classification: the real CIFAR-10 subset under ``--data-root`` (5,085 training / 1,017
  test images; per paper the first N training images and E epochs, set by the time budget),
  batch 64, warm-up capped at one epoch; the recipe's optimiser and schedule otherwise unchanged.
- paper: the bundled recipe as published, datasets under ``--data-root`` (layout in docs/reproduce.md).
"""
from __future__ import annotations

from typing import Any

from ..spec import ModelSpec

SMOKE_CLASSIFICATION: dict[str, Any] = {
    "data.name": "digits", "data.root": None, "data.limit_train": 64, "data.limit_eval": 64, "data.batch_size": 16,
    "data.eval_batch_size": 64, "train.epochs": 1, "train.max_steps_per_epoch": 2, "schedule.warmup_epochs": 0.0,
    "train.eval_every": 1,
}

CIFAR10_SUBSET = "{data_root}/cifar10-subset"


def cpu_classification(epochs: int, limit_train: int | None = None, root: str = CIFAR10_SUBSET, batch: int = 64,
                       warmup: float | None = None, **extra: Any) -> dict[str, Any]:
    """cpu-scale overrides: ``epochs`` epochs on (the first ``limit_train`` images of) the CIFAR-10
    subset, evaluated once at the end on its 1,017 test images."""
    out: dict[str, Any] = {"data.root": root, "data.batch_size": batch, "train.epochs": epochs,
                           "train.eval_every": epochs, "data.limit_train": limit_train}
    if warmup is not None:
        out["schedule.warmup_epochs"] = warmup
    out.update(extra)
    return out


def paper_data(folder: str) -> dict[str, Any]:
    """paper-scale overrides: the dataset lives in ``<data_root>/<folder>``."""
    return {"data.root": "{data_root}/" + folder}


def ms(name: str, **kwargs: Any) -> ModelSpec:
    return ModelSpec(name, kwargs)
