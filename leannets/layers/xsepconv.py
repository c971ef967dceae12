"""XSepConv: extremely separated depthwise convolution (Chen et al. 2020).

A k×k depthwise conv is replaced by a 2×2 depthwise conv (with even-kernel padding, see
:mod:`leannets.layers.padding`) followed by the spatially separated pair 1×k → k×1, each
followed by BN and the activation (Fig. 1a). MACs and weights drop from k² to 4 + 2k per
channel and pixel ((4 + 2k)/k²: 0.56 at k = 5). The downsampling form (Fig. 1b) keeps the
2×2 at full resolution and halves width, then height: 1×k stride (1, 2) → k×1 stride (2, 1),
costing (4 + k/2 + k/4)/(k²/4) of a stride-2 k×k depthwise conv (< 1 only for k ≥ 7).

Variants (Fig. 6): ``standard`` (a), ``no2x2`` (b), ``behind`` (c: 2×2 after the pair),
``parallel`` (d: 2×2 beside the pair). For ``parallel`` the paper's figure was lost in the
text extraction; we sum the two BN outputs and apply one activation (same params and MACs).

The conv factory type ``xsepconv`` is XSepConv (depthwise) → 1×1 pointwise → BN.

Inference on CPU (eval mode, no autograd, float32, variants ``standard``/``no2x2``, ReLU /
hard-swish / no activation) runs the whole block as one ``leannets::xsep_block`` op
(:mod:`leannets.layers.ops`), with BN folded once per module state (or by
:func:`~leannets.analysis.fold_bn`); ``torch.compile``/``torch.export`` trace the same op. Everything
else takes the PyTorch modules below, which the tests use as the oracle (:mod:`leannets.layers.dispatch`).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import torch
import torch.nn as nn

from . import dispatch, kernels, ops
from .create_act import create_act
from .create_conv import register_conv_type, single_kernel
from .depthwise import conv2d
from .padding import GROUP_DIRECTIONS, PADDING_STRATEGIES, EvenPad2d, _pad_tuple

__all__ = ["XSEP_VARIANTS", "XSepConv", "DWConvBnAct", "xsepconv_cost_ratio", "xsepconv_downsample_cost_ratio"]

XSEP_VARIANTS = ("standard", "no2x2", "behind", "parallel")


def xsepconv_cost_ratio(k: int) -> float:
    """Paper Sec. 3.1: MACs (and weights) of XSepConv / k×k depthwise = (4 + 2k)/k²."""
    return (4 + 2 * k) / k**2


def xsepconv_downsample_cost_ratio(k: int) -> float:
    """Paper Sec. 3.1: (4hwc + khwc/2 + khwc/4)/(k²hwc/4) for the stride-2 form."""
    return (4 + k / 2 + k / 4) / (k**2 / 4)


class DWConvBnAct(nn.Sequential):
    """[EvenPad2d] → depthwise Conv2d (no bias) → BN → [act]; the pad comes first so that the
    conv output feeds the BN directly (exact BN folding)."""

    def __init__(self, channels: int, kernel_size: tuple[int, int], stride: tuple[int, int] = (1, 1),
                 act: str | None = "relu", pad_strategy: str | None = None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if pad_strategy is not None:
            layers["pad"] = EvenPad2d(kernel_size, stride, pad_strategy)
            padding: tuple[int, int] = (0, 0)
        else:
            padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        layers["conv"] = conv2d(channels, channels, kernel_size, stride, padding, groups=channels, bias=False)
        layers["bn"] = nn.BatchNorm2d(channels)
        if act is not None:
            layers["act"] = create_act(act, channels)
        super().__init__(layers)


class XSepConv(nn.Module):
    """Extremely separated depthwise conv: ``channels`` → ``channels``, ends with the activation.

    Args:
        channels: input = output channels (depthwise).
        kernel_size: k of the 1×k / k×1 pair (odd, ≥ 3).
        stride: 1, or 2 for the downsampling form (1×k stride (1,2) → k×1 stride (2,1)).
        variant: ``standard`` | ``no2x2`` | ``behind`` | ``parallel`` (paper Fig. 6a–d).
        padding: even-kernel padding of the 2×2 layer: ``asymmetric`` | ``symmetric`` | ``improved``.
        act: activation after every BN (``relu`` or ``hswish`` in MobileNetV3).
    """

    def __init__(self, channels: int, kernel_size: int = 5, stride: int = 1, variant: str = "standard",
                 padding: str = "improved", act: str | None = "relu") -> None:
        super().__init__()
        if channels <= 0:
            raise ValueError(f"XSepConv: channels must be positive, got {channels}")
        if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"XSepConv: kernel_size must be an odd int >= 3, got {kernel_size!r}")
        if stride not in (1, 2):
            raise ValueError(f"XSepConv: stride must be 1 or 2, got {stride!r}")
        if variant not in XSEP_VARIANTS:
            raise ValueError(f"XSepConv: variant must be one of {XSEP_VARIANTS}, got {variant!r}")
        if padding not in PADDING_STRATEGIES:
            raise ValueError(f"XSepConv: padding must be one of {PADDING_STRATEGIES}, got {padding!r}")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.variant, self.padding = variant, padding
        k, s = kernel_size, stride
        inner_act = None if variant == "parallel" else act
        if variant != "no2x2":
            # parallel: the 2×2 branch must downsample itself; otherwise the 2×2 runs at stride 1
            # (full resolution before the pair, or the already reduced one behind it).
            s2 = (s, s) if variant == "parallel" else (1, 1)
            self.conv_2x2 = DWConvBnAct(channels, (2, 2), s2, inner_act, pad_strategy=padding)
        self.conv_1xk = DWConvBnAct(channels, (1, k), (1, s), act)
        self.conv_kx1 = DWConvBnAct(channels, (k, 1), (s, 1), inner_act)
        self.act = create_act(act, channels) if variant == "parallel" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = dispatch.xsep_weights(self, x)
        if weights is not None:
            return ops.xsep_block(x, weights, self.kernel_size, self.stride)
        return self.forward_reference(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The PyTorch path: each layer as its own module (training, autograd, export, oracle)."""
        if self.variant == "standard":
            return self.conv_kx1(self.conv_1xk(self.conv_2x2(x)))
        if self.variant == "no2x2":
            return self.conv_kx1(self.conv_1xk(x))
        if self.variant == "behind":
            return self.conv_2x2(self.conv_kx1(self.conv_1xk(x)))
        return self.act(self.conv_2x2(x) + self.conv_kx1(self.conv_1xk(x)))

    def kernel_modules(self) -> list[nn.Module]:
        """The modules whose state the folded kernel weights are computed from."""
        stages = [self._modules.get("conv_2x2"), self.conv_1xk, self.conv_kx1]
        return [self, *(m for st in stages if st is not None for m in (st, st.conv, st.bn))]

    def _pad_2x2(self) -> torch.Tensor:
        """(C, 2) int32 (top, left) zeros the 2×2 layer's padding puts before each channel."""
        pad = self.conv_2x2.pad
        direction = pad.direction
        dirs = [direction] * self.channels
        if direction == "groups":
            groups = torch.tensor_split(torch.arange(self.channels), 4)
            dirs = [GROUP_DIRECTIONS[g] for g, idx in enumerate(groups) for _ in idx]
        rows = []
        for d in dirs:
            left, _, top, _ = _pad_tuple(d, (0, 1), (0, 1))
            rows.append((top, left))
        return torch.tensor(rows, dtype=torch.int32)

    def kernel_weights(self) -> dict[str, Any] | None:
        """BN-folded weights in the C kernels' layouts; ``None`` if a layer is not foldable there."""
        stages = {"2": getattr(self, "conv_2x2", None), "1": self.conv_1xk, "k": self.conv_kx1}
        out: dict[str, Any] = {"w2": None, "w2_t": None, "b2": None, "pad2": None}
        acts = set()
        for key, stage in stages.items():
            if stage is None:
                continue
            folded = _fold_stage(stage)
            if folded is None:
                return None
            w, b, act = folded
            acts.add(act)
            out[f"w{key}"], out[f"w{key}_t"], out[f"b{key}"] = w, w.t().contiguous(), b
        if len(acts) != 1 or None in acts:
            return None
        if "conv_2x2" in self._modules:
            out["pad2"] = self._pad_2x2()
        out["act"] = acts.pop()
        return out

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"variant={self.variant!r}, padding={self.padding!r}")


def _fold_stage(stage: DWConvBnAct) -> tuple[torch.Tensor, torch.Tensor, int | None] | None:
    """((C, taps) weight, (C,) bias, activation code) of one layer with its BN folded in."""
    conv = stage.conv
    w = conv.weight.detach().reshape(conv.out_channels, -1).float()
    b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels)
    affine = kernels.bn_scale_shift(stage.bn)
    if affine is None:  # a BN in training mode (or without running statistics), or another module
        return None
    scale, shift = affine
    if scale is not None:
        scale, shift = scale.detach().float(), shift.detach().float()
        w, b = w * scale[:, None], b * scale + shift
    act = stage.act if "act" in stage._modules else None
    return w.contiguous(), b.contiguous(), kernels.act_code(act)


def _stride_int(stride: int | Sequence[int]) -> int:
    if isinstance(stride, int):
        return stride
    values = set(int(s) for s in stride)
    if len(values) != 1:
        raise ValueError(f"xsepconv: stride must be equal in both axes, got {stride!r}")
    return values.pop()


@register_conv_type("xsepconv")
def _xsepconv(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int | Sequence[int],
              variant: str = "standard", padding: str = "improved", act: str | None = "relu",
              **kwargs: Any) -> nn.Module:
    """XSepConv depthwise (with its activations) → 1×1 pointwise → BN."""
    if kwargs:
        raise ValueError(f"conv_type 'xsepconv' got unknown options {sorted(kwargs)}; "
                         "allowed: variant, padding, act")
    k = single_kernel("xsepconv", kernel_size)
    return nn.Sequential(
        XSepConv(in_ch, k, _stride_int(stride), variant=variant, padding=padding, act=act),
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.BatchNorm2d(out_ch),
    )
