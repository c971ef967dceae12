"""The benchmark scripts' shared verdict rule, and one script run end to end in its smoke mode."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("goal,ci,verdict", [
    ("<= 0.8", (0.5, 0.7), "met"), ("<= 0.8", (0.85, 0.9), "missed"), ("<= 0.8", (0.7, 0.9), "not distinguishable"),
    (">= 1.5", (1.6, 2.0), "met"), (">= 1.5", (1.0, 1.4), "missed"), (">= 1.5", (1.4, 1.6), "not distinguishable"),
    ("", (0.1, 0.2), "—"),
])
def test_target_verdict_follows_the_interval(goal: str, ci: tuple[float, float], verdict: str) -> None:
    common = _load("_common")
    t = common.Target("area", "a", "b", "time", sum(ci) / 2, ci, goal, "settings")
    assert t.verdict == verdict


def test_exact_figures_without_interval_are_judged_on_the_value() -> None:
    common = _load("_common")
    assert common.Target("m", "a", "b", "memory", 0.37, None, "<= 0.5", "", exact=True).verdict == "met"
    assert common.Target("m", "a", "b", "memory", 0.6, None, "<= 0.5", "", exact=True).verdict == "missed"
    assert common.Target("t", "a", "b", "time", 0.6, None, "<= 0.8", "").verdict == "no CI (too few rounds)"


def test_multiception_benchmark_smoke_run_writes_targets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bench = _load("multiception_speed")
    path = tmp_path / "mc.json"
    assert bench.main(["--quick", "--rounds", "6", "--threads", "1", "--train-batch", "4", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| Multiception layer, fwd+bwd |" in out and "| ResNet-20 training throughput |" in out
    doc = json.loads(path.read_text())
    assert doc["machine"]["torch"] and len(doc["targets"]) == 10  # 5 rows in fp32 and 5 under bf16 autocast
    assert [t["precision"] for t in doc["targets"]] == ["fp32"] * 5 + ["bf16"] * 5
    for t in doc["targets"]:
        lo, hi = t["ci"]
        assert lo <= t["ratio"] <= hi and t["goal"] and t["verdict"] in ("met", "missed", "not distinguishable")


def test_pointwise_tuning_benchmark_times_the_prepared_model_against_tune_false(tmp_path: Path) -> None:
    bench = _load("pointwise_tuning")
    path = tmp_path / "pw.json"
    argv = ["--models", "densenet_bc_cifar_6_6_6", "--rounds", "6", "--threads", "1", "--precisions", "fp32",
            "--json", str(path)]
    assert bench.main(argv) == 0
    (t,) = json.loads(path.read_text())["targets"]
    assert t["what"] == "densenet_bc_cifar_6_6_6 prepared" and t["reference"].endswith("tune=False")
    assert t["goal"] == "<= 1.0" and "1×1 convs switched" in t["settings"] and len(t["extra"]["ms"]) == 2


def _record(folder: Path, runs: Path, model: str, seed: int, epochs: int, amp: str = "fp32") -> None:
    run_id = f"{model}-{seed}{epochs}{amp}"
    (runs / run_id).mkdir(parents=True)
    (runs / run_id / "last.pt").write_bytes(b"")
    rec = {"run_id": run_id, "seed": seed, "machine": {"amp": amp}, "result": {"model": model},
           "recipe": {"data": {"name": "cifar10_jpeg", "limit_train": None}, "train": {"epochs": epochs}}}
    (folder / f"{run_id}.json").write_text(json.dumps(rec), encoding="utf-8")


def test_int8_benchmark_pairs_checkpoints_by_seed_within_one_training_length(tmp_path: Path) -> None:
    int8 = _load("int8_deploy")
    records, runs = tmp_path / "records", tmp_path / "runs"
    records.mkdir()
    for seed in (0, 1, 2):
        _record(records, runs, "resnet20_standard", seed, 5)
    for seed in (1, 2, 3):
        _record(records, runs, "resnet20_multiception", seed, 5)
    _record(records, runs, "resnet20_multiception", 0, 8)  # another length: not a partner of seed 0
    _record(records, runs, "resnet20_standard", 0, 5, amp="bf16")  # another precision
    pairs = int8.find_pairs(records, runs, "resnet20_standard", "resnet20_multiception")
    assert [(s, a.parent.name, b.parent.name) for s, a, b in pairs] == [
        (1, "resnet20_standard-15fp32", "resnet20_multiception-15fp32"),
        (2, "resnet20_standard-25fp32", "resnet20_multiception-25fp32")]
    assert int8.find_pairs(records, runs, "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4") == []


def test_int8_benchmark_table_states_missing_pairs_and_intervals() -> None:
    int8 = _load("int8_deploy")
    rows = [{"pair": "P", "a": "m_a", "b": "m_b", "seeds": [0, 1], "a_fp32": [70.0, 72.0], "a_int8": [69.0, 71.5],
             "a_quant": "", "b_fp32": [71.0, 73.0], "b_int8": [70.0, 72.0], "b_quant": "",
             "a_drop": {"mean": -0.75, "low": -4.0, "high": 2.5}, "b_drop": {"mean": -1.0, "low": -1.0, "high": -1.0}},
            {"pair": "Q", "a": "q_a", "b": "q_b", "seeds": [], "missing": "no trained checkpoints"}]
    text = int8.markdown(rows, "settings")
    assert "| `m_a` | reproduction runs | 2 | 71.00 (" in text and "-0.75 (-4.00 to +2.50)" in text
    assert "not measured" in text and "q_a / q_b | — | — | no trained checkpoints" in text


def test_int8_benchmark_takes_a_pair_no_reproduction_trained_from_a_compare_run(tmp_path: Path) -> None:
    int8 = _load("int8_deploy")
    folder = tmp_path / "cmp"
    per_seed = {}
    for name in ("densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4"):
        for seed in (0, 1):
            run = folder / "runs" / f"{name}-s{seed}"
            run.mkdir(parents=True)
            if (name, seed) != ("dxnet_cifar_4_4_4", 1):  # no checkpoint: seed 1 does not pair
                (run / "last.pt").write_bytes(b"")
            per_seed.setdefault(name, []).append({"seed": seed, "run_dir": f"/elsewhere/runs/{name}-s{seed}"})
    (folder / "results.json").write_text(json.dumps({"models": [{"name": n, "per_seed": p} for n, p in
                                                                per_seed.items()]}), encoding="utf-8")
    pairs = int8.compare_pairs([tmp_path / "missing", folder], "densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4")
    assert [(s, a.parent.name, b.parent.name) for s, a, b in pairs] == [
        (0, "densenet_bc_cifar_6_6_6-s0", "dxnet_cifar_4_4_4-s0")]
    assert int8.compare_pairs([folder], "resnet20_standard", "resnet20_multiception") == []


def test_committed_readmes_match_the_committed_benchmark_json() -> None:
    """benchmarks/README.md's measured section and the project README's summary are what make_readme renders
    from benchmarks/results/*.json: no measured figure is typed by hand."""
    make = _load("make_readme")
    docs = make.load()
    for path, section in ((make.BENCH_README, make.bench_section(docs)), (make.ROOT_README, make.summary_section(docs))):
        text = path.read_text(encoding="utf-8")
        assert make.render(text, section, path) == text, f"{path} is out of date: run python benchmarks/make_readme.py"


def test_readme_sections_render_every_row_with_its_precision_and_verdict(tmp_path: Path) -> None:
    make = _load("make_readme")
    target = {"area": "ResNet-20 training throughput", "what": "resnet20_multiception", "reference": "resnet20_standard",
              "quantity": "throughput", "ratio": 0.9, "ci": [0.85, 0.95], "goal": ">= 0.8", "verdict": "met",
              "settings": "batch 128", "precision": "bf16"}
    layer = dict(target, area="Multiception layer, inference", verdict="missed", precision="fp32")
    doc = {"title": "Multiception", "command": "python benchmarks/multiception_speed.py --json x", "date": "2026-12-07",
           "machine": {"cpu": "CPU", "cpus": 2, "torch": "2.13", "python": "3.11"}, "ratio_note": "Ratios: ...",
           "targets": [target, layer], "notes": [{"title": "breakdown", "lines": ["| a |", "|---|"]}]}
    (tmp_path / "multiception_speed.json").write_text(json.dumps(doc), encoding="utf-8")
    docs = make.load(tmp_path)
    bench = make.bench_section(docs)
    assert "| ResNet-20 training throughput | resnet20_multiception | resnet20_standard | bf16 | throughput ×0.900 " \
           "(0.850–0.950) | >= 0.8 | met | batch 128 |" in bench
    assert "#### breakdown" in bench and "Not measured yet (no `benchmarks/results/wae_speedup.json`)" in bench
    summary = make.summary_section(docs)
    assert "| ResNet-20 training throughput: resnet20_multiception vs resnet20_standard | bf16 |" in summary
    assert "- Multiception layer, inference (fp32): 1 missed" in summary and "2026-12-07" in summary
    with pytest.raises(ValueError, match="README.md: no generated section between the markers"):
        make.render("no markers here", bench, Path("README.md"))


def test_allocator_benchmark_runs_one_process_per_setting_and_counts_faults(tmp_path: Path) -> None:
    bench = _load("allocator")
    path = tmp_path / "alloc.json"
    argv = ["--models", "resnet20_standard", "--rounds", "1", "--steps", "1", "--threads", "1", "--json", str(path)]
    assert bench.main(argv) == 0
    (target,) = json.loads(path.read_text())["targets"]
    assert target["what"] == "resnet20_standard keep" and target["reference"] == "resnet20_standard system"
    faults = target["extra"]["faults_per_step"]
    assert set(faults) == {"system", "keep"} and min(faults.values()) >= 0
    assert target["ratio"] > 0 and target["ci"] is None
