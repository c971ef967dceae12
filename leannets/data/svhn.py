"""SVHN cropped digits (Netzer et al., 2011) from the official ``*_32x32.mat`` files.

``train_32x32.mat`` and ``test_32x32.mat`` (optional ``extra_32x32.mat`` with ``data.svhn_extra``)
hold ``X`` uint8 (32, 32, 3, N) and ``y`` (N, 1) with digit 0 stored as label 10.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.io import loadmat

from leannets.config import DataSection, Field

from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, find_dir, require_file, stats_or_override

__all__ = ["read_svhn_mat"]

LAYOUT = "ROOT/{train_32x32.mat, test_32x32.mat[, extra_32x32.mat]} (MATLAB files with X (32,32,3,N) and y (N,1))"


def read_svhn_mat(path: Path) -> ImageTensors:
    """One SVHN ``.mat`` split as uint8 (N, 3, 32, 32) with labels 0..9."""
    try:
        mat = loadmat(str(path))
    except Exception as err:  # noqa: BLE001 - scipy raises several types for corrupt files
        raise ValueError(f"{path} is corrupt or not a MATLAB file ({type(err).__name__}: {err}). "
                         f"Expected layout: {LAYOUT}") from err
    for key in ("X", "y"):
        if key not in mat:
            raise ValueError(f"{path}: missing variable {key!r}. Expected layout: {LAYOUT}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise ValueError(f"{path}: X must be uint8 (32, 32, 3, N), got {x.dtype} {x.shape}")
    if y.shape[0] != x.shape[3]:
        raise ValueError(f"{path}: {x.shape[3]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must lie in 1..10 (10 = digit 0), got [{y.min()}, {y.max()}]")
    y = np.where(y == 10, 0, y)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return ImageTensors(images, torch.from_numpy(y))


def build_svhn(cfg: DataSection) -> DataSplits:
    folder = find_dir(cfg.root, ["svhn", "SVHN"], "train_32x32.mat", LAYOUT)
    train = read_svhn_mat(require_file(folder, "train_32x32.mat", LAYOUT))
    if cfg.svhn_extra:
        extra = read_svhn_mat(require_file(folder, "extra_32x32.mat", LAYOUT))
        train = ImageTensors(torch.cat([train.images, extra.images]), torch.cat([train.labels, extra.labels]))
    test = read_svhn_mat(require_file(folder, "test_32x32.mat", LAYOUT))
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=10, in_chans=3, input_size=(3, 32, 32), mean=mean,
                      std=std, class_names=[str(i) for i in range(10)], name="svhn")


register_dataset("svhn", build_svhn, description="SVHN cropped digits .mat files (73k/26k, 32×32)",
                 options={"svhn_extra": Field(bool, False, "SVHN: add extra_32x32.mat to the training split")})
