import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets.analysis.profile import (count_elementwise, count_macs, count_params, format_table,
                                       training_step_peak_bytes,
                                       peak_activation_bytes, profile_model)
from leannets.cli import main


def test_depthwise_5x5_golden_macs():
    conv = nn.Conv2d(32, 32, 5, padding=2, groups=32, bias=False)
    assert count_macs(conv, torch.randn(1, 32, 32, 32)) == 819_200


def test_standard_conv_and_linear_macs():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    assert count_macs(conv, torch.randn(1, 16, 8, 8)) == 16 * 32 * 9 * 64
    assert count_macs(nn.Linear(100, 10), torch.randn(1, 100)) == 1000


def test_functional_calls_are_counted():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 4, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.w, padding=1)

    assert count_macs(Functional(), torch.randn(1, 4, 10, 10)) == 8 * 4 * 9 * 100


def test_params_total_and_trainable_count_shared_once():
    lin = nn.Linear(10, 10)
    model = nn.Sequential(lin, lin, nn.Linear(10, 2))
    model[2].weight.requires_grad_(False)
    assert count_params(model) == (110 + 22, 110 + 2)


def test_elementwise_counts_gating_multiply():
    class Gate(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    # one sigmoid + one mul over 2*3*4*4 = 96 elements
    assert count_elementwise(Gate(), torch.randn(2, 3, 4, 4)) == 192


def test_peak_activation_memory_of_a_chain():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    x = torch.randn(1, 3, 16, 16)
    one_map = 8 * 16 * 16 * 4
    peak = peak_activation_bytes(model, x)
    # conv1 output and conv2 output alive together at most; ReLU is not in place here
    assert one_map <= peak <= 3 * one_map


def test_profile_densenet_bc_100_exact_params():
    r = profile_model("densenet_bc_cifar_16_16_16", latency=False, memory=False)
    assert r.params == 769_162 and r.trainable_params == 769_162
    assert 0.28e9 < r.macs < 0.30e9


def test_profile_latency_fields_and_table_units():
    r = profile_model("densenet_bc_cifar_6_6_6", batch=2, elementwise=True, rounds=8, threads=1)
    assert r.latency_ci_ms[0] <= r.latency_ms <= r.latency_ci_ms[1] and r.ratio_to_first is None
    assert r.threads == 1 and r.rounds == 8 and r.backend == "channels_last" and r.bn_folded
    assert r.peak_activation_bytes > 0 and r.elementwise_ops > 0
    table = format_table([r])
    for unit in ("params (M)", "MACs (G", "MiB", "ms, median, 95% CI", "backend channels_last, 1 CPU threads"):
        assert unit in table


def test_cli_profile_json_contract(capsys):
    """Per model latency_ms and its CI; from the second model on ratio_to_first and its CI."""
    assert main(["profile", "resnet20_standard", "resnet20_dsconv", "--json", "--rounds", "8", "--threads", "1",
                 "--backend", "eager"]) == 0
    first, second = json.loads(capsys.readouterr().out)
    for row in (first, second):
        assert row["latency_ci_ms"][0] <= row["latency_ms"] <= row["latency_ci_ms"][1]
        assert row["backend"] == "eager" and row["threads"] == 1 and row["rounds"] == 8
    assert first["ratio_to_first"] is None
    lo, hi = second["ratio_to_first_ci"]
    assert lo <= second["ratio_to_first"] <= hi and 0.05 < second["ratio_to_first"] < 20


def test_cli_profile_json(capsys):
    assert main(["profile", "densenet_bc_cifar_16_16_16", "--json", "--no-latency"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["params"] == 769_162


def test_cli_profile_unknown_model(capsys):
    assert main(["profile", "densenet_bc_cifar_16_16", "--no-latency"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_list_shows_references(capsys):
    assert main(["list", "densenet*"]) == 0
    out = capsys.readouterr().out
    assert "Huang et al." in out and "densenet121" in out


def test_training_step_peak_includes_saved_activations():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    x = torch.randn(1, 3, 16, 16)
    assert training_step_peak_bytes(model, x) > peak_activation_bytes(model, x)
    assert all(p.grad is None for p in model.parameters())


def test_cli_profile_num_classes(capsys):
    assert main(["profile", "densenet_bc_cifar_16_16_16", "--num-classes", "100", "--json", "--no-latency"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["params"] == 769_162 + 90 * (342 + 1)  # 342 final features, 90 more classes


def test_torch_threads_sets_and_restores_even_on_error():
    from leannets.analysis.profile import torch_threads

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(target):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
