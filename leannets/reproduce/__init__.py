"""``leannets reproduce``: each paper's tables and figures declared as experiments (models +
recipe + data + metrics + claims), run at a chosen scale, reported beside the paper's quoted
figures with honest verdicts.

    from leannets.reproduce import run_paper
    doc = run_paper("multiception", scale="smoke", out_dir="runs/mc")
    doc["summary"]  # {"reproduced": ..., "not reproduced": ..., "not checked": ...}
"""
from __future__ import annotations

import importlib

from .reference import Reference, RefValue, list_references, load_reference
from .runner import run_paper
from .spec import SCALES, Experiment, ModelSpec, Paper, PlotSpec, Row, TrainSpec

__all__ = ["PAPERS", "SCALES", "Experiment", "ModelSpec", "Paper", "PlotSpec", "Reference", "RefValue", "Row",
           "TrainSpec", "get_paper", "list_papers", "list_references", "load_reference", "run_paper"]

PAPERS = ("dxnet", "wae", "xsepconv", "multiception")


def list_papers() -> list[str]:
    return list(PAPERS)


def get_paper(name: str) -> Paper:
    """The declared experiments of ``name`` (one of :data:`PAPERS`)."""
    if name not in PAPERS:
        raise ValueError(f"unknown paper {name!r}; choose from: {', '.join(PAPERS)}")
    module = importlib.import_module(f"{__name__}.papers.{name}")
    return module.paper()
