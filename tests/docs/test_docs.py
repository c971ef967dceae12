"""Documentation stays true: relative links resolve, and the committed reproduction reports agree with
their results.json, the index, the README and the cpu budget (each paper ≤ 40 min, all four ≤ 160 min on
2 cores), and every trained verdict follows the interval rule it stores."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from leannets.analysis.statistics import Interval, beats_verdict, matches_verdict
from leannets.reproduce.results import STATUSES, format_counts
from leannets.reproduce.spec import list_papers

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
REPRODUCTIONS = ROOT / "docs" / "reproductions"
PAPERS = list_papers()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _relative_links(md: Path) -> list[str]:
    links = [m.group(1).split("#")[0] for m in LINK.finditer(md.read_text(encoding="utf-8"))]
    return [t for t in links if t and "://" not in t and not t.startswith("mailto:")]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md: Path):
    missing = [t for t in _relative_links(md) if not (md.parent / t).exists()]
    assert not missing, f"{md.relative_to(ROOT)} links to missing files: {missing}"


def _committed(paper: str) -> dict:
    return json.loads((REPRODUCTIONS / paper / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("paper", PAPERS)
def test_committed_report_matches_its_results(paper: str):
    doc = _committed(paper)
    assert doc["paper"] == paper and doc["scale"] == "cpu"
    s = doc["summary"]
    report = (REPRODUCTIONS / paper / "report.md").read_text(encoding="utf-8")
    assert f"**Verdicts: {format_counts(s)}.**" in report
    for fig in re.findall(r"\]\((figures/[^)]+\.png)\)", report):
        assert (REPRODUCTIONS / paper / fig).stat().st_size > 0, fig


def test_committed_index_and_readme_agree_and_fit_the_cpu_budget():
    docs = [_committed(p) for p in PAPERS]
    index = (REPRODUCTIONS / "README.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for d in docs:
        s, minutes = d["summary"], d["seconds"] / 60
        row = (f"| {d['title']} | " + " | ".join(str(s[k]) for k in STATUSES) + f" | "
               f"{minutes:.1f} | [{d['paper']}/report.md]({d['paper']}/report.md) |")
        assert row in index
        assert f"({minutes:.1f} min: {format_counts(s)})" in readme, d["paper"]
    total = sum(d["seconds"] for d in docs) / 60
    assert f"**Total: {total:.1f} min**" in index
    for d in docs:
        assert d["seconds"] / 60 <= 40, f"{d['paper']}: cpu scale took {d['seconds'] / 60:.1f} min (budget 40)"
    assert total <= 160, f"cpu-scale reproduction of all four papers took {total:.1f} min (budget 160)"


@pytest.mark.parametrize("paper", PAPERS)
def test_committed_trained_verdicts_follow_their_interval_rule(paper: str):
    """A *reproduced* (or contradicted) trained claim must be what its stored interval and margin say."""
    judged = 0
    for exp in _committed(paper)["experiments"]:
        for v in exp["verdicts"]:
            ev = v.get("evidence")
            if not ev:
                assert v["status"] in ("reproduced", "not reproduced", "not checked"), (exp["name"], v["claim"])
                continue
            nan = float("nan")
            diff = Interval(ev["mean"], nan if ev["low"] is None else ev["low"],
                            nan if ev["high"] is None else ev["high"], ev["n"])
            rule = beats_verdict(diff) if ev["rule"] == "beats" else matches_verdict(diff, ev["margin"])
            assert v["status"] == rule, (exp["name"], v["claim"], v["status"], ev)
            judged += 1
    trains = any(exp.get("trained") for exp in _committed(paper)["experiments"])
    assert judged > 0 or not trains, f"{paper}: rows were trained but no trained claim was judged on an interval"


# What a committed cpu-scale report must show (issue 15): the whole test sets, >= 3 seeds, baselines above the floor.
EVAL_SIZE = {"acc1": 10_000, "psnr_bsd68": 68}


@pytest.mark.parametrize("paper", PAPERS)
def test_committed_trained_rows_use_whole_test_sets_and_three_seeds(paper: str):
    doc = _committed(paper)
    assert doc["scale"] == "cpu" and len(doc["seeds"]) >= 3
    for exp in doc["experiments"]:
        for row in exp["rows"]:
            m = row["metrics"]
            if "train_time_s" not in m:
                continue  # not trained
            assert m.get("seeds", 1) >= 3, (exp["name"], row["key"], m.get("seeds"))
            if "acc1" in m and "cifar10" in json.dumps(row.get("run") or {}):
                assert m["eval_samples"] == EVAL_SIZE["acc1"], (exp["name"], row["key"], m["eval_samples"])
            if "psnr" in m and "BSD68" in json.dumps(row.get("run") or {}):
                assert m["eval_samples"] == EVAL_SIZE["psnr_bsd68"], (exp["name"], row["key"], m["eval_samples"])


@pytest.mark.parametrize("paper", PAPERS)
def test_committed_decided_claims_have_baselines_above_the_floor(paper: str):
    """A decided (reproduced / contradicted) trained claim compares against a baseline trained far enough."""
    for exp in _committed(paper)["experiments"]:
        for v in exp["verdicts"]:
            ev = v.get("evidence") or {}
            if v["status"] not in ("reproduced", "contradicted") or "floor" not in ev:
                continue
            assert ev["baseline_score"] >= ev["floor"], (exp["name"], v["claim"], ev)
