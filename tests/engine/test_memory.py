"""The peak-memory estimate before the first step: it scales with batch and image size, and a run that cannot
fit is refused with one line naming the estimate and what to lower (never killed by the OS)."""
from __future__ import annotations

import pytest
import torch

import leannets.engine.memory as memory
from leannets.cli import main
from leannets.models import create_model


def test_the_estimate_grows_with_the_batch_and_the_image_area_and_leaves_the_rng_alone():
    def build():
        return create_model("resnet20_standard", num_classes=10)

    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    small = memory.estimate_training_bytes(build, (3, 32, 32), 8)
    assert torch.equal(torch.random.get_rng_state(), before)  # the meta build draws no random numbers
    params = sum(p.numel() for p in build().parameters()) * 4
    assert small > memory.PARAMETER_COPIES * params
    big_batch = memory.estimate_training_bytes(build, (3, 32, 32), 16)
    assert big_batch - memory.PARAMETER_COPIES * params == pytest.approx(2 * (small - memory.PARAMETER_COPIES * params))
    at_224 = memory.estimate_training_bytes(build, (3, 224, 224), 8)
    assert at_224 > 40 * (small - memory.PARAMETER_COPIES * params)  # 49× the pixels


def test_a_run_that_cannot_fit_is_refused_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 64 * 2**20)  # a machine with 64 MiB free
    rc = main(["train", "compare_default", "--set", "train.epochs=1", "data.limit_train=32", "--out",
               str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "needs about" in err[0] and "0.1 GiB are available" in err[0] and "lower data.batch_size" in err[0]
    assert not (tmp_path / "run" / "last.pt").exists()
