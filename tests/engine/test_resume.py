"""Kill-and-resume: a CPU run SIGKILLed mid-epoch (twice) and resumed ends bit-identical to an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from leannets.engine import train
from leannets.engine.checkpoint import load_checkpoint

import yaml


def tiny(**sections) -> dict:
    r = {"model": {"name": "densenet_bc_cifar_6_6_6", "kwargs": {}}, "seed": 1,
         "data": {"name": "digits", "image_size": 16, "batch_size": 16, "eval_batch_size": 64, "limit_eval": 64},
         "optim": {"lr": 0.05, "nesterov": True}, "train": {"threads": 1}}
    for k, v in sections.items():
        r[k] = {**r.get(k, {}), **v} if isinstance(v, dict) else v
    return r


def _write(path: Path, recipe: dict) -> str:
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


RESUME_RECIPE = tiny(model={"kwargs": {"growth_rate": 2, "bn_size": 2, "num_init_features": 4, "drop_rate": 0.1}},
                     data={"limit_train": 64, "crop_padding": 2, "cutout": 8, "flip": True},
                     schedule={"name": "cosine", "warmup_epochs": 0.5},
                     train={"epochs": 3, "ema_decay": 0.8, "grad_clip": 1.0},
                     checkpoint={"every_steps": 2, "every": 1})


def _strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "img_per_s")} for r in rows]


def test_sigkill_and_resume_is_bit_identical(tmp_path: Path):
    ref = train(RESUME_RECIPE, out_dir=tmp_path / "ref", verbose=False)
    recipe_file = _write(tmp_path / "r.yaml", RESUME_RECIPE)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "leannets.cli", "train", "--recipe", recipe_file, "--out", str(run), "--quiet",
           "--no-progress"]
    kills = []
    for target_step in (2, 6):  # first inside epoch 1, then inside epoch 2 of the resumed run
        proc = subprocess.Popen(cmd if not kills else cmd[:4] + ["--resume", str(run), "--quiet", "--no-progress"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline, seen = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                stamp = (run / "last.pt").stat().st_mtime_ns
                step = load_checkpoint(run / "last.pt")["loop"]["global_step"] if stamp != seen else -1
                seen = stamp
            except (FileNotFoundError, ValueError):
                step = -1
            if step >= target_step:
                proc.send_signal(signal.SIGKILL)
                kills.append(step)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed: {proc.stderr.read()}"
    assert not (run / "result.json").exists()
    res = train(resume=run, verbose=False)
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(run / "last.pt")
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after kill at steps {kills} + resume"
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    assert _strip_times(a["history"]) == _strip_times(b["history"])
    assert res["final"] == ref["final"] and res["global_step"] == ref["global_step"] == 12
    assert sorted(p.name for p in run.glob("epoch_*.pt")) == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt"]


def test_resume_inside_a_later_stage_matches_uninterrupted(tmp_path: Path, monkeypatch):
    """Crash right after a mid-epoch checkpoint of stage 2 (frozen stage 1 before it), then resume."""
    from leannets.engine import trainer as trainer_mod

    recipe = tiny(model={"kwargs": {"growth_rate": 2, "bn_size": 2, "num_init_features": 4}},
                  data={"limit_train": 48, "crop_padding": 2},
                  train={"epochs": 1}, checkpoint={"every_steps": 1},
                  stages=[{"name": "frozen", "freeze": ["stem", "blocks.0"]},
                          {"name": "joint", "epochs": 2, "optim": {"name": "adam", "lr": 1e-3}}])
    ref = train(recipe, out_dir=tmp_path / "ref", verbose=False)

    original = trainer_mod.Trainer._checkpoint

    def crash_after(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.state.stage == 1 and self.state.global_step == 5:  # stage 2, epoch 1, step 2
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod.Trainer, "_checkpoint", crash_after)
    try:
        train(recipe, out_dir=tmp_path / "run", verbose=False)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(trainer_mod.Trainer, "_checkpoint", original)
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (ck["loop"]["stage"], ck["loop"]["epoch"], ck["loop"]["step"]) == (1, 0, 2)
    res = train(resume=tmp_path / "run", verbose=False)
    a, b = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert [h["stage_name"] for h in res["history"]] == ["frozen", "joint", "joint"]
    assert res["final"] == ref["final"]


def test_epoch_copies_and_best_are_written_before_last(tmp_path: Path, monkeypatch):
    """A kill between two writes must never lose best.pt or an epoch copy: they are written first and last.pt
    last (a kill before last.pt re-runs the step from the previous last.pt and rewrites them)."""
    from leannets.engine import trainer as trainer_mod

    written: list[tuple[str, int]] = []  # (file name, global step it holds), in write order
    save, copy = trainer_mod.save_checkpoint, trainer_mod.copy_checkpoint

    def record(path: Path) -> None:
        written.append((Path(path).name, load_checkpoint(path)["loop"]["global_step"]))

    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda obj, path: (save(obj, path), record(path))[0])
    monkeypatch.setattr(trainer_mod, "copy_checkpoint", lambda src, dst: (copy(src, dst), record(dst))[0])
    recipe = {**RESUME_RECIPE, "data": {**RESUME_RECIPE["data"], "val_fraction": 0.25}}  # best.pt needs a val split
    train(recipe, out_dir=tmp_path / "run", verbose=False)
    copies = [(i, step) for i, (name, step) in enumerate(written) if name.startswith(("epoch_", "best"))]
    assert len([c for c in copies if written[c[0]][0].startswith("epoch_")]) == 3, written
    assert any(written[i][0] == "best.pt" for i, _ in copies), written
    for i, step in copies:
        before = [s for name, s in written[:i] if name == "last.pt"]
        assert not before or before[-1] < step, f"last.pt of step {step} was written before {written[i][0]}"
        assert ("last.pt", step) in written[i + 1:], f"no last.pt of step {step} after {written[i][0]}"
