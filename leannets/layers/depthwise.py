"""``DepthwiseConv2d``: an ``nn.Conv2d`` with one filter per channel whose backward runs on the C kernels.

Every depthwise convolution of the library (XSepConv and MobileNet depthwise layers, the xUnit's
9×9 gate, the Multiception / MixConv / DSConv branches) is built by :func:`conv2d`, which returns
this class for ``groups == in_channels == out_channels``. It is a plain ``nn.Conv2d`` (same
parameters, state-dict keys, BN folding and export); only a training call that
:func:`~leannets.layers.dispatch.depthwise_op_applies` to takes the ``leannets::depthwise_conv2d`` op
(C backward; bf16 data on the C forward too). float32 forward results are PyTorch's own; gradients equal
PyTorch's to float32 rounding, bf16 ones to bf16 rounding (tests/layers/test_kernels.py).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from . import dispatch, ops

__all__ = ["DepthwiseConv2d", "conv2d"]


class DepthwiseConv2d(nn.Conv2d):
    """Depthwise ``nn.Conv2d`` (``groups = channels``).

    ``forward(x, stride=None, fast=True)``: ``stride`` overrides the module's for this call; ``fast=False``
    forces PyTorch's own backward (reference paths).
    """

    def forward(self, x: torch.Tensor, stride: int | Sequence[int] | None = None, fast: bool = True) -> torch.Tensor:
        s = self.stride if stride is None else _pair(stride)
        if fast and dispatch.depthwise_op_applies(x, self):
            return ops.depthwise_conv2d(x, self.weight, self.bias, s, self.padding)
        if s == self.stride:
            return super().forward(x)
        return F.conv2d(x, self.weight, self.bias, s, self.padding, self.dilation, self.groups)


def conv2d(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    """``nn.Conv2d`` with these arguments, as a :class:`DepthwiseConv2d` when it is depthwise."""
    cls = DepthwiseConv2d if groups == in_ch == out_ch else nn.Conv2d
    return cls(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=bias)
