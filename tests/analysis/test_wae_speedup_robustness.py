"""Speed-up report, noise robustness and the decomposition figure (small models, few repeats)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import leannets
from leannets.analysis.robustness import add_gaussian_noise, format_noise_table, noise_robustness, noisy_accuracy
from leannets.analysis.latency import prepare_for_inference
from leannets.analysis.speedup import (family_models, format_breakdown, format_speedups, latency_breakdown,
                                       mac_breakdown, measure_speedups)
from leannets.analysis.wae_vis import decomposition_grid, save_decomposition_png, stretch
from leannets.cli import main


def test_family_models_and_errors():
    assert family_models("wae_vgg16") == ["vgg16", "halfres_vgg16", "wavelet_vgg16", "ilonly_vgg16", "wae_vgg16"]
    assert family_models("vgg_cifar_small", ["wae"]) == ["vgg_cifar_small", "wae_vgg_cifar_small"]
    with pytest.raises(ValueError, match="lacks the models"):
        family_models("densenet121")
    with pytest.raises(ValueError, match="unknown variants"):
        family_models("wae_vgg16", ["fast"])
    with pytest.raises(ValueError, match="unknown model"):
        family_models("wae_vgg17")


def test_prepared_models_compute_the_same_function():
    model = leannets.create_model("wae_vgg_cifar_small").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 32, 32)
    fast = prepare_for_inference(model, x, channels_last=True)
    with torch.no_grad():
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), model(x),
                                   rtol=1e-4, atol=1e-4)


def test_measure_speedups_small_family():
    report = measure_speedups("wae_vgg_cifar_small", batch_sizes=(1, 2), rounds=6, warmup=0, threads=1,
                              variants=("halfres", "wae"))
    full, half, wae = report.rows
    assert [r.name for r in report.rows] == ["vgg_cifar_small", "halfres_vgg_cifar_small", "wae_vgg_cifar_small"]
    assert full.speedup[1] == 1.0 and full.mac_speedup == 1.0
    assert half.mac_speedup == pytest.approx(4.0, rel=0.01)  # same convs at half resolution
    assert wae.front_end_macs == 32 * 32 * 16 * 9 * 35 + 16 * 16 * 6 * 16 * 9
    assert all(r.latency_ms[b] > 0 for r in report.rows for b in (1, 2))
    for r in report.rows[1:]:  # speed-up = the median of per-round t_full / t_model, inside its interval
        lo, hi = r.speedup_ci[2]
        assert lo <= r.speedup[2] <= hi
        assert 0.5 * full.latency_ms[2] / r.latency_ms[2] < r.speedup[2] < 2 * full.latency_ms[2] / r.latency_ms[2]
    text = format_speedups(report)
    assert "wae_vgg_cifar_small" in text and "3.76" in text and "6 interleaved rounds" in text
    with pytest.raises(ValueError, match="backend must be one of"):
        measure_speedups("wae_vgg_cifar_small", backend="fastest")
    with pytest.raises(ValueError, match="batch sizes must be >= 1"):
        measure_speedups("wae_vgg_cifar_small", batch_sizes=(0,))


def test_latency_breakdown_times_each_part_with_its_macs():
    rows = latency_breakdown("wae_vgg_cifar_small", threads=1, rounds=2, warmup=0)
    by_part = {r.part: r for r in rows}
    assert list(by_part) == ["full-resolution model", "full-resolution convs", "whole model", "front end",
                             "backbone on I_L", "fusion net on I_H", "heads (remainder)"]
    assert 0 < by_part["full-resolution convs"].macs < by_part["full-resolution model"].macs
    macs = mac_breakdown(leannets.create_model("wae_vgg_cifar_small"), (3, 32, 32))
    assert by_part["front end"].macs == macs["front_end"] > 0
    assert by_part["backbone on I_L"].macs == macs["backbone"]
    assert by_part["fusion net on I_H"].macs == macs["fusion"]
    assert by_part["whole model"].macs == macs["total"]
    # the backbone on I_L is the full-resolution backbone at half the resolution: a quarter of its MACs
    assert by_part["backbone on I_L"].macs == pytest.approx(by_part["full-resolution convs"].macs / 4, rel=0.02)
    assert all(r.latency_ms > 0 for r in rows[:-1])
    r = by_part["backbone on I_L"]
    assert r.gmacs_per_s == pytest.approx(r.macs / r.latency_ms / 1e6)
    text = format_breakdown("wae_vgg_cifar_small", rows)
    assert "| fusion net on I_H |" in text and "GMAC/s" in text
    # the resize baseline has no fusion net, so no such row
    assert "fusion net on I_H" not in {r.part for r in latency_breakdown("halfres_vgg_cifar_small", threads=1,
                                                                          rounds=1, warmup=0)}
    with pytest.raises(ValueError, match="full-resolution model"):
        latency_breakdown("vgg_cifar_small")


def test_speedup_cli_writes_json(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert main(["speedup", "wae_vgg_cifar_small", "--batch", "1", "--rounds", "6", "--warmup", "0",
                 "--threads", "1", "--variants", "wae", "--backend", "eager", "--json", str(path)]) == 0
    assert "backend eager, 1 CPU threads" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["rows"][1]["name"] == "wae_vgg_cifar_small" and data["backend"] == "eager"
    assert len(data["rows"][1]["speedup_ci"]["1"]) == 2
    assert "breakdown" not in data
    assert main(["speedup", "densenet121"]) == 2


def test_speedup_cli_breakdown_of_a_family_named_by_its_full_res_model(tmp_path, capsys):
    path = tmp_path / "b.json"
    assert main(["speedup", "vgg_cifar_small", "--batch", "1", "--rounds", "1", "--warmup", "0", "--threads", "1",
                 "--variants", "wae", "--breakdown", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "where wae_vgg_cifar_small's time goes" in out and "| backbone on I_L |" in out
    parts = json.loads(path.read_text())["breakdown"]["parts"]
    assert [p["part"] for p in parts][-1] == "heads (remainder)"
    assert all(p["gmacs_per_s"] >= 0 and p["macs"] >= 0 for p in parts)


class _Oracle(torch.nn.Module):
    """Predicts the label from the mean brightness: its accuracy falls with noise."""

    def forward(self, x):
        return torch.stack([-(x.mean((1, 2, 3)) - 0.25).abs(), -(x.mean((1, 2, 3)) - 0.75).abs()], 1)


def test_noise_robustness_degrades_and_is_reproducible():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (200,))
    images = (labels.float() * 0.5 + 0.25).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    res = noise_robustness({"oracle": _Oracle()}, images, labels, variances=(0.0, 0.5, 5.0), clip=False)
    acc = res["oracle"]
    assert acc[0.0] == 1.0 and acc[5.0] < acc[0.5] <= 1.0
    assert noisy_accuracy(_Oracle(), images, labels, 5.0, clip=False, seed=2) == acc[5.0]  # same seed, same draw
    table = format_noise_table(res)
    assert "| 0.5 |" in table and "oracle acc. (%)" in table
    noisy = add_gaussian_noise(torch.full((1000,), 0.5), 0.01, torch.Generator().manual_seed(0))
    assert noisy.var().item() == pytest.approx(0.01, rel=0.15) and noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="variance must be >= 0"):
        add_gaussian_noise(images, -1.0)
    with pytest.raises(ValueError, match="N = len"):
        noisy_accuracy(_Oracle(), images[:5], labels, 0.0)


def test_decomposition_png(tmp_path):
    model = leannets.create_model("wae_vgg_cifar_small")
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    grid = decomposition_grid(model, images, mean=(0.5,) * 3, std=(0.25,) * 3, scale=2)
    assert grid.shape == (3 * 64, 4 * 64, 3) and grid.dtype == np.uint8
    # The first column is the input itself (nearest-neighbour ×2).
    np.testing.assert_array_equal(grid[:64:2, :64:2], images[0].permute(1, 2, 0).numpy())
    out = save_decomposition_png(tmp_path / "fig" / "dec.png", model, images, title="t")
    assert Image.open(out).size[0] == 4 * 128 and not list(tmp_path.glob("fig/.*"))
    s = stretch(torch.tensor([[[[1.0, 3.0]], [[10.0, 30.0]], [[5.0, 5.0]]]]))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="needs a WAE with a decoder"):
        decomposition_grid(leannets.create_model("wavelet_vgg_cifar_small"), images)
