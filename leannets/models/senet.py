"""SE-ResNet-56 for CIFAR (Hu et al. 2018) with a pluggable first conv, as compared by Bao et al.

A :class:`~leannets.models.resnet_cifar.CifarResNet` (n = 9, widths 16/32/64) whose basic blocks
put a Squeeze-and-Excitation unit (bias-free FCs, reduction 8) after the second BN, before the
residual addition (the Multiception authors' ``CifarSEBasicBlock``).
"""
from __future__ import annotations

from typing import Any

from ._registry import register_model
from .resnet_cifar import BAO, CONV_TYPES, CifarResNet

__all__ = ["seresnet56"]


def seresnet56(conv_type: str = "standard", **kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (n = 9, SE reduction 8) with ``conv_type`` first convs."""
    return CifarResNet(56, conv_type=conv_type, **{"se_reduction": 8, **kwargs})


for _ct in CONV_TYPES:
    def _fn(conv_type: str = _ct, **kwargs: Any) -> CifarResNet:
        return seresnet56(conv_type, **kwargs)

    _fn.__name__ = _fn.__qualname__ = f"seresnet56_{_ct}"
    _fn.__doc__ = f"SE-ResNet-56 (CIFAR) with {_ct} first convs."
    register_model(paper=BAO, source=f"Table 5 / Table 1, SeNet-56 ({_ct})",
                   tags=("multiception", "cifar", _ct))(_fn)
    globals()[_fn.__name__] = _fn
