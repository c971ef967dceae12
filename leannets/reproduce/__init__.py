"""``leannets reproduce``: each paper's tables and figures declared as experiments (models +
recipe + data + metrics + claims), run at a chosen scale, reported beside the paper's quoted
figures with honest verdicts.

    from leannets.reproduce import run_paper
    doc = run_paper("multiception", scale="smoke", out_dir="runs/mc")
    doc["summary"]  # {"reproduced": ..., "not reproduced": ..., "not checked": ...}
"""
from __future__ import annotations

from typing import Any

from .reference import Reference, RefValue, list_references, load_reference
from .spec import PAPERS, SCALES, Experiment, ModelSpec, Paper, PlotSpec, Row, TrainSpec, get_paper, list_papers

__all__ = ["PAPERS", "SCALES", "Experiment", "ModelSpec", "Paper", "PlotSpec", "Reference", "RefValue", "Row",
           "TrainSpec", "get_paper", "list_papers", "list_references", "load_reference", "run_paper"]


def __getattr__(name: str) -> Any:
    # The runner imports the whole engine; loaded on first use so that `leannets --help` stays fast.
    if name == "run_paper":
        from .runner import run_paper  # see the comment above

        return run_paper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
