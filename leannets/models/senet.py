"""SE-ResNet-56 for CIFAR (Hu et al. 2018) with a pluggable first conv, as compared by Bao et al.

A :class:`~leannets.models.resnet_cifar.CifarResNet` (n = 9, widths 16/32/64) whose basic blocks
put a Squeeze-and-Excitation unit (bias-free FCs, reduction 8) after the second BN, before the
residual addition (the Multiception authors' ``CifarSEBasicBlock``).
"""
from __future__ import annotations

from typing import Any

from ._registry import CIFAR_CFG, model_cfg, register_model
from .resnet_cifar import BAO, CifarResNet

__all__ = ["seresnet56"]


def seresnet56(conv_type: str = "standard", **kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (n = 9, SE reduction 8) with ``conv_type`` first convs."""
    return CifarResNet(56, conv_type=conv_type, **{"se_reduction": 8, **kwargs})


#: declared preprocessing and layer names (``pretrained_cfg``)
_CIFAR = model_cfg(**CIFAR_CFG, first_conv="stem.0.0", classifier="fc")


@register_model(paper=BAO, source="Table 5 / Table 1, SeNet-56 (standard)",
                tags=("multiception", "cifar", "standard"), cfg=_CIFAR)
def seresnet56_standard(**kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (CIFAR) with standard first convs."""
    return seresnet56("standard", **kwargs)


@register_model(paper=BAO, source="Table 5 / Table 1, SeNet-56 (dsconv)",
                tags=("multiception", "cifar", "dsconv"), cfg=_CIFAR)
def seresnet56_dsconv(**kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (CIFAR) with dsconv first convs."""
    return seresnet56("dsconv", **kwargs)


@register_model(paper=BAO, source="Table 5 / Table 1, SeNet-56 (mixconv)",
                tags=("multiception", "cifar", "mixconv"), cfg=_CIFAR)
def seresnet56_mixconv(**kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (CIFAR) with mixconv first convs."""
    return seresnet56("mixconv", **kwargs)


@register_model(paper=BAO, source="Table 5 / Table 1, SeNet-56 (multiception)",
                tags=("multiception", "cifar", "multiception"), cfg=_CIFAR)
def seresnet56_multiception(**kwargs: Any) -> CifarResNet:
    """SE-ResNet-56 (CIFAR) with multiception first convs."""
    return seresnet56("multiception", **kwargs)
