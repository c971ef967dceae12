"""Decode an image list once into a cached uint8 tensor file, and the ``cifar10_jpeg`` dataset.

Decoding 60,000 small JPEGs costs more per epoch than training a small net on 2 cores, so
:func:`cached_decode` decodes once and keeps the uint8 N×C×H×W tensor in the cache folder
(``$LEANNETS_CACHE``, default ``$XDG_CACHE_HOME/leannets`` or ``~/.cache/leannets``). The cache file is
named by *which* images are decoded and how (paths, size, crop, mode) and records a content key
(every file's size and modification time, and its label) and a SHA-256 of its tensors; a file whose
content key no longer matches is stale and rebuilt, a file that cannot be read or whose tensors no longer
match their checksum (damaged in place) is corrupt and rebuilt, each with a one-line message. Writes go through :mod:`leannets._io` (atomic), reads use ``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from leannets._io import atomic_write, cache_dir
from leannets._log import STDERR
from leannets.config import DataSection

from ._registry import DataSplits, ImageTensors, register_dataset
from ._util import channel_stats, stats_or_override
from .folder import scan_class_folders
from .transforms import decode_to_tensors

_LOG = logging.getLogger(__name__)

__all__ = ["cache_dir", "cached_decode", "build_cifar10_jpeg", "CACHE_FORMAT"]

CACHE_FORMAT = "leannets-decoded-images-v2"  # v2: a checksum of the tensors, verified on every read
CIFAR10_JPEG_LAYOUT = "ROOT/{train,test}/<class>/<image>.jpg (e.g. ../shared/data/cifar10-jpeg)"


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def _content_key(samples: Sequence[tuple[str, int]]) -> str:
    rows = []
    for path, label in samples:
        st = os.stat(path)
        rows.append(f"{st.st_size}:{st.st_mtime_ns}:{label}")
    return _digest(rows)


def _checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of the tensors' bytes: a cache file damaged in place no longer matches it."""
    h = hashlib.sha256()
    for t in (images, labels):
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _load(path: Path, content: str) -> tuple[ImageTensors | None, str]:
    """(tensors, "") on a hit; (None, reason) when the file is missing, stale or corrupt."""
    if not path.is_file():
        return None, ""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and str(obj.get("format", "")).startswith("leannets-decoded-images-") \
                and obj.get("format") != CACHE_FORMAT:
            return None, f"decode cache {path} has an older format ({obj['format']}); rebuilding it"
        if not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT:
            raise ValueError(f"not a {CACHE_FORMAT} file")
        if obj["content"] != content:
            return None, f"decode cache {path} is stale (the image files changed); rebuilding it"
        if _checksum(obj["images"], obj["labels"]) != obj["checksum"]:
            raise ValueError("its tensors do not match their checksum")
        return ImageTensors(obj["images"], obj["labels"]), ""
    except Exception as err:  # noqa: BLE001 - any unreadable file is simply rebuilt
        return None, f"decode cache {path} is corrupt ({type(err).__name__}: {str(err)[:80]}); rebuilding it"


def cached_decode(samples: Sequence[tuple[str, int]], size: int, crop_pct: float = 1.0, mode: str = "RGB", *,
                  what: str = "images", log: Callable[[str], None] | None = None) -> ImageTensors:
    """:func:`~leannets.data.transforms.decode_to_tensors` of ``samples``, decoded once and cached.

    Args:
        samples: (path, label) pairs.
        size, crop_pct, mode: as for ``decode_to_tensors`` (part of the cache's name).
        what: names the split in messages.
        log: where the one-line messages go (default: stderr).
    """
    say = log or (lambda msg: _LOG.info(msg, extra=STDERR))
    name = _digest([str(Path(p).resolve()) for p, _ in samples] + [f"{size}:{crop_pct}:{mode}"])[:24]
    path = cache_dir() / f"decoded-{name}.pt"
    content = _content_key(samples)
    hit, why = _load(path, content)
    if hit is not None:
        return hit
    if why:
        say(why)
    say(f"decoding {len(samples):,} {what} once into {path} (later runs read the cache)")
    decoded = decode_to_tensors(samples, size, crop_pct, mode)
    with atomic_write(path) as tmp:
        torch.save({"format": CACHE_FORMAT, "content": content, "images": decoded.images,
                    "labels": decoded.labels, "checksum": _checksum(decoded.images, decoded.labels)}, tmp)
    return decoded


def build_cifar10_jpeg(cfg: DataSection) -> DataSplits:
    """The whole CIFAR-10 as JPEG class folders (``train/``, ``test/``), decoded once and cached."""
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root {root} does not exist. Expected layout: {CIFAR10_JPEG_LAYOUT}")
    train_samples, classes = scan_class_folders(root / "train", layout=CIFAR10_JPEG_LAYOUT)
    test_samples, _ = scan_class_folders(root / "test", classes, layout=CIFAR10_JPEG_LAYOUT)
    size = cfg.input_size or 32
    train = cached_decode(train_samples, size, what="cifar10_jpeg training images")
    test = cached_decode(test_samples, size, what="cifar10_jpeg test images")
    mean, std = stats_or_override(cfg, channel_stats(train.images), 3)
    return DataSplits(train=train, eval=test, num_classes=len(classes), in_chans=3, input_size=(3, size, size),
                      mean=mean, std=std, class_names=classes, name="cifar10_jpeg",
                      meta={"train_images": len(train), "eval_images": len(test), "cache": str(cache_dir())})


register_dataset("cifar10_jpeg", build_cifar10_jpeg,
                 description="CIFAR-10 as JPEG class folders (train/ test/), decoded once into a cached tensor")
