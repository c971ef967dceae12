"""XSepConv vs vanilla depthwise latency on CPU: blocks (k = 3, 5, 7) and MobileNetV3-Small end to end.

Usage: python benchmarks/xsepconv_speed.py [--quick] [--no-compile] [--compile-models] [--no-fused]
                                           [--threads 1] [--json PATH]

Every ratio is XSep time / DW time, both measured in the same run in interleaved rounds
(best round: robust to other processes on a shared CPU). Rows, from plain to most optimised:

- training step: forward + backward + SGD step, BN in training mode (eager).
- eager: BN unfolded, then ``fold_bn`` (exact) in NCHW, then channels_last.
- torch.compile: inductor with ``freezing`` (weights become constants; oneDNN conv + bias +
  activation fusion, weight prepacking). Blocks only unless ``--compile-models``.
- stencil + torch.compile: the folded XSepConv written as shifted multiply-adds so inductor emits
  vectorised C++ loops for all three passes (convs are otherwise opaque oneDNN calls).
- fused C kernels: 2×2 → act → 1×k → act → k×1 → act executed in one call with cache-resident
  scratch, in two layouts (NCHW: long vector loops over flattened zero-gapped planes; NHWC:
  8-lane vectors across channels), compiled here with the system C compiler and called via
  ctypes, checked against PyTorch before timing. Compared with the fastest PyTorch depthwise
  row, and like-for-like with a k×k depthwise kernel written the same way (for models: every
  depthwise layer of both models on the C kernels).

The three passes cannot be composed into one k'×k' kernel while activations sit between them
(and with identity activations the composition would be a (k+1)×(k+1) kernel: more MACs than
the k×k it replaces), so the fused kernels execute the separable passes, they do not merge them.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch._dynamo
import torch.nn.functional as F

import leannets
from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_macs, count_params
from leannets.layers import ConvBnAct
from leannets.layers.padding import GROUP_DIRECTIONS, EvenPad2d
from leannets.layers.xsepconv import XSepConv, xsepconv_cost_ratio

C_SOURCE = r"""
#include <stdlib.h>
#include <string.h>
#include <math.h>
#define R __restrict__

static inline void act_inplace(float* R p, long n, int act) {
  if (act == 1) {
#pragma GCC ivdep
    for (long j = 0; j < n; ++j) p[j] = p[j] > 0.f ? p[j] : 0.f;
  } else if (act == 2) {
#pragma GCC ivdep
    for (long j = 0; j < n; ++j) { float r = fminf(fmaxf(p[j] + 3.f, 0.f), 6.f); p[j] = p[j] * r * (1.f / 6.f); }
  }
}
static inline void axpy(float* R acc, const float* R src, float w, long n) {
#pragma GCC ivdep
  for (long m = 0; m < n; ++m) acc[m] += w * src[m];
}
static inline void axpy_s2(float* R acc, const float* R src, float w, long n) {
#pragma GCC ivdep
  for (long m = 0; m < n; ++m) acc[m] += w * src[2 * m];
}
static inline void fill(float* R p, float v, long n) { for (long m = 0; m < n; ++m) p[m] = v; }

/* BN-folded XSepConv on NCHW planes: [2x2 + act] -> 1xk stride (1,s) + act -> kx1 stride (s,1) + act.
   Planes are stored flat with zero gaps between rows, so every pass is one long vector loop.
   w2 == NULL: no 2x2 layer. pad: per channel (top, left) extra zero of the 2x2 layer. */
int xsep_nchw(const float* x, float* out, long N, long C, long H, long W,
                 const float* w2, const float* b2, const int* pad, const float* w1, const float* b1,
                 const float* wk, const float* bk, long k, long s, int act) {
  const long p = k / 2;
  const long S = W + p + (s == 2 ? ((W + p) & 1) : 0);
  const long S2 = s == 2 ? S / 2 : S;
  const long Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  float* xb = calloc((size_t)(H + 3) * S + 2 * p + 8, sizeof(float));
  float* y1 = calloc((size_t)(H + 1) * S + 2 * p + 8, sizeof(float));
  float* zb = calloc((size_t)(H + 2 * p + 1) * S2 + 8, sizeof(float));
  float* acc = calloc((size_t)(Ho + 1) * S2 + 8, sizeof(float));
  if (!xb || !y1 || !zb || !acc) { free(xb); free(y1); free(zb); free(acc); return 1; }
  for (long nc = 0; nc < N * C; ++nc) {
    const long c = nc % C;
    const float* xs = x + nc * H * W;
    float* y1d = y1 + p;
    if (w2) {
      for (long i = 0; i < H; ++i) memcpy(xb + (i + 1) * S + p, xs + i * W, W * sizeof(float));
      const long base = p + (1 - pad[2 * c]) * S - pad[2 * c + 1];
      const float* w = w2 + 4 * c;
      fill(y1d, b2[c], H * S);
      axpy(y1d, xb + base, w[0], H * S);
      axpy(y1d, xb + base + 1, w[1], H * S);
      axpy(y1d, xb + base + S, w[2], H * S);
      axpy(y1d, xb + base + S + 1, w[3], H * S);
      act_inplace(y1d, H * S, act);
      for (long i = 0; i < H; ++i) memset(y1d + i * S + W, 0, (S - W) * sizeof(float));
    } else {
      for (long i = 0; i < H; ++i) memcpy(y1d + i * S, xs + i * W, W * sizeof(float));
    }
    float* zd = zb + p * S2;
    const float* w = w1 + k * c;
    fill(zd, b1[c], H * S2);
    for (long t = 0; t < k; ++t) {
      if (s == 1) axpy(zd, y1 + t, w[t], H * S);
      else axpy_s2(zd, y1 + t, w[t], H * S2);
    }
    act_inplace(zd, H * S2, act);
    w = wk + k * c;
    if (s == 1) {
      fill(acc, bk[c], Ho * S2);
      for (long t = 0; t < k; ++t) axpy(acc, zb + t * S2, w[t], Ho * S2);
    } else {
      for (long i = 0; i < Ho; ++i) {
        float* a = acc + i * S2;
        fill(a, bk[c], Wo);
        for (long t = 0; t < k; ++t) axpy(a, zb + (2 * i + t) * S2, w[t], Wo);
      }
    }
    float* os = out + nc * Ho * Wo;
    for (long i = 0; i < Ho; ++i) memcpy(os + i * Wo, acc + i * S2, Wo * sizeof(float));
    act_inplace(os, Ho * Wo, act);
  }
  free(xb); free(y1); free(zb); free(acc);
  return 0;
}

/* Vanilla k x k depthwise (+bias, act) in the same style: the like-for-like reference. */
int dw_nchw(const float* x, float* out, long N, long C, long H, long W, const float* wt, const float* b,
               long k, long s, int act) {
  const long p = k / 2, S = W + 2 * p;
  const long Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  float* xb = calloc((size_t)(H + 2 * p + 1) * S + 8, sizeof(float));
  float* acc = calloc((size_t)(Ho + 1) * S + 8, sizeof(float));
  if (!xb || !acc) { free(xb); free(acc); return 1; }
  for (long nc = 0; nc < N * C; ++nc) {
    const long c = nc % C;
    const float* xs = x + nc * H * W;
    for (long i = 0; i < H; ++i) memcpy(xb + (i + p) * S + p, xs + i * W, W * sizeof(float));
    const float* w = wt + c * k * k;
    if (s == 1) {
      fill(acc, b[c], H * S);
      for (long a = 0; a < k; ++a)
        for (long t = 0; t < k; ++t) axpy(acc, xb + a * S + t, w[a * k + t], H * S);
    } else {
      for (long i = 0; i < Ho; ++i) {
        float* r = acc + i * S;
        fill(r, b[c], Wo);
        for (long a = 0; a < k; ++a)
          for (long t = 0; t < k; ++t) axpy_s2(r, xb + (2 * i + a) * S + t, w[a * k + t], Wo);
      }
    }
    float* os = out + nc * Ho * Wo;
    for (long i = 0; i < Ho; ++i) memcpy(os + i * Wo, acc + i * S, Wo * sizeof(float));
    act_inplace(os, Ho * Wo, act);
  }
  free(xb); free(acc);
  return 0;
}

typedef float v8 __attribute__((vector_size(32), aligned(4)));
#define LD(p) (*(const v8*)(p))
#define ST(p, v) (*(v8*)(p) = (v))

typedef int v8i __attribute__((vector_size(32), aligned(4)));
static inline v8 vmax0(v8 v) { const v8 z = {0}; return (v8)((v8i)v & (v > z)); }
static inline v8 vmin6(v8 v) { const v8 z = {0}, six = z + 6.f; v8i sel = v < six; return (v8)(((v8i)v & sel) | ((v8i)six & ~sel)); }
static inline v8 actv(v8 v, int act) {
  if (act == 1) return vmax0(v);
  if (act == 2) { const v8 z = {0}; v8 r = vmin6(vmax0(v + (z + 3.f))); return v * r * (1.f / 6.f); }
  return v;
}

static inline float acts(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) { float r = v + 3.f; r = r > 0.f ? r : 0.f; r = r < 6.f ? r : 6.f; return v * r * (1.f / 6.f); }
  return v;
}

/* ---- channels_last (NHWC): vectorised across channels, 8 lanes (GCC vector extensions) ----
   One depthwise pass, NHWC, channels in [c0, c1) (multiples of 8). w: tap-major (kh*kw, C). */
static void pass(const float* in, float* out, long H, long W, long C, long Ho, long Wo, const float* w,
                 const float* b, long kh, long kw, long sh, long sw, long pt, long pl, long c0, long c1, int act) {
  for (long io = 0; io < Ho; ++io) {
    const long r0 = io * sh - pt;
    const long a0 = r0 < 0 ? -r0 : 0, a1 = (H - r0) < kh ? (H - r0) : kh;
    for (long jo = 0; jo < Wo; ++jo) {
      const long q0 = jo * sw - pl;
      const long t0 = q0 < 0 ? -q0 : 0, t1 = (W - q0) < kw ? (W - q0) : kw;
      float* o = out + (io * Wo + jo) * C;
      long c = c0;
      for (; c + 8 <= c1; c += 8) {
        v8 acc = LD(b + c);
        for (long a = a0; a < a1; ++a) {
          const float* src = in + ((r0 + a) * W + q0) * C + c;
          const float* wt = w + a * kw * C + c;
          for (long t = t0; t < t1; ++t) acc += LD(wt + t * C) * LD(src + t * C);
        }
        ST(o + c, actv(acc, act));
      }
      for (; c < c1; ++c) {  /* channel tail */
        float acc = b[c];
        for (long a = a0; a < a1; ++a)
          for (long t = t0; t < t1; ++t) acc += w[(a * kw + t) * C + c] * in[((r0 + a) * W + q0 + t) * C + c];
        o[c] = acts(acc, act);
      }
    }
  }
}

/* XSepConv on NHWC images; weights tap-major (taps, C); pad: per channel (top, left) of the 2x2. */
int xsep_nhwc(const float* x, float* out, long N, long C, long H, long W,
                      const float* w2, const float* b2, const int* pad, const float* w1, const float* b1,
                      const float* wk, const float* bk, long k, long s, int act) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  float* y1 = w2 ? malloc((size_t)H * W * C * sizeof(float)) : NULL;
  float* y2 = malloc((size_t)H * Wo * C * sizeof(float));
  if ((w2 && !y1) || !y2) { free(y1); free(y2); return 1; }
  for (long n = 0; n < N; ++n) {
    const float* xn = x + n * H * W * C;
    const float* src = xn;
    if (w2) {
      long c0 = 0;
      while (c0 < C) {
        long c1 = c0 + 1;
        while (c1 < C && pad[2 * c1] == pad[2 * c0] && pad[2 * c1 + 1] == pad[2 * c0 + 1]) ++c1;
        pass(xn, y1, H, W, C, H, W, w2, b2, 2, 2, 1, 1, pad[2 * c0], pad[2 * c0 + 1], c0, c1, act);
        c0 = c1;
      }
      src = y1;
    }
    pass(src, y2, H, W, C, H, Wo, w1, b1, 1, k, 1, s, 0, p, 0, C, act);
    pass(y2, out + n * Ho * Wo * C, H, Wo, C, Ho, Wo, wk, bk, k, 1, s, 1, p, 0, 0, C, act);
  }
  free(y1); free(y2);
  return 0;
}

/* Vanilla k x k depthwise + bias + act on NHWC: the like-for-like reference. */
int dw_nhwc(const float* x, float* out, long N, long C, long H, long W, const float* w, const float* b,
                    long k, long s, int act) {
  const long p = k / 2, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  for (long n = 0; n < N; ++n)
    pass(x + n * H * W * C, out + n * Ho * Wo * C, H, W, C, Ho, Wo, w, b, k, k, s, s, p, p, 0, C, act);
  return 0;
}
"""

_LIB: ctypes.CDLL | None = None


def build_kernels() -> ctypes.CDLL | None:
    """Compile :data:`C_SOURCE` with the system C compiler (None if there is none or it fails)."""
    global _LIB
    if _LIB is not None:
        return _LIB
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="xsep_kernels_"))
    src, lib = tmp / "xsep.c", tmp / "libxsep.so"
    src.write_text(C_SOURCE)
    cmd = [cc, "-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    P, L = ctypes.c_void_p, ctypes.c_long
    _LIB = ctypes.CDLL(str(lib))
    for fmt in ("nchw", "nhwc"):
        getattr(_LIB, f"xsep_{fmt}").argtypes = [P, P, L, L, L, L, P, P, P, P, P, P, P, L, L, ctypes.c_int]
        getattr(_LIB, f"dw_{fmt}").argtypes = [P, P, L, L, L, L, P, P, L, L, ctypes.c_int]
    return _LIB


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p | None:
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _act_code(act: nn.Module) -> int:
    if isinstance(act, nn.ReLU):
        return 1
    if isinstance(act, nn.Hardswish):
        return 2
    if isinstance(act, nn.Identity):
        return 0
    raise ValueError(f"fused kernels support ReLU, Hardswish or identity activations, got {type(act).__name__}")


def _folded_conv(seq: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(weight (C, taps), bias, act code) of a folded [pad →] conv → Identity → act sequence."""
    if not isinstance(seq.bn, nn.Identity):
        raise ValueError("fuse after fold_bn: the BatchNorm is still there")
    conv = seq.conv
    act = seq.act if hasattr(seq, "act") else nn.Identity()
    return (conv.weight.detach().reshape(conv.out_channels, -1).contiguous(),
            conv.bias.detach().contiguous(), _act_code(act))


def _run(lib: ctypes.CDLL, name: str, x: torch.Tensor, stride: int, *args: object) -> torch.Tensor:
    """Call ``<name>_nhwc`` for channels_last inputs, ``<name>_nchw`` otherwise; same output format."""
    nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    x = x.float().contiguous(memory_format=fmt)
    n, c, h, w = x.shape
    out = torch.empty(n, c, (h - 1) // stride + 1, (w - 1) // stride + 1, memory_format=fmt)
    conv = [_ptr(a) if isinstance(a, torch.Tensor) or a is None else a for a in args]
    if getattr(lib, f"{name}_{'nhwc' if nhwc else 'nchw'}")(_ptr(x), _ptr(out), n, c, h, w, *conv):
        raise MemoryError(f"{name}: allocation failed")
    return out


class FusedXSepConv(nn.Module):
    """Inference-only XSepConv (``standard``/``no2x2``, BN folded) on the C kernels.

    channels_last inputs run the NHWC kernel (vectorised across channels), others the NCHW one
    (vectorised along flattened planes).
    """

    def __init__(self, m: XSepConv, lib: ctypes.CDLL) -> None:
        super().__init__()
        if m.variant not in ("standard", "no2x2"):
            raise ValueError(f"fused kernel implements the standard and no2x2 variants, got {m.variant!r}")
        self.lib, self.k, self.s, c = lib, m.kernel_size, m.stride, m.channels
        w1, self.b1, self.act = _folded_conv(m.conv_1xk)
        wk, self.bk, _ = _folded_conv(m.conv_kx1)
        w2 = self.b2 = None
        self.pad = torch.zeros(c, 2, dtype=torch.int32)
        if m.variant == "standard":
            w2, self.b2, _ = _folded_conv(m.conv_2x2)
            pad: EvenPad2d = m.conv_2x2.pad
            if pad.direction == "groups":
                dirs = [d for idx, d in zip(torch.tensor_split(torch.arange(c), 4), GROUP_DIRECTIONS)
                        for _ in range(len(idx))]
            else:
                dirs = [pad.direction] * c
            self.pad = torch.tensor([[int("top" in d), int("left" in d)] for d in dirs], dtype=torch.int32)
        # channel-major (C, taps) for NCHW planes, tap-major (taps, C) for NHWC vectors
        self.w = {"nchw": (w2, w1, wk), "nhwc": tuple(None if t is None else t.t().contiguous() for t in (w2, w1, wk))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        w2, w1, wk = self.w["nhwc" if nhwc else "nchw"]
        return _run(self.lib, "xsep", x, self.s, w2, self.b2, self.pad, w1, self.b1, wk, self.bk, self.k, self.s,
                    self.act)


class FusedDepthwise(nn.Module):
    """Inference-only k×k depthwise conv (+bias, act; BN folded) on the same-style C kernels."""

    def __init__(self, seq: nn.Sequential, lib: ctypes.CDLL) -> None:
        super().__init__()
        conv, bn, act = seq[0], seq[1], seq[2]
        if not isinstance(bn, nn.Identity):
            raise ValueError("fuse after fold_bn: the BatchNorm is still there")
        self.lib, self.k, self.s = lib, conv.kernel_size[0], conv.stride[0]
        w = conv.weight.detach().reshape(conv.out_channels, -1)
        self.w = {"nchw": w.contiguous(), "nhwc": w.t().contiguous()}
        self.b, self.act = conv.bias.detach().contiguous(), _act_code(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return _run(self.lib, "dw", x, self.s, self.w["nhwc" if nhwc else "nchw"], self.b, self.k, self.s, self.act)


def _is_depthwise(m: nn.Module) -> bool:
    return (isinstance(m, ConvBnAct) and isinstance(m[0], nn.Conv2d) and m[0].groups == m[0].in_channels
            == m[0].out_channels and m[0].kernel_size[0] > 1)


def fuse_for_cpu(folded: nn.Module, lib: ctypes.CDLL, xsep: bool = True, dw: bool = False) -> nn.Module:
    """Copy of a BN-folded model with XSepConv (and optionally k×k depthwise) modules on the C kernels."""
    def swap(m: nn.Module) -> nn.Module | None:
        if xsep and isinstance(m, XSepConv):
            return FusedXSepConv(m, lib)
        if dw and _is_depthwise(m):
            return FusedDepthwise(m, lib)
        return None

    model = copy.deepcopy(folded)
    root = swap(model)
    if root is not None:
        return root
    for name, m in list(model.named_modules()):
        new = swap(m)
        if new is not None:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, new)
    return model


class StencilXSepConv(nn.Module):
    """BN-folded standard XSepConv as shifted multiply-adds (for torch.compile to fuse into loops)."""

    def __init__(self, m: XSepConv) -> None:
        super().__init__()
        if m.variant != "standard" or m.stride != 1 or m.conv_2x2.pad.direction == "groups":
            raise ValueError("the stencil form covers the standard stride-1 XSepConv with a single pad direction")
        c, self.k = m.channels, m.kernel_size
        w2, b2, self.act = _folded_conv(m.conv_2x2)
        w1, b1, _ = _folded_conv(m.conv_1xk)
        wk, bk, _ = _folded_conv(m.conv_kx1)
        self.w2, self.w1, self.wk = (w.reshape(c, -1, 1, 1) for w in (w2, w1, wk))
        self.b2, self.b1, self.bk = (b.reshape(c, 1, 1) for b in (b2, b1, bk))
        d = m.conv_2x2.pad.direction
        self.pad2 = (int("left" in d), int("left" not in d), int("top" in d), int("top" not in d))

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.act == 1 else F.hardswish(x) if self.act == 2 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, p = x.shape[-2], x.shape[-1], self.k // 2
        xp = F.pad(x, self.pad2)
        y = (self.b2 + self.w2[:, 0] * xp[..., :h, :w] + self.w2[:, 1] * xp[..., :h, 1:]
             + self.w2[:, 2] * xp[..., 1:, :w] + self.w2[:, 3] * xp[..., 1:, 1:])
        yp = F.pad(self._act(y), (p, p, 0, 0))
        z = self.b1
        for t in range(self.k):
            z = z + self.w1[:, t] * yp[..., :, t:t + w]
        zp = F.pad(self._act(z), (0, 0, p, p))
        o = self.bk
        for t in range(self.k):
            o = o + self.wk[:, t] * zp[..., t:t + h, :]
        return self._act(o)


# ---------------------------------------------------------------------------------------------
def paired(fns: list[Callable[[], object]], repeats: int, inner: int) -> list[float]:
    """Best (minimum) ms per call of each function over ``repeats`` interleaved rounds.

    The minimum, not the median: on a shared machine other processes only ever add time, so
    the fastest round is the closest to the uncontended cost (as ``timeit`` recommends).
    Interleaving keeps slow drifts (thermal, load) from favouring one side.
    """
    for f in fns:
        for _ in range(2):
            f()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            samples[i].append((time.perf_counter() - t0) / inner * 1e3)
    return [min(s) for s in samples]


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            bn.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            bn.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        (out.float().square().mean() if out.dim() == 4 else F.cross_entropy(out, torch.zeros(
            out.shape[0], dtype=torch.long))).backward()
        opt.step()

    return step


def _compile(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, float]:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    t0 = time.perf_counter()
    compiled = torch.compile(model)
    with torch.inference_mode():
        compiled(x)
    return compiled, time.perf_counter() - t0


class Report:
    """Collects rows (label, xsep ms, dw ms, note) per section and prints Markdown tables."""

    def __init__(self) -> None:
        self.sections: dict[str, list[dict]] = {}

    def add(self, section: str, label: str, xsep: float, dw: float, note: str = "") -> None:
        row = dict(label=label, xsep_ms=xsep, dw_ms=dw, ratio=xsep / dw, note=note)
        self.sections.setdefault(section, []).append(row)
        print(f"  {label:<58} xsep {xsep:8.3f} ms  dw {dw:8.3f} ms  ratio {xsep / dw:5.2f}  {note}", flush=True)

    def markdown(self) -> str:
        out = []
        for section, rows in self.sections.items():
            out += [f"\n### {section}\n", "| configuration | XSep (ms) | DW (ms) | XSep/DW | note |",
                    "|---|---|---|---|---|"]
            out += [f"| {r['label']} | {r['xsep_ms']:.3f} | {r['dw_ms']:.3f} | **{r['ratio']:.2f}** | {r['note']} |"
                    for r in rows]
        return "\n".join(out)


def _inference_rows(rep: Report, section: str, xs: nn.Module, dw: nn.Module, x: torch.Tensor, args: argparse.Namespace,
                    lib: ctypes.CDLL | None, block: bool, xb: torch.Tensor) -> None:
    """Shared inference rows for a block pair or a model pair (both eval mode, BN random)."""
    r, inner = args.repeats, args.inner if block else 1
    fx, fd = fold_bn(xs, x), fold_bn(dw, x)
    best_dw: tuple[float, str, Callable[[], object]] = (float("inf"), "", lambda: None)

    def track(label: str, t: float, fn: Callable[[], object]) -> None:
        nonlocal best_dw
        if t < best_dw[0]:
            best_dw = (t, label, fn)

    with torch.inference_mode():
        torch.testing.assert_close(fx(x), xs(x), rtol=1e-4, atol=1e-4)
        a, b = paired([lambda: xs(xb), lambda: dw(xb)], r, inner)
        rep.add(section, "eager, BN unfolded (NCHW)", a, b)
        a, b = paired([lambda: fx(xb), lambda: fd(xb)], r, inner)
        rep.add(section, "eager, BN folded (NCHW)", a, b)
        track("eager folded NCHW", b, lambda: fd(xb))
        xcl = xb.contiguous(memory_format=torch.channels_last)
        fxc = copy.deepcopy(fx).to(memory_format=torch.channels_last)
        fdc = copy.deepcopy(fd).to(memory_format=torch.channels_last)
        a, b = paired([lambda: fxc(xcl), lambda: fdc(xcl)], r, inner)
        rep.add(section, "eager, BN folded, channels_last", a, b)
        track("eager folded channels_last", b, lambda: fdc(xcl))
        if args.compile and (block or args.compile_models):
            try:
                cx, sx = _compile(fx, xb)
                cd, sd = _compile(fd, xb)
                a, b = paired([lambda: cx(xb), lambda: cd(xb)], r, inner)
                rep.add(section, "torch.compile (inductor, freezing), BN folded", a, b,
                        f"compile {sx:.0f} s / {sd:.0f} s")
                track("torch.compile", b, lambda: cd(xb))
                if block:
                    st = StencilXSepConv(fx).eval()
                    torch.testing.assert_close(st(x), fx(x), rtol=1e-4, atol=1e-4)
                    cs, ss = _compile(st, xb)
                    a, b = paired([lambda: cs(xb), best_dw[2]], r, inner)
                    rep.add(section, "stencil form + torch.compile vs best PyTorch DW", a, b,
                            f"DW = {best_dw[1]}; compile {ss:.0f} s")
            except Exception as err:  # noqa: BLE001 - report, do not abort the benchmark
                print(f"  torch.compile unavailable: {type(err).__name__}: {err}")
        if lib is None:
            return
        for layout, xin, src_x, src_d in (("NCHW planes", xb, fx, fd), ("NHWC vectors", xcl, fxc, fdc)):
            fused = fuse_for_cpu(src_x, lib, xsep=True)
            torch.testing.assert_close(fused(xin), fx(xb), rtol=1e-4, atol=1e-4)
            a, b = paired([lambda: fused(xin), best_dw[2]], r, inner)
            rep.add(section, f"fused C XSep ({layout}) vs best PyTorch DW", a, b, f"DW = {best_dw[1]}")
            # like-for-like: every depthwise layer (blocks: the one layer) on the same-style C kernels
            fused_x = fuse_for_cpu(src_x, lib, xsep=True, dw=True)
            fused_d = fuse_for_cpu(src_d, lib, xsep=False, dw=True)
            torch.testing.assert_close(fused_x(xin), fx(xb), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(fused_d(xin), fd(xb), rtol=1e-4, atol=1e-4)
            a, b = paired([lambda: fused_x(xin), lambda: fused_d(xin)], r, inner)
            rep.add(section, f"C XSep vs same-style C DW kernel, {layout} (like-for-like)", a, b)


def bench_blocks(rep: Report, args: argparse.Namespace, lib: ctypes.CDLL | None) -> None:
    c, h = args.channels, args.size
    x = torch.randn(1, c, h, h)
    xt = torch.randn(args.train_batch, c, h, h)
    for k in args.kernels:
        section = f"Block 1×{c}×{h}×{h}, k = {k} (MAC ratio {xsepconv_cost_ratio(k):.2f})"
        print(f"\n{section}")
        torch.manual_seed(0)
        xs = XSepConv(c, k, act="relu")
        xs.conv_2x2.pad.index, xs.conv_2x2.pad.total = 1, 4  # as inside a network: one pad direction
        dw = ConvBnAct(c, c, k, groups=c, act="relu")
        a, b = paired([_train_step(xs, xt), _train_step(dw, xt)], args.repeats, 2)
        rep.add(section, f"training step (fwd+bwd+SGD, batch {args.train_batch}, BN train)", a, b)
        xs.eval(), dw.eval()
        _randomize_bn(xs), _randomize_bn(dw)
        _inference_rows(rep, section, xs, dw, x, args, lib, True, x)


def bench_models(rep: Report, args: argparse.Namespace, lib: ctypes.CDLL | None) -> None:
    for name, size, train_batch in args.models:
        torch.manual_seed(0)
        dw = leannets.create_model(name)
        xs = leannets.create_model(f"{name}_xsep")
        x = torch.randn(1, 3, size, size)
        xt = torch.randn(train_batch, 3, size, size)
        macs = (count_macs(xs.eval(), x), count_macs(dw.eval(), x))
        params = (count_params(xs)[0], count_params(dw)[0])
        section = (f"MobileNetV3-Small end to end: {name}_xsep vs {name}, 1×3×{size}×{size} "
                   f"(params {params[0]:,} / {params[1]:,}; MACs {macs[0] / 1e6:.2f}M / {macs[1] / 1e6:.2f}M "
                   f"= {macs[0] / macs[1]:.3f})")
        print(f"\n{section}")
        a, b = paired([_train_step(xs, xt), _train_step(dw, xt)], max(3, args.repeats // 4), 1)
        rep.add(section, f"training step (fwd+bwd+SGD, batch {train_batch}, BN train)", a, b)
        xs.eval(), dw.eval()
        _randomize_bn(xs), _randomize_bn(dw)
        _inference_rows(rep, section, xs, dw, x, args, lib, False, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="k = 5, 7 only, fewer repeats, CIFAR model only")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile rows")
    parser.add_argument("--compile-models", action="store_true",
                        help="also torch.compile the whole models (minutes of compile time each)")
    parser.add_argument("--no-fused", dest="fused", action="store_false", help="skip the C kernel rows")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the C kernels use one)")
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--inner", type=int, default=3, help="calls per timed round (blocks)")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch._dynamo.config.cache_size_limit = 64  # many compiled modules share one forward code object
    args.kernels = (5, 7) if args.quick else (3, 5, 7)
    args.models = [("mobilenetv3_small_cifar_050", 32, 32)]
    if not args.quick:
        args.models.append(("mobilenetv3_small_100", 224, 8))
    else:
        args.repeats = min(args.repeats, 15)
    lib = build_kernels() if args.fused else None
    if args.fused and lib is None:
        print("no working C compiler: fused-kernel rows skipped")
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {args.threads} thread(s), best of {args.repeats} interleaved rounds, "
          f"{os.cpu_count()} CPUs, load average {load0:.1f}")
    rep = Report()
    bench_blocks(rep, args, lib)
    bench_models(rep, args, lib)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(rep.markdown())
    print(f"\nLoad average {load0:.1f} at start, {load1:.1f} at end on {os.cpu_count()} CPUs "
          "(> CPUs: other processes competed; ratios are interleaved, absolute times are inflated).")
    if args.json:
        from leannets._io import atomic_write_json

        atomic_write_json(args.json, {"torch": torch.__version__, "threads": args.threads,
                                      "load_average": [load0, load1], "sections": rep.sections})


if __name__ == "__main__":
    main()
