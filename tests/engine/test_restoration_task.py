"""Restoration tasks on the engine: degradations, fixed evaluation noise, PSNR/SSIM eval, checkpoints, CLI."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from leannets.engine.restoration_metrics import imresize, imresize_torch, psnr, quantize, ssim
from leannets.cli import main as cli_main
from leannets.engine.checkpoint import FORMAT, save_checkpoint
from leannets.engine.recipe import load_recipe, stage_configs
from leannets.engine.task import create_task, get_task_class
from leannets.engine.tasks.restoration import evaluate_folder, format_rows, run_model
from leannets.models._base import LeanModule

TINY_DN = {"block_config": [1], "growth_rate": 4, "num_init_features": 8}
TINY_SR = {"block_config": [1], "growth_rate": 4, "num_init_features": 8}


def _cfg(task: dict, model: str, kwargs: dict, data: dict | None = None) -> dict:
    recipe = {"task": task, "model": {"name": model, "kwargs": kwargs},
              "data": {"name": "skimage_photos", "channels": 1, "patch_size": 16, "patches_per_epoch": 8,
                       "batch_size": 4, "eval_batch_size": 2, "num_workers": 0, "normalize": False, **(data or {})},
              "optim": {"name": "adam", "lr": 1e-3}, "train": {"epochs": 1}}
    return load_recipe(recipe)


def _images(folder, shapes, channels=1, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(shapes):
        arr = rng.integers(0, 256, (h, w, channels) if channels == 3 else (h, w)).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"im{i}.png")
    return folder


def _checkpoint(path, recipe, model, in_chans):
    ckpt = {"format": FORMAT, "version": 1, "recipe": recipe.to_dict(),
            "data_info": {"name": "test", "num_classes": 0, "in_chans": in_chans, "input_size": [in_chans, 16, 16],
                          "mean": [0.0] * in_chans, "std": [1.0] * in_chans, "class_names": []},
            "model": model.state_dict(), "ema": None, "metrics": {}}
    return save_checkpoint(ckpt, path)


def _identity_denoiser(recipe):
    task = create_task(stage_configs(recipe)[0])
    model = task.build_model(type("S", (), {"in_chans": 1, "num_classes": 0})())
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    return model.eval()


def test_tasks_are_registered_with_psnr_as_main_metric():
    for name in ("denoising", "super_resolution"):
        cls = get_task_class(name)
        assert cls.main_metric == "psnr" and cls.higher_is_better
        assert cls(_cfg({"name": name}, "dncnn" if name == "denoising" else "dxnet16_sr", {})).is_better(30.0, 29.0)


def test_eval_noise_is_fixed_per_image_and_has_sigma():
    cfg = stage_configs(_cfg({"name": "denoising", "sigma": 50}, "dncnn", {}))[0]
    clean = torch.randint(0, 256, (1, 64, 64), dtype=torch.uint8)
    a, target = create_task(cfg).eval_pair(clean, 3)
    b, _ = create_task(cfg).eval_pair(clean, 3)
    c, _ = create_task(cfg).eval_pair(clean, 4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    noise = (a - target / 255.0) * 255.0
    assert float(noise.std()) == pytest.approx(50.0, rel=0.05)
    reseeded = stage_configs(_cfg({"name": "denoising", "sigma": 50, "eval_seed": 1}, "dncnn", {}))[0]
    assert not torch.equal(create_task(reseeded).eval_pair(clean, 3)[0], a)


def test_training_noise_is_fresh_gaussian():
    task = create_task(stage_configs(_cfg({"name": "denoising", "sigma": 25}, "dncnn", {}))[0])
    clean = torch.full((8, 1, 32, 32), 0.5)
    n1, n2 = task.degrade_batch(clean) - clean, task.degrade_batch(clean) - clean
    assert float(n1.std() * 255) == pytest.approx(25.0, rel=0.05) and not torch.equal(n1, n2)


def test_sr_degradations_are_matlab_bicubic_of_modcropped_images():
    task = create_task(stage_configs(_cfg({"name": "super_resolution", "scale": 4}, "dxnet16_sr", TINY_SR,
                                          {"channels": 3}))[0])
    clean = torch.randint(0, 256, (3, 37, 50), dtype=torch.uint8)
    lr, hr = task.eval_pair(clean, 0)
    assert hr.shape == (1, 3, 36, 48) and lr.shape == (1, 3, 9, 12)
    ref = imresize(clean.permute(1, 2, 0).numpy()[:36, :48], 0.25)
    np.testing.assert_array_equal((lr[0] * 255).round().byte().permute(1, 2, 0).numpy(), ref)
    patches = torch.rand(2, 3, 16, 16)
    expected = (imresize_torch(patches, 0.25) * 255).round().clamp(0, 255) / 255
    torch.testing.assert_close(task.degrade_batch(patches), expected)


def test_training_step_backpropagates_both_tasks():
    for task_cfg, model, kw, ch in [({"name": "denoising"}, "dxnet_denoise_4_4_4", TINY_DN, 1),
                                    ({"name": "super_resolution", "scale": 2}, "dxnet16_sr", TINY_SR, 3)]:
        task = create_task(stage_configs(_cfg(task_cfg, model, kw, {"channels": ch}))[0])
        net = task.build_model(type("S", (), {"in_chans": ch, "num_classes": 0})())
        loss, logs = task.training_step(net, (torch.randint(0, 256, (2, ch, 16, 16), dtype=torch.uint8), None))
        loss.backward()
        assert torch.isfinite(loss) and "psnr" in logs
        assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert task.loss_name == "l1"


def test_eval_step_list_and_stacked_batches_agree():
    recipe = _cfg({"name": "denoising", "sigma": 30}, "dxnet_denoise_4_4_4", TINY_DN)
    task = create_task(stage_configs(recipe)[0])
    model = task.build_model(type("S", (), {"in_chans": 1, "num_classes": 0})()).eval()
    imgs = torch.randint(0, 256, (2, 1, 20, 20), dtype=torch.uint8)
    listed = task.eval_step(model, [(imgs[0], 0), (imgs[1], 1)])
    stacked = task.eval_step(model, (imgs.float() / 255, torch.tensor([0, 1])))
    for k in ("loss", "psnr", "ssim"):
        assert listed[k][1] == stacked[k][1] == 2
        assert float(listed[k][0]) == pytest.approx(float(stacked[k][0]), abs=1e-9)


def test_identity_denoiser_scores_the_noisy_input(tmp_path):
    # A denoiser whose noise estimate is zero returns its input, so its PSNR/SSIM must equal those of
    # the (quantised) fixed noisy images, computed here independently.
    recipe = _cfg({"name": "denoising", "sigma": 50, "eval_seed": 7}, "dxnet_denoise_4_4_4", TINY_DN)
    model = _identity_denoiser(recipe)
    ckpt = _checkpoint(tmp_path / "dn.pt", recipe, model, 1)
    data = _images(tmp_path / "eval", [(24, 30), (20, 20)])
    result = evaluate_folder(ckpt, data)
    assert [r["image"] for r in result["rows"]] == ["im0.png", "im1.png"]
    from leannets.engine.tasks.restoration import eval_noise

    for i, row in enumerate(result["rows"]):
        clean = torch.from_numpy(np.array(Image.open(data / f"im{i}.png")))[None, None].float()
        noisy = quantize(clean / 255 + eval_noise(tuple(clean.shape), 50.0, 7, i))
        assert row["psnr"] == pytest.approx(psnr(noisy, clean), abs=1e-9)
        assert row["ssim"] == pytest.approx(ssim(noisy, clean), abs=1e-9)
    assert result["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in result["rows"]]))
    assert 13.0 < result["mean"]["psnr"] < 16.0  # σ=50 noise ≈ 14.2 dB
    table = format_rows(result)
    assert "im1.png" in table and "mean (2 images)" in table and "σ=50" in table
    again = evaluate_folder(ckpt, data)
    assert again["mean"] == result["mean"]  # the same noisy images every run
    lower = evaluate_folder(ckpt, data, sigma=10)
    assert lower["mean"]["psnr"] > result["mean"]["psnr"] + 10


def test_evaluate_folder_rejects_wrong_options(tmp_path):
    recipe = _cfg({"name": "denoising"}, "dxnet_denoise_4_4_4", TINY_DN)
    ckpt = _checkpoint(tmp_path / "dn.pt", recipe, _identity_denoiser(recipe), 1)
    data = _images(tmp_path / "eval", [(16, 16)])
    with pytest.raises(ValueError, match="--scale is for super-resolution"):
        evaluate_folder(ckpt, data, scale=4)


def test_task_model_mismatches_are_clear_errors():
    recipe = _cfg({"name": "denoising"}, "dxnet16_sr", {})
    with pytest.raises(ValueError, match="super_resolution model but the recipe's task.name is 'denoising'"):
        create_task(stage_configs(recipe)[0]).build_model(type("S", (), {"in_chans": 3, "num_classes": 0})())
    recipe = _cfg({"name": "super_resolution", "scale": 4}, "dxnet16_sr", {"scale": 2})
    with pytest.raises(ValueError, match="model.kwargs.scale=2 differs from task.scale=4"):
        create_task(stage_configs(recipe)[0]).build_model(type("S", (), {"in_chans": 3, "num_classes": 0})())
    recipe = _cfg({"name": "super_resolution", "scale": 4}, "dxnet16_sr", {}, {"patch_size": 18})
    with pytest.raises(ValueError, match="patch_size=18 must be a multiple of task.scale=4"):
        create_task(stage_configs(recipe)[0]).build_data()
    with pytest.raises(ValueError, match="task.scale"):
        _cfg({"name": "super_resolution", "scale": 5}, "dxnet16_sr", {})


def test_run_model_pads_to_the_size_divisor_and_crops_back():
    class Div4(LeanModule):
        in_chans, size_divisor, scale = 1, 4, 2

        def forward(self, x):
            self.check_input(x)
            return nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    x = torch.rand(1, 1, 10, 7)
    y = run_model(Div4(), x)
    assert y.shape == (1, 1, 20, 14)
    torch.testing.assert_close(y, nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def test_engine_trains_a_denoiser_and_cli_writes_images(tmp_path, capsys):
    from leannets.engine import train

    root = tmp_path / "data"
    _images(root / "train", [(40, 40), (36, 44)])
    _images(root / "test", [(24, 20)])
    result = train({"task": {"name": "denoising", "sigma": 25},
                    "model": {"name": "dxnet_denoise_4_4_4", "kwargs": TINY_DN},
                    "data": {"name": "restoration_folder", "root": str(root), "channels": 1, "patch_size": 16,
                             "patches_per_epoch": 8, "batch_size": 4, "num_workers": 0, "normalize": False},
                    "optim": {"name": "adam", "lr": 1e-3}, "train": {"epochs": 1, "threads": 1}},
                   out_dir=tmp_path / "run", verbose=False, progress=False)
    assert result["main_metric"] == "psnr" and np.isfinite(result["final"]["eval_psnr"])
    assert 0 < result["final"]["eval_ssim"] <= 1
    ckpt = tmp_path / "run" / "last.pt"
    img = root / "test" / "im0.png"
    assert cli_main(["denoise", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                     "--add-noise", "25"]) == 0
    out = capsys.readouterr().out
    assert "noisy" in out and "denoised" in out and "dB" in out
    # One training epoch of 2 steps: the model is no better than the noisy input, and the command says so.
    assert "warning: im0.png: the denoised image" in out and "under-trained" in out
    Image.open(img).convert("RGB").save(tmp_path / "colour.png")
    assert cli_main(["denoise", str(tmp_path / "colour.png"), "--checkpoint", str(ckpt), "--out",
                     str(tmp_path / "o")]) == 0
    assert "colour.png: colour image converted to grey" in capsys.readouterr().out
    den = np.asarray(Image.open(tmp_path / "o" / "im0_denoised.png"))
    assert den.shape == (24, 20) and (tmp_path / "o" / "im0_noisy.png").is_file()
    assert cli_main(["eval", str(ckpt)]) == 0  # the engine's eval prints the task's per-image report
    out = capsys.readouterr().out
    assert "| im0.png |" in out and "mean (1 images)" in out
    assert cli_main(["upscale", str(img), "--checkpoint", str(ckpt)]) == 2
    assert "not super_resolution" in capsys.readouterr().err


def test_upscale_cli_writes_scaled_images_and_reports_psnr(tmp_path, capsys):
    recipe = _cfg({"name": "super_resolution", "scale": 2}, "dxnet16_sr", TINY_SR, {"channels": 3})
    task = create_task(stage_configs(recipe)[0])
    model = task.build_model(type("S", (), {"in_chans": 3, "num_classes": 0})()).eval()
    ckpt = _checkpoint(tmp_path / "sr.pt", recipe, model, 3)
    data = _images(tmp_path / "hr", [(21, 30)], channels=3)
    assert cli_main(["upscale", str(data / "im0.png"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                     "--downscale-first"]) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "network" in out and "Y, border 2" in out
    assert Image.open(tmp_path / "o" / "im0_lr.png").size == (15, 10)
    assert Image.open(tmp_path / "o" / "im0_x2.png").size == (30, 20)
    result = evaluate_folder(ckpt, data, scale=2)
    assert result["settings"]["y_channel"] and result["settings"]["crop_border"] == 2
    with pytest.raises(ValueError, match="--scale 4 does not match"):
        evaluate_folder(ckpt, data, scale=4)
    assert cli_main(["denoise", str(data / "im0.png"), "--checkpoint", str(ckpt)]) == 2
    assert "use `leannets upscale`" in capsys.readouterr().err
    missing = tmp_path / "nope.png"
    for command in ("upscale", "denoise"):
        assert cli_main([command, str(data / "im0.png"), str(missing), "--checkpoint", str(ckpt)]) == 2
        err = capsys.readouterr().err
        assert "not found" in err and "nope.png" in err and "im0.png" not in err
