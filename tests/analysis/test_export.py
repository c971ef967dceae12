"""ONNX / TorchScript export of every registered model, checked against PyTorch (1e-4).

Every model in ``leannets.list_models()`` (at collection time, so new models are covered
automatically) is exported at its smallest valid input size in both formats and run with
onnxruntime / ``torch.jit.load`` on a batch of 2 (the batch dimension is dynamic).

Slow-marked (``LEANNETS_SLOW=1`` or ``-m slow``), to keep the default run under ~3 minutes: the very
largest models (``SLOW_MODELS`` patterns) — the ImageNet VGG16 and ResNet-50 families (every WAE
variant; 20–140M parameters, serialising the weights dominates), ShakeNet-26-2x96d (15–26M),
DenseNet-121/169, DenseNet-BC 26-26-26, DxNet 12-12-12 / 19-19-19 / 105 and SE-ResNet-56 with
MixConv/Multiception (400–700 modules; tracing time grows with the op count). Models added later
run by default.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import leannets
from leannets.analysis.export import (_pool_matrix, export_model, load_exported, load_model_source, run_exported,
                                      smallest_input_size)
from leannets.cli import main

SLOW_MODELS = ("*vgg16", "*resnet50", "shakenet26_2x96d_*", "densenet121", "densenet169",
               "densenet_bc_cifar_26_26_26", "dxnet_cifar_12_12_12", "dxnet_cifar_19_19_19", "dxnet_imagenet_105",
               "seresnet56_mixconv", "seresnet56_multiception")
TOL = 1e-4


def _cases() -> list:
    cases = []
    for name in leannets.list_models():
        slow = any(fnmatch.fnmatchcase(name, pattern) for pattern in SLOW_MODELS)
        cases.append(pytest.param(name, marks=[pytest.mark.slow] if slow else [], id=name))
    return cases


@pytest.mark.parametrize("name", _cases())
def test_every_registered_model_exports_to_onnx_and_torchscript(name, tmp_path, randomize_bn):
    info = leannets.model_info(name)
    model = randomize_bn(leannets.create_model(name), linear=True).eval()
    size = smallest_input_size(model, info.input_size[0])
    with torch.no_grad():
        ref = model(torch.randn(2, *size))
    ref_t = ref if isinstance(ref, torch.Tensor) else ref[0]
    assert float(ref_t.abs().max()) > 1e-3, f"{name}: degenerate output, the comparison would prove nothing"
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        result = export_model(model, tmp_path / f"{name}{suffix}", fmt, input_size=size, tolerance=TOL)
        assert Path(result.path).is_file()
        assert result.verified_batch == 2
        assert result.max_rel_error is not None and result.max_rel_error <= TOL, (name, fmt, result.max_rel_error)


def test_verification_catches_a_wrong_file(tmp_path, randomize_bn):
    """The check is real: a file exported from different weights fails verification."""
    a = randomize_bn(leannets.create_model("densenet_bc_cifar_6_6_6"), linear=True).eval()
    b = randomize_bn(leannets.create_model("densenet_bc_cifar_6_6_6"), linear=True).eval()
    with torch.no_grad():
        b.fc.weight.add_(1.0)
    export_model(b, tmp_path / "b.onnx", "onnx", input_size=(3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    got = run_exported(load_exported(tmp_path / "b.onnx"), x)[0]
    with torch.no_grad():
        assert (got - a(x)).abs().max() > 1e-2
        torch.testing.assert_close(got, b(x), rtol=1e-4, atol=1e-4)


def test_fold_bn_export_matches_unfolded_model(tmp_path, randomize_bn):
    model = randomize_bn(leannets.create_model("dxnet_cifar_4_4_4"), linear=True).eval()
    result = export_model(model, tmp_path / "f.onnx", "onnx", input_size=(3, 16, 16), fold_bn=True)
    assert result.folded_bn_pairs and result.folded_bn_pairs > 0
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(run_exported(load_exported(tmp_path / "f.onnx"), x)[0], model(x),
                                   rtol=1e-4, atol=1e-4)


def test_multi_output_and_non_divisible_adaptive_pool(tmp_path):
    class Net(nn.Module):
        in_chans, min_input_size, size_divisor = 3, 1, 1

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d((3, 2))

        def forward(self, x):
            y = self.conv(x)
            return {"pooled": self.pool(y), "feat": y}

    net = Net().eval()
    result = export_model(net, tmp_path / "n.onnx", "onnx", input_size=(3, 7, 5))
    assert result.outputs == 2 and result.extra == {"adaptive_pools_as_matrices": 1}
    outs = run_exported(load_exported(tmp_path / "n.onnx"), torch.randn(2, 3, 7, 5))
    assert [tuple(o.shape) for o in outs] == [(2, 4, 7, 5), (2, 4, 3, 2)]  # dict keys sorted
    export_model(net, tmp_path / "n.pt", "torchscript", input_size=(3, 7, 5))


def test_pool_matrix_is_adaptive_average_pooling():
    x = torch.randn(2, 3, 7, 11)
    ref = nn.AdaptiveAvgPool2d((3, 4))(x)
    got = _pool_matrix(7, 3) @ x @ _pool_matrix(11, 4).t()
    torch.testing.assert_close(got, ref)


def test_smallest_input_size_respects_divisor_and_minimum():
    model = leannets.create_model("densenet121")
    assert smallest_input_size(model) == (3, 32, 32)
    model.size_divisor = 12
    assert smallest_input_size(model) == (3, 36, 36)


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = leannets.create_model("densenet_bc_cifar_6_6_6")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "x", "tflite")
    with pytest.raises(ValueError, match="expected input"):
        export_model(model, tmp_path / "x.onnx", "onnx", input_size=(1, 32, 32))
    with pytest.raises(ValueError, match="three positive integers"):
        export_model(model, tmp_path / "x.onnx", "onnx", input_size=(3, 0, 32))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model_source(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown model 'densenet_nope'"):
        load_model_source("densenet_nope")


def test_cli_export_model_name(tmp_path, capsys):
    out = tmp_path / "m.pt"
    rc = main(["export", "dxnet_cifar_4_4_4", "--format", "torchscript", "--input-size", "3", "16", "16",
               "--fold-bn", "--out", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "dxnet_cifar_4_4_4" and report["folded_bn_pairs"] > 0
    assert report["max_rel_error"] <= TOL and out.is_file()
    assert main(["export", "no_such_model", "--out", str(tmp_path / "z.onnx")]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    """A real checkpoint from the engine: DenseNet-BC-40 trained 2 steps on the embedded digits."""
    from leannets.engine import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    recipe = {"name": "export-test", "model": {"name": "densenet_bc_cifar_6_6_6"},
              "data": {"name": "digits", "batch_size": 16, "limit_train": 32, "limit_eval": 16},
              "train": {"epochs": 1, "max_steps_per_epoch": 2, "device": "cpu", "progress": False}}
    result = train(recipe, out_dir=out, verbose=False)
    return Path(result["checkpoint"])


def test_cli_export_checkpoint_uses_its_data_size(digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "ckpt.onnx"
    assert main(["export", str(digits_checkpoint), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "densenet_bc_cifar_6_6_6" and report["input_size"] == [3, 32, 32]
    assert report["max_rel_error"] <= TOL
    loaded = load_model_source(str(digits_checkpoint))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(run_exported(load_exported(out), x)[0], loaded.model(x), rtol=1e-4, atol=1e-4)
    assert main(["export", str(digits_checkpoint), "--num-classes", "3"]) == 2
    assert "model names only" in capsys.readouterr().err


def test_cli_predict_top5_with_class_names(digits_checkpoint, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from leannets.data import build_dataset
    from leannets.engine.checkpoint import load_checkpoint

    splits = build_dataset(load_checkpoint(digits_checkpoint)["recipe"]["data"])
    images = splits.eval.images[:2]  # uint8 (2, 3, 32, 32)
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    assert main(["predict", str(digits_checkpoint), *map(str, paths), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)["predictions"]
    assert [len(p["top"]) for p in preds] == [5, 5]
    assert all(t["name"] == str(t["class"]) for p in preds for t in p["top"])  # digits' names are "0".."9"
    # Same numbers as the model on the engine's normalisation of the same pixels.
    loaded = load_model_source(str(digits_checkpoint))
    mean, std = torch.tensor(loaded.mean).view(1, -1, 1, 1), torch.tensor(loaded.std).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(loaded.model((images.float() / 255 - mean) / std), 1)
    for p, row in zip(preds, probs):
        top = row.topk(5)
        assert [t["class"] for t in p["top"]] == top.indices.tolist()
        np.testing.assert_allclose([t["prob"] for t in p["top"]], top.values.numpy(), rtol=1e-4, atol=1e-6)
    # --classes overrides the stored names; errors are clear.
    names = ",".join(f"n{i}" for i in range(10))
    assert main(["predict", str(digits_checkpoint), str(paths[0]), "--topk", "2", "--classes", names]) == 0
    assert "n" in capsys.readouterr().out
    assert main(["predict", str(digits_checkpoint), str(paths[0]), "--classes", "a,b"]) == 2
    assert "gives 2 names but the model predicts 10" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(digits_checkpoint), str(bad)]) == 2
    assert "cannot be read as an image" in capsys.readouterr().err
    assert main(["predict", "dxnet_cifar_4_4_4", str(paths[0])]) == 2
    assert "needs a trained checkpoint" in capsys.readouterr().err


def test_onnx_carries_its_preprocessing_and_predict_runs_it_in_onnxruntime(digits_checkpoint, tmp_path, capsys):
    import onnx
    from PIL import Image

    from leannets.data import build_dataset
    from leannets.engine.checkpoint import load_checkpoint

    out = tmp_path / "digits.onnx"
    assert main(["export", str(digits_checkpoint), "--out", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    loaded = load_model_source(str(digits_checkpoint))
    assert meta["leannets.model"] == "densenet_bc_cifar_6_6_6" and json.loads(meta["leannets.input_size"]) == [3, 32, 32]
    assert json.loads(meta["leannets.mean"]) == loaded.mean and json.loads(meta["leannets.std"]) == loaded.std
    assert json.loads(meta["leannets.class_names"]) == [str(i) for i in range(10)]
    assert meta["leannets.resize"] == "the whole image resized to 32x32 (bicubic)"
    splits = build_dataset(load_checkpoint(digits_checkpoint)["recipe"]["data"])
    paths = []
    for i, img in enumerate(splits.eval.images[:6]):
        paths.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    capsys.readouterr()
    assert main(["predict", str(digits_checkpoint), *paths, "--json"]) == 0
    torch_preds = json.loads(capsys.readouterr().out)
    assert main(["predict", str(out), *paths, "--json"]) == 0
    onnx_preds = json.loads(capsys.readouterr().out)
    assert onnx_preds["runtime"] == "onnxruntime" and onnx_preds["model"] == "densenet_bc_cifar_6_6_6"
    for a, b in zip(torch_preds["predictions"], onnx_preds["predictions"]):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]  # same ranking, same top-1
        assert a["top"][0]["name"] == b["top"][0]["name"]
        assert abs(a["top"][0]["prob"] - b["top"][0]["prob"]) < 1e-4
    plain = tmp_path / "plain.onnx"
    export_model(loaded.model, plain, "onnx", input_size=(3, 32, 32))  # no metadata
    assert main(["predict", str(plain), paths[0]]) == 2
    assert "has no leannets metadata" in capsys.readouterr().err


def test_predict_and_export_agree_on_the_small_input_rule():
    from leannets.analysis.export import SMALL_INPUT as EXPORT_SMALL
    from leannets.commands.predict import SMALL_INPUT as PREDICT_SMALL

    assert EXPORT_SMALL == PREDICT_SMALL


def test_safetensors_export_rebuilds_the_same_model(digits_checkpoint, tmp_path, capsys):
    from leannets._io import load_safetensors

    out = tmp_path / "model.safetensors"
    assert main(["export", str(digits_checkpoint), "--format", "safetensors", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "safetensors" and report["max_rel_error"] == 0.0
    tensors, meta = load_safetensors(out)  # no pickle involved
    assert meta["leannets.model"] == "densenet_bc_cifar_6_6_6" and json.loads(meta["leannets.input_size"]) == [3, 32, 32]
    loaded = load_model_source(str(digits_checkpoint))
    rebuilt = leannets.create_model(meta["leannets.model"], pretrained=str(out)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), loaded.model(x))
    assert main(["export", str(digits_checkpoint), "--format", "safetensors", "--fold-bn",
                 "--out", str(tmp_path / "f.safetensors")]) == 2
    assert "--fold-bn does not apply to safetensors" in capsys.readouterr().err
