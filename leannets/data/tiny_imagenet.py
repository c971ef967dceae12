"""Tiny-ImageNet-200 (Stanford CS231n) from the official folder layout.

``wnids.txt`` lists the 200 class ids; ``train/<wnid>/images/*.JPEG``; ``val/images/*.JPEG``
with ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>box…``). The unlabelled ``test`` folder is
not used. Held in memory by default (64×64 images; ``data.in_memory: false`` streams from disk).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from leannets.config import DataSection

from ._registry import DataSplits, register_dataset
from ._util import find_dir, require_file
from .folder import IMG_EXTENSIONS, build_file_splits

__all__ = ["read_tiny_imagenet_samples"]

LAYOUT = ("ROOT/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, "
          "val/val_annotations.txt}")


def read_tiny_imagenet_samples(root: str | Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
    """(train samples, val samples, wnids)."""
    folder = find_dir(root, ["tiny-imagenet-200"], "wnids.txt", LAYOUT)
    wnids = [w.strip() for w in require_file(folder, "wnids.txt", LAYOUT).read_text().split() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise ValueError(f"{folder / 'wnids.txt'}: expected unique class ids, got {len(wnids)} entries")
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[str, int]] = []
    for w in wnids:
        img_dir = folder / "train" / w / "images"
        if not img_dir.is_dir():
            raise FileNotFoundError(f"missing folder {img_dir} (class {w} of wnids.txt). Expected layout: {LAYOUT}")
        files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"{img_dir} contains no images. Expected layout: {LAYOUT}")
        train += [(str(p), index[w]) for p in files]
    ann = require_file(folder / "val", "val_annotations.txt", LAYOUT)
    val: list[tuple[str, int]] = []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{ann}:{lineno}: expected 'file<TAB>wnid<TAB>...', got {line!r}")
        name, wnid = parts[0].strip(), parts[1].strip()
        if wnid not in index:
            raise ValueError(f"{ann}:{lineno}: class {wnid!r} is not in wnids.txt")
        path = folder / "val" / "images" / name
        if not path.is_file():
            raise FileNotFoundError(f"{ann}:{lineno}: image {path} does not exist. Expected layout: {LAYOUT}")
        val.append((str(path), index[wnid]))
    if not val:
        raise ValueError(f"{ann} lists no images")
    return train, val, wnids


def build_tiny_imagenet(cfg: DataSection) -> DataSplits:
    train, val, wnids = read_tiny_imagenet_samples(cfg.root)
    return build_file_splits(cfg, train, val, wnids, "tiny_imagenet", 64, True)


register_dataset("tiny_imagenet", build_tiny_imagenet, description="Tiny-ImageNet-200 folders (100k/10k, 64×64)")
