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
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from leannets.config import REQUIRED, SECTIONS, STAGE_SECTIONS, Field, Recipe, Section, StageConfig, StageOverrides
from leannets.data import dataset_options
from leannets.registry import Registry

from .task import get_task_class

__all__ = ["register_keys", "load_recipe", "validate_recipe", "apply_overrides", "parse_override", "stage_configs",
           "recipe_path", "list_recipes", "dump_recipe", "deep_merge", "plain"]

_TOP_SCALARS: dict[str, Field] = Recipe.schema
_STAGE_SCALARS: dict[str, Field] = StageOverrides.schema
# Deprecated key -> (section, new key): still accepted, with a message.
_ALIASES = {("data", "scale"): "crop_area"}
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
        fields.update(get_task_class(values.get("name", fields["name"].default)).options)
    elif section == "data":
        fields.update(dataset_options(values.get("name", fields["name"].default)))
    return fields


def _unalias(section: str, values: Mapping[str, Any], prefix: str, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Rename deprecated keys (``data.scale`` -> ``data.crop_area``) with a deprecation message."""
    out = dict(values)
    for (sec, old), new in _ALIASES.items():
        if sec != section or old not in out or old in fields:
            continue
        if new in out:
            raise ValueError(f"recipe keys {prefix}{sec}.{old} (deprecated) and {prefix}{sec}.{new} are both set; "
                             f"keep only {prefix}{sec}.{new}")
        warnings.warn(f"recipe key {prefix}{sec}.{old} is deprecated; use {prefix}{sec}.{new} (same meaning)",
                      FutureWarning, stacklevel=2)
        out = {(new if k == old else k): v for k, v in out.items()}
    return out


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
    values = _unalias(section, values, prefix, fields)
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


def plain(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """A deep plain-dict copy of a recipe (a resolved :class:`Recipe` or a raw mapping)."""
    return recipe.to_dict() if isinstance(recipe, Section) else copy.deepcopy(dict(recipe))


def validate_recipe(recipe: Mapping[str, Any]) -> Recipe:
    """Check every key and type, fill defaults, and return the resolved, typed :class:`Recipe`."""
    if not isinstance(recipe, Mapping):
        raise ValueError(f"a recipe must be a mapping, got {type(recipe).__name__}")
    recipe = plain(recipe)
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
    resolved = Recipe(out)
    _check_semantics(resolved)
    return resolved


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


#: numeric keys and the values they accept (``None``, where allowed, always passes): a negative grad_clip would
#: train by gradient ascent, eval_every=0 divide by zero
_RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("train.grad_clip", lambda v: v > 0, "> 0 (or null: off)"),
    ("train.eval_every", lambda v: v >= 1, ">= 1"),
    ("train.threads", lambda v: v >= 1, ">= 1 (or null: torch's default)"),
    ("train.max_steps_per_epoch", lambda v: v >= 1, ">= 1 (or null)"),
    ("data.eval_batch_size", lambda v: v >= 1, ">= 1"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.crop_padding", lambda v: v >= 0, ">= 0"),
    ("data.cutout", lambda v: v >= 0, ">= 0"),
    ("data.limit_train", lambda v: v >= 1, ">= 1 (or null)"),
    ("data.limit_eval", lambda v: v >= 1, ">= 1 (or null)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("schedule.warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("schedule.min_lr", lambda v: v >= 0, ">= 0"),
    ("schedule.factor", lambda v: 0 < v < 1, "in (0, 1)"),
    ("schedule.patience", lambda v: v >= 0, ">= 0"),
    ("checkpoint.every", lambda v: v >= 0, ">= 0 (0: off)"),
    ("checkpoint.every_steps", lambda v: v >= 0, ">= 0 (0: off)"),
)


def _check_semantics(r: Recipe) -> None:
    configs: list[tuple[Recipe, str]] = [(r, "")]
    configs += [(c, f"stages.{i}.") for i, c in enumerate(stage_configs(r, validate=False))]
    for cfg, where in configs:
        checks = [
            (cfg.train.epochs >= 1, "train.epochs must be >= 1", cfg.train.epochs),
            (cfg.optim.lr > 0, "optim.lr must be > 0", cfg.optim.lr),
            (cfg.data.batch_size >= 1, "data.batch_size must be >= 1", cfg.data.batch_size),
            (_increasing_percents(cfg.schedule.milestones), "schedule.milestones must be increasing percents in "
             "(0, 100)", cfg.schedule.milestones),
            (0 <= cfg.data.val_fraction < 1, "data.val_fraction must be in [0, 1)", cfg.data.val_fraction),
            (cfg.schedule.name != "plateau" or cfg.data.val_fraction > 0, "data.val_fraction must be > 0 with "
             "schedule.name=plateau (it watches the validation loss; the evaluation split is the test set)",
             cfg.data.val_fraction),
            (0 <= cfg.train.ema_decay < 1, "train.ema_decay must be in [0, 1)", cfg.train.ema_decay),
        ]
        for key, ok, rule in _RANGES:
            value = cfg[key.split(".")[0]][key.split(".")[1]]
            if value is not None and not ok(value):
                checks.append((False, f"{key} must be {rule}", value))
        for ok, rule, value in checks:
            if not ok:
                raise ValueError(f"recipe key {where}{rule}, got {value}")


def _increasing_percents(ms: list[Any]) -> bool:
    return all(isinstance(m, (int, float)) and 0 < m < 100 for m in ms) and ms == sorted(ms)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in recursively (mappings merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "kwargs":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def stage_configs(recipe: Mapping[str, Any], validate: bool = True) -> list[StageConfig]:
    """One resolved config per stage: top-level sections with the stage's overrides merged in.

    Each has the top-level keys plus ``stage`` = {index, name, freeze}; ``train.epochs`` is the stage's.
    """
    r = validate_recipe(recipe) if validate else recipe
    base = {k: v for k, v in plain(r).items() if k != "stages"}
    stages = r.get("stages") or [{}]
    out = []
    for i, stage in enumerate(stages):
        cfg = deep_merge(base, {k: v for k, v in stage.items() if k in STAGE_SECTIONS})
        if stage.get("epochs") is not None:
            cfg["train"]["epochs"] = stage["epochs"]
        cfg["stage"] = {"index": i, "name": stage.get("name", "main" if not r.get("stages") else f"stage{i + 1}"),
                        "freeze": list(stage.get("freeze", []))}
        out.append(StageConfig(cfg))
    return out


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars: only ``true``/``false`` are booleans (``off`` stays a word),
    ``010`` is ten (not octal 8) and ``1:30`` a string (not sexagesimal 90); ``0o``/``0x`` ints and ``1e-3`` floats
    are read as 1.2 reads them."""


_SCALAR_TAGS = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _SCALAR_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
RecipeLoader.add_implicit_resolver(_SCALAR_TAGS[0], re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
RecipeLoader.add_implicit_resolver(_SCALAR_TAGS[1], re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                   list("-+0123456789"))
RecipeLoader.add_implicit_resolver(
    _SCALAR_TAGS[2], re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
RecipeLoader.add_constructor(
    _SCALAR_TAGS[1], lambda loader, node: int(loader.construct_scalar(node), 0)
    if loader.construct_scalar(node).startswith(("0o", "0x")) else int(loader.construct_scalar(node), 10))


def yaml_load(text: str) -> Any:
    """A recipe's YAML (files and ``--set`` values alike), safe-loaded with YAML 1.2 scalars."""
    return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 (a SafeLoader subclass)


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` → ``("optim.lr", 0.01)`` (the value is parsed as YAML 1.2: ``off`` is a word)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value (e.g. optim.lr=0.01)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"override {text!r} has an empty key")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key, value


def apply_overrides(recipe: Mapping[str, Any], overrides: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply dotted-key overrides (``{"optim.lr": 0.01}`` or ``["optim.lr=0.01"]``); ``stages.1.epochs`` works."""
    out = plain(recipe)
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


def _register_bundled() -> None:
    for path in sorted(_RECIPE_DIR.glob("*.yaml")):
        RECIPES.register(path.stem, path)


RECIPES: Registry[Path] = Registry("recipe", loader=_register_bundled)


def list_recipes() -> list[str]:
    """Names of the bundled recipes (``leannets/recipes/*.yaml``)."""
    return RECIPES.names()


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file path, or a bundled recipe name (with or without ``.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    is_name = str(name_or_path) in (p.name, p.stem)
    name = p.stem if p.suffix in (".yaml", ".yml") else p.name
    if is_name and name in RECIPES:
        return RECIPES.get(name)
    raise FileNotFoundError(f"recipe {str(name_or_path)!r} is neither a file nor a bundled recipe: "
                            f"{RECIPES.unknown(name)}")


def load_recipe(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | list[str] | None = None
                ) -> Recipe:
    """Load (YAML file, bundled name or dict), apply overrides and validate; returns the resolved recipe.

    A recipe may name ``base:`` another recipe it inherits: the base's keys, with this recipe's merged over
    them (mappings merge key by key, other values replace). A base is a file beside the recipe or in its
    ``bases/`` folder, or a bundled recipe name."""
    if isinstance(source, Mapping):
        raw = plain(source)
        if "base" in raw:
            raw = _with_base(raw, None, ())
    else:
        path = recipe_path(source)
        raw = _read_recipe_file(path, ())
        raw.setdefault("name", path.stem)
    return validate_recipe(apply_overrides(raw, overrides))


def _read_recipe_file(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """A recipe file's raw mapping with its ``base:`` chain merged in."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ValueError(f"recipe {path}: key base forms a cycle ({chain})")
    try:
        raw = yaml_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"recipe {path}: invalid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {path}: top level must be a mapping, got {type(raw).__name__}")
    return _with_base(raw, path, (*seen, path.resolve())) if "base" in raw else raw


def _with_base(raw: dict[str, Any], path: Path | None, seen: tuple[Path, ...]) -> dict[str, Any]:
    where = f"recipe {path}" if path is not None else "recipe"
    name = raw.pop("base")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: key base must name a recipe (a file or a bundled name), got {name!r}")
    folders = ([path.parent, path.parent / "bases"] if path is not None else []) + [_RECIPE_DIR / "bases"]
    files = [f / n for f in folders for n in (name, f"{name}.yaml")]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        try:
            found = recipe_path(name)
        except FileNotFoundError:
            raise ValueError(f"{where}: key base names {name!r}, which is neither a file beside it, in a bases/ "
                             f"folder, nor a bundled recipe") from None
    return deep_merge(_read_recipe_file(found, seen), raw)


def dump_recipe(recipe: Mapping[str, Any]) -> str:
    """YAML text of a resolved recipe (what is saved beside a run)."""
    return yaml.safe_dump(plain(recipe), sort_keys=False, default_flow_style=None)


_MISSING = object()


def recipe_diff(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two recipe trees (a key one of them lacks counts)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= recipe_diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}

