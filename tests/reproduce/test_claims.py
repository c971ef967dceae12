"""The verdict rules: each claim kind moves between its verdicts on synthetic results."""
from __future__ import annotations

import pytest

from leannets.reproduce.claims import (Absolute, AtLeast, Better, Custom, Matches, MatchesValue, NotWorse, PairedBetter,
                                       noise_pp)
from leannets.reproduce.reference import RefValue, Reference
from leannets.reproduce.results import ExperimentResult, RowResult


def _ref(**values: tuple[float, str]) -> Reference:
    return Reference("t", "T", "", "", "quoted", {k: RefValue(k, "Table 9", k, v, u) for k, (v, u) in values.items()})


def _res(scale: str = "cpu", **rows: dict) -> ExperimentResult:
    res = ExperimentResult("t", "Table 9", "t", scale)
    for key, metrics in rows.items():
        res.rows.append(RowResult(key, key, {"name": key}, metrics=dict(metrics)))
    return res


def test_matches_uses_printed_precision_by_default():
    ref = _ref(p=(0.5, "M"))
    claim = Matches("c", "params", "Table 9", row="a", metric="params", ref_key="p", unit=1e6)
    assert claim.evaluate(_res(a={"params": 532_162}), ref, "smoke").status == "reproduced"  # 0.532 within ±0.05
    v = claim.evaluate(_res(a={"params": 560_001}), ref, "smoke")
    assert v.status == "not reproduced" and "gap +0.06" in v.detail
    assert claim.evaluate(_res(a={}), ref, "smoke").status == "not checked"


def test_matches_relative_tolerance():
    ref = _ref(p=(26.78, "M"))
    claim = Matches("c", "params", "Table 9", row="a", metric="params", ref_key="p", unit=1e6, rel_tol=0.01)
    assert claim.evaluate(_res(a={"params": 26.9e6}), ref, "cpu").status == "reproduced"
    assert claim.evaluate(_res(a={"params": 26.19e6}), ref, "cpu").status == "not reproduced"


def test_matches_value_against_formula_and_reference():
    ref = _ref(s=(44, "%"))
    by_ref = MatchesValue("c", "saving", "Sec", fn=lambda r: 44.0, expected="s", tol=0.5)
    assert by_ref.evaluate(_res(), ref, "smoke").status == "reproduced"
    by_num = MatchesValue("c", "ratio", "Sec", fn=lambda r: 0.6, expected=0.56, rel_tol=0.01)
    assert by_num.evaluate(_res(), ref, "smoke").status == "not reproduced"


def _seeds(metric: str, values: list[float], n_eval: int = 10_000) -> dict:
    return {metric: sum(values) / len(values), f"{metric}_per_seed": values, "eval_samples": n_eval}


def test_better_is_judged_on_the_paired_interval_over_seeds():
    ref = _ref(pa=(7.0, "%"), pb=(8.0, "%"))
    err = Better("c", "a beats b", "T", metric="error", better="a", worse="b", paper_keys=("pa", "pb"))
    decided = _res(a=_seeds("error", [30.0, 31.0, 29.5]), b=_seeds("error", [32.0, 33.2, 31.4]))
    v = err.evaluate(decided, ref, "cpu")
    assert v.status == "reproduced" and "over paired seeds on 10,000 test images" in v.detail
    assert "paper's effect +1" in v.detail and "95% CI" in v.detail
    flipped = Better("c", "b beats a", "T", metric="error", better="b", worse="a")
    assert flipped.evaluate(decided, ref, "cpu").status == "contradicted"
    noisy = _res(a=_seeds("error", [30.0, 33.0, 29.0]), b=_seeds("error", [32.0, 31.0, 31.5]))
    assert err.evaluate(noisy, ref, "cpu").status == "inconclusive"  # mean 0.83 better, interval covers 0
    acc = Better("c", "a beats b", "T", metric="acc1", better="a", worse="b")
    assert acc.evaluate(_res(a=_seeds("acc1", [70.0, 69.0, 71.0]), b=_seeds("acc1", [68.0, 67.5, 69.0])), ref,
                        "cpu").status == "reproduced"
    assert err.evaluate(decided, ref, "smoke").status == "not checked"


def test_one_seed_never_decides():
    ref = _ref()
    claim = Better("c", "a beats b", "T", metric="error", better="a", worse="b")
    one = _res(a={"error": 10.0, "eval_samples": 10_000}, b={"error": 30.0, "eval_samples": 10_000})
    v = claim.evaluate(one, ref, "cpu")
    assert v.status == "inconclusive" and "no CI" in v.detail


def test_not_worse_margin_is_the_papers_gap_plus_the_declared_tolerance():
    ref = _ref(pa=(4.13, "%"), pb=(4.03, "%"))
    claim = NotWorse("c", "a matches b", "T", metric="error", a="a", b="b", paper_keys=("pa", "pb"), tolerance=0.2)
    # margin m = 0.10 (paper: a worse by 0.10) + 0.2 = 0.3 error points
    ok = _res(a=_seeds("error", [5.10, 5.15, 5.05]), b=_seeds("error", [5.0, 5.02, 4.98]))
    bad = _res(a=_seeds("error", [6.0, 6.1, 5.9]), b=_seeds("error", [5.0, 5.02, 4.98]))
    wide = _res(a=_seeds("error", [5.0, 6.0, 5.1]), b=_seeds("error", [5.0, 5.0, 5.0]))
    v = claim.evaluate(ok, ref, "cpu")
    assert v.status == "reproduced" and "margin m = 0.3 (paper gap 0.1 + tolerance 0.2)" in v.detail
    assert claim.evaluate(bad, ref, "cpu").status == "contradicted"
    assert claim.evaluate(wide, ref, "cpu").status == "inconclusive"
    assert noise_pp(ok, "a", "error") == pytest.approx(100 * (0.051 * 0.949 / 10_000) ** 0.5, rel=1e-2)


def test_absolute_only_at_paper_scale_and_within_two_standard_errors():
    ref = _ref(e=(4.03, "%"))
    claim = Absolute("c", "error", "T", row="a", metric="error", ref_key="e")
    res = _res(a={"error": 4.2, "eval_samples": 10_000})  # 2·SE ≈ 0.40
    assert claim.evaluate(res, ref, "cpu").status == "not checked"
    assert claim.evaluate(res, ref, "paper").status == "reproduced"
    res.rows[0].metrics["error"] = 5.0
    assert claim.evaluate(res, ref, "paper").status == "not reproduced"


def test_at_least_and_custom():
    ref = _ref(s=(3.13, "x"))
    claim = AtLeast("c", "speed-up", "T", fn=lambda r: r.extras.get("s"), ref_key="s", scales=("cpu",))
    res = _res()
    res.extras["s"] = 3.5
    assert claim.evaluate(res, ref, "cpu").status == "reproduced"
    res.extras["s"] = 2.0
    v = claim.evaluate(res, ref, "cpu")
    assert v.status == "not reproduced" and "-36.1%" in v.detail
    assert claim.evaluate(res, ref, "smoke").status == "not checked"
    custom = Custom("c", "x", "T", fn=lambda r, rf, s: ("reproduced", "1", "1", "ok"))
    assert custom.evaluate(res, ref, "cpu").label() == "reproduced (ok)"


@pytest.mark.parametrize("ci,status", [((3.2, 3.6), "reproduced"), ((2.5, 3.0), "contradicted"),
                                        ((3.0, 3.3), "inconclusive")])
def test_at_least_with_an_interval_is_judged_on_it_and_stores_the_evidence(ci, status):
    ref = _ref(s=(3.13, "x"))
    claim = AtLeast("c", "speed-up", "T", fn=lambda r: r.extras.get("s"), ci_fn=lambda r: r.extras.get("s_ci"),
                    ref_key="s", scales=("cpu",))
    res = _res()
    res.extras["s"], res.extras["s_ci"] = sum(ci) / 2, [*ci, 30]
    v = claim.evaluate(res, ref, "cpu")
    assert v.status == status and "95% CI" in v.ours
    ev = v.evidence
    assert ev["rule"] == "beats" and ev["n"] == 30
    assert ev["low"] == pytest.approx(ci[0] - 3.13) and ev["high"] == pytest.approx(ci[1] - 3.13)


def test_dominance_uses_only_the_rows_trained_at_this_scale_and_is_judged_per_seed():
    from leannets.reproduce.papers.dxnet import _dominance_claim, _dominates

    untrained = {"train_params": None, "psnr": None}  # rows not trained at this scale
    res = _res(w1={"train_params": 100, "psnr": 20.0}, w2={"train_params": 400, "psnr": 22.0}, w3=untrained,
               b1={"train_params": 200, "psnr": 21.5}, b2=untrained)
    assert _dominates(res, ["b1", "b2"], ["w1", "w2", "w3"]) == [[pytest.approx(0.5)]]  # the curve at 200 is 21.0
    assert _dominates(res, ["b2"], ["w1"]) is None
    claim = _dominance_claim("d", "b above w", "Fig. 8", ["b1", "b2"], ["w1", "w2", "w3"], "plot only")
    assert claim.evaluate(res, _ref(), "paper").status == "inconclusive"  # one seed: no interval
    seeds = {"w1": [20.0, 20.1, 19.9], "w2": [22.0, 22.1, 21.9], "b1": [21.5, 21.7, 21.4]}
    for key, ys in seeds.items():
        res.row(key).metrics.update(_seeds("psnr", ys))
    v = claim.evaluate(res, _ref(), "paper")
    assert v.status == "reproduced" and v.evidence["low"] > 0
    res.row("b1").metrics.update(_seeds("psnr", [20.5, 20.6, 20.3]))
    assert claim.evaluate(res, _ref(), "paper").status == "contradicted"
    assert claim.evaluate(res, _ref(), "smoke").status == "not checked"


def test_a_baseline_below_the_floor_leaves_its_comparison_unchecked():
    claim = Better("c", "a beats b", "T", metric="acc1", better="a", worse="b")
    res = _res(a=_seeds("acc1", [76.0, 77.0, 76.5]), b=_seeds("acc1", [73.0, 74.0, 73.5]))
    assert claim.evaluate(res, _ref(), "cpu").status == "reproduced"  # no floor declared
    res.extras["floor"] = {"metric": "acc1", "value": 75.0}
    v = claim.evaluate(res, _ref(), "cpu")
    assert v.status == "not checked" and v.detail.startswith("budget: the baseline reached 73.5 acc1, below the floor of 75")
    res.row("b").metrics.update(_seeds("acc1", [75.2, 76.1, 75.6]))
    v = claim.evaluate(res, _ref(), "cpu")
    assert v.status == "reproduced" and v.evidence["baseline_score"] == pytest.approx(75.6333, abs=1e-3)
    assert v.evidence["floor"] == 75.0 and v.evidence["eval_samples"] == 10_000
    matches = NotWorse("m", "a matches b", "T", metric="error", a="a", b="b")
    res.row("b").metrics.update({"acc1": 60.0})
    assert matches.evaluate(res, _ref(), "cpu").status == "not checked"


def test_rows_not_trained_at_a_scale_name_the_declared_reason():
    res = _res(a={}, b={})
    res.extras["not_trained"] = "budget: 3 seeds need 2 h on 2 cores"
    v = Better("c", "a beats b", "T", metric="acc1", better="a", worse="b").evaluate(res, _ref(), "cpu")
    assert v.status == "not checked" and v.detail.startswith("budget: not trained at cpu scale")


def test_paired_better_judges_per_seed_pairs_that_are_not_row_metrics():
    pairs = {"values": ([71.0, 72.0, 71.5], [70.0, 70.5, 70.2])}
    claim = PairedBetter("ft", "fine-tuning helps", "Table 4", values=lambda res: res.extras.get("pairs"),
                         paper_keys=("pa", "pb"), baseline="a")
    ref = _ref(pa=(11.87, "%"), pb=(12.21, "%"))
    res = _res(a=_seeds("acc1", [71.0, 72.0, 71.5]))
    assert claim.evaluate(res, ref, "cpu").status == "not checked"  # nothing measured
    res.extras["pairs"] = pairs["values"]
    v = claim.evaluate(res, ref, "cpu")
    assert v.status == "reproduced" and v.evidence["rule"] == "beats" and v.evidence["low"] > 0
    assert v.paper == "11.87 vs 12.21 % (Table 9)"  # quoted from the reference
    res.extras["pairs"] = (pairs["values"][1], pairs["values"][0])
    assert claim.evaluate(res, ref, "cpu").status == "contradicted"
    res.extras["floor"] = {"metric": "acc1", "value": 75.0}
    assert claim.evaluate(res, ref, "cpu").status == "not checked"  # the model itself is below the floor
    assert claim.evaluate(res, ref, "smoke").status == "not checked"


def test_the_papers_effect_follows_the_quoted_metric_not_ours():
    """WAE quotes top-5 errors for claims measured in accuracy: 11.87 vs 15.73 % error is +3.86 for A."""
    ref = _ref(wae=(11.87, "%"), half=(15.73, "%"))
    ref.values["table1.wae.top5_error"] = ref.values.pop("wae")
    ref.values["table1.half.top5_error"] = ref.values.pop("half")
    claim = Better("c", "wae beats half", "T", metric="acc1", better="a", worse="b",
                   paper_keys=("table1.wae.top5_error", "table1.half.top5_error"))
    v = claim.evaluate(_res(a=_seeds("acc1", [76.0, 77.0, 76.5]), b=_seeds("acc1", [75.0, 75.5, 75.2])), ref, "cpu")
    assert v.evidence["paper_effect"] == pytest.approx(3.86) and "paper's effect +3.86" in v.detail
