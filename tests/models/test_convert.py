"""leannets.convert: the papers' ideas in any network (registered models, a ConvNeXt-style block written here, shared
modules, nothing to convert), kept weights / modes / flags, and the converted model training, folding, exporting."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import leannets
from leannets.layers.xsepconv import XSepConv
from leannets.layers.xunit import XUnit
from leannets.layers.multiception import MulticeptionConv


def _dw(m: nn.Module, k: int) -> list[str]:
    return [n for n, c in m.named_modules() if isinstance(c, nn.Conv2d) and c.groups == c.in_channels > 1
            and c.kernel_size == (k, k)]


def test_mobilenetv3_small_xsepconv_report_training_fold_and_onnx(tmp_path):
    model = leannets.create_model("mobilenetv3_small_100")
    five = _dw(model, 5)
    stride2 = [n for n in five if model.get_submodule(n).stride == (2, 2)]
    report = leannets.convert(model, conv="xsepconv", min_kernel=5, input_size=(3, 64, 64))
    assert report.counts() == {"xsepconv": len(five) - len(stride2)} and len(stride2) == 2
    assert [n for n, _ in report.kept] == stride2 and all("1.24x" in why for _, why in report.kept)
    assert not _dw(model, 5) or set(_dw(model, 5)) == set(stride2)
    (p0, p1), (m0, m1) = report.params, report.macs
    assert p1 < p0 and m1 < m0 and "MACs at 3x64x64" in report.format()
    x = torch.randn(2, 3, 64, 64)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model(x).logsumexp(1).mean().backward()
    opt.step()
    from leannets.analysis.export import export_model
    from leannets.analysis.fold_bn import fold_bn
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(fold_bn(model, x[:1])(x), model(x), rtol=1e-4, atol=1e-4)
    pytest.importorskip("onnxruntime")
    res = export_model(model, tmp_path / "m.onnx", "onnx", input_size=(3, 64, 64), tolerance=1e-4)
    assert res.max_abs_error is not None and res.max_abs_error <= 1e-4
    everything = leannets.convert(leannets.create_model("mobilenetv3_small_100"), conv="xsepconv", stride2="always",
                                  input_size=(3, 64, 64))
    assert everything.counts() == {"xsepconv": len(five)} and not everything.kept


class ConvNeXtBlock(nn.Module):
    """7×7 depthwise → LayerNorm (channels last) → Linear → GELU → Linear, + skip."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        return x + self.pwconv2(self.act(self.pwconv1(y))).permute(0, 3, 1, 2)


def _convnext() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 4, 4), nn.GELU(), ConvNeXtBlock(16), ConvNeXtBlock(16))


def test_convnext_style_block_keeps_everything_but_the_replaced_layers():
    model = _convnext()
    model[2].norm.weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    model.eval()
    report = leannets.convert(model, conv="xsepconv", act="xunit", xsep_act="gelu", input_size=(3, 32, 32))
    assert report.counts() == {"xsepconv": 2, "xunit": 1}
    assert [n for n, kind, _ in report.replaced if kind == "xunit"] == ["1"]  # the GELU after the stem conv
    assert {n for n, _ in report.kept} == {"2.act", "3.act"}  # MLP GELUs see channels-last tensors
    assert isinstance(model[1], XUnit) and model[1].channels == 16 and not model[1].training
    assert isinstance(model[2].dwconv.conv_2x2.pad, nn.Module) and not model[2].dwconv.training
    kept = {k: v for k, v in model.state_dict().items() if "dwconv" not in k and not k.startswith("1.")}
    assert kept.keys() == {k for k in before if "dwconv" not in k}
    assert all(torch.equal(v, before[k]) for k, v in kept.items())
    assert not model[2].norm.weight.requires_grad and model[2].pwconv1.weight.requires_grad
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 16, 8, 8)
    out.mean().backward()


def test_shared_modules_stay_shared_and_selection_applies():
    dw = nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False)
    act = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act, dw, act, dw, nn.Conv2d(8, 8, 5, padding=2, groups=8))
    report = leannets.convert(model, conv="xsepconv", act="xunit", exclude="5", input_size=(3, 16, 16))
    assert model[2] is model[4] and isinstance(model[2], nn.Sequential)  # a shared conv: one replacement
    assert model[1] is model[3] and isinstance(model[1], XUnit)
    assert isinstance(model[5], nn.Conv2d) and report.counts() == {"xsepconv": 1, "xunit": 1}
    picked = leannets.convert(_convnext(), conv="xsepconv", include=lambda name, m: name.startswith("3."),
                              input_size=(3, 32, 32))
    assert [n for n, _, _ in picked.replaced] == ["3.dwconv"]


def test_nothing_to_convert_says_so_and_changes_nothing(capsys):
    model = leannets.create_model("resnet20_standard")
    state = copy.deepcopy(model.state_dict())
    report = leannets.convert(model, conv="xsepconv")
    assert not report.replaced and "no depthwise conv" in report.note and "unchanged" in report.format()
    assert list(model.state_dict()) == list(state)
    from leannets.cli import main
    assert main(["convert", "resnet20_standard", "--conv", "xsepconv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing converted" in err[0]


def test_multiception_replaces_a_depthwise_separable_pair():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16),
                          nn.Conv2d(16, 16, 5, padding=2, groups=16))
    report = leannets.convert(model, conv="multiception", min_kernel=3, kernel_sizes=(3, 5), input_size=(3, 16, 16))
    assert isinstance(model[1], MulticeptionConv) and model[1].kernel_sizes == (3, 5) and model[1].out_ch == 16
    assert all(isinstance(model[i], nn.Identity) for i in (2, 3, 4, 5))
    assert [n for n, _ in report.kept] == ["6"] and "1x1 conv" in report.kept[0][1]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 16, 16, 16)


def test_a_recipe_trains_a_converted_model(tmp_path):
    from leannets.engine.trainer import train
    recipe = {"model": {"name": "mobilenetv3_small_cifar_050", "convert": {"conv": "xsepconv", "min_kernel": 3}},
              "seed": 0, "data": {"name": "digits", "batch_size": 16, "limit_train": 32, "limit_eval": 32},
              "train": {"epochs": 1, "threads": 1}}
    res = train(recipe, out_dir=tmp_path / "run", verbose=False)
    assert res["global_step"] == 2
    from leannets.engine.checkpoint import load_model
    model, _ = load_model(tmp_path / "run")
    assert any(isinstance(m, XSepConv) for m in model.modules())  # the checkpoint rebuilds the converted model
    with pytest.raises(ValueError, match="model.convert: .*allowed: conv"):
        train({**recipe, "model": {**recipe["model"], "convert": {"conv": "xsepconv", "minkernel": 3}}},
              out_dir=tmp_path / "bad", verbose=False)


def _smoke_compare(argv: list[str]) -> list[str]:
    out, skip = [], 0
    for i, a in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if a in ("--data-root", "--data", "--epochs", "--seeds"):
            skip = 1
            continue
        out.append(a)
    return out + ["--data", "digits", "--epochs", "1", "--seeds", "2", "--no-latency", "--quiet", "--set",
                  "data.limit_train=64", "--set", "data.limit_eval=64"]


def test_the_docs_command_lines_run_as_written(tmp_path, monkeypatch, capsys):
    import shlex
    from pathlib import Path

    from leannets.cli import main
    doc = Path(__file__).resolve().parents[2] / "docs" / "convert.md"
    import re
    text = re.sub(r"<!-- compare-example:begin .*?<!-- compare-example:end -->", "", doc.read_text(encoding="utf-8"),
                  flags=re.S)  # a generated section quotes the command its run used
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("leannets ")]
    lines = [ln for ln in lines if " --quantize " not in ln]  # int8 export: tests/analysis/test_quantize.py
    assert [shlex.split(ln)[1] for ln in lines] == ["convert", "convert", "convert", "compare", "train"]
    monkeypatch.chdir(tmp_path)
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[0] == "compare":  # smoke size: the embedded digits, one epoch on 64 images, 2 seeds
            argv = _smoke_compare(argv)
        assert main(argv) == 0, line
    out = capsys.readouterr().out
    assert out.count("replaced") == 3 and "convert: {conv: xsepconv, min_kernel: 3}" in out
    assert "convnext_cifar_atto_xsep" in out and (tmp_path / "runs" / "convnext-xsep" / "results.json").is_file()
    assert (tmp_path / "mbv3_xsep.safetensors").is_file()
