"""``leannets compare``: trains, evaluates and profiles models under one recipe; writes report, JSON and plot."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from leannets.analysis.profile import count_params
from leannets.cli import main as cli_main
from leannets.config import DEFAULT_COMPARE_MODELS
from leannets.models import create_model, model_info


def test_default_models_are_a_densenet_baseline_and_a_dxnet():
    assert len(DEFAULT_COMPARE_MODELS) == 2
    base, other = (model_info(m) for m in DEFAULT_COMPARE_MODELS)
    assert "densenet" in base.tags and "dxnet" in other.tags


def _run_small_compare(out: Path, kwargs: str) -> int:
    return cli_main(["compare", "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4", "--epochs", "1", "--out", str(out),
                     "--set", kwargs, "--set", "data.image_size=16", "--set", "data.limit_train=32",
                     "--set", "data.limit_eval=40", "--set", "data.batch_size=16", "--threads", "1",
                     "--seeds", "2", "--no-progress", "--quiet"])


def test_compare_cli_writes_report_results_and_plot(tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    kwargs = "model.kwargs={growth_rate: 2, bn_size: 2}"
    old_umask = os.umask(0o022)
    try:
        rc = _run_small_compare(out, kwargs)
    finally:
        os.umask(old_umask)
    assert rc == 0
    for name in ("results.json", "report.md", "compare.png"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    table = capsys.readouterr().out
    assert "densenet_bc_cifar_6_6_6" in table and "dxnet_cifar_4_4_4" in table and "MACs" in table
    res = json.loads((out / "results.json").read_text())
    assert res["data"] == "digits" and res["metric"] == "acc1" and res["baseline"] == "densenet_bc_cifar_6_6_6"
    assert res["seeds"] == [0, 1] and res["eval_samples"] == 40
    for row in res["models"]:
        model = create_model(row["name"], growth_rate=2, bn_size=2)
        assert row["params"] == count_params(model)[0]  # profiled the trained architecture, not the default
        assert row["input_size"] == [3, 16, 16] and row["macs"] > 0 and row["latency_ms"] > 0
        assert row["latency_ci_ms"][0] <= row["latency_ms"] <= row["latency_ci_ms"][1]
        per_seed = [s["metric"] for s in row["per_seed"]]
        assert [s["seed"] for s in row["per_seed"]] == [0, 1] and all(0.0 <= v <= 1.0 for v in per_seed)
        ci = row["metric_ci"]
        assert ci["n"] == 2 and ci["mean"] == row["metric"] == sum(per_seed) / 2 and ci["low"] <= ci["mean"] <= ci["high"]
        assert all(Path(s["run_dir"], "last.pt").is_file() for s in row["per_seed"]) and row["epochs"] == 1
    base, other = res["models"]
    diffs = [a["metric"] - b["metric"] for a, b in zip(other["per_seed"], base["per_seed"])]
    assert other["diff_to_baseline"]["mean"] == sum(diffs) / 2 and other["diff_to_baseline"]["n"] == 2
    assert "diff_to_baseline" not in base
    assert base["latency_ratio"] is None and other["latency_ratio_ci"][0] <= other["latency_ratio"] <= \
        other["latency_ratio_ci"][1]
    assert res["latency"]["rounds"] >= 30 and res["latency"]["backend"] == "channels_last"
    report = (out / "report.md").read_text()
    assert "Relative to the baseline `densenet_bc_cifar_6_6_6`" in report and "compare.png" in report
    assert "latency ×" in report and "(95% CI " in report and "interleaved rounds" in report
    assert "mean ± 95% CI (2 seeds, 40 images)" in report and "(positive: `dxnet_cifar_4_4_4` better)" in report
    verdict = "not distinguishable at this budget" if other["diff_to_baseline"]["low"] <= 0 <= \
        other["diff_to_baseline"]["high"] else "(the interval excludes 0)"
    assert verdict in report
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # run again into the same folder: the finished runs of the same recipe are reused, not mixed or refused
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/last.pt")}
    assert _run_small_compare(out, kwargs) == 0 and len(stamps) == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/last.pt")}
    assert json.loads((out / "results.json").read_text())["models"][1]["per_seed"] == other["per_seed"]


def test_compare_rejects_unknown_models_and_bad_epochs(tmp_path: Path, capsys):
    assert cli_main(["compare", "densenet_bc_cifar_6_6_7", "--out", str(tmp_path)]) == 2
    assert "unknown model 'densenet_bc_cifar_6_6_7'" in capsys.readouterr().err
    assert cli_main(["compare", "densenet_bc_cifar_6_6_6", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert cli_main(["compare", "densenet_bc_cifar_6_6_6", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "results.json").exists()


def test_another_dataset_starts_from_its_own_data_defaults_keeping_the_batch_sizes():
    """The default recipe's digits options (image_size, no flip, 2-pixel crops) do not follow ``--data`` to
    another dataset (image_size would even be an unknown key there); an option the user sets still applies,
    and one the dataset does not have is still an error."""
    from leannets.analysis.compare import _base_recipe

    digits = _base_recipe(None, {}, None)
    cifar = _base_recipe(None, {"data.name": "cifar10_jpeg", "data.crop_padding": 3}, None)
    assert digits.data.name == "digits" and not digits.data.flip and digits.data.crop_padding == 2
    assert cifar.data.name == "cifar10_jpeg" and cifar.data.flip and cifar.data.crop_padding == 3
    assert cifar.data.batch_size == digits.data.batch_size == 64 and cifar.optim.lr == digits.optim.lr
    with pytest.raises(ValueError, match="image_size"):
        _base_recipe(None, {"data.name": "cifar10_jpeg", "data.image_size": 16}, None)
