"""One activation factory: ``create_act(name, channels)``.

Pointwise activations ignore ``channels``; *spatial* activations such as xUnit need it.
Other layer files add their activations with :func:`register_act`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

__all__ = ["create_act", "register_act", "list_acts"]

_ACTS: dict[str, Callable[..., nn.Module]] = {
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


def register_act(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder(channels=None, **kwargs) -> nn.Module`` under ``name``."""
    _ACTS[name] = builder


def list_acts() -> list[str]:
    _ensure_loaded()
    return sorted(_ACTS)


def _ensure_loaded() -> None:
    import leannets.layers  # noqa: F401  (registers xunit etc.)


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
    _ensure_loaded()
    key = name.lower()
    if key not in _ACTS:
        raise ValueError(f"Unknown activation {name!r}; allowed: {', '.join(sorted(_ACTS))}")
    return _ACTS[key](channels=channels, **kwargs)
