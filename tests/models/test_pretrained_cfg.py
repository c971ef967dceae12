"""Every registered model's declared ``pretrained_cfg`` names the layers that ``in_chans`` / ``num_classes`` change
(checked against what actually changes, so a family that renames a layer fails here), and each family that reads
published checkpoints declares its own adapters."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import leannets
from leannets.models import list_models, model_info, pretrained_cfg
from leannets.models._weights import checkpoint_adapters


def _names(v) -> set[str]:
    return set() if v is None else {v} if isinstance(v, str) else set(v)


def _changed(a: nn.Module, b: nn.Module, dim: int) -> set[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return {k.rsplit(".", 1)[0] for k, v in sa.items()
            if k.endswith(".weight") and v.dim() > dim and v.shape[dim] != sb[k].shape[dim]}


@pytest.mark.parametrize("name", list_models())
def test_declared_first_conv_and_classifier_are_the_layers_that_change(name):
    info = model_info(name)
    cfg = pretrained_cfg(info)
    c = info.input_size[0]
    with torch.device("meta"):
        inputs = _changed(leannets.create_model(name, in_chans=c), leannets.create_model(name, in_chans=c + 2), 1)
        heads = _changed(leannets.create_model(name, num_classes=7), leannets.create_model(name, num_classes=11), 0) \
            if info.num_classes else set()
    assert _names(cfg["first_conv"]) == inputs
    assert _names(cfg["classifier"]) == heads
    assert len(cfg["mean"]) == len(cfg["std"]) == c and cfg["input_size"] == info.input_size


def test_cfg_values_per_family():
    cfg = leannets.create_model("densenet121").pretrained_cfg
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["crop_pct"] == 0.875 and cfg["num_classes"] == 1000
    assert leannets.create_model("resnet20_standard").pretrained_cfg["mean"][0] == pytest.approx(0.4914)
    assert leannets.create_model("dxnet16_sr").pretrained_cfg["std"] == (1.0, 1.0, 1.0)
    wae = leannets.create_model("wae_vgg_cifar_small").pretrained_cfg
    assert wae["classifier"] == ("fc", "fusion_fc") and wae["first_conv"] == "wae.encoder.convs.0"


@pytest.mark.parametrize("name, layouts", [
    ("densenet121", ["torchvision/timm DenseNet"]), ("dxnet_imagenet_105", ["torchvision/timm DenseNet"]),
    ("resnet50", ["torchvision/timm ResNet"]), ("vgg16", ["torchvision VGG", "timm VGG"]),
    ("mobilenetv2_100", ["torchvision MobileNetV2"]),
    ("mobilenetv3_small_100", ["torchvision MobileNetV3", "timm MobileNetV3"]),
    ("resnet20_standard", [])])
def test_each_family_declares_its_checkpoint_layouts(name, layouts):
    with torch.device("meta"):
        model = leannets.create_model(name)
    assert [a.name for a in checkpoint_adapters(model)] == layouts
