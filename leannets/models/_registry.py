"""Model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Every registered entry point is a function ``fn(**kwargs) -> nn.Module`` decorated with
:func:`register_model`, which records where the architecture comes from (paper, table or
figure), the default input size and the task, so users and reports can cite it.
"""
from __future__ import annotations

import functools
import importlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from leannets.config import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from leannets.layers.padding import EvenPad2d, assign_padding_schedule
from leannets.registry import Registry

from ._base import FeatureListNet
from ._weights import LoadReport, checkpoint_classes, load_weights, read_state_dict

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "is_model", "pretrained_cfg",
           "list_modules", "model_entrypoint", "get_pretrained_cfg",
           "load_pretrained", "model_cfg", "IMAGENET_CFG", "CIFAR_CFG", "PIXEL_CFG"]

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
    cfg: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Importing the package registers every model family (see models/__init__.py).
MODELS: Registry[tuple[Callable[..., nn.Module], ModelInfo]] = Registry(
    "model", recipe_key="model.name", loader=lambda: importlib.import_module("leannets.models"),
    list_hint="`leannets list` shows every registered model.")


def model_cfg(mean: Sequence[float] | None = None, std: Sequence[float] | None = None, *,
              first_conv: str | Sequence[str], classifier: str | Sequence[str] | None = None, crop_pct: float = 1.0,
              interpolation: str = "bilinear") -> dict[str, Any]:
    """A family's declared ``pretrained_cfg`` entries (timm's ``_cfg``): the input normalisation its data is given
    (``None``: none, the model sees [0, 1] pixels), the evaluation crop, and the module(s) that read the input
    (``first_conv``, adapted by ``in_chans``) and that give the logits (``classifier``, reset by ``num_classes``);
    a tuple where there are several, as timm."""
    def names(v: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
        return v if v is None or isinstance(v, str) else (tuple(v) if len(v) > 1 else v[0])
    return {"mean": None if mean is None else tuple(mean), "std": None if std is None else tuple(std),
            "crop_pct": crop_pct, "interpolation": interpolation, "first_conv": names(first_conv),
            "classifier": names(classifier)}


#: The usual declarations: 224² ImageNet models, 32² CIFAR models (a family passes its own layer names).
IMAGENET_CFG = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": 0.875}
CIFAR_CFG = {"mean": CIFAR10_MEAN, "std": CIFAR10_STD}
PIXEL_CFG: dict[str, Any] = {}  # restoration models: [0, 1] pixels, no normalisation


def register_model(
    *,
    paper: str,
    source: str,
    cfg: Mapping[str, Any],
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
        cfg: the model's declared preprocessing and layer names (:func:`model_cfg`), as timm's ``default_cfgs``.
        input_size: default (C, H, W).
        num_classes: default number of classes (0 for models without a classifier).
        task: one of ``TASKS``.
        notes: anything a user should know (deviations from the paper).
        tags: free-form tags, e.g. ("dxnet", "cifar").
        name: registered name; defaults to the function name.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    missing = {"mean", "std", "crop_pct", "interpolation", "first_conv", "classifier"} - set(cfg)
    if missing:
        raise ValueError(f"register_model cfg lacks {sorted(missing)}: build it with model_cfg()")

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
            cfg=dict(cfg),
        )))
        return fn

    return wrap


def is_model(name: str) -> bool:
    return name in MODELS


def list_models(pattern: str = "*", task: str | None = None, exclude_filters: str | Sequence[str] = (),
                module: str | None = None) -> list[str]:
    """Sorted registered names matching a shell-style ``pattern`` (and ``task``, and family ``module`` if given),
    without those matching any of ``exclude_filters`` (as timm)."""
    excludes = [exclude_filters] if isinstance(exclude_filters, str) else list(exclude_filters)
    dropped = {n for f in excludes for n in MODELS.names(f)}
    return [n for n in MODELS.names(pattern) if n not in dropped and (task is None or MODELS.get(n)[1].task == task)
            and (module is None or MODELS.get(n)[1].family == module)]


def list_modules() -> list[str]:
    """The model family modules (``densenet``, ``mobilenetv3``, ...), as timm."""
    return sorted({MODELS.get(n)[1].family for n in MODELS.names("*")})


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The registered function that builds ``name`` (``ValueError`` with close names if unknown)."""
    return MODELS.get(name)[0]


def get_pretrained_cfg(name: str) -> dict[str, Any]:
    """The ``pretrained_cfg`` ``create_model(name)`` attaches, without building the model."""
    return pretrained_cfg(model_info(name))


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
        **overrides: forwarded to the model's constructor (e.g. ``conv_type``, ``drop_rate``); as timm,
            ``global_pool`` (``"avg"``, ``"max"``, ``""`` = unpooled with ``num_classes=0``) sets the classifier's
            pooling, and ``drop_path_rate`` is accepted at 0 (no family here has stochastic depth).
    """
    fn, info = MODELS.get(name)
    global_pool = overrides.pop("global_pool", None)
    if overrides.pop("drop_path_rate", None):
        raise ValueError(f"create_model({name!r}): drop_path_rate > 0 is not supported: no leannets family has "
                         "stochastic depth (drop_rate sets the classifier's dropout)")
    if global_pool is not None:
        model = create_model(name, num_classes, in_chans, pretrained=pretrained, **overrides)
        if not hasattr(model, "reset_classifier"):
            raise ValueError(f"create_model({name!r}): global_pool applies to classifiers only")
        model.reset_classifier(model.num_classes, global_pool)
        return FeatureListNet(model, out_indices) if features_only else model
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
    model.pretrained_cfg = pretrained_cfg(info)  # type: ignore[assignment]
    _number_even_padding(model)
    return FeatureListNet(model, out_indices) if features_only else model


def pretrained_cfg(info: ModelInfo) -> dict[str, Any]:
    """timm-style preprocessing and layout facts of a registered model, as its family declared them
    (:func:`model_cfg`); a model without normalisation gets mean 0 / std 1 per input channel."""
    c = info.input_size[0]
    cfg = dict(info.cfg)
    cfg["mean"] = cfg["mean"] if cfg["mean"] is not None else (0.0,) * c
    cfg["std"] = cfg["std"] if cfg["std"] is not None else (1.0,) * c
    pool = _pool_size(info.name) if info.task == "classification" else None
    return {"input_size": tuple(info.input_size), **cfg, "pool_size": pool, "num_classes": info.num_classes,
            "paper": info.paper}


@functools.lru_cache(maxsize=None)
def _pool_size(name: str) -> tuple[int, int]:
    """(H, W) of ``forward_features``' output at the model's input size (timm's ``pool_size``), from one forward
    on the meta device (no memory, no compute)."""
    fn, info = MODELS.get(name)
    with torch.device("meta"):
        feats = fn().eval().forward_features(torch.zeros(1, *info.input_size))
    return int(feats.shape[-2]), int(feats.shape[-1])


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

