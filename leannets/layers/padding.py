"""Padding for even-sized kernels: asymmetric, symmetric (Wu et al. 2019) and the improved
network-wide symmetric schedule of XSepConv (Chen et al. 2020, Sec. 3.2).

An even kernel (2×2) cannot be centred, so "same" padding must add one more zero on one side,
which shifts the features half a pixel toward the other side (the *shift problem*). Strategies:

- ``asymmetric``: every layer pads right-bottom (features drift toward the top-left;
  N layers drift N/2 pixels).
- ``symmetric``: Wu et al. 2019: the channels are split into 4 groups, each padded toward one of the
  four corners. One layer has no net shift, but a channel that stays in its group (depthwise)
  drifts N/2 pixels in its group's direction.
- ``improved``: the i-th even-kernel layer of the *network* pads
  ``[right-bottom, left-top, left-bottom, right-top][(i - 1) % 4]``; with N % 4 == 1 the last layer
  uses the per-group padding. For N % 4 == 0 every path through the network has zero net shift.

The index i is a network-level property: :func:`assign_padding_schedule` runs one probe forward,
records the order in which the ``improved`` pad layers are first *called* and stores
``index``/``total`` on each (plain Python ints, so ``F.pad`` sees constants in ONNX/TorchScript
exports and ``deepcopy``/``fold_bn`` keep them). Models call it at the end of ``__init__``; the
schedule is a deterministic function of the architecture and is not saved in ``state_dict``.
A layer that was never assigned behaves as a network of one even layer (N = 1, i.e. the
per-group symmetric padding), so stand-alone blocks are still shift-free.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PADDING_STRATEGIES", "IMPROVED_DIRECTIONS", "GROUP_DIRECTIONS", "EvenPad2d", "same_pad_amounts",
           "assign_padding_schedule", "padding_schedule", "improved_direction"]

PADDING_STRATEGIES = ("asymmetric", "symmetric", "improved")
# Direction = the sides that receive the extra zero (features then drift the opposite way).
IMPROVED_DIRECTIONS = ("right_bottom", "left_top", "left_bottom", "right_top")
# Wu et al. 2019 / XSepConv Fig. 2(a) order of the four channel groups.
GROUP_DIRECTIONS = ("left_top", "right_bottom", "left_bottom", "right_top")
_GROUPS = "groups"


def improved_direction(index: int, total: int) -> str:
    """Direction of the ``index``-th (1-based) of ``total`` even layers under the improved schedule."""
    if not 1 <= index <= total:
        raise ValueError(f"improved padding: index must be in [1, {total}], got {index}")
    if total % 4 == 1 and index == total:
        return _GROUPS
    return IMPROVED_DIRECTIONS[(index - 1) % 4]


def same_pad_amounts(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(small, large) zero counts that give ``ceil(size / stride)`` outputs ("same" padding)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_tuple(direction: str, h: tuple[int, int], w: tuple[int, int]) -> tuple[int, int, int, int]:
    """``F.pad`` tuple (left, right, top, bottom) putting the larger share on ``direction``'s sides."""
    left, right = (w[1], w[0]) if "left" in direction else (w[0], w[1])
    top, bottom = (h[1], h[0]) if "top" in direction else (h[0], h[1])
    return left, right, top, bottom


class EvenPad2d(nn.Module):
    """"Same" zero padding placed *before* an even-kernel conv, with a shift-control strategy.

    Args:
        kernel_size: the conv's kernel (int or (kh, kw)); odd sizes pad symmetrically.
        stride: the conv's stride (int or (sh, sw)).
        strategy: ``asymmetric``, ``symmetric`` or ``improved`` (see module docstring).
    """

    def __init__(self, kernel_size: int | Sequence[int] = 2, stride: int | Sequence[int] = 1,
                 strategy: str = "improved") -> None:
        super().__init__()
        if strategy not in PADDING_STRATEGIES:
            raise ValueError(f"EvenPad2d: strategy must be one of {PADDING_STRATEGIES}, got {strategy!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.strategy = strategy
        self.index: int | None = None
        self.total: int | None = None

    @property
    def direction(self) -> str:
        """The padding actually applied: one of :data:`IMPROVED_DIRECTIONS` or ``"groups"``."""
        if self.strategy == "asymmetric":
            return "right_bottom"
        if self.strategy == "symmetric" or self.index is None or self.total is None:
            return _GROUPS
        return improved_direction(self.index, self.total)

    def _amounts(self, size: torch.SymInt | int, axis: int) -> tuple[int, int]:
        k, s = self.kernel_size[axis], self.stride[axis]
        if s == 1:  # shape-independent: keeps traced/exported graphs free of size arithmetic
            return (k - 1) // 2, k - 1 - (k - 1) // 2
        return same_pad_amounts(int(size), k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._amounts(x.shape[-2], 0)
        w = self._amounts(x.shape[-1], 1)
        direction = self.direction
        if direction != _GROUPS:
            return F.pad(x, _pad_tuple(direction, h, w))
        chunks = torch.tensor_split(x, 4, dim=1)
        return torch.cat([F.pad(c, _pad_tuple(d, h, w)) for c, d in zip(chunks, GROUP_DIRECTIONS)], dim=1)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, strategy={self.strategy!r}"
        if self.strategy == "improved":
            s += f", index={self.index}, total={self.total}, direction={self.direction!r}"
        return s


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"EvenPad2d: {what} must be a positive int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


def _default_probe(model: nn.Module) -> torch.Tensor:
    size = max(getattr(model, "min_input_size", 1), 8)
    div = getattr(model, "size_divisor", 1)
    size = -(-size // div) * div
    return torch.zeros(1, getattr(model, "in_chans", 3), size, size)


def assign_padding_schedule(model: nn.Module, example_input: torch.Tensor | None = None) -> list[str]:
    """Number the model's ``improved`` :class:`EvenPad2d` layers in first-forward order.

    Runs one eval-mode, no-grad forward on ``example_input`` (default: a zero image of the
    model's minimum size; running statistics are untouched). Layers the probe never reaches are
    numbered after the others in module order. Returns the layer names in schedule order.
    """
    names = {m: n for n, m in model.named_modules() if isinstance(m, EvenPad2d) and m.strategy == "improved"}
    if not names:
        return []
    order: list[str] = []

    def hook(mod: nn.Module, inp: object) -> None:
        if names[mod] not in order:
            order.append(names[mod])

    handles = [m.register_forward_pre_hook(hook) for m in names]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(_default_probe(model) if example_input is None else example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    order += [n for n in names.values() if n not in order]
    for i, name in enumerate(order, start=1):
        layer = model.get_submodule(name)
        layer.index, layer.total = i, len(order)
    return order


def padding_schedule(model: nn.Module) -> list[tuple[str, int | None, str]]:
    """(name, index, direction) of every :class:`EvenPad2d`, sorted by index (unassigned last)."""
    rows = [(n, m.index, m.direction) for n, m in model.named_modules() if isinstance(m, EvenPad2d)]
    return sorted(rows, key=lambda r: (r[1] is None, r[1] or 0))
