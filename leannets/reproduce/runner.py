"""Run a paper's declared experiments at a scale and write ``report.md``, ``results.json`` and PNGs.

Training goes through the engine's programmatic API (:func:`leannets.engine.train`); every
trained run lives in ``<out>/runs/<model>-<hash of the resolved recipe>/`` and is reused when
the same run is needed again (by another table, or by re-running the command). A run folder
holding a checkpoint but no ``result.json`` was interrupted: it is resumed, which makes the
``paper`` scale resumable.
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from leannets.analysis.profile import count_macs, count_params, torch_threads
from leannets.analysis.statistics import mean_ci
from leannets.config import Recipe
from leannets.engine import train
from leannets.engine.recipe import load_recipe
from leannets.engine.trainer import NonFiniteLossError
from leannets.models import model_info

from .claims import fmt_num
from .context import Context, RunFailed, format_overrides
from .plots import draw_plot
from .records import RecordStore
from .reference import load_reference
from .report import write_report
from .results import STATUSES, ExperimentResult, RowResult, Verdict, format_counts
from .spec import SCALES, Experiment, ModelSpec, Paper, Row, get_paper

__all__ = ["Context", "run_paper", "profile_spec", "format_overrides"]

RESULTS_VERSION = 2  # 2: rows trained with several seeds, CI verdicts


def profile_spec(spec: ModelSpec, input_size: Sequence[int] | None, macs: bool = True,
                 seed: int = 0, **build_kwargs: Any) -> dict[str, Any]:
    """Parameters (and MACs for one image) of a model spec; counted on the ``meta`` device when
    the model allows it (no memory, same numbers), else on CPU."""
    size = tuple(int(v) for v in (input_size or model_info(spec.name).input_size))
    out: dict[str, Any] = {"input_size": list(size)}
    for device in ("meta", "cpu"):
        try:
            torch.manual_seed(seed)
            with torch.device(device):
                model = spec.build(**build_kwargs).eval()
                out["params"] = count_params(model)[0]
                if macs:
                    out["macs"] = count_macs(model, torch.zeros(1, *size))
            return out
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
    return out


def iter_runs(experiments: Sequence[Experiment], scale: str, seeds: int) -> Iterator[tuple[Experiment, Row, int]]:
    """Every training run of ``experiments`` at ``scale`` as (experiment, row, seed index): the one order that
    plan, training and report share. Seed-major within an experiment, so that a stopped reproduction leaves
    complete paired seeds rather than every seed of the first row."""
    for exp in experiments:
        if exp.train is None or not exp.train.trains_at(scale):
            continue
        rows = [row for row in exp.rows if row.model_for(scale) is not None]
        for k in range(seeds):
            for row in rows:
                yield exp, row, k


def _train_in_worker(recipe: str, overrides: dict[str, Any], run_dir: str, threads: int | None) -> str:
    """One training run in a worker process of :func:`train_parallel` (a fresh interpreter: ``spawn``)."""
    if threads:
        torch.set_num_threads(threads)
    train(load_recipe(recipe, overrides), out_dir=run_dir, verbose=False, progress=False)
    return run_dir


def train_parallel(ctx: Context, experiments: Sequence[Experiment], jobs: int) -> int:
    """Train every distinct, unfinished run of ``experiments`` in ``jobs`` processes at once (several small
    runs share one GPU better than they run one after another); the experiments then reuse the finished
    runs. Interrupted runs are left to the sequential pass, which resumes them. Returns the runs trained."""
    todo: dict[str, tuple[str, dict[str, Any]]] = {}
    resolved_runs: list[Recipe] = []
    for exp, row, k in iter_runs(experiments, ctx.scale, ctx.seeds):
        recipe, overrides, resolved, run_id = ctx.resolve(exp, row, k)
        run_dir = ctx.runs_dir / run_id
        if not (run_dir / "result.json").is_file() and not (run_dir / "last.pt").is_file():
            todo[str(run_dir)] = (recipe, overrides)
            resolved_runs.append(resolved)
    if not todo:
        return 0
    for resolved in resolved_runs:  # each data set read once here: its decode cache is built once, not once per job
        ctx.read_data(resolved)
    ctx.log(f"  training {len(todo)} runs, {jobs} at a time")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_in_worker, recipe, overrides, run_dir, ctx.threads)
                   for run_dir, (recipe, overrides) in todo.items()]
        for run_dir, future in zip(todo, futures):
            try:
                ctx.log(f"  finished {ctx.rel(future.result())}")
            except NonFiniteLossError as err:  # one diverged run does not end the others (nor the paper)
                ctx.fail(Path(run_dir).name, f"diverged: {str(err).splitlines()[0]}")
    return len(todo)


def _row_metrics_from_run(result: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten the engine's final evaluation into report metrics (accuracies in %)."""
    final = result.get("final") or {}
    out: dict[str, Any] = {}
    for key, value in final.items():
        name = key[5:] if key.startswith("eval_") else key
        if value is None or not isinstance(value, (int, float)):
            continue
        value = float(value)
        if name.startswith("acc"):
            value *= 100.0
        out[name] = value
    if "acc1" in out:
        out["error"] = 100.0 - out["acc1"]
    if "acc5" in out:
        out["top5_error"] = 100.0 - out["acc5"]
    if result.get("eval_samples"):
        out["eval_samples"] = int(result["eval_samples"])
    out["train_time_s"] = float(result.get("train_time_s") or 0.0)
    out["epochs"] = result.get("epochs")
    return out


def _seed_metrics(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Row metrics over seeds: each measured metric's mean, plus ``<metric>_per_seed`` and a 95% interval
    ``<metric>_ci`` (``[low, high]``, ``None`` for one seed); times are summed, sizes kept."""
    out: dict[str, Any] = {"seeds": len(per_seed)}
    for key, first in per_seed[0].items():
        values = [m.get(key) for m in per_seed]
        if key in ("eval_samples", "epochs") or not isinstance(first, (int, float)) or None in values:
            out[key] = first
        elif key == "train_time_s":
            out[key] = float(sum(values))
        else:
            ci = mean_ci(values)
            out[key] = ci.mean
            out[f"{key}_per_seed"] = [float(v) for v in values]
            out[f"{key}_ci"] = [ci.low, ci.high] if ci.defined else None
    return out


def _new_result(exp: Experiment, scale: str) -> ExperimentResult:
    res = ExperimentResult(name=exp.name, ref=exp.ref, title=exp.title, scale=scale)
    for row in exp.rows:
        res.rows.append(RowResult(key=row.key, label=row.label, model=row.model.as_dict(), group=row.group,
                                  x=row.x, input_size=row.input_size))
    if exp.notes.get(scale):
        res.notes.append(exp.notes[scale])
    if exp.not_trained.get(scale):
        res.extras["not_trained"] = exp.not_trained[scale]
    if exp.train is not None and exp.train.floor.get(scale) is not None:
        res.extras["floor"] = {"metric": exp.train.metric, "value": float(exp.train.floor[scale])}
    return res


def run_experiment(ctx: Context, exp: Experiment) -> ExperimentResult:
    """Measure, train, analyse, judge and plot one experiment."""
    t0 = time.perf_counter()
    res = _new_result(exp, ctx.scale)
    if "params" in exp.measure or "macs" in exp.measure:
        for row, rr in zip(exp.rows, res.rows):
            prof = profile_spec(row.model, row.input_size, macs="macs" in exp.measure, seed=ctx.seed)
            rr.input_size = tuple(prof["input_size"])
            rr.metrics.update({k: v for k, v in prof.items() if k != "input_size"})
    for _, row, k in iter_runs([exp], ctx.scale, ctx.seeds):
        try:
            ctx.train(exp, row, k)
        except RunFailed as err:
            res.notes.append(f"Not used: {err} (its row's claims read not measured).")
    if exp.train is not None and exp.train.trains_at(ctx.scale):
        res.trained = True
        for row, rr in zip(exp.rows, res.rows):
            spec = row.model_for(ctx.scale)
            if spec is None:
                continue
            try:
                results = [ctx.train(exp, row, k) for k in range(ctx.seeds)]
            except RunFailed:
                continue  # a seed diverged: the row has no trained metrics (noted above)
            result = results[0]  # its checkpoint serves the analyses (CAMs, sharpness, ...)
            rr.trained_model = spec.as_dict()
            data = result.get("data") or {}
            sized = {k: data[k] for k in ("num_classes", "in_chans") if data.get(k) and k not in spec.kwargs}
            prof = profile_spec(spec, data.get("input_size") or None, macs=True, seed=ctx.seed, **sized)
            rr.metrics["train_params"], rr.metrics["train_macs"] = prof.get("params"), prof.get("macs")
            rr.metrics["train_input_size"] = prof.get("input_size")
            rr.metrics.update(_seed_metrics([_row_metrics_from_run(r) for r in results]))
            rr.run = {k: result.get(k) for k in ("run_id", "run_dir", "recipe_name", "overrides", "checkpoint",
                                                 "best_checkpoint", "epochs", "global_step", "data")}
            rr.run["seed_runs"] = [r.get("run_id") for r in results]
            rr.run["scored_on"] = "test split, final epoch"  # nothing selects on it (plateaus and best.pt read val)
            rr.run["seed_checkpoints"] = [ctx.rel(r["checkpoint"]) for r in results if r.get("checkpoint")]
            for k in ("run_dir", "checkpoint", "best_checkpoint"):  # relative to the report when inside it
                if rr.run.get(k):
                    rr.run[k] = ctx.rel(rr.run[k])
    if exp.analysis is not None:
        try:
            exp.analysis(ctx, res)
        except RunFailed as err:
            res.notes.append(f"Analysis skipped: {err}.")
    for claim in exp.claims:
        res.verdicts.append(claim.judge(res, ctx.reference, ctx.scale))
    for plot in exp.plots:
        path = draw_plot(plot, exp, res, ctx.reference, ctx.figure(plot.file))
        if path is not None:
            res.files.append(ctx.rel(path))
    res.seconds = time.perf_counter() - t0
    return res


def _summary(results: Sequence[ExperimentResult]) -> dict[str, int]:
    """Verdicts per status, and ``decided trained`` claims (trained claims reproduced or contradicted)."""
    counts = {status: 0 for status in STATUSES}
    counts["decided trained"] = 0
    for r in results:
        for v in r.verdicts:
            counts[v.status] += 1
            counts["decided trained"] += v.trained and v.status in ("reproduced", "contradicted")
    return counts


def run_paper(paper: str | Paper, tables: Sequence[str] | None = None, scale: str = "smoke",
              out_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None, seed: int = 0,
              threads: int | None = None, command: str | None = None, log: Callable[[str], None] = print,
              runs_dir: str | os.PathLike | None = None, seeds: int | None = None, device: str | None = None,
              jobs: int = 1, records_dir: str | os.PathLike | None = None, retime: bool = False,
              no_train: bool = False) -> dict[str, Any]:
    """Run ``paper``'s experiments (all, or ``tables``) at ``scale``; returns the results dict
    (also written to ``<out_dir>/results.json`` with ``report.md`` and ``figures/``). Training
    runs live in ``runs_dir`` (default ``<out_dir>/runs``; share one across papers to reuse runs).
    Every trained row is trained with ``seeds`` seeds (default: :meth:`Paper.seeds_at` of the scale), paired
    across rows.
    ``device`` sets ``train.device`` at gpu and paper scale (smoke and cpu always train on the CPU); ``jobs`` > 1
    trains the runs that many at a time first (:func:`train_parallel`). ``records_dir`` holds the run records
    (:mod:`.records`): a run whose record still holds is not trained again, and every run trained here adds its
    record; slow measurements (the WAE timings) are kept there as measurement records, reused unless ``retime``.
    ``no_train``: build the report from records and finished run folders only (a run without either is noted and
    its row's claims read not measured)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    paper_obj = get_paper(paper) if isinstance(paper, str) else paper
    root = Path(data_root).expanduser() if data_root else None
    if scale != "smoke" and root is None:
        raise ValueError(f"--scale {scale} needs --data-root (e.g. ../shared/data for cpu scale)")
    if root is not None and not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} is not a folder")
    out = Path(out_dir or f"reproductions/{paper_obj.name}-{scale}")
    out.mkdir(parents=True, exist_ok=True)
    experiments = [e for e in paper_obj.select(tables) if scale in e.scales]
    n_seeds = paper_obj.seeds_at(scale) if seeds is None else seeds
    if n_seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {n_seeds}")
    ctx = Context(paper=paper_obj, scale=scale, seed=seed, out_dir=out, data_root=root,
                  reference=load_reference(paper_obj.name), log=log, threads=threads,
                  runs_root=Path(runs_dir) if runs_dir else None, seeds=n_seeds, device=device,
                  records=RecordStore(records_dir) if records_dir else None, retime=retime, no_train=no_train)
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    t0 = time.perf_counter()
    results: list[ExperimentResult] = []
    if jobs > 1 and not no_train:
        train_parallel(ctx, experiments, jobs)
    with torch_threads(threads):
        for exp in experiments:
            log(f"[{paper_obj.name}] {exp.ref}: {exp.title}")
            results.append(run_experiment(ctx, exp))
    doc = {
        "version": RESULTS_VERSION, "paper": paper_obj.name, "title": paper_obj.title, "scale": scale, "seed": seed,
        "seeds": list(range(seed, seed + n_seeds)), "device": device, "jobs": jobs,
        "command": command, "data_root": str(root) if root else None,
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "threads": threads or torch.get_num_threads(), "machine": platform.machine(),
                        "accelerator": _accelerator(scale, device)},
        "reference_notice": ctx.reference.notice, "summary": _summary(results),
        "runs": list(ctx.provenance.values()),
        "cpu_hours": sum(r["minutes"] for r in ctx.provenance.values() if not r.get("gpu")) / 60.0,
        "gpu_hours": sum(r["minutes"] for r in ctx.provenance.values() if r.get("gpu")) / 60.0,
        "seconds": time.perf_counter() - t0, "experiments": [r.as_dict() for r in results],
    }
    write_report(doc, results, ctx)
    return doc


def _accelerator(scale: str, device: str | None) -> str | None:
    """The GPU's name when the runs of this scale train on one (gpu/paper scale, ``device`` auto or cuda)."""
    if scale in ("smoke", "cpu") or not torch.cuda.is_available():
        return None
    if device in (None, "auto"):
        return torch.cuda.get_device_name(0)
    if not str(device).startswith("cuda"):
        return None
    return torch.cuda.get_device_name(torch.device(device).index or 0)


def plan_paper(paper: str | Paper, tables: Sequence[str] | None = None, scale: str = "smoke",
               data_root: str | os.PathLike | None = None, seed: int = 0, seeds: int | None = None,
               device: str | None = None, records_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every training run ``run_paper`` would start, with its recipe resolved and validated by the
    engine (nothing is trained and no data is read): a dry run of the declarations. With ``records_dir``, each
    run says whether a record holds it (``recorded``) and, if not, ``estimate_min``: the mean minutes recorded
    for the same recipe with other seeds (``None`` when there is none)."""
    paper_obj = get_paper(paper) if isinstance(paper, str) else paper
    ctx = Context(paper=paper_obj, scale=scale, seed=seed, out_dir=Path("."),
                  data_root=Path(data_root) if data_root else None, reference=load_reference(paper_obj.name),
                  device=device)
    store = RecordStore(records_dir) if records_dir else None
    runs: list[dict[str, Any]] = []
    experiments = [e for e in paper_obj.select(tables) if scale in e.scales]
    n_seeds = paper_obj.seeds_at(scale) if seeds is None else seeds
    for exp, row, k in iter_runs(experiments, scale, n_seeds):
        recipe, overrides, resolved, run_id = ctx.resolve(exp, row, k)
        recorded = store is not None and store.find(resolved)[0] is not None
        runs.append({"experiment": exp.name, "row": row.key, "model": resolved.model.to_dict(),
                     "recipe": recipe, "overrides": overrides, "run_id": run_id, "seed": resolved.seed,
                     "stages": len(resolved.stages) or 1, "recorded": recorded,
                     "estimate_min": None if store is None or recorded else store.minutes_like(resolved)})
    return runs


def verdict_counts(doc: Mapping[str, Any]) -> str:
    return format_counts(doc["summary"])


__all__ += ["run_experiment", "plan_paper", "train_parallel", "verdict_counts", "fmt_num", "Verdict"]
