"""The bf16 check: fp32 runs come from the paper's own records when those trained in fp32, the verdict follows
the paired interval, and the docs section is generated from the check's JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leannets.reproduce import precision
from leannets.reproduce.context import Context
from leannets.reproduce.records import RecordStore

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _fake_train(accs: dict[str, list[float]], auto_amp: str, calls: list[str] | None = None):
    def train(self, exp, row, seed_index=0, extra=None):
        amp = (extra or {}).get("train.amp", "auto")
        if calls is not None:
            calls.append(amp)
        effective = auto_amp if amp == "auto" else amp
        run_id = f"{row.key}-{amp}-{seed_index}"
        self.provenance[run_id] = {"run_id": run_id, "amp": effective, "cpu": "test CPU", "minutes": 1.0}
        acc = accs["bf16" if effective == "bf16" else "fp32"][seed_index]
        return {"run_id": run_id, "final": {"eval_acc1": acc / 100}, "overrides": {"seed": seed_index},
                "recipe_name": "r", "epochs": 5, "eval_samples": 10_000, "history": [{"img_per_s": 500.0}]}
    return train


@pytest.mark.parametrize("recorded, auto_amp, trained", [(True, "off", {"auto", "bf16"}),
                                                        (True, "bf16", {"auto", "off", "bf16"}),
                                                        (False, "bf16", {"off", "bf16"})])
def test_fp32_side_reuses_the_papers_runs_only_when_recorded_in_fp32(tmp_path, monkeypatch, recorded, auto_amp,
                                                                     trained):
    monkeypatch.setenv("LEANNETS_CPU_BF16", "1")
    calls: list[str] = []
    monkeypatch.setattr(Context, "train", _fake_train({"fp32": [78.0, 77.5, 78.2], "bf16": [78.1, 77.4, 78.3]},
                                                      auto_amp, calls))
    monkeypatch.setattr(RecordStore, "find", lambda self, resolved: ({"run_id": "r"} if recorded else None, None))
    doc = precision.bf16_check(tmp_path, tmp_path / "rec", log=lambda m: None)
    assert set(calls) == trained and len(calls) == 3 * len(trained)
    assert doc["fp32"] == [78.0, 77.5, 78.2] and doc["bf16"] == [78.1, 77.4, 78.3]
    assert doc["verdict"] == "equivalent" and -0.5 < doc["difference"]["low"] < doc["difference"]["high"] < 0.5


def test_a_difference_beyond_the_margin_is_not_shown_equivalent(tmp_path, monkeypatch):
    monkeypatch.setenv("LEANNETS_CPU_BF16", "1")
    monkeypatch.setattr(Context, "train", _fake_train({"fp32": [78.0, 77.5, 78.2], "bf16": [76.0, 76.9, 75.1]}, "off"))
    assert precision.bf16_check(tmp_path, tmp_path / "rec", log=lambda m: None)["verdict"] == "not shown equivalent"


def test_docs_section_is_generated_from_the_committed_check(tmp_path):
    path = DOCS / "reproductions" / "bf16_check.json"
    if not path.is_file():
        pytest.skip("no committed bf16 check")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert precision.render_section(doc) in (DOCS / "reproduce.md").read_text(encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{precision.BEGIN}\nold\n{precision.END}\nend\n")
    precision.update_docs(page, doc)
    assert page.read_text() == f"intro\n{precision.render_section(doc)}\nend\n"


@pytest.mark.parametrize("bf16, expected", [([78.1, 77.4, 78.3], "equivalent"),
                                            ([79.0, 78.6, 79.1], "not worse"),
                                            ([76.0, 76.9, 75.1], "not shown equivalent")])
def test_verdict_separates_equivalent_not_worse_and_worse(tmp_path, monkeypatch, bf16, expected):
    """Inside ±0.5: equivalent; above -0.5 but reaching past +0.5 (bf16 better by an unbounded amount): not worse;
    reaching below -0.5: not shown equivalent."""
    monkeypatch.setenv("LEANNETS_CPU_BF16", "1")
    monkeypatch.setattr(Context, "train", _fake_train({"fp32": [78.0, 77.5, 78.2], "bf16": bf16}, "off"))
    assert precision.bf16_check(tmp_path, tmp_path / "rec", log=lambda m: None)["verdict"].startswith(expected)
