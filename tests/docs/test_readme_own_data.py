"""The README's "Train on your own images" commands run as written on a small 3-class folder of 32×32 JPEGs:
train (at the model's native size), evaluate, export to ONNX and predict with the checkpoint and in onnxruntime."""
from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leannets.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _own_data_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Train on your own images"):]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("leannets ")]


def _make_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for k, name in enumerate(("circle", "square", "stripes")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[..., k] += 150  # a class-coloured tint: learnable in a few steps
                Image.fromarray(img).save(folder / f"{i}.jpg")


def test_the_own_data_commands_run_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    commands = _own_data_commands()
    assert [c.split()[1] for c in commands] == ["train", "eval", "export", "predict", "predict"]
    _make_folder(tmp_path / "MYDATA")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = []
        for word in shlex.split(command)[1:]:
            args += sorted(glob.glob(word)) if "*" in word else [word]  # the shell's glob
        assert main(args) == 0, command
    out = capsys.readouterr()
    assert "native input size 32×32" in out.err
    assert (tmp_path / "runs" / "mine" / "last.pt").is_file() and (tmp_path / "model.onnx").stat().st_size > 1000
    assert sum(name in out.out for name in ("circle", "square", "stripes")) == 3  # predictions name the classes
    first = [line.split()[1] for line in out.out.splitlines() if line.strip().startswith("1. ")]
    n = len(first) // 2
    assert n == 9 and first[:n] == first[n:]  # onnxruntime gives the checkpoint's top-1 for all 9 images
