"""int8 export: ONNX Runtime static QDQ quantization calibrated on a folder or a dataset, its metadata, `predict`
running the file, the xUnit gate left in fp32, and one-line errors."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from leannets.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _folder(root, n=6):
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"sub{i % 2}" / f"{i}.png")
    return root


def test_int8_export_from_a_folder_runs_in_predict_and_says_how_it_was_made(tmp_path, capsys):
    images = _folder(tmp_path / "calib")
    out = tmp_path / "m8.onnx"
    assert main(["export", "dxnet_cifar_4_4_4", "--out", str(out), "--quantize", "int8", "--calibration",
                 str(images), "--calibration-images", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["int8"]
    assert res["calibration_images"] == 4 and res["int8_ops"]["Conv"] > 10
    assert res["fp32_ops"].get("Sigmoid", 0) > 0  # the xUnit gate stays fp32, and the result says so
    model = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["leannets.quantized"].startswith("int8") and meta["leannets.calibration"] == f"4 images from {images}"
    assert meta["leannets.model"] == "dxnet_cifar_4_4_4" and json.loads(meta["leannets.input_size"]) == [3, 32, 32]
    assert main(["predict", str(out), str(images / "sub0" / "0.png")]) == 0
    assert "1." in capsys.readouterr().out


def test_int8_export_calibrates_on_a_registered_dataset(tmp_path, capsys):
    out = tmp_path / "r8.onnx"
    assert main(["export", "resnet20_standard", "--out", str(out), "--quantize", "int8", "--calibration", "digits",
                 "--calibration-images", "16"]) == 0
    text = capsys.readouterr().out
    assert "int8: calibrated on 16 images from digits" in text and "top-1 equal to fp32" in text
    assert main(["eval", str(out), "--data", "digits", "--set", "data.limit_eval=40", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["num_samples"] == 40 and 0 <= res["metrics"]["acc1"] <= res["metrics"]["acc5"] <= 1
    assert res["quantized"].startswith("int8") and res["model"] == "resnet20_standard"
    assert main(["eval", str(out)]) == 2  # an ONNX file does not store its data: one line
    assert "give --data DATASET" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--quantize", "int8"], "--quantize int8 needs --format onnx, --calibration"),
    (["--quantize", "int8", "--format", "torchscript", "--calibration", "digits"], "needs --format onnx"),
    (["--quantize", "int8", "--calibration", "NOPE"], "NOPE"),
])
def test_bad_int8_requests_are_one_line(tmp_path, capsys, argv, message):
    assert main(["export", "resnet20_standard", "--out", str(tmp_path / "x.onnx"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_onnxruntime_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    from leannets.analysis.quantize import quantize_int8
    import torch
    with pytest.raises(ValueError, match=r"pip install 'leannets\[export\]'"):
        quantize_int8(tmp_path / "a.onnx", tmp_path / "b.onnx", torch.zeros(1, 3, 8, 8), "x")


def test_profile_times_the_int8_file(capsys):
    assert main(["profile", "resnet20_standard", "--backend", "onnxruntime-int8", "--rounds", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    row = row[0] if isinstance(row, list) else row
    assert row["latency_ms"] > 0
