"""Start from published weights: torchvision / timm ImageNet checkpoints into leannets models.

``create_model(name, pretrained="PATH")`` (or :func:`load_pretrained`) reads a ``.pth`` / ``.pt`` (loaded with
``weights_only=True``) or a ``.safetensors`` file (read without pickle) and maps its keys onto ours.

How the keys are mapped: the layout is recognised by its key names (torchvision's and timm's DenseNet,
ResNet, VGG, MobileNetV2, MobileNetV3) and every key is renamed by that layout's rules (``features.conv0`` →
``stem.0``, ``layer2.0.bn1`` → ``stages.1.0.conv1.1``, ``classifier`` → ``fc`` ...), independent of the
order of the file (a .safetensors header is sorted). A checkpoint of no known layout but in registration order
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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from leannets._io import load_safetensors

__all__ = ["LoadReport", "read_state_dict", "remap_state_dict", "load_weights", "checkpoint_classes"]

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


# -- published layouts: marker key → renaming rules -----------------------------------------------------------
def _densenet(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^features\.conv0\.", "stem.0.", key)
    key = re.sub(r"^features\.norm0\.", "stem.1.", key)
    key = re.sub(r"^features\.norm5\.", "norm_final.", key)
    key = re.sub(r"^features\.denseblock(\d+)\.", lambda m: f"blocks.{2 * int(m.group(1)) - 2}.", key)
    key = re.sub(r"^features\.transition(\d+)\.(norm|conv)\.",
                 lambda m: f"blocks.{2 * int(m.group(1)) - 1}.{0 if m.group(2) == 'norm' else 2}.", key)
    return re.sub(r"^classifier\.", "fc.", key)


def _resnet(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^conv1\.", "stem.0.0.", key)
    key = re.sub(r"^bn1\.", "stem.0.1.", key)
    key = re.sub(r"^layer(\d+)\.(\d+)\.conv(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.{m.group(2)}.conv{m.group(3)}.0.", key)
    key = re.sub(r"^layer(\d+)\.(\d+)\.bn(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.{m.group(2)}.conv{m.group(3)}.1.", key)
    return re.sub(r"^layer(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.", key)


def _vgg(key: str, state: Mapping[str, torch.Tensor]) -> str:
    for theirs, ours in (("classifier.0.", "pre_logits.mlp.0."), ("classifier.3.", "pre_logits.mlp.3."),
                         ("classifier.6.", "fc."), ("pre_logits.fc1.", "pre_logits.mlp.0."),
                         ("pre_logits.fc2.", "pre_logits.mlp.3."), ("head.fc.", "fc.")):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return key


def _mobilenet_v2(key: str, state: Mapping[str, torch.Tensor]) -> str:
    """torchvision ends a block with a bare 1×1 conv ``conv.K`` and its BN ``conv.K+1``; ours nests both in ``conv.K``."""
    m = re.match(r"^features\.(\d+)\.conv\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$", key)
    if m:
        block, k, leaf = m.groups()
        is_bn = f"features.{block}.conv.{k}.running_mean" in state
        return f"features.{block}.conv.{int(k) - 1 if is_bn else k}.{1 if is_bn else 0}.{leaf}"
    return re.sub(r"^classifier\.1\.", "fc.", key)


def _mobilenet_v3_torchvision(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^features\.0\.", "stem.", key)
    key = re.sub(r"^features\.12\.", "conv_head.", key)
    key = re.sub(r"^classifier\.0\.", "head_hidden.", key)
    key = re.sub(r"^classifier\.3\.", "fc.", key)
    m = re.match(r"^features\.(\d+)\.block\.(\d+)\.(.*)$", key)
    if not m:
        return key
    block, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    prefix = f"features.{block}.block"
    parts = [] if state[f"{prefix}.0.0.weight"].shape[1] == 1 else ["conv_pw"]  # no expansion: starts depthwise
    parts.append("conv_dw")
    if f"{prefix}.{len(parts)}.fc1.weight" in state:
        parts.append("se")
    parts.append("conv_pwl")
    return f"blocks.{block - 1}.{parts[j]}.{rest}"


_TIMM_MBV3_STAGES = (1, 2, 3, 2, 3)  # blocks per timm stage of mobilenetv3_small (stage 5 is the 576 conv)


def _mobilenet_v3_timm(key: str, state: Mapping[str, torch.Tensor]) -> str:
    key = re.sub(r"^conv_stem\.", "stem.0.", key)
    key = re.sub(r"^bn1\.", "stem.1.", key)
    key = re.sub(r"^blocks\.5\.0\.conv\.", "conv_head.0.", key)
    key = re.sub(r"^blocks\.5\.0\.bn1\.", "conv_head.1.", key)
    key = re.sub(r"^conv_head\.(weight|bias)$", r"head_hidden.\1", key)
    key = re.sub(r"^classifier\.", "fc.", key)
    m = re.match(r"^blocks\.(\d+)\.(\d+)\.(.*)$", key)
    if not m:
        return key
    stage, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    flat = sum(_TIMM_MBV3_STAGES[:stage]) + b
    names = ({"conv_dw": "conv_dw.0", "bn1": "conv_dw.1", "conv_pw": "conv_pwl.0", "bn2": "conv_pwl.1"} if flat == 0
             else {"conv_pw": "conv_pw.0", "bn1": "conv_pw.1", "conv_dw": "conv_dw.0", "bn2": "conv_dw.1",
                   "conv_pwl": "conv_pwl.0", "bn3": "conv_pwl.1"})
    names.update({"se.conv_reduce": "se.fc1", "se.conv_expand": "se.fc2"})
    module, leaf = rest.rsplit(".", 1)
    return f"blocks.{flat}.{names.get(module, module)}.{leaf}"


#: (name, a key only that layout has, renaming rule)
LAYOUTS = (("torchvision/timm DenseNet", "features.denseblock1.denselayer1.conv1.weight", _densenet),
           ("torchvision/timm ResNet", "layer1.0.conv1.weight", _resnet),
           ("torchvision VGG", "classifier.6.weight", _vgg),
           ("timm VGG", "pre_logits.fc1.weight", _vgg),
           ("torchvision MobileNetV2", "features.18.0.weight", _mobilenet_v2),
           ("torchvision MobileNetV3", "features.1.block.0.0.weight", _mobilenet_v3_torchvision),
           ("timm MobileNetV3", "conv_stem.weight", _mobilenet_v3_timm))


def _rename(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The checkpoint under our names if its layout is a known published one, else ``None``."""
    for _, marker, rule in LAYOUTS:
        if marker in source:
            return {rule(k, source): v for k, v in source.items()}
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
    renamed = _rename(source)
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
