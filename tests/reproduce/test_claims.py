"""The verdict rules: each claim kind moves between its verdicts on synthetic results."""
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
