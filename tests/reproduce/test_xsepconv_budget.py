"""XSepConv's cpu-scale budget paragraph: computed from the trained pair's runs, never typed."""
from __future__ import annotations

import statistics
from types import SimpleNamespace

from leannets.analysis.statistics import seeds_to_resolve
from leannets.reproduce.papers import xsepconv as X
from leannets.reproduce.results import ExperimentResult, RowResult

DW, XSEP = [82.95, 82.80, 83.10], [83.08, 82.88, 82.96]


def _result(xsep: list[float], dw: list[float]) -> ExperimentResult:
    rows = [RowResult(f"dw_{X.CPU_WIDTH}", "DW", {}, run={"seed_runs": ["d0", "d1", "d2"]},
                      metrics={"acc1_per_seed": dw, "train_time_s": 3 * 1200.0}),
            RowResult(f"xsep_{X.CPU_WIDTH}", "XSep", {}, metrics={"acc1_per_seed": xsep, "train_time_s": 3 * 1080.0},
                      run={"seed_runs": ["x0", "x1", "x2"]})]
    return ExperimentResult("fig3", "Fig. 3", "t", "cpu", rows=rows)


def _ctx(scale: str = "cpu", minutes: float = 25.0) -> SimpleNamespace:
    return SimpleNamespace(scale=scale, provenance={r: {"minutes": minutes} for r in ("d0", "d1", "d2", "x0", "x1", "x2")})


def test_the_cost_of_a_second_claim_comes_from_the_runs_and_the_paper_effect():
    res = _result(XSEP, DW)
    X._second_claim_cost(_ctx(), res)
    (text,) = res.extras["text"]
    sd = statistics.stdev(a - b for a, b in zip(XSEP, DW))
    n = seeds_to_resolve(sd, X.REF.value("table2.cifar10.no2x2_acc_drop"))
    runs = n + n - 3
    assert f"SD of {sd:.2f} points (n = 3)" in text
    assert f"from {n} seeds on" in text and f"{runs} runs, ≈ {runs * 25 / 60:.1f} CPU-hours" in text
    assert "took 25 min on average" in text and "(19 min of it training)" in text
    assert f"2.50 of this paper's {X.CPU_HOURS_PER_PAPER:g} CPU-hours" in text
    assert f"DWConv {sum(DW) / 3:.1f}%" in text
    assert "are smaller still, so that claim costs at least as much" in text  # the paper's 0.21 and 0.24 < 0.25


def test_no_paragraph_without_a_trained_pair():
    for ctx, res in ((_ctx("smoke"), _result(XSEP, DW)), (_ctx(), _result(XSEP[:1], DW[:1])),
                     (_ctx(), _result(XSEP, DW[:2]))):
        X._second_claim_cost(ctx, res)
        assert "text" not in res.extras
