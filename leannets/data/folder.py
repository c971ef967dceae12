"""ImageFolder (ImageNet / CACD style): ``ROOT/<split>/<class>/<image>``.

Training split folder ``data.train_dir`` (``train``), evaluation ``data.eval_dir`` (``val``; ``test``
or ``validation`` are tried when it is missing). Classes are the sorted sub-folder names of the
training split. File-based by default (DataLoader workers); with ``data.in_memory: true`` every image is
decoded once and held at its own size. Both run the same transforms (:func:`build_file_splits`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from leannets.config import IMAGENET_MEAN, IMAGENET_STD, Field

from ._registry import DataSplits, register_dataset
from ._util import stats_or_override
from .transforms import FileImageDataset

__all__ = ["IMG_EXTENSIONS", "scan_class_folders", "build_file_splits", "IMAGENET_MEAN", "IMAGENET_STD"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = "ROOT/{train,val}/<class name>/<image>.{jpg,png,...} (one folder per class, same class names in both)"


def scan_class_folders(folder: Path, classes: list[str] | None = None, layout: str = LAYOUT
                       ) -> tuple[list[tuple[str, int]], list[str]]:
    """(samples [(path, label)], class names) of a class-per-folder tree."""
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}. Expected layout: {layout}")
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    if not classes:
        raise FileNotFoundError(f"{folder} has no class sub-folders. Expected layout: {layout}")
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{folder}: class folders {unknown[:5]} do not exist in the training split")
    index = {c: i for i, c in enumerate(classes)}
    samples, empty = [], []
    for c in found:
        files = sorted(p for p in (folder / c).rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        samples += [(str(p), index[c]) for p in files]
        if not files:
            empty.append(c)
    if not samples:
        raise FileNotFoundError(f"{folder} contains no images ({', '.join(IMG_EXTENSIONS)}). Expected layout: {layout}")
    if empty:
        raise ValueError(f"class folder(s) {', '.join(str(folder / c) for c in empty)} contain no images "
                         f"({', '.join(IMG_EXTENSIONS)}): remove them or add images (an empty class is never learned)")
    return samples, classes


def build_file_splits(cfg: DataSection, train_samples: list[tuple[str, int]], eval_samples: list[tuple[str, int]],
                      classes: list[str], name: str, default_size: int, in_memory_default: bool) -> DataSplits:
    """Splits for (path, label) lists. One preprocessing whatever the storage: RandomResizedCrop + flip for
    training, resize + centre crop (``crop_pct``) for evaluation, ImageNet statistics unless ``data.mean/std``
    are set. ``data.in_memory`` only chooses whether the files are decoded once and held, or on every access."""
    size = cfg.input_size or default_size
    in_memory = in_memory_default if cfg.in_memory is None else cfg.in_memory
    common = dict(crop_area=cfg.crop_area, ratio=cfg.ratio, crop_pct=cfg.crop_pct, flip=cfg.flip,
                  augment=cfg.augment, in_memory=in_memory)
    train = FileImageDataset(train_samples, size, True, **common)
    test = FileImageDataset(eval_samples, size, False, **common)
    mean, std = stats_or_override(cfg, (IMAGENET_MEAN, IMAGENET_STD), 3)
    preprocessing = {"train": train.describe(), "eval": test.describe(),
                     "normalise": f"mean {_fmt(mean)}, std {_fmt(std)}" if cfg.normalize else "none (pixels / 255)",
                     "storage": "decoded once, held in memory" if in_memory else "decoded from the files at each access"}
    return DataSplits(train=train, eval=test, num_classes=len(classes), in_chans=3, input_size=(3, size, size),
                      mean=mean, std=std, class_names=classes, name=name,
                      meta={"in_memory": in_memory, "train_images": len(train_samples),
                            "eval_images": len(eval_samples), "preprocessing": preprocessing})


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def build_imagefolder(cfg: DataSection) -> DataSplits:
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} does not exist. Expected layout: {LAYOUT}")
    train_samples, classes = scan_class_folders(root / cfg.train_dir)
    eval_dir = root / cfg.eval_dir
    if not eval_dir.is_dir():
        alt = [root / d for d in ("val", "validation", "test") if (root / d).is_dir()]
        if not alt:
            raise FileNotFoundError(f"missing evaluation folder {eval_dir} (also tried val, validation, test). "
                                    f"Expected layout: {LAYOUT}")
        eval_dir = alt[0]
    eval_samples, _ = scan_class_folders(eval_dir, classes)
    return build_file_splits(cfg, train_samples, eval_samples, classes, "imagefolder", 224, False)


register_dataset("imagefolder", build_imagefolder, description="class-per-folder images (ImageNet, CACD, ...)",
                 any_size=True,
                 options={"train_dir": Field(str, "train", "imagefolder: training sub-folder"),
                          "eval_dir": Field(str, "val", "imagefolder: evaluation sub-folder")})
