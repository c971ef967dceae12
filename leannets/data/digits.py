"""Embedded default dataset: scikit-learn's handwritten digits (UCI ML, 1,797 real 8×8 scans).

Shipped inside scikit-learn, so the main job runs on a fresh machine with no download. The
8×8 images (16 grey levels) are resized to 32×32 (``data.image_size``) with bicubic interpolation, scaled to 0..255
and repeated to 3 channels so CIFAR-size models run unchanged. The train/test split is a fixed
stratified 80/20 split (independent of the recipe seed, so every run evaluates the same images).
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from leannets.config import DataSection, Field

from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, stats_or_override

__all__ = ["load_digits_tensors"]

_SPLIT_SEED = 20240521


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) in 0..16, labels) read from scikit-learn's bundled ``digits.csv.gz``.

    The file is read directly (what ``sklearn.datasets.load_digits`` does) because importing
    scikit-learn costs seconds; ``load_digits`` is the fallback if the file moved.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec and \
        spec.submodule_search_locations else None
    if path is not None and path.is_file():
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    raw = load_digits()
    return np.asarray(raw.images), np.asarray(raw.target, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def load_digits_tensors(size: int = 32, channels: int = 3) -> tuple[ImageTensors, ImageTensors]:
    """(train, test) :class:`ImageTensors` of the digits at ``size``×``size``×``channels`` (cached per process)."""
    images, target = _raw_digits()
    imgs = np.asarray(images, dtype=np.float32) * (255.0 / 16.0)
    resized = np.stack([
        np.asarray(Image.fromarray(im, mode="F").resize((size, size), Image.BICUBIC)) for im in imgs
    ])
    arr = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    x = torch.from_numpy(arr)[:, None].expand(-1, channels, -1, -1).contiguous()
    y = torch.as_tensor(target, dtype=torch.int64)
    rng = np.random.default_rng(_SPLIT_SEED)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(target == c)
        test_idx += rng.choice(idx, size=int(round(0.2 * len(idx))), replace=False).tolist()
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train_i = torch.from_numpy(np.flatnonzero(~is_test))
    test_i = torch.from_numpy(np.flatnonzero(is_test))
    return ImageTensors(x[train_i], y[train_i]), ImageTensors(x[test_i], y[test_i])


def build_digits(cfg: DataSection) -> DataSplits:
    size = cfg.image_size
    if not 8 <= size <= 256:
        raise ValueError(f"data.image_size must be in [8, 256] for digits, got {size}")
    train, test = load_digits_tensors(size)
    train, test = ImageTensors(train.images, train.labels), ImageTensors(test.images, test.labels)
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=10, in_chans=3, input_size=(3, size, size), mean=mean,
                      std=std, class_names=[str(i) for i in range(10)], name="digits",
                      meta={"source": f"scikit-learn digits (UCI), 8x8 resized to {size}x{size} bicubic"})


register_dataset("digits", build_digits, needs_root=False,
                 description="scikit-learn digits (1,438 train / 359 test), 8×8 → 32×32×3, embedded",
                 options={"image_size": Field(int, 32, "digits: side the 8×8 scans are resized to")})
