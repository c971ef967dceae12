"""A newcomer's bad input, scripted: every case gets one clear line on stderr and exit code 2 (or, for a closed
pipe, a quiet exit), never a traceback — on the README's own-data layout."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leannets.cli import main

TRAIN = ["train", "--recipe", "densenet_cifar10_cpu", "--set", "data.name=imagefolder", "train.epochs=1",
         "train.max_steps_per_epoch=2", "data.batch_size=4", "train.progress=False"]


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k, name in enumerate(("circle", "square", "stripes")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[..., k] += 150
                Image.fromarray(img).save(root / split / name / f"{i}.jpg")
    return root


def _one_line_rc2(capsys, argv: list[str], expect: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("note:", "decod", "data."))]
    assert rc == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith(f"leannets {argv[0]}: error: "), err
    assert "Traceback" not in err and expect in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = _folder(tmp_path_factory.mktemp("data") / "MYDATA")
    run = tmp_path_factory.mktemp("run")
    assert main(TRAIN + [f"data.root={root}", "--out", str(run)]) == 0
    return root, run / "last.pt"


def test_every_bad_input_is_one_line_and_rc_2(trained, tmp_path, capsys):
    root, ckpt = trained
    capsys.readouterr()
    # an empty class folder is an error naming it
    bad = _folder(tmp_path / "EMPTY")
    (bad / "train" / "ghost").mkdir()
    _one_line_rc2(capsys, TRAIN + [f"data.root={bad}", "--out", str(tmp_path / "r1")], "ghost")
    # a truncated JPEG in a streamed ImageFolder: one line naming the file, before or during training
    broken = _folder(tmp_path / "BROKEN")
    jpg = broken / "train" / "square" / "1.jpg"
    jpg.write_bytes(jpg.read_bytes()[:60])
    _one_line_rc2(capsys, TRAIN + [f"data.root={broken}", "data.in_memory=false", "data.num_workers=0",
                                   "--out", str(tmp_path / "r2")], "1.jpg")
    # files that are not checkpoints
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    _one_line_rc2(capsys, ["eval", str(text)], "is not a checkpoint")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    _one_line_rc2(capsys, ["eval", str(noise)], "is not a checkpoint")
    # an unknown task lists the known ones
    line = _one_line_rc2(capsys, ["list", "--task", "nosuch"], "nosuch")
    assert "classification" in line
    # a mistyped path says "does not exist"
    _one_line_rc2(capsys, ["cam", str(ckpt), str(tmp_path / "no_such_image.png"), "--out", str(tmp_path / "cam")],
                  "does not exist")
    _one_line_rc2(capsys, ["eval", str(tmp_path / "no_such.pt")], "does not exist")


def test_top5_is_not_reported_for_three_classes(trained, capsys):
    _, ckpt = trained
    capsys.readouterr()
    assert main(["eval", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "acc1" in out and "acc5" not in out and "top-5" not in out


def test_a_closed_pipe_exits_quietly():
    proc = subprocess.run(f"{sys.executable} -m leannets.cli list | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() and "Traceback" not in proc.stderr


def test_a_224_folder_on_a_cifar_model_runs_natively_or_is_refused_never_killed(trained, tmp_path, monkeypatch,
                                                                                 capsys):
    """The reported OOM kill: 224² images on a CIFAR-style net. Unset, the model's native 32² is used (the
    fixture's run); forced to 224² on a machine without the memory, the run is refused before the first step."""
    from leannets.engine import memory

    root, _ = trained
    capsys.readouterr()
    monkeypatch.setattr(memory, "available_bytes", lambda device: 4 * 2**30)  # a 4 GiB machine
    line = _one_line_rc2(capsys, TRAIN + [f"data.root={root}", "data.input_size=224", "data.batch_size=128",
                                          "--out", str(tmp_path / "big")], "needs about")
    assert "4.0 GiB are available" in line and "data.batch_size" in line and "data.input_size" in line
    assert not (tmp_path / "big" / "last.pt").exists()
