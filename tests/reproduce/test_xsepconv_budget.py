"""XSepConv's cpu-scale budget paragraph: computed from the trained pair's runs, never typed."""
from __future__ import annotations

import statistics
from types import SimpleNamespace

from leannets.analysis.statistics import seeds_to_resolve
from leannets.reproduce.papers import xsepconv as X
from leannets.reproduce.records import RECORD_VERSION
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


def _write_trial(folder, accs):
    import json
    trial = folder.joinpath(*X.TRIAL_DIR)
    trial.mkdir(parents=True)
    for key, values in accs.items():
        name = X._mbv3_name("cifar", X.CPU_WIDTH, key != "dw")
        kwargs = {"num_classes": 10, **({"xsep_variant": key} if key == "no2x2" else {})}
        for seed, acc in enumerate(values):
            rec = {"version": RECORD_VERSION, "key": f"{key}-{seed}", "seed": seed, "wall_s": 600.0,
                   "result": {"final": {"eval_acc1": acc / 100}},
                   "recipe": {"model": {"name": name, "kwargs": kwargs}, "train": {"epochs": 8}}}
            (trial / f"{key}-{seed}.json").write_text(json.dumps(rec))


def test_the_shorter_schedule_trial_is_reported_from_its_records(tmp_path):
    accs = {"dw": [79.9, 78.2, 79.0], "xsep": [79.85, 79.6, 77.8], "no2x2": [80.1, 80.6, 80.2]}
    _write_trial(tmp_path, accs)
    res = _result(XSEP, DW)
    ctx = _ctx()
    ctx.records = SimpleNamespace(folder=tmp_path)
    X._second_claim_cost(ctx, res)
    (text,) = res.extras["text"]
    sd_dw = statistics.stdev(a - b for a, b in zip(accs["xsep"], accs["dw"]))
    sd_no = statistics.stdev(a - b for a, b in zip(accs["xsep"], accs["no2x2"]))
    assert "tried: 8 epochs with 3 seeds" in text and "(1.50 CPU-hours" in text  # 9 runs of 600 s
    assert f"SD {sd_dw:.2f}" in text and f"SD {sd_no:.2f}" in text
    assert f"DWConv {sum(accs['dw']) / 3:.1f}%" in text
    n = seeds_to_resolve(max(sd_dw, sd_no), X.REF.value("table2.cifar10.no2x2_acc_drop"))
    assert (f"would need {n} seeds." if n else "more than 100 seeds.") in text


def test_no_trial_paragraph_without_two_paired_seeds(tmp_path):
    _write_trial(tmp_path, {"dw": [79.9], "xsep": [79.8]})
    assert X._trial(tmp_path) is None
    assert X._trial(tmp_path / "elsewhere") is None


def test_an_unreadable_trial_record_is_named(tmp_path):
    import pytest
    trial = tmp_path.joinpath(*X.TRIAL_DIR)
    trial.mkdir(parents=True)
    (trial / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not readable JSON"):
        X._trial(tmp_path)
