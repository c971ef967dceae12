"""Image-restoration networks: dense denoisers and super-resolvers (DenseNet / DxNet), DnCNN, xDnCNN
and the Conv+xUnit stacks of the Dense xUnit paper's Fig. 4.

Every network maps an image in ``[0, 1]`` to an image in ``[0, 1]`` (no pooling, no classifier):

- Denoisers (``task="denoising"``) use residual learning: the body predicts the noise, which is
  subtracted from the input (``out = x − f(x)``, Zhang et al. 2017; paper §4.3).
- Super-resolvers (``task="super_resolution"``) contain **no BatchNorm** (EDSR-style, paper §4.2):
  the body runs at low resolution, a sub-pixel (pixel-shuffle) upsampler enlarges the features and
  the output is added to a bicubic upsampling of the input (global residual).

Dense restoration nets (paper §3.1/§4.2–4.3, with the facts of the authors' code): stem 3×3 conv to
``num_init_features`` = 64 channels (followed by an xUnit in DxNets), dense blocks of pre-activation
layers ``norm-act-Conv1×1(bn_size·k)-norm-act-Conv3×3(k) [-xUnit]`` with ``bn_size = 2``, transitions
``norm-act-Conv1×1`` with reduction r = 0.5 and **no pooling**, a final ``norm-act``. xUnits use 9×9
depthwise kernels (paper §3.2); in the SR nets they have no BN. With these choices DxNet_{4,4,4} has
140,545 parameters, one fourth of DnCNN's 556,097 (paper §4.3: "its size is one fourth of DnCNN").
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import create_act
from ._base import LeanModule, init_weights
from .densenet import dense_body
from ._registry import PIXEL_CFG, model_cfg, register_model

__all__ = ["RestorationNet", "DenseDenoiser", "DenseSR", "DnCNN", "ConvXUnitNet", "SubPixelUpsampler"]

DXNET = "Kligvasser & Michaeli, Dense xUnit Networks, 2019"
XUNIT = "Kligvasser, Rott Shaham & Michaeli, xUnit: Learning a Spatial Activation Function, CVPR 2018"
DNCNN = "Zhang et al., Beyond a Gaussian Denoiser: Residual Learning of Deep CNN, IEEE TIP 2017"


class RestorationNet(LeanModule):
    """Base of the restoration nets: image in, image out.

    Attributes:
        task: ``"denoising"`` or ``"super_resolution"``.
        scale: output size / input size (1 for denoisers).
        residual: whether the output adds to (SR) or subtracts from (denoising) the input path.
    """

    task: str = "denoising"
    scale: int = 1
    residual: bool = True

    def _init_weights(self) -> None:
        init_weights(self, conv_mode="fan_in", linear_std=None)

    @staticmethod
    def _shrink_output(conv: nn.Conv2d, factor: float = 0.1) -> None:
        """Scale the image-producing conv so the net starts near its skip path (identity / bicubic)."""
        with torch.no_grad():
            conv.weight.mul_(factor)


def _gate(gate: str | None, channels: int, gate_kwargs: dict | None) -> nn.Module:
    return create_act(gate, channels, **(gate_kwargs or {})) if gate else nn.Identity()


def _restoration_body(in_ch: int, block_config: Sequence[int], growth_rate: int, bn_size: int, reduction: float,
                      norm: bool, act: str, gate: str | None, gate_kwargs: dict) -> tuple[nn.Sequential, int]:
    """The dense body of the restoration nets: transitions without pooling, biased 3×3 convs."""
    return dense_body(in_ch, block_config, growth_rate, bn_size=bn_size, reduction=reduction, norm=norm, act=act,
                      pool=False, gate=gate, gate_kwargs=gate_kwargs, conv_bias=True)


class DenseDenoiser(RestorationNet):
    """DenseNet / DxNet denoiser (paper §4.3): dense blocks at full resolution + residual learning.

    Args:
        block_config: layers per dense block, e.g. (4, 4, 4) or (4, 6, 8).
        growth_rate: k (16 in the paper).
        bn_size: bottleneck width = bn_size·k (2, as in the authors' code).
        reduction: transition compression r (0.5).
        num_init_features: stem channels (64).
        in_chans: 1 (gray) or 3 (color).
        gate: spatial activation on each layer's output (``"xunit"`` → DxNet, ``None`` → DenseNet).
        stem_gate: activation after the stem conv (DxNet: xUnit).
        gate_kwargs: options for both gates (default ``kernel_size=9``).
        act: pointwise activation inside the layers.
        head_kernel: kernel of the output conv.
        residual: predict the noise and subtract it from the input.
    """

    task = "denoising"

    def __init__(self, block_config: Sequence[int] = (4, 4, 4), growth_rate: int = 16, bn_size: int = 2,
                 reduction: float = 0.5, num_init_features: int = 64, in_chans: int = 1, gate: str | None = "xunit",
                 stem_gate: str | None = "xunit", gate_kwargs: dict | None = None, act: str = "relu",
                 head_kernel: int = 3, residual: bool = True, num_classes: int = 0) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"DenseDenoiser: in_chans must be positive, got {in_chans}")
        self.in_chans = in_chans
        self.num_classes = 0
        self.residual = residual
        self.block_config = tuple(int(n) for n in block_config)
        gate_kwargs = {"kernel_size": 9, **(gate_kwargs or {})}
        self.stem = nn.Sequential(nn.Conv2d(in_chans, num_init_features, 3, padding=1, bias=True),
                                  _gate(stem_gate, num_init_features, gate_kwargs))
        self.body, ch = _restoration_body(num_init_features, block_config, growth_rate, bn_size, reduction, True,
                                          act, gate, gate_kwargs)
        self.norm_final = nn.BatchNorm2d(ch)
        self.act_final = create_act(act, ch)
        self.head = nn.Conv2d(ch, in_chans, head_kernel, padding=head_kernel // 2, bias=True)
        self.num_features = ch
        self._init_weights()
        self._shrink_output(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = self.head(self.act_final(self.norm_final(self.body(self.stem(x)))))
        return x - y if self.residual else y


class SubPixelUpsampler(nn.Sequential):
    """Conv3×3(C→C·r²) + PixelShuffle(r) stages: ×2 → one, ×3 → one, ×4 → two ×2, ×8 → three ×2."""

    def __init__(self, channels: int, scale: int) -> None:
        stages: list[nn.Module] = []
        if scale in (2, 4, 8):
            for _ in range({2: 1, 4: 2, 8: 3}[scale]):
                stages += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            stages += [nn.Conv2d(channels, 9 * channels, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"SubPixelUpsampler: scale must be 2, 3, 4 or 8, got {scale}")
        super().__init__(*stages)


class DenseSR(RestorationNet):
    """BatchNorm-free dense super-resolver (paper §4.2): DxNet16 / DxNet32 and their DenseNet twins.

    ``stem Conv3×3(64) [+xUnit] → dense body (no BN) → act → fusion Conv3×3(→64) → sub-pixel
    upsampler (64 ch) → Conv3×3(→in_chans)``, plus bicubic(x). The fusion conv and the upsampler
    width (= stem width, 64) set the size outside the dense body: for DxNet16 (k=16, 4-4-4-6-8-8,
    bn_size 2) the stem + body hold 410,816 parameters, fusion 133,696, upsampler 295,424 and the
    tail 1,731, in all 841,667 ≈ the paper's 0.86M (−2.1 %).

    Args:
        block_config: layers per dense block.
        growth_rate: k.
        scale: 2, 3, 4 or 8.
        bn_size, reduction, num_init_features: as in :class:`DenseDenoiser`.
        in_chans: image channels (3 for RGB, as the paper).
        gate, stem_gate, gate_kwargs, act: as in :class:`DenseDenoiser` (xUnits without BN).
        upsample_features: channels of the fusion conv and upsampler (default ``num_init_features``).
        residual: ``"bicubic"``, ``"bilinear"`` or ``"none"`` global skip from the upsampled input.
    """

    task = "super_resolution"

    def __init__(self, block_config: Sequence[int] = (4, 4, 4, 6, 8, 8), growth_rate: int = 16, scale: int = 4,
                 bn_size: int = 2, reduction: float = 0.5, num_init_features: int = 64, in_chans: int = 3,
                 gate: str | None = "xunit", stem_gate: str | None = "xunit", gate_kwargs: dict | None = None,
                 act: str = "relu", upsample_features: int | None = None, residual: str = "bicubic",
                 num_classes: int = 0) -> None:
        super().__init__()
        if residual not in ("bicubic", "bilinear", "none"):
            raise ValueError(f"DenseSR: residual must be 'bicubic', 'bilinear' or 'none', got {residual!r}")
        self.in_chans = in_chans
        self.num_classes = 0
        self.scale = int(scale)
        self.residual = residual != "none"
        self.residual_mode = residual
        self.block_config = tuple(int(n) for n in block_config)
        gate_kwargs = {"kernel_size": 9, **(gate_kwargs or {}), "batch_norm": False}
        nf = num_init_features
        up = upsample_features or nf
        self.stem = nn.Sequential(nn.Conv2d(in_chans, nf, 3, padding=1, bias=True), _gate(stem_gate, nf, gate_kwargs))
        self.body, ch = _restoration_body(nf, block_config, growth_rate, bn_size, reduction, False, act, gate,
                                          gate_kwargs)
        self.act_final = create_act(act, ch)
        self.fusion = nn.Conv2d(ch, up, 3, padding=1, bias=True)
        self.upsample = SubPixelUpsampler(up, self.scale)
        self.tail = nn.Conv2d(up, in_chans, 3, padding=1, bias=True)
        self.num_features = ch
        self._init_weights()
        self._shrink_output(self.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = self.tail(self.upsample(self.fusion(self.act_final(self.body(self.stem(x))))))
        if self.residual_mode == "none":
            return y
        base = F.interpolate(x, scale_factor=self.scale, mode=self.residual_mode, align_corners=False)
        return y + base


class _FeedForwardDenoiser(RestorationNet):
    """A plain ``body`` stack; with residual learning it predicts the noise, subtracted from the input."""

    body: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        y = self.body(x)
        return x - y if self.residual else y


class DnCNN(_FeedForwardDenoiser):
    """DnCNN (Zhang et al. 2017): Conv+ReLU, (depth−2)×(Conv+BN+ReLU), Conv; residual learning.

    ``depth=17, width=64`` on gray images has 556,097 parameters (≈ 0.56M).
    """

    task = "denoising"

    def __init__(self, depth: int = 17, width: int = 64, in_chans: int = 1, residual: bool = True,
                 num_classes: int = 0) -> None:
        super().__init__()
        if depth < 2 or width < 1:
            raise ValueError(f"DnCNN: depth must be >= 2 and width >= 1, got depth={depth}, width={width}")
        self.in_chans = in_chans
        self.num_classes = 0
        self.residual = residual
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, in_chans, 3, padding=1, bias=True))
        self.body = nn.Sequential(*layers)
        self._init_weights()
        self._shrink_output(layers[-1])


class ConvXUnitNet(_FeedForwardDenoiser):
    """Feed-forward Conv+xUnit denoiser (xUnit paper's xDnCNN; Dense xUnit paper's Fig. 4 stacks).

    ``Conv → xUnit``, then ``depth−2`` × ``BN → Conv → xUnit``, then ``BN → Conv`` to the image
    channels (the layout of the authors' xDnCNN); residual learning as DnCNN.

    Args:
        depth: number of convolutions (9 for xDnCNN).
        width: channels (64).
        act: ``"xunit_original"`` (CVPR'18: BN-ReLU-dw9×9-BN-Gaussian) or ``"xunit"`` (with the 1×1
            conv and sigmoid of the Dense xUnit paper).
        act_kwargs: options for the xUnit (e.g. ``kernel_size``, ``gate``).
        in_chans: image channels.
        residual: predict the noise and subtract it.
    """

    task = "denoising"

    def __init__(self, depth: int = 9, width: int = 64, act: str = "xunit_original", act_kwargs: dict | None = None,
                 in_chans: int = 1, residual: bool = True, num_classes: int = 0) -> None:
        super().__init__()
        if depth < 2 or width < 1:
            raise ValueError(f"ConvXUnitNet: depth must be >= 2 and width >= 1, got depth={depth}, width={width}")
        self.in_chans = in_chans
        self.num_classes = 0
        self.residual = residual
        kw = {"kernel_size": 9, **(act_kwargs or {})}
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, padding=1, bias=True), create_act(act, width, **kw)]
        for _ in range(depth - 2):
            layers += [nn.BatchNorm2d(width), nn.Conv2d(width, width, 3, padding=1, bias=True),
                       create_act(act, width, **kw)]
        layers += [nn.BatchNorm2d(width), nn.Conv2d(width, in_chans, 3, padding=1, bias=True)]
        self.body = nn.Sequential(*layers)
        self._init_weights()
        self._shrink_output(layers[-1])


# ---------------------------------------------------------------------------------------------
# Registered models
# ---------------------------------------------------------------------------------------------

# Restoration models see [0, 1] pixels (no normalisation); ``first_conv`` names the conv that reads the image.
_DENSE_CFG = model_cfg(**PIXEL_CFG, first_conv="stem.0")
_BODY_CFG = model_cfg(**PIXEL_CFG, first_conv="body.0")
_DN = dict(paper=DXNET, input_size=(1, 64, 64), num_classes=0, task="denoising")
_SR = dict(paper=DXNET, input_size=(3, 32, 32), num_classes=0, task="super_resolution", cfg=_DENSE_CFG)


@register_model(source="§4.3, Fig. 8 (DxNet_{4,4,4}, k=16, r=0.5)", tags=("dxnet", "denoising"), **_DN, cfg=_DENSE_CFG)
def dxnet_denoise_4_4_4(**kwargs) -> DenseDenoiser:
    """DxNet_{4,4,4} denoiser: 140,545 parameters (gray), ≈ ¼ of DnCNN."""
    return DenseDenoiser(**{"block_config": (4, 4, 4), **kwargs})


@register_model(source="§4.3–4.4, Figs. 8–9 (DxNet_{4,6,8}, k=16, r=0.5)", tags=("dxnet", "denoising"), **_DN,
                cfg=_DENSE_CFG)
def dxnet_denoise_4_6_8(**kwargs) -> DenseDenoiser:
    """DxNet_{4,6,8} denoiser (the Fig. 9 sharpness model)."""
    return DenseDenoiser(**{"block_config": (4, 6, 8), **kwargs})


@register_model(source="§4.3, Fig. 8 (DenseNet_{4,4,4} baseline, k=16, r=0.5)", tags=("densenet", "denoising"),
                **_DN, cfg=_DENSE_CFG)
def densenet_denoise_4_4_4(**kwargs) -> DenseDenoiser:
    """DenseNet_{4,4,4} denoiser: the DxNet layout with ReLU-only layers (no xUnits)."""
    return DenseDenoiser(**{"block_config": (4, 4, 4), "gate": None, "stem_gate": None, **kwargs})


@register_model(source="§4.3–4.4, Figs. 8–9 (DenseNet_{4,6,8} baseline)", tags=("densenet", "denoising"), **_DN,
                cfg=_DENSE_CFG)
def densenet_denoise_4_6_8(**kwargs) -> DenseDenoiser:
    """DenseNet_{4,6,8} denoiser (the Fig. 9 sharpness baseline)."""
    return DenseDenoiser(**{"block_config": (4, 6, 8), "gate": None, "stem_gate": None, **kwargs})


@register_model(source="§4.2, Fig. 6 (DxNet16: k=16, 4-4-4-6-8-8, 0.86M)", tags=("dxnet", "sr"), **_SR)
def dxnet16_sr(**kwargs) -> DenseSR:
    """DxNet16 ×4 super-resolver (no BN): 841,667 parameters (RGB) vs the paper's 0.86M."""
    return DenseSR(**{"block_config": (4, 4, 4, 6, 8, 8), "growth_rate": 16, **kwargs})


@register_model(source="§4.2, Fig. 6 (DxNet32: k=32, 4-6-8)", tags=("dxnet", "sr"), **_SR)
def dxnet32_sr(**kwargs) -> DenseSR:
    """DxNet32 ×4 super-resolver (no BN), the wider variant."""
    return DenseSR(**{"block_config": (4, 6, 8), "growth_rate": 32, **kwargs})


@register_model(source="§4.2 baseline: DxNet16 layout without xUnits", tags=("densenet", "sr"), **_SR)
def densenet16_sr(**kwargs) -> DenseSR:
    """DenseNet twin of DxNet16 (ReLU-only dense layers, no BN)."""
    return DenseSR(**{"block_config": (4, 4, 4, 6, 8, 8), "growth_rate": 16, "gate": None, "stem_gate": None,
                      **kwargs})


@register_model(source="§4.2 baseline: DxNet32 layout without xUnits", tags=("densenet", "sr"), **_SR)
def densenet32_sr(**kwargs) -> DenseSR:
    """DenseNet twin of DxNet32 (ReLU-only dense layers, no BN)."""
    return DenseSR(**{"block_config": (4, 6, 8), "growth_rate": 32, "gate": None, "stem_gate": None, **kwargs})


@register_model(paper=DNCNN, source="DnCNN-S (17 layers, 64 ch); Dense xUnit paper Fig. 8 baseline",
                input_size=(1, 64, 64), num_classes=0, task="denoising", tags=("dncnn", "denoising"), cfg=_BODY_CFG)
def dncnn(**kwargs) -> DnCNN:
    """DnCNN, 17 layers × 64 channels: 556,097 parameters (gray)."""
    return DnCNN(**kwargs)


@register_model(paper=XUNIT, source="xDnCNN (9 layers, 64 ch, original xUnit); Dense xUnit paper Fig. 8",
                input_size=(1, 64, 64), num_classes=0, task="denoising", tags=("xunit", "denoising"), cfg=_BODY_CFG)
def xdncnn(**kwargs) -> ConvXUnitNet:
    """xDnCNN: DnCNN with CVPR'18 xUnits and 9 layers: 304,769 parameters (gray)."""
    return ConvXUnitNet(**{"depth": 9, "act": "xunit_original", **kwargs})


@register_model(source="Fig. 4 (Conv+xUnit stack, original xUnit of [20]); depth configurable",
                tags=("xunit", "denoising", "fig4"), **_DN, cfg=_BODY_CFG)
def convxunit_original(**kwargs) -> ConvXUnitNet:
    """Fig. 4 ablation: Conv + original xUnit (no 1×1 conv, Gaussian gate), default depth 5."""
    return ConvXUnitNet(**{"depth": 5, "act": "xunit_original", **kwargs})


@register_model(source="Fig. 4 (Conv+xUnit stack, xUnit with 1×1 conv); depth configurable",
                tags=("xunit", "denoising", "fig4"), **_DN, cfg=_BODY_CFG)
def convxunit_1x1(**kwargs) -> ConvXUnitNet:
    """Fig. 4 ablation: Conv + the Dense xUnit paper's xUnit (1×1 conv, sigmoid), default depth 5."""
    return ConvXUnitNet(**{"depth": 5, "act": "xunit", **kwargs})
