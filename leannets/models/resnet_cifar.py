"""CIFAR-style ResNets (He et al. 2016, 6n+2 layers, widths 16/32/64) with a pluggable first conv,
as used by Bao et al. to compare standard conv, DSConv, MixConv and Depthwise Multiception.

Layout follows the Multiception authors' code: 3×3 stem (16) → BN → ReLU; three stages of n basic
blocks; in each block only the *first* conv comes from :func:`create_conv` (``conv_type``), the
second is a standard 3×3 conv → BN; projection shortcuts (1×1 conv → BN) where the shape changes;
global average pool → linear. Multi-kernel conv types use the kernel sets {3,5,7}, {3,5}, {3,3}
per stage by default. ``se_reduction`` adds a Squeeze-and-Excitation unit after the second BN
(SE-ResNet, ``senet.py``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from ..layers import SqueezeExcite, create_conv
from ..layers.multiception import stage_kernel_sizes
from ._base import Classifier
from ._registry import CIFAR_CFG, model_cfg, register_model

__all__ = ["CifarResNet", "BasicBlock", "BAO", "CONV_TYPES"]

BAO = ("Bao, Graeber & Wang, Depthwise Multiception Convolution for Reducing Network Parameters "
       "without Sacrificing Accuracy, ICARCV 2020")
CONV_TYPES = ("standard", "dsconv", "mixconv", "multiception")


class BasicBlock(nn.Module):
    """``conv_type`` conv (+BN) → ReLU → 3×3 conv → BN → [SE] → + shortcut → ReLU.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first conv and of the shortcut.
        conv_type: :func:`create_conv` type of the first conv.
        kernel_size: its kernel size(s).
        conv_kwargs: extra options for it (e.g. ``stride_in``).
        se_reduction: SE reduction ratio (0: no SE).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, conv_type: str = "standard",
                 kernel_size: int | Sequence[int] = 3, conv_kwargs: dict[str, Any] | None = None,
                 se_reduction: int = 0) -> None:
        super().__init__()
        self.conv1 = create_conv(conv_type, in_ch, out_ch, kernel_size, stride, **(conv_kwargs or {}))
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = create_conv("standard", out_ch, out_ch, 3, 1)
        self.se = SqueezeExcite(out_ch, rd_channels=max(1, out_ch // se_reduction), bias=False) \
            if se_reduction else nn.Identity()
        self.shortcut = create_conv("standard", in_ch, out_ch, 1, stride) \
            if stride != 1 or in_ch != out_ch else nn.Identity()
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.conv2(self.act1(self.conv1(x))))
        return self.act2(out + self.shortcut(x))


class CifarResNet(Classifier):
    """6n+2-layer CIFAR ResNet whose first conv per block is any :func:`create_conv` type.

    Args:
        depth: 6n+2 (20, 50, 56, ...).
        conv_type: ``standard`` | ``dsconv`` | ``mixconv`` | ``multiception`` (or any factory type).
        kernel_sizes: one kernel size (or list of sizes) per stage; ``None``: {3,5,7}, {3,5},
            {3,3} for multi-kernel types, 3 otherwise.
        conv_kwargs: options for the replaced convs (``stride_in``, ``pointwise_bias``, ``mid_act``).
        widths: channels of the three stages.
        stem_stride: 1 for 32×32 inputs (CIFAR, ImageNet32, and the authors' STL-10 runs).
        se_reduction: SE reduction ratio after the second BN of every block (0: plain ResNet).
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, depth: int = 20, conv_type: str = "standard",
                 kernel_sizes: Sequence[int | Sequence[int]] | None = None,
                 conv_kwargs: dict[str, Any] | None = None, widths: Sequence[int] = (16, 32, 64),
                 stem_stride: int = 1, se_reduction: int = 0, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 with n >= 1 (20, 32, 50, 56, ...), got {depth}")
        if len(widths) < 1 or any(w <= 0 for w in widths):
            raise ValueError(f"CifarResNet: widths must be positive channel counts, got {widths!r}")
        n = (depth - 2) // 6
        self.depth, self.conv_type = depth, conv_type
        self.in_chans, self.drop_rate = in_chans, drop_rate
        self.kernel_sizes = stage_kernel_sizes(conv_type, kernel_sizes, len(widths), "CifarResNet")
        self.stem = nn.Sequential(create_conv("standard", in_chans, widths[0], 3, stem_stride), nn.ReLU(inplace=True))
        stages, ch = [], widths[0]
        for i, (width, ks) in enumerate(zip(widths, self.kernel_sizes)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(ch, width, stride, conv_type, ks, conv_kwargs, se_reduction))
                ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = ch
        self.min_input_size = stem_stride * 2 ** (len(widths) - 1)
        self.reset_classifier(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the authors' code: Kaiming-normal (fan_in) convs, BN = identity; linear layers keep
        # PyTorch's default init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


R20_SOURCE = "Table 5 / Table 1, ResNet-20 (CIFAR-10: 272,474 std / 189,434 Multiception)"
R50_SOURCE = ("Table 5 / Tables 1-4, ResNet-50 (CIFAR-10: 758,554 std / 509,434 Multiception; "
              "num_classes=100 for CIFAR-100, 1000 for ImageNet32)")

#: declared preprocessing and layer names (``pretrained_cfg``)
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="stem.0.0", classifier="fc")


@register_model(paper=BAO, source=f"{R20_SOURCE} (standard)", tags=("multiception", "cifar", "standard"), cfg=_CIFAR)
def resnet20_standard(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n=3) with standard first convs."""
    return CifarResNet(20, **{"conv_type": "standard", **kwargs})

@register_model(paper=BAO, source=f"{R20_SOURCE} (dsconv)", tags=("multiception", "cifar", "dsconv"), cfg=_CIFAR)
def resnet20_dsconv(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n=3) with dsconv first convs."""
    return CifarResNet(20, **{"conv_type": "dsconv", **kwargs})

@register_model(paper=BAO, source=f"{R20_SOURCE} (mixconv)", tags=("multiception", "cifar", "mixconv"), cfg=_CIFAR)
def resnet20_mixconv(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n=3) with mixconv first convs."""
    return CifarResNet(20, **{"conv_type": "mixconv", **kwargs})

@register_model(paper=BAO, source=f"{R20_SOURCE} (multiception)", tags=("multiception", "cifar", "multiception"),
                cfg=_CIFAR)
def resnet20_multiception(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-20 (n=3) with multiception first convs."""
    return CifarResNet(20, **{"conv_type": "multiception", **kwargs})

@register_model(paper=BAO, source=f"{R50_SOURCE} (standard)", tags=("multiception", "cifar", "standard"), cfg=_CIFAR)
def resnet50_cifar_standard(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-50 (6n+2, n=8, basic blocks) with standard first convs."""
    return CifarResNet(50, **{"conv_type": "standard", **kwargs})

@register_model(paper=BAO, source=f"{R50_SOURCE} (dsconv)", tags=("multiception", "cifar", "dsconv"), cfg=_CIFAR)
def resnet50_cifar_dsconv(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-50 (6n+2, n=8, basic blocks) with dsconv first convs."""
    return CifarResNet(50, **{"conv_type": "dsconv", **kwargs})

@register_model(paper=BAO, source=f"{R50_SOURCE} (mixconv)", tags=("multiception", "cifar", "mixconv"), cfg=_CIFAR)
def resnet50_cifar_mixconv(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-50 (6n+2, n=8, basic blocks) with mixconv first convs."""
    return CifarResNet(50, **{"conv_type": "mixconv", **kwargs})

@register_model(paper=BAO, source=f"{R50_SOURCE} (multiception)", tags=("multiception", "cifar", "multiception"),
                cfg=_CIFAR)
def resnet50_cifar_multiception(**kwargs: Any) -> CifarResNet:
    """CIFAR ResNet-50 (6n+2, n=8, basic blocks) with multiception first convs."""
    return CifarResNet(50, **{"conv_type": "multiception", **kwargs})
