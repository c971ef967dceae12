"""What a reproduction run measured (rows, extras, files, verdicts) and its JSON form."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RowResult", "Verdict", "ExperimentResult", "STATUSES", "format_counts"]

#: ``reproduced`` / ``not reproduced`` for deterministic figures and the CI rules of trained claims
#: (``reproduced`` / ``contradicted`` / ``inconclusive``); ``consistent`` for a claim that holds by construction
#: or by a choice fitted to the paper (it agrees, but is no evidence); ``not checked`` says why not.
STATUSES = ("reproduced", "consistent", "contradicted", "inconclusive", "not reproduced", "not checked")


def format_counts(summary: dict[str, int]) -> str:
    """``"12 reproduced, 1 contradicted, 4 inconclusive, 3 not reproduced, 9 not checked"``."""
    return ", ".join(f"{summary.get(s, 0)} {s}" for s in STATUSES)


@dataclass
class RowResult:
    """Measured figures of one row. ``metrics`` is flat: ``params``, ``macs`` (the paper's model),
    ``train_params``, ``train_macs``, ``acc1``, ``error``, ``psnr``, ... (whatever was measured)."""

    key: str
    label: str
    model: dict[str, Any]
    trained_model: dict[str, Any] | None = None
    input_size: tuple[int, ...] | None = None
    group: str = ""
    x: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] | None = None


@dataclass
class Verdict:
    """A claim's outcome: ``status`` is one of :data:`STATUSES`."""

    claim: str
    text: str
    ref: str
    status: str
    ours: str
    paper: str
    detail: str = ""
    #: For trained claims judged on an interval: ``{"rule": "beats"|"matches", "mean", "low", "high", "n",
    #: "margin"}`` so the verdict can be re-checked from results.json alone.
    evidence: dict[str, Any] | None = None
    #: a claim about trained models (judged on seeds), as opposed to counts, formulas and timings
    trained: bool = False

    def label(self) -> str:
        return f"{self.status} ({self.detail})" if self.detail else self.status


@dataclass
class ExperimentResult:
    """Everything one experiment produced."""

    name: str
    ref: str
    title: str
    scale: str
    rows: list[RowResult] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trained: bool = False
    seconds: float = 0.0

    def row(self, key: str) -> RowResult:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"{self.name}: no row {key!r}")

    def value(self, row: str, metric: str) -> float | None:
        """A row metric, ``None`` when it was not measured (or not finite)."""
        v = self.row(row).metrics.get(metric)
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return None
        return v

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
