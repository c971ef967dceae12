"""Uncertainty of trained comparisons: confidence intervals over seeds and paired differences.

Method (documented in docs/reproduce.md, "Statistics"): every model of a comparison is trained once
per seed, and a seed fixes the data order and augmentation for every model, so the runs are *paired*
by seed. For each model we report the mean of a metric over seeds with a Student-t 95% interval;
for a comparison we take the per-seed differences d_i = A_i − B_i and report their mean with a
Student-t interval (n − 1 degrees of freedom). Assumptions: seeds are independent draws of the
training randomness and the per-seed differences are roughly normal; the interval describes
seed-to-seed variation *including* the evaluation-set sampling of that seed's model on the fixed
test set, not the population of all possible test sets. With one seed there is no interval
(reported as such, never as a difference).

Verdicts (one rule per claim kind, never tuned to a table):

- "A beats B": *reproduced* when the whole interval of A − B lies above 0, *contradicted* when it
  lies below 0, otherwise *inconclusive*.
- "A matches B" with a declared margin m ≥ 0: *reproduced* when the lower bound is > −m,
  *contradicted* when the upper bound is < −m, otherwise *inconclusive*.

Differences are oriented so that positive means "A is better" (for error or loss, B − A).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from scipy import stats

__all__ = ["Interval", "mean_ci", "median_ci", "paired_difference", "beats_verdict", "matches_verdict",
           "describe_difference", "seeds_to_resolve", "REPRODUCED", "CONTRADICTED", "INCONCLUSIVE"]

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided confidence interval (``low``/``high`` are NaN when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def defined(self) -> bool:
        return self.n >= 2 and not math.isnan(self.low)

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (always ``True`` when it is undefined)."""
        return not self.defined or self.low <= value <= self.high

    def scaled(self, factor: float) -> "Interval":
        """The interval in other units (e.g. fractions × 100 = percent); a negative factor swaps the bounds."""
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Interval(self.mean * factor, lo, hi, self.n, self.level)

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def format(self, digits: int = 2, unit: str = "", signed: bool = False) -> str:
        """``"73.35 ± 0.42 (95% CI 72.93–73.77, n=3)"``; ``"73.35 (n=1, no CI)"`` for one value."""
        sign = "+" if signed else ""
        head = f"{self.mean:{sign}.{digits}f}{unit}"
        if not self.defined:
            return f"{head} (n={self.n}, no CI)"
        return (f"{head} ± {self.half_width:.{digits}f} ({self.level:.0%} CI {self.low:{sign}.{digits}f} to "
                f"{self.high:{sign}.{digits}f}, n={self.n})")


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` with a Student-t interval (NaN bounds for fewer than two values)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_ci needs at least one value")
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, level)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def median_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval for the median from order statistics.

    The bounds are the k-th smallest and k-th largest values, with k the largest rank for which
    P(Binomial(n, ½) < k) ≤ (1 − level)/2, so the coverage is at least ``level`` whatever the
    distribution (timings have long right tails: a t-interval would be wrong). With fewer than 6
    values no such k exists at 95%, and the bounds are NaN.
    """
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if not n:
        raise ValueError("median_ci needs at least one value")
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    alpha, k, tail = (1.0 - level) / 2.0, 0, 0.0
    while k < n // 2:
        nxt = tail + math.comb(n, k) / 2.0 ** n  # P(Bin(n, 1/2) <= k)
        if nxt > alpha:
            break
        tail, k = nxt, k + 1
    if k == 0:
        return med, math.nan, math.nan
    return med, xs[k - 1], xs[n - k]


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      higher_is_better: bool = True) -> Interval:
    """Mean and interval of the per-seed differences, oriented so that positive means A is better."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs one value per seed for both models, got {len(a)} and {len(b)}")
    sign = 1.0 if higher_is_better else -1.0
    return mean_ci([sign * (float(x) - float(y)) for x, y in zip(a, b)], level)


def seeds_to_resolve(sd: float, effect: float, level: float = 0.95, max_seeds: int = 100) -> int | None:
    """The fewest seeds n at which a paired difference of size ``effect``, with per-seed SD ``sd``, would have a
    ``level`` Student-t interval that excludes 0 (half-width t·sd/√n < |effect|); ``None`` beyond ``max_seeds``.

    A planning figure, not a power analysis: a difference measured at exactly that size is then decided, and a
    true effect of that size is decided in about half of such experiments.
    """
    if not (sd >= 0 and math.isfinite(sd)) or effect == 0 or not math.isfinite(effect):
        raise ValueError(f"seeds_to_resolve needs a finite sd >= 0 and a finite effect != 0, got {sd}, {effect}")
    for n in range(2, max_seeds + 1):
        if float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n) < abs(effect):
            return n
    return None


def beats_verdict(diff: Interval) -> str:
    """"A beats B" from the interval of A − B (positive = A better)."""
    if not diff.defined:
        return INCONCLUSIVE
    if diff.low > 0:
        return REPRODUCED
    if diff.high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def matches_verdict(diff: Interval, margin: float) -> str:
    """"A matches B" within ``margin`` (A may be worse by less than ``margin``), from the interval of A − B."""
    if margin < 0:
        raise ValueError(f"the margin of a 'matches' claim must be >= 0, got {margin}")
    if not diff.defined:
        return INCONCLUSIVE
    if diff.low > -margin:
        return REPRODUCED
    if diff.high < -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def describe_difference(diff: Interval, what: str, a: str, b: str, digits: int = 2, unit: str = "") -> str:
    """One honest sentence: the difference with its interval, and whether it is distinguishable.

    A difference whose interval covers 0 is "not distinguishable at this budget", never "better".
    """
    text = f"{what}, {a} vs {b} (positive: {a} better): {diff.format(digits, unit, signed=True)}"
    if not diff.defined:
        return f"{text}: one seed gives no interval, so no difference can be claimed"
    if diff.covers(0.0):
        return f"{text}: not distinguishable at this budget"
    return f"{text}: {a} {'better' if diff.low > 0 else 'worse'} than {b} (the interval excludes 0)"
