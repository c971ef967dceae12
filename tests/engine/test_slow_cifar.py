"""Slow: `leannets train` with a DenseNet-BC recipe learns real CIFAR-10 images (../shared/data/cifar10-subset)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leannets.cli import main as cli_main


@pytest.mark.slow
def test_densenet_bc_learns_cifar10_subset(shared_data: Path, tmp_path: Path):
    root = shared_data / "cifar10-subset"
    rc = cli_main(["train", "--recipe", "densenet_cifar10_cpu", "--set", f"data.root={root}",
                   "--set", "train.threads=2", "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["data"]["name"] == "cifar10" and result["params"] > 100_000
    acc = result["final"]["eval_acc1"]
    assert acc > 0.30, f"test accuracy {acc:.3f} after {result['epochs']} epochs (chance is 0.10)"
