"""Datasets. Importing this package imports every module in ``leannets/data/`` (so a new dataset
file such as ``data/restoration.py`` only has to call :func:`register_dataset` at import time).

How another slice plugs in::

    from leannets.config import DataSection, Field
    from leannets.data import DataSplits, register_dataset

    def build_bsd(cfg: DataSection) -> DataSplits:   # cfg = the recipe's resolved ``data`` section
        ...                                           # cfg.root, cfg.patch_size, ...
        return DataSplits(train=..., eval=..., num_classes=0, in_chans=1, input_size=(1, 40, 40))

    register_dataset("bsd", build_bsd, options={"patch_size": Field(int, 40, "training patch")},
                     description="BSD denoising folders")

A split is either :class:`ImageTensors` (small images held in memory as uint8 N×C×H×W; batches are
augmented on the training device by :class:`~leannets.data.loader.DeviceLoader`) or any map-style
``torch.utils.data.Dataset`` (loaded by a DataLoader with a deterministic, DDP-sharded sampler; if the
dataset has ``set_epoch(epoch)`` it is called before each epoch, use :func:`sample_rng` for per-sample
randomness that is reproducible regardless of worker count; a ``collate_fn`` attribute is used if set).
"""
import importlib
import pkgutil

from ._registry import (DataSplits, DatasetInfo, ImageTensors, build_dataset, data_section, dataset_info,
                        dataset_options, list_datasets, register_dataset, sample_rng)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

from .loader import make_loader  # noqa: E402

__all__ = ["DataSplits", "DatasetInfo", "ImageTensors", "build_dataset", "data_section", "dataset_info",
           "dataset_options", "list_datasets", "make_loader", "register_dataset", "sample_rng"]
