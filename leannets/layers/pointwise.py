"""``PointwiseConv2d``: a 1×1 convolution that can run inference as one matrix product over the pixels.

At batch 1 on small images, oneDNN's 1×1 convolution costs up to several times a plain matrix product of the
same size (it reorders its weights on every call): ResNet-50's 2048→512 convs at 7×7 and 4×4, MobileNetV3's
projection convs at 14×14 and 7×7. On a channels_last input the pixels of an image are the rows of a
(H·W, C_in) matrix, so ``F.linear`` computes the conv with no copy, and its output is channels_last again.

:func:`leannets.prepare_for_inference` times both on each plain 1×1 conv's own input and turns the convs
where the matrix product is faster into this class (``gemm = True``), and switches ``gemm`` on in the layers that
end with a folded 1×1 conv (``gemm_switch``: the folded inference of Multiception, MixConv and DSConv) where that is
faster, and keeps the switches when the whole model is then measurably faster; nothing else changes (same parameters,
state-dict keys and results up to float rounding). Training, other layouts and devices, and any graph capture
(:func:`~leannets.layers.dispatch.capturing`: MAC counts, BN folding, jit/fx tracing) take the convolution.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import dispatch

__all__ = ["PointwiseConv2d", "pointwise_candidate", "pointwise", "gemm_tunable"]


def pointwise_candidate(module: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` that is a matrix product per pixel: 1×1, stride 1, no padding, one group."""
    return (type(module) is nn.Conv2d and module.kernel_size == (1, 1) and module.stride == (1, 1)
            and module.padding == (0, 0) and module.dilation == (1, 1) and module.groups == 1)


def gemm_tunable(module: nn.Module) -> bool:
    """What :func:`~leannets.analysis.latency.tune_pointwise` times: a plain 1×1 conv, or a layer whose inference
    ends with a 1×1 conv and that says so with ``gemm_switch`` (Multiception, MixConv, DSConv)."""
    return pointwise_candidate(module) or bool(getattr(module, "gemm_switch", False))


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gemm: bool) -> torch.Tensor:
    """A 1×1, stride-1 convolution: one ``F.linear`` over the pixels when ``gemm`` and ``x`` is a 4-D channels_last
    CPU tensor outside any graph capture, else ``F.conv2d``."""
    if (gemm and x.dim() == 4 and x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
            and not dispatch.capturing()):
        w = weight.view(weight.shape[0], weight.shape[1])
        return F.linear(x.permute(0, 2, 3, 1), w, bias).permute(0, 3, 1, 2)
    return F.conv2d(x, weight, bias)


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (1×1) whose inference on a channels_last CPU input runs as ``F.linear`` when ``gemm``."""

    gemm: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gemm and not self.training:
            return pointwise(x, self.weight, self.bias, True)
        return super().forward(x)
