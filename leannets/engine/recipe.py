"""Training recipes: a YAML schema with validation, ``--set`` overrides and multi-stage resolution.

A recipe is a nested mapping with these sections (every key has a default unless marked required)::

    name: densenet_cifar10           # free text
    seed: 0
    task:     {name: classification, <task options>}      # options declared by the Task class
    model:    {name: densenet_bc_cifar_16_16_16, kwargs: {drop_rate: 0.0}}
    data:     {name: cifar10, root: ..., batch_size: 128, ..., <dataset options>}
    optim:    {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
    schedule: {name: plateau|cosine|multistep|constant, ...}
    train:    {epochs: 200, amp: auto, grad_clip: null, ema_decay: 0.0, ...}
    checkpoint: {every: 0, every_steps: 0, save_best: true}
    stages:   [ {name: s1, epochs: 2, freeze: [encoder.], optim: {...}, task: {...}}, ... ]

Multi-stage recipes list ``stages``; each stage may override ``epochs``, ``freeze`` and any key of
``task`` (options only), ``data``, ``optim``, ``schedule``, ``train`` and ``checkpoint``.
:func:`stage_configs` returns one fully resolved config per stage (a flat recipe is one stage).

How another slice plugs in:

- A task declares its own ``task.*`` keys as ``options = {"sigma": Field(float, 25.0, "noise σ")}``
  on its :class:`~leannets.engine.task.Task` subclass; they are validated only when that task is
  selected (``task.name``).
- A dataset declares its own ``data.*`` keys with ``register_dataset(name, builder, options={...})``
  (see :mod:`leannets.data`); validated only when that dataset is selected.
- Anything else can add keys to any section for every recipe with :func:`register_keys`.

Values are checked against :class:`Field` types (``float`` accepts ints, ``nullable`` accepts
``None``); unknown keys and wrong types raise ``ValueError`` naming the dotted key.
"""
from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["Field", "REQUIRED", "SECTIONS", "STAGE_SECTIONS", "register_keys", "load_recipe", "validate_recipe",
           "apply_overrides", "parse_override", "stage_configs", "recipe_path", "list_recipes", "dump_recipe",
           "deep_merge"]


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


F = Field

SECTIONS: dict[str, dict[str, Field]] = {
    "task": {
        "name": F(str, "classification", "registered task (leannets.engine.task.list_tasks())"),
    },
    "model": {
        "name": F(str, REQUIRED, "registered model name (leannets list)"),
        "kwargs": F(dict, {}, "keyword overrides passed to create_model"),
        "sync_bn": F(bool, False, "convert BatchNorm to SyncBatchNorm under DDP"),
        "init_checkpoint": F(str, None, "weights to start from (a leannets checkpoint)", nullable=True),
    },
    "data": {
        "name": F(str, "digits", "registered dataset (leannets.data.list_datasets())"),
        "root": F(str, None, "dataset folder", nullable=True),
        "batch_size": F(int, 128, "global training batch (split across DDP ranks)"),
        "eval_batch_size": F(int, 256, "evaluation batch"),
        "num_workers": F(int, 2, "DataLoader workers (file-based datasets only)"),
        "crop_padding": F(int, 4, "random crop after zero padding by this many pixels (0: off; in-memory sets)"),
        "flip": F(bool, True, "random horizontal flip"),
        "cutout": F(int, 0, "cutout square side in pixels (0: off)"),
        "normalize": F(bool, True, "per-channel mean/std normalisation with the dataset's statistics"),
        "mean": F(list, None, "override the per-channel mean (on [0, 1])", nullable=True),
        "std": F(list, None, "override the per-channel std (on [0, 1])", nullable=True),
        "augment": F(bool, True, "training augmentation on/off (off: only normalisation)"),
        "input_size": F(int, None, "training crop / evaluation size for file-based sets", nullable=True),
        "scale": F(list, [0.08, 1.0], "RandomResizedCrop area range"),
        "ratio": F(list, [0.75, 4.0 / 3.0], "RandomResizedCrop aspect range"),
        "crop_pct": F(float, 0.875, "evaluation: resize to input_size/crop_pct, then center crop"),
        "val_fraction": F(float, 0.0, "hold out this fraction of the training split for validation"),
        "limit_train": F(int, None, "use only the first N training samples", nullable=True),
        "limit_eval": F(int, None, "use only the first N evaluation samples", nullable=True),
        "in_memory": F(bool, None, "force in-memory (True) or file-based (False) loading", nullable=True),
    },
    "optim": {
        "name": F(str, "sgd", "optimizer", choices=("sgd", "adam", "adamw")),
        "lr": F(float, 0.1, "base learning rate"),
        "momentum": F(float, 0.9, "SGD momentum"),
        "nesterov": F(bool, False, "Nesterov momentum (SGD)"),
        "weight_decay": F(float, 0.0, "L2 weight decay"),
        "betas": F(list, [0.9, 0.999], "Adam betas"),
        "eps": F(float, 1e-8, "Adam epsilon"),
        "no_decay_norm_bias": F(bool, False, "exclude norm weights and biases from weight decay"),
    },
    "schedule": {
        "name": F(str, "constant", "LR schedule", choices=("constant", "plateau", "cosine", "multistep")),
        "warmup_epochs": F(float, 0.0, "linear warm-up length (epochs, per step)"),
        "warmup_start": F(float, 0.0, "warm-up starts at lr × this factor"),
        "min_lr": F(float, 0.0, "cosine floor / plateau minimum"),
        "factor": F(float, 0.5, "plateau: multiply the lr by this on a plateau"),
        "patience": F(int, 10, "plateau: epochs without improvement before reducing"),
        "threshold": F(float, 1e-4, "plateau: relative improvement that counts"),
        "cooldown": F(int, 0, "plateau: epochs to wait after a reduction"),
        "milestones": F(list, [], "multistep: percent of total training steps, e.g. [50, 75]"),
        "gamma": F(float, 0.1, "multistep: lr factor at each milestone"),
    },
    "train": {
        "epochs": F(int, 1, "training epochs"),
        "device": F(str, "auto", "auto, cpu, cuda or cuda:N"),
        "amp": F(str, "auto", "mixed precision (CUDA only)", choices=("auto", "off", "bf16", "fp16")),
        "channels_last": F(bool, None, "channels_last memory format (default: on CUDA)", nullable=True),
        "compile": F(bool, False, "torch.compile the model"),
        "grad_clip": F(float, None, "clip the global gradient norm to this value", nullable=True),
        "ema_decay": F(float, 0.0, "exponential moving average of weights (0: off); eval uses the EMA"),
        "max_steps_per_epoch": F(int, None, "cap steps per epoch (smoke runs)", nullable=True),
        "eval_every": F(int, 1, "evaluate every N epochs (and always after the last)"),
        "log_interval": F(int, 20, "progress-bar refresh interval in steps"),
        "threads": F(int, None, "torch CPU threads", nullable=True),
        "progress": F(bool, None, "show a progress bar (default: when stderr is a TTY)", nullable=True),
        "deterministic": F(bool, False, "request deterministic kernels (CUDA)"),
        "find_unused_parameters": F(bool, False, "DDP: allow parameters that get no gradient in a stage"),
    },
    "checkpoint": {
        "every": F(int, 0, "also keep a copy every N epochs (0: off)"),
        "every_steps": F(int, 0, "write last.pt every N optimizer steps inside an epoch (0: epoch ends only)"),
        "save_best": F(bool, True, "keep best.pt by the task's main metric"),
    },
}

STAGE_SECTIONS = ("task", "data", "optim", "schedule", "train", "checkpoint")
_TOP_SCALARS: dict[str, Field] = {
    "name": F(str, "", "recipe name"),
    "description": F(str, "", "free text"),
    "seed": F(int, 0, "global seed (model init, data order, augmentation)"),
}
_STAGE_SCALARS: dict[str, Field] = {
    "name": F(str, "", "stage name"),
    "epochs": F(int, None, "stage epochs (overrides train.epochs)", nullable=True),
    "freeze": F(list, [], "module-name prefixes to freeze (requires_grad False, eval mode)"),
}

_EXTRA: dict[str, dict[str, Field]] = {}


def register_keys(section: str, fields: Mapping[str, Field]) -> None:
    """Add keys to ``section`` for every recipe (task/dataset options are better declared on them)."""
    if section not in SECTIONS:
        raise ValueError(f"unknown recipe section {section!r}; sections: {sorted(SECTIONS)}")
    for key, field in fields.items():
        if key in SECTIONS[section] or key in _EXTRA.get(section, {}):
            raise ValueError(f"recipe key {section}.{key} is already defined")
        _EXTRA.setdefault(section, {})[key] = field


def _section_fields(section: str, values: Mapping[str, Any]) -> dict[str, Field]:
    fields = dict(SECTIONS[section])
    fields.update(_EXTRA.get(section, {}))
    if section == "task":
        from .task import get_task_class

        fields.update(get_task_class(values.get("name", fields["name"].default)).options)
    elif section == "data":
        from leannets.data import dataset_options

        fields.update(dataset_options(values.get("name", fields["name"].default)))
    return fields


def _unknown_key(path: str, key: str, allowed: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown recipe key '{path}{key}'.{hint} Allowed: {', '.join(sorted(allowed))}")


def _check_section(section: str, values: Any, prefix: str, fill: bool, base: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ValueError(f"recipe section {prefix}{section!r} must be a mapping, got {type(values).__name__}")
    lookup = dict(base or {})
    lookup.update(values)
    fields = _section_fields(section, lookup)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown_key(f"{prefix}{section}.", key, list(fields))
        out[key] = fields[key].check(f"{prefix}{section}.{key}", value)
    if fill:
        for key, field in fields.items():
            if key not in out:
                if field.default is REQUIRED:
                    raise ValueError(f"recipe key {prefix}{section}.{key} is required ({field.help})")
                out[key] = copy.deepcopy(field.default)
    return out


def validate_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Check every key and type, fill defaults, and return a new resolved recipe dict."""
    if not isinstance(recipe, Mapping):
        raise ValueError(f"a recipe must be a mapping, got {type(recipe).__name__}")
    allowed = list(_TOP_SCALARS) + list(SECTIONS) + ["stages"]
    out: dict[str, Any] = {}
    for key in recipe:
        if key not in allowed:
            raise _unknown_key("", key, allowed)
    for key, field in _TOP_SCALARS.items():
        out[key] = field.check(key, recipe[key]) if key in recipe else copy.deepcopy(field.default)
    for section in SECTIONS:
        out[section] = _check_section(section, recipe.get(section) or {}, "", fill=True)
    stages = recipe.get("stages") or []
    if not isinstance(stages, list):
        raise ValueError(f"recipe key 'stages' must be a list of mappings, got {type(stages).__name__}")
    out["stages"] = [_check_stage(i, s, out) for i, s in enumerate(stages)]
    _check_semantics(out)
    return out


def _check_stage(index: int, stage: Any, top: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(stage, Mapping):
        raise ValueError(f"recipe stages[{index}] must be a mapping, got {type(stage).__name__}")
    prefix = f"stages.{index}."
    allowed = list(_STAGE_SCALARS) + list(STAGE_SECTIONS)
    out: dict[str, Any] = {}
    for key, value in stage.items():
        if key not in allowed:
            raise _unknown_key(prefix, key, allowed)
        if key in _STAGE_SCALARS:
            out[key] = _STAGE_SCALARS[key].check(prefix + key, value)
        else:
            if key == "task" and "name" in (value or {}) and value["name"] != top["task"]["name"]:
                raise ValueError(f"recipe key {prefix}task.name cannot change the task inside a stage "
                                 f"({value['name']!r} vs {top['task']['name']!r}); set stage options instead")
            out[key] = _check_section(key, value or {}, prefix, fill=False, base=top[key])
    for key in ("freeze",):
        for item in out.get(key, []):
            if not isinstance(item, str):
                raise ValueError(f"recipe key {prefix}freeze must list module-name prefixes (str), got {item!r}")
    out.setdefault("name", f"stage{index + 1}")
    return out


def _check_semantics(r: Mapping[str, Any]) -> None:
    for cfg, where in [(r, "")] + [(c, f"stages.{i}.") for i, c in enumerate(stage_configs(r, validate=False))]:
        if cfg["train"]["epochs"] < 1:
            raise ValueError(f"recipe key {where}train.epochs must be >= 1, got {cfg['train']['epochs']}")
        if cfg["optim"]["lr"] <= 0:
            raise ValueError(f"recipe key {where}optim.lr must be > 0, got {cfg['optim']['lr']}")
        if cfg["data"]["batch_size"] < 1:
            raise ValueError(f"recipe key {where}data.batch_size must be >= 1, got {cfg['data']['batch_size']}")
        ms = cfg["schedule"]["milestones"]
        if any(not isinstance(m, (int, float)) or not 0 < m < 100 for m in ms) or ms != sorted(ms):
            raise ValueError(f"recipe key {where}schedule.milestones must be increasing percents in (0, 100), got {ms}")
        if not 0 <= cfg["data"]["val_fraction"] < 1:
            raise ValueError(f"recipe key {where}data.val_fraction must be in [0, 1), got {cfg['data']['val_fraction']}")
        if not 0 <= cfg["train"]["ema_decay"] < 1:
            raise ValueError(f"recipe key {where}train.ema_decay must be in [0, 1), got {cfg['train']['ema_decay']}")
        if len(cfg["optim"]["betas"]) != 2:
            raise ValueError(f"recipe key {where}optim.betas must have 2 values, got {cfg['optim']['betas']}")


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in recursively (mappings merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "kwargs":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def stage_configs(recipe: Mapping[str, Any], validate: bool = True) -> list[dict[str, Any]]:
    """One resolved config per stage: top-level sections with the stage's overrides merged in.

    Each has the top-level keys plus ``stage`` = {index, name, freeze}; ``train.epochs`` is the stage's.
    """
    r = validate_recipe(recipe) if validate else recipe
    base = {k: copy.deepcopy(v) for k, v in r.items() if k != "stages"}
    stages = r.get("stages") or [{}]
    out = []
    for i, stage in enumerate(stages):
        cfg = deep_merge(base, {k: v for k, v in stage.items() if k in STAGE_SECTIONS})
        if stage.get("epochs") is not None:
            cfg["train"]["epochs"] = stage["epochs"]
        cfg["stage"] = {"index": i, "name": stage.get("name", "main" if not r.get("stages") else f"stage{i + 1}"),
                        "freeze": list(stage.get("freeze", []))}
        out.append(cfg)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` → ``("optim.lr", 0.01)`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value (e.g. optim.lr=0.01)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key, value


def apply_overrides(recipe: Mapping[str, Any], overrides: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply dotted-key overrides (``{"optim.lr": 0.01}`` or ``["optim.lr=0.01"]``); ``stages.1.epochs`` works."""
    out = copy.deepcopy(dict(recipe))
    if not overrides:
        return out
    items = [parse_override(o) for o in overrides] if isinstance(overrides, list) else list(overrides.items())
    for key, value in items:
        parts = key.split(".")
        node: Any = out
        for j, part in enumerate(parts[:-1]):
            where = ".".join(parts[: j + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(f"override {key!r}: {where!r} is not a valid index (list of {len(node)})")
                node = node[int(part)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
                if not isinstance(node, (dict, list)):
                    raise ValueError(f"override {key!r}: {where!r} is not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ValueError(f"override {key!r}: {last!r} is not a valid index (list of {len(node)})")
            node[int(last)] = value
        else:
            node[last] = value
    return out


_RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"


def list_recipes() -> list[str]:
    """Names of the bundled recipes (``leannets/recipes/*.yaml``)."""
    return sorted(p.stem for p in _RECIPE_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file path, or a bundled recipe name (with or without ``.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    bundled = _RECIPE_DIR / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if str(name_or_path) == p.name or str(name_or_path) == p.stem:
        if bundled.is_file():
            return bundled
    names = list_recipes()
    close = difflib.get_close_matches(p.stem, names, n=3, cutoff=0.5)
    hint = f" Closest bundled: {', '.join(close)}." if close else ""
    raise FileNotFoundError(f"recipe {str(name_or_path)!r} is neither a file nor a bundled recipe.{hint} "
                            f"Bundled: {', '.join(names)}")


def load_recipe(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | list[str] | None = None
                ) -> dict[str, Any]:
    """Load (YAML file, bundled name or dict), apply overrides and validate; returns the resolved recipe."""
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        path = recipe_path(source)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"recipe {path}: invalid YAML: {err}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"recipe {path}: top level must be a mapping, got {type(raw).__name__}")
        raw.setdefault("name", path.stem)
    return validate_recipe(apply_overrides(raw, overrides))


def dump_recipe(recipe: Mapping[str, Any]) -> str:
    """YAML text of a resolved recipe (what is saved beside a run)."""
    return yaml.safe_dump(dict(recipe), sort_keys=False, default_flow_style=None)
