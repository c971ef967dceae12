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
    paper_pts: dict[str, list[tuple[float, float]]] = {}
    for row, rr in zip(exp.rows, res.rows):
        x, y = _value(rr, plot.x), _value(rr, plot.y)
        group = rr.group or rr.label
        if x is not None and y is not None:
            groups.setdefault(group, []).append((x / plot.x_scale, y / plot.y_scale, rr.label))
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
    for i, (group, pts) in enumerate(groups.items()):
        pts.sort()
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=_MARKERS[i % len(_MARKERS)],
                       label=f"{group} (ours, {res.scale})")[0]
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
    labels, ours, paper = [], [], []
    for row, rr in zip(exp.rows, res.rows):
        y = _value(rr, plot.y)
        py = _quoted(reference, row, plot.paper_y)
        if y is None and py is None:
            continue
        labels.append(rr.label)
        ours.append(None if y is None else y / plot.y_scale)
        paper.append(py)
    if not labels:
        return None
    series: dict[str, Sequence[float | None]] = {f"ours ({res.scale})": ours}
    if any(v is not None for v in paper):
        series["paper (quoted)"] = paper
    return bar_plot(path, labels, series, f"{plot.title} — {res.scale} scale", plot.ylabel)


def bar_plot(path: str | os.PathLike, labels: Sequence[str], series: dict[str, Sequence[float | None]],
             title: str, ylabel: str, logy: bool = False) -> Path:
    """Grouped bars (one group per label, one bar per series; missing values left out)."""
    fig, ax = new_figure(max(5.2, 0.9 * len(labels) + 2), 3.8)
    n = max(len(series), 1)
    width = 0.8 / n
    xs = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else float(v) for v in values]
        ax.bar(xs + (i - (n - 1) / 2) * width, vals, width, label=name,
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
