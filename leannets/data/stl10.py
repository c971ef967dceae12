"""STL-10 (Coates et al., 2011) from the official binary files (``stl10_binary``).

``train_X.bin`` / ``test_X.bin`` are uint8 images of 3×96×96 stored column-major per channel;
``train_y.bin`` / ``test_y.bin`` are uint8 labels 1..10; ``class_names.txt`` is optional.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannets.config import DataSection

from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, find_dir, require_file, stats_or_override

__all__ = ["read_stl10_split"]

LAYOUT = ("ROOT/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin[, class_names.txt]} "
          "(uint8; images 3×96×96 column-major)")
_IMG = 3 * 96 * 96


def read_stl10_split(folder: Path, split: str) -> ImageTensors:
    xp = require_file(folder, f"{split}_X.bin", LAYOUT)
    yp = require_file(folder, f"{split}_y.bin", LAYOUT)
    raw = np.fromfile(xp, dtype=np.uint8)
    if raw.size == 0 or raw.size % _IMG:
        raise ValueError(f"{xp}: size {raw.size} bytes is not a positive multiple of 3×96×96={_IMG} "
                         f"(truncated or corrupt). Expected layout: {LAYOUT}")
    labels = np.fromfile(yp, dtype=np.uint8).astype(np.int64)
    n = raw.size // _IMG
    if labels.size != n:
        raise ValueError(f"{yp}: {labels.size} labels for {n} images in {xp.name}")
    if labels.min() < 1 or labels.max() > 10:
        raise ValueError(f"{yp}: labels must lie in 1..10, got [{labels.min()}, {labels.max()}]")
    images = raw.reshape(n, 3, 96, 96).transpose(0, 1, 3, 2)
    return ImageTensors(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels - 1))


def build_stl10(cfg: DataSection) -> DataSplits:
    folder = find_dir(cfg.root, ["stl10_binary"], "train_X.bin", LAYOUT)
    train, test = read_stl10_split(folder, "train"), read_stl10_split(folder, "test")
    names_file = folder / "class_names.txt"
    names = names_file.read_text().split() if names_file.is_file() else None
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=10, in_chans=3, input_size=(3, 96, 96), mean=mean,
                      std=std, class_names=names, name="stl10")


register_dataset("stl10", build_stl10, description="STL-10 binary files (5k/8k labelled, 96×96)")
