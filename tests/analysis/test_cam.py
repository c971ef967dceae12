import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from leannets.analysis.cam import (check_cam_model, class_activation_maps, load_image, normalize_cam, overlay_cam,
                                   plot_cam_grid)
from leannets.models import create_model


@pytest.mark.parametrize("name", ["dxnet_cifar_4_4_4", "densenet_bc_cifar_6_6_6"])
def test_cam_is_class_weighted_sum_of_last_feature_maps(name, randomize_bn):
    model = randomize_bn(create_model(name, num_classes=5), linear=True).eval()
    x = torch.randn(3, 3, 32, 32)
    out = class_activation_maps(model, x)
    feats = model.forward_features(x).detach()
    w = model.fc.weight.detach()
    for n in range(3):
        c = int(out.classes[n])
        expected = sum(w[c, k] * feats[n, k] for k in range(feats.shape[1]))
        torch.testing.assert_close(out.cams[n], expected, rtol=1e-4, atol=1e-5)
    # GAP + linear: the spatial mean of the CAM plus the bias is the logit of that class
    logits = model(x).detach()
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.cams.mean((1, 2)) + model.fc.bias[out.classes].detach(),
                               logits.gather(1, out.classes[:, None])[:, 0], rtol=1e-4, atol=1e-5)
    assert torch.equal(out.classes, logits.argmax(1))
    torch.testing.assert_close(out.probs, logits.softmax(1).max(1).values)


def test_explicit_class_and_range_check(randomize_bn):
    model = randomize_bn(create_model("dxnet_cifar_4_4_4", num_classes=4), linear=True).eval()
    x = torch.randn(2, 3, 16, 16)
    out = class_activation_maps(model, x, classes=3)
    assert out.classes.tolist() == [3, 3]
    out2 = class_activation_maps(model, x, classes=[0, 2])
    assert out2.classes.tolist() == [0, 2]
    assert not torch.allclose(out.cams[0], out2.cams[0])
    with pytest.raises(ValueError, match="out of range for 4 classes"):
        class_activation_maps(model, x, classes=4)


def test_mode_restored_and_input_checked():
    model = create_model("dxnet_cifar_4_4_4")
    model.train()
    class_activation_maps(model, torch.randn(1, 3, 32, 32))
    assert model.training
    with pytest.raises(ValueError, match=r"\(1, 1, 32, 32\)"):
        class_activation_maps(model, torch.randn(1, 1, 32, 32))


def test_models_without_gap_linear_head_are_rejected():
    with pytest.raises(ValueError, match="Classifier"):
        check_cam_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)))
    model = create_model("dxnet_cifar_4_4_4")
    model.reset_classifier(0)
    with pytest.raises(ValueError, match="linear classifier"):
        check_cam_model(model)


def test_normalize_and_overlay():
    cams = torch.randn(2, 4, 4)
    up = normalize_cam(cams, (16, 12))
    assert up.shape == (2, 16, 12)
    for m in up:
        assert m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0)
    flat = normalize_cam(torch.ones(1, 4, 4), (8, 8))
    assert torch.isfinite(flat).all()
    img = np.random.default_rng(0).random((16, 12, 3))
    ov = overlay_cam(img, up[0].numpy(), alpha=0.4)
    assert ov.shape == (16, 12, 3) and ov.min() >= 0 and ov.max() <= 1
    np.testing.assert_allclose(overlay_cam(img, up[0].numpy(), alpha=0.0), img)
    assert overlay_cam(img[..., 0], up[0].numpy()).shape == (16, 12, 3)  # gray images work too
    with pytest.raises(ValueError, match="differ in size"):
        overlay_cam(img, np.zeros((4, 4)))


def test_load_image(tmp_path):
    arr = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png", 3, (32, 32))
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1
    gray = load_image(tmp_path / "a.png", 1, (20, 30))
    assert gray.shape == (20, 30, 1)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png", 3, (32, 32))
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png"):
        load_image(tmp_path / "bad.png", 3, (32, 32))


def test_grid_png_side_by_side(tmp_path):
    imgs = [np.random.default_rng(i).random((32, 32, 3)) for i in range(4)]
    cam = np.random.default_rng(5).random((32, 32))
    w1, h1 = Image.open(plot_cam_grid(imgs, {"A": [(cam, "cat")] * 4}, tmp_path / "one.png")).size
    rows = {"A": [(cam, "cat")] * 4, "B": [(cam, "dog")] * 4}
    w2, h2 = Image.open(plot_cam_grid(imgs, rows, tmp_path / "two.png")).size
    assert w1 > 1.5 * h1 and w2 > h2  # images in columns
    assert abs(w2 - w1) < 0.1 * w1 and h2 > 1.3 * h1  # one more row per model
    with pytest.raises(ValueError, match="2 CAMs for 4 images"):
        plot_cam_grid(imgs, {"A": [(cam, "x")] * 2}, tmp_path / "h.png")


# -- CLI ------------------------------------------------------------------------------------------------

def test_cam_cli_on_files_and_data(tiny_classifier_checkpoints, tmp_path, capsys):
    from leannets.cli import main

    arr = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "photo.jpg")
    out = tmp_path / "cam"
    dx, dn = tiny_classifier_checkpoints
    rc = main(["cam", str(dx), str(tmp_path / "photo.jpg"), "--checkpoint", str(dn),
               "--from-data", "2", "--out", str(out)])
    assert rc == 0
    payload = json.loads((out / "cam.json").read_text())
    assert payload["models"] == ["dxnet_cifar_4_4_4", "densenet_bc_cifar_6_6_6"]
    assert len(payload["maps"]) == 2 * 3 and payload["images"][0] == "photo.jpg"
    assert {m["label"] for m in payload["maps"][1:3]} <= set(range(10))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "cam_grid.png" in pngs and len(pngs) == 1 + 3
    assert Image.open(out / "cam_grid.png").size[1] > 300  # input row + two model rows
    assert "2 model(s) × 3 image(s)" in capsys.readouterr().out


def test_cam_cli_errors(tiny_classifier_checkpoints, tmp_path, capsys):
    from leannets.cli import main

    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["cam", str(tiny_classifier_checkpoints[0]), str(tmp_path / "notes.txt"), "--out", str(tmp_path)]) == 2
    assert "notes.txt: neither a checkpoint" in capsys.readouterr().err
    assert main(["cam", str(tiny_classifier_checkpoints[0]), str(tmp_path / "catt.png"), "--out", str(tmp_path)]) == 2
    assert "catt.png does not exist" in capsys.readouterr().err
    assert main(["cam", str(tiny_classifier_checkpoints[0]), "--out", str(tmp_path)]) == 2
    assert "at least one image" in capsys.readouterr().err
    assert main(["cam", str(tmp_path / "none.pt"), "--from-data", "1", "--out", str(tmp_path)]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err


def test_select_correct_keeps_the_first_images_every_predictor_gets_right():
    from leannets.analysis.cam import select_correct

    x = torch.arange(10.0).view(10, 1)
    y = torch.zeros(10, dtype=torch.long)
    batches = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]
    even = lambda b: torch.stack([(b[:, 0] % 2 == 0).float(), (b[:, 0] % 2 == 1).float()], 1)  # noqa: E731
    small = lambda b: torch.stack([(b[:, 0] < 7).float(), (b[:, 0] >= 7).float()], 1)  # noqa: E731
    images, labels, seen = select_correct(batches, [even, small], limit=3)
    assert images[:, 0].tolist() == [0.0, 2.0, 4.0] and labels.tolist() == [0, 0, 0] and seen == 8
    images, _, seen = select_correct(batches, [even, small], limit=10)
    assert images[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0] and seen == 10  # scanned everything, found four
    assert len(select_correct(batches, [], limit=5)[1]) == 5  # no predictors: the first images
