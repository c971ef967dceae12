"""What a reproduction run measured (rows, extras, files, verdicts) and its JSON form."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RowResult", "Verdict", "ExperimentResult", "STATUSES"]

STATUSES = ("reproduced", "not reproduced", "not checked")


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

    def label(self) -> str:
        if self.status == "reproduced":
            return "reproduced" + (f" ({self.detail})" if self.detail else "")
        if self.status == "not reproduced":
            return f"not reproduced ({self.detail})" if self.detail else "not reproduced"
        return f"not checked ({self.detail})" if self.detail else "not checked"


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
