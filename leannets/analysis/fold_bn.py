"""Fold every BatchNorm that directly follows a convolution into that convolution.

Which BN follows which conv is found by *running* the model once on a probe input and
watching the tensors: a BN is folded only when its input is exactly the output of a
``nn.Conv2d`` (any groups / kernel shape, incl. depthwise, 1×k, k×1, 2×2) and nothing else
reads that output. This sees functional calls and custom layers that a module-order
heuristic would get wrong, and leaves BN after concatenations, pooling, etc. alone.
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Any, Iterable

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from leannets.layers.dispatch import reference_path
from leannets.models._base import LeanModule

__all__ = ["fold_bn", "find_conv_bn_pairs", "fuse_conv_bn_weights", "probe_inputs"]


class _UseCounter(TorchFunctionMode):
    """Counts how many torch functions that compute a tensor read each tensor (keyed by ``id``; tensors
    are kept alive). Metadata reads (``dim()``, ``shape``) return no tensor and are not uses."""

    def __init__(self) -> None:
        super().__init__()
        self.uses: Counter[int] = Counter()
        self._keep: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) or (isinstance(out, (list, tuple)) and
                                             any(isinstance(t, torch.Tensor) for t in out)):
            for arg in list(args) + list(kwargs.values()):
                for t in arg if isinstance(arg, (list, tuple)) else (arg,):
                    if isinstance(t, torch.Tensor):
                        self.uses[id(t)] += 1
                        self._keep.append(t)
        return out


def probe_inputs(model: nn.Module, modules: Iterable[nn.Module], x: torch.Tensor) -> dict[nn.Module, Any]:
    """The first positional input each of ``modules`` receives in one no-grad forward of ``model`` on ``x``, in the
    order they are first called (``None`` for one called without a positional input; absent: not reached)."""
    seen: dict[nn.Module, Any] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.setdefault(mod, args[0] if args else None))
             for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _default_probe(model: nn.Module) -> torch.Tensor:
    in_chans = getattr(model, "in_chans", 3)
    size = 32
    if isinstance(model, LeanModule):
        size = max(size, model.min_input_size)
        div = model.size_divisor
        size = -(-size // div) * div
    return torch.randn(1, in_chans, size, size)


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor | None = None) -> list[tuple[str, str]]:
    """Names of (conv, bn) module pairs where the BN reads only that conv's output.

    Modules called more than once per forward are excluded (folding would be ambiguous).
    """
    example_input = _default_probe(model) if example_input is None else example_input
    names = {m: n for n, m in model.named_modules()}
    conv_out: dict[int, list[str]] = {}
    bn_in: dict[str, list[int]] = {}
    calls: Counter[str] = Counter()
    keep: list[Any] = []

    def conv_hook(mod: nn.Module, inp: Any, out: Any) -> None:
        calls[names[mod]] += 1
        if isinstance(out, torch.Tensor):
            keep.append(out)
            conv_out.setdefault(id(out), []).append(names[mod])

    def bn_hook(mod: nn.Module, inp: Any) -> None:
        calls[names[mod]] += 1
        keep.append(inp[0])
        bn_in.setdefault(names[mod], []).append(id(inp[0]))

    handles = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.BatchNorm2d):
            handles.append(mod.register_forward_pre_hook(bn_hook))
    counter = _UseCounter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), reference_path(), counter:  # every conv and BN runs as its own module
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    pairs = []
    for bn_name, ids in bn_in.items():
        if calls[bn_name] != 1:
            continue
        convs = conv_out.get(ids[0], [])
        if len(convs) == 1 and calls[convs[0]] == 1 and counter.uses[ids[0]] == 1:
            pairs.append((convs[0], bn_name))
    return pairs


def fuse_conv_bn_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Rewrite ``conv`` in place so that ``conv(x) == bn(conv_old(x))`` in eval mode."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        new_bias = (bias - bn.running_mean) * scale + beta
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias.detach().clone())
        else:
            conv.bias.copy_(new_bias)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def fold_bn(model: nn.Module, example_input: torch.Tensor | None = None, inplace: bool = False) -> nn.Module:
    """Return an eval-mode model with every conv→BN pair folded into the conv.

    Args:
        model: any module; BN layers not fed directly by a conv are kept.
        example_input: a probe input (default: ``(1, in_chans, 32, 32)`` or the model's minimum).
        inplace: modify ``model`` itself instead of a deep copy.
    """
    folded = model if inplace else copy.deepcopy(model)
    folded.eval()
    pairs = find_conv_bn_pairs(folded, example_input)
    for conv_name, bn_name in pairs:
        fuse_conv_bn_weights(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        _set_module(folded, bn_name, nn.Identity())
    folded.folded_bn_pairs = len(pairs)  # type: ignore[assignment]
    return folded
