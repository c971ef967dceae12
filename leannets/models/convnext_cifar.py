"""A small ConvNeXt-style CIFAR net (Liu et al. 2022 block design): the worked example of ``leannets.convert``.

Patchify stem (2×2, stride 2) → three stages of blocks ``7×7 depthwise → LayerNorm → 1×1 (4×) → GELU → 1×1 →
layer scale → + skip`` with LayerNorm + 2×2 stride-2 downsampling between stages → global average pool →
LayerNorm → linear. ``convnext_cifar_atto_xsep`` is the same net after
``leannets.convert(..., conv="xsepconv", xsep_act="gelu")``: every 7×7 depthwise conv becomes 2×2 → 1×7 → 7×1.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from ._base import Classifier
from ._registry import CIFAR_CFG, model_cfg, register_model
from .convert import convert_model

__all__ = ["ConvNeXtCifar", "ConvNeXtBlock", "LIU"]

LIU = "Liu, Mao, Wu, Feichtenhofer, Darrell & Xie, A ConvNet for the 2020s, CVPR 2022"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """7×7 depthwise → LayerNorm (channels last) → Linear(4×) → GELU → Linear → layer scale, + skip."""

    def __init__(self, dim: int, kernel_size: int = 7, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv_dw(x).permute(0, 2, 3, 1))
        y = self.fc2(self.act(self.fc1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtCifar(Classifier):
    """ConvNeXt-style classifier for 32×32 inputs (total stride 8).

    Args:
        depths: blocks per stage.
        dims: channels per stage.
        num_classes: classes (0: no classifier).
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, depths: Sequence[int] = (2, 2, 2), dims: Sequence[int] = (32, 64, 128), num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.in_chans, self.drop_rate = in_chans, drop_rate
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 2, 2), LayerNorm2d(dims[0]))
        stages, prev = [], dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down = [] if i == 0 else [LayerNorm2d(prev), nn.Conv2d(prev, dim, 2, 2)]
            stages.append(nn.Sequential(*down, *(ConvNeXtBlock(dim) for _ in range(depth))))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(prev)
        self.num_features = prev
        self.min_input_size = 2 ** len(dims)
        self.reset_classifier(num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.norm(x.mean((2, 3)))
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)


_CFG = model_cfg(**CIFAR_CFG, first_conv="stem.0", classifier="fc")
_NOTE = ("not from the four papers: a small ConvNeXt-style net on which docs/convert.md shows leannets.convert "
         "(DW vs XSepConv through leannets compare)")


@register_model(paper=LIU, source="block design (Fig. 4), CIFAR-sized (depths 2-2-2, dims 32-64-128)", cfg=_CFG,
                tags=("convnext", "cifar", "convert"), notes=_NOTE)
def convnext_cifar_atto(**kwargs: Any) -> ConvNeXtCifar:
    """ConvNeXt-style CIFAR net, 7×7 depthwise convs."""
    return ConvNeXtCifar(**kwargs)


@register_model(paper=LIU, source="convnext_cifar_atto after leannets.convert(conv='xsepconv', xsep_act='gelu')",
                cfg=_CFG, tags=("convnext", "cifar", "convert", "xsepconv"), notes=_NOTE)
def convnext_cifar_atto_xsep(**kwargs: Any) -> ConvNeXtCifar:
    """convnext_cifar_atto with every 7×7 depthwise conv converted to XSepConv (2×2 → 1×7 → 7×1)."""
    model = ConvNeXtCifar(**kwargs)
    convert_model(model, conv="xsepconv", min_kernel=7, xsep_act="gelu",
                  input_size=(model.in_chans, 32, 32))
    return model
