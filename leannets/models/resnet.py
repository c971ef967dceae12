"""ImageNet-style ResNet with bottleneck blocks (He et al., CVPR 2016), e.g. ResNet-50.

Two layouts (``version=``): ``"1.5"`` (torchvision/timm, the default of ``resnet50``: the stride
of a downsampling bottleneck sits on its 3×3 conv) and ``"1"`` (He et al.'s original and the 2015
Caffe model: the stride sits on the first 1×1 conv; ``resnet50_v1``, 3.86 instead of 4.09 GMACs,
the same parameters). Convs from :func:`create_conv` (conv → BN). ``width_div`` divides every
channel count (the WAE fusion sub-network is ResNet-50 with all widths ÷ 4). CIFAR-style ResNets
live in ``resnet_cifar.py``.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from ..layers import create_conv
from ._base import Classifier
from ._registry import IMAGENET_CFG, model_cfg, register_model
from ._weights import CheckpointAdapter

__all__ = ["ResNet", "Bottleneck", "VERSIONS"]

VERSIONS = ("1", "1.5")

HE = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 → 1×1 expand (×4), residual add, ReLU; the stride on the 3×3 (v1.5) or the first 1×1 (v1)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, conv_type: str = "standard",
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = create_conv("standard", in_ch, width, 1, stride if stride_in_1x1 else 1)
        self.conv2 = create_conv(conv_type, width, width, 3, 1 if stride_in_1x1 else stride)
        self.conv3 = create_conv("standard", width, out_ch, 1, 1)
        self.act = nn.ReLU(inplace=True)
        self.downsample = create_conv("standard", in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else None
        nn.init.zeros_(self.conv3[-1].weight)  # zero-init the last BN so each block starts as identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.act(self.conv3(x) + shortcut)


class ResNet(Classifier):
    """Bottleneck ResNet with the ImageNet stem (7×7/2 conv, 3×3/2 max-pool).

    Args:
        layers: blocks per stage, (3, 4, 6, 3) for ResNet-50.
        num_classes: classifier outputs (0: identity head).
        in_chans: input channels.
        width_div: divide every channel count by this.
        base_width: stem / first-stage width (64).
        conv_type: :func:`create_conv` type of the 3×3 convs.
        drop_rate: dropout before the classifier.
        version: ``"1.5"`` (stride on the 3×3 conv) or ``"1"`` (stride on the first 1×1 conv).
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), num_classes: int = 1000, in_chans: int = 3,
                 width_div: int = 1, base_width: int = 64, conv_type: str = "standard",
                 drop_rate: float = 0.0, version: str = "1.5") -> None:
        super().__init__()
        if width_div <= 0 or base_width % width_div:
            raise ValueError(f"ResNet: width_div must divide base_width={base_width}, got {width_div}")
        if str(version) not in VERSIONS:
            raise ValueError(f"ResNet: unknown version {version!r}; allowed: {', '.join(VERSIONS)}")
        self.version = str(version)
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        w = base_width // width_div
        self.stem = nn.Sequential(create_conv("standard", in_chans, w, 7, 2), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages: list[nn.Module] = []
        ch = w
        for i, n in enumerate(layers):
            width = w * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(ch, width, 2 if (j == 0 and i > 0) else 1, conv_type,
                                         stride_in_1x1=self.version == "1"))
                ch = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_chs = self.num_features = ch
        self.min_input_size = 2 ** (len(layers) + 1)
        self.reset_classifier(num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


#: declared preprocessing and layer names (``pretrained_cfg``)
_IMAGENET = model_cfg(**IMAGENET_CFG, first_conv="stem.0.0", classifier="fc")


@register_model(paper=HE, source="Table 1 (50-layer); WAE paper Table 5 baseline", input_size=(3, 224, 224),
                num_classes=1000, tags=("resnet", "imagenet"), cfg=_IMAGENET)
def resnet50(**kwargs) -> ResNet:
    """ResNet-50: 25,557,032 parameters, 4.09 GMACs at 224×224 (1000 classes)."""
    return ResNet((3, 4, 6, 3), **{"num_classes": 1000, **kwargs})


@register_model(paper=HE, source="Table 1 (50-layer), the original layout of the 2015 Caffe model; WAE paper Table 5",
                input_size=(3, 224, 224), num_classes=1000, tags=("resnet", "imagenet"),
                notes="ResNet v1: the stride of each downsampling bottleneck sits on its first 1×1 conv.",
                cfg=_IMAGENET)
def resnet50_v1(**kwargs) -> ResNet:
    """ResNet-50 v1: 25,557,032 parameters, 3.86 GMACs at 224×224 (1000 classes)."""
    return ResNet((3, 4, 6, 3), **{"num_classes": 1000, "version": "1", **kwargs})


# -- published checkpoint layouts (create_model(..., pretrained=PATH)) -------------------------------------------
def _torchvision_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^conv1\.", "stem.0.0.", key)
    key = re.sub(r"^bn1\.", "stem.0.1.", key)
    key = re.sub(r"^layer(\d+)\.(\d+)\.conv(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.{m.group(2)}.conv{m.group(3)}.0.", key)
    key = re.sub(r"^layer(\d+)\.(\d+)\.bn(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.{m.group(2)}.conv{m.group(3)}.1.", key)
    return re.sub(r"^layer(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.", key)


CHECKPOINT_ADAPTERS = (CheckpointAdapter("torchvision/timm ResNet", "layer1.0.conv1.weight", _torchvision_keys),)
