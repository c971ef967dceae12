"""Decomposition figure (Figs. 3–4 of Chen et al.): input | I_L | I_H (contrast-stretched) | Î.

Each row shows one image. The input and the reconstruction are un-normalised with the data's
mean/std; I_L and I_H are stretched per image and channel to their own [min, max] (nothing ties
the learned channels to RGB's offsets and scales, and I_H carries little energy, so without
stretching it would look uniformly grey). The grid is written atomically
as a PNG with Pillow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageDraw

from leannets._io import atomic_write
from leannets.models.wae_classifier import WAE, WAEClassifier

__all__ = ["decomposition_grid", "save_decomposition_png", "stretch"]

COLUMNS = ("input", "I_L (stretched)", "I_H (stretched)", "reconstruction")


def stretch(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel min–max stretch of ``(N, C, H, W)`` to [0, 1] (flat channels become 0.5)."""
    flat = x.flatten(2)
    lo, hi = flat.min(2).values[..., None, None], flat.max(2).values[..., None, None]
    span = hi - lo
    return torch.where(span > 1e-12, (x - lo) / span.clamp_min(1e-12), torch.full_like(x, 0.5))


def _to_rgb(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) on [0, 1] → uint8 (H, W, 3); 1 channel is repeated, >3 channels keep the first 3."""
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    x = x[:3]
    return np.ascontiguousarray((x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def _upscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.NEAREST))


@torch.no_grad()
def decomposition_grid(model: nn.Module, images: torch.Tensor, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None, scale: int = 4) -> np.ndarray:
    """uint8 (rows·H·scale, 4·W·scale, 3) grid for ``images`` (uint8 or [0, 1] float, N×C×H×W).

    ``model`` is a WAE classifier with a decoder (``wae_*``/``ilonly_*``) or a :class:`WAE`.
    """
    wae = model.wae if isinstance(model, WAEClassifier) else model
    if not isinstance(wae, WAE) or wae.decoder is None:
        raise ValueError("decomposition_grid needs a WAE with a decoder (a wae_* / ilonly_* model or `wae`), "
                         f"got {type(model).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    x01 = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    m = torch.tensor(mean if mean is not None else [0.0] * x01.shape[1]).view(1, -1, 1, 1)
    s = torch.tensor(std if std is not None else [1.0] * x01.shape[1]).view(1, -1, 1, 1)
    wae = wae.eval()
    i_l, i_h, recon = wae.forward_all((x01 - m) / s)
    recon01 = recon * s + m
    h, w = x01.shape[-2:]
    big = (h * scale, w * scale)
    rows = []
    for k in range(x01.shape[0]):
        cells = [x01[k], stretch(i_l[k:k + 1])[0], stretch(i_h[k:k + 1])[0], recon01[k]]
        rows.append(np.concatenate([_upscale(_to_rgb(c), big) for c in cells], axis=1))
    return np.concatenate(rows, axis=0)


def save_decomposition_png(path: str | os.PathLike, model: nn.Module, images: torch.Tensor,
                           mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                           scale: int = 4, title: str | None = None) -> Path:
    """Write :func:`decomposition_grid` with a header naming the columns; returns the path."""
    grid = decomposition_grid(model, images, mean, std, scale)
    cell_w = grid.shape[1] // len(COLUMNS)
    header = Image.new("RGB", (grid.shape[1], 16 if title is None else 30), "white")
    draw = ImageDraw.Draw(header)
    for i, name in enumerate(COLUMNS):
        draw.text((i * cell_w + 3, header.height - 14), name, fill="black")
    if title:
        draw.text((3, 1), title, fill="black")
    canvas = Image.new("RGB", (grid.shape[1], header.height + grid.shape[0]), "white")
    canvas.paste(header, (0, 0))
    canvas.paste(Image.fromarray(grid), (0, header.height))
    path = Path(path)
    with atomic_write(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def energy_share_ih(model: nn.Module, images: torch.Tensor, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> float:
    """Share of the decomposition's energy carried by I_H, ``Σ I_H² / (Σ I_L² + Σ I_H²)``, over ``images``
    (uint8, N×C×H×W) normalised as the model was trained."""
    with torch.no_grad():
        x = images.float() / 255.0
        m = torch.tensor(list(mean or [0.0] * x.shape[1])).view(1, -1, 1, 1)
        s = torch.tensor(list(std or [1.0] * x.shape[1])).view(1, -1, 1, 1)
        i_l, i_h = model.decompose((x - m) / s)
        return float(i_h.pow(2).sum() / (i_l.pow(2).sum() + i_h.pow(2).sum()))

