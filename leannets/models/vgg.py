"""VGG (Simonyan & Zisserman, ICLR 2015) and a small CIFAR-size VGG.

Conv layers, as torchvision names them:

- ``vgg16``: the VGG16 everyone means — 3×3 convs with bias, ReLU, no BatchNorm; 138,357,544
  parameters with the 4096-4096 head (torchvision's ``vgg16``).
- ``vgg16_bn``: conv (with bias) → BN → ReLU; 138,365,992 parameters (torchvision's ``vgg16_bn``).
- ``conv_bias=False`` drops the conv bias in front of a BN (it is redundant there; the small CIFAR
  VGG does this), and any other ``conv_type`` is built by :func:`create_conv` (conv → BN).

``ceil_mode=True`` rounds the max-pools up as Caffe does (the WAE authors' deploy net: 112² input
→ a 4×4 last map, 8,192 fc6 inputs; PyTorch's floor mode gives 3×3).

Head: adaptive average pool to ``pool_size × pool_size`` (identity at the native size, e.g.
7 for 224 inputs), flatten, ``fc_widths`` hidden layers (ReLU + dropout) and the classifier
``fc``. ``pool_size=1`` with ``fc_widths=()`` gives a global-average-pool head.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from ..layers import create_conv
from ._base import Classifier, init_weights
from ._registry import CIFAR_CFG, IMAGENET_CFG, model_cfg, register_model
from ._weights import CheckpointAdapter

__all__ = ["VGG", "VGG_CFGS", "MlpHead"]

SIMONYAN = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"
CHEN_WAE = "Chen et al., Learning a Wavelet-like Auto-Encoder to Accelerate Deep Neural Networks, AAAI 2018"

VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
    # Small CIFAR backbone for CPU-scale WAE experiments (32×32 → 4×4; 16×16 → 2×2).
    "cifar_small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
}


class MlpHead(nn.Module):
    """Adaptive pool → flatten → [Linear → ReLU → Dropout] per hidden width (pre-logits)."""

    def __init__(self, in_chs: int, pool_size: int = 1, hidden: Sequence[int] = (), drop_rate: float = 0.0) -> None:
        super().__init__()
        if pool_size <= 0 or any(h <= 0 for h in hidden):
            raise ValueError(f"MlpHead: pool_size and hidden widths must be positive, got {pool_size}, {hidden}")
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        layers: list[nn.Module] = []
        width = in_chs * pool_size * pool_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if drop_rate > 0:
                layers.append(nn.Dropout(drop_rate))
            width = h
        self.mlp = nn.Sequential(*layers)
        self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.flatten(self.pool(x), 1))


def _conv_layers(conv_type: str, in_ch: int, out_ch: int, batch_norm: bool, bias: bool) -> list[nn.Module]:
    """One 3×3 conv of a VGG: conv (+ BN), without the activation."""
    if conv_type != "standard":
        return [create_conv(conv_type, in_ch, out_ch, 3, 1)]
    if batch_norm and not bias:
        return [create_conv("standard", in_ch, out_ch, 3, 1)]
    return [nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias)] + ([nn.BatchNorm2d(out_ch)] if batch_norm else [])


class VGG(Classifier):
    """VGG with an MLP head.

    Args:
        cfg: a name in ``VGG_CFGS`` or a list of conv widths with ``"M"`` for 2×2 max-pools.
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pre-logits).
        in_chans: input channels.
        width_div: divide every conv width by this (the WAE fusion net uses 4).
        fc_widths: hidden fc widths (4096, 4096 in VGG16; 1024, 1024 in the authors' WAE net).
        pool_size: spatial size the last feature map is pooled to before the fcs.
        drop_rate: dropout after each hidden fc.
        conv_type: any :func:`create_conv` type; every type but ``standard`` ends with BatchNorm itself.
        batch_norm: conv → BN → ReLU (``vgg16_bn``) instead of conv → ReLU (the original VGG).
        conv_bias: give the ``standard`` convs a bias (torchvision's VGGs do, with or without BN).
        ceil_mode: round the max-pool output sizes up (Caffe) instead of down.
    """

    def __init__(self, cfg: str | Sequence[int | str] = "vgg16", num_classes: int = 1000, in_chans: int = 3,
                 width_div: int = 1, fc_widths: Sequence[int] = (4096, 4096), pool_size: int = 7,
                 drop_rate: float = 0.5, conv_type: str = "standard", batch_norm: bool = False,
                 conv_bias: bool = True, ceil_mode: bool = False) -> None:
        super().__init__()
        if isinstance(cfg, str):
            if cfg not in VGG_CFGS:
                raise ValueError(f"VGG: unknown cfg {cfg!r}; allowed: {', '.join(VGG_CFGS)}")
            cfg = VGG_CFGS[cfg]
        if width_div <= 0:
            raise ValueError(f"VGG: width_div must be positive, got {width_div}")
        self.in_chans = in_chans
        layers: list[nn.Module] = []
        ch, pools = in_chans, 0
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
                pools += 1
                continue
            out = max(1, int(v) // width_div)
            layers += [*_conv_layers(conv_type, ch, out, batch_norm, conv_bias), nn.ReLU(inplace=True)]
            ch = out
        self.features = nn.Sequential(*layers)
        self.feature_chs = ch
        self.min_input_size = 2 ** pools
        self.pre_logits = MlpHead(ch, pool_size, fc_widths, drop_rate)
        self.num_features = ch  # what forward_features returns (timm's meaning)
        self.reset_classifier(num_classes)
        init_weights(self)

    @property
    def head_hidden_size(self) -> int:
        """The pre-logits width (the MLP head's output), as timm."""
        return self.pre_logits.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.fc(x)


#: declared preprocessing and layer names (``pretrained_cfg``); the small VGG's convs carry a BN (``features.0.0``)
_IMAGENET = model_cfg(**IMAGENET_CFG, first_conv="features.0", classifier="fc")
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="features.0.0", classifier="fc")


@register_model(paper=SIMONYAN, source="Table 1 config D (VGG16); WAE paper Table 1 baseline (15.36 GMACs at 224)",
                input_size=(3, 224, 224), num_classes=1000, tags=("vgg", "imagenet"),
                notes="The original VGG16 (torchvision's vgg16): biased convs, no BatchNorm; fc 4096-4096.",
                cfg=_IMAGENET)
def vgg16(**kwargs) -> VGG:
    """VGG16 (13 biased convs, no BN, fc 4096-4096): 138,357,544 parameters, 15.35 GMACs of convs at 224×224."""
    return VGG("vgg16", **{"num_classes": 1000, **kwargs})


@register_model(paper=SIMONYAN, source="VGG16 with BatchNorm after each conv (torchvision's vgg16_bn)",
                input_size=(3, 224, 224), num_classes=1000, tags=("vgg", "imagenet"),
                notes="conv (bias) → BN → ReLU; the BNs fold away at inference; fc 4096-4096.", cfg=_IMAGENET)
def vgg16_bn(**kwargs) -> VGG:
    """VGG16 with BatchNorm: 138,365,992 parameters; the same MACs as ``vgg16`` once BN is folded."""
    return VGG("vgg16", **{"num_classes": 1000, "batch_norm": True, **kwargs})


@register_model(paper=CHEN_WAE, source="CPU-scale backbone for the WAE experiments (not in the paper)",
                input_size=(3, 32, 32), num_classes=10, tags=("vgg", "cifar", "small"),
                notes="6 convs (32-32-M-64-64-M-128-128-M) + BN, global-average-pool head.", cfg=_CIFAR)
def vgg_cifar_small(**kwargs) -> VGG:
    """Small VGG for 32×32 images: the full-resolution baseline of the CPU WAE experiments."""
    kwargs = {"num_classes": 10, "fc_widths": (), "pool_size": 1, "drop_rate": 0.0, "batch_norm": True,
              "conv_bias": False, **kwargs}
    return VGG("cifar_small", **kwargs)


# -- published checkpoint layouts (create_model(..., pretrained=PATH)) -------------------------------------------
def _torchvision_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    for theirs, ours in (("classifier.0.", "pre_logits.mlp.0."), ("classifier.3.", "pre_logits.mlp.3."),
                         ("classifier.6.", "fc."), ("pre_logits.fc1.", "pre_logits.mlp.0."),
                         ("pre_logits.fc2.", "pre_logits.mlp.3."), ("head.fc.", "fc.")):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return key


CHECKPOINT_ADAPTERS = (CheckpointAdapter("torchvision VGG", "classifier.6.weight", _torchvision_keys),
                       CheckpointAdapter("timm VGG", "pre_logits.fc1.weight", _torchvision_keys))
