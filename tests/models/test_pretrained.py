"""Published torchvision / timm checkpoints load into our models through the key remap (.pth and .safetensors),
with every tensor matched; partial loads report what fitted."""
import pytest
import torch
from published_keys import (timm_mobilenetv3_small_100, timm_vgg16, torchvision_densenet, torchvision_mobilenet_v2,
                            torchvision_mobilenet_v3_small, torchvision_resnet50, torchvision_vgg16)

import leannets
from leannets._io import load_safetensors, save_safetensors
from leannets.models import load_pretrained
from leannets.models._weights import read_state_dict, remap_state_dict

CASES = [
    ("densenet121", lambda: torchvision_densenet((6, 12, 24, 16)), {"features.conv0.weight": "stem.0.weight",
     "features.denseblock2.denselayer3.conv2.weight": "blocks.2.denselayer3.conv2.weight",
     "features.transition3.conv.weight": "blocks.5.2.weight", "classifier.weight": "fc.weight"}),
    ("densenet169", lambda: torchvision_densenet((6, 12, 32, 32)), {"features.norm5.running_var": "norm_final.running_var"}),
    ("resnet50", torchvision_resnet50, {"conv1.weight": "stem.0.0.weight", "layer3.0.downsample.0.weight":
                                        "stages.2.0.downsample.0.weight", "layer4.2.bn3.weight": "stages.3.2.conv3.1.weight"}),
    ("vgg16", torchvision_vgg16, {"features.28.bias": "features.28.bias", "classifier.6.weight": "fc.weight",
                                  "classifier.0.weight": "pre_logits.mlp.0.weight"}),
    ("vgg16_bn", lambda: torchvision_vgg16(True), {"features.41.running_mean": "features.41.running_mean"}),
    ("vgg16", timm_vgg16, {"pre_logits.fc1.weight": "pre_logits.mlp.0.weight", "head.fc.bias": "fc.bias"}),
    ("mobilenetv2_100", torchvision_mobilenet_v2, {"features.1.conv.1.weight": "features.1.conv.1.0.weight",
                                                   "classifier.1.weight": "fc.weight"}),
    ("mobilenetv3_small_100", torchvision_mobilenet_v3_small, {"features.1.block.1.fc1.weight": "blocks.0.se.fc1.weight",
                                                               "classifier.0.weight": "head_hidden.weight"}),
    ("mobilenetv3_small_100", timm_mobilenetv3_small_100, {"blocks.4.2.conv_pwl.weight": "blocks.10.conv_pwl.0.weight",
                                                           "conv_head.weight": "head_hidden.weight"}),
]


def _checkpoint(keys):
    gen = torch.Generator().manual_seed(0)
    return {k: (torch.randint(0, 100, shape, generator=gen) if k.endswith("num_batches_tracked")
                else torch.randn(shape, generator=gen)) for k, shape in keys}


@pytest.mark.parametrize("name,keys,expect", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_published_checkpoints_load_completely(tmp_path, name, keys, expect):
    source = _checkpoint(keys())
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.items()}}, path)  # wrapped, DDP prefix
    model = leannets.create_model(name, pretrained=str(path))
    ours = model.state_dict()
    for theirs, mine in expect.items():
        torch.testing.assert_close(ours[mine], source[theirs].reshape(ours[mine].shape))
    if name.startswith("vgg"):
        return  # 138M parameters: the .safetensors path is exercised by the smaller models
    # every non-counter tensor of the checkpoint landed somewhere, every model tensor got one
    mapped = remap_state_dict(source, model)
    assert len(mapped) == len(ours)
    # the same through .safetensors (its header order is sorted, not the model's), read without pickle
    st = tmp_path / "weights.safetensors"
    save_safetensors(st, source, {"format": "pt"})
    again = leannets.create_model(name, pretrained=str(st), num_classes=7)
    assert again.fc.out_features == 7  # another num_classes: the classifier is reset after loading
    first = next(iter(expect.values()))
    if not first.startswith("fc"):
        torch.testing.assert_close(again.state_dict()[first], ours[first])


def test_wrong_layouts_and_files_are_refused_with_one_clear_line(tmp_path):
    source = _checkpoint(torchvision_resnet50())
    with pytest.raises(ValueError, match="has 2 tensors, DenseNet has"):
        remap_state_dict({"a.weight": torch.zeros(1), "b.bias": torch.zeros(1)}, leannets.create_model("densenet121"))
    bad = dict(source)
    bad["layer1.0.conv2.weight"] = torch.zeros(64, 64, 5, 5)
    with pytest.raises(ValueError, match=r"stages.0.0.conv2.0.weight \(64, 64, 5, 5\) does not fit stages.0.0.conv2.0"):
        remap_state_dict(bad, leannets.create_model("resnet50"))
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint"):
        read_state_dict(text)
    garbage = tmp_path / "x.safetensors"
    garbage.write_bytes(b"\xff" * 40)
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        load_safetensors(garbage)
    with pytest.raises(FileNotFoundError, match="do not exist"):
        read_state_dict(tmp_path / "missing.pth")


def test_dxnet105_and_wae_backbones_start_from_published_weights(tmp_path):
    path = tmp_path / "densenet121.safetensors"
    save_safetensors(path, _checkpoint(torchvision_densenet((6, 12, 24, 16))))
    dx = leannets.create_model("dxnet_imagenet_105")
    report = load_pretrained(dx, path, arch="densenet121", strict=False)
    assert "stem.0.weight" in report.loaded and "blocks.0.denselayer1.conv1.weight" in report.loaded
    assert any("xunit" in k or "gate" in k for k in report.missing)  # the xUnits are not in DenseNet-121
    assert report.summary().startswith(str(path))
    vgg = tmp_path / "vgg16.pth"
    torch.save(_checkpoint(torchvision_vgg16()), vgg)
    wae = leannets.create_model("wae_vgg16")
    report = load_pretrained(wae.backbone, vgg, arch="vgg16", strict=False)
    assert len([k for k in report.loaded if k.startswith("features.")]) == 26  # all 13 convs, weight + bias
    with pytest.raises(ValueError, match="strict=False loads what fits"):
        load_pretrained(leannets.create_model("dxnet_imagenet_105"), path, arch="densenet121")


def test_safetensors_round_trip_and_reference_reader(tmp_path):
    tensors = {"w": torch.randn(3, 4), "i": torch.arange(6).reshape(2, 3), "h": torch.randn(5).half(),
               "b": torch.randn(2).bfloat16(), "empty": torch.zeros(0, 3)}
    path = save_safetensors(tmp_path / "t.safetensors", tensors, {"model": "x"})
    back, meta = load_safetensors(path)
    assert meta == {"model": "x"} and all(torch.equal(back[k], v) for k, v in tensors.items())
    reference = pytest.importorskip("safetensors.torch")  # the official reader agrees where it is installed
    official = reference.load_file(str(path))
    assert all(torch.equal(official[k], v) for k, v in tensors.items())


def test_pretrained_false_is_no_weights_and_true_is_one_clear_error():
    """What a timm user types: pretrained=False builds the model, pretrained=True says no weights are bundled."""
    torch.manual_seed(0)
    a = leannets.create_model("resnet20_standard", pretrained=False)
    assert isinstance(a, torch.nn.Module)
    with pytest.raises(ValueError, match=r"pretrained=True.*bundles no weights.*pass a checkpoint file"):
        leannets.create_model("resnet20_standard", pretrained=True)
