"""The gpu scale validates without a device: ``--plan`` resolves every run with the speed settings, the same
training path (bf16 autocast, channels_last, data in memory) runs on the CPU, and parallel runs (``--jobs``)
give the results of sequential ones."""
from __future__ import annotations

import math
from collections import Counter

import torch

from leannets.cli import main
from leannets.engine import train
from leannets.engine.recipe import load_recipe
from leannets.reproduce import PAPERS, run_paper
from leannets.reproduce.runner import plan_paper


def test_gpu_plan_trains_the_cifar_experiments_of_every_paper_with_the_speed_settings(tmp_path):
    for paper in PAPERS:
        runs = plan_paper(paper, scale="gpu", data_root=tmp_path)
        assert runs, paper
        for r in runs:
            o = r["overrides"]
            assert o["data.name"] == "cifar10_jpeg" and o["data.root"] == f"{tmp_path}/cifar10-jpeg", r
            assert o["train.amp"] == "bf16" and o["train.channels_last"] is True and o["data.in_memory"] is True, r
            assert "data.limit_eval" not in o and "data.limit_train" not in o, r  # the whole train and test sets
            assert "train.device" not in o, r  # auto: the GPU when there is one
        assert set(Counter((r["experiment"], r["row"]) for r in runs).values()) == {3}, paper  # 3 seeds per row


def test_gpu_plan_via_cli_names_the_runs_and_the_device(tmp_path, capsys):
    assert main(["reproduce", "all", "--scale", "gpu", "--plan", "--data-root", str(tmp_path),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "train.amp=bf16" in out and "train.device=cpu" in out and "resnet20_multiception" in out


def test_gpu_training_path_runs_on_cpu_with_bf16_autocast(tmp_path, monkeypatch):
    run = plan_paper("multiception", ["table1"], scale="gpu", data_root=tmp_path, device="cpu")[0]
    smoke = {**run["overrides"], "data.name": "digits", "data.root": None, "data.limit_train": 64,
             "data.limit_eval": 32, "data.batch_size": 16, "train.epochs": 1, "train.max_steps_per_epoch": 2}
    used: list[tuple] = []
    real_autocast = torch.autocast

    def recording_autocast(device_type: str, dtype: torch.dtype | None = None, **kwargs):
        used.append((device_type, dtype))
        return real_autocast(device_type, dtype=dtype, **kwargs)

    monkeypatch.setattr(torch, "autocast", recording_autocast)
    result = train(load_recipe(run["recipe"], smoke), out_dir=tmp_path / "run", verbose=False, progress=False)
    assert ("cpu", torch.bfloat16) in used
    assert math.isfinite(result["final"]["eval_loss"]) and 0.0 <= result["final"]["eval_acc1"] <= 1.0


def test_parallel_runs_give_the_sequential_results(tmp_path):
    def metrics(doc: dict) -> dict:
        return {r["key"]: {k: v for k, v in r["metrics"].items() if not k.endswith("_s")}
                for e in doc["experiments"] for r in e["rows"]}

    seq = run_paper("multiception", ["table1"], out_dir=tmp_path / "seq", log=lambda m: None, threads=1)
    logs: list[str] = []
    par = run_paper("multiception", ["table1"], out_dir=tmp_path / "par", log=logs.append, jobs=2, threads=1)
    assert any("4 runs, 2 at a time" in m for m in logs)
    assert sum("reusing finished run" in m for m in logs) == 4
    assert metrics(par) == metrics(seq)


def test_parallel_runs_read_each_data_set_once_before_the_jobs_start(tmp_path, monkeypatch):
    from leannets.reproduce import runner

    events: list[str] = []
    from leannets.reproduce import context

    real_create_task = context.create_task

    def recording_create_task(cfg):
        events.append(f"read {cfg.data.name}")
        return real_create_task(cfg)

    class NoPool:  # records that the jobs start after the data was read, and trains nothing
        def __init__(self, *args, **kwargs):
            events.append("pool")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            class Done:
                def result(self):
                    return args[2]
            return Done()

    monkeypatch.setattr(context, "create_task", recording_create_task)
    monkeypatch.setattr(runner, "ProcessPoolExecutor", NoPool)
    paper = runner.get_paper("multiception")
    ctx = runner.Context(paper=paper, scale="smoke", seed=0, out_dir=tmp_path, data_root=None,
                         reference=runner.load_reference("multiception"), log=lambda m: None, seeds=2)
    assert runner.train_parallel(ctx, paper.select(["table1"]), jobs=2) == 8  # 4 conv types × 2 seeds
    assert events == ["read digits", "pool"]  # one data set, read once for the 8 runs, before the jobs start


def test_results_name_the_gpu_only_when_the_runs_train_on_one(monkeypatch):
    from leannets.reproduce.runner import _accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"GPU{i}")
    assert _accelerator("gpu", None) == "GPU0" and _accelerator("paper", "auto") == "GPU0"
    assert _accelerator("gpu", "cuda:1") == "GPU1"
    assert _accelerator("gpu", "cpu") is None and _accelerator("cpu", None) is None and _accelerator("smoke", None) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _accelerator("gpu", None) is None
