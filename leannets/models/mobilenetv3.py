"""MobileNetV3-Small (Howard et al., ICCV 2019) with optional XSepConv blocks (Chen et al. 2020).

Layout (Howard et al. Table 2; 2,542,856 params at width 1.0 and 1000 classes, as torchvision and
timm): stem 3×3/2 conv (16, h-swish) → 11 inverted-residual blocks (expand 1×1 → depthwise k×k →
SE (ReLU, hard-sigmoid, ``make_divisible(exp/4, 8)``) → project 1×1) → 1×1 conv to 6·c (h-swish) →
global pool → linear 1024 (h-swish) → dropout → classifier.

Width multipliers (``width_rule=``), which differ only at widths ≠ 1.0; the blocks' output channels
are ``make_divisible(c·width, 8)`` in both.

- ``"howard"`` (default; Howard et al.'s TF reference and timm): the 1024-wide hidden head stays
  1024, the stem stays 16 channels below width 0.75, and each block expands its rounded input by
  the Table 2 ratio (4.5, 3.67, 4, 6, ...). timm's counts: 1.59 M (×0.5), 2.04 M (×0.75).
- ``"scaled"``: the stem, the expanded widths and the hidden head all scale with the width
  (``make_divisible(c·width, 8)`` of each Table 2 width; torchvision scales the head this way too).

The XSepConv paper gives its Fig. 3 curves as plots only, so no count can decide between them: we
default to the rule of the reference implementation the paper builds on (Howard et al.).

Small-image layouts (the XSepConv paper re-implemented the net for these but gave no layout;
ours keep every block and change only strides):

- ``imagenet``: stride 32 (224 → 7).
- ``cifar`` (32×32, CIFAR-10/100, SVHN): stem stride 1 and first block stride 1 → stride 8 (32 → 4).
- ``tiny`` (Tiny-ImageNet, 56×56 training crops): the CIFAR strides, stride 8 (56 → 7). This is the
  layout that gives the paper's "saves 4.75% of the computational cost" (4.747% at 56²; MACs are
  counted at the training crop).
- ``tiny16``: stem stride 1, first block stride 2 → stride 16 (56 → 4); 3.2× cheaper, saves 4.20%.

``depthwise="xsep"`` applies the paper's setting (Sec. 4.2): the stride-1 5×5 depthwise convs of the
middle stage become XSepConv k = 5, the ones after the last downsampling XSepConv k = 3, the
downsampling blocks keep vanilla depthwise. ``down_kernel=7`` is Fig. 4 (first stride-2 5×5 → 7×7,
which XSepConv turns into the downsampling form, k = 7); ``mid_kernel=7`` is Fig. 5. A list of 11
entries (``"dw"``, ``"xsep"`` or ``"xsep<k>"``) chooses per block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..layers import ConvBn, ConvBnAct, SqueezeExcite, create_act, make_divisible
from ..layers.padding import assign_padding_schedule
from ..layers.xsepconv import XSepConv
from ._base import Classifier, init_weights
from ._registry import CIFAR_CFG, IMAGENET_CFG, model_cfg, register_model
from ._weights import CheckpointAdapter

__all__ = ["MobileNetV3Small", "InvertedResidual", "BlockSpec", "SMALL_BLOCKS", "LAYOUTS", "WIDTH_RULES",
           "paper_depthwise"]

HOWARD = "Howard et al., Searching for MobileNetV3, ICCV 2019"
CHEN = "Chen et al., XSepConv: Extremely Separated Convolution, arXiv 2020"


@dataclass(frozen=True)
class BlockSpec:
    """One bneck row of Howard et al. Table 2 (channels at width 1.0)."""

    kernel: int
    exp: int
    out: int
    se: bool
    act: str
    stride: int
    stage: str  # "early" (3×3), "down" (first 5×5 stride 2), "mid", "last_down", "late"


SMALL_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(3, 16, 16, True, "relu", 2, "early"),
    BlockSpec(3, 72, 24, False, "relu", 2, "early"),
    BlockSpec(3, 88, 24, False, "relu", 1, "early"),
    BlockSpec(5, 96, 40, True, "hswish", 2, "down"),
    BlockSpec(5, 240, 40, True, "hswish", 1, "mid"),
    BlockSpec(5, 240, 40, True, "hswish", 1, "mid"),
    BlockSpec(5, 120, 48, True, "hswish", 1, "mid"),
    BlockSpec(5, 144, 48, True, "hswish", 1, "mid"),
    BlockSpec(5, 288, 96, True, "hswish", 2, "last_down"),
    BlockSpec(5, 576, 96, True, "hswish", 1, "late"),
    BlockSpec(5, 576, 96, True, "hswish", 1, "late"),
)

# layout -> (stem stride, first block stride, total stride)
LAYOUTS: dict[str, tuple[int, int, int]] = {"imagenet": (2, 2, 32), "cifar": (1, 1, 8), "tiny": (1, 1, 8),
                                            "tiny16": (1, 2, 16)}
WIDTH_RULES = ("howard", "scaled")


def paper_depthwise(mid_kernel: int = 5, down_kernel: int = 5) -> list[str]:
    """Per-block choices of the paper's XSepConv MobileNetV3-Small (Sec. 4.2, Fig. 4, Fig. 5)."""
    out = []
    for spec in SMALL_BLOCKS:
        if spec.stage == "mid":
            out.append(f"xsep{mid_kernel}")
        elif spec.stage == "late":
            out.append("xsep3")
        elif spec.stage == "down" and down_kernel >= 7:
            out.append(f"xsep{down_kernel}")  # downsampling XSepConv pays off only for k >= 7
        else:
            out.append("dw")
    return out


def _parse_choice(choice: str, kernel: int, stage: str) -> tuple[str, int]:
    """("dw"|"xsep", kernel) of one per-block entry."""
    if choice == "dw":
        return "dw", kernel
    if choice == "xsep":
        return "xsep", 3 if stage == "late" else kernel
    if choice.startswith("xsep") and choice[4:].isdigit():
        return "xsep", int(choice[4:])
    raise ValueError(f"MobileNetV3Small: depthwise entries must be 'dw', 'xsep' or 'xsep<k>', got {choice!r}")


class InvertedResidual(nn.Module):
    """[1×1 expand] → depthwise (vanilla or XSepConv) → [SE] → 1×1 project (+ skip)."""

    def __init__(self, in_ch: int, exp_ch: int, out_ch: int, kernel: int, stride: int, se: bool, act: str,
                 depthwise: str = "dw", xsep_kernel: int | None = None, xsep_variant: str = "standard",
                 padding: str = "improved") -> None:
        super().__init__()
        self.conv_pw = ConvBnAct(in_ch, exp_ch, 1, act=act) if exp_ch != in_ch else nn.Identity()
        if depthwise == "dw":
            self.conv_dw: nn.Module = ConvBnAct(exp_ch, exp_ch, kernel, stride, groups=exp_ch, act=act)
        else:
            self.conv_dw = XSepConv(exp_ch, xsep_kernel or kernel, stride, variant=xsep_variant,
                                    padding=padding, act=act)
        self.se = (SqueezeExcite(exp_ch, make_divisible(exp_ch // 4, 8), act="relu", gate="hsigmoid")
                   if se else nn.Identity())
        self.conv_pwl = ConvBn(exp_ch, out_ch, 1)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + y if self.has_skip else y


class MobileNetV3Small(Classifier):
    """MobileNetV3-Small with per-block vanilla depthwise or XSepConv.

    Args:
        width: channel multiplier (paper: 0.5, 0.75, 1.0, 1.25); channels ``make_divisible(c·width, 8)``.
        layout: ``imagenet`` | ``cifar`` | ``tiny`` | ``tiny16`` (see module docstring).
        depthwise: ``"dw"``, ``"xsep"`` (the paper's setting) or 11 per-block entries.
        mid_kernel: kernel of the middle-stage stride-1 blocks (5; 7 for Fig. 5).
        down_kernel: kernel of the first 5×5 stride-2 block (5; 7 for Fig. 4).
        xsep_variant: ``standard`` | ``no2x2`` | ``behind`` | ``parallel`` (Fig. 6).
        padding: even-kernel padding of the 2×2 layers: ``improved`` | ``symmetric`` | ``asymmetric``.
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0.2 as in Howard et al.).
        width_rule: ``howard`` (head 1024 and, below 0.75, stem 16 kept) or ``scaled`` (see module docstring).
    """

    def __init__(self, width: float = 1.0, layout: str = "imagenet", depthwise: str | Sequence[str] = "dw",
                 mid_kernel: int = 5, down_kernel: int = 5, xsep_variant: str = "standard",
                 padding: str = "improved", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2, width_rule: str = "howard") -> None:
        super().__init__()
        if width_rule not in WIDTH_RULES:
            raise ValueError(f"MobileNetV3Small: width_rule must be one of {', '.join(WIDTH_RULES)}, got {width_rule!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"MobileNetV3Small: layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        if not width > 0:
            raise ValueError(f"MobileNetV3Small: width must be positive, got {width}")
        for name, k in (("mid_kernel", mid_kernel), ("down_kernel", down_kernel)):
            if k not in (3, 5, 7, 9):
                raise ValueError(f"MobileNetV3Small: {name} must be 3, 5, 7 or 9, got {k}")
        choices = self._choices(depthwise, mid_kernel, down_kernel)
        stem_stride, first_stride, total_stride = LAYOUTS[layout]
        self.in_chans, self.num_classes, self.drop_rate = in_chans, num_classes, float(drop_rate)
        self.width, self.layout, self.depthwise = width, layout, choices
        self.min_input_size = total_stride
        ch = lambda c: make_divisible(c * width, 8)  # noqa: E731

        howard = width_rule == "howard"
        stem_ch = 16 if howard and width < 0.75 else ch(16)
        self.stem = ConvBnAct(in_chans, stem_ch, 3, stem_stride, act="hswish")
        blocks, in_ch = [], stem_ch
        for i, (spec, choice) in enumerate(zip(SMALL_BLOCKS, choices)):
            kernel = {"mid": mid_kernel, "down": down_kernel}.get(spec.stage, spec.kernel)
            stride = first_stride if i == 0 else spec.stride
            kind, xk = _parse_choice(choice, kernel, spec.stage)
            exp = self._expanded(i, in_ch, ch) if howard else ch(spec.exp)
            blocks.append(InvertedResidual(in_ch, exp, ch(spec.out), kernel, stride, spec.se, spec.act,
                                           depthwise=kind, xsep_kernel=xk, xsep_variant=xsep_variant,
                                           padding=padding))
            in_ch = ch(spec.out)
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = ConvBnAct(in_ch, 6 * in_ch, 1, act="hswish")
        self.num_features = 6 * in_ch  # what forward_features returns (timm's meaning)
        self._hidden = 1024 if howard else ch(1024)
        self.head_hidden = nn.Linear(6 * in_ch, self._hidden)
        self.head_act = create_act("hswish")
        self.reset_classifier(num_classes)
        init_weights(self)
        self.padding_order = assign_padding_schedule(self)

    @staticmethod
    def _expanded(i: int, in_ch: int, ch: Callable[[float], int]) -> int:
        """Expanded channels under the Howard/timm rule: the expansion ratio of Table 2 (exp / input channels at
        width 1.0, as timm writes it: 4.5, 3.67, 4, 6, ...) times the block's *rounded* input channels."""
        if i == 0:
            return in_ch  # the first bneck has no expansion: its depthwise runs on the stem's channels
        spec, prev = SMALL_BLOCKS[i], SMALL_BLOCKS[i - 1]
        ratio = round(spec.exp / prev.out, 2)
        return make_divisible(in_ch * ratio, 8)

    @staticmethod
    def _choices(depthwise: str | Sequence[str], mid_kernel: int, down_kernel: int) -> list[str]:
        if depthwise == "dw":
            return ["dw"] * len(SMALL_BLOCKS)
        if depthwise == "xsep":
            return paper_depthwise(mid_kernel, down_kernel)
        if isinstance(depthwise, str) or len(depthwise) != len(SMALL_BLOCKS):
            raise ValueError(f"MobileNetV3Small: depthwise must be 'dw', 'xsep' or a list of "
                             f"{len(SMALL_BLOCKS)} entries, got {depthwise!r}")
        return [str(c) for c in depthwise]


    @property
    def head_hidden_size(self) -> int:
        """The pre-logits width (the 1024-wide hidden layer), as timm."""
        return self._hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool → linear 1024 → h-swish → dropout → classifier (``pre_logits``: the 1024 features)."""
        x = self.head_act(self.head_hidden(x.mean((2, 3))))
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)


_WIDTHS = {"050": 0.5, "075": 0.75, "100": 1.0, "125": 1.25}
_LAYOUT_INFO = {
    # layout: (name infix, input size, classes, source note)
    "imagenet": ("", (3, 224, 224), 1000, "Howard et al. Table 2 (ImageNet layout)"),
    "cifar": ("_cifar", (3, 32, 32), 10, "XSepConv Sec. 4 CIFAR-10/100, SVHN (32×32; stem and first block stride 1)"),
    "tiny": ("_tiny", (3, 56, 56), 200, "XSepConv Sec. 4 Tiny-ImageNet (56×56 training crops; CIFAR strides, "
                                       "stride 8)"),
}


#: declared preprocessing and layer names per layout (``pretrained_cfg``): Tiny-ImageNet is ImageNet's statistics
#: at full crop, CIFAR its own.
_CFG = {"imagenet": model_cfg(**IMAGENET_CFG, first_conv="stem.0", classifier="fc"),
        "cifar": model_cfg(**CIFAR_CFG, first_conv="stem.0", classifier="fc"),
        "tiny": model_cfg(**{**IMAGENET_CFG, "crop_pct": 1.0}, first_conv="stem.0", classifier="fc")}


def _register(name: str, layout: str, tag: str, xsep: bool, suffix: str = "", **fixed: object) -> None:
    """Register ``name`` (written out at the call, so grep finds every model) for one layout/width/depthwise."""
    infix, input_size, classes, source = _LAYOUT_INFO[layout]
    width = _WIDTHS[tag]
    if name != f"mobilenetv3_small{infix}_{tag}{suffix}{'_xsep' if xsep else ''}":
        raise ValueError(f"model name {name!r} does not match its layout {layout!r}, width {tag}, xsep={xsep}")
    if xsep:
        paper, src = CHEN, f"Sec. 4.2 / Fig. 3 (XSepConv MobileNetV3-Small); {source}"
    else:
        paper, src = HOWARD, source
    if suffix == "_k7down":
        src = "XSepConv Fig. 4 (first stride-2 block 7×7; XSepConv: downsampling form k = 7); " + source
        paper = CHEN
    elif suffix == "_k7mid":
        src = "XSepConv Fig. 5 (middle-stage kernels 7; XSepConv k = 7); " + source
        paper = CHEN

    def fn(**kwargs: object) -> MobileNetV3Small:
        args: dict[str, object] = dict(width=width, layout=layout, depthwise="xsep" if xsep else "dw",
                                       num_classes=classes, **fixed)
        args.update(kwargs)
        return MobileNetV3Small(**args)  # type: ignore[arg-type]

    fn.__name__ = name
    fn.__doc__ = f"MobileNetV3-Small {layout} layout, width {width}{', XSepConv' if xsep else ''}{suffix}."
    register_model(paper=paper, source=src, input_size=input_size, num_classes=classes, cfg=_CFG[layout],
                   tags=("mobilenetv3", layout) + (("xsepconv",) if xsep else ()), name=name)(fn)


_register("mobilenetv3_small_050", "imagenet", "050", xsep=False)
_register("mobilenetv3_small_050_xsep", "imagenet", "050", xsep=True)
_register("mobilenetv3_small_075", "imagenet", "075", xsep=False)
_register("mobilenetv3_small_075_xsep", "imagenet", "075", xsep=True)
_register("mobilenetv3_small_100", "imagenet", "100", xsep=False)
_register("mobilenetv3_small_100_xsep", "imagenet", "100", xsep=True)
_register("mobilenetv3_small_125", "imagenet", "125", xsep=False)
_register("mobilenetv3_small_125_xsep", "imagenet", "125", xsep=True)
_register("mobilenetv3_small_cifar_050", "cifar", "050", xsep=False)
_register("mobilenetv3_small_cifar_050_xsep", "cifar", "050", xsep=True)
_register("mobilenetv3_small_cifar_075", "cifar", "075", xsep=False)
_register("mobilenetv3_small_cifar_075_xsep", "cifar", "075", xsep=True)
_register("mobilenetv3_small_cifar_100", "cifar", "100", xsep=False)
_register("mobilenetv3_small_cifar_100_xsep", "cifar", "100", xsep=True)
_register("mobilenetv3_small_cifar_125", "cifar", "125", xsep=False)
_register("mobilenetv3_small_cifar_125_xsep", "cifar", "125", xsep=True)
_register("mobilenetv3_small_tiny_050", "tiny", "050", xsep=False)
_register("mobilenetv3_small_tiny_050_xsep", "tiny", "050", xsep=True)
_register("mobilenetv3_small_tiny_075", "tiny", "075", xsep=False)
_register("mobilenetv3_small_tiny_075_xsep", "tiny", "075", xsep=True)
_register("mobilenetv3_small_tiny_100", "tiny", "100", xsep=False)
_register("mobilenetv3_small_tiny_100_xsep", "tiny", "100", xsep=True)
_register("mobilenetv3_small_tiny_125", "tiny", "125", xsep=False)
_register("mobilenetv3_small_tiny_125_xsep", "tiny", "125", xsep=True)
_register("mobilenetv3_small_tiny_100_k7down", "tiny", "100", xsep=False, suffix="_k7down", down_kernel=7)
_register("mobilenetv3_small_tiny_100_k7mid", "tiny", "100", xsep=False, suffix="_k7mid", mid_kernel=7)
_register("mobilenetv3_small_tiny_100_k7down_xsep", "tiny", "100", xsep=True, suffix="_k7down", down_kernel=7)
_register("mobilenetv3_small_tiny_100_k7mid_xsep", "tiny", "100", xsep=True, suffix="_k7mid", mid_kernel=7)


# -- published checkpoint layouts (create_model(..., pretrained=PATH)) -------------------------------------------
def _torchvision_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^features\.0\.", "stem.", key)
    key = re.sub(r"^features\.12\.", "conv_head.", key)
    key = re.sub(r"^classifier\.0\.", "head_hidden.", key)
    key = re.sub(r"^classifier\.3\.", "fc.", key)
    m = re.match(r"^features\.(\d+)\.block\.(\d+)\.(.*)$", key)
    if not m:
        return key
    block, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    prefix = f"features.{block}.block"
    parts = [] if state[f"{prefix}.0.0.weight"].shape[1] == 1 else ["conv_pw"]  # no expansion: starts depthwise
    parts.append("conv_dw")
    if f"{prefix}.{len(parts)}.fc1.weight" in state:
        parts.append("se")
    parts.append("conv_pwl")
    return f"blocks.{block - 1}.{parts[j]}.{rest}"


_TIMM_MBV3_STAGES = (1, 2, 3, 2, 3)  # blocks per timm stage of mobilenetv3_small (stage 5 is the 576 conv)


def _timm_keys(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^conv_stem\.", "stem.0.", key)
    key = re.sub(r"^bn1\.", "stem.1.", key)
    key = re.sub(r"^blocks\.5\.0\.conv\.", "conv_head.0.", key)
    key = re.sub(r"^blocks\.5\.0\.bn1\.", "conv_head.1.", key)
    key = re.sub(r"^conv_head\.(weight|bias)$", r"head_hidden.\1", key)
    key = re.sub(r"^classifier\.", "fc.", key)
    m = re.match(r"^blocks\.(\d+)\.(\d+)\.(.*)$", key)
    if not m:
        return key
    stage, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    flat = sum(_TIMM_MBV3_STAGES[:stage]) + b
    names = ({"conv_dw": "conv_dw.0", "bn1": "conv_dw.1", "conv_pw": "conv_pwl.0", "bn2": "conv_pwl.1"} if flat == 0
             else {"conv_pw": "conv_pw.0", "bn1": "conv_pw.1", "conv_dw": "conv_dw.0", "bn2": "conv_dw.1",
                   "conv_pwl": "conv_pwl.0", "bn3": "conv_pwl.1"})
    names.update({"se.conv_reduce": "se.fc1", "se.conv_expand": "se.fc2"})
    module, leaf = rest.rsplit(".", 1)
    return f"blocks.{flat}.{names.get(module, module)}.{leaf}"


CHECKPOINT_ADAPTERS = (CheckpointAdapter("torchvision MobileNetV3", "features.1.block.0.0.weight", _torchvision_keys),
                       CheckpointAdapter("timm MobileNetV3", "conv_stem.weight", _timm_keys))
