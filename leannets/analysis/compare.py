"""Train several models under one recipe and seed, then profile and report them side by side.

This is the ``leannets compare`` main job; ``leannets reproduce`` calls :func:`compare_models`.
Every figure in the report is measured in the run: accuracy (or the task's main metric) from the
final evaluation, parameters and MACs from :mod:`leannets.analysis.profile`, CPU latency timed here.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import torch

from leannets._io import atomic_save_figure, atomic_write_json, atomic_write_text, pyplot
from leannets.config import DEFAULT_COMPARE_MODELS, DEFAULT_COMPARE_RECIPE, Recipe
from leannets.engine.recipe import apply_overrides, load_recipe, parse_override, stage_configs
from leannets.engine.task import create_task
from leannets.engine.trainer import train
from leannets.models import model_info

from .profile import profile_model, torch_threads

__all__ = ["DEFAULT_COMPARE_MODELS", "DEFAULT_COMPARE_RECIPE", "compare_models", "format_report", "plot_results"]



def _overrides_dict(overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return dict(parse_override(o) for o in overrides)


def _profile(name: str, recipe: Recipe, data_info: dict[str, Any], latency: bool, threads: int | None
             ) -> dict[str, Any]:
    cfg = stage_configs(recipe)[0]
    model = create_task(cfg).build_model(SimpleNamespace(**data_info)).eval()
    size = tuple(data_info.get("input_size") or (model.in_chans, 32, 32))
    r = profile_model(model, input_size=size, batch=1, latency=latency, memory=False, threads=threads,
                      repeats=20, cuda=False)
    return {"params": r.params, "macs": r.macs, "input_size": list(size), "cpu_latency_ms": r.cpu_latency_ms,
            "cpu_latency_iqr_ms": r.cpu_latency_iqr_ms, "latency_threads": r.threads}


def compare_models(models: Sequence[str] | None = None, recipe: str | os.PathLike | Mapping[str, Any] | None = None,
                   overrides: Mapping[str, Any] | Sequence[str] | None = None, out_dir: str | os.PathLike = "runs/compare",
                   epochs: int | None = None, latency: bool = True, threads: int | None = None,
                   verbose: bool = True, progress: bool | None = None, command: str | None = None) -> dict[str, Any]:
    """Train, evaluate and profile each model under the same recipe and seed; write the report.

    Args:
        models: registered names (default :data:`DEFAULT_COMPARE_MODELS`); the first is the baseline.
        recipe: recipe file/name/dict (default :data:`DEFAULT_COMPARE_RECIPE`); ``model.name`` is replaced
            per model, ``model.kwargs`` apply to every model.
        overrides: extra ``key=value`` overrides for every model.
        out_dir: writes ``report.md``, ``results.json``, ``compare.png`` and ``runs/<model>/``.
        epochs: shortcut for ``train.epochs`` (every stage of a multi-stage recipe).
        latency: time CPU inference (batch 1).
        threads: CPU threads for training and timing (default: current setting).

    Returns:
        The ``results.json`` content: ``{"models": [{name, params, macs, cpu_latency_ms, metric, ...}], ...}``.
    """
    t0 = time.perf_counter()
    models = list(models or DEFAULT_COMPARE_MODELS)
    if len(set(models)) != len(models):
        raise ValueError(f"compare: model names must be unique, got {models}")
    for m in models:
        model_info(m)
    with torch_threads(threads):
        return _compare(models, recipe, overrides, Path(out_dir), epochs, latency, threads, verbose, progress,
                        command, t0)


def _compare(models: list[str], recipe: str | os.PathLike | Mapping[str, Any] | None,
             overrides: Mapping[str, Any] | Sequence[str] | None, out: Path, epochs: int | None, latency: bool,
             threads: int | None, verbose: bool, progress: bool | None, command: str | None, t0: float
             ) -> dict[str, Any]:
    over = _overrides_dict(overrides)
    base = load_recipe(recipe or DEFAULT_COMPARE_RECIPE, over)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {epochs}")
        base = load_recipe(apply_overrides(base, {"train.epochs": epochs} if not base.stages else
                                           {f"stages.{i}.epochs": epochs for i in range(len(base.stages))}))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(models):
        if verbose:
            print(f"== [{i + 1}/{len(models)}] {name}", flush=True)
        recipe_m = load_recipe(base, {"model.name": name})
        res = train(recipe_m, out_dir=out / "runs" / name, verbose=verbose, progress=progress)
        prof = _profile(name, recipe_m, res["data"], latency, threads)
        final = res["final"]
        metric = f"eval_{res['main_metric']}"
        rows.append({
            "name": name, "paper": model_info(name).paper, "source": model_info(name).source,
            "metric_name": res["main_metric"], "metric": final.get(metric), "eval": final,
            "higher_is_better": res["higher_is_better"], "best": res["best"], "train_time_s": res["train_time_s"],
            "epochs": res["epochs"], "global_step": res["global_step"], "run_dir": res["out_dir"], **prof,
        })
    results = {
        "command": command, "recipe": base.to_dict(), "data": base.data.name, "seed": base.seed,
        "metric": rows[0]["metric_name"], "higher_is_better": rows[0]["higher_is_better"], "baseline": models[0],
        "models": rows, "total_time_s": time.perf_counter() - t0,
        "machine": {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor()
                    or platform.machine(), "threads": torch.get_num_threads(), "cpus": os.cpu_count()},
    }
    plot = plot_results(results, out / "compare.png")
    results["plot"] = plot.name if plot else None
    atomic_write_json(out / "results.json", results)
    report = format_report(results)
    atomic_write_text(out / "report.md", report)
    if verbose:
        print(_table(results))
        print(f"\nreport: {out / 'report.md'}  results: {out / 'results.json'}"
              + (f"  plot: {out / plot.name}" if plot else ""))
    return results


def _metric_label(results: Mapping[str, Any]) -> tuple[str, float]:
    name = results["metric"]
    if name.startswith("acc"):
        return f"top-{name[3:]} accuracy (%)", 100.0
    return name, 1.0


def _table(results: Mapping[str, Any]) -> str:
    label, scale = _metric_label(results)
    lat_threads = results["models"][0].get("latency_threads")
    head = ["model", "params", "MACs (M)", f"CPU latency (ms, batch 1, {lat_threads} thr)", f"eval {label}",
            "eval loss", "train time (s)", "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results["models"]:
        lat = "-" if r.get("cpu_latency_ms") is None else f"{r['cpu_latency_ms']:.2f} ± {r['cpu_latency_iqr_ms']:.2f}"
        metric = "-" if r["metric"] is None else f"{r['metric'] * scale:.2f}"
        loss = r["eval"].get("eval_loss")
        lines.append("| " + " | ".join([r["name"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}", lat, metric,
                                        "-" if loss is None else f"{loss:.4f}", f"{r['train_time_s']:.1f}",
                                        str(r["epochs"])]) + " |")
    return "\n".join(lines)


def format_report(results: Mapping[str, Any]) -> str:
    """Markdown report: setup, the measured table, ratios against the baseline, the plot."""
    rec = results["recipe"]
    label, scale = _metric_label(results)
    base = results["models"][0]
    lines = [
        "# leannets compare", "",
        f"Data: `{results['data']}`; recipe `{rec['name']}` (seed {results['seed']}, "
        f"{rec['train']['epochs']} epochs × batch {rec['data']['batch_size']}, {rec['optim']['name']} "
        f"lr {rec['optim']['lr']}, schedule {rec['schedule']['name']}); every model trained with the same recipe "
        f"and seed. All numbers below were measured by this run "
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
            if r.get("cpu_latency_ms") and base.get("cpu_latency_ms"):
                parts.append(f"latency ×{r['cpu_latency_ms'] / base['cpu_latency_ms']:.2f}")
            if r["metric"] is not None and base["metric"] is not None:
                unit = " points" if scale == 100.0 else ""
                parts.append(f"{label.replace(' (%)', '')} {(r['metric'] - base['metric']) * scale:+.2f}{unit}")
            lines.append(f"- `{r['name']}`: " + ", ".join(parts))
        lines.append("")
    lines += [
        f"The metric is the final-epoch evaluation on the `{results['data']}` evaluation split (not the best "
        "epoch, so no test-set selection). MACs = multiply-accumulates per image at the input size shown in "
        "results.json (torch.utils.flop_counter, FLOPs/2). Short CPU runs rank models only roughly; "
        "use a paper-scale recipe for the papers' figures.", "",
        "Models:", "",
    ]
    lines += [f"- `{r['name']}` — {r['source']} ({r['paper']})" for r in results["models"]]
    if any(r.get("cpu_latency_ms") for r in results["models"]):
        lines += ["", "Latency: median ± IQR of 20 timed batch-1 inferences after warm-up (eval mode, no grad, "
                  "BatchNorm not folded); on a shared machine the IQR shows how much the timing is disturbed."]
    if results.get("plot"):
        lines += ["", f"![{label} vs MACs and params]({results['plot']})"]
    return "\n".join(lines) + "\n"


def plot_results(results: Mapping[str, Any], path: str | os.PathLike) -> Path | None:
    """PNG with two panels: metric vs MACs and metric vs parameters (written atomically)."""
    plt = pyplot()

    rows = [r for r in results["models"] if r["metric"] is not None]
    if not rows:
        return None
    label, scale = _metric_label(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, xlabel in ((axes[0], "macs", "MACs per image (M)"), (axes[1], "params", "parameters (M)")):
        xs = [r[key] / 1e6 for r in rows]
        ys = [r["metric"] * scale for r in rows]
        for r, x, y in zip(rows, xs, ys):
            ax.scatter([x], [y], s=40)
            ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(0, 6), fontsize=8, ha="center")
        span = (max(xs) - min(xs)) or max(xs) or 1.0
        ax.set_xlim(min(xs) - 0.25 * span, max(xs) + 0.25 * span)
        yspan = (max(ys) - min(ys)) or max(1.0, 0.02 * abs(max(ys)))
        top = max(ys) + 0.5 * yspan
        if scale == 100.0:
            top = min(top, 100.0 + 0.1 * yspan)
        ax.set_ylim(min(ys) - 0.5 * yspan, top)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"eval {label}")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{results['data']}: {label} vs cost (recipe {results['recipe']['name']}, seed {results['seed']})",
                 fontsize=10)
    return atomic_save_figure(fig, path, dpi=120)


def command_line() -> str:
    return "leannets " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("leannets") else \
        " ".join(["leannets", *sys.argv[1:]])


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
