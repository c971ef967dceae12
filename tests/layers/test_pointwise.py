"""PointwiseConv2d and the 1×1 tuning of prepare_for_inference: same results, conv wherever a graph is captured."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from leannets.analysis.latency import prepare_for_inference, tune_pointwise
from leannets.analysis.profile import count_macs
from leannets.layers.pointwise import PointwiseConv2d, pointwise_candidate


def _pair(cin: int = 12, cout: int = 7, bias: bool = True) -> tuple[nn.Conv2d, PointwiseConv2d]:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 1, bias=bias).eval()
    fast = PointwiseConv2d(cin, cout, 1, bias=bias).eval()
    fast.load_state_dict(conv.state_dict())
    fast.gemm = True
    return conv, fast


@pytest.mark.parametrize("batch,bias", [(1, True), (3, False)])
def test_the_matrix_product_equals_the_convolution(batch: int, bias: bool) -> None:
    conv, fast = _pair(bias=bias)
    x = torch.randn(batch, 12, 5, 6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = conv(x), fast(x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # bf16 weights and data: bf16 rounding
        got16 = fast.to(torch.bfloat16)(x.bfloat16())
    torch.testing.assert_close(got16.float(), want, rtol=2e-2, atol=2e-2)


def test_training_other_layouts_and_captures_take_the_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    _, fast = _pair()
    x = torch.randn(1, 12, 5, 6).contiguous(memory_format=torch.channels_last)
    assert count_macs(fast, x, only="convolution") == 12 * 7 * 30  # the profiler still sees a convolution
    graph = str(torch.jit.trace(fast, x).inlined_graph)
    assert "aten::_convolution" in graph and "aten::linear" not in graph

    def no_linear(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the matrix product ran")

    monkeypatch.setattr("leannets.layers.pointwise.F.linear", no_linear)
    with torch.no_grad():
        fast.train()(x)
        fast.eval()(x.contiguous())  # NCHW
        with pytest.raises(AssertionError, match="matrix product"):
            fast(x)


def test_candidates_are_plain_1x1_stride_1_convs() -> None:
    assert pointwise_candidate(nn.Conv2d(4, 4, 1))
    for conv in (nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 1, stride=2), nn.Conv2d(4, 4, 1, groups=2),
                 nn.Conv2d(4, 4, 1, padding=1), PointwiseConv2d(4, 4, 1)):
        assert not pointwise_candidate(conv)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 1), nn.ReLU(),
                         nn.Conv2d(8, 4, 1, stride=2)).eval()


def test_tuning_switches_only_what_it_measured_faster_and_keeps_everything_else() -> None:
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    net = prepare_for_inference(_net(), x, tune=False)
    keys = list(net.state_dict())
    with torch.no_grad():
        want = net(x)
    assert tune_pointwise(net, x, margin=0.0) == []  # nothing is ever that much faster
    assert [type(m) for m in net] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert tune_pointwise(net, x, margin=float("inf")) == ["2"]  # the only plain 1×1 stride-1 conv
    assert type(net[2]) is PointwiseConv2d and net[2].gemm and type(net[4]) is nn.Conv2d
    assert list(net.state_dict()) == keys
    with torch.no_grad():
        torch.testing.assert_close(net(x), want, rtol=1e-5, atol=1e-6)


def test_prepare_tunes_on_the_example_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr("leannets.analysis.latency.tune_pointwise", lambda model, x: seen.append(tuple(x.shape)))
    x = torch.randn(2, 3, 8, 8)
    prepare_for_inference(_net(), x)
    prepare_for_inference(_net(), x, tune=False)
    prepare_for_inference(_net(), x, channels_last=False)
    prepare_for_inference(_net())  # a plain module declares no input size: nothing to time on
    assert seen == [(2, 3, 8, 8)]


def test_a_shape_is_timed_once_per_process_and_every_model_gets_that_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    timed = []
    monkeypatch.setattr("leannets.analysis.latency._POINTWISE_CHOICES", {})
    monkeypatch.setattr("leannets.analysis.latency._gemm_faster", lambda m, x, rounds, margin: timed.append(1) or True)
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    nets = [prepare_for_inference(_net(), x, tune=False) for _ in range(2)]
    assert [tune_pointwise(net, x) for net in nets] == [["2"], ["2"]]
    assert timed == [1]
    assert tune_pointwise(nets[0], x) == []  # a conv already switched is no candidate any more
    other = torch.randn(1, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    assert tune_pointwise(prepare_for_inference(_net(), other, tune=False), other) == ["2"]
    assert timed == [1, 1]  # another input shape is timed again


def test_a_remembered_no_leaves_the_next_model_a_plain_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("leannets.analysis.latency._POINTWISE_CHOICES", {})
    monkeypatch.setattr("leannets.analysis.latency._gemm_faster", lambda m, x, rounds, margin: False)
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # timed, then remembered
        net = prepare_for_inference(_net(), x)
        assert type(net[2]) is nn.Conv2d and "gemm" not in vars(net[2])


def test_multiception_inference_runs_its_folded_1x1_as_a_matrix_product_when_switched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    from leannets.layers.multiception import MixConv, MulticeptionConv

    x = torch.randn(1, 8, 9, 9).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    net = nn.Sequential(MulticeptionConv(8, 8, (3, 5)), MixConv(8, 8, (3, 5))).eval()
    prepared = prepare_for_inference(net, x, tune=False)
    with torch.no_grad():
        want = prepared(x)
    assert tune_pointwise(prepared, x, margin=float("inf")) == ["0", "1"]  # both fold their BNs into a 1×1
    assert prepared[0].gemm and prepared[1].gemm
    calls, linear = [], F.linear
    monkeypatch.setattr("leannets.layers.pointwise.F.linear", lambda *a: calls.append(1) or linear(*a))
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), want, rtol=1e-5, atol=1e-5)
    assert calls == [1, 1]


def test_modules_in_training_mode_are_left_alone() -> None:
    from leannets.layers.multiception import MulticeptionConv

    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    net = nn.Sequential(MulticeptionConv(8, 8, (3, 5)), nn.Conv2d(8, 4, 1)).train()
    assert tune_pointwise(net, x, margin=float("inf")) == []  # timing them would also move BN statistics
    assert type(net[1]) is nn.Conv2d and not net[0].gemm


def test_a_conv_called_with_keywords_is_left_alone() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(input=x)

    x = torch.randn(1, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    net = Net().eval()
    assert tune_pointwise(net, x, margin=float("inf")) == [] and type(net.conv) is nn.Conv2d


@pytest.mark.parametrize("model_faster", [True, False])
def test_the_switch_is_kept_only_if_the_whole_model_is_measurably_faster(monkeypatch: pytest.MonkeyPatch,
                                                                   model_faster: bool) -> None:
    """Per conv the matrix product was faster; the whole model is then timed with and without the switch, and the
    convs go back to the convolution when the model got slower (what a layout or dtype change costs around them)."""
    monkeypatch.setattr("leannets.analysis.latency._POINTWISE_CHOICES", {})
    monkeypatch.setattr("leannets.analysis.latency._gemm_faster", lambda m, x, rounds, margin: True)
    timed = []

    def fake(calls, rounds, **kw):  # noqa: ANN001, ANN003, ANN202
        timed.append(sorted(calls))
        for fn in calls.values():
            fn()
        fast = "gemm" if model_faster else "conv"
        return {k: [1.0 if k == fast else 2.0] * rounds for k in calls}, {k: 1 for k in calls}

    monkeypatch.setattr("leannets.analysis.latency.time_interleaved", fake)
    monkeypatch.setattr("leannets.analysis.latency._MODEL_CHOICES", {})
    x = torch.randn(1, 3, 8, 8)
    net = prepare_for_inference(_net(), x)
    assert timed == [["conv", "gemm"]] and isinstance(net[2], PointwiseConv2d) and net[2].gemm is model_faster
    again = prepare_for_inference(_net(), x)  # the same architecture: the process's decision, not timed again
    assert timed == [["conv", "gemm"]] and again[2].gemm is model_faster
    with torch.no_grad():
        xc = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(net(xc), prepare_for_inference(_net(), x, tune=False)(xc), rtol=1e-5, atol=1e-6)
