"""Start from published weights: torchvision / timm ImageNet checkpoints into leannets models.

``create_model(name, pretrained="PATH")`` (or :func:`load_pretrained`) reads a ``.pth`` / ``.pt`` (loaded with
``weights_only=True``) or a ``.safetensors`` file (read without pickle) and maps its keys onto ours.

How the keys are mapped: each model family declares the published layouts it reads, as ``CHECKPOINT_ADAPTERS``
in its module (torchvision's and timm's DenseNet, ResNet, VGG, MobileNetV2, MobileNetV3); a layout is recognised
by a key only it has and every key is renamed by its rule (``features.conv0`` → ``stem.0``, ``layer2.0.bn1`` →
``stages.1.0.conv1.1``, ``classifier`` → ``fc`` ...), independent of the order of the file (a .safetensors header
is sorted). A checkpoint of no known layout but in registration order
(a .pth of another implementation) is paired with the model in order instead. Either way every tensor must
agree in kind (weight, bias, running mean/var) and shape — a 1×1 or k×k conv weight may stand for a linear
layer of the same size (timm's VGG and MobileNetV3 heads) — and any disagreement is an error naming both
keys: nothing is loaded silently wrong.

``arch=`` names the registered model whose layout the checkpoint has when it differs from the target: the
checkpoint is first mapped onto ``arch``'s names, then loaded by name where the shapes match (``strict=False``),
e.g. DxNet-105 from a DenseNet-121 checkpoint or a WAE backbone from VGG16; the :class:`LoadReport` lists what
was loaded, what was skipped and why.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

from leannets._io import load_safetensors

__all__ = ["CheckpointAdapter", "checkpoint_adapters", "LoadReport", "read_state_dict", "remap_state_dict", "load_weights",
           "checkpoint_classes"]

_KINDS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: ``loaded`` target keys, ``skipped`` {target key: why}, ``unused`` source
    keys, ``missing`` target keys that received nothing."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, "
                f"{len(self.missing)} model tensors not in the checkpoint, {len(self.unused)} checkpoint tensors unused")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.pth``/``.pt`` checkpoint (``state_dict``/``model`` wrappers and a
    DDP ``module.`` prefix removed)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"pretrained weights {file} do not exist")
    if file.suffix == ".safetensors":
        state: Any = load_safetensors(file)[0]
    else:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises many types for non-checkpoints
            raise ValueError(f"{file} is not a PyTorch checkpoint that loads with weights_only=True "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file} holds no state dict of tensors")
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


# -- published layouts: each family module declares ``CHECKPOINT_ADAPTERS`` -------------------------------------
@dataclass(frozen=True)
class CheckpointAdapter:
    """One published key layout of a family (as timm's ``checkpoint_filter_fn``): its ``name``, a ``marker`` key only
    that layout has, and the ``rule`` that renames one of its keys (given the whole state, for context) to ours."""

    name: str
    marker: str
    rule: Callable[[str, Mapping[str, torch.Tensor]], str]


def checkpoint_adapters(model: nn.Module) -> tuple[CheckpointAdapter, ...]:
    """The adapters declared by the family module of ``model``'s class (``CHECKPOINT_ADAPTERS``; none: ``()``)."""
    return tuple(getattr(sys.modules.get(type(model).__module__), "CHECKPOINT_ADAPTERS", ()))


def _rename(source: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The checkpoint under our names if its layout is one ``model``'s family declares, else ``None``."""
    for adapter in checkpoint_adapters(model):
        if adapter.marker in source:
            return {adapter.rule(k, source): v for k, v in source.items()}
    return None


def _kind(key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return last if last in _KINDS else "other"


def _fits(src: torch.Tensor, dst: torch.Tensor) -> bool:
    if src.shape == dst.shape:
        return True
    # a conv weight standing for a linear layer of the same size (or back)
    return {src.dim(), dst.dim()} == {2, 4} and src.numel() == dst.numel() and src.shape[0] == dst.shape[0]


def remap_state_dict(source: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under ``model``'s state-dict names: renamed by its published layout's rules, or
    else paired in registration order. ``ValueError`` names the first tensor that does not fit."""
    target = model.state_dict()
    renamed = _rename(source, model)
    if renamed is not None:
        extra = sorted(set(renamed) - set(target))
        missing = sorted(k for k in set(target) - set(renamed) if not k.endswith("num_batches_tracked"))
        if extra or missing:
            raise ValueError(f"the checkpoint does not match {type(model).__name__}: e.g. checkpoint tensors "
                             f"{extra[:3]} have no place, model tensors {missing[:3]} get nothing")
        pairs = [(k, renamed[k], k, target[k]) for k in target if k in renamed]
    else:
        src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
        dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
        if len(src) != len(dst):
            raise ValueError(f"the checkpoint has {len(src)} tensors, {type(model).__name__} has {len(dst)}: it is "
                             "not this architecture (pass arch= the model it was saved from, with strict=False)")
        pairs = [(sk, sv, dk, dv) for (sk, sv), (dk, dv) in zip(src, dst)]
    mapped: dict[str, torch.Tensor] = {}
    for sk, sv, dk, dv in pairs:
        if _kind(sk) != _kind(dk) or not _fits(sv, dv):
            raise ValueError(f"checkpoint tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}: "
                             "the checkpoint's layout differs from this model")
        mapped[dk] = sv.reshape(dv.shape).to(dv.dtype)
    for k, v in target.items():
        mapped.setdefault(k, v.clone())  # num_batches_tracked counters the checkpoint may lack
    return mapped


def load_weights(model: nn.Module, path: str | os.PathLike | Mapping[str, torch.Tensor],
                 reference: nn.Module | None = None, strict: bool = True, name: str | None = None) -> LoadReport:
    """Load published weights into ``model`` (in place); :func:`leannets.models.load_pretrained` is the public
    form, which names the checkpoint's architecture by its registered name.

    Args:
        model: the model to fill.
        path: ``.pth``/``.pt``/``.safetensors`` (torchvision or timm key names, or ours), or its tensors as
            :func:`read_state_dict` returned them (so a caller that already read the file does not read it again).
        reference: a model of the checkpoint's architecture, whose names the layout is mapped through
            (default: ``model`` itself).
        strict: every tensor must be mapped (``False``: load what fits by name and shape, report the rest).
        name: what the report calls the source (default: the file, or "the given state dict").
    """
    source = path if isinstance(path, Mapping) else read_state_dict(path)
    report = LoadReport(name or ("the given state dict" if isinstance(path, Mapping) else str(path)))
    own = model.state_dict()
    if set(source) >= {k for k in own if not k.endswith("num_batches_tracked")}:
        named = {k: source[k] for k in own if k in source}  # already our names
    else:
        named = remap_state_dict(source, model if reference is None else reference)
    for key, value in own.items():
        src = named.get(key)
        if src is None:
            report.missing.append(key)
        elif not _fits(src, value):
            report.skipped[key] = f"shape {tuple(src.shape)} vs {tuple(value.shape)}"
        else:
            value.copy_(src.reshape(value.shape))
            report.loaded.append(key)
    report.unused = sorted(set(named) - set(own))
    if strict and (report.missing or report.skipped or report.unused):
        raise ValueError(f"{report.summary()}; e.g. missing {report.missing[:3]}, skipped "
                         f"{list(report.skipped.items())[:3]}, unused {report.unused[:3]} (strict=False loads what fits)")
    return report


def checkpoint_classes(source: Mapping[str, torch.Tensor]) -> int | None:
    """Classes of the checkpoint's last 2-D weight (its classifier)."""
    weights = [v for k, v in source.items() if k.endswith("weight") and v.dim() == 2]
    return int(weights[-1].shape[0]) if weights else None
