"""Claims: what a paper states, and the rule that turns our measurement into a verdict.

Rules are fixed per claim *kind*, never tuned to a table:

- :class:`Matches` / :class:`MatchesValue` — a deterministic figure (parameters, MACs, a ratio)
  equals the paper's within a stated tolerance (by default half a unit of the last digit the
  paper prints). Checked at every scale.
- :class:`Better` — "A beats B" (e.g. Multiception's error below DSConv's): reproduced when our
  A beats our B; the difference is reported with the test-set noise (2 binomial standard errors
  of the difference for accuracies) so a win inside the noise is visible as such.
- :class:`NotWorse` — "A matches B" (e.g. DxNet 12-12-12 ≈ DenseNet 16-16-16 with fewer
  parameters): reproduced when A is not worse than B by more than the paper's own gap plus
  the noise allowance.
- :class:`Absolute` — an absolute accuracy/PSNR of the paper; only meaningful with the paper's
  full recipe, so checked at ``paper`` scale only.

Trained claims are not checked at ``smoke`` scale (a few steps on embedded data prove that the
pipeline runs, nothing about the paper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .reference import Reference
from .results import ExperimentResult, Verdict

__all__ = ["Claim", "Matches", "MatchesValue", "Better", "NotWorse", "Absolute", "AtLeast", "Custom", "higher_is_better",
           "noise_pp", "fmt_num"]

HIGHER_IS_BETTER = {"acc1", "acc5", "psnr", "ssim", "speedup", "accuracy"}
TRAINED_SCALES = ("cpu", "paper")


def higher_is_better(metric: str) -> bool:
    base = metric.split(".")[-1]
    return base in HIGHER_IS_BETTER or base.startswith(("acc", "psnr", "ssim", "speedup"))


def fmt_num(v: float | None, digits: int = 4) -> str:
    """Compact number formatting for reports."""
    if v is None:
        return "—"
    if isinstance(v, (int,)) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - mag)
    return f"{v:.{min(decimals, 6)}f}"


def noise_pp(res: ExperimentResult, row: str, metric: str) -> float | None:
    """One binomial standard error (percentage points) of an accuracy/error estimated on
    ``eval_samples`` images; ``None`` for other metrics."""
    if metric not in ("error", "acc1", "acc5"):
        return None
    n = res.value(row, "eval_samples")
    v = res.value(row, metric)
    if not n or v is None:
        return None
    p = min(max(v / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(max(p * (1 - p), 1e-12) / n)


@dataclass
class Claim:
    """Base class: ``id``, the paper's statement ``text`` and its ``ref``."""

    id: str
    text: str
    ref: str

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:  # pragma: no cover
        raise NotImplementedError

    def _verdict(self, status: str, ours: str, paper: str, detail: str = "") -> Verdict:
        return Verdict(self.id, self.text, self.ref, status, ours, paper, detail)


def _within(ours: float, paper: float, tol: float | None, rel_tol: float | None) -> tuple[bool, str]:
    gap = ours - paper
    rel = gap / abs(paper) if paper else float("inf")
    allowed = tol if tol is not None else abs(paper) * (rel_tol or 0.0)
    text = f"gap {gap:+.4g} ({100 * rel:+.2f}%)" if paper else f"gap {gap:+.4g}"
    limit = f"±{rel_tol * 100:g}%" if tol is None else f"±{tol:.4g}"
    return abs(gap) <= allowed * (1 + 1e-9), f"{text}, tolerance {limit}"


@dataclass
class Matches(Claim):
    """Row metric (divided by ``unit``) equals a quoted value within ``tol`` (absolute),
    ``rel_tol`` (relative) or, by default, the printed precision."""

    row: str = ""
    metric: str = "params"
    ref_key: str = ""
    unit: float = 1.0
    tol: float | None = None
    rel_tol: float | None = None

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        paper = reference[self.ref_key]
        value = res.value(self.row, self.metric)
        if value is None:
            return self._verdict("not checked", "—", paper.cite(), f"not measured at {scale} scale")
        ours = value / self.unit
        tol = self.tol if (self.tol is not None or self.rel_tol is not None) else paper.printed_tolerance()
        ok, detail = _within(ours, float(paper.value), tol, self.rel_tol)
        return self._verdict("reproduced" if ok else "not reproduced", fmt_num(ours), paper.cite(), detail)


@dataclass
class MatchesValue(Claim):
    """A computed figure ``fn(result)`` equals ``expected`` (a number, or a reference key)."""

    fn: Callable[[ExperimentResult], float | None] = lambda res: None
    expected: float | str = 0.0
    tol: float | None = None
    rel_tol: float | None = None
    paper_text: str = ""

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        if isinstance(self.expected, str):
            rv = reference[self.expected]
            target, paper = float(rv.value), self.paper_text or rv.cite()
            default_tol = rv.printed_tolerance()
        else:
            target, paper, default_tol = float(self.expected), self.paper_text or fmt_num(self.expected), 0.0
        value = self.fn(res)
        if value is None:
            return self._verdict("not checked", "—", paper, f"not measured at {scale} scale")
        tol = self.tol if (self.tol is not None or self.rel_tol is not None) else default_tol
        ok, detail = _within(float(value), target, tol, self.rel_tol)
        return self._verdict("reproduced" if ok else "not reproduced", fmt_num(float(value)), paper, detail)


def _not_at_smoke(claim: Claim, scale: str, scales: tuple[str, ...]) -> Verdict | None:
    if scale in scales:
        return None
    why = ("smoke scale trains a few steps on embedded data: it exercises the pipeline, it is not evidence"
           if scale == "smoke" else f"only meaningful at {'/'.join(scales)} scale")
    return claim._verdict("not checked", "", "", why)


def _paper_pair(reference: Reference, keys: tuple[str, str] | None) -> tuple[float | None, float | None, str]:
    if not keys:
        return None, None, "—"
    a, b = reference[keys[0]], reference[keys[1]]
    where = a.ref if a.ref == b.ref else f"{a.ref}; {b.ref}"
    return float(a.value), float(b.value), f"{a.value} vs {b.value}{' ' + a.unit if a.unit else ''} ({where})"


@dataclass
class Better(Claim):
    """``better`` beats ``worse`` on ``metric`` (direction from the metric's name)."""

    metric: str = "error"
    better: str = ""
    worse: str = ""
    paper_keys: tuple[str, str] | None = None
    scales: tuple[str, ...] = TRAINED_SCALES

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        skipped = _not_at_smoke(self, scale, self.scales)
        _, _, paper = _paper_pair(reference, self.paper_keys)
        if skipped:
            skipped.paper = paper
            return skipped
        a, b = res.value(self.better, self.metric), res.value(self.worse, self.metric)
        if a is None or b is None:
            return self._verdict("not checked", "—", paper, f"not measured at {scale} scale")
        sign = 1.0 if higher_is_better(self.metric) else -1.0
        margin = sign * (a - b)
        ours = f"{fmt_num(a)} vs {fmt_num(b)}"
        noise = _pair_noise(res, self.better, self.worse, self.metric)
        noise_txt = "" if noise is None else (f"; 2·SE ≈ {noise:.2f}" + (" — inside the noise" if abs(margin) <= noise
                                                                         else ""))
        if margin > 0:
            return self._verdict("reproduced", ours, paper, f"better by {abs(a - b):.3g}{noise_txt}")
        return self._verdict("not reproduced", ours, paper, f"gap {abs(a - b):.3g} the wrong way{noise_txt}")


def _pair_noise(res: ExperimentResult, a: str, b: str, metric: str) -> float | None:
    sa, sb = noise_pp(res, a, metric), noise_pp(res, b, metric)
    if sa is None or sb is None:
        return None
    return 2.0 * math.sqrt(sa * sa + sb * sb)


@dataclass
class NotWorse(Claim):
    """``a`` is not worse than ``b`` beyond the paper's own gap (if ``a`` is worse there) plus the
    noise allowance (2·SE of the difference for accuracies, ``extra`` otherwise)."""

    metric: str = "error"
    a: str = ""
    b: str = ""
    paper_keys: tuple[str, str] | None = None
    extra: float = 0.0
    scales: tuple[str, ...] = TRAINED_SCALES

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        pa, pb, paper = _paper_pair(reference, self.paper_keys)
        skipped = _not_at_smoke(self, scale, self.scales)
        if skipped:
            skipped.paper = paper
            return skipped
        a, b = res.value(self.a, self.metric), res.value(self.b, self.metric)
        if a is None or b is None:
            return self._verdict("not checked", "—", paper, f"not measured at {scale} scale")
        sign = 1.0 if higher_is_better(self.metric) else -1.0
        deficit = sign * (b - a)  # > 0: a is worse
        paper_deficit = max(0.0, sign * (pb - pa)) if pa is not None and pb is not None else 0.0
        noise = _pair_noise(res, self.a, self.b, self.metric)
        allowed = paper_deficit + (noise if noise is not None else self.extra)
        ours = f"{fmt_num(a)} vs {fmt_num(b)}"
        detail = (f"{'worse' if deficit > 0 else 'better'} by {abs(deficit):.3g}; allowed {allowed:.3g} "
                  f"(paper gap {paper_deficit:.3g} + noise {(noise if noise is not None else self.extra):.3g})")
        return self._verdict("reproduced" if deficit <= allowed else "not reproduced", ours, paper, detail)


@dataclass
class Absolute(Claim):
    """Our metric equals the paper's absolute value within 2·SE (accuracies) or ``tol``;
    checked at ``paper`` scale only."""

    row: str = ""
    metric: str = "error"
    ref_key: str = ""
    tol: float | None = None
    scales: tuple[str, ...] = ("paper",)

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        paper = reference[self.ref_key]
        value = res.value(self.row, self.metric)
        ours = fmt_num(value)
        if scale not in self.scales:
            return self._verdict("not checked", ours, paper.cite(),
                                 f"absolute figure needs the paper's full recipe and data ({scale} scale)")
        if value is None:
            return self._verdict("not checked", "—", paper.cite(), f"not measured at {scale} scale")
        se = noise_pp(res, self.row, self.metric)
        tol = self.tol if self.tol is not None else (2 * se if se is not None else paper.printed_tolerance())
        ok, detail = _within(value, float(paper.value), tol, None)
        return self._verdict("reproduced" if ok else "not reproduced", ours, paper.cite(), detail)


@dataclass
class AtLeast(Claim):
    """A measured figure ``fn(result)`` (e.g. a speed-up) reaches the paper's value: reproduced when
    ours ≥ paper; the shortfall is the gap otherwise."""

    fn: Callable[[ExperimentResult], float | None] = lambda res: None
    ref_key: str = ""
    scales: tuple[str, ...] = ("smoke", "cpu", "paper")

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        paper = reference[self.ref_key]
        value = self.fn(res)
        if scale not in self.scales:
            return self._verdict("not checked", fmt_num(value), paper.cite(), f"not measured at {scale} scale")
        if value is None:
            return self._verdict("not checked", "—", paper.cite(), f"not measured at {scale} scale")
        target = float(paper.value)
        if value >= target:
            return self._verdict("reproduced", fmt_num(value), paper.cite(), f"{value / target:.2f}× the paper's")
        return self._verdict("not reproduced", fmt_num(value), paper.cite(),
                             f"gap {value - target:+.3g} ({100 * (value / target - 1):+.1f}%)")


@dataclass
class Custom(Claim):
    """Any rule: ``fn(result, reference, scale) -> (status, ours, paper, detail)``."""

    fn: Callable[[ExperimentResult, Reference, str], tuple[str, str, str, str]] = field(
        default=lambda res, ref, scale: ("not checked", "", "", ""))

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        status, ours, paper, detail = self.fn(res, reference, scale)
        return self._verdict(status, ours, paper, detail)
