"""Shake-Shake ResNet-26 2×96d (Gastaldi 2017) for CIFAR with a pluggable first conv per branch,
as compared by Bao et al.

Layout of the Multiception authors' ``ShakeResNet`` (the common PyTorch port of Gastaldi's
Torch code): 3×3 stem conv (16, with bias, no BN); three stages of (depth − 2)/6 shake blocks
with widths w, 2w, 4w; each block has two residual branches ReLU → ``conv_type`` conv (+BN) →
ReLU → 3×3 conv → BN, mixed by shake-shake; where the shape changes the shortcut is ReLU → two
1×1 convs (out/2 each) on the input subsampled at offsets (0, 0) and (1, 1) → concat → BN;
final ReLU → global average pool → linear.

Shake-shake (training): out = α·b1 + (1 − α)·b2 with α ~ U(0, 1) drawn per sample; the
backward pass uses an independent β ~ U(0, 1) per sample (grad b1 = β·g, grad b2 = (1 − β)·g).
Eval: α = 0.5.

The shortcut's BN after the concatenation is stored as one BN per half (identical function,
BN is per-channel) so that BN folding can fold both into their 1×1 convs.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import create_conv
from ..layers.multiception import stage_kernel_sizes
from ._base import Classifier
from ._registry import CIFAR_CFG, model_cfg, register_model
from .resnet_cifar import BAO

__all__ = ["ShakeShake", "shake_shake", "ShakeBlock", "ShakeShortcut", "ShakeResNet"]

GASTALDI = "Gastaldi, Shake-Shake regularization, ICLR workshop 2017"


class ShakeShake(torch.autograd.Function):
    """α·x1 + (1 − α)·x2 forward; β·g and (1 − β)·g backward (α, β given per sample)."""

    @staticmethod
    def forward(ctx: Any, x1: torch.Tensor, x2: torch.Tensor, alpha: torch.Tensor,  # noqa: D102
                beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return x2 + alpha * (x1 - x2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:  # noqa: D102
        (beta,) = ctx.saved_tensors
        g1 = beta * grad
        return g1, grad - g1, None, None


def shake_shake(x1: torch.Tensor, x2: torch.Tensor, training: bool) -> torch.Tensor:
    """Shake-shake mix of two branch outputs: random per-sample α (forward) and independent β
    (backward) in training, the average in eval."""
    if not training:
        return 0.5 * (x1 + x2)
    shape = (x1.shape[0],) + (1,) * (x1.dim() - 1)
    alpha = torch.rand(shape, device=x1.device, dtype=x1.dtype)
    beta = torch.rand(shape, device=x1.device, dtype=x1.dtype)
    return ShakeShake.apply(x1, x2, alpha, beta)


class ShakeShortcut(nn.Module):
    """ReLU → [subsample at (0,0) → 1×1 conv → BN ‖ subsample at (1,1) → 1×1 conv → BN] → concat."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch % 2:
            raise ValueError(f"ShakeShortcut: out_ch must be even, got {out_ch}")
        self.stride = stride
        self.path1 = create_conv("standard", in_ch, out_ch // 2, 1, 1)
        self.path2 = create_conv("standard", in_ch, out_ch // 2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x)
        s = self.stride
        h1 = h[:, :, ::s, ::s]
        h2 = F.pad(h[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::s, ::s]  # shifted by one pixel
        return torch.cat((self.path1(h1), self.path2(h2)), 1)


class ShakeBlock(nn.Module):
    """Two residual branches ReLU → conv_type → ReLU → 3×3 conv → BN, shake-shake mixed, + shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, conv_type: str = "standard",
                 kernel_size: int | Sequence[int] = 3, conv_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.branch1 = self._branch(in_ch, out_ch, stride, conv_type, kernel_size, conv_kwargs)
        self.branch2 = self._branch(in_ch, out_ch, stride, conv_type, kernel_size, conv_kwargs)
        self.shortcut = nn.Identity() if in_ch == out_ch and stride == 1 else ShakeShortcut(in_ch, out_ch, stride)

    @staticmethod
    def _branch(in_ch: int, out_ch: int, stride: int, conv_type: str, kernel_size: int | Sequence[int],
                conv_kwargs: dict[str, Any] | None) -> nn.Sequential:
        return nn.Sequential(
            nn.ReLU(inplace=False),  # the input also feeds the other branch and the shortcut
            create_conv(conv_type, in_ch, out_ch, kernel_size, stride, **(conv_kwargs or {})),
            nn.ReLU(inplace=True),
            create_conv("standard", out_ch, out_ch, 3, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = shake_shake(self.branch1(x), self.branch2(x), self.training)
        return h + self.shortcut(x)


class ShakeResNet(Classifier):
    """Shake-Shake ResNet (2 branches) for 32×32 inputs.

    Args:
        depth: 6n+2 (26 → 4 blocks per stage).
        base_width: width of the first stage (96 for 2×96d); stages are w, 2w, 4w.
        conv_type: :func:`create_conv` type of each branch's first conv.
        kernel_sizes: per-stage kernel size(s); ``None``: {3,5,7}, {3,5}, {3,3} for multi-kernel
            types, 3 otherwise.
        conv_kwargs: options for the replaced convs.
        num_classes: classifier outputs.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, depth: int = 26, base_width: int = 96, conv_type: str = "standard",
                 kernel_sizes: Sequence[int | Sequence[int]] | None = None,
                 conv_kwargs: dict[str, Any] | None = None, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ShakeResNet: depth must be 6n+2 with n >= 1 (26, 32, ...), got {depth}")
        if base_width <= 0 or base_width % 2:
            raise ValueError(f"ShakeResNet: base_width must be a positive even number, got {base_width}")
        n = (depth - 2) // 6
        self.in_chans, self.drop_rate, self.conv_type = in_chans, drop_rate, conv_type
        widths = (base_width, 2 * base_width, 4 * base_width)
        self.kernel_sizes = stage_kernel_sizes(conv_type, kernel_sizes, 3, "ShakeResNet")
        self.stem = nn.Conv2d(in_chans, 16, 3, padding=1)
        stages, ch = [], 16
        for i, (width, ks) in enumerate(zip(widths, self.kernel_sizes)):
            blocks = []
            for j in range(n):
                blocks.append(ShakeBlock(ch, width, 2 if (i > 0 and j == 0) else 1, conv_type, ks, conv_kwargs))
                ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = ch
        self.min_input_size = 4
        self.reset_classifier(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the authors' code: N(0, 2/(k²·C_out)) convs, BN = identity, zero linear bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.stages(self.stem(x)))


#: declared preprocessing and layer names (``pretrained_cfg``)
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="stem", classifier="fc")


@register_model(paper=BAO, source=f"Table 5 / Table 1, ShakeNet-26-2x96d (standard); architecture: {GASTALDI}",
                tags=("multiception", "cifar", "shake-shake", "standard"), cfg=_CIFAR)
def shakenet26_2x96d_standard(**kwargs: Any) -> ShakeResNet:
    """Shake-Shake-26 2×96d (CIFAR) with standard first convs; num_classes=100 for the CIFAR-100 rows of Table 5."""
    return ShakeResNet(26, 96, **{"conv_type": "standard", **kwargs})


@register_model(paper=BAO, source=f"Table 5 / Table 1, ShakeNet-26-2x96d (dsconv); architecture: {GASTALDI}",
                tags=("multiception", "cifar", "shake-shake", "dsconv"), cfg=_CIFAR)
def shakenet26_2x96d_dsconv(**kwargs: Any) -> ShakeResNet:
    """Shake-Shake-26 2×96d (CIFAR) with dsconv first convs; num_classes=100 for the CIFAR-100 rows of Table 5."""
    return ShakeResNet(26, 96, **{"conv_type": "dsconv", **kwargs})


@register_model(paper=BAO, source=f"Table 5 / Table 1, ShakeNet-26-2x96d (mixconv); architecture: {GASTALDI}",
                tags=("multiception", "cifar", "shake-shake", "mixconv"), cfg=_CIFAR)
def shakenet26_2x96d_mixconv(**kwargs: Any) -> ShakeResNet:
    """Shake-Shake-26 2×96d (CIFAR) with mixconv first convs; num_classes=100 for the CIFAR-100 rows of Table 5."""
    return ShakeResNet(26, 96, **{"conv_type": "mixconv", **kwargs})


@register_model(paper=BAO, source=f"Table 5 / Table 1, ShakeNet-26-2x96d (multiception); architecture: {GASTALDI}",
                tags=("multiception", "cifar", "shake-shake", "multiception"), cfg=_CIFAR)
def shakenet26_2x96d_multiception(**kwargs: Any) -> ShakeResNet:
    """Shake-Shake-26 2×96d (CIFAR) with multiception first convs; num_classes=100 for the CIFAR-100 rows of Table 5."""
    return ShakeResNet(26, 96, **{"conv_type": "multiception", **kwargs})
