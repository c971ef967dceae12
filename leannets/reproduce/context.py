"""The context every experiment runs in: where it writes, which scale and seeds, and how a row's training run is
found (a run record, a finished or interrupted run folder) or trained — the one place a reproduction trains."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from leannets.config import Recipe, StageConfig
from leannets.engine import train
from leannets.engine.checkpoint import load_model
from leannets.engine.recipe import load_recipe, stage_configs
from leannets.engine.task import create_task
from leannets.engine.trainer import NonFiniteLossError

from .records import RecordStore, Staleness, make_record, pin_commit, record_amp
from .reference import Reference
from .results import ExperimentResult
from .spec import SCALES, Experiment, Paper, Row, stable_hash

__all__ = ["Context", "RunFailed", "format_overrides"]


class RunFailed(RuntimeError):
    """A training run of the reproduction diverged; its rows read "not measured" and the other runs go on."""


def format_overrides(values: Mapping[str, Any], data_root: Path | None) -> dict[str, Any]:
    """Substitute ``{data_root}`` in string values (``ValueError`` when a root is needed but missing)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str) and "{data_root}" in value:
            if data_root is None:
                raise ValueError(f"recipe key {key} needs --data-root (it reads {value!r})")
            value = value.replace("{data_root}", str(data_root))
        out[key] = value
    return out


@dataclass
class Context:
    """What an experiment's ``analysis`` hook can use."""

    paper: Paper
    scale: str
    seed: int
    out_dir: Path
    data_root: Path | None
    reference: Reference
    log: Callable[[str], None] = print
    threads: int | None = None
    runs_root: Path | None = None
    seeds: int = 1
    device: str | None = None
    run_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_counts: dict[str, int] = field(default_factory=dict)
    records: RecordStore | None = None
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    retime: bool = False
    failed: dict[str, str] = field(default_factory=dict)  # run id → why it failed (a diverged run)
    no_train: bool = False  # build from records and finished run folders only; a missing run is "not measured"

    def __post_init__(self) -> None:
        if self.records is not None:
            pin_commit()  # the code this process loaded, before any run trains

    @property
    def runs_dir(self) -> Path:
        return self.runs_root or self.out_dir / "runs"

    def figure(self, name: str) -> Path:
        path = self.out_dir / "figures" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the output folder (as written into the report)."""
        try:
            return str(Path(path).resolve().relative_to(self.out_dir.resolve()))
        except ValueError:
            return str(path)

    def fail(self, run_id: str, why: str) -> RunFailed:
        """Remember that ``run_id`` cannot serve this reproduction (logged once); the error its rows raise."""
        self.failed[run_id] = f"run {run_id} {why}"
        self.log(f"  {self.failed[run_id]}")
        return RunFailed(self.failed[run_id])

    def measured(self, what: str, spec: Mapping[str, Any], measure: Callable[[], Mapping[str, Any]],
                 threads: int | None = None) -> dict[str, Any]:
        """The values of a slow measurement (timings): from its measurement record when one holds for ``spec`` (and
        ``--retime`` was not given), else measured now and recorded. Returns ``{"values", "machine", "reused"}``."""
        rec = None if self.records is None or self.retime else self.records.measurement(what, spec)
        if rec is not None:
            self.log(f"  {what}: reusing the measurement record of {rec['machine'].get('cpu')} "
                     f"(commit {rec['machine'].get('leannets_commit')})")
            return {"values": rec["values"], "machine": rec["machine"], "reused": True}
        values = dict(measure())
        if self.records is None:
            return {"values": values, "machine": None, "reused": False}
        rec = self.records.write_measurement(what, spec, values, threads)
        return {"values": rec["values"], "machine": rec["machine"], "reused": False}

    # -- training ----------------------------------------------------------------------------
    def recipe_for(self, exp: Experiment, row: Row, seed_index: int = 0,
                   extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """(bundled recipe name, dotted overrides) that train ``row`` at this scale with seed ``seed + seed_index``
        (``extra``: overrides on top, e.g. another precision for a check of the recipe itself)."""
        spec = exp.train
        assert spec is not None
        recipe = spec.recipe_for(row.key, self.scale)
        model = row.model_for(self.scale)
        if model is None:
            raise ValueError(f"{exp.name}: row {row.key!r} is not trained at {self.scale} scale")
        overrides: dict[str, Any] = dict(spec.scales[self.scale])
        for key, value in row.train_overrides.items():
            if key in SCALES:
                if key == self.scale:
                    overrides.update(value)
            else:
                overrides[key] = value
        overrides.update({"model.name": model.name, "model.kwargs": dict(model.kwargs),
                          "seed": self.seed + seed_index, "train.progress": False})
        if self.scale in ("smoke", "cpu"):
            overrides["train.device"] = "cpu"
        elif self.device:
            overrides["train.device"] = self.device
        if self.threads:
            overrides["train.threads"] = self.threads
        overrides.update(extra or {})
        return recipe, format_overrides(overrides, self.data_root)

    def resolve(self, exp: Experiment, row: Row, seed_index: int = 0,
                extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any], Recipe, str]:
        """(recipe name, overrides, resolved recipe, run id) of ``row``'s training run with one seed."""
        recipe, overrides = self.recipe_for(exp, row, seed_index, extra)
        resolved = load_recipe(recipe, overrides)
        # name/description do not change what is trained: equal runs of different tables are shared; nor does
        # the host allocator (the ids stay those of the runs before the key existed)
        key = {k: v for k, v in resolved.to_dict().items() if k not in ("name", "description")}
        key["train"] = {k: v for k, v in key["train"].items() if k != "allocator"}
        return recipe, overrides, resolved, f"{resolved.model.name}-{stable_hash(key)}"

    def train(self, exp: Experiment, row: Row, seed_index: int = 0,
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Train (or reuse / resume) the run of ``row`` with one seed; returns the engine's result dict."""
        recipe, overrides, resolved, run_id = self.resolve(exp, row, seed_index, extra)
        if run_id in self.failed:
            raise RunFailed(self.failed[run_id])
        if run_id in self.run_cache:
            if set(row.run_analyses) <= set(self.run_cache[run_id].get("analyses") or {}):
                return self.run_cache[run_id]
            # the same run served a row without these per-run analyses: add them from its folder (or retrain)
            del self.run_cache[run_id]
        record, stale = self.records.find(resolved) if self.records is not None else (None, None)
        missing = sorted(set(row.run_analyses) - set((record or {}).get("analyses") or {}))
        if record is not None and missing:
            record, stale = None, Staleness(Path(record["run_id"]), f"its record lacks {', '.join(missing)}")
        run_dir = self.runs_dir / run_id
        if record is not None:
            self.log(f"  reusing the record of {record['run_id']} ({record['machine'].get('cpu')})")
            result = {**record["result"], "checkpoint": None, "best_checkpoint": None,
                      "analyses": record.get("analyses") or {}}
            source = "record"
        else:
            try:
                result, source = self._train_or_reuse(row, recipe, resolved, run_dir)
            except NonFiniteLossError as err:
                raise self.fail(run_id, f"diverged: {str(err).splitlines()[0]}") from None
            result = {**result, "analyses": _run_analyses(row, result)}
            record = make_record(resolved, result, run_id, self.threads, analyses=result["analyses"])
            if self.records is not None:
                self.records.write(record)
        self.provenance[run_id] = {"run_id": run_id, "source": source, "cpu": record["machine"].get("cpu"),
                                   "threads": record["machine"].get("threads"), "amp": record_amp(record),
                                   "gpu": record["machine"].get("gpu"), "minutes": record["wall_s"] / 60.0,
                                   "commit": record["machine"].get("leannets_commit"),
                                   "retrained_because": stale.reason if stale and source != "record" else None}
        result = dict(result)
        result["run_id"], result["recipe_name"], result["overrides"] = run_id, recipe, overrides
        # printed beside every accuracy / PSNR; a record carries it, so a report from records reads no data
        result["eval_samples"] = result.get("eval_samples") or self.eval_count(resolved)
        result["run_dir"] = str(run_dir) if source != "record" else None
        self.run_cache[run_id] = result
        return result

    def _train_or_reuse(self, row: Row, recipe: str, resolved: Recipe, run_dir: Path) -> tuple[dict[str, Any], str]:
        """The engine's result of a run trained here: reused from its folder, resumed, or trained now."""
        done = run_dir / "result.json"
        if done.is_file():
            self.log(f"  reusing finished run {self.rel(run_dir)}")
            return json.loads(done.read_text(encoding="utf-8")), "run folder"
        if self.no_train:
            raise self.fail(run_dir.name, "has no record yet (built with --no-train)")
        if (run_dir / "last.pt").is_file():
            self.log(f"  resuming interrupted run {self.rel(run_dir)}")
            return train(resume=run_dir, out_dir=run_dir, verbose=self.scale == "paper", progress=False), "resumed"
        self.log(f"  training {row.model_for(self.scale).describe()} ({recipe}, {self.scale} scale, "
                 f"seed {resolved.seed})")
        return train(resolved, out_dir=run_dir, verbose=self.scale == "paper", progress=False), "trained"

    def eval_count(self, resolved: Recipe) -> int:
        """Size of the evaluation split a recipe evaluates on (for the accuracies' noise)."""
        return self._read_data(stage_configs(resolved)[-1])

    def read_data(self, resolved: Recipe) -> None:
        """Read the data of every stage of a recipe once (which builds its decode cache, if it has one)."""
        for cfg in stage_configs(resolved):
            self._read_data(cfg)

    def _read_data(self, cfg: StageConfig) -> int:
        key = stable_hash({"data": cfg.data.to_dict(), "task": cfg.task.to_dict()})
        if key not in self.eval_counts:
            self.eval_counts[key] = len(create_task(cfg).build_data().eval)
        return self.eval_counts[key]

    def checkpoint(self, res: ExperimentResult, row_key: str) -> Path:
        """The final checkpoint of a trained row."""
        run = res.row(row_key).run
        if not run or not run.get("checkpoint"):
            raise ValueError(f"{res.name}: row {row_key!r} was not trained at {self.scale} scale")
        path = Path(run["checkpoint"])
        return path if path.is_absolute() else self.out_dir / path

    def seed_checkpoints(self, res: ExperimentResult, row_key: str) -> list[Path]:
        """The final checkpoint of every seed of a trained row, in seed order."""
        run = res.row(row_key).run or {}
        paths = [Path(p) for p in run.get("seed_checkpoints") or []] or [self.checkpoint(res, row_key)]
        return [p if p.is_absolute() else self.out_dir / p for p in paths]


def _run_analyses(row: Row, result: Mapping[str, Any]) -> dict[str, Any]:
    """The row's per-run analyses (:attr:`Row.run_analyses`) of a finished run's final checkpoint."""
    if not row.run_analyses:
        return {}
    model, ckpt = load_model(result["checkpoint"])
    return {name: fn(model, ckpt) for name, fn in row.run_analyses.items()}
