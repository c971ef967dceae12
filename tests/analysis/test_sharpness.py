import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets.analysis.sharpness import (criterion_loss_fn, estimate_sharpness, fit_quadratic,
                                         format_sharpness_table, perturbable_parameters, save_sharpness,
                                         task_loss_fn)


class QuadraticLoss:
    """L(w) = L0 + ½ (w − w0)ᵀ H (w − w0) on the flattened weight of a conv: exact quadratic, Hessian H."""

    def __init__(self, w0: torch.Tensor, hessian: torch.Tensor, l0: float) -> None:
        self.w0, self.h, self.l0 = w0.flatten().double(), hessian.double(), l0

    def __call__(self, model: nn.Module) -> float:
        d = model.weight.detach().flatten().double() - self.w0
        return float(self.l0 + 0.5 * d @ self.h @ d)


def _quadratic_model(d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(1, d, 1)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    hessian = a @ a.T / d + torch.diag(torch.rand(d, generator=g, dtype=torch.float64) * 3)
    return conv, hessian, QuadraticLoss(conv.weight.detach().clone(), hessian, l0=0.7)


def test_estimator_recovers_trace_of_known_hessian():
    d, repeats = 20, 400
    conv, hessian, loss = _quadratic_model(d)
    res = estimate_sharpness(conv, loss, sigmas=[0.0, 0.01, 0.02, 0.05, 0.1], repeats=repeats, seed=3)
    trace = float(torch.trace(hessian))
    # common random numbers: every σ sees the same directions, so the mean loss is exactly quadratic in σ
    assert res.r2 == pytest.approx(1.0, abs=1e-9)
    assert res.intercept == pytest.approx(0.7, abs=1e-7)
    assert res.base_loss == pytest.approx(0.7, abs=1e-12)
    # the estimate is mean_r z_rᵀ H z_r: unbiased with std sqrt(2 ‖H‖_F² / R)
    std = math.sqrt(2 * float((hessian ** 2).sum()) / repeats)
    assert abs(res.trace_hessian - trace) < 4 * std
    assert abs(res.trace_hessian - trace) / trace < 0.1
    assert res.num_params == d  # conv filters only: the bias is not perturbed
    assert res.mean_eigenvalue == pytest.approx(res.trace_hessian / d)


def test_estimate_equals_the_seeded_quadratic_form_exactly():
    conv, hessian, loss = _quadratic_model(6, seed=1)
    res = estimate_sharpness(conv, loss, sigmas=[0.05, 0.2], repeats=7, seed=11)
    qs = []
    for r in range(7):
        z = torch.randn(conv.weight.shape, generator=torch.Generator().manual_seed(11 + r)).flatten().double()
        qs.append(float(z @ hessian @ z))
    assert res.trace_hessian == pytest.approx(sum(qs) / len(qs), rel=1e-5)
    # same seed → same numbers; another seed → other realizations
    again = estimate_sharpness(conv, loss, sigmas=[0.05, 0.2], repeats=7, seed=11)
    assert again.losses == res.losses
    other = estimate_sharpness(conv, loss, sigmas=[0.05, 0.2], repeats=7, seed=12)
    assert other.losses != res.losses


def test_sharper_minimum_has_larger_trace():
    conv, hessian, _ = _quadratic_model(8)
    w0 = conv.weight.detach().clone()
    flat = estimate_sharpness(conv, QuadraticLoss(w0, hessian, 0.0), [0, 0.1], repeats=50)
    sharp = estimate_sharpness(conv, QuadraticLoss(w0, 10 * hessian, 0.0), [0, 0.1], repeats=50)
    assert sharp.trace_hessian == pytest.approx(10 * flat.trace_hessian, rel=1e-6)


def test_mse_regression_task_hessian_from_data():
    # y = conv1×1(x): MSE is exactly quadratic in the filter with H = (2/M) Σ_p x_p x_pᵀ
    torch.manual_seed(0)
    c = 5
    model = nn.Conv2d(c, 1, 1, bias=False)
    x = torch.randn(16, c, 4, 4) * torch.linspace(0.5, 2, c).view(1, c, 1, 1)
    y = torch.randn(16, 1, 4, 4)
    loader = [(x[:8], y[:8]), (x[8:], y[8:])]
    pix = x.permute(0, 2, 3, 1).reshape(-1, c).double()
    hessian = 2 * pix.T @ pix / pix.shape[0]
    w_star = torch.linalg.lstsq(pix, y.permute(0, 2, 3, 1).reshape(-1, 1).double()).solution
    with torch.no_grad():  # at the minimum the gradient vanishes and eq. (2) is exact in expectation
        model.weight.copy_(w_star.view(1, c, 1, 1))
    res = estimate_sharpness(model, criterion_loss_fn(loader, F.mse_loss), [0, 0.05, 0.1, 0.2], repeats=300)
    trace = float(torch.trace(hessian))
    std = math.sqrt(2 * float((hessian ** 2).sum()) / 300)
    assert abs(res.trace_hessian - trace) < 4 * std
    assert res.r2 > 0.999999
    assert res.mean_eigenvalue == pytest.approx(res.trace_hessian / c)


def test_classification_task_loss_matches_cross_entropy():
    from leannets.engine.recipe import load_recipe, stage_configs
    from leannets.engine.task import create_task

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    loader = [(torch.randn(6, 3, 8, 8), torch.randint(0, 3, (6,))) for _ in range(3)]
    task = create_task(stage_configs(load_recipe({"model": {"name": "densenet_bc_cifar_6_6_6"},
                                                  "task": {"name": "classification", "label_smoothing": 0.0}}))[0])
    via_task = task_loss_fn(task, loader)
    via_ce = criterion_loss_fn(loader, F.cross_entropy)
    model.eval()
    assert via_task(model) == pytest.approx(via_ce(model), rel=1e-6)
    res = estimate_sharpness(model, via_task, [0, 0.02, 0.05], repeats=3, seed=0)
    assert all(math.isfinite(v) for v in res.mean_loss)
    assert res.num_params == 4 * 3 * 9
    assert res.base_loss == pytest.approx(via_ce(model), rel=1e-6)


def test_parameters_and_mode_are_restored_even_on_error():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Conv2d(3, 1, 1))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss_fn(m):
        calls.append(m.training)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return 1.0

    with pytest.raises(RuntimeError, match="boom"):
        estimate_sharpness(model, loss_fn, [0.1, 0.2], repeats=2)
    assert calls == [False, False, False]  # the loss is measured in eval mode
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    estimate_sharpness(model, lambda m: 0.0, [0.1, 0.2], repeats=1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_perturbable_parameter_sets():
    from leannets.models import create_model

    model = create_model("dxnet_cifar_4_4_4")
    conv = perturbable_parameters(model, "conv")
    assert all(name.endswith("weight") and p.dim() == 4 for name, p in conv)
    assert len(conv) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert len(perturbable_parameters(model, "all")) == len(list(model.parameters()))


@pytest.mark.parametrize("kwargs,match", [
    ({"sigmas": [0.1]}, "at least 2"),
    ({"sigmas": [0.1, -0.2]}, ">= 0"),
    ({"sigmas": [0.1, 0.2], "repeats": 0}, "repeats"),
    ({"sigmas": [0.1, 0.2], "params": "bias"}, "conv"),
    ({"sigmas": [0.2, 0.2]}, "distinct"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_sharpness(nn.Conv2d(1, 1, 1), lambda m: 0.0, **kwargs)


def test_fit_quadratic_reports_r2_of_a_noisy_fit():
    a, b, r2 = fit_quadratic([0, 1, 2, 3], [1.0, 3.0, 9.0, 19.0])  # exactly 1 + 2σ²
    assert (a, b, r2) == pytest.approx((1.0, 2.0, 1.0))
    _, _, r2_bad = fit_quadratic([0, 1, 2, 3], [1.0, 5.0, 2.0, 8.0])
    assert r2_bad < 0.9
    with pytest.raises(ValueError, match="non-finite"):
        fit_quadratic([0, 1], [1.0, float("inf")])


def test_json_and_png_for_several_models(tmp_path):
    conv, hessian, loss = _quadratic_model(4)
    results = [estimate_sharpness(conv, loss, [0, 0.1, 0.2], repeats=3, name="flat"),
               estimate_sharpness(conv, QuadraticLoss(conv.weight.detach(), 5 * hessian, 0.7), [0, 0.1, 0.2],
                                  repeats=3, name="sharp")]
    json_path, png_path = save_sharpness(results, tmp_path / "out", meta={"data": "synthetic"})
    payload = json.loads(json_path.read_text())
    assert payload["meta"] == {"data": "synthetic"}
    assert [r["name"] for r in payload["results"]] == ["flat", "sharp"]
    for key in ("trace_hessian", "mean_eigenvalue", "r2", "sigmas", "mean_loss", "losses", "num_params"):
        assert key in payload["results"][0]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    assert Image.open(png_path).size[0] > Image.open(png_path).size[1]  # two panels side by side
    table = format_sharpness_table(results)
    assert "| flat |" in table and "| sharp |" in table
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left


# -- CLI ------------------------------------------------------------------------------------------------

def test_sharpness_cli_two_checkpoints(tiny_classifier_checkpoints, tmp_path, capsys):
    from leannets.cli import main

    ckpts = tiny_classifier_checkpoints
    out = tmp_path / "sharp"
    # a checkpoint file and a run folder (which resolves to its last.pt)
    rc = main(["sharpness", str(ckpts[0]), str(ckpts[1].parent), "--limit", "24", "--sigmas", "0", "0.01", "0.02",
               "--repeats", "2", "--seed", "5", "--out", str(out)])
    assert rc == 0
    payload = json.loads((out / "sharpness.json").read_text())
    assert payload["meta"]["sigmas"] == [0.0, 0.01, 0.02] and payload["meta"]["repeats"] == 2
    names = [r["name"] for r in payload["results"]]
    assert names == ["dxnet_cifar_4_4_4", "densenet_bc_cifar_6_6_6"]
    for r in payload["results"]:
        assert r["extra"]["num_samples"] == 24 and r["extra"]["split"] == "train"
        assert r["trace_hessian"] == pytest.approx(2 * r["slope"]) and math.isfinite(r["r2"])
        assert len(r["losses"]) == 3 and len(r["losses"][0]) == 2
    # the same checkpoint measured by the library gives the same numbers (seeded)
    from leannets.analysis.sharpness import checkpoint_data

    model, task, loader, _ = checkpoint_data(ckpts[0], split="train", limit=24)
    direct = estimate_sharpness(model, task_loss_fn(task, loader), [0, 0.01, 0.02], repeats=2, seed=5)
    assert direct.mean_loss == pytest.approx(payload["results"][0]["mean_loss"], rel=1e-6)
    assert (out / "sharpness.png").read_bytes()[:4] == b"\x89PNG"
    assert "| dxnet_cifar_4_4_4 |" in capsys.readouterr().out


def test_sharpness_cli_errors(tmp_path, capsys):
    from leannets.cli import main

    assert main(["sharpness", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sharpness", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.pt" in capsys.readouterr().err
