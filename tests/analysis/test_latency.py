"""The latency harness: preparation, backends, interleaving and the statistics of ratios."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import leannets
from leannets.analysis import latency
from leannets.analysis.latency import (BACKENDS, build_call, measure_latency, prepare_for_inference, summarize_rounds,
                                       time_interleaved)
from leannets.analysis.statistics import median_ci


def _bn_net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1),
                        nn.BatchNorm2d(4)).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_median_ci_uses_order_statistics() -> None:
    med, lo, hi = median_ci(list(range(30)))
    assert (med, lo, hi) == (14.5, 9.0, 20.0)  # ranks 10 and 21 of 30: the textbook 95% interval
    assert all(math.isnan(v) for v in median_ci([1.0, 2.0, 3.0, 4.0, 5.0])[1:])  # n < 6: no 95% interval
    with pytest.raises(ValueError):
        median_ci([])


def test_ratios_come_from_per_round_pairs() -> None:
    """A shared per-round disturbance cancels in the ratio: B is exactly twice A in every round."""
    a = [1.0 + (5.0 if r % 7 == 0 else 0.1 * r) for r in range(30)]
    b = [2.0 * v for v in a]
    first, second = summarize_rounds({"a": a, "b": b})
    assert first.ratio_to_first is None and second.ratio_to_first == pytest.approx(2.0)
    assert second.ratio_ci == pytest.approx((2.0, 2.0))
    assert second.speedup_vs_first()[0] == pytest.approx(0.5)
    assert first.latency_ci_ms[0] <= first.latency_ms <= first.latency_ci_ms[1]


def test_rounds_alternate_order_and_take_one_sample_each() -> None:
    order: list[str] = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    samples, inner = time_interleaved(calls, rounds=4, warmup=0, min_sample_ms=0.0)
    assert inner == {"a": 1, "b": 1} and all(len(v) == 4 for v in samples.values())
    assert order[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after one calibration call each
    with pytest.raises(ValueError, match="rounds"):
        time_interleaved(calls, rounds=0)


def test_prepare_for_inference_folds_and_keeps_the_function() -> None:
    net = _bn_net()
    x = torch.randn(2, 3, 9, 9)
    prepared = prepare_for_inference(net, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the caller's model is untouched
    assert not any(p.requires_grad for p in prepared.parameters()) and not prepared.training
    assert prepared[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x.contiguous(memory_format=torch.channels_last)), net(x), rtol=1e-4,
                                   atol=1e-5)
    assert leannets.prepare_for_inference is prepare_for_inference


@pytest.mark.parametrize("backend", ["eager", "channels_last", "onnxruntime"])
def test_backends_run_the_same_model(backend: str) -> None:
    pytest.importorskip("onnxruntime")
    net = _bn_net()
    x = torch.randn(1, 3, 9, 9)
    out = build_call(net, x, backend, threads=1)()
    out = torch.as_tensor(out[0]) if isinstance(out, list) else out
    with torch.no_grad():
        torch.testing.assert_close(out, net(x), rtol=1e-4, atol=1e-5)


def test_bf16_backend_runs_the_model_with_bf16_weights_and_input() -> None:
    """The exact bf16 deployment path converts the folded weights once (prepare_for_inference(dtype=...,
    precision="exact")) and feeds a bf16 input; it stays within bf16 accuracy of float32 (stated tolerance: 2% of
    the largest output)."""
    net = _bn_net()
    x = torch.randn(1, 3, 9, 9)
    prepared = prepare_for_inference(net, x, dtype=torch.bfloat16, precision="exact")
    assert all(p.dtype == torch.bfloat16 for p in prepared.parameters()) and prepared.compute_dtype == torch.bfloat16
    assert next(net.parameters()).dtype == torch.float32  # the caller's model is untouched
    call = build_call(net, x, "bf16-exact", threads=1)
    out = call()
    assert out.dtype == torch.bfloat16 and call.compute_dtype == "bfloat16"
    with torch.no_grad():
        want = net(x)
    assert (out.float() - want).abs().max() <= 0.02 * want.abs().max()


def _timed_as(monkeypatch: pytest.MonkeyPatch, faster: str) -> None:
    """Make the precision timing of prepare_for_inference read ``faster`` as the faster candidate."""
    def fake(calls: dict, rounds: int, **kw: object) -> tuple[dict, dict]:
        for fn in calls.values():
            fn()
        return {k: [1.0 if k == faster else 2.0] * rounds for k in calls}, {k: 1 for k in calls}
    monkeypatch.setattr(latency, "time_interleaved", fake)
    monkeypatch.setattr(latency, "_MODEL_CHOICES", {})


@pytest.mark.parametrize("faster", ["low", "float32"])
def test_bf16_prepare_computes_in_the_faster_precision(monkeypatch: pytest.MonkeyPatch, faster: str) -> None:
    """precision="fastest" (the default) keeps bf16 in and out and computes in whichever dtype was timed faster;
    float32 computing gives the float32 model's result rounded once to bf16."""
    _timed_as(monkeypatch, faster)
    net = _bn_net()
    x = torch.randn(1, 3, 9, 9)
    prepared = prepare_for_inference(net, x, dtype=torch.bfloat16, tune=True)
    xb = x.bfloat16().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out, want = prepared(xb), prepare_for_inference(net, x)(xb.float())
    assert out.dtype == torch.bfloat16
    params = {p.dtype for p in prepared.parameters()}
    if faster == "float32":
        assert prepared.compute_dtype == torch.float32 and params == {torch.float32}
        torch.testing.assert_close(out, want.bfloat16(), rtol=0, atol=0)
    else:
        assert prepared.compute_dtype == torch.bfloat16 and params == {torch.bfloat16}
        assert (out.float() - want).abs().max() <= 0.02 * want.abs().max()
    assert not prepared.training and next(net.parameters()).dtype == torch.float32


def test_bf16_prepare_needs_a_probe_to_choose_and_rejects_unknown_precisions(monkeypatch: pytest.MonkeyPatch) -> None:
    _timed_as(monkeypatch, "float32")
    net = _bn_net()  # no pretrained_cfg: without an example there is nothing to time on, so it computes in bf16
    assert prepare_for_inference(net, dtype=torch.bfloat16).compute_dtype == torch.bfloat16
    assert prepare_for_inference(net, torch.randn(1, 3, 9, 9), dtype=torch.bfloat16,
                                 tune=False).compute_dtype == torch.bfloat16
    assert prepare_for_inference(net, torch.randn(1, 3, 9, 9)).compute_dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of fastest, exact"):
        prepare_for_inference(net, precision="fast")


@pytest.mark.slow
def test_compiled_backend_runs_the_same_model() -> None:
    net = _bn_net()
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(build_call(net, x, "compiled", threads=1)(), net(x), rtol=1e-4, atol=1e-5)


def test_measure_latency_reports_settings_and_rejects_unknown_backends() -> None:
    models = {"small": nn.Conv2d(3, 4, 1), "large": nn.Conv2d(3, 64, 5, padding=2)}
    report = measure_latency(models, (3, 24, 24), rounds=6, threads=1, backend="eager", min_sample_ms=1.0)
    assert [r.name for r in report.results] == ["small", "large"] and report.threads == 1
    assert "backend eager, 1 CPU threads, batch 1" in report.settings and "6 interleaved rounds" in report.settings
    assert report.result("large").ratio_to_first > 1.0  # 4·16·25 times the MACs
    assert "samples_ms" not in report.as_dict()["results"][0]
    with pytest.raises(ValueError, match="backend must be one of"):
        measure_latency(models, (3, 8, 8), backend="fastest")
    assert BACKENDS == ("eager", "channels_last", "bf16", "bf16-exact", "compiled", "onnxruntime",
                        "onnxruntime-int8")


def test_whole_model_decisions_are_made_once_per_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two preparations of one architecture (other weights) share the process's precision decision: timed once."""
    timed = []
    _timed_as(monkeypatch, "float32")
    fake = latency.time_interleaved
    monkeypatch.setattr(latency, "time_interleaved", lambda calls, rounds, **kw: timed.append(sorted(calls)) or
                        fake(calls, rounds, **kw))
    x = torch.randn(1, 3, 9, 9)
    first, second = (prepare_for_inference(_bn_net(), x, dtype=torch.bfloat16) for _ in range(2))
    assert timed.count(["float32", "low"]) == 1
    assert first.compute_dtype == second.compute_dtype == torch.float32
