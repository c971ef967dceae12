"""Dataset registry and the split containers shared by every reader."""
from __future__ import annotations

import copy
import hashlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from leannets.config import REQUIRED, DataSection
from leannets.registry import Registry

__all__ = ["ImageTensors", "DataSplits", "DatasetInfo", "register_dataset", "build_dataset", "list_datasets",
           "dataset_info", "dataset_options", "data_section", "sample_rng"]


@dataclass
class ImageTensors:
    """A small-image split held in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"ImageTensors.images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"ImageTensors.labels must have shape ({self.images.shape[0]},), "
                             f"got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: Sequence[int] | torch.Tensor) -> "ImageTensors":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageTensors(self.images[index], self.labels[index])


Split = Any  # ImageTensors | torch.utils.data.Dataset


@dataclass
class DataSplits:
    """What a dataset builder returns.

    Attributes:
        train, eval: :class:`ImageTensors` or map-style ``Dataset``.
        num_classes: classes (0 for non-classification data).
        in_chans: image channels.
        input_size: (C, H, W) the model sees.
        mean, std: per-channel statistics on the [0, 1] scale used for normalisation.
        class_names: optional label names.
        val: validation split (set by ``data.val_fraction``), else ``None``.
        name: dataset name.
        meta: anything else worth recording (source files, sizes).
    """

    train: Split
    eval: Split
    num_classes: int
    in_chans: int
    input_size: tuple[int, int, int]
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    class_names: list[str] | None = None
    val: Split | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, ImageTensors) or bool(getattr(self.train, "in_memory", False))


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    builder: Callable[[DataSection], DataSplits]
    options: Mapping[str, Any]
    description: str = ""
    needs_root: bool = True
    any_size: bool = False


# Importing the package registers every reader (see data/__init__.py).
DATASETS: Registry[DatasetInfo] = Registry("dataset", recipe_key="data.name",
                                           loader=lambda: importlib.import_module("leannets.data"))


def register_dataset(name: str, builder: Callable[[DataSection], DataSplits], *,
                     options: Mapping[str, Any] | None = None, description: str = "", needs_root: bool = True,
                     any_size: bool = False) -> None:
    """Register ``builder(data_cfg) -> DataSplits`` under ``name`` (recipe ``data.name``).

    Args:
        options: extra recipe keys ``{key: leannets.config.Field}`` valid under ``data.`` when
            this dataset is selected.
        description: one line for listings.
        needs_root: whether ``data.root`` is required (``False`` for embedded data).
        any_size: the images are resized to ``data.input_size`` (any size): when a recipe leaves it unset,
            the engine uses the model's native input size.
    """
    DATASETS.register(name, DatasetInfo(name, builder, dict(options or {}), description, needs_root, any_size))


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def dataset_options(name: str) -> dict[str, Any]:
    """Extra recipe ``data.*`` fields declared by dataset ``name``."""
    return dict(dataset_info(name).options)


def _limit(split: Split, n: int | None) -> Split:
    if n is None or n >= len(split):
        return split
    if n < 1:
        raise ValueError(f"data.limit_* must be >= 1, got {n}")
    # Evenly spaced, not the first n: a class-sorted folder (cifar10_jpeg, ImageFolder) keeps every class.
    index = [(i * len(split)) // n for i in range(n)]
    return split.subset(index) if isinstance(split, ImageTensors) else Subset(split, index)


def _holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    n = len(split)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"data.val_fraction={fraction} leaves no validation or no training samples (of {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    if isinstance(split, ImageTensors):
        return split.subset(train_idx), split.subset(val_idx)
    return Subset(split, train_idx.tolist()), Subset(split, val_idx.tolist())


def data_section(cfg: Mapping[str, Any]) -> DataSection:
    """``cfg`` as a typed :class:`~leannets.config.DataSection`, unset keys (core and the dataset's) at their defaults.

    A section resolved by a recipe is returned as is; a partial mapping (library use, tests) is completed.
    """
    if isinstance(cfg, DataSection):
        return cfg
    name = cfg.get("name", DataSection.schema["name"].default)
    fields = {**DataSection.schema, **dataset_options(name)}
    values = {k: copy.deepcopy(f.default) for k, f in fields.items() if f.default is not REQUIRED}
    values.update(cfg)
    return DataSection(values)


def build_dataset(cfg: Mapping[str, Any], seed: int = 0) -> DataSplits:
    """Build the splits for a ``data`` recipe section, applying limits and the validation hold-out."""
    cfg = data_section(cfg)
    info = dataset_info(cfg.name)
    if info.needs_root and not cfg.root:
        raise ValueError(f"dataset {cfg.name!r} needs data.root (a folder); e.g. --set data.root=/path/to/data")
    splits = info.builder(cfg)
    splits.name = splits.name or cfg.name
    splits.train = _limit(splits.train, cfg.limit_train)
    splits.eval = _limit(splits.eval, cfg.limit_eval)
    if cfg.val_fraction:
        splits.train, splits.val = _holdout(splits.train, cfg.val_fraction, seed)
    return splits


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A NumPy generator that depends only on (seed, epoch, sample index): reproducible in any worker."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))
