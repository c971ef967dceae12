"""XSepConv's cpu-scale cost paragraph: computed from the trained pair's runs and the pilot's records, never typed."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

from leannets.analysis.statistics import seeds_to_resolve
from leannets.reproduce.papers import xsepconv as X
from leannets.reproduce.results import ExperimentResult, RowResult

DW, XSEP = [82.95, 82.80, 83.10, 82.70], [83.08, 82.88, 82.96, 82.90]
PILOT_DW, PILOT_XSEP = [82.94, 83.01, 82.89], [83.08, 82.88, 82.96]


def _result(xsep: list[float], dw: list[float]) -> ExperimentResult:
    rows = [RowResult(f"dw_{X.CPU_WIDTH}", "DW", {}, run={"seed_runs": ["d0", "d1"]}, metrics={"acc1_per_seed": dw}),
            RowResult(f"xsep_{X.CPU_WIDTH}", "XSep", {}, metrics={"acc1_per_seed": xsep},
                      run={"seed_runs": ["x0", "x1"]})]
    return ExperimentResult("fig3", "Fig. 3", "t", "cpu", rows=rows)


def _ctx(folder: Path | None, scale: str = "cpu") -> SimpleNamespace:
    minutes = {"d0": 9.0, "d1": 10.0, "x0": 11.0, "x1": 12.0}
    records = None if folder is None else SimpleNamespace(folder=folder)
    return SimpleNamespace(scale=scale, records=records, provenance={r: {"minutes": m} for r, m in minutes.items()})


def _write_pilot(folder: Path, epochs: int = 15) -> None:
    pilot = folder.joinpath(*X.PILOT_DIR)
    pilot.mkdir(parents=True)
    for xsep, accs in ((False, PILOT_DW), (True, PILOT_XSEP)):
        for seed, acc in enumerate(accs):
            name = X._mbv3_name("cifar", X.CPU_WIDTH, xsep)
            rec = {"seed": seed, "wall_s": 1800.0, "recipe": {"model": {"name": name}, "train": {"epochs": epochs}},
                   "result": {"final": {"eval_acc1": acc / 100}}}
            (pilot / f"{name}-{seed}.json").write_text(json.dumps(rec))


def test_the_paragraph_comes_from_the_runs_and_the_pilot(tmp_path):
    _write_pilot(tmp_path)
    res = _result(XSEP, DW)
    X._cpu_cost(_ctx(tmp_path), res)
    (text,) = res.extras["text"]
    pilot_sd = statistics.stdev(a - b for a, b in zip(PILOT_XSEP, PILOT_DW))
    n = seeds_to_resolve(pilot_sd, X.REF.value("table2.cifar10.no2x2_acc_drop"))
    assert "trained 10.5 min on average" in text
    assert "at 15 epochs with 3 seeds (3.00 CPU-hours" in text
    assert f"SD of {pilot_sd:.2f} points" in text and f"from {n} seeds on" in text
    assert f"SD of {statistics.stdev(a - b for a, b in zip(XSEP, DW)):.2f} points (n = 4)" in text
    assert f"DWConv reached {sum(DW) / 4:.1f}%" in text


def test_without_a_pilot_the_paragraph_gives_the_cost_only(tmp_path):
    for ctx in (_ctx(tmp_path), _ctx(None)):
        res = _result(XSEP, DW)
        X._cpu_cost(ctx, res)
        (text,) = res.extras["text"]
        assert "trained 10.5 min" in text and "pilot" not in text


def test_a_pilot_of_mixed_epochs_or_one_seed_is_not_used(tmp_path):
    _write_pilot(tmp_path)
    extra = tmp_path.joinpath(*X.PILOT_DIR) / "other.json"
    extra.write_text(json.dumps({"seed": 5, "wall_s": 1.0, "result": {"final": {"eval_acc1": 0.8}},
                                 "recipe": {"model": {"name": "x"}, "train": {"epochs": 4}}}))
    assert X._pilot(tmp_path) is None
    extra.unlink()
    assert X._pilot(tmp_path)["n"] == 3


def test_no_paragraph_at_other_scales_or_without_runs(tmp_path):
    res = _result(XSEP, DW)
    X._cpu_cost(_ctx(tmp_path, "smoke"), res)
    assert "text" not in res.extras
    ctx = _ctx(tmp_path)
    ctx.provenance = {}
    X._cpu_cost(ctx, res)
    assert "text" not in res.extras
