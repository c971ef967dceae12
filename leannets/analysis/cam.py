"""Class activation maps (Zhou et al., CVPR 2016), as in Fig. 5 of *Dense xUnit Networks*.

For a network that ends in global average pooling followed by a linear layer,
``logit_c = b_c + Σ_k w_ck · mean_xy f_k(x, y)``, so the class-c map

    CAM_c(x, y) = Σ_k w_ck f_k(x, y)

(the class-weighted sum of the last feature maps) satisfies ``mean_xy CAM_c + b_c = logit_c``:
it shows where the evidence for class c lies. Any :class:`~leannets.models._base.Classifier`
with a linear ``fc`` qualifies (``forward_features`` gives ``f``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import matplotlib
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from leannets._io import atomic_save_figure, pyplot
from leannets.data.transforms import as_8bit
from leannets.models._base import Classifier

__all__ = ["CamOutput", "select_correct", "check_cam_model", "class_activation_maps", "normalize_cam", "overlay_cam",
           "plot_cam_grid", "load_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class CamOutput:
    """CAMs of one batch: ``cams`` (N, h, w) at feature resolution, ``logits`` (N, K),
    ``classes`` (N,) the class each map explains, ``probs`` (N,) its softmax probability."""

    cams: torch.Tensor
    logits: torch.Tensor
    classes: torch.Tensor
    probs: torch.Tensor


def select_correct(batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   predictors: Sequence[Callable[[torch.Tensor], torch.Tensor]], limit: int
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The first ``limit`` images of ``batches`` that every predictor classifies correctly (the Dense xUnit paper's
    choice of CAM images), their labels, and how many images were scanned.

    Args:
        batches: ``(images, labels)`` batches, images as the predictors take them (e.g. on [0, 1]).
        predictors: ``images → logits`` (each may normalise for its own model); none keeps every image.
        limit: how many images to return at most.
    """
    kept_x, kept_y, seen = [], [], 0
    with torch.no_grad():
        for x, y in batches:
            keep = torch.ones(len(y), dtype=torch.bool)
            for predict in predictors:
                keep &= predict(x).argmax(1).cpu() == y.cpu()
            kept_x.append(x[keep])
            kept_y.append(y[keep])
            seen += len(y)
            if sum(len(k) for k in kept_y) >= limit:
                break
    if not kept_y:
        return torch.empty(0), torch.empty(0, dtype=torch.long), 0
    return torch.cat(kept_x)[:limit], torch.cat(kept_y)[:limit], seen


def check_cam_model(model: nn.Module) -> nn.Linear:
    """Return the model's final linear layer; ``ValueError`` if it is not GAP + linear."""
    name = getattr(model, "model_name", type(model).__name__)
    if not isinstance(model, Classifier):
        raise ValueError(f"CAM needs a Classifier ending in global average pooling + linear "
                         f"(forward_features + fc); {name} is a {type(model).__name__}")
    fc = model.get_classifier()
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"CAM needs a linear classifier; {name}.fc is {type(fc).__name__} "
                         f"(reset_classifier(num_classes>0) first)")
    return fc


@torch.no_grad()
def class_activation_maps(model: nn.Module, images: torch.Tensor,
                          classes: int | Sequence[int] | torch.Tensor | None = None) -> CamOutput:
    """CAMs of ``images`` (N, C, H, W, already normalised) for ``classes`` (default: predicted).

    The model is evaluated in eval mode (its mode is restored afterwards).
    """
    fc = check_cam_model(model)
    model.check_input(images)
    was_training = model.training
    model.eval()
    try:
        feats = model.forward_features(images)
        logits = model.forward_head(feats)
    finally:
        model.train(was_training)
    n, k = logits.shape
    if classes is None:
        cls = logits.argmax(1)
    else:
        cls = torch.as_tensor(classes, dtype=torch.long, device=logits.device).expand(n).clone()
        bad = cls[(cls < 0) | (cls >= k)]
        if bad.numel():
            raise ValueError(f"class index {bad.tolist()} out of range for {k} classes")
    cams = torch.einsum("nchw,nc->nhw", feats, fc.weight[cls].to(feats.dtype))
    probs = logits.float().softmax(1).gather(1, cls[:, None])[:, 0]
    return CamOutput(cams=cams, logits=logits, classes=cls, probs=probs)


def normalize_cam(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample (bilinear) CAMs (N, h, w) to ``size`` and min-max scale each map to [0, 1]."""
    up = F.interpolate(cams[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = up.flatten(1).min(1).values.view(-1, 1, 1)
    hi = up.flatten(1).max(1).values.view(-1, 1, 1)
    return (up - lo) / (hi - lo).clamp_min(1e-12)


def overlay_cam(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend an RGB/gray image (H, W[, 3], values in [0, 1]) with a [0, 1] heat map → (H, W, 3) in [0, 1]."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[:2] != cam.shape:
        raise ValueError(f"overlay_cam: image {img.shape[:2]} and CAM {cam.shape} differ in size")
    heat = matplotlib.colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * img[..., :3] + alpha * heat, 0, 1)


def load_image(path: str | os.PathLike, in_chans: int, size: tuple[int, int]) -> np.ndarray:
    """Read an image file as float (H, W, C) in [0, 1], converted to ``in_chans`` and resized (bicubic)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} does not exist")
    if in_chans not in (1, 3):
        raise ValueError(f"CAM images must have 1 or 3 channels; the model takes {in_chans}")
    try:
        with Image.open(p) as im:
            im = as_8bit(im).convert("RGB" if in_chans == 3 else "L")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BICUBIC)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except UnidentifiedImageError as err:
        raise ValueError(f"image {p} could not be read as an image: {err}") from err
    return arr[..., None] if arr.ndim == 2 else arr


def plot_cam_grid(images: Sequence[np.ndarray], rows: dict[str, Sequence[tuple[np.ndarray, str]]],
                  path: str | os.PathLike, image_titles: Sequence[str] | None = None, alpha: float = 0.5) -> Path:
    """One PNG: first row the input images, then one row of CAM overlays per model (side by side).

    Args:
        images: input images (H, W, C) in [0, 1].
        rows: ``{model label: [(cam in [0, 1] (H, W), caption), ...]}``, one entry per image.
        path: output PNG.
        image_titles: captions of the input images.
    """
    plt = pyplot()

    if not images:
        raise ValueError("plot_cam_grid: no images")
    for label, entries in rows.items():
        if len(entries) != len(images):
            raise ValueError(f"plot_cam_grid: model {label!r} has {len(entries)} CAMs for {len(images)} images")
    ncols, nrows = len(images), 1 + len(rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.35 * nrows), squeeze=False)
    for j, img in enumerate(images):
        shown = img[..., 0] if img.shape[-1] == 1 else img
        axes[0, j].imshow(shown, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
        axes[0, j].set_title(image_titles[j] if image_titles else "input", fontsize=8)
    for i, (label, entries) in enumerate(rows.items(), start=1):
        for j, (cam, caption) in enumerate(entries):
            axes[i, j].imshow(overlay_cam(images[j], cam, alpha))
            axes[i, j].set_title(caption, fontsize=8)
        axes[i, 0].set_ylabel(label, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120, bbox_inches="tight")
