"""CACD (Cross-Age Celebrity Dataset, Chen et al. 2014) for face identification, as the WAE paper uses it.

The public release is one folder of JPEGs, ``CACD2000/``, named ``<age>_<First>_<Last>_<NNNN>.jpg``
(e.g. ``53_Robin_Williams_0001.jpg``): 163,446 images of 2,000 identities. The identity is the name
between the age and the four-digit index. The WAE paper (Tables 6–7) uses the manually annotated subset
of 500 identities (56,138 images) and "randomly select[s] 44,798 images as the training set and the
rest as the test set":

- ``data.cacd_identities``: a text file with one identity per line (``Robin_Williams``) to keep, e.g.
  the 500 annotated ones; unset keeps every identity found.
- ``data.cacd_train_images``: training images drawn at random (seeded by ``data.cacd_split_seed``) from
  the kept images; the rest are the test set. The split does not depend on the run's seed, so every
  model of a comparison sees the same one.

Images are read from disk per batch (PIL transforms, as ``imagefolder``): the subset is ~8 GB once
decoded at 224².
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from leannets.config import DataSection, Field

from ._registry import DataSplits, register_dataset
from .folder import IMG_EXTENSIONS, build_file_splits

__all__ = ["parse_cacd_name", "scan_cacd", "split_cacd"]

LAYOUT = "ROOT[/CACD2000]/<age>_<First>_<Last>_<NNNN>.jpg (one flat folder of JPEGs, as released)"
_NAME = re.compile(r"^(\d{1,3})_(.+)_(\d{4})$")


def parse_cacd_name(path: str | Path) -> tuple[int, str]:
    """``(age, identity)`` of a CACD file name; ``ValueError`` naming the file otherwise."""
    m = _NAME.match(Path(path).stem)
    if not m:
        raise ValueError(f"{path}: not a CACD file name; expected {LAYOUT}")
    return int(m.group(1)), m.group(2)


def _image_folder(root: Path) -> Path:
    for folder in (root / "CACD2000", root):
        if folder.is_dir() and any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.iterdir()):
            return folder
    raise FileNotFoundError(f"data.root={root} holds no CACD images. Expected layout: {LAYOUT}")


def _read_identities(path: str) -> list[str]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"data.cacd_identities={path} is not a file (one identity per line, e.g. "
                                "Robin_Williams)")
    names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"data.cacd_identities={path} lists no identity")
    return names


def scan_cacd(root: str | Path, identities: list[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples [(path, label)], identity names)``, sorted by file name; labels index the sorted identities."""
    folder = _image_folder(Path(root).expanduser())
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
    parsed = [(f, parse_cacd_name(f)[1]) for f in files]
    found = sorted({name for _, name in parsed})
    classes = found if identities is None else sorted(set(identities))
    known = set(found)
    missing = [n for n in classes if n not in known]
    if missing:
        raise ValueError(f"data.cacd_identities: {len(missing)} identities have no image in {folder}, e.g. "
                         f"{', '.join(missing[:3])}")
    index = {c: i for i, c in enumerate(classes)}
    return [(str(f), index[name]) for f, name in parsed if name in index], classes


def split_cacd(samples: list[tuple[str, int]], train_images: int, seed: int
               ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """A seeded random split: ``train_images`` samples for training, the rest for testing."""
    if not 0 < train_images < len(samples):
        raise ValueError(f"data.cacd_train_images={train_images} must lie between 1 and {len(samples) - 1} "
                         f"(the {len(samples)} images kept)")
    perm = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
    train = sorted(perm[:train_images])
    test = sorted(perm[train_images:])
    return [samples[i] for i in train], [samples[i] for i in test]


def build_cacd(cfg: DataSection) -> DataSplits:
    identities = _read_identities(cfg.cacd_identities) if cfg.cacd_identities else None
    samples, classes = scan_cacd(cfg.root, identities)
    train, test = split_cacd(samples, cfg.cacd_train_images, cfg.cacd_split_seed)
    splits = build_file_splits(cfg, train, test, classes, "cacd", 224, False)
    splits.meta.update({"identities": len(classes), "split_seed": cfg.cacd_split_seed})
    return splits


register_dataset("cacd", build_cacd, any_size=True,
                 description="CACD2000 faces, identity from the file name, seeded random train/test split",
                 options={"cacd_identities": Field(str, None, "file listing the identities to keep (one per line)",
                                                   nullable=True),
                          "cacd_train_images": Field(int, 44_798, "CACD: training images (the rest are the test "
                                                                  "set); the WAE paper: 44,798 of 56,138"),
                          "cacd_split_seed": Field(int, 0, "CACD: seed of the train/test split")})
