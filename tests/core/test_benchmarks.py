"""The benchmark scripts' shared verdict rule, and one script run end to end in its smoke mode."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("goal,ci,verdict", [
    ("<= 0.8", (0.5, 0.7), "met"), ("<= 0.8", (0.85, 0.9), "missed"), ("<= 0.8", (0.7, 0.9), "not distinguishable"),
    (">= 1.5", (1.6, 2.0), "met"), (">= 1.5", (1.0, 1.4), "missed"), (">= 1.5", (1.4, 1.6), "not distinguishable"),
    ("", (0.1, 0.2), "—"),
])
def test_target_verdict_follows_the_interval(goal: str, ci: tuple[float, float], verdict: str) -> None:
    common = _load("_common")
    t = common.Target("area", "a", "b", "time", sum(ci) / 2, ci, goal, "settings")
    assert t.verdict == verdict


def test_exact_figures_without_interval_are_judged_on_the_value() -> None:
    common = _load("_common")
    assert common.Target("m", "a", "b", "memory", 0.37, None, "<= 0.5", "", exact=True).verdict == "met"
    assert common.Target("m", "a", "b", "memory", 0.6, None, "<= 0.5", "", exact=True).verdict == "missed"
    assert common.Target("t", "a", "b", "time", 0.6, None, "<= 0.8", "").verdict == "no CI (too few rounds)"


def test_multiception_benchmark_smoke_run_writes_targets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bench = _load("multiception_speed")
    path = tmp_path / "mc.json"
    assert bench.main(["--quick", "--rounds", "6", "--threads", "1", "--train-batch", "4", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| Multiception layer, fwd+bwd |" in out and "| ResNet-20 training throughput |" in out
    doc = json.loads(path.read_text())
    assert doc["machine"]["torch"] and len(doc["targets"]) == 5
    for t in doc["targets"]:
        lo, hi = t["ci"]
        assert lo <= t["ratio"] <= hi and t["goal"] and t["verdict"] in ("met", "missed", "not distinguishable")
