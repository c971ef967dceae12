"""Recipe schema types, below every other module: :class:`Field` and the typed recipe sections.

A resolved recipe is a :class:`Recipe`; each section is a read-only, typed view
(``recipe.train.epochs``, ``recipe.data.batch_size``). Each section class declares its keys once,
with type, default and help::

    class TrainSection(Section):
        epochs: int = key(1, "training epochs")

The annotation gives the accepted type (``X | None`` = nullable), :func:`key` the default and help;
:attr:`Section.schema` holds the resulting :class:`Field` objects, which validation
(:mod:`leannets.engine.recipe`) checks values against. Keys declared elsewhere (a task's
``options``, a dataset's ``options``, :func:`leannets.engine.recipe.register_keys`) are read the same
way (``cfg.task.sigma``) but are typed only by their :class:`Field`.

Sections are also read-only mappings, so :meth:`Section.to_dict` / ``dict(section)`` give the plain
values that are written to YAML, JSON and checkpoints.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

__all__ = ["Field", "REQUIRED", "Section", "key", "TaskSection", "ModelSection", "DataSection", "OptimSection",
           "ScheduleSection", "TrainSection", "CheckpointSection", "StageInfo", "StageOverrides", "Recipe",
           "StageConfig", "SECTION_TYPES", "SECTIONS", "STAGE_SECTIONS", "DEFAULT_COMPARE_MODELS",
           "DEFAULT_COMPARE_RECIPE", "IMAGENET_MEAN", "IMAGENET_STD", "CIFAR10_MEAN", "CIFAR10_STD"]

#: the choices of ``train.allocator`` (:mod:`leannets.engine.allocator`)
ALLOCATORS = ("keep", "system")
#: Per-channel statistics of ImageNet on [0, 1] (file-based data sets and the 224² models' ``pretrained_cfg``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CIFAR-10's training-set statistics (the small-image models' ``pretrained_cfg``; recipes recompute their own).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: ``leannets compare`` with no model arguments (the README's main job): the DenseNet-BC baseline, then the
#: DxNet it is compared with (small CPU-sized members of both families; see docs/engine.md), under this recipe.
DEFAULT_COMPARE_MODELS: tuple[str, ...] = ("densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4")
DEFAULT_COMPARE_RECIPE = "compare_default"

_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One recipe key.

    Args:
        type: ``int``, ``float``, ``str``, ``bool``, ``list`` or ``dict`` (or a tuple of them).
        default: default value (``REQUIRED`` if it must be given).
        help: one-line description (shown in errors and docs).
        choices: allowed values, if restricted.
        nullable: whether ``None``/``null`` is accepted.
    """

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    help: str = ""
    choices: tuple | None = None
    nullable: bool = False

    def check(self, key: str, value: Any) -> Any:
        """Return ``value`` (ints widened to float where a float is expected) or raise ``ValueError``."""
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ValueError(f"recipe key {key!r} must not be null ({self.help or self._type_name()})")
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if float in types and str not in types and isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        if bool not in types and isinstance(value, bool):
            raise ValueError(f"recipe key {key!r} expects {self._type_name()}, got bool {value!r}")
        if list in types and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, types):
            raise ValueError(f"recipe key {key!r} expects {self._type_name()}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"recipe key {key!r} must be one of {list(self.choices)}, got {value!r}")
        return value

    def _type_name(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join(t.__name__ for t in types) + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class _Key:
    default: Any
    help: str
    choices: tuple | None


def key(default: Any, help: str = "", *, choices: tuple | None = None) -> Any:
    """Declare a section key: ``epochs: int = key(1, "training epochs")`` (type from the annotation)."""
    return _Key(default, help, choices)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def _field_from_annotation(annotation: str, spec: _Key, where: str) -> Field:
    parts = [p.strip() for p in annotation.split("|")]
    nullable = "None" in parts
    bases = [p.split("[", 1)[0] for p in parts if p != "None"]
    if not bases or any(b not in _TYPES for b in bases):
        raise TypeError(f"{where}: annotation {annotation!r} must be int, float, str, bool, list or dict (| None)")
    types = tuple(_TYPES[b] for b in bases)
    return Field(types[0] if len(types) == 1 else types, spec.default, spec.help, spec.choices, nullable)


class Section(Mapping[str, Any]):
    """Read-only typed view of one resolved recipe section (attribute or item access)."""

    schema: ClassVar[dict[str, Field]] = {}
    section: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        schema: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            schema.update(getattr(base, "schema", {}))
        for name, spec in list(vars(cls).items()):
            if isinstance(spec, _Key):
                schema[name] = _field_from_annotation(cls.__annotations__[name], spec, f"{cls.__name__}.{name}")
                delattr(cls, name)  # instances read the value through __getattr__
        cls.schema = schema

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"recipe section {self.section or type(self).__name__!r} has no key {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"recipe sections are read-only (tried to set {name!r}); "
                             f"change the recipe with overrides instead")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._values!r})"

    def __deepcopy__(self, memo: dict) -> "Section":
        return type(self)(copy.deepcopy(self._values, memo))

    def to_dict(self) -> dict[str, Any]:
        """The plain nested values (what YAML, JSON and checkpoints hold)."""
        return {k: v.to_dict() if isinstance(v, Section) else copy.deepcopy(v) for k, v in self._values.items()}


class TaskSection(Section):
    section = "task"
    name: str = key("classification", "registered task (leannets.engine.task.list_tasks())")


class ModelSection(Section):
    section = "model"
    name: str = key(REQUIRED, "registered model name (leannets list)")
    kwargs: dict[str, Any] = key({}, "keyword overrides passed to create_model")
    sync_bn: bool = key(False, "convert BatchNorm to SyncBatchNorm under DDP")
    init_checkpoint: str | None = key(None, "weights to start from (a leannets checkpoint)")
    convert: dict[str, Any] | None = key(None, "leannets.convert options applied after create_model, e.g. "
                                               "{conv: xsepconv, min_kernel: 5} or {act: xunit}")
    wrap_wae: dict[str, Any] | None = key(None, "put a WAE front end before the model (leannets.wrap_wae options, "
                                                "{} for the defaults); train it with task.name: wae")


class DataSection(Section):
    section = "data"
    name: str = key("digits", "registered dataset (leannets.data.list_datasets())")
    root: str | None = key(None, "dataset folder")
    batch_size: int = key(128, "global training batch (split across DDP ranks)")
    eval_batch_size: int = key(256, "evaluation batch")
    num_workers: int = key(2, "DataLoader workers (file-based datasets only)")
    crop_padding: int = key(4, "random crop after zero padding by this many pixels (0: off; in-memory sets)")
    flip: bool = key(True, "random horizontal flip")
    cutout: int = key(0, "cutout square side in pixels (0: off)")
    normalize: bool = key(True, "per-channel mean/std normalisation with the dataset's statistics")
    mean: list[float] | None = key(None, "override the per-channel mean (on [0, 1])")
    std: list[float] | None = key(None, "override the per-channel std (on [0, 1])")
    augment: bool = key(True, "training augmentation on/off (off: only normalisation)")
    input_size: int | None = key(None, "training crop / evaluation size for file-based sets")
    crop_area: list[float] = key([0.08, 1.0], "RandomResizedCrop area range (fraction of the image)")
    ratio: list[float] = key([0.75, 4.0 / 3.0], "RandomResizedCrop aspect range")
    crop_pct: float = key(0.875, "evaluation: resize to input_size/crop_pct, then center crop")
    val_fraction: float = key(0.0, "hold out this fraction of the training split for validation")
    limit_train: int | None = key(None, "use N training samples, evenly spaced over the split (every class "
                                        "of a class-sorted folder)")
    limit_eval: int | None = key(None, "use N evaluation samples, evenly spaced over the split")
    in_memory: bool | None = key(None, "force in-memory (True) or file-based (False) loading")


class OptimSection(Section):
    section = "optim"
    name: str = key("sgd", "optimizer", choices=("sgd", "adam", "adamw"))
    lr: float = key(0.1, "base learning rate")
    momentum: float = key(0.9, "SGD momentum")
    nesterov: bool = key(False, "Nesterov momentum (SGD)")
    weight_decay: float = key(0.0, "L2 weight decay")
    betas: list[float] = key([0.9, 0.999], "Adam betas")
    eps: float = key(1e-8, "Adam epsilon")
    no_decay_norm_bias: bool = key(False, "exclude norm weights and biases from weight decay")


class ScheduleSection(Section):
    section = "schedule"
    name: str = key("constant", "LR schedule", choices=("constant", "plateau", "cosine", "multistep"))
    warmup_epochs: float = key(0.0, "linear warm-up length (epochs, per step)")
    warmup_start: float = key(0.0, "warm-up starts at lr × this factor")
    min_lr: float = key(0.0, "cosine floor / plateau minimum")
    factor: float = key(0.5, "plateau: multiply the lr by this on a plateau")
    patience: int = key(10, "plateau: epochs without improvement before reducing")
    threshold: float = key(1e-4, "plateau: relative improvement that counts")
    cooldown: int = key(0, "plateau: epochs to wait after a reduction")
    milestones: list[float] = key([], "multistep: percent of total training steps, e.g. [50, 75]")
    gamma: float = key(0.1, "multistep: lr factor at each milestone")


class TrainSection(Section):
    section = "train"
    epochs: int = key(1, "training epochs")
    device: str = key("auto", "auto, cpu, cuda or cuda:N")
    amp: str = key("auto", "mixed precision: auto = bf16 (else fp16) on CUDA; on a CPU with native bf16, bf16 when a "
                   "measured step of this model is clearly faster (leannets.engine.amp), else off; bf16 also autocasts on CPU",
                   choices=("auto", "off", "bf16", "fp16"))
    channels_last: bool | None = key(None, "channels_last memory format (default: on CUDA)")
    compile: bool = key(False, "torch.compile the model")
    dtype: str = key("float32", "weights and inputs: float32, or float64 for exactness checks (slow; no amp)",
                     choices=("float32", "float64"))
    grad_clip: float | None = key(None, "clip the global gradient norm to this value")
    ema_decay: float = key(0.0, "exponential moving average of weights (0: off); eval uses the EMA")
    max_steps_per_epoch: int | None = key(None, "cap steps per epoch (smoke runs)")
    eval_every: int = key(1, "evaluate every N epochs (and always after the last)")
    log_interval: int = key(20, "progress-bar refresh interval in steps")
    threads: int | None = key(None, "torch CPU threads")
    allocator: str = key("keep", "host memory: keep = freed memory stays in the process, so steps fault no fresh "
                         "pages (glibc; the process holds its peak until it exits; leannets.engine.allocator), "
                         "system = the C library's default", choices=ALLOCATORS)
    progress: bool | None = key(None, "show a progress bar (default: when stderr is a TTY)")
    deterministic: bool = key(False, "request deterministic kernels (CUDA)")
    find_unused_parameters: bool = key(False, "DDP: allow parameters that get no gradient in a stage")
    on_nonfinite: str = key("stop", "a NaN/inf loss or gradient: stop before the update, or skip the update",
                            choices=("stop", "skip"))


class CheckpointSection(Section):
    section = "checkpoint"
    every: int = key(0, "also keep a copy every N epochs (0: off)")
    every_steps: int = key(0, "write last.pt every N optimizer steps inside an epoch (0: epoch ends only)")
    save_best: bool = key(True, "keep best.pt by the main metric on the validation split (data.val_fraction > 0; "
                                 "without one no best.pt: the evaluation split is the test set)")


class StageOverrides(Section):
    """The scalar keys of one ``stages[i]`` entry (its section overrides are partial mappings)."""

    section = "stages"
    name: str = key("", "stage name")
    epochs: int | None = key(None, "stage epochs (overrides train.epochs)")
    freeze: list[str] = key([], "module-name prefixes to freeze (requires_grad False, eval mode)")


class StageInfo(Section):
    """Which stage a :class:`StageConfig` is: ``index``, ``name`` and the frozen module prefixes."""

    section = "stage"
    index: int = key(0, "stage index")
    name: str = key("main", "stage name")
    freeze: list[str] = key([], "frozen module-name prefixes")


SECTION_TYPES: dict[str, type[Section]] = {cls.section: cls for cls in (
    TaskSection, ModelSection, DataSection, OptimSection, ScheduleSection, TrainSection, CheckpointSection)}
SECTIONS: dict[str, dict[str, Field]] = {name: cls.schema for name, cls in SECTION_TYPES.items()}
STAGE_SECTIONS = ("task", "data", "optim", "schedule", "train", "checkpoint")


class Recipe(Section):
    """A resolved recipe: top-level scalars, the typed sections and the (partial) stage overrides."""

    section = ""
    name: str = key("", "recipe name")
    description: str = key("", "free text")
    seed: int = key(0, "global seed (model init, data order, augmentation)")
    task: TaskSection
    model: ModelSection
    data: DataSection
    optim: OptimSection
    schedule: ScheduleSection
    train: TrainSection
    checkpoint: CheckpointSection
    stages: list[dict[str, Any]]

    def __init__(self, values: Mapping[str, Any]) -> None:
        wrapped = dict(values)
        for name, cls in SECTION_TYPES.items():
            if name in wrapped and not isinstance(wrapped[name], cls):
                wrapped[name] = cls(wrapped[name])
        wrapped.setdefault("stages", [])
        super().__init__(wrapped)


class StageConfig(Recipe):
    """One stage fully resolved: the recipe's sections with the stage's overrides merged in, plus ``stage``."""

    stage: StageInfo

    def __init__(self, values: Mapping[str, Any]) -> None:
        wrapped = dict(values)
        if not isinstance(wrapped.get("stage"), StageInfo):
            wrapped["stage"] = StageInfo(wrapped.get("stage") or {})
        super().__init__(wrapped)
