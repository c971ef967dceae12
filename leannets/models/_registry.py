"""Model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Every registered entry point is a function ``fn(**kwargs) -> nn.Module`` decorated with
:func:`register_model`, which records where the architecture comes from (paper, table or
figure), the default input size and the task, so users and reports can cite it.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch.nn as nn

from leannets.config import IMAGENET_MEAN, IMAGENET_STD
from leannets.layers.padding import EvenPad2d, assign_padding_schedule
from leannets.registry import Registry

from ._base import FeatureListNet
from ._weights import LoadReport, checkpoint_classes, load_weights, read_state_dict

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "is_model", "pretrained_cfg",
           "load_pretrained"]

TASKS = ("classification", "denoising", "super_resolution", "autoencoder")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is and where it comes from."""

    name: str
    paper: str
    source: str
    input_size: tuple[int, int, int]
    num_classes: int
    task: str = "classification"
    family: str = ""
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Importing the package registers every model family (see models/__init__.py).
MODELS: Registry[tuple[Callable[..., nn.Module], ModelInfo]] = Registry(
    "model", recipe_key="model.name", loader=lambda: importlib.import_module("leannets.models"),
    list_hint="`leannets list` shows every registered model.")


def register_model(
    *,
    paper: str,
    source: str,
    input_size: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    task: str = "classification",
    notes: str = "",
    tags: tuple[str, ...] = (),
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model entry point.

    Args:
        paper: citation of the paper the architecture comes from.
        source: the table/figure/section of that paper (or "baseline").
        input_size: default (C, H, W).
        num_classes: default number of classes (0 for models without a classifier).
        task: one of ``TASKS``.
        notes: anything a user should know (deviations from the paper).
        tags: free-form tags, e.g. ("dxnet", "cifar").
        name: registered name; defaults to the function name.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or fn.__name__
        MODELS.register(model_name, (fn, ModelInfo(
            name=model_name,
            paper=paper,
            source=source,
            input_size=tuple(input_size),
            num_classes=num_classes,
            task=task,
            family=fn.__module__.rsplit(".", 1)[-1],
            notes=notes,
            tags=tuple(tags),
        )))
        return fn

    return wrap


def is_model(name: str) -> bool:
    return name in MODELS


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Sorted registered names matching a shell-style ``pattern`` (and ``task`` if given)."""
    return [n for n in MODELS.names(pattern) if task is None or MODELS.get(n)[1].task == task]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model; ``ValueError`` with close names if unknown."""
    return MODELS.get(name)[1]


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None, *,
                 pretrained: str | os.PathLike | bool | None = None, features_only: bool = False,
                 out_indices: Sequence[int] | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: registered name (see :func:`list_models`).
        num_classes: classifier outputs; ``None`` keeps the model's default.
        in_chans: input channels; ``None`` keeps the model's default.
        pretrained: a ``.pth`` / ``.safetensors`` checkpoint (torchvision, timm or leannets key names) to load,
            every tensor mapped (:func:`load_pretrained`); with another
            ``num_classes`` than the checkpoint's, the classifier is reset after loading. ``False``: no weights
            (as timm); ``True`` is an error (no weights are bundled and nothing is downloaded).
        features_only: return a :class:`~leannets.models._base.FeatureListNet` whose forward gives the
            multi-scale feature maps (``feature_info``: channels and reductions), as timm.
        out_indices: with ``features_only``, which maps (default all).
        **overrides: forwarded to the model's constructor (e.g. ``conv_type``, ``drop_rate``).
    """
    fn, info = MODELS.get(name)
    kwargs = dict(overrides)
    if pretrained is True:
        raise ValueError(f"create_model({name!r}, pretrained=True): leannets bundles no weights and downloads nothing; "
                         "pass a checkpoint file instead (pretrained='densenet121.pth', torchvision / timm / leannets "
                         "key names)")
    if pretrained is not None and pretrained is not False:
        state = read_state_dict(pretrained)
        model = create_model(name, checkpoint_classes(state) or info.num_classes, in_chans, **overrides)
        load_weights(model, state)
        if num_classes is not None and num_classes != getattr(model, "num_classes", num_classes):
            model.reset_classifier(num_classes)
        return FeatureListNet(model, out_indices) if features_only else model
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    try:
        model = fn(**kwargs)
    except TypeError as err:
        raise ValueError(f"create_model({name!r}): bad arguments {sorted(kwargs)}: {err}") from err
    model.model_name = name  # type: ignore[assignment]
    model.pretrained_cfg = pretrained_cfg(info, model)  # type: ignore[assignment]
    _number_even_padding(model)
    return FeatureListNet(model, out_indices) if features_only else model


CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def pretrained_cfg(info: ModelInfo, model: nn.Module | None = None) -> dict[str, Any]:
    """timm-style preprocessing and layout facts of a registered model.

    ``mean``/``std``: ImageNet's for 224² models, CIFAR-10's for the small-image ones (every recipe recomputes
    them from its own training set), none (0/1) for restoration models, which see [0, 1] pixels.
    ``first_conv`` / ``classifier``: module names (for adapting ``in_chans`` or the head).
    """
    c, h, _ = info.input_size
    if info.task != "classification":
        mean, std, crop_pct = (0.0,) * c, (1.0,) * c, 1.0
    elif h >= 160:
        mean, std, crop_pct = IMAGENET_MEAN, IMAGENET_STD, 0.875
    else:
        mean, std, crop_pct = CIFAR10_MEAN, CIFAR10_STD, 1.0
    first_conv = classifier = None
    if model is not None:
        first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        classifier = "fc" if isinstance(getattr(model, "fc", None), (nn.Linear, nn.Identity)) else None
    return {"input_size": tuple(info.input_size), "mean": tuple(mean), "std": tuple(std), "crop_pct": crop_pct,
            "interpolation": "bilinear", "num_classes": info.num_classes, "first_conv": first_conv,
            "classifier": classifier, "paper": info.paper}


def _number_even_padding(model: nn.Module) -> None:
    """Give every registered model the network-wide improved padding schedule (XSepConv paper).

    Families that build their own schedule in ``__init__`` are left alone; any other backbone
    that picked up ``conv_type="xsepconv"`` through the conv factory gets numbered here.
    """
    if any(isinstance(m, EvenPad2d) and m.strategy == "improved" and m.index is None for m in model.modules()):
        assign_padding_schedule(model)


def load_pretrained(model: nn.Module, path: str | os.PathLike | Mapping[str, Any], arch: str | None = None,
                    strict: bool = True) -> LoadReport:
    """Load published weights into ``model`` (in place).

    Args:
        model: the model to fill.
        path: ``.pth``/``.pt``/``.safetensors`` (torchvision or timm key names, or ours), or its tensors.
        arch: the registered model the checkpoint's layout is (default: ``model`` itself), e.g. DenseNet-121
            weights into a DxNet-105 with ``arch="densenet121", strict=False``.
        strict: every tensor must be mapped (``False``: load what fits by name and shape, report the rest).
    """
    source = path if isinstance(path, Mapping) else read_state_dict(path)
    reference = None if arch is None else create_model(arch, num_classes=checkpoint_classes(source))
    return load_weights(model, source, reference, strict, name=None if isinstance(path, Mapping) else str(path))

