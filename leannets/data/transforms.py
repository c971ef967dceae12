"""PIL transforms for file-based (large-image) datasets and the dataset class that applies them.

Training: RandomResizedCrop (area ``crop_area`` 0.08–1, aspect ``ratio`` 3/4–4/3, as Szegedy et al. /
torchvision) + horizontal flip. Evaluation: resize the shorter side to ``size / crop_pct`` then
center-crop ``size``. Randomness comes from :func:`~leannets.data.sample_rng` (seed, epoch, index),
so results do not depend on the number of DataLoader workers.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ._registry import ImageTensors, sample_rng

__all__ = ["random_resized_crop_box", "train_transform", "eval_transform", "pil_to_uint8", "FileImageDataset",
           "load_image", "decode_to_tensors"]


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            crop_area: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3)
                            ) -> tuple[int, int, int, int]:
    """(left, top, w, h) of a random crop covering ``crop_area`` of the area with aspect in ``ratio``."""
    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(crop_area[0], crop_area[1])
        aspect = math.exp(rng.uniform(*log_r))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    # Fallback: the largest centred crop with the aspect clamped to ``ratio``.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def pil_to_uint8(img: Image.Image) -> torch.Tensor:
    """PIL image → uint8 tensor (C, H, W)."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def train_transform(img: Image.Image, size: int, rng: np.random.Generator, crop_area: Sequence[float] = (0.08, 1.0),
                    ratio: Sequence[float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """RandomResizedCrop(size) + horizontal flip → uint8 (C, size, size)."""
    left, top, w, h = random_resized_crop_box(img.width, img.height, rng, crop_area, ratio)
    out = img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    if flip and rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return pil_to_uint8(out)


def eval_transform(img: Image.Image, size: int, crop_pct: float = 0.875) -> torch.Tensor:
    """Resize the shorter side to ``size / crop_pct`` (bilinear), center-crop ``size`` → uint8 (C, size, size)."""
    short = int(math.floor(size / crop_pct))
    w, h = img.size
    if w <= h:
        nw, nh = short, max(short, int(round(h * short / w)))
    else:
        nw, nh = max(short, int(round(w * short / h))), short
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return pil_to_uint8(img.crop((left, top, left + size, top + size)))


_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")


def as_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer) grayscale image scaled to 8 bits (``L``); other images unchanged. PIL's own
    ``convert`` clips such an image at 255, so a 16-bit PNG would come out near-white."""
    if im.mode not in _WIDE_MODES:
        return im
    arr = np.asarray(im, dtype=np.float64)
    if im.mode != "I" or arr.max() > 255:  # 16-bit data (an "I" image may hold 8-bit values)
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="L")


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Open and decode an image (16-bit images scaled to 8 bits); ``ValueError`` naming the file if it is
    unreadable."""
    try:
        with Image.open(path) as im:
            return as_8bit(im).convert(mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"image file {path} is corrupt or not an image: {err}") from err


_TAIL_BYTES = 1024  # JPEG end marker searched in the last KiB: some writers append padding after it


def check_image_file(path: str | Path) -> None:
    """An integrity check without decoding the pixels: the file exists, is not empty, PIL recognises it as an
    image and its ``verify`` passes (a text file named ``.jpg`` fails here, not mid-epoch), and a JPEG (PNG) ends
    with its end marker (IEND chunk) — what a truncated download or copy lacks. ``ValueError`` naming the file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file {p} does not exist") from None
    if size == 0:
        raise ValueError(f"image file {p} is empty: remove or replace it")
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        raise ValueError(f"image file {p} is a truncated JPEG (no end marker): remove or replace it")
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail[-12:]:
        raise ValueError(f"image file {p} is a truncated PNG (no IEND chunk): remove or replace it")
    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"image file {p} is corrupt or not an image ({str(err)[:80]}): remove or replace it") from None


def check_image_files(paths: Sequence[str | Path]) -> None:
    """:func:`check_image_file` for many files, read in parallel threads (I/O bound: an ImageNet-size list takes
    seconds, not minutes); the first bad file in list order is the error."""
    paths = list(paths)
    if len(paths) < 256:
        for path in paths:
            check_image_file(path)
        return
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        for _ in pool.map(check_image_file, paths, chunksize=256):
            pass


class FileImageDataset(Dataset):
    """(path, label) samples decoded with PIL; train or eval transforms; yields (uint8 (C,H,W), label).

    Streamed (default): every file gets :func:`check_image_file` up front (a few bytes each), so a truncated
    file is one clear error before training starts instead of a DataLoader worker traceback mid-epoch, and is
    decoded on each access. ``in_memory``: every file is decoded once, at its own size, and held; the same
    transforms then run on the held pixels, so the storage never changes what the model sees.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], size: int, train: bool, *, crop_area: Sequence[float] =
                 (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3), crop_pct: float = 0.875, flip: bool = True,
                 augment: bool = True, mode: str = "RGB", in_memory: bool = False) -> None:
        self.samples = list(samples)
        self.size, self.train = size, train
        self.crop_area, self.ratio, self.crop_pct = tuple(crop_area), tuple(ratio), crop_pct
        self.flip, self.augment, self.mode = flip, augment, mode
        self.seed, self.epoch = 0, 0
        self.in_memory = in_memory
        if in_memory:
            self._held = [np.asarray(load_image(path, mode)) for path, _ in self.samples]
        else:
            check_image_files([path for path, _ in self.samples])

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> Image.Image:
        """The decoded image ``index`` (before any transform), from memory or from its file."""
        if self.in_memory:
            return Image.fromarray(self._held[index])
        return load_image(self.samples[index][0], self.mode)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.image(index)
        if self.train and self.augment:
            x = train_transform(img, self.size, sample_rng(self.seed, self.epoch, index), self.crop_area, self.ratio,
                                self.flip)
        else:
            x = eval_transform(img, self.size, self.crop_pct)
        return x, self.samples[index][1]

    def describe(self) -> str:
        """The transform this split applies, in words (printed by the trainer, kept in ``results.json``)."""
        if self.train and self.augment:
            flip = " + horizontal flip" if self.flip else ""
            return (f"RandomResizedCrop({self.size}, area {self.crop_area[0]:g}–{self.crop_area[1]:g}, aspect "
                    f"{self.ratio[0]:.3g}–{self.ratio[1]:.3g}, bilinear){flip}")
        short = int(math.floor(self.size / self.crop_pct))
        return f"shorter side resized to {short} (bilinear), centre {self.size}×{self.size} crop (crop_pct {self.crop_pct:g})"


def decode_to_tensors(samples: Sequence[tuple[str, int]], size: int, crop_pct: float = 1.0, mode: str = "RGB"
                      ) -> ImageTensors:
    """Decode every image (resize shorter side + center crop to ``size``) into an in-memory split."""
    n = len(samples)
    c = 1 if mode == "L" else 3
    images = torch.empty((n, c, size, size), dtype=torch.uint8)
    for i, (path, _) in enumerate(samples):
        images[i] = eval_transform(load_image(path, mode), size, crop_pct)
    return ImageTensors(images, torch.tensor([lab for _, lab in samples], dtype=torch.int64))
