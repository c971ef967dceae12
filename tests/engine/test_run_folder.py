"""Nothing written is silently mixed: a run folder holds one run, a second writer is refused while one runs,
and a resumed run continues its own recipe."""
from __future__ import annotations

import os

import pytest

from leannets._io import FolderBusyError, folder_lock
from leannets.cli import main
from leannets.engine import train
from leannets.engine.checkpoint import load_checkpoint

TINY = {"model": {"name": "resnet20_standard"}, "seed": 1,
        "data": {"name": "digits", "limit_train": 32, "limit_eval": 16, "batch_size": 16},
        "train": {"epochs": 1, "device": "cpu", "progress": False}}


def test_a_fresh_run_refuses_a_folder_that_holds_one_and_overwrite_replaces_it(tmp_path):
    run = tmp_path / "run"
    train(TINY, out_dir=run, verbose=False)
    with pytest.raises(ValueError, match=r"already holds a run \(last\.pt.*--resume .*--overwrite"):
        train({**TINY, "seed": 2}, out_dir=run, verbose=False)
    assert load_checkpoint(run / "last.pt")["recipe"]["seed"] == 1  # untouched
    train({**TINY, "seed": 2}, out_dir=run, verbose=False, overwrite=True)
    assert load_checkpoint(run / "last.pt")["recipe"]["seed"] == 2 and not (run / ".lock").exists()


def test_a_second_writer_is_refused_while_a_run_holds_the_folder(tmp_path):
    run = tmp_path / "run"
    with folder_lock(run):
        with pytest.raises(FolderBusyError, match=r"run folder .* is in use by another process"):
            train(TINY, out_dir=run, verbose=False)
    # a lock left by a process that is gone (killed) is taken over
    (run / ".lock").write_text(f"{os.uname().nodename} 999999999")
    assert train(TINY, out_dir=run, verbose=False)["final"]


def test_resume_refuses_overrides_that_change_what_is_trained(tmp_path, capsys):
    run = tmp_path / "run"
    train(TINY, out_dir=run, verbose=False)
    recipe_before = (run / "recipe.yaml").read_text()
    assert main(["train", "--resume", str(run), "--set", "train.epochs=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs" in err and "start a new run" in err and len(err.strip().splitlines()) == 1
    assert (run / "recipe.yaml").read_text() == recipe_before  # not rewritten to say 3 epochs
    assert main(["train", "multiception_cifar10_resnet20_standard", "--out", str(run), "--set", "seed=3",
                 "data.root=x"]) == 2
    assert "already holds a run" in capsys.readouterr().err
