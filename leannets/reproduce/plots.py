"""PNG figures in the papers' style: a metric vs parameters/MACs/depth/width, one line per
model family (or one marker per model, or bars per row), with the paper's quoted values as hollow
markers where the paper states them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from leannets._io import atomic_save_figure, pyplot

from .reference import Reference
from .results import ExperimentResult
from .spec import Experiment, PlotSpec

__all__ = ["draw_plot", "save_figure", "new_figure"]

_MARKERS = "os^Dv<>pPX*h"


def new_figure(width: float = 5.2, height: float = 3.8) -> Any:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    ax.grid(True, alpha=0.3)
    return fig, ax


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically (temp PNG in the same folder + rename) and close it."""
    fig.tight_layout()
    return atomic_save_figure(fig, path, metadata={"Software": None})


def _value(rr: Any, name: str) -> float | None:
    if name == "x":
        return rr.x
    v = rr.metrics.get(name)
    return float(v) if isinstance(v, (int, float)) else None


def _half_widths(rr: Any, name: str, value: float | None, scale: float) -> tuple[float, float]:
    """Distances from ``value`` to the bounds of the row's 95% interval of ``name`` over seeds (0 when none)."""
    ci = rr.metrics.get(f"{name}_ci") if name != "x" else None
    if value is None or not ci or ci[0] is None or ci[1] is None:
        return 0.0, 0.0
    return max(0.0, (value - ci[0]) / scale), max(0.0, (ci[1] - value) / scale)


def _quoted(reference: Reference, row: Any, metric: str | None) -> float | None:
    """The paper's quoted value of ``metric`` for a row, when the row references a number."""
    if not metric or metric not in row.ref:
        return None
    v = reference[row.ref[metric]].value
    return float(v) if isinstance(v, (int, float)) else None


def draw_plot(plot: PlotSpec, exp: Experiment, res: ExperimentResult, reference: Reference,
              path: str | os.PathLike) -> Path | None:
    """Draw ``plot`` for an experiment's results; ``None`` when no row has the values to draw."""
    if plot.kind == "bars":
        return _draw_bars(plot, exp, res, reference, path)
    groups: dict[str, list[tuple[float, float, str]]] = {}
    errors: dict[str, tuple[float, float]] = {}  # per row label: the 95% interval over seeds, below / above
    paper_pts: dict[str, list[tuple[float, float]]] = {}
    for row, rr in zip(exp.rows, res.rows):
        x, y = _value(rr, plot.x), _value(rr, plot.y)
        group = rr.group or rr.label
        if x is not None and y is not None:
            groups.setdefault(group, []).append((x / plot.x_scale, y / plot.y_scale, rr.label))
            errors[rr.label] = _half_widths(rr, plot.y, y, plot.y_scale)
        py = _quoted(reference, row, plot.paper_y)
        if py is not None:
            px = _quoted(reference, row, plot.paper_x)
            if px is None and plot.paper_x not in row.ref:  # the paper's point sits at our x
                px = None if x is None else x / plot.x_scale
            if px is not None:
                paper_pts.setdefault(group, []).append((px, py))
    if not groups and not paper_pts:
        return None
    if plot.kind == "points":  # distinct models, no curve: one marker and legend entry per row
        groups = {label: [(x, y, label)] for pts in groups.values() for x, y, label in pts}
    fig, ax = new_figure()
    colors = {}
    with_ci = any(lo or hi for lo, hi in errors.values())
    for i, (group, pts) in enumerate(groups.items()):
        pts.sort()
        yerr = [[errors.get(p[2], (0.0, 0.0))[0] for p in pts], [errors.get(p[2], (0.0, 0.0))[1] for p in pts]]
        line = ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=yerr if with_ci else None, capsize=3,
                           marker=_MARKERS[i % len(_MARKERS)],
                           label=f"{group} (ours, {res.scale}{', mean ± 95% CI' if with_ci else ''})")[0]
        colors[group] = line.get_color()
        offset = (4, 4) if i % 2 == 0 else (4, -9)  # neighbouring curves label on opposite sides
        for x, y, label in pts:
            if 1 < len(pts) <= 6:
                ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=6, alpha=0.8)
    for i, (group, pts) in enumerate(paper_pts.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="--", marker=_MARKERS[i % len(_MARKERS)],
                markerfacecolor="none", color=colors.get(group), alpha=0.7, label=f"{group} (paper, quoted)")
    if plot.logx:
        ax.set_xscale("log")
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.set_title(f"{plot.title} — {res.scale} scale", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _draw_bars(plot: PlotSpec, exp: Experiment, res: ExperimentResult, reference: Reference,
               path: str | os.PathLike) -> Path | None:
    labels, ours, paper, errs = [], [], [], []
    for row, rr in zip(exp.rows, res.rows):
        y = _value(rr, plot.y)
        py = _quoted(reference, row, plot.paper_y)
        if y is None and py is None:
            continue
        labels.append(rr.label)
        ours.append(None if y is None else y / plot.y_scale)
        errs.append(_half_widths(rr, plot.y, y, plot.y_scale))
        paper.append(py)
    if not labels:
        return None
    name = f"ours ({res.scale}{', mean ± 95% CI' if any(lo or hi for lo, hi in errs) else ''})"
    series: dict[str, Sequence[float | None]] = {name: ours}
    if any(v is not None for v in paper):
        series["paper (quoted)"] = paper
    return bar_plot(path, labels, series, f"{plot.title} — {res.scale} scale", plot.ylabel, errors={name: errs})


def bar_plot(path: str | os.PathLike, labels: Sequence[str], series: dict[str, Sequence[float | None]],
             title: str, ylabel: str, logy: bool = False,
             errors: dict[str, Sequence[tuple[float, float]]] | None = None) -> Path:
    """Grouped bars (one group per label, one bar per series; missing values left out); ``errors`` gives a
    series' error bars as (below, above) per label."""
    fig, ax = new_figure(max(5.2, 0.9 * len(labels) + 2), 3.8)
    n = max(len(series), 1)
    width = 0.8 / n
    xs = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else float(v) for v in values]
        err = (errors or {}).get(name)
        yerr = [[e[0] for e in err], [e[1] for e in err]] if err and any(lo or hi for lo, hi in err) else None
        ax.bar(xs + (i - (n - 1) / 2) * width, vals, width, label=name, yerr=yerr, capsize=3 if yerr else 0,
               hatch="//" if "paper" in name else None, alpha=0.6 if "paper" in name else 0.9)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


__all__ += ["bar_plot"]
