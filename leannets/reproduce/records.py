"""Run records: what a finished training run leaves behind for the reports, a few KB and never weights.

A reproduction is assembled from records made at different times on different machines: every finished
run writes one JSON record into a folder that can be committed (``docs/reproductions/records/``), and
:class:`RecordStore` hands it back to a later reproduction instead of training again. A record is reused
only when both its *identity* and its *model fingerprint* still hold:

- identity: the resolved recipe without what does not change what is trained (the recipe's name and
  description, where the data lives, progress bars, thread count); a recipe that now resolves differently
  (an edited recipe file, a new default) is a new run;
- model fingerprint: every module's class and every state-dict entry's name and shape of the model the
  recipe builds (on the ``meta`` device). Model code that changes the model (a new layer, another
  activation class, another shape) changes it; a change inside a forward that keeps all three does not,
  which is why the leannets commit is recorded beside it.

A record that no longer holds is kept on disk but not used; the report lists the run as retrained, with
the reason.

Measurements that take minutes but train nothing (the WAE speed-up timings) are kept the same way, as
*measurement records* (``measure-<what>-<key>.json``): keyed by what was measured, its settings, the torch
version and the fingerprints of the models timed, and reused until one of those changes (``--retime`` measures
again). Their report names the machine and commit that took them.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from leannets._io import atomic_write_json
from leannets.config import SECTION_TYPES, Recipe
from leannets.engine.recipe import recipe_diff
from leannets.models import create_model

from .spec import stable_hash

__all__ = ["RECORD_VERSION", "MEASUREMENT", "RecordStore", "Staleness", "identity", "model_fingerprint", "make_record",
           "machine", "cpu_model", "record_amp", "pin_commit", "training_seconds"]

RECORD_VERSION = 1
#: the ``kind`` of a measurement record (a run record has none)
MEASUREMENT = "measurement"
#: Recipe keys that say where or how visibly a run trains, not what it trains.
LOCAL_KEYS = ("name", "description", "data.root", "train.progress", "train.threads", "train.allocator")
#: What a report needs from the engine's result (paths and the checkpoint are left out: they are local).
RESULT_KEYS = ("model", "task", "main_metric", "higher_is_better", "final", "best", "params", "epochs",
               "global_step", "train_time_s", "world_size", "device", "data", "eval_samples", "history")


def _drop(tree: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    out = dict(tree)
    if not rest:
        out.pop(head, None)
    elif isinstance(out.get(head), Mapping):
        out[head] = _drop(out[head], rest)
    return out


def identity(recipe: Recipe | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved recipe without :data:`LOCAL_KEYS` (also inside each stage of a multi-stage recipe)."""
    tree = recipe.to_dict() if isinstance(recipe, Recipe) else dict(recipe)
    for key in LOCAL_KEYS:
        tree = _drop(tree, key)
    if tree.get("stages"):
        tree["stages"] = [identity(stage) if isinstance(stage, Mapping) else stage for stage in tree["stages"]]
    return tree


def model_fingerprint(name: str, kwargs: Mapping[str, Any], num_classes: int | None = None,
                      in_chans: int | None = None) -> str:
    """Hash of the module classes and state-dict names/shapes of ``create_model(name, **kwargs)``."""
    extra = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v and k not in kwargs}
    with torch.device("meta"):
        model = create_model(name, **{**dict(kwargs), **extra})
    modules = [(n, type(m).__name__) for n, m in model.named_modules()]
    tensors = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    return stable_hash({"modules": modules, "tensors": tensors}, n=16)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def _commit() -> str | None:
    """The leannets git commit this process's code was loaded from, ``+dirty`` when the library's files differed
    from it (``None`` outside a checkout). Read once, when the first reproduction context is made
    (:func:`pin_commit`): a commit made while a run trains must not be credited with that run."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return None
    return head + ("+dirty" if _git("status", "--porcelain", "--", "leannets") else "")


def pin_commit() -> str | None:
    """Read (once per process) the commit the records of this process will name."""
    return _commit()


def machine(threads: int | None, device: str | None = None, amp: str | None = None,
            allocator: str | None = None) -> dict[str, Any]:
    """Where a run trained: commit, torch, CPU model and cores, threads, device, precision and host allocator
    (:mod:`leannets.engine.allocator`; it changes the minutes, not the result)."""
    gpu = torch.cuda.get_device_name(0) if device and device.startswith("cuda") and torch.cuda.is_available() else None
    return {"leannets_commit": _commit(), "torch": torch.__version__, "python": platform.python_version(),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "device": device, "gpu": gpu, "amp": amp, "allocator": allocator}


def make_record(resolved: Recipe, result: Mapping[str, Any], run_id: str, threads: int | None,
                analyses: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of one finished run (``result`` as the engine returns it)."""
    data = result.get("data") or {}
    ident = identity(resolved)
    return {
        "version": RECORD_VERSION, "run_id": run_id, "key": stable_hash(ident, n=16), "seed": resolved.seed,
        "recipe": ident,
        "model_fingerprint": model_fingerprint(resolved.model.name, resolved.model.kwargs,
                                               data.get("num_classes"), data.get("in_chans")),
        "machine": machine(threads, str(result.get("device") or resolved.train.device), _effective_amp(resolved, result),
                           result.get("allocator")),
        "wall_s": training_seconds(result),
        "result": {k: result.get(k) for k in RESULT_KEYS},
        "analyses": dict(analyses or {}),
    }


def training_seconds(result: Mapping[str, Any]) -> float:
    """Seconds a run trained: the engine's ``train_time_s`` counts only the last sitting of a resumed run, so
    the epochs' own times (``history``, kept across resumes) count when they add up to more."""
    epochs = sum(float(h.get("epoch_time_s") or 0.0) for h in result.get("history") or [])
    return max(float(result.get("train_time_s") or 0.0), epochs)


def _effective_amp(resolved: Recipe, result: Mapping[str, Any]) -> str:
    """The precision a run trained in: the engine's ``amp``; a result from before the engine reported it
    trained ``auto`` on a CPU in fp32 (that engine never autocast a CPU run unless told ``bf16``)."""
    if result.get("amp"):
        return str(result["amp"])
    device = str(result.get("device") or resolved.train.device)
    return "off" if resolved.train.amp in ("auto", "fp16") and not device.startswith("cuda") else resolved.train.amp


def record_amp(record: Mapping[str, Any]) -> str | None:
    """A record's precision; version-1 records made before the effective precision was recorded say ``auto``,
    which on a CPU meant fp32 (see :func:`_effective_amp`)."""
    m = record.get("machine") or {}
    return "off" if m.get("amp") == "auto" and not m.get("gpu") else m.get("amp")


@dataclass
class Staleness:
    """Why a record of the same run no longer holds."""

    path: Path
    reason: str


class RecordStore:
    """A folder of run records (``<run id>.json``), looked up by the identity of a resolved recipe."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._by_key: dict[str, list[tuple[Path, dict[str, Any]]]] | None = None
        self._measurements: dict[str, dict[str, Any]] = {}
        self._fingerprints: dict[str, str] = {}

    def _index(self) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
        if self._by_key is None:
            self._by_key = {}
            for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
                try:
                    rec = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise ValueError(f"run record {path}: not readable JSON ({e})") from None
                if not isinstance(rec, dict) or rec.get("version") != RECORD_VERSION or "key" not in rec:
                    raise ValueError(f"run record {path}: not a version-{RECORD_VERSION} run record")
                if rec.get("kind") == MEASUREMENT:
                    self._measurements[rec["key"]] = rec
                else:
                    self._by_key.setdefault(rec["key"], []).append((path, rec))
        return self._by_key

    def _fingerprint(self, resolved: Recipe, data: Mapping[str, Any]) -> str:
        key = stable_hash([resolved.model.to_dict(), data.get("num_classes"), data.get("in_chans")])
        if key not in self._fingerprints:
            self._fingerprints[key] = model_fingerprint(resolved.model.name, resolved.model.kwargs,
                                                        data.get("num_classes"), data.get("in_chans"))
        return self._fingerprints[key]

    def find(self, resolved: Recipe) -> tuple[dict[str, Any] | None, Staleness | None]:
        """(the record that still holds for ``resolved``, or why the one of the same run does not)."""
        ident = identity(resolved)
        stale: Staleness | None = None
        for path, rec in self._candidates(ident):
            data = (rec.get("result") or {}).get("data") or {}
            if rec.get("model_fingerprint") != self._fingerprint(resolved, data):
                stale = Staleness(path, f"model code changed since commit {rec['machine'].get('leannets_commit')}")
                continue
            return rec, None
        if stale is None:
            stale = self._same_run_other_recipe(ident)
        return None, stale

    def _candidates(self, ident: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
        """Records of this run: the same identity, or one that lacks only keys the schema gained since, which
        ``ident`` holds at their defaults (a new key's default keeps what the code did before)."""
        exact = [(p, r) for p, r in self._index().get(stable_hash(ident, n=16), []) if r.get("recipe") == ident]
        widened = [(p, r) for entries in self._index().values() for p, r in entries
                   if r.get("recipe") != ident and _same_model_and_seed(r.get("recipe") or {}, ident)
                   and _only_new_defaults(r["recipe"], ident)]
        return exact + widened

    def _same_run_other_recipe(self, ident: Mapping[str, Any]) -> Staleness | None:
        """The record of the same model and seed whose recipe now resolves differently (named by key)."""
        for entries in self._index().values():
            for path, rec in entries:
                old = rec.get("recipe") or {}
                if _same_model_and_seed(old, ident):
                    diff = sorted(recipe_diff(old, ident))
                    if diff and len(diff) <= 6:
                        return Staleness(path, "recipe differs in " + ", ".join(diff))
        return None

    def runs(self) -> Iterator[dict[str, Any]]:
        """Every run record of the folder (measurement records excluded), each checked as :meth:`find` checks it."""
        for entries in self._index().values():
            for _, rec in entries:
                yield rec

    def minutes_like(self, resolved: Recipe) -> float | None:
        """An estimate of ``resolved``'s cost in minutes from the records: the mean recorded minutes of runs of its
        recipe with any seed; else, for a single-stage recipe, its epochs times the mean recorded seconds per epoch of
        runs that differ from it only in the seed, the epochs, the schedule or the checkpointing (the same data, batch
        and step limit, so the same steps per epoch, and the same model, precision and device, so the same step cost)."""
        ident = {k: v for k, v in identity(resolved).items() if k != "seed"}
        step = None if ident.get("stages") else _step_cost_key(ident)
        walls, per_epoch = [], []
        for rec in self.runs():
            old = {k: v for k, v in (rec.get("recipe") or {}).items() if k != "seed"}
            if old == ident or _only_new_defaults(old, ident):  # older records lack keys added since
                walls.append(rec["wall_s"])
            elif step is not None and _step_cost_key(old) == step:
                done = (rec.get("result") or {}).get("epochs")
                if done:
                    per_epoch.append(rec["wall_s"] / done * resolved.train.epochs)
        found = walls or per_epoch
        return sum(found) / len(found) / 60.0 if found else None

    def measurement(self, what: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """The measurement record of ``what`` under ``spec`` (settings and model fingerprints), if one is kept."""
        self._index()
        return self._measurements.get(measurement_key(what, spec))

    def write_measurement(self, what: str, spec: Mapping[str, Any], values: Mapping[str, Any],
                          threads: int | None) -> dict[str, Any]:
        key = measurement_key(what, spec)
        record = {"version": RECORD_VERSION, "kind": MEASUREMENT, "what": what, "key": key, "spec": dict(spec),
                  "machine": machine(threads, "cpu"), "values": dict(values)}
        atomic_write_json(self.folder / f"measure-{what}-{key}.json", record)
        self._index()
        self._measurements[key] = record
        return record

    def write(self, record: Mapping[str, Any]) -> Path:
        path = self.folder / f"{record['run_id']}.json"
        atomic_write_json(path, record)
        if self._by_key is not None:
            self._by_key.setdefault(record["key"], []).append((path, dict(record)))
        return path


def measurement_key(what: str, spec: Mapping[str, Any]) -> str:
    """A measurement's identity: what, its settings and models, and the torch that ran it."""
    return stable_hash({"what": what, "spec": dict(spec), "torch": torch.__version__}, n=16)


def _same_model_and_seed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """The same seed and model section, over the model keys ``old`` has (a key the schema gained since is judged
    by :func:`_only_new_defaults`)."""
    old_model, new_model = old.get("model") or {}, new.get("model") or {}
    return old.get("seed") == new.get("seed") and all(new_model.get(k) == v for k, v in old_model.items())


_MISSING = object()


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _schema_default(dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    cls = SECTION_TYPES.get(head) if rest else Recipe
    spec = cls.schema.get(rest or head) if cls is not None else None
    return _MISSING if spec is None else spec.default


#: Recipe keys that change how long a run trains but not what one step costs (:meth:`RecordStore.minutes_like`).
STEP_COST_FREE = ("train.epochs", "train.eval_every", "schedule", "checkpoint")


def _step_cost_key(recipe: Mapping[str, Any]) -> dict[str, Any]:
    tree = dict(recipe)
    for key in STEP_COST_FREE:
        tree = _drop(tree, key)
    return tree


def _only_new_defaults(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` only by keys ``old`` lacks and ``new`` holds at the schema default."""
    diff = recipe_diff(old, new)
    return bool(diff) and all(_get(old, k) is _MISSING and _get(new, k) == _schema_default(k) for k in diff)


