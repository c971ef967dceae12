"""xUnit: a learnable activation with spatial connections (Kligvasser et al., CVPR 2018;
Kligvasser & Michaeli, *Dense xUnit Networks*).

The activation multiplies its input by a weight map in ``[0, 1]`` computed from the input
itself by a small spatial branch::

    DxNet design (pointwise=True, gate="sigmoid"):
        x → Conv1×1 → BN → ReLU → depthwise k×k → BN → sigmoid → w;   y = x · w
    CVPR'18 original (pointwise=False, gate="gaussian"):
        x → BN → ReLU → depthwise k×k → BN → exp(−(·)²) → w;          y = x · w

``batch_norm=False`` removes every BatchNorm (used for super-resolution, EDSR-style).
Both convolutions carry a bias, as in the authors' code, so the depthwise part has
``k·K² + k`` parameters (``82k`` for the paper's 9×9 kernels) and the 1×1 part ``k² + k``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .create_act import register_act
from .depthwise import conv2d
from .kernels import check_input
from .norm import batch_norm

__all__ = ["XUnit", "GaussianGate", "xunit_num_params", "XUNIT_GATES"]

XUNIT_GATES = ("sigmoid", "gaussian")


class GaussianGate(nn.Module):
    """``exp(−x²)``: maps any real input into ``(0, 1]`` (the CVPR'18 xUnit gate)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-x.square())


def xunit_num_params(channels: int, kernel_size: int = 9, pointwise: bool = True, batch_norm: bool = True) -> int:
    """Learnable parameters of :class:`XUnit` by formula.

    depthwise K×K with bias: ``C·K² + C``; optional 1×1 with bias: ``C² + C``; every BN: ``2C``
    (two BNs in both designs: before the ReLU and before the gate).
    """
    c = channels
    total = c * kernel_size ** 2 + c
    if pointwise:
        total += c * c + c
    if batch_norm:
        total += 2 * (2 * c)
    return total


class XUnit(nn.Module):
    """Spatial gating activation ``y = x · g(x)`` with ``g(x) ∈ [0, 1]``.

    Args:
        channels: input (= output) channels C.
        kernel_size: odd depthwise kernel size K (the paper always uses 9).
        gate: ``"sigmoid"`` (DxNet) or ``"gaussian"`` (``exp(−x²)``, CVPR'18 original).
        pointwise: add the 1×1 cross-channel conv at the branch input (DxNet design).
        batch_norm: put a BN before each nonlinearity of the branch; ``False`` removes all BNs.
    """

    def __init__(self, channels: int, kernel_size: int = 9, gate: str = "sigmoid", pointwise: bool = True,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels <= 0:
            raise ValueError(f"XUnit: channels must be a positive int, got {channels!r}")
        if not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"XUnit: kernel_size must be a positive odd int, got {kernel_size!r}")
        if gate not in XUNIT_GATES:
            raise ValueError(f"XUnit: gate must be one of {XUNIT_GATES}, got {gate!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.gate_type = gate
        self.pointwise = pointwise
        self.batch_norm = batch_norm
        layers: list[nn.Module] = []
        if pointwise:
            layers.append(nn.Conv2d(channels, channels, 1, bias=True))
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers += [nn.ReLU(inplace=pointwise or batch_norm),  # never in place on the caller's input
                   conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=True)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        layers.append(nn.Sigmoid() if gate == "sigmoid" else GaussianGate())
        self.branch = nn.Sequential(*layers)

    def weight_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``g(x)``, same shape as ``x``, values in ``[0, 1]``."""
        check_input(x, self.channels, "XUnit")
        for module in self.branch:
            x = batch_norm(module, x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight_map(x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, gate={self.gate_type!r}, "
                f"pointwise={self.pointwise}, batch_norm={self.batch_norm}")


def _need_channels(name: str, channels: int | None) -> int:
    if channels is None:
        raise ValueError(f"activation {name!r} is spatial and needs `channels` (create_act({name!r}, channels=C))")
    return channels


def _xunit(channels: int | None = None, **kw) -> XUnit:
    kw.pop("inplace", None)
    return XUnit(_need_channels("xunit", channels), **{"kernel_size": 9, "gate": "sigmoid", "pointwise": True, **kw})


def _xunit_original(channels: int | None = None, **kw) -> XUnit:
    kw.pop("inplace", None)
    return XUnit(_need_channels("xunit_original", channels),
                 **{"kernel_size": 9, "gate": "gaussian", "pointwise": False, **kw})


register_act("xunit", _xunit)
register_act("xunit_original", _xunit_original)
