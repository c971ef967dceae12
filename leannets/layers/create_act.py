"""One activation factory: ``create_act(name, channels)``.

Pointwise activations ignore ``channels``; *spatial* activations such as xUnit need it.
Other layer files add their activations with :func:`register_act`.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import torch.nn as nn

from leannets.registry import Registry

__all__ = ["create_act", "register_act", "list_acts", "ACTS"]

# Importing the package registers the activations of every layer file (xunit, ...).
ACTS: Registry[Callable[..., nn.Module]] = Registry("activation", loader=lambda: importlib.import_module("leannets.layers"))
_BUILTIN: dict[str, Callable[..., nn.Module]] = {
    "relu": lambda channels=None, **kw: nn.ReLU(inplace=kw.get("inplace", True)),
    "relu6": lambda channels=None, **kw: nn.ReLU6(inplace=kw.get("inplace", True)),
    "hswish": lambda channels=None, **kw: nn.Hardswish(inplace=kw.get("inplace", True)),
    "hsigmoid": lambda channels=None, **kw: nn.Hardsigmoid(inplace=kw.get("inplace", True)),
    "sigmoid": lambda channels=None, **kw: nn.Sigmoid(),
    "silu": lambda channels=None, **kw: nn.SiLU(inplace=kw.get("inplace", True)),
    "gelu": lambda channels=None, **kw: nn.GELU(),
    "prelu": lambda channels=None, **kw: nn.PReLU(channels or 1),
    "identity": lambda channels=None, **kw: nn.Identity(),
}
for _name, _builder in _BUILTIN.items():
    ACTS.register(_name, _builder)


def register_act(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder(channels=None, **kwargs) -> nn.Module`` under ``name``."""
    ACTS.register(name, builder)


def list_acts() -> list[str]:
    return ACTS.names()


def create_act(name: str | nn.Module | None, channels: int | None = None, **kwargs: Any) -> nn.Module:
    """Build an activation by name.

    Args:
        name: registered name (``relu``, ``hswish``, ``xunit``, ...), ``None`` for identity,
            or a module instance (returned as is).
        channels: channel count, required by spatial activations.
        **kwargs: forwarded to the builder (e.g. ``kernel_size`` for xUnit).
    """
    if name is None:
        return nn.Identity()
    if isinstance(name, nn.Module):
        return name
    return ACTS.get(name.lower())(channels=channels, **kwargs)
