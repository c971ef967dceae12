"""Squeeze-and-Excitation (Hu et al. 2018)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .create_act import create_act


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class SqueezeExcite(nn.Module):
    """Global pool → FC (reduce) → act → FC (expand) → gate; output = input × gate.

    Args:
        channels: input/output channels.
        rd_channels: reduced channels (``None``: ``channels // reduction``).
        reduction: reduction ratio used when ``rd_channels`` is ``None``.
        act: activation between the FCs.
        gate: gate activation (``sigmoid`` or ``hsigmoid``).
        bias: whether the FC (1×1 conv) layers have biases.
    """

    def __init__(self, channels: int, rd_channels: int | None = None, reduction: int = 16,
                 act: str = "relu", gate: str = "sigmoid", bias: bool = True) -> None:
        super().__init__()
        rd = rd_channels or max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=bias)
        self.act = create_act(act, rd)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=bias)
        self.gate = create_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
