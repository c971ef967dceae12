"""Downsampled ImageNet 32×32 (Chrabaszcz et al., 2017) from the official npz batches.

``train_data_batch_1.npz`` … ``train_data_batch_10.npz`` and ``val_data.npz``, each with ``data``
uint8 (N, 3072) channel-major and ``labels`` 1..1000.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannets.config import DataSection

from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, require_file, stats_or_override

__all__ = ["read_imagenet32_npz"]

LAYOUT = ("ROOT/{train_data_batch_1.npz .. train_data_batch_10.npz, val_data.npz} (npz with 'data' uint8 "
          "N×3072 and 'labels' 1..1000); ROOT may also hold Imagenet32_train/ and Imagenet32_val/")


def read_imagenet32_npz(path: Path, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"data", "labels"} <= keys:
                raise ValueError(f"{path}: missing 'data' or 'labels' (has {sorted(keys)}). Expected layout: {LAYOUT}")
            data, labels = np.asarray(z["data"]), np.asarray(z["labels"]).reshape(-1).astype(np.int64)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is corrupt or not an npz file ({err}). Expected layout: {LAYOUT}") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * size * size:
        raise ValueError(f"{path}: 'data' must be uint8 (N, {3 * size * size}), got {data.dtype} {data.shape}")
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 1 or labels.max() > 1000):
        raise ValueError(f"{path}: labels must lie in 1..1000, got [{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, size, size), labels - 1


def _find(root: Path, pattern: str) -> list[Path]:
    found = sorted(p for p in root.rglob("*.npz") if re.fullmatch(pattern, p.name))
    return sorted(found, key=lambda p: int(re.findall(r"\d+", p.stem)[-1]) if re.findall(r"\d+", p.stem) else 0)


def build_imagenet32(cfg: DataSection) -> DataSplits:
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} does not exist. Expected layout: {LAYOUT}")
    train_files = _find(root, r"train_data_batch_\d+\.npz")
    if not train_files:
        raise FileNotFoundError(f"no train_data_batch_*.npz under {root}. Expected layout: {LAYOUT}")
    val_files = _find(root, r"val_data\.npz")
    val = require_file(val_files[0].parent if val_files else root, "val_data.npz", LAYOUT)
    parts = [read_imagenet32_npz(p) for p in train_files]
    train = ImageTensors(torch.from_numpy(np.concatenate([p[0] for p in parts])),
                         torch.from_numpy(np.concatenate([p[1] for p in parts])))
    vx, vy = read_imagenet32_npz(val)
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=ImageTensors(torch.from_numpy(np.ascontiguousarray(vx)), torch.from_numpy(vy)),
                      num_classes=1000, in_chans=3, input_size=(3, 32, 32), mean=mean, std=std, name="imagenet32",
                      meta={"train_files": [p.name for p in train_files]})


register_dataset("imagenet32", build_imagenet32, description="ImageNet 32×32 npz batches (1.28M/50k)")
