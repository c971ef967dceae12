"""MobileNetV2 (Sandler et al. 2018) in the CIFAR/STL-10 layout used by Bao et al., with the
depthwise separable part of the first two stages (16 and 24 channels) from :func:`create_conv`.

Layout: 3×3 stem (32, stride 1) → inverted residual stages (t, c, n, s) = (1,16,1,1),
(6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1) → 1×1 conv 1280 →
global pool → dropout 0.2 → linear. The stem has stride 1 for 32×32 (CIFAR) and, as in the
authors' runs (``large=False``), also for 96×96 STL-10 images.

In the replaced stages an inverted residual is 1×1 expand → BN → ReLU6 (if t > 1), then
(``block=``):

- ``"authors"`` (default, the authors' ``mobilenet.py``): ``conv_type``(hidden → out, stride, with
  its own defaults: no activation inside) → ReLU → BN → + input when the shape is kept.
- ``"linear"``: ``conv_type`` with ReLU6 between its depthwise BN and its pointwise conv and no
  pointwise bias, then MobileNetV2's linear bottleneck. With ``conv_type="dsconv"`` this is exactly
  the original MobileNetV2 block (torchvision's 3,504,872 parameters at 1000 classes).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..layers import ConvBnAct, create_conv, make_divisible
from ..layers.multiception import stage_kernel_sizes
from ._base import Classifier, init_weights
from ._registry import CIFAR_CFG, IMAGENET_CFG, model_cfg, register_model
from ._weights import CheckpointAdapter
from .resnet_cifar import BAO

__all__ = ["InvertedResidual", "MobileNetV2Cifar", "MBV2_SETTINGS", "BLOCKS"]

BLOCKS = ("authors", "linear")

SANDLER = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
# (expansion t, channels c, repeats n, stride s)
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """[1×1 expand → BN → ReLU6] → depthwise-separable part → (+ input).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the depthwise part.
        expand_ratio: t (hidden = round(in_ch · t)).
        conv_type: ``None`` for MobileNetV2's own depthwise 3×3 → BN → ReLU6 → 1×1 → BN, or a
            :func:`create_conv` type replacing it (hidden → out).
        kernel_size: kernel size(s) of ``conv_type``.
        conv_kwargs: options for ``conv_type``.
        block: ``"authors"`` (``conv_type`` → ReLU → BN) or ``"linear"`` (ReLU6 inside, linear bottleneck).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, conv_type: str | None = None,
                 kernel_size: int | Sequence[int] = 3, conv_kwargs: dict[str, Any] | None = None,
                 block: str = "authors") -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"InvertedResidual: unknown block {block!r}; allowed: {', '.join(BLOCKS)}")
        hidden = int(round(in_ch * expand_ratio))
        self.use_res = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_ch, hidden, 1, act="relu6"))
        if conv_type is None:
            layers += [ConvBnAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                       create_conv("standard", hidden, out_ch, 1, 1)]
        elif block == "authors":
            layers += [create_conv(conv_type, hidden, out_ch, kernel_size, stride, **(conv_kwargs or {})),
                       nn.ReLU(inplace=True), nn.BatchNorm2d(out_ch)]
        else:
            kw = {"mid_act": "relu6", "pointwise_bias": False, **(conv_kwargs or {})} \
                if conv_type in ("dsconv", "mixconv", "multiception") else dict(conv_kwargs or {})
            layers.append(create_conv(conv_type, hidden, out_ch, kernel_size, stride, **kw))
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Cifar(Classifier):
    """MobileNetV2 with a stride-1 stem; the first ``len(kernel_sizes)`` stages use ``conv_type``.

    Args:
        conv_type: :func:`create_conv` type for the depthwise-separable part of the replaced
            stages (``dsconv`` = plain MobileNetV2).
        kernel_sizes: kernel size(s) per replaced stage; ``None``: {3,5,7}, {3,5} for
            multi-kernel types, 3 otherwise (two stages: the 16- and 24-channel ones).
        conv_kwargs: options for the replaced convs (``block="linear"`` defaults: ``mid_act="relu6"``,
            ``pointwise_bias=False``).
        block: ``"authors"`` or ``"linear"`` (see the module docstring).
        width_mult: channel multiplier.
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0.2).
        stem_stride: 1 (CIFAR / the authors' STL-10 runs) or 2.
    """

    def __init__(self, conv_type: str = "dsconv", kernel_sizes: Sequence[int | Sequence[int]] | None = None,
                 conv_kwargs: dict[str, Any] | None = None, width_mult: float = 1.0, num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.2, stem_stride: int = 1, block: str = "authors") -> None:
        super().__init__()
        n_replaced = 2 if kernel_sizes is None else len(kernel_sizes)
        if not 0 <= n_replaced <= len(MBV2_SETTINGS):
            raise ValueError(f"MobileNetV2Cifar: kernel_sizes may cover at most {len(MBV2_SETTINGS)} stages, "
                             f"got {n_replaced}")
        self.in_chans, self.drop_rate, self.conv_type = in_chans, drop_rate, conv_type
        self.kernel_sizes = stage_kernel_sizes(conv_type, kernel_sizes, n_replaced, "MobileNetV2Cifar")
        ch = make_divisible(32 * width_mult, 8)
        layers: list[nn.Module] = [ConvBnAct(in_chans, ch, 3, stem_stride, act="relu6")]
        for i, (t, c, n, s) in enumerate(MBV2_SETTINGS):
            out = make_divisible(c * width_mult, 8)
            ks = self.kernel_sizes[i] if i < n_replaced else 3
            for j in range(n):
                layers.append(InvertedResidual(ch, out, s if j == 0 else 1, t, conv_type if i < n_replaced else None,
                                               ks, conv_kwargs, block))
                ch = out
        self.num_features = make_divisible(1280 * max(1.0, width_mult), 8)
        layers.append(ConvBnAct(ch, self.num_features, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.min_input_size = 16 * stem_stride
        self.reset_classifier(num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


#: declared preprocessing and layer names (``pretrained_cfg``)
_IMAGENET = model_cfg(**IMAGENET_CFG, first_conv="features.0.0", classifier="fc")
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="features.0.0", classifier="fc")


@register_model(paper=BAO, source=f"Table 2, MobileNet-V2 (dsconv); architecture: {SANDLER}",
                tags=("multiception", "cifar", "stl10", "mobilenetv2", "dsconv"), cfg=_CIFAR)
def mobilenetv2_cifar_dsconv(**kwargs: Any) -> MobileNetV2Cifar:
    """MobileNetV2 (stride-1 stem) with dsconv in the 16/24-channel stages; 32×32 by default, STL-10 uses 96×96
    inputs (Table 2)."""
    return MobileNetV2Cifar(**{"conv_type": "dsconv", **kwargs})


@register_model(paper=BAO, source=f"Table 2, MobileNet-V2 (mixconv); architecture: {SANDLER}",
                tags=("multiception", "cifar", "stl10", "mobilenetv2", "mixconv"), cfg=_CIFAR)
def mobilenetv2_cifar_mixconv(**kwargs: Any) -> MobileNetV2Cifar:
    """MobileNetV2 (stride-1 stem) with mixconv in the 16/24-channel stages; 32×32 by default, STL-10 uses 96×96
    inputs (Table 2)."""
    return MobileNetV2Cifar(**{"conv_type": "mixconv", **kwargs})


@register_model(paper=BAO, source=f"Table 2, MobileNet-V2 (multiception); architecture: {SANDLER}",
                tags=("multiception", "cifar", "stl10", "mobilenetv2", "multiception"), cfg=_CIFAR)
def mobilenetv2_cifar_multiception(**kwargs: Any) -> MobileNetV2Cifar:
    """MobileNetV2 (stride-1 stem) with multiception in the 16/24-channel stages; 32×32 by default, STL-10 uses 96×96
    inputs (Table 2)."""
    return MobileNetV2Cifar(**{"conv_type": "multiception", **kwargs})


@register_model(paper=SANDLER, source="Sandler et al. Table 2 (ImageNet layout: stride-2 stem, the original block); "
                "torchvision's mobilenet_v2, 3,504,872 parameters", input_size=(3, 224, 224), num_classes=1000,
                tags=("mobilenetv2", "imagenet"), cfg=_IMAGENET)
def mobilenetv2_100(**kwargs: Any) -> MobileNetV2Cifar:
    """MobileNetV2 ×1.0 for ImageNet: the original block everywhere (the layout of torchvision's checkpoints)."""
    return MobileNetV2Cifar(**{"conv_type": "dsconv", "kernel_sizes": [], "block": "linear", "stem_stride": 2,
                               "num_classes": 1000, **kwargs})


# -- published checkpoint layouts (create_model(..., pretrained=PATH)) -------------------------------------------
def _torchvision_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    """torchvision ends a block with a bare 1×1 conv ``conv.K`` and its BN ``conv.K+1``; ours nests both in ``conv.K``."""
    m = re.match(r"^features\.(\d+)\.conv\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$", key)
    if m:
        block, k, leaf = m.groups()
        is_bn = f"features.{block}.conv.{k}.running_mean" in state
        return f"features.{block}.conv.{int(k) - 1 if is_bn else k}.{1 if is_bn else 0}.{leaf}"
    return re.sub(r"^classifier\.1\.", "fc.", key)


CHECKPOINT_ADAPTERS = (CheckpointAdapter("torchvision MobileNetV2", "features.18.0.weight", _torchvision_keys),)
