"""CIFAR-10 / CIFAR-100 from the official "python version" pickles (Krizhevsky, 2009).

``data.root`` may be the folder holding ``cifar-10-batches-py`` (``cifar-100-python``) or that
folder itself. Pickles are read with an unpickler that only admits numpy arrays.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannets.config import DataSection, Field
from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, find_dir, require_file, safe_pickle_load, stats_or_override

__all__ = ["read_cifar10", "read_cifar100"]

C10_LAYOUT = ("ROOT/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta} "
              "(python pickles with keys 'data' uint8 N×3072 and 'labels')")
C100_LAYOUT = ("ROOT/cifar-100-python/{train, test, meta} (python pickles with keys 'data' uint8 N×3072, "
               "'fine_labels' and 'coarse_labels')")


def _batch(path: Path, label_key: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    d = safe_pickle_load(path, layout)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a dict, got {type(d).__name__}. Expected layout: {layout}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"{path}: missing key {key!r} (has {sorted(d)}). Expected layout: {layout}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    return data, labels


def _tensors(parts: list[tuple[np.ndarray, np.ndarray]], num_classes: int, where: Path) -> ImageTensors:
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    return ImageTensors(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))


def _meta_names(path: Path, key: str, layout: str) -> list[str] | None:
    if not path.is_file():
        return None
    meta = safe_pickle_load(path, layout)
    if not isinstance(meta, dict):
        return None
    meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}
    names = meta.get(key)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None


def read_cifar10(root: str | Path) -> tuple[ImageTensors, ImageTensors, list[str] | None]:
    """(train, test, class names) of CIFAR-10."""
    folder = find_dir(root, ["cifar-10-batches-py"], "data_batch_1", C10_LAYOUT)
    train = [_batch(require_file(folder, f"data_batch_{i}", C10_LAYOUT), "labels", C10_LAYOUT) for i in range(1, 6)]
    test = [_batch(require_file(folder, "test_batch", C10_LAYOUT), "labels", C10_LAYOUT)]
    names = _meta_names(folder / "batches.meta", "label_names", C10_LAYOUT)
    return _tensors(train, 10, folder), _tensors(test, 10, folder), names


def read_cifar100(root: str | Path, label_type: str = "fine") -> tuple[ImageTensors, ImageTensors, list[str] | None]:
    """(train, test, class names) of CIFAR-100 with ``fine`` (100) or ``coarse`` (20) labels."""
    folder = find_dir(root, ["cifar-100-python"], "train", C100_LAYOUT)
    key = f"{label_type}_labels"
    n = 100 if label_type == "fine" else 20
    train = _tensors([_batch(require_file(folder, "train", C100_LAYOUT), key, C100_LAYOUT)], n, folder)
    test = _tensors([_batch(require_file(folder, "test", C100_LAYOUT), key, C100_LAYOUT)], n, folder)
    names = _meta_names(folder / "meta", f"{label_type}_label_names", C100_LAYOUT)
    return train, test, names


def build_cifar10(cfg: DataSection) -> DataSplits:
    train, test, names = read_cifar10(cfg.root)
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=10, in_chans=3, input_size=(3, 32, 32), mean=mean,
                      std=std, class_names=names, name="cifar10")


def build_cifar100(cfg: DataSection) -> DataSplits:
    train, test, names = read_cifar100(cfg.root, cfg.label_type)
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=100 if cfg.label_type == "fine" else 20, in_chans=3,
                      input_size=(3, 32, 32), mean=mean, std=std, class_names=names, name="cifar100")


register_dataset("cifar10", build_cifar10, description="CIFAR-10 python pickles (50k/10k, 32×32)")
register_dataset("cifar100", build_cifar100, description="CIFAR-100 python pickles (50k/10k, 32×32)",
                 options={"label_type": Field(str, "fine", "CIFAR-100 labels", choices=("fine", "coarse"))})
