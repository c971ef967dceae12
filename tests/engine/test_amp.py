"""train.amp=auto on CPU: bf16 only on native-bf16 CPUs and only for a model it makes faster; the choice is kept."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from leannets.engine import amp as amp_mod
from leannets.engine import train
from leannets.engine.recipe import load_recipe
from leannets.engine.amp import bf16_step_gain, fixed_amp, native_bf16_cpu

CPU = torch.device("cpu")
TINY = {"model": {"name": "resnet20_standard"}, "data": {"name": "digits", "limit_train": 64, "limit_eval": 32,
                                                          "batch_size": 16},
        "train": {"epochs": 1, "device": "cpu", "progress": False}}


def test_fixed_choices_and_env_override(monkeypatch):
    assert fixed_amp("off", CPU) == "off" and fixed_amp("bf16", CPU) == "bf16"
    assert fixed_amp("fp16", CPU) == "off"  # no fp16 autocast worth using on CPU
    monkeypatch.setenv("LEANNETS_CPU_BF16", "0")
    assert not native_bf16_cpu() and fixed_amp("auto", CPU) == "off"
    monkeypatch.setenv("LEANNETS_CPU_BF16", "1")
    assert native_bf16_cpu() and fixed_amp("auto", CPU) is None  # must measure


def test_step_gain_leaves_model_and_rng_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 8, 8)
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    gain = bf16_step_gain(model, x)
    assert gain > 0 and torch.equal(torch.rand(1), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("gain, expected", [(2.0, "bf16"), (0.5, "off")])
def test_auto_follows_the_measured_gain_and_resume_keeps_it(tmp_path, monkeypatch, gain, expected):
    monkeypatch.setenv("LEANNETS_CPU_BF16", "1")
    calls = []
    monkeypatch.setattr("leannets.engine.trainer.bf16_step_gain", lambda model, x: calls.append(x.shape) or gain)
    result = train(dict(TINY), out_dir=tmp_path / "run")
    assert result["amp"] == expected and len(calls) == 1 and calls[0][0] == 16
    # a resumed run does not measure again: the choice comes back from the checkpoint
    from leannets.engine.checkpoint import load_checkpoint
    from leannets.engine.trainer import Trainer

    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["loop"]["amp"] == {"0": expected}
    trainer = Trainer(load_recipe(ckpt["recipe"]), None, resume_ckpt=ckpt, verbose=False)
    trainer.build_model()
    trainer._restore(ckpt)
    assert trainer.state.amp == {"0": expected}


def test_auto_without_native_bf16_trains_fp32_without_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr("leannets.engine.trainer.bf16_step_gain", lambda *a: pytest.fail("measured"))
    assert train(dict(TINY), out_dir=tmp_path / "run")["amp"] == "off"
    assert train({**TINY, "train": {**TINY["train"], "amp": "bf16"}}, out_dir=tmp_path / "b")["amp"] == "bf16"


def test_cpuinfo_flags_are_read(monkeypatch, tmp_path):
    monkeypatch.delenv("LEANNETS_CPU_BF16", raising=False)
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
    amp_mod._cpuinfo_bf16.cache_clear()
    monkeypatch.setattr(amp_mod, "Path", lambda p: fake)
    try:
        assert not native_bf16_cpu()
        fake.write_text("flags : fpu avx512f avx512_bf16\n")
        amp_mod._cpuinfo_bf16.cache_clear()
        assert native_bf16_cpu()
    finally:
        amp_mod._cpuinfo_bf16.cache_clear()
