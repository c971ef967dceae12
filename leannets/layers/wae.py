"""Wavelet-like Auto-Encoder (WAE) of Chen et al., AAAI 2018: encoder, decoder and losses.

The encoder turns an image ``I`` (``H × W``) into two half-resolution images: I_L, which
carries the content a classifier needs, and I_H, which carries the remaining details with as
little energy as possible. The decoder rebuilds ``Î`` from both. Layout (authors' deploy net
and the paper's Fig. 2):

- encoder: three 3×3 convs (16 ch, stride 1, ReLU), then two branch 3×3 stride-2 convs (no
  activation) giving I_L and I_H (3 channels each). The two branch convs read the same
  16-channel map, so they are stored as one conv with ``2·out_chans`` outputs split in two:
  the same parameters and outputs as two separate convs, one pass over the full-res map.
- decoder: two branches of identical structure, each a 4×4 stride-2 deconv followed by three
  3×3 convs (16 intermediate channels, ReLU between, linear output); the outputs are summed.

Sizes: I_L/I_H are ``ceil(H/2) × ceil(W/2)`` (exactly half for even sizes); the decoder
crops its ``2h × 2w`` output back to an odd input size when asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from .kernels import check_input, fx_tracing

__all__ = ["WAEEncoder", "WAEDecoder", "TransformLoss", "transform_loss", "joint_loss",
           "half_size", "LOSS_REDUCTIONS"]

LOSS_REDUCTIONS = ("sum", "mean")


def half_size(size: Sequence[int]) -> tuple[int, int]:
    """``(ceil(H/2), ceil(W/2))``; ``ValueError`` when a side is < 2 and cannot be halved."""
    h, w = int(size[-2]), int(size[-1])
    if h < 2 or w < 2:
        raise ValueError(f"WAE: spatial size {h}×{w} cannot be halved (each side must be >= 2)")
    return (h + 1) // 2, (w + 1) // 2


def _xavier(module: nn.Module) -> None:
    # The paper initialises the WAE with Xavier (Glorot) and zero biases.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class WAEEncoder(nn.Module):
    """Image → (I_L, I_H), both at half resolution.

    Args:
        in_chans: image channels.
        mid_chs: channels of the stride-1 convs (16 in the paper).
        out_chans: channels of I_L and of I_H each (3 in the paper).
        num_convs: number of stride-1 3×3 convs before the branches (3 in the paper).
    """

    def __init__(self, in_chans: int = 3, mid_chs: int = 16, out_chans: int = 3, num_convs: int = 3) -> None:
        super().__init__()
        if min(in_chans, mid_chs, out_chans, num_convs) <= 0:
            raise ValueError(f"WAEEncoder: sizes must be positive, got in_chans={in_chans}, mid_chs={mid_chs}, "
                             f"out_chans={out_chans}, num_convs={num_convs}")
        self.in_chans = in_chans
        self.out_chans = out_chans
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_chans if i == 0 else mid_chs, mid_chs, 3, 1, 1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        # Branch convs for I_L (first out_chans outputs) and I_H (last out_chans) in one module.
        self.branches = nn.Conv2d(mid_chs, 2 * out_chans, 3, 2, 1)
        _xavier(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_input(x, self.in_chans, "WAEEncoder")
        if not fx_tracing():
            half_size(x.shape)
        y = self.branches(self.convs(x))
        return y[:, :self.out_chans], y[:, self.out_chans:]


class _DecoderBranch(nn.Sequential):
    """Deconv 4×4/2 (×2 upsampling) → ReLU → [conv 3×3 → ReLU] × 2 → conv 3×3 (linear)."""

    def __init__(self, in_chans: int, mid_chs: int, out_chans: int, num_convs: int = 3) -> None:
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_chans, mid_chs, 4, 2, 1), nn.ReLU(inplace=True)]
        for i in range(num_convs):
            last = i == num_convs - 1
            layers.append(nn.Conv2d(mid_chs, out_chans if last else mid_chs, 3, 1, 1))
            if not last:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class WAEDecoder(nn.Module):
    """(I_L, I_H) → reconstruction Î = T_L(I_L) + T_H(I_H) at twice the resolution.

    Args:
        in_chans: channels of I_L and of I_H each.
        mid_chs: intermediate channels (16 in the paper).
        out_chans: channels of the reconstructed image.
        num_convs: 3×3 convs after each branch's deconv (3 in the paper).
    """

    def __init__(self, in_chans: int = 3, mid_chs: int = 16, out_chans: int = 3, num_convs: int = 3) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.branch_l = _DecoderBranch(in_chans, mid_chs, out_chans, num_convs)
        self.branch_h = _DecoderBranch(in_chans, mid_chs, out_chans, num_convs)
        _xavier(self)

    def forward(self, i_l: torch.Tensor, i_h: torch.Tensor,
                output_size: Sequence[int] | None = None) -> torch.Tensor:
        """Reconstruct; ``output_size`` (H, W) crops to an odd original size."""
        if i_l.shape != i_h.shape or i_l.dim() != 4 or i_l.shape[1] != self.in_chans:
            raise ValueError(f"WAEDecoder: expected I_L and I_H of equal shape (N, {self.in_chans}, h, w), "
                             f"got {tuple(i_l.shape)} and {tuple(i_h.shape)}")
        h, w = i_l.shape[-2:]
        if output_size is not None:
            oh, ow = int(output_size[-2]), int(output_size[-1])
            if (oh + 1) // 2 != h or (ow + 1) // 2 != w:
                raise ValueError(f"WAEDecoder: cannot rebuild {oh}×{ow} from {h}×{w} sub-images "
                                 f"(needs {2 * h - 1} or {2 * h} × {2 * w - 1} or {2 * w})")
        else:
            oh, ow = 2 * h, 2 * w
        out = self.branch_l(i_l) + self.branch_h(i_h)
        return out[..., :oh, :ow]


@dataclass
class TransformLoss:
    """Transform loss and its two terms (paper eqs. 3–5)."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    energy: torch.Tensor


def _sq(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return x.pow(2).flatten(1).sum(1).mean() / 2
    return x.pow(2).mean()


def transform_loss(image: torch.Tensor, recon: torch.Tensor, i_h: torch.Tensor, energy_weight: float = 1.0,
                   reduction: str = "sum") -> TransformLoss:
    """``L_t = L_r + λ·L_e`` with ``L_r = ‖I − Î‖²`` and ``L_e = ‖I_H‖²``.

    Args:
        image: input images ``(N, C, H, W)``.
        recon: reconstructions of the same shape.
        i_h: the high-frequency sub-images.
        energy_weight: λ (1 in the paper).
        reduction: ``"sum"`` (default, the paper's Caffe Euclidean loss): squared error summed over
            each image's elements, halved and averaged over the batch, ``1/(2N) Σ_n ‖·‖²``;
            ``"mean"``: squared error averaged over all elements (size-independent scale).
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"transform_loss: reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    if image.shape != recon.shape:
        raise ValueError(f"transform_loss: image {tuple(image.shape)} and reconstruction "
                         f"{tuple(recon.shape)} differ in shape")
    rec = _sq(image - recon, reduction)
    energy = _sq(i_h, reduction)
    return TransformLoss(rec + energy_weight * energy, rec, energy)


def joint_loss(classification: torch.Tensor, transform: torch.Tensor | TransformLoss,
               transform_weight: float = 1e-3) -> torch.Tensor:
    """Stage-3 loss ``L = L_c + λ2·L_t`` (λ2 = 0.001 in the paper, eq. 9)."""
    t = transform.total if isinstance(transform, TransformLoss) else transform
    return classification + transform_weight * t
