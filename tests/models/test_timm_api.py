"""The API a timm user types: num_features / head_hidden_size meanings, global_pool, drop_path_rate, default_cfg,
list_models filters and the registry helpers."""
from __future__ import annotations

import pytest
import torch

import leannets
from leannets.models import list_models, model_info


@pytest.mark.parametrize("name", list_models(task="classification"))
def test_num_features_and_head_hidden_size_are_the_widths_forward_gives(name):
    size = model_info(name).input_size
    with torch.device("meta"):
        model = leannets.create_model(name).eval()
        feats = model.forward_features(torch.zeros(1, *size))
        pre = model.forward_head(feats, pre_logits=True)
    assert feats.shape[1] == model.num_features and pre.shape[1] == model.head_hidden_size


def test_unpooled_features_through_create_model_and_reset_classifier():
    model = leannets.create_model("resnet20_standard", pretrained=False, num_classes=0, global_pool="").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 64, 8, 8)
        model.reset_classifier(5, "max")
        assert model(x).shape == (2, 5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                                   model.forward_features(x).amax((2, 3)))
    with pytest.raises(ValueError, match="global_pool='' \\(unpooled features\\) needs num_classes=0"):
        model.reset_classifier(5, "")
    with pytest.raises(ValueError, match="global_pool must be one of"):
        model.reset_classifier(0, "avgmax")
    with pytest.raises(ValueError, match="only global_pool='avg'"):
        leannets.create_model("mobilenetv3_small_cifar_050", num_classes=0, global_pool="")


def test_drop_path_rate_zero_is_accepted_and_nonzero_refused():
    assert leannets.create_model("resnet20_standard", drop_path_rate=0.0) is not None
    with pytest.raises(ValueError, match="drop_path_rate > 0 is not supported"):
        leannets.create_model("resnet20_standard", drop_path_rate=0.1)


def test_registry_helpers():
    assert "resnet20_standard" not in leannets.list_models("resnet20_*", exclude_filters=["*standard"])
    assert "resnet20_dsconv" in leannets.list_models("resnet20_*", exclude_filters="*standard")
    assert leannets.list_models(module="vgg") == ["vgg16", "vgg16_bn", "vgg_cifar_small"]
    assert {"densenet", "mobilenetv3", "wae_classifier"} <= set(leannets.list_modules())
    assert leannets.model_entrypoint("resnet20_standard")().num_classes == 10
    model = leannets.create_model("densenet121")
    assert model.default_cfg == model.pretrained_cfg == leannets.get_pretrained_cfg("densenet121")


def test_feature_info_answers_timm_methods():
    info = leannets.create_model("resnet20_standard").feature_info
    assert info.channels() == [d["num_chs"] for d in info] and info.reduction(-1) == info[-1]["reduction"]
    assert info.module_name(0) == info[0]["module"]
    feats = leannets.create_model("resnet20_standard", features_only=True, out_indices=(1, 2))
    assert feats.feature_info.channels() == info.channels()[1:]
