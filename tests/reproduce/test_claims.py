"""The verdict rules: each claim kind flips between reproduced / not reproduced on synthetic results."""
from __future__ import annotations

import pytest

from leannets.reproduce.claims import Absolute, AtLeast, Better, Custom, Matches, MatchesValue, NotWorse, noise_pp
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


def test_better_direction_depends_on_metric_and_reports_noise():
    ref = _ref()
    err = Better("c", "a beats b", "T", metric="error", better="a", worse="b")
    res = _res(a={"error": 30.0, "acc1": 70.0, "eval_samples": 1000}, b={"error": 32.0, "acc1": 68.0,
                                                                          "eval_samples": 1000})
    v = err.evaluate(res, ref, "cpu")
    assert v.status == "reproduced" and "inside the noise" in v.detail  # 2 points < 2·SE ≈ 4.1
    acc = Better("c", "a beats b", "T", metric="acc1", better="b", worse="a")
    assert acc.evaluate(res, ref, "cpu").status == "not reproduced"
    assert err.evaluate(res, ref, "smoke").status == "not checked"
    assert noise_pp(res, "a", "error") == pytest.approx(100 * (0.3 * 0.7 / 1000) ** 0.5)


def test_not_worse_allows_the_papers_gap_plus_noise():
    ref = _ref(pa=(4.13, "%"), pb=(4.03, "%"))
    claim = NotWorse("c", "a matches b", "T", metric="error", a="a", b="b", paper_keys=("pa", "pb"))
    n = 10_000_000  # negligible noise: the allowance is the paper's own 0.10 gap
    ok = _res(a={"error": 5.08, "eval_samples": n}, b={"error": 5.0, "eval_samples": n})
    bad = _res(a={"error": 5.5, "eval_samples": n}, b={"error": 5.0, "eval_samples": n})
    assert claim.evaluate(ok, ref, "cpu").status == "reproduced"
    assert claim.evaluate(bad, ref, "cpu").status == "not reproduced"


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


def test_dominance_uses_only_the_rows_trained_at_this_scale():
    from leannets.reproduce.papers.dxnet import _dominates

    untrained = {"train_params": None, "psnr": None}  # e.g. the deepest Fig. 4 rows at cpu scale
    res = _res(w1={"train_params": 100, "psnr": 20.0}, w2={"train_params": 400, "psnr": 22.0}, w3=untrained,
               b1={"train_params": 200, "psnr": 21.5}, b2=untrained)
    ok, margins = _dominates(res, ["b1", "b2"], ["w1", "w2", "w3"])
    assert ok and margins == "+0.500 dB"  # the worse curve at 200 params (log-linear) is 21.0 dB
    res.rows[3].metrics["psnr"] = 20.5
    assert _dominates(res, ["b1", "b2"], ["w1", "w2", "w3"])[0] is False
    assert _dominates(res, ["b2"], ["w1"]) is None
