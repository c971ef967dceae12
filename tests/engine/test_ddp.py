"""DDP under torchrun: 2 CPU processes (gloo, SyncBN) give the weights of 1 process with the same global batch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml

from leannets.engine.checkpoint import load_checkpoint

RECIPE = {
    "seed": 3,
    "model": {"name": "densenet_bc_cifar_6_6_6", "kwargs": {"growth_rate": 2, "bn_size": 2, "num_init_features": 4},
              "sync_bn": True},
    "data": {"name": "digits", "image_size": 16, "batch_size": 16, "eval_batch_size": 16, "limit_train": 32,
             "limit_eval": 50, "crop_padding": 2, "cutout": 4, "flip": True},
    "optim": {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 2, "threads": 1},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_available() -> bool:
    return dist.is_available() and dist.is_gloo_available()


def _one_and_two_processes(tmp_path: Path, recipe_dict: dict) -> tuple[dict, dict]:
    """Train ``recipe_dict`` in 1 process and in 2 gloo processes (torchrun); their last checkpoints."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    base = ["-m", "leannets.cli", "train", "--recipe", str(recipe), "--quiet", "--no-progress"]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                          f"--master_port={_free_port()}", *base, "--out", str(tmp_path / "ddp")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, *base, "--out", str(tmp_path / "single")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    return load_checkpoint(tmp_path / "single" / "last.pt"), load_checkpoint(tmp_path / "ddp" / "last.pt")


def _worst_weight_gap(a: dict, b: dict) -> float:
    return max((a["model"][k].double() - b["model"][k].double()).abs().max().item()
               for k in a["model"] if a["model"][k].is_floating_point())


@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with gloo is not available")
def test_two_gloo_processes_match_one_process_exactly_in_float64(tmp_path: Path):
    """The logic (sharding, SyncBN sums, gradient averaging, augmentation per sample) is exact: in float64,
    8 steps at lr 0.1 with SyncBN agree to 1e-10; the float32 gap of the next test is rounding."""
    recipe = {**RECIPE, "optim": {**RECIPE["optim"], "lr": 0.1}, "train": {**RECIPE["train"], "epochs": 4,
                                                                          "dtype": "float64"}}
    a, b = _one_and_two_processes(tmp_path, recipe)
    assert a["model"]["fc.weight"].dtype == torch.float64 and b["world_size"] == 2
    assert a["loop"]["global_step"] == b["loop"]["global_step"] == 8
    worst = _worst_weight_gap(a, b)
    assert worst <= 1e-10, f"float64 DDP weights differ from single-process weights by {worst:.3g}"


@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with gloo is not available")
def test_two_gloo_processes_match_one_process(tmp_path: Path):
    a, b = _one_and_two_processes(tmp_path, RECIPE)
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert len(b["rng"]) == 2  # every rank's RNG state is kept for resuming
    worst = _worst_weight_gap(a, b)
    assert worst <= 1e-5, f"DDP weights differ from single-process weights by {worst:.3g}"
    # Sharded evaluation reduces to the single-process numbers (50 images split 25/25).
    for key in ("eval_loss", "eval_acc1", "eval_acc5"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], abs=1e-5)
    # Only rank 0 wrote the run folder: one recipe, one metrics file, one result.
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if not p.name.startswith(".")) == \
        ["last.pt", "metrics.csv", "metrics.jsonl", "recipe.yaml", "result.json"]
