"""Train several models under one recipe for several seeds, then profile and report them side by side.

This is the ``leannets compare`` main job. Every figure in the report is measured in the run: the task's
main metric from the final evaluation of every seed (mean with a 95% interval, and the paired difference
to the baseline with its interval: :mod:`leannets.analysis.statistics`), parameters and MACs from
:mod:`leannets.analysis.profile`, CPU latency timed here.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from leannets._io import atomic_save_figure, atomic_write_json, atomic_write_text, pyplot
from leannets._log import ensure_console
from leannets.config import DEFAULT_COMPARE_MODELS, DEFAULT_COMPARE_RECIPE, Recipe
from leannets.engine.recipe import apply_overrides, dump_recipe, load_recipe, parse_override, stage_configs
from leannets.engine.task import create_task
from leannets.engine.trainer import train
from leannets.models import model_info

from .latency import (DEFAULT_BACKEND, DEFAULT_ROUNDS, DEFAULT_THREADS, format_with_ci, load_average, measure_latency,
                      ratio_caveat, torch_threads)
from .profile import profile_model
from .statistics import Interval, describe_difference, mean_ci, paired_difference

_LOG = logging.getLogger(__name__)

__all__ = ["DEFAULT_COMPARE_MODELS", "DEFAULT_COMPARE_RECIPE", "compare_models", "format_report", "plot_results"]



def _overrides_dict(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return dict(parse_override(o) for o in overrides)


def _profile(name: str, recipe: Recipe, data_info: dict[str, Any]) -> tuple[dict[str, Any], nn.Module]:
    """Parameters and MACs of the model as trained on this data, and the (untrained) model for timing."""
    cfg = stage_configs(recipe)[0]
    model = create_task(cfg).build_model(SimpleNamespace(**data_info)).eval()
    size = tuple(data_info.get("input_size") or (model.in_chans, 32, 32))
    r = profile_model(model, input_size=size, batch=1, latency=False, memory=False)
    return {"params": r.params, "macs": r.macs, "input_size": list(size)}, model


def _add_latency(rows: list[dict[str, Any]], models: dict[str, nn.Module], threads: int | None) -> dict[str, Any]:
    """Every model timed in the deployment path, interleaved; ratios to the baseline with 95% CIs."""
    load = load_average()
    report = measure_latency(models, {r["name"]: r["input_size"] for r in rows}, 1, DEFAULT_BACKEND,
                             threads or DEFAULT_THREADS, DEFAULT_ROUNDS)
    base = report.results[0].latency_ms
    for r in rows:
        lat = report.result(r["name"])
        r["latency_ms"], r["latency_ci_ms"] = lat.latency_ms, list(lat.latency_ci_ms)
        r["latency_ratio"] = lat.ratio_to_first
        r["latency_ratio_ci"] = None if lat.ratio_ci is None else list(lat.ratio_ci)
        r["latency_caveat"] = ratio_caveat(lat.ratio_to_first, r["latency_ratio_ci"], lat.latency_ms, base, load,
                                           report.threads) if r is not rows[0] else None
    return {"backend": report.backend, "threads": report.threads, "batch": report.batch, "rounds": report.rounds,
            "settings": report.settings, "load_average": load}


def compare_models(models: Sequence[str] | None = None, recipe: str | os.PathLike | Mapping[str, Any] | None = None,
                   overrides: Mapping[str, Any] | Sequence[str] | None = None, out_dir: str | os.PathLike = "runs/compare",
                   epochs: int | None = None, seeds: int = 3, latency: bool = True, threads: int | None = None,
                   verbose: bool = True, progress: bool | None = None, command: str | None = None) -> dict[str, Any]:
    """Train, evaluate and profile each model under the same recipe for several seeds; write the report.

    Seed ``k`` (``recipe.seed + k``) gives every model the same data order and augmentation, so the
    differences to the baseline are paired by seed (see :mod:`leannets.analysis.statistics`).

    Args:
        models: registered names (default :data:`~leannets.config.DEFAULT_COMPARE_MODELS`); the first is the
            baseline.
        recipe: recipe file/name/dict (default :data:`~leannets.config.DEFAULT_COMPARE_RECIPE`); ``model.name``
            is replaced per model, ``model.kwargs`` apply to every model.
        overrides: extra ``key=value`` overrides for every model.
        out_dir: writes ``report.md``, ``results.json``, ``compare.png`` and ``runs/<model>-s<seed>/``.
        epochs: shortcut for ``train.epochs`` (every stage of a multi-stage recipe).
        seeds: training runs per model (>= 1; an interval needs >= 2).
        latency: time CPU inference (batch 1).
        threads: CPU threads for training and timing (default: current setting).

    Returns:
        The ``results.json`` content: per model the mean metric with its 95% interval, the per-seed values,
        the paired difference to the baseline with its interval, parameters, MACs and latency.
    """
    t0 = time.perf_counter()
    models = list(models or DEFAULT_COMPARE_MODELS)
    if len(set(models)) != len(models):
        raise ValueError(f"compare: model names must be unique, got {models}")
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    for m in models:
        model_info(m)
    base = _base_recipe(recipe, overrides, epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch_threads(threads):
        runs = {name: [_train_one(base, name, base.seed + k, out, verbose, progress, (i, k), (len(models), seeds))
                       for k in range(seeds)] for i, name in enumerate(models)}
        profiled = {name: _profile(name, load_recipe(base, {"model.name": name}), runs[name][0]["data"])
                    for name in models}
        rows = [_model_row(name, runs[name], profiled[name][0]) for name in models]
        latency_info = _add_latency(rows, {n: m for n, (_, m) in profiled.items()}, threads) if latency else None
        machine = {"torch": torch.__version__, "python": platform.python_version(),
                   "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                   "cpus": os.cpu_count()}
    _add_differences(rows)
    results = {
        "command": command, "recipe": base.to_dict(), "data": base.data.name,
        "seeds": [base.seed + k for k in range(seeds)], "metric": rows[0]["metric_name"],
        "higher_is_better": rows[0]["higher_is_better"], "baseline": models[0], "eval_samples": rows[0]["eval_samples"],
        "ci_method": CI_METHOD, "latency": latency_info, "models": rows, "total_time_s": time.perf_counter() - t0,
        "machine": machine,
    }
    return _write_outputs(results, out, verbose)


CI_METHOD = ("95% Student-t intervals over seeds; differences paired by seed (same data order and augmentation "
             "per seed), positive = the model is better than the baseline")


def _base_recipe(recipe: str | os.PathLike | Mapping[str, Any] | None,
                 overrides: Mapping[str, Any] | Sequence[str] | None, epochs: int | None) -> Recipe:
    over = _overrides_dict(overrides)
    raw = load_recipe(recipe or DEFAULT_COMPARE_RECIPE).to_dict()
    if over.get("data.name") not in (None, raw["data"]["name"]):
        # the recipe's data options (augmentation, digits' image_size, ...) were chosen for its own dataset:
        # another dataset starts from its defaults and keeps only the batch sizes, which go with the optimiser
        raw["data"] = {k: raw["data"][k] for k in ("batch_size", "eval_batch_size")}
    base = load_recipe(raw, over)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {epochs}")
        base = load_recipe(apply_overrides(base, {"train.epochs": epochs} if not base.stages else
                                           {f"stages.{i}.epochs": epochs for i in range(len(base.stages))}))
    return base


def _train_one(base: Recipe, name: str, seed: int, out: Path, verbose: bool, progress: bool | None,
               at: tuple[int, int], of: tuple[int, int]) -> dict[str, Any]:
    if verbose:
        ensure_console()
        _LOG.info(f"== [model {at[0] + 1}/{of[0]}, seed {at[1] + 1}/{of[1]}] {name} (seed {seed})")
    resolved, run_dir = load_recipe(base, {"model.name": name, "seed": seed}), out / "runs" / f"{name}-s{seed}"
    done = run_dir / "result.json"
    if done.is_file() and (run_dir / "recipe.yaml").read_text(encoding="utf-8") == dump_recipe(resolved):
        res = json.loads(done.read_text(encoding="utf-8"))  # the same run, finished: reused
    else:  # compare owns its runs/ folder: a run of another recipe there is replaced
        res = train(resolved, out_dir=run_dir, verbose=verbose, progress=progress, overwrite=True)
    final = res["final"]
    return {"seed": seed, "metric": final.get(f"eval_{res['main_metric']}"), "eval": final, "best": res["best"],
            "train_time_s": res["train_time_s"], "epochs": res["epochs"], "global_step": res["global_step"],
            "run_dir": res["out_dir"], "data": res["data"], "eval_samples": res["eval_samples"],
            "main_metric": res["main_metric"], "higher_is_better": res["higher_is_better"]}


def _model_row(name: str, runs: list[dict[str, Any]], prof: dict[str, Any]) -> dict[str, Any]:
    values = [r["metric"] for r in runs]
    ci = mean_ci(values) if None not in values else None
    losses = [r["eval"].get("eval_loss") for r in runs]
    return {
        "name": name, "paper": model_info(name).paper, "source": model_info(name).source,
        "metric_name": runs[0]["main_metric"], "higher_is_better": runs[0]["higher_is_better"],
        "metric": ci.mean if ci else None, "metric_ci": ci.as_dict() if ci else None,
        "eval_loss": mean_ci(losses).as_dict() if None not in losses else None,
        "eval_samples": runs[0]["eval_samples"], "epochs": runs[0]["epochs"],
        "train_time_s": sum(r["train_time_s"] for r in runs),
        "per_seed": [{k: v for k, v in r.items() if k not in ("data", "main_metric", "higher_is_better")}
                     for r in runs],
        **prof,
    }


def _add_differences(rows: list[dict[str, Any]]) -> None:
    """Each non-baseline row gets the paired difference to the baseline (``diff_to_baseline``) and its wording."""
    base = rows[0]
    label, scale = _metric_label({"metric": base["metric_name"]})
    for r in rows[1:]:
        a = [s["metric"] for s in r["per_seed"]]
        b = [s["metric"] for s in base["per_seed"]]
        if None in a or None in b:
            r["diff_to_baseline"], r["diff_text"] = None, None
            continue
        diff = paired_difference(a, b, higher_is_better=base["higher_is_better"])
        r["diff_to_baseline"] = diff.as_dict()
        unit = " points" if scale == 100.0 else ""
        r["diff_text"] = describe_difference(diff.scaled(scale), label.replace(" (%)", ""), f"`{r['name']}`",
                                             f"`{base['name']}`", unit=unit)


def _write_outputs(results: dict[str, Any], out: Path, verbose: bool) -> dict[str, Any]:
    plot = plot_results(results, out / "compare.png")
    results["plot"] = plot.name if plot else None
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", format_report(results))
    if verbose:
        ensure_console()
        _LOG.info(_table(results))
        for r in results["models"][1:]:
            if r.get("diff_text"):
                _LOG.info(f"- {r['diff_text']}")
        _LOG.info(f"\nreport: {out / 'report.md'}  results: {out / 'results.json'}"
                  + (f"  plot: {out / plot.name}" if plot else ""))
    return results


def _metric_label(results: Mapping[str, Any]) -> tuple[str, float]:
    name = results["metric"]
    if name.startswith("acc"):
        return f"top-{name[3:]} accuracy (%)", 100.0
    return name, 1.0


def _ci_text(ci: Mapping[str, Any] | None, scale: float, digits: int = 2) -> str:
    if not ci:
        return "-"
    iv = Interval(**ci).scaled(scale) if ci.get("low") is not None else None
    if iv is None:
        return f"{ci['mean'] * scale:.{digits}f} (n={ci['n']})"
    return f"{iv.mean:.{digits}f} ± {iv.half_width:.{digits}f}"


def _latency_ratio_text(r: Mapping[str, Any]) -> str | None:
    """``latency ×0.93 (95% CI 0.90–0.97): faster than the baseline``; ``None`` without a ratio."""
    ratio, ci = r.get("latency_ratio"), r.get("latency_ratio_ci")
    if ratio is None:
        return None
    text = f"latency ×{format_with_ci(ratio, ci).replace(' (', ' (95% CI ')}"
    if r.get("latency_caveat"):
        return f"{text}: {r['latency_caveat']}"
    if not ci or any(v != v for v in ci) or ci[0] <= 1.0 <= ci[1]:
        return f"{text}: not distinguishable from the baseline"
    return f"{text}: {'faster' if ci[1] < 1.0 else 'slower'} than the baseline"


def _table(results: Mapping[str, Any]) -> str:
    label, scale = _metric_label(results)
    n_seeds, n_eval = len(results["seeds"]), results.get("eval_samples")
    sizes = {"×".join(map(str, r["input_size"][-2:])) for r in results["models"] if r.get("input_size")}
    at = f" at {', '.join(sorted(sizes))}" if sizes else ""
    head = ["model", "params", f"MACs (M{at})", "latency (ms, median, 95% CI)",
            f"eval {label}, mean ± 95% CI ({n_seeds} seeds, {n_eval} images)", "eval loss", "train time (s)", "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results["models"]:
        lat = format_with_ci(r.get("latency_ms"), r.get("latency_ci_ms"), 3)
        lines.append("| " + " | ".join([r["name"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}", lat,
                                        _ci_text(r["metric_ci"], scale), _ci_text(r["eval_loss"], 1.0, 4),
                                        f"{r['train_time_s']:.1f}", str(r["epochs"])]) + " |")
    return "\n".join(lines)


def format_report(results: Mapping[str, Any]) -> str:
    """Markdown report: setup, the measured table, paired differences and ratios to the baseline, the plot."""
    lines = ["# leannets compare", "", format_summary(results)]
    lines += _report_notes(results)
    return "\n".join(lines) + "\n"


def format_summary(results: Mapping[str, Any]) -> str:
    """The report without its title and notes: setup, command, table and the differences to the baseline
    (what a docs page embeds, generated from a committed ``results.json``)."""
    rec = results["recipe"]
    base = results["models"][0]
    seeds = results["seeds"]
    lines = [
        f"Data: `{results['data']}` ({results.get('eval_samples')} evaluation images); recipe `{rec['name']}` "
        f"({rec['train']['epochs']} epochs × batch {rec['data']['batch_size']}, {rec['optim']['name']} "
        f"lr {rec['optim']['lr']}, schedule {rec['schedule']['name']}); every model trained with the same recipe "
        f"for seeds {', '.join(map(str, seeds))}. All numbers below were measured by this run "
        f"({results['total_time_s']:.0f} s in total on {results['machine']['threads']} CPU thread(s), "
        f"torch {results['machine']['torch']}).", "",
    ]
    if results.get("command"):
        lines += ["Command:", "", f"    {results['command']}", ""]
    lines += [_table(results), ""]
    if len(results["models"]) > 1:
        lines += [f"Relative to the baseline `{base['name']}`:", ""]
        for r in results["models"][1:]:
            parts = [f"params ×{r['params'] / base['params']:.2f}", f"MACs ×{r['macs'] / base['macs']:.2f}"]
            lat = _latency_ratio_text(r)
            if lat:
                parts.append(lat)
            lines.append(f"- `{r['name']}`: " + ", ".join(parts))
            if r.get("diff_text"):
                lines.append(f"  - {r['diff_text']}")
        lines.append("")
    return "\n".join(lines)


def _report_notes(results: Mapping[str, Any]) -> list[str]:
    label, _ = _metric_label(results)
    lines = [
        f"Uncertainty: {results['ci_method']}. A difference whose interval covers 0 is not distinguishable at "
        "this budget (more seeds or epochs would be needed to tell the models apart). Method and assumptions: "
        "docs/reproduce.md, \"Statistics\".", "",
        f"The metric is the final-epoch evaluation on the `{results['data']}` evaluation split (not the best "
        "epoch, so no test-set selection). MACs = multiply-accumulates per image at the input size shown in "
        "results.json (torch.utils.flop_counter, FLOPs/2); per-seed values are in results.json.", "",
        "Models:", "",
    ]
    lines += [f"- `{r['name']}` — {r['source']} ({r['paper']})" for r in results["models"]]
    if results.get("latency"):
        load = results["latency"].get("load_average")
        lines += ["", f"Latency: {results['latency']['settings']}"
                  + (f", load average {load:.1f} when timing started" if load is not None else "")
                  + ", in the deployment path "
                  "(`leannets.prepare_for_inference`: eval, BN folded, fast kernels); the models' trained "
                  "weights do not change the timing."]
    if results.get("plot"):
        lines += ["", f"![{label} vs MACs and params, 95% CI error bars]({results['plot']})"]
    return lines


def plot_results(results: Mapping[str, Any], path: str | os.PathLike) -> Path | None:
    """PNG with two panels: metric vs MACs and vs parameters, with 95% CI error bars (written atomically)."""
    plt = pyplot()
    rows = [r for r in results["models"] if r["metric"] is not None]
    if not rows:
        return None
    label, scale = _metric_label(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, xlabel in ((axes[0], "macs", "MACs per image (M)"), (axes[1], "params", "parameters (M)")):
        xs = [r[key] / 1e6 for r in rows]
        ys = [r["metric"] * scale for r in rows]
        errs = [(r["metric_ci"]["high"] - r["metric_ci"]["low"]) / 2 * scale
                if r["metric_ci"] and r["metric_ci"].get("low") is not None else 0.0 for r in rows]
        for r, x, y, e in zip(rows, xs, ys, errs):
            ax.errorbar([x], [y], yerr=[e], fmt="o", capsize=4, markersize=6)
            ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        span = (max(xs) - min(xs)) or max(xs) or 1.0
        ax.set_xlim(min(xs) - 0.25 * span, max(xs) + 0.25 * span)
        lo, hi = min(y - e for y, e in zip(ys, errs)), max(y + e for y, e in zip(ys, errs))
        pad = max(hi - lo, 1.0) * 0.15  # whole bars shown: a t-interval may pass 100 %
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"eval {label}, mean ± 95% CI")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{results['data']}: {label} vs cost (recipe {results['recipe']['name']}, "
                 f"{len(results['seeds'])} seeds, {results.get('eval_samples')} eval images)", fontsize=10)
    return atomic_save_figure(fig, path, dpi=120)


def command_line() -> str:
    return "leannets " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("leannets") else \
        " ".join(["leannets", *sys.argv[1:]])

