"""The trainer: learning, run folder, multi-stage freezing, NaN stop, safe checkpoints, kill-and-resume."""
from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from leannets.cli import main as cli_main
from leannets.engine import evaluate_checkpoint, train
from leannets.engine.checkpoint import load_checkpoint, load_model
from leannets.engine.trainer import NonFiniteLossError

TINY_MODEL = {"name": "densenet_bc_cifar_6_6_6", "kwargs": {"growth_rate": 2, "bn_size": 2, "num_init_features": 4}}


def tiny(**sections) -> dict:
    r = {"model": dict(TINY_MODEL), "seed": 1,
         "data": {"name": "digits", "image_size": 16, "batch_size": 16, "eval_batch_size": 64, "limit_train": 64,
                  "limit_eval": 64, "flip": False, "crop_padding": 2},
         "optim": {"lr": 0.05, "nesterov": True}, "train": {"epochs": 2, "threads": 1}}
    for k, v in sections.items():
        r[k] = {**r.get(k, {}), **v} if isinstance(v, dict) else v
    return r


def test_train_learns_digits_and_writes_the_run_folder(tmp_path: Path):
    recipe = tiny(model={"kwargs": {"growth_rate": 4, "bn_size": 2, "num_init_features": 8}},
                  data={"limit_train": 384, "limit_eval": None, "batch_size": 32},
                  optim={"lr": 0.1, "weight_decay": 5e-4}, schedule={"name": "cosine", "warmup_epochs": 0.3},
                  train={"epochs": 3, "eval_every": 2})
    res = train(recipe, out_dir=tmp_path / "run", verbose=False)
    assert res["final"]["eval_acc1"] > 0.3, res["final"]  # 10 classes: chance is 0.1 (359 test images)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    run = tmp_path / "run"
    for f in ("recipe.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "result.json"):
        assert (run / f).is_file(), f
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["optim"]["lr"] == 0.1 and saved["data"]["cutout"] == 0  # resolved, defaults included
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "img_per_s" in rows[0]
    assert ["eval_acc1" in r for r in rows] == [False, True, True]  # eval_every 2, and always the last epoch
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("stage,stage_name,epoch")
    out = evaluate_checkpoint(run / "last.pt")
    assert out["metrics"]["acc1"] == pytest.approx(res["final"]["eval_acc1"])
    model, ckpt = load_model(run)
    assert not model.training and ckpt["data_info"]["num_classes"] == 10
    prep = json.loads((run / "result.json").read_text())["data"]["preprocessing"]  # what the model saw, recorded
    assert prep["train"] == "zero-pad 2 + random 16×16 crop (on the device, per batch)"  # digits: no flip
    assert prep["eval"] == "as stored (16×16)" and prep["normalise"].startswith("mean (")


def test_multistage_freeze_keeps_frozen_weights_and_bn_stats(tmp_path: Path):
    from types import SimpleNamespace

    from leannets.engine.recipe import load_recipe, stage_configs
    from leannets.engine.task import create_task

    recipe = tiny(train={"epochs": 1}, stages=[
        {"name": "head", "freeze": ["stem", "blocks.0"], "optim": {"lr": 0.1}},
        {"name": "all", "optim": {"name": "adam", "lr": 1e-3}, "schedule": {"name": "cosine"}}])
    res = train(recipe, out_dir=tmp_path / "a", verbose=False)
    hist = res["history"]
    assert [h["stage_name"] for h in hist] == ["head", "all"] and hist[0]["lr"] == 0.1
    one = train({**recipe, "stages": recipe["stages"][:1]}, out_dir=tmp_path / "b", verbose=False)
    w1 = load_checkpoint(Path(one["checkpoint"]))["model"]
    w2 = load_checkpoint(Path(res["checkpoint"]))["model"]
    torch.manual_seed(recipe["seed"])  # the trainer builds the model right after seeding
    cfg = stage_configs(load_recipe(recipe))[0]
    fresh = create_task(cfg).build_model(SimpleNamespace(**one["data"])).state_dict()
    frozen = [k for k in w1 if k.startswith(("stem.", "blocks.0."))]
    assert any("running_mean" in k for k in frozen) and any("conv" in k for k in frozen)
    for k in frozen:
        assert torch.equal(w1[k], fresh[k]), f"{k} changed while frozen"
    assert not torch.equal(w1["fc.weight"], fresh["fc.weight"])
    assert not torch.equal(w2["blocks.0.denselayer1.norm1.running_mean"], w1["blocks.0.denselayer1.norm1.running_mean"])
    assert not torch.equal(w2["stem.0.weight"], w1["stem.0.weight"])  # stage 2 trains everything
    with pytest.raises(ValueError, match="freeze prefix 'encoder'.*top-level modules: blocks, fc"):
        train(tiny(stages=[{"freeze": ["encoder"]}]), save=False, verbose=False)


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_last_good(tmp_path: Path):
    recipe = tiny(train={"epochs": 1}, stages=[{"name": "ok"}, {"name": "boom", "optim": {"lr": 1e30}}])
    with pytest.raises(NonFiniteLossError, match=r"stage 'boom' epoch 1 step \d+ .*last good \(finite\) checkpoint"
                                                 r".*Lower optim.lr \(now 1e\+30\)"):
        train(recipe, out_dir=tmp_path, verbose=False)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["loop"]["stage"] == 1 and ck["loop"]["epoch"] == 0  # saved after stage "ok", never after
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert len(ck["history"]) == 1
    # The CLI prints the same as a clean error.
    rc = cli_main(["train", "--recipe", _write(tmp_path / "r.yaml", recipe), "--out", str(tmp_path / "c"),
                   "--quiet"])
    assert rc == 2


def test_a_diverging_run_keeps_a_checkpoint_that_evaluates_finite(tmp_path: Path):
    # One good epoch, then lr 1e3 (measured: NaN within the next epoch, weights huge before that).
    recipe = tiny(train={"epochs": 1}, stages=[{"name": "ok"}, {"name": "boom", "epochs": 2, "optim": {"lr": 1e3}}])
    with pytest.raises(NonFiniteLossError, match=r"stage 'boom' epoch 1 .*Lower optim.lr \(now 1000\)"):
        train(recipe, out_dir=tmp_path / "run", verbose=False)
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["loop"]["stage"] == 1 and ck["loop"]["epoch"] == 0  # the end of stage "ok": the last good one
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    out = evaluate_checkpoint(tmp_path / "run" / "last.pt")
    assert all(math.isfinite(v) for v in out["metrics"].values()), out["metrics"]


def test_skip_mode_drops_non_finite_steps_and_keeps_training(tmp_path: Path, monkeypatch):
    from leannets.engine.tasks.classification import ClassificationTask

    real = ClassificationTask.training_step
    calls = {"n": 0}

    def sometimes_nan(self, model, batch):
        loss, logs = real(self, model, batch)
        calls["n"] += 1
        return (loss * float("nan"), logs) if calls["n"] in (2, 5) else (loss, logs)

    monkeypatch.setattr(ClassificationTask, "training_step", sometimes_nan)
    res = train(tiny(train={"epochs": 2, "on_nonfinite": "skip"}), out_dir=tmp_path / "run", verbose=False)
    assert sum(r.get("skipped_steps", 0) for r in res["history"]) == 2
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert all(r["train_loss"] == r["train_loss"] for r in res["history"])  # skipped steps are not averaged in


def test_resume_removes_orphan_temp_files(tmp_path: Path):
    run = tmp_path / "run"
    train(tiny(train={"epochs": 1}), out_dir=run, verbose=False)
    orphan = run / ".last.pt.k1ll3d.tmp"  # what a write interrupted by SIGKILL leaves behind
    orphan.write_bytes(b"half a checkpoint")
    past = orphan.stat().st_mtime - 3600
    os.utime(orphan, (past, past))
    train(resume=run, verbose=False)
    assert not orphan.exists()
    assert not list(run.glob(".*.tmp"))


def test_run_files_get_the_umask_permissions(tmp_path: Path):
    old = os.umask(0o022)
    try:
        train(tiny(train={"epochs": 1}), out_dir=tmp_path / "run", verbose=False)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes


def _write(path: Path, recipe: dict) -> str:
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crafted_pickle_checkpoint_is_refused(tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "leannets-checkpoint", "model": {}, "payload": _Evil(str(marker))}, bad)
    with pytest.raises(ValueError, match=r"evil\.pt was refused: it contains pickled objects"):
        load_checkpoint(bad)
    assert not marker.exists()
    assert cli_main(["eval", str(bad)]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="not a leannets checkpoint"):
        load_checkpoint(plain)
    (tmp_path / "trunc.pt").write_bytes(plain.read_bytes()[:40])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "notes.txt").write_text("hello world\n")
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 2)
    for name in ("notes.txt", "noise.pt"):
        assert cli_main(["eval", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{name} is not a checkpoint" in err, err
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    # A pickle that is not even a zip archive.
    (tmp_path / "old.pt").write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "old.pt")
    assert not marker.exists()


def test_cli_train_and_eval_print_results(tmp_path: Path, capsys):
    recipe = _write(tmp_path / "r.yaml", tiny(train={"epochs": 1}))
    assert cli_main(["train", "--recipe", recipe, "--set", "optim.lr=0.02", "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "eval_acc1" in out and "run folder" in out
    assert yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())["optim"]["lr"] == 0.02
    assert cli_main(["eval", str(tmp_path / "run" / "last.pt"), "--set", "data.limit_eval=32"]) == 0
    out = capsys.readouterr().out
    assert "32 samples" in out and "acc1" in out
    assert cli_main(["eval", str(tmp_path / "run"), "--set", "optim.lr=1"]) == 2
    assert cli_main(["train", "--recipe", recipe, "--set", "optim.momentun=0.5"]) == 2
    assert "optim.momentun" in capsys.readouterr().err


def test_top_k_is_reported_only_below_the_number_of_classes():
    from leannets.engine.task import cross_entropy_sums

    target = torch.tensor([0, 1, 2, 1])
    three = cross_entropy_sums(torch.randn(4, 3), target)
    assert set(three) == {"loss", "acc1"}
    logits = torch.eye(10)[[0, 1, 2, 3]] * 2
    logits[3, 1] = 1.0  # row 3 (label 1) ranks its label second: a top-5 hit, a top-1 miss
    ten = cross_entropy_sums(logits, target)
    assert set(ten) == {"loss", "acc1", "acc5"} and float(ten["acc1"][0]) == 3 and float(ten["acc5"][0]) == 4


def test_deferred_finite_checks_stop_at_the_next_read_and_keep_the_last_finite_checkpoint(tmp_path: Path,
                                                                                             monkeypatch):
    """The CUDA path (flags combined on the device, read every FINITE_CHECK_EVERY steps), forced on the CPU."""
    import leannets.engine.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "FINITE_CHECK_EVERY", 3)
    monkeypatch.setattr(trainer_mod.Trainer, "_defers_finite_check", lambda self, run: True)
    reads: list[int] = []
    real_read = trainer_mod.Trainer._read_finite
    monkeypatch.setattr(trainer_mod.Trainer, "_read_finite",
                        lambda self, run, step: (reads.append(step), real_read(self, run, step))[1])
    recipe = tiny(train={"epochs": 1}, stages=[{"name": "ok"}, {"name": "boom", "optim": {"lr": 1e30}}])
    with pytest.raises(NonFiniteLossError, match=r"stage 'boom' epoch 1 within the 3 steps up to step \d+ "
                                                 r"\(checked every 3 steps on cpu\).*last good \(finite\) checkpoint"):
        train(recipe, out_dir=tmp_path, verbose=False)
    assert reads[0] == 2  # the first read after 3 steps (then every 3 steps and at each epoch's end), not every step
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["loop"]["stage"] == 1 and ck["loop"]["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
