"""Image-restoration metrics and MATLAB-compatible image operations.

Conventions of the restoration literature (and of the Dense xUnit paper's evaluation):

- Metrics are computed on the [0, 255] scale, after the network output has been clipped and
  rounded to 8 bits (:func:`quantize`).
- ``y_channel=True`` evaluates the luma of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio swing,
  Y in [16, 235]); super-resolution also ignores a frame of ``crop_border = scale`` pixels.
- PSNR = 10·log10(255² / MSE) per image; SSIM follows Wang et al. (2004) and MATLAB's reference
  ``ssim_index.m``: Gaussian window 11×11 with σ = 1.5, K1 = 0.01, K2 = 0.03, only windows that fit
  inside the image ("valid"), mean of the SSIM map; colour images average the per-channel SSIM.
- :func:`imresize` reproduces MATLAB's ``imresize(..., 'bicubic')`` including its antialiasing
  when shrinking (the kernel is stretched by 1/scale) and its symmetric border handling.

Images are numpy arrays ``(H, W)`` / ``(H, W, C)`` or torch tensors ``(C, H, W)`` / ``(N, C, H, W)``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["rgb_to_y", "quantize", "psnr", "ssim", "psnr_batch", "ssim_batch", "imresize", "imresize_torch", "modcrop",
           "cubic_kernel", "resize_weights", "gaussian_window"]

_BT601_Y = (65.481, 128.553, 24.966)
ArrayLike = np.ndarray | torch.Tensor


def _to_nchw(img: ArrayLike, name: str = "image") -> torch.Tensor:
    """Any supported image layout → float64 ``(N, C, H, W)`` tensor (values unchanged)."""
    if isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
        if t.dim() == 2:
            return t[None, None]
        if t.dim() == 3:
            return t.permute(2, 0, 1)[None]
        raise ValueError(f"{name}: numpy images must be (H, W) or (H, W, C), got shape {img.shape}")
    if isinstance(img, torch.Tensor):
        t = img.detach().to("cpu", torch.float64)
        if t.dim() == 2:
            return t[None, None]
        if t.dim() == 3:
            return t[None]
        if t.dim() == 4:
            return t
        raise ValueError(f"{name}: tensors must be (H, W), (C, H, W) or (N, C, H, W), got {tuple(img.shape)}")
    raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(img).__name__}")


def rgb_to_y(img: ArrayLike) -> ArrayLike:
    """Luma of MATLAB's ``rgb2ycbcr`` (BT.601) for RGB values on the [0, 255] scale.

    Accepts ``(H, W, 3)`` numpy arrays or ``(3, H, W)`` / ``(N, 3, H, W)`` tensors; returns the
    same container without the channel axis for numpy and with ``C = 1`` for tensors.
    """
    r, g, b = _BT601_Y
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"rgb_to_y: expected an (H, W, 3) RGB array, got shape {img.shape}")
        x = img.astype(np.float64)
        return 16.0 + (r * x[..., 0] + g * x[..., 1] + b * x[..., 2]) / 255.0
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4) or img.shape[-3] != 3:
        shape = tuple(img.shape) if hasattr(img, "shape") else type(img).__name__
        raise ValueError(f"rgb_to_y: expected a (3, H, W) or (N, 3, H, W) RGB tensor, got {shape}")
    x = img if img.is_floating_point() else img.to(torch.float64)
    y = 16.0 + (r * x[..., 0:1, :, :] + g * x[..., 1:2, :, :] + b * x[..., 2:3, :, :]) / 255.0
    return y


def quantize(img: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Clip a network output to ``[0, data_range]`` and round it to 8 bits, on the [0, 255] scale."""
    return (img.detach().clamp(0, data_range) * (255.0 / data_range)).round()


def _prepare(pred: ArrayLike, target: ArrayLike, crop_border: int, y_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _to_nchw(pred, "pred"), _to_nchw(target, "target")
    if a.shape != b.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if y_channel:
        if a.shape[1] == 3:
            a, b = rgb_to_y(a), rgb_to_y(b)
        elif a.shape[1] != 1:
            raise ValueError(f"y_channel needs RGB (3 channels) or gray (1 channel) images, got {a.shape[1]} channels")
    if crop_border:
        if min(a.shape[-2:]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {tuple(a.shape[-2:])} image")
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr_batch(pred: ArrayLike, target: ArrayLike, *, data_range: float = 255.0, crop_border: int = 0,
               y_channel: bool = False) -> torch.Tensor:
    """Per-image PSNR in dB (float64 tensor of length N); identical images give ``inf``."""
    a, b = _prepare(pred, target, crop_border, y_channel)
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(pred: ArrayLike, target: ArrayLike, *, data_range: float = 255.0, crop_border: int = 0,
         y_channel: bool = False) -> float:
    """PSNR in dB of one image pair (or the mean over a batch)."""
    return float(psnr_batch(pred, target, data_range=data_range, crop_border=crop_border,
                            y_channel=y_channel).mean())


@lru_cache(maxsize=8)
def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian window ``(size, size)`` as MATLAB's ``fspecial('gaussian')``."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(ax**2) / (2.0 * sigma**2))
    w = torch.outer(g, g)
    return w / w.sum()


def ssim_batch(pred: ArrayLike, target: ArrayLike, *, data_range: float = 255.0, crop_border: int = 0,
               y_channel: bool = False, win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
               k2: float = 0.03) -> torch.Tensor:
    """Per-image SSIM (float64 tensor of length N): mean of the valid SSIM map, averaged over channels."""
    a, b = _prepare(pred, target, crop_border, y_channel)
    if min(a.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}×{win_size}, got {tuple(a.shape[-2:])}")
    n, c = a.shape[:2]
    w = gaussian_window(win_size, sigma)[None, None].expand(c, 1, win_size, win_size)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a**2
    sbb = filt(b * b) - mu_b**2
    sab = filt(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return smap.flatten(2).mean(2).mean(1)


def ssim(pred: ArrayLike, target: ArrayLike, *, data_range: float = 255.0, crop_border: int = 0,
         y_channel: bool = False) -> float:
    """SSIM of one image pair (or the mean over a batch); see :func:`ssim_batch`."""
    return float(ssim_batch(pred, target, data_range=data_range, crop_border=crop_border,
                            y_channel=y_channel).mean())


# --------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)
# --------------------------------------------------------------------------------------------

def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=64)
def resize_weights(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Dense ``(out_length, in_length)`` matrix of MATLAB's bicubic ``contributions``.

    Output pixel ``i`` (1-based) samples the input at ``u = i/scale + 0.5·(1 − 1/scale)``; when
    shrinking with antialiasing the kernel becomes ``scale·cubic(scale·x)`` with width 4/scale.
    Rows are normalised to sum to 1 and out-of-range taps are mirrored (MATLAB's symmetric padding).
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic_kernel(scale * x)
        kernel_width /= scale
    else:
        kernel = cubic_kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, len(mirror))]
    mat = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_length), taps), src.ravel()), weights.ravel())
    return mat


def imresize(img: np.ndarray, scale: float | None = None, output_shape: Sequence[int] | None = None,
             antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for ``(H, W)`` or ``(H, W, C)`` numpy images.

    Args:
        img: uint8 (result rounded and clipped to uint8, as MATLAB does) or float (float64 result).
        scale: resize factor (e.g. 1/4); the output size is ``ceil(scale · size)``.
        output_shape: ``(H_out, W_out)`` instead of ``scale``.
        antialiasing: stretch the kernel when shrinking (MATLAB's default).
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an (H, W) or (H, W, C) numpy array, got "
                         f"{getattr(img, 'shape', type(img).__name__)}")
    h, w = img.shape[:2]
    if output_shape is not None:
        oh, ow = (int(v) for v in output_shape)
        sh, sw = oh / h, ow / w
    elif scale is not None:
        if scale <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        sh = sw = float(scale)
        oh, ow = int(math.ceil(h * sh)), int(math.ceil(w * sw))
    else:
        raise ValueError("imresize: give scale or output_shape")
    if oh <= 0 or ow <= 0:
        raise ValueError(f"imresize: output size {(oh, ow)} is empty for input {(h, w)}")
    x = img.astype(np.float64)
    wh = resize_weights(h, oh, sh, antialiasing)
    ww = resize_weights(w, ow, sw, antialiasing)
    # MATLAB resizes the dimension with the smaller scale first; the result differs only by rounding.
    if sh <= sw:
        out = np.einsum("ij,jk...->ik...", wh, x)
        out = np.einsum("lk,ik...->il...", ww, out)
    else:
        out = np.einsum("lk,ik...->il...", ww, x)
        out = np.einsum("ij,jk...->ik...", wh, out)
    if img.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def imresize_torch(x: torch.Tensor, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """:func:`imresize` for a float batch ``(N, C, H, W)`` on any device (same weights, no rounding)."""
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"imresize_torch: expected a float (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    h, w = x.shape[-2:]
    oh, ow = int(math.ceil(h * scale)), int(math.ceil(w * scale))
    wh = torch.from_numpy(resize_weights(h, oh, float(scale), antialiasing)).to(x.device, x.dtype)
    ww = torch.from_numpy(resize_weights(w, ow, float(scale), antialiasing)).to(x.device, x.dtype)
    return torch.matmul(torch.matmul(wh, x), ww.t())


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right of an ``(H, W[, C])`` image so both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"modcrop: image {h}×{w} is smaller than the scale {scale}")
    return img[: h - h % scale, : w - w % scale]
