"""DenseNet-BC (Huang et al., CVPR 2017) for CIFAR/SVHN and ImageNet.

Layout follows the original (and timm/torchvision): pre-activation dense layers
BN-ReLU-Conv1×1(bottleneck·k)-BN-ReLU-Conv3×3(k), transitions BN-ReLU-Conv1×1-AvgPool2×2,
final BN-ReLU-global-average-pool-linear. ``gate`` adds a spatial activation (e.g. an xUnit) on
each layer's k-channel output before concatenation and ``stem_gate`` one after the stem: that is
how :class:`DxNet` (Dense xUnit Networks, Kligvasser & Michaeli) builds its x-dense layers.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..layers import create_act
from ..layers.norm import batch_norm
from ._base import Classifier, init_weights
from ._registry import CIFAR_CFG, IMAGENET_CFG, model_cfg, register_model
from ._weights import CheckpointAdapter

__all__ = ["DenseNet", "DxNet", "DenseLayer", "DenseBlock", "Transition", "dense_body"]

HUANG = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"


def _norm(channels: int, enabled: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if enabled else nn.Identity()


class DenseLayer(nn.Module):
    """norm-act-Conv1×1 → norm-act-Conv3×3 → [gate] producing ``growth_rate`` new channels.

    Args:
        in_ch: channels of the concatenated input.
        growth_rate: new channels k.
        bn_size: bottleneck width multiplier (bottleneck = bn_size·k).
        drop_rate: dropout after each conv (Huang et al.'s SVHN setting uses 0.2).
        memory_efficient: recompute concat + bottleneck in backward (gradient checkpointing).
        gate: activation name applied to the k-channel output (e.g. ``"xunit"``), or ``None``.
        gate_kwargs: options for the gate.
        norm: BatchNorm before each activation (``False``: none, as in the BN-free SR nets).
        act: pointwise activation name.
        conv_bias: bias on the 3×3 conv (the restoration nets of the Dense xUnit code have one).
    """

    def __init__(self, in_ch: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0,
                 memory_efficient: bool = False, gate: str | None = None, gate_kwargs: dict | None = None,
                 norm: bool = True, act: str = "relu", conv_bias: bool = False) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = _norm(in_ch, norm)
        # In place is safe: the activation's input is a fresh concatenation (or BN output).
        self.act1 = create_act(act, in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.norm2 = _norm(mid, norm)
        self.act2 = create_act(act, mid)
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=conv_bias)
        self.gate = create_act(gate, growth_rate, **(gate_kwargs or {})) if gate else nn.Identity()
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bottleneck(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(self.act1(batch_norm(self.norm1, x)))
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return x

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.training and any(f.requires_grad for f in features):
            x = cp.checkpoint(lambda *fs: self.bottleneck(list(fs)), *features, use_reentrant=False)
        else:
            x = self.bottleneck(features)
        x = self.conv2(self.act2(batch_norm(self.norm2, x)))
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return self.gate(x)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; each sees the concatenation of all previous outputs."""

    def __init__(self, num_layers: int, in_ch: int, growth_rate: int, **layer_kwargs) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_ch + i * growth_rate, growth_rate, **layer_kwargs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """norm-act-Conv1×1(out_ch)-[dropout]-[AvgPool2×2]."""

    def __init__(self, in_ch: int, out_ch: int, drop_rate: float = 0.0, norm: bool = True, act: str = "relu",
                 pool: bool = True) -> None:
        layers: list[nn.Module] = [_norm(in_ch, norm), create_act(act, in_ch), nn.Conv2d(in_ch, out_ch, 1, bias=False)]
        if drop_rate > 0:
            layers.append(nn.Dropout(drop_rate))
        if pool:
            layers.append(nn.AvgPool2d(2, 2))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            x = batch_norm(module, x)
        return x


def dense_body(in_ch: int, block_config: Sequence[int], growth_rate: int, *, bn_size: int = 4,
               reduction: float = 0.5, drop_rate: float = 0.0, norm: bool = True, act: str = "relu",
               pool: bool = True, **layer_kwargs) -> tuple[nn.Sequential, int]:
    """Dense blocks with transitions between them; returns ``(module, output channels)``.

    Args:
        in_ch: input channels.
        block_config: layers per dense block.
        growth_rate: k.
        bn_size, drop_rate, norm, act: as in :class:`DenseLayer` (``drop_rate``/``norm``/``act`` also
            apply to the transitions).
        reduction: transition compression θ.
        pool: 2×2 average pooling in the transitions (``False`` for the full-resolution restoration nets).
        **layer_kwargs: more :class:`DenseLayer` options (``memory_efficient``, ``gate``, ``gate_kwargs``,
            ``conv_bias``).
    """
    if not block_config or any(int(n) < 1 for n in block_config):
        raise ValueError(f"block_config must list positive layer counts, got {list(block_config)}")
    if not 0 < reduction <= 1:
        raise ValueError(f"reduction must be in (0, 1], got {reduction}")
    if growth_rate < 1 or bn_size < 1:
        raise ValueError(f"growth_rate and bn_size must be positive, got {growth_rate}, {bn_size}")
    blocks: list[nn.Module] = []
    ch = in_ch
    for i, n in enumerate(block_config):
        blocks.append(DenseBlock(int(n), ch, growth_rate, bn_size=bn_size, drop_rate=drop_rate, norm=norm, act=act,
                                 **layer_kwargs))
        ch += int(n) * growth_rate
        if i != len(block_config) - 1:
            out = int(ch * reduction)
            blocks.append(Transition(ch, out, drop_rate, norm, act, pool))
            ch = out
    return nn.Sequential(*blocks), ch


class DenseNet(Classifier):
    """DenseNet-BC with a CIFAR (3×3 stem) or ImageNet (7×7/2 stem + max-pool) layout.

    Args:
        block_config: layers per dense block, e.g. (16, 16, 16) or (6, 12, 24, 16).
        growth_rate: k.
        num_init_features: stem channels (2k in the BC papers).
        bn_size: bottleneck multiplier (4).
        reduction: transition compression θ (0.5).
        stem: ``"cifar"`` or ``"imagenet"``.
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout after every conv (not on the classifier).
        memory_efficient: gradient checkpointing of concat + bottleneck.
        gate: spatial activation on each dense layer's output (``"xunit"`` for DxNet).
        stem_gate: spatial activation after the stem conv (DxNet puts an xUnit there).
        gate_kwargs: options for both gates (e.g. ``kernel_size``).
    """

    def __init__(self, block_config: Sequence[int] = (16, 16, 16), growth_rate: int = 12,
                 num_init_features: int | None = None, bn_size: int = 4, reduction: float = 0.5,
                 stem: str = "cifar", num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 memory_efficient: bool = False, gate: str | None = None, stem_gate: str | None = None,
                 gate_kwargs: dict | None = None) -> None:
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"DenseNet: stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        num_features = num_init_features or 2 * growth_rate
        gate_kwargs = gate_kwargs or {}
        if stem == "cifar":
            stem_layers: list[nn.Module] = [nn.Conv2d(in_chans, num_features, 3, padding=1, bias=False)]
            if stem_gate:
                stem_layers.append(create_act(stem_gate, num_features, **gate_kwargs))
            stem_stride = 1
        else:
            stem_layers = [nn.Conv2d(in_chans, num_features, 7, 2, 3, bias=False), nn.BatchNorm2d(num_features),
                           nn.ReLU(inplace=True)]
            if stem_gate:
                stem_layers.append(create_act(stem_gate, num_features, **gate_kwargs))
            stem_layers.append(nn.MaxPool2d(3, 2, 1))
            stem_stride = 4
        self.stem = nn.Sequential(*stem_layers)
        self.blocks, num_features = dense_body(num_features, block_config, growth_rate, bn_size=bn_size,
                                               reduction=reduction, drop_rate=drop_rate,
                                               memory_efficient=memory_efficient, gate=gate, gate_kwargs=gate_kwargs)
        self.norm_final = nn.BatchNorm2d(num_features)
        self.num_features = num_features
        self.min_input_size = stem_stride * 2 ** (len(block_config) - 1)
        self.reset_classifier(num_classes)
        # fan_in (as torchvision's DenseNet): keeps eval-mode activations O(1) at init; fan_out
        # lets them grow with the concatenated width (~1e9 at the end of 26-26-26).
        init_weights(self, conv_mode="fan_in", linear_std=None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return F.relu(batch_norm(self.norm_final, x))


def _cifar_densenet(block_config: Sequence[int], **kwargs) -> DenseNet:
    kwargs.setdefault("growth_rate", 12)
    return DenseNet(block_config=block_config, stem="cifar", **kwargs)


#: declared preprocessing and layer names (``pretrained_cfg``)
_IMAGENET = model_cfg(**IMAGENET_CFG, first_conv="stem.0", classifier="fc")
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="stem.0", classifier="fc")


@register_model(paper=HUANG, source="DenseNet-BC-100 (k=12); Dense xUnit paper Table 1 baseline (0.8M)",
                tags=("densenet", "cifar"), cfg=_CIFAR)
def densenet_bc_cifar_16_16_16(**kwargs) -> DenseNet:
    """DenseNet-BC-100, k=12 for 32×32 inputs: 769,162 parameters with 10 classes."""
    return _cifar_densenet((16, 16, 16), **kwargs)


@register_model(paper=HUANG, source="DenseNet-BC-160 (k=12); Dense xUnit paper Table 1 baseline (1.7M)",
                tags=("densenet", "cifar"), cfg=_CIFAR)
def densenet_bc_cifar_26_26_26(**kwargs) -> DenseNet:
    """DenseNet-BC-160, k=12 for 32×32 inputs."""
    return _cifar_densenet((26, 26, 26), **kwargs)


@register_model(paper=HUANG, source="DenseNet-BC-40 (k=12), a small CPU-friendly baseline",
                tags=("densenet", "cifar", "small"), cfg=_CIFAR)
def densenet_bc_cifar_6_6_6(**kwargs) -> DenseNet:
    """DenseNet-BC-40, k=12 for 32×32 inputs (fast CPU baseline)."""
    return _cifar_densenet((6, 6, 6), **kwargs)


@register_model(paper=HUANG, source="Table 1 (DenseNet-121, k=32)", input_size=(3, 224, 224), num_classes=1000,
                tags=("densenet", "imagenet"), cfg=_IMAGENET)
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (k=32, 6-12-24-16): 7,978,856 parameters, ~2.87 GMACs at 224."""
    return DenseNet((6, 12, 24, 16), growth_rate=32, stem="imagenet", **{"num_classes": 1000, **kwargs})


@register_model(paper=HUANG, source="Table 1 (DenseNet-169, k=32)", input_size=(3, 224, 224), num_classes=1000,
                tags=("densenet", "imagenet"), cfg=_IMAGENET)
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (k=32, 6-12-32-32)."""
    return DenseNet((6, 12, 32, 32), growth_rate=32, stem="imagenet", **{"num_classes": 1000, **kwargs})


# --------------------------------------------------------------------------------------------
# Dense xUnit Networks (Kligvasser & Michaeli)
# --------------------------------------------------------------------------------------------

KLIGVASSER = "Kligvasser & Michaeli, Dense xUnit Networks, arXiv:1811.11051 (2018)"


class DxNet(DenseNet):
    """Dense xUnit Network: DenseNet-BC whose dense layers are *x-dense* layers.

    An x-dense layer is a DenseNet-BC layer (BN-ReLU-Conv1×1-BN-ReLU-Conv3×3) with an xUnit on
    its k-channel output before the concatenation (Fig. 2b; the xUnit sits right after the 3×3
    conv as in the authors' code). The stem conv is followed by an xUnit as well. Transitions,
    final BN-ReLU, global average pooling and the linear classifier are DenseNet-BC's.

    Args:
        block_config: x-dense layers per block.
        growth_rate: k (12 on CIFAR/SVHN, 32 on ImageNet).
        xunit: activation name of the xUnits (``"xunit"``: 1×1 → BN → ReLU → dw K×K → BN → sigmoid;
            ``"xunit_original"``: the CVPR'18 Gaussian design without 1×1).
        xunit_kernel_size: depthwise kernel K (the paper always uses 9).
        **kwargs: :class:`DenseNet` options (``stem``, ``drop_rate``, ``reduction``, ...).
    """

    def __init__(self, block_config: Sequence[int] = (12, 12, 12), growth_rate: int = 12, xunit: str = "xunit",
                 xunit_kernel_size: int = 9, **kwargs) -> None:
        for key in ("gate", "stem_gate", "gate_kwargs"):
            if key in kwargs:
                raise ValueError(f"DxNet: {key!r} is fixed by the architecture; use xunit= / xunit_kernel_size=")
        super().__init__(block_config=block_config, growth_rate=growth_rate, gate=xunit, stem_gate=xunit,
                         gate_kwargs={"kernel_size": xunit_kernel_size}, **kwargs)


def _cifar_dxnet(block_config: Sequence[int], **kwargs) -> DxNet:
    kwargs.setdefault("growth_rate", 12)
    kwargs.setdefault("num_init_features", 24)
    return DxNet(block_config=block_config, stem="cifar", **kwargs)


@register_model(paper=KLIGVASSER, source="Table 1 (DxNet 12-12-12, 0.5M params)", tags=("dxnet", "cifar"),
                notes="SVHN variant: drop_rate=0.2", cfg=_CIFAR)
def dxnet_cifar_12_12_12(**kwargs) -> DxNet:
    """DxNet 12-12-12 (k=12, r=0.5, 24-channel stem + xUnit) for 32×32 inputs: 532,162 params.

    Table 1 lists 0.5M. The DenseNet-BC 12-12-12 backbone alone has 486,730 parameters; the 37
    xUnits (9×9 depthwise + 1×1, with their BNs) add 45,432 (36 × 1,188 on k=12 maps and 2,664
    on the 24-channel stem), i.e. 0.53M, which the paper rounds to 0.5M.
    """
    return _cifar_dxnet((12, 12, 12), **kwargs)


@register_model(paper=KLIGVASSER, source="Table 1 (DxNet 19-19-19, 1.0M params)", tags=("dxnet", "cifar"),
                notes="SVHN variant: drop_rate=0.2", cfg=_CIFAR)
def dxnet_cifar_19_19_19(**kwargs) -> DxNet:
    """DxNet 19-19-19 (k=12, r=0.5, 24-channel stem + xUnit) for 32×32 inputs: 1,090,930 params.

    Table 1 lists 1.0M (9% less). The plain DenseNet-BC 19-19-19 backbone already has 1,020,550
    parameters, so *any* xUnit placement exceeds 1.0M; the 58 xUnits of the design described
    in the paper (1×1 + 9×9 depthwise + 2 BNs; 82k of them in the depthwise part) add 70,380.
    The paper's figure is therefore a rounded/truncated value (it also writes 0.53M as 0.5M).
    """
    return _cifar_dxnet((19, 19, 19), **kwargs)


@register_model(paper=KLIGVASSER, source="x-dense 4-4-4 (the paper's DxNet_4,4,4 depth; small CPU model)",
                tags=("dxnet", "cifar", "small"), cfg=_CIFAR)
def dxnet_cifar_4_4_4(**kwargs) -> DxNet:
    """DxNet 4-4-4 (k=12) for 32×32 inputs: 119,650 params, a fast CPU counterpart of DenseNet-BC 6-6-6."""
    return _cifar_dxnet((4, 4, 4), **kwargs)


@register_model(paper=KLIGVASSER, source="Sec. 4.1 / Fig. 1 (DxNet-105: 6-12-20-12, k=32, r=0.5)",
                input_size=(3, 224, 224), num_classes=1000, tags=("dxnet", "imagenet"),
                notes="ImageNet stem as DenseNet-121 (7×7/2 conv-BN-ReLU) followed by an xUnit, then max-pool",
                cfg=_IMAGENET)
def dxnet_imagenet_105(**kwargs) -> DxNet:
    """DxNet-105 (6-12-20-12, k=32, r=0.5): 6,484,840 params with 1000 classes.

    The text gives only the block configuration and k, r; the stem is DenseNet-121's with an
    xUnit after it (as on CIFAR, where the stem conv is followed by an xUnit).
    """
    return DxNet((6, 12, 20, 12), growth_rate=32, stem="imagenet", **{"num_classes": 1000, **kwargs})


# -- published checkpoint layouts (create_model(..., pretrained=PATH)) -------------------------------------------
def _torchvision_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^features\.conv0\.", "stem.0.", key)
    key = re.sub(r"^features\.norm0\.", "stem.1.", key)
    key = re.sub(r"^features\.norm5\.", "norm_final.", key)
    key = re.sub(r"^features\.denseblock(\d+)\.", lambda m: f"blocks.{2 * int(m.group(1)) - 2}.", key)
    key = re.sub(r"^features\.transition(\d+)\.(norm|conv)\.",
                 lambda m: f"blocks.{2 * int(m.group(1)) - 1}.{0 if m.group(2) == 'norm' else 2}.", key)
    return re.sub(r"^classifier\.", "fc.", key)


CHECKPOINT_ADAPTERS = (CheckpointAdapter("torchvision/timm DenseNet", "features.denseblock1.denselayer1.conv1.weight",
                                         _torchvision_keys),)
