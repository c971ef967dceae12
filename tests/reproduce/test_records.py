"""Run records: a reproduction is finished from another's committed records without retraining them,
and a record whose recipe or model no longer holds is retrained with the reason in the report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import leannets.reproduce.runner as runner
from leannets.reproduce import run_paper
from leannets.reproduce.records import RecordStore, identity, model_fingerprint
from leannets.reproduce.spec import stable_hash

REAL_TRAIN = runner.train
TABLE = dict(paper="multiception", tables=["table1"], scale="smoke", log=lambda m: None)


class _Stop(Exception):
    pass


def _counting_train(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[str]:
    """Wrap the engine's train so the test sees every run trained (and can stop the reproduction)."""
    calls: list[str] = []

    def fake(*args, out_dir=None, **kwargs):
        if stop_after is not None and len(calls) >= stop_after:
            raise _Stop("interrupted")
        calls.append(Path(out_dir).name)
        return REAL_TRAIN(*args, out_dir=out_dir, **kwargs)

    monkeypatch.setattr(runner, "train", fake)
    return calls


def test_interrupted_reproduction_finishes_from_committed_records(tmp_path, monkeypatch):
    records = tmp_path / "records"
    first = _counting_train(monkeypatch, stop_after=2)
    with pytest.raises(_Stop):
        run_paper(**TABLE, out_dir=tmp_path / "a", runs_dir=tmp_path / "runs-a", records_dir=records)
    assert len(first) == 2 and len(list(records.glob("*.json"))) == 2
    # a second machine: a fresh runs folder and only the committed records of the first
    committed = tmp_path / "checkout" / "records"
    shutil.copytree(records, committed)
    second = _counting_train(monkeypatch)
    doc = run_paper(**TABLE, out_dir=tmp_path / "b", runs_dir=tmp_path / "runs-b", records_dir=committed)
    sources = {r["run_id"]: r["source"] for r in doc["runs"]}
    assert len(sources) == 4
    assert {k for k, v in sources.items() if v == "record"} == set(first)
    assert set(second) == {k for k, v in sources.items() if v == "trained"} and not set(second) & set(first)
    assert len(list(committed.glob("*.json"))) == 4
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## Training runs" in report and "| record |" in report


def test_report_regenerates_from_records_alone(tmp_path, monkeypatch):
    run_paper(**TABLE, out_dir=tmp_path / "a", runs_dir=tmp_path / "runs", records_dir=tmp_path / "rec")
    shutil.rmtree(tmp_path / "runs")
    calls = _counting_train(monkeypatch)
    doc = run_paper(**TABLE, out_dir=tmp_path / "b", runs_dir=tmp_path / "runs2", records_dir=tmp_path / "rec")
    assert calls == [] and all(r["source"] == "record" for r in doc["runs"])
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    for ra, rb in zip(a["experiments"][0]["rows"], doc["experiments"][0]["rows"]):
        assert ra["metrics"] == rb["metrics"]


def _edit_first_record(folder: Path, edit) -> str:
    path = sorted(folder.glob("*.json"))[0]
    rec = json.loads(path.read_text())
    edit(rec)
    rec["key"] = stable_hash(rec["recipe"], n=16)
    path.write_text(json.dumps(rec))
    return rec["run_id"]


@pytest.mark.parametrize("change, reason", [
    (lambda rec: rec["recipe"]["optim"].__setitem__("lr", 0.5), "recipe differs in optim.lr"),
    (lambda rec: rec.__setitem__("model_fingerprint", "0" * 16), "model code changed"),
])
def test_a_record_that_no_longer_holds_is_retrained_with_the_reason(tmp_path, monkeypatch, change, reason):
    rec = tmp_path / "rec"
    run_paper(**TABLE, out_dir=tmp_path / "a", runs_dir=tmp_path / "runs", records_dir=rec)
    run_id = _edit_first_record(rec, change)
    calls = _counting_train(monkeypatch)
    doc = run_paper(**TABLE, out_dir=tmp_path / "b", runs_dir=tmp_path / "runs2", records_dir=rec)
    assert calls == [run_id]
    row = next(r for r in doc["runs"] if r["run_id"] == run_id)
    assert row["source"] == "trained" and reason in row["retrained_because"]
    assert reason in (tmp_path / "b" / "report.md").read_text()


def test_records_are_small_and_hold_no_weights(tmp_path):
    run_paper(**TABLE, out_dir=tmp_path / "a", runs_dir=tmp_path / "runs", records_dir=tmp_path / "rec")
    for path in (tmp_path / "rec").glob("*.json"):
        rec = json.loads(path.read_text())
        assert path.stat().st_size < 20_000
        assert {"recipe", "seed", "run_id", "machine", "wall_s", "result", "model_fingerprint"} <= set(rec)
        assert {"leannets_commit", "torch", "cpu", "threads", "amp"} <= set(rec["machine"])
        assert rec["result"]["history"] and rec["result"]["final"]
        assert "data" not in rec["recipe"] or "root" not in rec["recipe"]["data"]


def test_model_fingerprint_follows_the_architecture():
    a = model_fingerprint("resnet20_standard", {}, 10)
    assert a == model_fingerprint("resnet20_standard", {}, 10)
    assert a != model_fingerprint("resnet20_multiception", {}, 10)
    assert a != model_fingerprint("resnet20_standard", {}, 100)


def test_identity_ignores_where_the_data_lives():
    from leannets.engine.recipe import load_recipe

    a = load_recipe("multiception_cifar10_resnet20_standard", {"data.root": "/a", "train.threads": 1})
    b = load_recipe("multiception_cifar10_resnet20_standard", {"data.root": "/b", "train.threads": 2})
    c = load_recipe("multiception_cifar10_resnet20_standard", {"data.root": "/a", "optim.lr": 0.2})
    assert identity(a) == identity(b) and identity(a) != identity(c)


def test_an_unreadable_record_is_one_clear_error(tmp_path):
    from leannets.engine.recipe import load_recipe

    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"run record .*x\.json"):
        RecordStore(tmp_path).find(load_recipe("multiception_cifar10_resnet20_standard"))
