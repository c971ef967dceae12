"""Run records: a reproduction is finished from another's committed records without retraining them,
and a record whose recipe or model no longer holds is retrained with the reason in the report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import leannets.reproduce.context as runner
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


@pytest.mark.parametrize("missing, value, reused", [
    ("train.grad_clip", None, True),    # a key the schema gained since, at its default: the same run
    ("train.grad_clip", 1.0, False),    # ... set to something else: another run
    ("optim.lr", 0.37, False),          # ... in any section
    ("model.convert", None, True),      # ... the model section too (it also tells which model a record is of)
    ("model.convert", {"conv": "xsepconv"}, False),
])
def test_a_record_older_than_a_new_schema_key_is_reused_at_its_default(tmp_path, missing, value, reused):
    from leannets.engine.recipe import load_recipe
    from leannets.reproduce.records import make_record

    section, key = missing.split(".")
    resolved = load_recipe("multiception_cifar10_resnet20_standard", {missing: value})
    rec = make_record(resolved, {"final": {}, "data": {"num_classes": 10}}, "r", 1)
    del rec["recipe"][section][key]
    rec["key"] = stable_hash(rec["recipe"], n=16)
    store = RecordStore(tmp_path)
    store.write(rec)
    found, stale = RecordStore(tmp_path).find(resolved)
    assert (found is not None) == reused
    assert reused or missing in stale.reason


def test_records_say_the_precision_the_run_trained_in(tmp_path):
    from leannets.engine.recipe import load_recipe
    from leannets.reproduce.records import make_record, record_amp

    resolved = load_recipe("multiception_cifar10_resnet20_standard", {"train.device": "cpu"})
    assert make_record(resolved, {"amp": "bf16", "device": "cpu"}, "r", 1)["machine"]["amp"] == "bf16"
    # an engine result from before it reported the precision: auto on a CPU was fp32
    old = make_record(resolved, {"device": "cpu"}, "r", 1)
    assert old["machine"]["amp"] == "off"
    assert record_amp({"machine": {"amp": "auto", "gpu": None}}) == "off"
    assert record_amp({"machine": {"amp": "auto", "gpu": "H100"}}) == "auto"


def test_analyses_that_need_weights_come_back_from_the_records(tmp_path, monkeypatch):
    """WAE's energy share (Figs. 3-4), fine-tuning pairs (Table 4) and noise accuracies are computed when each run
    ends and kept in its record: a report rebuilt from the records alone has them all, with no checkpoint."""
    wae = dict(paper="wae", tables=["table2", "table7", "fig4"], scale="smoke", log=lambda m: None)
    a = run_paper(**wae, out_dir=tmp_path / "a", runs_dir=tmp_path / "runs", records_dir=tmp_path / "rec")
    shutil.rmtree(tmp_path / "runs")
    calls = _counting_train(monkeypatch)
    b = run_paper(**wae, out_dir=tmp_path / "b", runs_dir=tmp_path / "runs2", records_dir=tmp_path / "rec")
    assert calls == []
    for ea, eb in zip(a["experiments"], b["experiments"]):
        assert [r["metrics"] for r in ea["rows"]] == [r["metrics"] for r in eb["rows"]]
    energy = next(e for e in b["experiments"] if e["name"] == "fig4")["rows"][0]["metrics"]
    noise = next(e for e in b["experiments"] if e["name"] == "table7")["rows"][1]["metrics"]
    assert 0 < energy["energy_share_ih"] < 1 and "acc1@V=0.1_per_seed" in noise
    assert next(e for e in b["experiments"] if e["name"] == "table2")["extras"].get("ft_pairs")
    records = [json.loads(p.read_text()) for p in (tmp_path / "rec").glob("*.json")]
    assert sum("energy" in r["analyses"] for r in records) == 1 and sum("noise" in r["analyses"] for r in records) == 2


def _ctx(records: Path, retime: bool = False) -> runner.Context:
    from leannets.reproduce import get_paper
    from leannets.reproduce.reference import load_reference

    return runner.Context(paper=get_paper("wae"), scale="cpu", seed=0, out_dir=records.parent, data_root=None,
                          reference=load_reference("wae"), log=lambda m: None, records=RecordStore(records),
                          retime=retime)


def test_a_measurement_record_is_reused_until_its_models_or_settings_change(tmp_path):
    records = tmp_path / "records"
    timed: list[int] = []

    def measure() -> dict:
        timed.append(1)
        return {"speedup": 1.5 + len(timed)}

    spec = {"threads": 1, "models": {"vgg16": "abc"}}
    first = _ctx(records).measured("speedups", spec, measure, threads=1)
    again = _ctx(records).measured("speedups", spec, measure, threads=1)  # a new process, the same folder
    assert len(timed) == 1 and again["reused"] and again["values"] == first["values"] == {"speedup": 2.5}
    assert again["machine"]["threads"] == 1 and again["machine"]["cpu"]
    other = _ctx(records).measured("speedups", {**spec, "models": {"vgg16": "changed"}}, measure)
    assert len(timed) == 2 and not other["reused"] and other["values"] == {"speedup": 3.5}
    retimed = _ctx(records, retime=True).measured("speedups", spec, measure)
    assert len(timed) == 3 and not retimed["reused"]
    # measurement records sit beside run records without being taken for runs
    assert RecordStore(records)._index() == {}


def test_importing_the_records_module_runs_no_git():
    import subprocess
    import sys

    code = "import leannets.reproduce.records as r; print(r._commit.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"  # read when a reproduction context is made, not on import


def test_a_diverged_run_is_noted_and_the_reproduction_goes_on(tmp_path, monkeypatch):
    from leannets.engine.trainer import NonFiniteLossError

    def diverge_dsconv(*args, out_dir=None, **kwargs):
        if "dsconv" in Path(out_dir).name:
            raise NonFiniteLossError("non-finite training loss or gradient at stage 'train' epoch 1 step 2")
        return REAL_TRAIN(*args, out_dir=out_dir, **kwargs)

    monkeypatch.setattr(runner, "train", diverge_dsconv)
    doc = run_paper(**TABLE, out_dir=tmp_path / "out", records_dir=tmp_path / "records")
    table1 = doc["experiments"][0]
    assert any("diverged" in n and "dsconv" in n for n in table1["notes"])
    rows = {r["key"]: r for r in table1["rows"]}
    assert "acc1" not in rows["dsconv"]["metrics"] and "acc1" in rows["standard"]["metrics"]
    assert not any("dsconv" in p.name for p in (tmp_path / "records").glob("*.json"))  # no record of a failed run


def test_the_plan_says_which_runs_are_recorded_and_estimates_the_rest_from_records():
    from leannets.reproduce.runner import plan_paper

    root = Path(__file__).resolve().parents[2]
    runs = plan_paper("multiception", ["table1"], "cpu", data_root="/data", seeds=6,
                      records_dir=root / "docs" / "reproductions" / "records")
    assert all(r["recorded"] for r in runs if r["seed"] < 5)  # the committed records of seeds 0-4
    new = [r for r in runs if r["seed"] == 5]
    assert new and all(not r["recorded"] and r["estimate_min"] > 0 for r in new)


@pytest.mark.parametrize("override,expected_min", [
    ({"train.epochs": 6}, 18.0),  # only the epochs differ: 6 epochs at the recorded 180 s each
    ({"train.epochs": 6, "schedule.warmup_epochs": 2.0, "train.eval_every": 6}, 18.0),
    ({"train.epochs": 10}, 30.0),                     # the recipe itself (another seed): its recorded minutes
    ({"train.epochs": 6, "data.batch_size": 64}, None),  # another step: no estimate
    ({"train.epochs": 6, "model.name": "resnet20_dsconv"}, None),
])
def test_the_plan_estimates_a_new_epoch_count_from_the_recorded_seconds_per_epoch(tmp_path, override, expected_min):
    from leannets.engine.recipe import load_recipe
    from leannets.reproduce.records import make_record

    base = {"train.device": "cpu", "train.epochs": 10}
    recorded = load_recipe("multiception_cifar10_resnet20_standard", {**base, "seed": 0})
    store = RecordStore(tmp_path)
    store.write(make_record(recorded, {"final": {}, "epochs": 10, "train_time_s": 1800.0,
                                       "data": {"num_classes": 10}}, "r", 1))
    planned = load_recipe("multiception_cifar10_resnet20_standard", {**base, **override, "seed": 1})
    estimate = RecordStore(tmp_path).minutes_like(planned)
    assert estimate == (None if expected_min is None else pytest.approx(expected_min))


def test_no_train_builds_from_records_only_and_names_the_missing_runs(tmp_path, monkeypatch):
    calls = _counting_train(monkeypatch)
    doc = run_paper(**TABLE, out_dir=tmp_path / "out", records_dir=tmp_path / "records", no_train=True)
    assert calls == []
    table1 = doc["experiments"][0]
    assert any("has no record yet (built with --no-train)" in n for n in table1["notes"])
    assert all("acc1" not in r["metrics"] for r in table1["rows"])


def test_a_resumed_run_counts_the_epochs_of_every_sitting():
    """The engine's train_time_s restarts with a resumed run; the record's wall time must not lose the epochs
    trained before the interruption (they count against the paper's CPU budget)."""
    from leannets.reproduce.records import training_seconds

    history = [{"epoch": e, "epoch_time_s": 100.0} for e in range(1, 16)]
    assert training_seconds({"train_time_s": 1000.0, "history": history}) == 1500.0  # resumed after epoch 5
    assert training_seconds({"train_time_s": 1600.0, "history": history}) == 1600.0  # one sitting (+ evaluation)
    assert training_seconds({"train_time_s": None, "history": []}) == 0.0
