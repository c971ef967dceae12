"""Claims: what a paper states, and the rule that turns our measurement into a verdict.

Rules are fixed per claim *kind*, never tuned to a table:

- :class:`Matches` / :class:`MatchesValue` — a deterministic figure (parameters, MACs, a ratio)
  equals the paper's within a stated tolerance (by default half a unit of the last digit the
  paper prints). Checked at every scale.
- :class:`Better` — "A beats B" (e.g. Multiception's error below DSConv's), judged on the 95%
  interval of the per-seed paired difference A − B: *reproduced* when it lies above 0,
  *contradicted* when it lies below 0, *inconclusive* otherwise.
- :class:`NotWorse` — "A matches B" (e.g. DxNet 12-12-12 ≈ DenseNet 16-16-16 with fewer
  parameters) with a margin m = the paper's own gap + a declared tolerance: *reproduced* when the
  interval's lower bound is > −m, *contradicted* when its upper bound is < −m.
- :class:`Absolute` — an absolute accuracy/PSNR of the paper; only meaningful with the paper's
  full recipe, so checked at ``paper`` scale only.

Trained claims are not checked at ``smoke`` scale (a few steps on embedded data prove that the
pipeline runs, nothing about the paper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

from leannets.analysis.statistics import Interval, beats_verdict, matches_verdict, paired_difference

from .reference import Reference
from .results import ExperimentResult, Verdict

__all__ = ["Claim", "Matches", "MatchesValue", "Better", "NotWorse", "PairedBetter", "Absolute", "AtLeast",
           "Custom", "Fewer", "higher_is_better", "noise_pp", "fmt_num", "HARDWARE_TOLERANCE"]

HIGHER_IS_BETTER = {"acc1", "acc5", "psnr", "ssim", "speedup", "accuracy"}
TRAINED_SCALES = ("cpu", "gpu", "paper")


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
    """Base class: ``id``, the paper's statement ``text`` and its ``ref``. ``basis`` names why the claim holds by
    construction or by a choice fitted to the paper: its agreement is then "consistent", never "reproduced"."""

    id: str
    text: str
    ref: str
    basis: str = field(default="", kw_only=True)
    #: whether the claim is about trained models (its verdicts count as "decided trained claims")
    trained: ClassVar[bool] = False

    def judge(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        """:meth:`evaluate`, with an agreement that rests on :attr:`basis` worded as such."""
        verdict = self.evaluate(res, reference, scale)
        verdict.trained = self.trained
        if self.basis and verdict.status == "reproduced":
            verdict.status = "consistent"
            verdict.detail = f"by construction: {self.basis}" + (f"; {verdict.detail}" if verdict.detail else "")
        return verdict

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


def _not_at_smoke(claim: Claim, scale: str, scales: tuple[str, ...], paper: str = "") -> Verdict | None:
    """The "not checked" verdict of a trained claim at a scale it is not judged at (smoke), else ``None``."""
    if scale in scales:
        return None
    why = ("smoke scale trains a few steps on embedded data: it exercises the pipeline, it is not evidence"
           if scale == "smoke" else f"only meaningful at {'/'.join(scales)} scale")
    return claim._verdict("not checked", "", paper, why)


def _paper_pair(reference: Reference, keys: tuple[str, str] | None) -> tuple[float | None, float | None, str]:
    if not keys:
        return None, None, "—"
    a, b = reference[keys[0]], reference[keys[1]]
    where = a.ref if a.ref == b.ref else f"{a.ref}; {b.ref}"
    return float(a.value), float(b.value), f"{a.value} vs {b.value}{' ' + a.unit if a.unit else ''} ({where})"


def _paper_effect(keys: tuple[str, str] | None, pa: float | None, pb: float | None, metric: str) -> float | None:
    """The paper's A − B, positive when A is better there. The quoted values may be in another metric than
    ours (WAE quotes ImageNet top-5 *errors* for claims we measure in CIFAR-10 accuracy): a key naming an
    error is lower-is-better, any other key follows our metric."""
    if pa is None or pb is None or not keys:
        return None
    higher = False if "error" in keys[0].rsplit(".", 1)[-1] else higher_is_better(metric)
    return (pa - pb) if higher else (pb - pa)


def _paired(res: ExperimentResult, a: str, b: str, metric: str) -> Interval | None:
    """The 95% interval of A − B over paired seeds (positive: A better), ``None`` when not measured."""
    va, vb = res.row(a).metrics.get(f"{metric}_per_seed"), res.row(b).metrics.get(f"{metric}_per_seed")
    if va is None or vb is None:
        single_a, single_b = res.value(a, metric), res.value(b, metric)
        if single_a is None or single_b is None:
            return None
        va, vb = [single_a], [single_b]  # one measurement (e.g. an analysis of one checkpoint): no interval
    if len(va) != len(vb):
        raise ValueError(f"{res.name}: rows {a!r} and {b!r} have {len(va)} and {len(vb)} seeds; claims pair them")
    return paired_difference(va, vb, higher_is_better=higher_is_better(metric))


def _unjudged(res: ExperimentResult, baseline: str) -> str | None:
    """Why a trained claim cannot be judged: its rows are not trained at this scale, or its baseline
    stayed below the experiment's floor (trained too little to mean anything); ``None`` when it can."""
    floor = res.extras.get("floor")
    if floor:
        value = res.value(baseline, floor["metric"])
        if value is not None and value < floor["value"]:
            return (f"budget: the baseline reached {value:.4g} {floor['metric']}, below the floor of "
                    f"{floor['value']:g} this scale requires before a comparison means anything")
    return None


def _baseline_evidence(res: ExperimentResult, baseline: str) -> dict[str, object]:
    """The baseline's score against the experiment's floor and the evaluation-set size (stored per verdict)."""
    floor = res.extras.get("floor")
    out: dict[str, object] = {"eval_samples": res.value(baseline, "eval_samples")}
    if floor:
        out.update({"floor_metric": floor["metric"], "floor": floor["value"],
                    "baseline_score": res.value(baseline, floor["metric"])})
    return out


def _not_measured(res: ExperimentResult, scale: str) -> str:
    reason = res.extras.get("not_trained")
    if not reason:
        return f"not measured at {scale} scale"
    return f"{reason.split(':')[0]}: not trained at {scale} scale (the experiment's note gives the measured limit)"


def _evidence(res: ExperimentResult, a: str, diff: Interval, paper_effect: float | None) -> str:
    n_eval = res.value(a, "eval_samples")
    size = f" on {int(n_eval):,} test images" if n_eval else ""
    effect = "" if paper_effect is None else f"; paper's effect {paper_effect:+.3g}"
    return f"A − B (positive: A better) {diff.format(3, signed=True)} over paired seeds{size}{effect}"


def _judge_pair(claim: Any, res: ExperimentResult, reference: Reference, scale: str, a: str,
                b: str) -> Verdict | tuple[Interval, str, str, float | None]:
    """What a paired trained claim of ``a`` against the baseline ``b`` shares: its "not checked" verdict when it
    cannot be judged here, else (the interval of A − B, our figures, the paper's, the paper's effect)."""
    pa, pb, paper = _paper_pair(reference, claim.paper_keys)
    skipped = _not_at_smoke(claim, scale, claim.scales, paper)
    if skipped:
        return skipped
    diff = _paired(res, a, b, claim.metric)
    if diff is None:
        return claim._verdict("not checked", "—", paper, _not_measured(res, scale))
    ours = f"{fmt_num(res.value(a, claim.metric))} vs {fmt_num(res.value(b, claim.metric))}"
    why = _unjudged(res, b)
    if why:
        return claim._verdict("not checked", ours, paper, why)
    return diff, ours, paper, _paper_effect(claim.paper_keys, pa, pb, claim.metric)


@dataclass
class Better(Claim):
    """"``better`` beats ``worse``" on ``metric`` (direction from the metric's name), judged on the 95%
    interval of the paired per-seed difference: reproduced above 0, contradicted below 0, else inconclusive."""

    metric: str = "error"
    better: str = ""
    worse: str = ""
    paper_keys: tuple[str, str] | None = None
    scales: tuple[str, ...] = TRAINED_SCALES
    trained: ClassVar[bool] = True

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        judged = _judge_pair(self, res, reference, scale, self.better, self.worse)
        if isinstance(judged, Verdict):
            return judged
        diff, ours, paper, effect = judged
        verdict = self._verdict(beats_verdict(diff), ours, paper, _evidence(res, self.better, diff, effect))
        verdict.evidence = {"rule": "beats", **diff.as_dict(), "margin": 0.0, "paper_effect": effect,
                            **_baseline_evidence(res, self.worse)}
        return verdict


@dataclass
class NotWorse(Claim):
    """"``a`` matches ``b``": ``a`` may be worse by less than the margin m = the paper's own gap (when ``a`` is
    worse there) + the declared ``tolerance`` (metric units). Judged on the 95% interval of A − B over paired
    seeds: reproduced when its lower bound is > −m, contradicted when its upper bound is < −m."""

    metric: str = "error"
    a: str = ""
    b: str = ""
    paper_keys: tuple[str, str] | None = None
    tolerance: float = 0.5
    scales: tuple[str, ...] = TRAINED_SCALES
    trained: ClassVar[bool] = True

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        judged = _judge_pair(self, res, reference, scale, self.a, self.b)
        if isinstance(judged, Verdict):
            return judged
        diff, ours, paper, effect = judged
        margin = max(0.0, -effect) + self.tolerance if effect is not None else self.tolerance
        detail = (f"{_evidence(res, self.a, diff, effect)}; margin m = {margin:.3g} (paper gap "
                  f"{max(0.0, -effect) if effect is not None else 0.0:.3g} + tolerance {self.tolerance:.3g})")
        verdict = self._verdict(matches_verdict(diff, margin), ours, paper, detail)
        verdict.evidence = {"rule": "matches", **diff.as_dict(), "margin": margin, "paper_effect": effect,
                            **_baseline_evidence(res, self.b)}
        return verdict


@dataclass
class PairedBetter(Claim):
    """"A beats B" on per-seed values that are not one row metric each (e.g. the same run before and after a
    stage, or two models under noise): ``values(result)`` gives ``(A per seed, B per seed)`` or ``None`` when
    not measured; judged like :class:`Better`, the floor checked on row ``baseline`` when given."""

    values: Callable[[ExperimentResult], tuple[list[float], list[float]] | None] = lambda res: None
    higher: bool = True
    paper_keys: tuple[str, str] | None = None
    baseline: str = ""
    scales: tuple[str, ...] = TRAINED_SCALES
    trained: ClassVar[bool] = True

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        _, _, paper = _paper_pair(reference, self.paper_keys)
        skipped = _not_at_smoke(self, scale, self.scales, paper)
        if skipped:
            return skipped
        pair = self.values(res)
        if pair is None:
            return self._verdict("not checked", "—", paper, _not_measured(res, scale))
        a, b = pair
        ours = f"{fmt_num(sum(a) / len(a))} vs {fmt_num(sum(b) / len(b))}"
        why = _unjudged(res, self.baseline) if self.baseline else None
        if why:
            return self._verdict("not checked", ours, paper, why)
        diff = paired_difference(a, b, higher_is_better=self.higher)
        verdict = self._verdict(beats_verdict(diff), ours, paper,
                                f"A − B (positive: A better) {diff.format(3, signed=True)} over paired seeds")
        verdict.evidence = {"rule": "beats", **diff.as_dict(), "margin": 0.0, "paper_effect": None,
                            **(_baseline_evidence(res, self.baseline) if self.baseline else {})}
        return verdict


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


#: How far below the paper's figure a timing measured on other hardware may land and still count as the paper's
#: effect on this machine (relative; one rule for every timing claim).
HARDWARE_TOLERANCE = 0.10


@dataclass
class AtLeast(Claim):
    """A measured figure ``fn(result)`` (e.g. a speed-up) reaches the paper's value.

    With ``ci_fn`` (the figure's 95% interval and its sample count, e.g. a speed-up from per-round
    pairs): the interval of ours − paper decides like "A beats B" — reproduced when it lies above 0,
    contradicted when it lies below, else inconclusive; it is stored as the verdict's evidence.
    Without one (deterministic figures): reproduced when ours ≥ paper.

    ``hardware`` (the reference key naming the paper's machine) marks a timing: the paper measured it elsewhere,
    so the target is the paper's figure less :data:`HARDWARE_TOLERANCE`, and a miss is "not reproduced on this
    machine", never "contradicted".
    """

    fn: Callable[[ExperimentResult], float | None] = lambda res: None
    ref_key: str = ""
    scales: tuple[str, ...] = ("smoke", "cpu", "gpu", "paper")
    ci_fn: Callable[[ExperimentResult], Sequence[float] | None] | None = None  # (low, high, n)
    hardware: str = ""

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        paper = reference[self.ref_key]
        value = self.fn(res)
        if scale not in self.scales:
            return self._verdict("not checked", fmt_num(value), paper.cite(), f"not measured at {scale} scale")
        if value is None:
            return self._verdict("not checked", "—", paper.cite(), f"not measured at {scale} scale")
        target = float(paper.value) * (1 - HARDWARE_TOLERANCE if self.hardware else 1)
        ci = self.ci_fn(res) if self.ci_fn is not None else None
        if ci is not None:
            lo, hi, n = ci
            diff = Interval(value - target, lo - target, hi - target, int(n))
            status = beats_verdict(diff)
            detail = {"reproduced": f"the interval lies above {target:.3g}",
                      "contradicted": f"the interval lies below {target:.3g} (gap {value - target:+.3g})",
                      "inconclusive": f"the interval covers {target:.3g}"}[status]
            if self.hardware:
                status = "not reproduced" if status == "contradicted" else status
                detail = (f"on this machine: {detail}; target = the paper's {float(paper.value):g} less "
                          f"{100 * HARDWARE_TOLERANCE:g}% (timed with {reference.value(self.hardware)})")
            verdict = self._verdict(status, f"{fmt_num(value)} (95% CI {fmt_num(lo)}–{fmt_num(hi)})", paper.cite(),
                                    detail)
            verdict.evidence = {"rule": "beats", **diff.as_dict(), "margin": 0.0, "paper_effect": None}
            return verdict
        if value >= target:
            return self._verdict("reproduced", fmt_num(value), paper.cite(), f"{value / target:.2f}× the paper's")
        return self._verdict("not reproduced", fmt_num(value), paper.cite(),
                             f"gap {value - target:+.3g} ({100 * (value / target - 1):+.1f}%)")


@dataclass
class Fewer(Claim):
    """"A has fewer ``metrics`` than B" for every (A, B) of ``pairs`` (deterministic counts): reproduced when each
    A is below its B, not reproduced otherwise, not checked when any count is missing. The paper's side is quoted
    from ``paper_keys`` (pairs of reference keys), else ``paper_text`` says what it prints."""

    metrics: tuple[str, ...] = ("params",)
    pairs: tuple[tuple[str, str], ...] = ()
    paper_keys: tuple[tuple[str, str], ...] = ()
    paper_text: str = ""

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        paper = "; ".join(_paper_pair(reference, keys)[2] for keys in self.paper_keys) or self.paper_text
        ours, ok = [], True
        for metric in self.metrics:
            for a, b in self.pairs:
                va, vb = res.value(a, metric), res.value(b, metric)
                if va is None or vb is None:
                    return self._verdict("not checked", "—", paper, f"not measured at {scale} scale")
                ok = ok and va < vb
                ours.append(f"{metric} {fmt_num(va)} vs {fmt_num(vb)} ({100 * (1 - va / vb):.2f}% fewer)")
        return self._verdict("reproduced" if ok else "not reproduced", "; ".join(ours), paper,
                             "" if ok else "not fewer")


@dataclass
class Custom(Claim):
    """Any rule: ``fn(result, reference, scale) -> (status, ours, paper, detail)``."""

    fn: Callable[[ExperimentResult, Reference, str], tuple[str, str, str, str]] = field(
        default=lambda res, ref, scale: ("not checked", "", "", ""))

    def evaluate(self, res: ExperimentResult, reference: Reference, scale: str) -> Verdict:
        status, ours, paper, detail = self.fn(res, reference, scale)
        return self._verdict(status, ours, paper, detail)
