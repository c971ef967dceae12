"""Confidence intervals over seeds, paired differences and the verdict rules."""
from __future__ import annotations

import math

import pytest
from scipy import stats

from leannets.analysis.statistics import (CONTRADICTED, INCONCLUSIVE, REPRODUCED, Interval, beats_verdict,
                                          describe_difference, matches_verdict, mean_ci, paired_difference,
                                          seeds_to_resolve)


def test_mean_ci_is_the_student_t_interval():
    xs = [0.71, 0.74, 0.73, 0.70]
    iv = mean_ci(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / 4, scale=stats.sem(xs))
    assert iv.mean == pytest.approx(0.72) and iv.n == 4
    assert (iv.low, iv.high) == (pytest.approx(lo), pytest.approx(hi))


def test_one_value_has_no_interval():
    iv = mean_ci([0.5])
    assert not iv.defined and math.isnan(iv.low) and iv.covers(123.0)
    assert iv.as_dict()["low"] is None and "no CI" in iv.format()
    assert beats_verdict(iv) == INCONCLUSIVE


def test_paired_differences_remove_the_shared_seed_effect():
    a = [0.80, 0.70, 0.90]  # seeds differ a lot, A is always 0.01 above B
    b = [0.79, 0.69, 0.89]
    paired = paired_difference(a, b)
    assert paired.mean == pytest.approx(0.01) and paired.low > 0  # decided by pairing
    unpaired_gap = mean_ci(a).mean - mean_ci(b).mean
    assert unpaired_gap == pytest.approx(0.01) and mean_ci(a).low < mean_ci(b).high  # the per-model CIs overlap


def test_lower_is_better_flips_the_sign():
    err_a, err_b = [10.0, 11.0, 10.5], [12.0, 13.0, 12.4]
    diff = paired_difference(err_a, err_b, higher_is_better=False)
    assert diff.mean == pytest.approx(1.9667, abs=1e-3) and beats_verdict(diff) == REPRODUCED
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([1.0], [1.0, 2.0])


@pytest.mark.parametrize("low, high, beats, matches", [
    (0.2, 1.0, REPRODUCED, REPRODUCED),
    (-0.4, 0.6, INCONCLUSIVE, REPRODUCED),   # -0.4 > -m (m = 0.5)
    (-0.8, 0.6, INCONCLUSIVE, INCONCLUSIVE),
    (-1.5, -0.2, CONTRADICTED, INCONCLUSIVE),
    (-1.5, -0.6, CONTRADICTED, CONTRADICTED),
])
def test_verdict_table(low, high, beats, matches):
    diff = Interval((low + high) / 2, low, high, 3)
    assert beats_verdict(diff) == beats
    assert matches_verdict(diff, margin=0.5) == matches


def test_wording_never_calls_a_covered_difference_better():
    covered = describe_difference(Interval(0.28, -0.5, 1.06, 3), "top-1 accuracy", "A", "B", unit=" points")
    assert covered.endswith("not distinguishable at this budget") and "+0.28 points" in covered
    assert "better than" not in covered
    decided = describe_difference(Interval(1.0, 0.4, 1.6, 3), "top-1 accuracy", "A", "B")
    assert decided.endswith("A better than B (the interval excludes 0)")
    with pytest.raises(ValueError, match="margin"):
        matches_verdict(Interval(0, -1, 1, 3), -0.1)


def test_scaling_to_percent_keeps_the_interval():
    iv = Interval(0.01, 0.002, 0.018, 3).scaled(100)
    assert (iv.mean, iv.low, iv.high) == (pytest.approx(1.0), pytest.approx(0.2), pytest.approx(1.8))
    flipped = Interval(1.0, 0.5, 1.5, 3).scaled(-1)
    assert (flipped.low, flipped.high) == (-1.5, -0.5)


def test_seeds_to_resolve_is_the_first_n_whose_interval_half_width_is_below_the_effect():
    sd, effect = 0.1417, 0.25
    n = seeds_to_resolve(sd, effect)
    half = [stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k) for k in (n - 1, n)]
    assert half[0] >= effect > half[1]
    assert n == 4  # 3 seeds: 0.352 ≥ 0.25; 4 seeds: 0.225 < 0.25
    assert seeds_to_resolve(sd, -effect) == n  # the sign of the effect does not matter
    assert seeds_to_resolve(0.0, 0.1) == 2
    assert seeds_to_resolve(5.0, 0.01, max_seeds=50) is None


@pytest.mark.parametrize("sd,effect", [(-1.0, 0.2), (float("nan"), 0.2), (0.1, 0.0), (0.1, float("inf"))])
def test_seeds_to_resolve_rejects_meaningless_input(sd, effect):
    with pytest.raises(ValueError, match="seeds_to_resolve"):
        seeds_to_resolve(sd, effect)
