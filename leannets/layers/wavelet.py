"""Fixed 2-D discrete wavelet transform (DWT) layers with filters taken from PyWavelets.

The Wavelet+CNN baseline of Chen et al. (AAAI 2018) decomposes an image with the CDF 9/7
wavelet (PyWavelets' ``bior4.4``) into four half-resolution sub-bands cA, cH, cV, cD.

Boundary mode: ``periodization`` (PyWavelets' name). It is the only mode whose output is
exactly ``ceil(n / 2)`` long, so an even ``H × W`` image becomes ``H/2 × W/2`` sub-bands, the
same size as the WAE's I_L / I_H. Odd sizes follow PyWavelets too: the last row/column is
repeated once before the periodic extension. :class:`DWT2d` matches ``pywt.dwt2(x,
"bior4.4", mode="periodization")`` to float precision and :class:`IDWT2d` inverts it.
"""
from __future__ import annotations

import numpy as np
import pywt
import torch
import torch.nn as nn
import torch.nn.functional as F

from .kernels import check_input

__all__ = ["DWT2d", "IDWT2d", "wavelet_filters"]


def wavelet_filters(wavelet: str = "bior4.4") -> dict[str, np.ndarray]:
    """Decomposition and reconstruction filters of a PyWavelets wavelet (even length)."""
    try:
        w = pywt.Wavelet(wavelet)
    except ValueError as err:
        raise ValueError(f"unknown wavelet {wavelet!r}: {err}; see pywt.wavelist(kind='discrete')") from err
    filters = {k: np.asarray(getattr(w, k), dtype=np.float64) for k in ("dec_lo", "dec_hi", "rec_lo", "rec_hi")}
    if len(filters["dec_lo"]) % 2:
        raise ValueError(f"wavelet {wavelet!r}: filters of odd length are not supported")
    return filters


def _bank(lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
    """(4, 1, F, F) outer products in the order LL, HL(cH), LH(cV), HH(cD) (rows × cols)."""
    rows_cols = [(lo, lo), (hi, lo), (lo, hi), (hi, hi)]
    return torch.tensor(np.stack([np.outer(r, c) for r, c in rows_cols])[:, None], dtype=torch.float32)


def _pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Odd sides padded by repeating their last sample (PyWavelets' periodization); ``ValueError`` below 2."""
    h, w = x.shape[-2:]
    if min(h, w) < 2:
        raise ValueError(f"DWT2d: spatial size {(h, w)} cannot be halved (needs >= 2)")
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else x


torch.fx.wrap("_pad_to_even")  # a leaf of fx graphs: its branches read the input's size


class DWT2d(nn.Module):
    """One-level 2-D DWT of every channel, ``periodization`` boundary.

    Input ``(N, C, H, W)``; output ``(N, 4·C, ceil(H/2), ceil(W/2))`` laid out as
    ``[cA (C), cH (C), cV (C), cD (C)]`` (PyWavelets' ``dwt2`` order and orientation).
    Use :meth:`split` to get the four sub-bands.

    Args:
        wavelet: PyWavelets name; ``bior4.4`` is the CDF 9/7 wavelet of JPEG 2000.
        in_chans: channels of the input (the filters are applied to each one separately).
    """

    def __init__(self, wavelet: str = "bior4.4", in_chans: int = 3) -> None:
        super().__init__()
        f = wavelet_filters(wavelet)
        self.wavelet = wavelet
        self.in_chans = in_chans
        self.filter_len = len(f["dec_lo"])
        # conv2d correlates, PyWavelets convolves: flip the filters.
        bank = _bank(f["dec_lo"][::-1].copy(), f["dec_hi"][::-1].copy())
        self.register_buffer("weight", bank.repeat(in_chans, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_chans, "DWT2d")
        x = _pad_to_even(x)
        p = self.filter_len // 2 - 1
        x = F.pad(x, (p, p, p, p), mode="circular")
        y = F.conv2d(x, self.weight.to(x.dtype), stride=2, groups=self.in_chans)
        # (N, C·4, h, w) grouped per channel → reorder to sub-band major [cA, cH, cV, cD].
        return y.unflatten(1, (self.in_chans, 4)).transpose(1, 2).flatten(1, 2)

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cA, cH, cV, cD)`` from the output of :meth:`forward`."""
        return tuple(y.chunk(4, dim=1))  # type: ignore[return-value]


class IDWT2d(nn.Module):
    """Inverse of :class:`DWT2d` for even output sizes (``pywt.idwt2``, ``periodization``).

    Input ``(N, 4·C, h, w)`` as produced by :class:`DWT2d`; output ``(N, C, 2h, 2w)``.
    """

    def __init__(self, wavelet: str = "bior4.4", in_chans: int = 3) -> None:
        super().__init__()
        f = wavelet_filters(wavelet)
        self.wavelet = wavelet
        self.in_chans = in_chans
        self.filter_len = len(f["rec_lo"])
        self.register_buffer("weight", _bank(f["rec_lo"], f["rec_hi"]).repeat(in_chans, 1, 1, 1),
                             persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        c = self.in_chans
        if y.dim() != 4 or y.shape[1] != 4 * c:
            raise ValueError(f"IDWT2d: expected (N, {4 * c}, h, w), got {tuple(y.shape)}")
        n, _, h, w = y.shape
        y = y.view(n, 4, c, h, w).transpose(1, 2).reshape(n, 4 * c, h, w)
        # Periodic synthesis: wrap enough coefficients so the transposed conv sees full support.
        q = self.filter_len // 4
        y = F.pad(y, (q, q, q, q), mode="circular")
        x = F.conv_transpose2d(y, self.weight.to(y.dtype), stride=2, groups=c)
        start = 2 * q + self.filter_len // 2 - 1
        return x[..., start:start + 2 * h, start:start + 2 * w]
