"""One convolution factory: ``create_conv(conv_type, in_ch, out_ch, kernel_size, stride)``.

Every ``conv_type`` returns a module that maps ``in_ch`` to ``out_ch`` channels with the
given spatial kernel(s) and stride and **ends with BatchNorm** (so blocks add only the
activation). Types are registered by their own layer files via :func:`register_conv_type`:

- ``standard``: Conv k×k → BN (here).
- ``dsconv``, ``mixconv``, ``multiception``: ``layers/multiception.py``.
- ``xsepconv``: ``layers/xsepconv.py`` (XSepConv depthwise → pointwise → BN).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import torch.nn as nn

from leannets.registry import Registry

from .create_act import create_act
from .depthwise import conv2d

__all__ = ["create_conv", "register_conv_type", "list_conv_types", "ConvBn", "ConvBnAct", "CONV_TYPES"]

# Importing the package registers the conv types of every layer file.
CONV_TYPES: Registry[Callable[..., nn.Module]] = Registry(
    "conv_type", loader=lambda: importlib.import_module("leannets.layers"))


def register_conv_type(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(in_ch, out_ch, kernel_size, stride, **kw)``."""

    return CONV_TYPES.decorator(name)


def list_conv_types() -> list[str]:
    return CONV_TYPES.names()


def create_conv(
    conv_type: str,
    in_ch: int,
    out_ch: int,
    kernel_size: int | Sequence[int] = 3,
    stride: int = 1,
    **kwargs: Any,
) -> nn.Module:
    """Build a conv (+BN) of the registered ``conv_type``.

    Args:
        conv_type: one of :func:`list_conv_types`.
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: a size, or a sequence of sizes for multi-kernel types
            (``mixconv``/``multiception``); single-kernel types take the largest.
        stride: spatial stride.
        **kwargs: type-specific options.
    """
    builder = CONV_TYPES.get(conv_type)
    if in_ch <= 0 or out_ch <= 0:
        raise ValueError(f"create_conv({conv_type!r}): channels must be positive, got in_ch={in_ch}, out_ch={out_ch}")
    return builder(in_ch, out_ch, kernel_size, stride, **kwargs)


def single_kernel(conv_type: str, kernel_size: int | Sequence[int]) -> int:
    """The one kernel size of a single-kernel conv type (validated, odd and positive)."""
    if isinstance(kernel_size, int):
        sizes = [kernel_size]
    else:
        sizes = list(kernel_size)
    if not sizes:
        raise ValueError(f"{conv_type}: kernel_size must not be empty")
    k = max(sizes)
    if k <= 0:
        raise ValueError(f"{conv_type}: kernel_size must be positive, got {kernel_size!r}")
    return k


class ConvBn(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 padding: int | None = None, dilation: int = 1) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        )


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation from :func:`create_act`."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act: str | None = "relu", padding: int | None = None) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2
        super().__init__(
            conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            create_act(act, out_ch),
        )


@register_conv_type("standard")
def _standard(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kwargs: Any) -> nn.Module:
    if kwargs:
        raise ValueError(f"conv_type 'standard' takes no options, got {sorted(kwargs)}")
    return ConvBn(in_ch, out_ch, single_kernel("standard", kernel_size), stride)
