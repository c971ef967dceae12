"""Declarations: a paper is a list of experiments (tables/figures); an experiment is rows of
models + an optional training recipe + measurements + claims + plots.

Nothing here runs anything; :mod:`leannets.reproduce.runner` executes the declarations.

Scales:

- ``smoke``: tiny widths and a few steps on the embedded data (CI, < 2 min per paper). Numbers
  only show that the pipeline works.
- ``cpu``: real data from ``--data-root`` (e.g. ``../shared/data``: the whole CIFAR-10, Train400 →
  BSD68, (C)Sun_Hays80 → Set5/Set14), models and schedules chosen from pilot runs so that a trained
  comparison can decide; ≤ 3 CPU-hours of training per paper and ≤ 12 in all on 2 cores, each run
  ≤ ≈ 40 min, accumulated as run records over sessions. What cannot reach a meaningful baseline in that
  budget is not trained ("not checked (budget)").
- ``gpu``: the CIFAR-size experiments of the four papers on one GPU in about 12 minutes: the whole
  CIFAR-10 resident on the device, bf16 autocast, channels_last, several runs at once (``--jobs``).
  Only experiments that list ``gpu`` in :attr:`Experiment.scales` run at this scale.
- ``paper``: the published recipe, models and datasets (for GPU users; resumable).

Parameter and MAC experiments always use the paper's full-size models (they need no data).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch.nn as nn

from leannets.models import create_model
from leannets.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from .claims import Claim
    from .results import ExperimentResult

__all__ = ["SCALES", "CPU_HOURS_PER_PAPER", "CPU_HOURS_TOTAL", "ModelSpec", "Row", "TrainSpec", "PlotSpec",
           "Experiment", "Paper", "stable_hash"]

SCALES = ("smoke", "cpu", "gpu", "paper")
#: Scales an experiment runs at unless it says otherwise (``gpu`` is opt-in: CIFAR-size experiments only).
DEFAULT_SCALES = ("smoke", "cpu", "paper")
#: Seeds per trained row (paired across the rows of an experiment); ``--seeds`` overrides.
SEEDS = {"smoke": 1, "cpu": 3, "gpu": 3, "paper": 3}
#: the cpu scale's training budget on 2 cores: per paper and for the four papers together
CPU_HOURS_PER_PAPER, CPU_HOURS_TOTAL = 3.0, 12.0


def stable_hash(obj: Any, n: int = 10) -> str:
    """Short hex digest of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name plus constructor overrides."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self, **extra: Any) -> nn.Module:
        return create_model(self.name, **{**dict(self.kwargs), **extra})

    def describe(self) -> str:
        if not self.kwargs:
            return self.name
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        return f"{self.name}({args})"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class Row:
    """One line of a paper table (or one point of a figure).

    Args:
        key: stable identifier used by claims and in ``results.json``.
        label: what the paper calls it.
        model: the paper's model (profiled for parameters/MACs at ``input_size``).
        trained: the model actually trained at each scale (default: ``model``); smaller
            substitutes are declared here, never chosen silently. ``None`` for a scale: the row
            is not trained at that scale (its trained claims read "not measured").
        ref: ``{metric: reference key}``: the quoted paper value printed beside our metric.
        input_size: (C, H, W) for MACs (default: the model's registered size).
        group, x: series name and x-position for plots (e.g. width multiplier, depth).
        train_overrides: extra recipe overrides for this row (e.g. another dataset).
        run_analyses: ``{name: fn(model, checkpoint) -> JSON value}``: figures a claim needs from each trained
            run's weights (e.g. an energy share), computed when the run ends and kept in its run record, so
            that a report rebuilt from records needs no checkpoint.
    """

    key: str
    label: str
    model: ModelSpec
    trained: Mapping[str, ModelSpec | None] = field(default_factory=dict)
    ref: Mapping[str, str] = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None
    group: str = ""
    x: float | None = None
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    run_analyses: Mapping[str, Callable[[nn.Module, dict[str, Any]], Any]] = field(default_factory=dict)

    def model_for(self, scale: str) -> ModelSpec | None:
        return self.trained.get(scale, self.model)


@dataclass(frozen=True)
class TrainSpec:
    """How the rows of an experiment are trained and evaluated.

    Args:
        recipe: bundled recipe name (the paper's published recipe); ``model.name`` and
            ``model.kwargs`` are replaced by each row's model.
        scales: per scale, dotted recipe overrides; a scale missing here is not trained.
            Strings may use ``{data_root}``.
        metric: the evaluation metric reported (e.g. ``acc1`` → also ``error``; ``psnr``).
        recipe_by_row: a different bundled recipe for some rows (``{row key: recipe}`` or
            ``{row key: {scale: recipe}}``).
        recipe_by_scale: a different bundled recipe at some scales (e.g. the CIFAR-10 recipe
            for a Tiny-ImageNet experiment's cpu-scale substitute).
        floor: per scale, the least mean ``metric`` the baseline of a trained claim (B in "A beats B" /
            "A matches B") must reach for the claim to be judged: a baseline trained too little to mean
            anything leaves its claims "not checked" (e.g. ``{"cpu": 75.0}`` for CIFAR-10 accuracy).
    """

    recipe: str
    scales: Mapping[str, Mapping[str, Any]]
    metric: str = "acc1"
    recipe_by_row: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    recipe_by_scale: Mapping[str, str] = field(default_factory=dict)
    floor: Mapping[str, float] = field(default_factory=dict)

    def recipe_for(self, row: str, scale: str) -> str:
        """The bundled recipe that trains ``row`` at ``scale``."""
        by_row = self.recipe_by_row.get(row)
        if isinstance(by_row, Mapping):
            by_row = by_row.get(scale)
        return by_row or self.recipe_by_scale.get(scale) or self.recipe

    def trains_at(self, scale: str) -> bool:
        return scale in self.scales


PLOT_KINDS = ("line", "points", "bars")


@dataclass(frozen=True)
class PlotSpec:
    """A figure in the paper's style: ``y`` vs ``x`` per group of rows, paper points hollow.

    Args:
        file: PNG file name.
        x, y: row metrics (e.g. ``params``, ``macs``, ``train_params``, ``error``, ``psnr``, or
            ``x`` for :attr:`Row.x`).
        title, xlabel, ylabel: text.
        paper_y: reference metric name in :attr:`Row.ref` plotted as hollow markers (quoted).
        logx: logarithmic x axis.
        x_scale, y_scale: divide values by these (e.g. 1e6 for M params).
        kind: ``line`` (a curve per group, e.g. error vs depth or width), ``points`` (one marker per row:
            distinct models that form no curve) or ``bars`` (``y`` per row; ``x`` is ignored).
    """

    file: str
    x: str
    y: str
    title: str
    xlabel: str
    ylabel: str
    paper_y: str | None = None
    paper_x: str | None = None
    logx: bool = False
    x_scale: float = 1.0
    y_scale: float = 1.0
    kind: str = "line"

    def __post_init__(self) -> None:
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"PlotSpec {self.file}: unknown kind {self.kind!r}; allowed: {', '.join(PLOT_KINDS)}")


@dataclass
class Experiment:
    """One table or figure of a paper.

    Args:
        name: ``--table`` value (e.g. ``table1``, ``fig4``).
        ref: the paper's reference ("Table 1", "Fig. 4").
        title: one line.
        rows: the models.
        measure: per-row measurements without training: ``params`` and/or ``macs``.
        train: training/evaluation of the rows (``None``: nothing is trained).
        claims: what the paper states; each gets a verdict.
        plots: figures to draw.
        analysis: extra computation ``fn(ctx, result)`` (sharpness, CAM, speed-up, ...) that
            stores values in ``result.extras`` / row metrics and files in ``result.files``.
        notes: per scale, what differs from the paper (printed in the report).
        scales: scales at which the experiment runs at all.
        not_trained: per scale, why rows are not trained there (printed with the claims left unchecked,
            e.g. "budget: DenseNet-BC trains at 74 img/s on 2 cores").
    """

    name: str
    ref: str
    title: str
    rows: list[Row]
    measure: tuple[str, ...] = ("params",)
    train: TrainSpec | None = None
    claims: list["Claim"] = field(default_factory=list)
    plots: list[PlotSpec] = field(default_factory=list)
    analysis: Callable[[Any, "ExperimentResult"], None] | None = None  # fn(context.Context, result)
    notes: Mapping[str, str] = field(default_factory=dict)
    scales: tuple[str, ...] = DEFAULT_SCALES
    not_trained: Mapping[str, str] = field(default_factory=dict)

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"experiment {self.name}: no row {key!r}")


@dataclass
class Paper:
    """A paper and its experiments, in the paper's order."""

    name: str
    title: str
    experiments: list[Experiment]
    summary: str = ""
    #: seeds per trained row where the paper averages another number of runs (e.g. ``{"paper": 5}``).
    seeds: Mapping[str, int] = field(default_factory=dict)

    def seeds_at(self, scale: str) -> int:
        """Seeds per trained row at ``scale`` (the paper's own count at paper scale where it states one)."""
        return int(self.seeds.get(scale, SEEDS[scale]))

    def experiment(self, name: str) -> Experiment:
        for e in self.experiments:
            if e.name == name:
                return e
        raise ValueError(f"paper {self.name!r} has no table/figure {name!r}; "
                         f"choose from: {', '.join(e.name for e in self.experiments)}")

    def select(self, names: Sequence[str] | None) -> list[Experiment]:
        return list(self.experiments) if not names else [self.experiment(n) for n in names]


def paper_modules() -> list[str]:
    """The modules of :mod:`leannets.reproduce.papers`, sorted, without importing them (each registers the paper
    of its own name; the CLI lists them without the cost of importing every declaration)."""
    from . import papers

    return sorted(info.name for info in pkgutil.iter_modules(papers.__path__) if not info.name.startswith("_"))


def _import_papers() -> None:
    for name in paper_modules():
        importlib.import_module(f"leannets.reproduce.papers.{name}")


#: The declared papers: ``name -> factory`` of its :class:`Paper` (a module in ``reproduce/papers/`` registers
#: one with ``@PAPERS.decorator("name")``).
PAPERS: Registry[Callable[[], Paper]] = Registry("paper", loader=_import_papers)


def list_papers() -> list[str]:
    return PAPERS.names()


def get_paper(name: str) -> Paper:
    """The declared experiments of the registered paper ``name``."""
    return PAPERS.get(name)()
