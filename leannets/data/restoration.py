"""Image-restoration datasets: folders of clean images (or scikit-image's bundled photos).

Datasets hold *clean* images only; the restoration task makes the degraded inputs (Gaussian
noise, MATLAB-bicubic low resolution) so the same folders serve denoising and super-resolution:

- training split (:class:`PatchDataset`): ``data.patches_per_epoch`` random ``data.patch_size``²
  crops per epoch (image drawn with probability ∝ its area), with random horizontal flips
  (``data.flip``) and 90° rotations (``data.rot90``); yields ``(uint8 (C, p, p), index)``;
  reproducible from ``(seed, epoch, index)`` in any number of workers.
- evaluation split (:class:`ImageDataset`): whole images, one per item, yields
  ``(uint8 (C, H, W), index)``; its ``collate_fn`` keeps a batch as a list because sizes differ.

Registered datasets (recipe ``data.name``):

- ``restoration_folder``: ``data.root`` = training images, ``data.eval_root`` = evaluation images
  (or ``root/train`` and ``root/test``); PNG/JPG/BMP/TIFF, gray or RGB (``data.channels``).
- ``skimage_photos``: real photos shipped with scikit-image (no download), split into 11 training
  and 4 test photos (camera, astronaut, coffee, chelsea).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import skimage.data
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from leannets._io import atomic_write
from leannets.config import Field

from ._registry import DataSplits, register_dataset, sample_rng
from .transforms import as_8bit

__all__ = ["IMAGE_EXTENSIONS", "list_images", "load_image", "save_image", "PatchDataset", "ImageDataset", "SKIMAGE_TRAIN",
           "SKIMAGE_TEST", "skimage_photo_paths", "build_restoration_folder", "build_skimage_photos"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SKIMAGE_TRAIN = ("brick.png", "grass.png", "gravel.png", "moon.png", "coins.png", "clock_motion.png",
                 "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg")
SKIMAGE_TEST = ("camera.png", "astronaut.png", "coffee.png", "chelsea.png")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files (by extension) directly inside ``folder``."""
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"image folder {p} does not exist (expected a folder of "
                                f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files)")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"image folder {p} holds no images (looked for "
                                f"{', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an 8-bit image as uint8 ``(H, W, channels)``; RGB → gray uses ITU-R 601 luma (PIL ``L``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image (names the file) or ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} does not exist")
    try:
        with Image.open(p) as im:
            im.load()
            im = as_8bit(im)
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {p}: {err}") from err
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image {p} is empty ({arr.shape[1]}×{arr.shape[0]})")
    return np.ascontiguousarray(arr)


def save_image(path: str | os.PathLike, img: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, C)`` array or ``(C, H, W)`` tensor atomically (temp file + rename).

    The format follows the suffix (PNG, JPG, BMP, TIFF).
    """
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write {p}: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        img = img.permute(1, 2, 0).numpy() if img.dim() == 3 else img.numpy()
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8 pixels, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(p.suffix.lower(), p.suffix[1:].upper())
    with atomic_write(p) as tmp:
        Image.fromarray(arr).save(tmp, format=fmt)
    return p


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class PatchDataset(Dataset):
    """Random clean patches with flips and 90° rotations (training split).

    Args:
        images: uint8 ``(H, W, C)`` arrays.
        names: one name per image (for error messages).
        patch_size: crop side in pixels.
        patches_per_epoch: dataset length when ``patches_per_image`` is 0 (patches drawn from images in
            proportion to their area).
        flip: random horizontal flip.
        rot90: random rotation by 0/90/180/270°.
        seed: base seed; patch ``i`` of epoch ``e`` depends only on ``(seed, e, i)``.
        patches_per_image: > 0: an epoch is one pass over the images, each giving this many random
            patches (the papers' "epoch"; dataset length = images × patches_per_image).
    """

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str], patch_size: int,
                 patches_per_epoch: int, flip: bool = True, rot90: bool = True, seed: int = 0,
                 patches_per_image: int = 0) -> None:
        if patch_size < 1:
            raise ValueError(f"data.patch_size must be >= 1, got {patch_size}")
        if patches_per_image < 0:
            raise ValueError(f"data.patches_per_image must be >= 0 (0: use data.patches_per_epoch), "
                             f"got {patches_per_image}")
        if patches_per_epoch < 1 and not patches_per_image:
            raise ValueError(f"data.patches_per_epoch must be >= 1, got {patches_per_epoch}")
        if not images:
            raise ValueError("PatchDataset needs at least one image")
        small = [f"{n} ({a.shape[1]}×{a.shape[0]})" for a, n in zip(images, names) if min(a.shape[:2]) < patch_size]
        if small:
            raise ValueError(f"data.patch_size={patch_size} is larger than these training images: {', '.join(small)}")
        self.images = list(images)
        self.names = list(names)
        self.per_image = patches_per_image
        self.patch_size = patch_size
        self.length = len(images) * patches_per_image if patches_per_image else patches_per_epoch
        self.flip, self.rot90, self.seed = flip, rot90, seed
        self.epoch = 0
        area = np.array([(a.shape[0] - patch_size + 1) * (a.shape[1] - patch_size + 1) for a in images], np.float64)
        self.cum = np.cumsum(area / area.sum())
        self.channels = int(images[0].shape[2])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = sample_rng(self.seed, self.epoch, index)
        if self.per_image:
            k = index // self.per_image
        else:
            k = int(min(np.searchsorted(self.cum, rng.random(), side="right"), len(self.images) - 1))
        img, p = self.images[k], self.patch_size
        y = int(rng.integers(0, img.shape[0] - p + 1))
        x = int(rng.integers(0, img.shape[1] - p + 1))
        patch = img[y:y + p, x:x + p]
        if self.flip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        if self.rot90:
            patch = np.rot90(patch, int(rng.integers(0, 4)))
        return _chw(patch), index


def _list_collate(items: list[Any]) -> list[Any]:
    return list(items)


class ImageDataset(Dataset):
    """Whole clean images for evaluation; ``names`` gives each image's file name."""

    collate_fn = staticmethod(_list_collate)

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str]) -> None:
        if not images:
            raise ValueError("ImageDataset needs at least one image")
        self.images = list(images)
        self.names = list(names)
        self.channels = int(images[0].shape[2])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _chw(self.images[index]), index

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, channels: int = 1, limit: int | None = None) -> "ImageDataset":
        files = list_images(folder)[:limit] if limit else list_images(folder)
        return cls([load_image(f, channels) for f in files], [f.name for f in files])


def _load_all(files: Sequence[Path], channels: int) -> tuple[list[np.ndarray], list[str]]:
    return [load_image(f, channels) for f in files], [f.name for f in files]


def _splits(train_files: Sequence[Path], eval_files: Sequence[Path], cfg: DataSection, name: str,
            meta: dict[str, Any]) -> DataSplits:
    channels = cfg.channels
    patch = cfg.patch_size
    train_imgs, train_names = _load_all(train_files, channels)
    eval_imgs, eval_names = _load_all(eval_files, channels)
    train = PatchDataset(train_imgs, train_names, patch, cfg.patches_per_epoch,
                         flip=cfg.flip, rot90=cfg.rot90, patches_per_image=cfg.patches_per_image)
    return DataSplits(train=train, eval=ImageDataset(eval_imgs, eval_names), num_classes=0, in_chans=channels,
                      input_size=(channels, patch, patch), mean=(0.0,) * channels, std=(1.0,) * channels,
                      name=name, meta={**meta, "train_images": len(train_imgs), "eval_images": len(eval_imgs)})


def build_restoration_folder(cfg: DataSection) -> DataSplits:
    """``data.root`` (training images) + ``data.eval_root`` (evaluation images), or root/train + root/test."""
    root = Path(cfg.root).expanduser()
    eval_root = cfg.eval_root
    if eval_root:
        train_dir, eval_dir = root, Path(eval_root).expanduser()
    elif (root / "train").is_dir() and (root / "test").is_dir():
        train_dir, eval_dir = root / "train", root / "test"
    else:
        raise ValueError(f"dataset 'restoration_folder': set data.eval_root to the evaluation images, or give a "
                         f"data.root with train/ and test/ sub-folders (got root={root})")
    return _splits(list_images(train_dir), list_images(eval_dir), cfg, "restoration_folder",
                   {"train_root": str(train_dir), "eval_root": str(eval_dir)})


def skimage_photo_paths() -> tuple[list[Path], list[Path]]:
    """(train, test) paths of the photos bundled in scikit-image's package data."""
    base = Path(skimage.data.data_dir)
    train = [base / f for f in SKIMAGE_TRAIN if (base / f).is_file()]
    test = [base / f for f in SKIMAGE_TEST if (base / f).is_file()]
    if len(train) < 2 or not test:
        raise FileNotFoundError(f"scikit-image's bundled photos are missing from {base} "
                                f"(expected {', '.join(SKIMAGE_TRAIN + SKIMAGE_TEST)})")
    return train, test


def build_skimage_photos(cfg: DataSection) -> DataSplits:
    train, test = skimage_photo_paths()
    return _splits(train, test, cfg, "skimage_photos", {"source": "scikit-image package data (skimage.data)"})


_OPTIONS = {
    "patch_size": Field(int, 48, "training patch side in pixels (of the clean / high-resolution image)"),
    "patches_per_epoch": Field(int, 3200, "random training patches per epoch (when patches_per_image is 0)"),
    "patches_per_image": Field(int, 0, "> 0: an epoch is one pass over the training images, this many random "
                                       "patches from each (the papers' epoch)"),
    "channels": Field(int, 1, "1 = gray, 3 = RGB", choices=(1, 3)),
    "rot90": Field(bool, True, "random 90° rotations of training patches"),
}

register_dataset("restoration_folder", build_restoration_folder,
                 options={**_OPTIONS, "eval_root": Field(str, None, "folder of evaluation images", nullable=True)},
                 description="clean images for denoising / SR: data.root (train) + data.eval_root (eval)")
register_dataset("skimage_photos", build_skimage_photos, options=_OPTIONS, needs_root=False,
                 description="scikit-image's bundled photos (11 train / 4 test), embedded, for denoising / SR")
