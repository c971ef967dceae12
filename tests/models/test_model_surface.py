"""timm-style model surface: feature_info / forward_intermediates / features_only, grad checkpointing
(pretrained_cfg: test_pretrained_cfg.py)."""
import copy

import pytest
import torch

import leannets
from leannets.models._base import FeatureListNet

FAMILIES = [("resnet20_standard", 32, [(16, 1), (32, 2), (64, 4)]),
            ("resnet50", 64, [(256, 4), (512, 8), (1024, 16), (2048, 32)]),
            ("densenet121", 64, [(256, 4), (512, 8), (1024, 16), (1024, 32)]),
            ("mobilenetv3_small_cifar_100_xsep", 32, [(16, 1), (24, 2), (48, 4), (576, 8)]),
            ("mobilenetv2_cifar_multiception", 32, [(16, 1), (24, 2), (32, 4), (96, 8), (1280, 16)]),
            ("dxnet_cifar_12_12_12", 32, [(168, 1), (228, 2), (258, 4)])]


@pytest.mark.parametrize("name,size,expected", FAMILIES)
def test_feature_maps_have_the_stated_channels_and_reductions(name, size, expected):
    model = leannets.create_model(name).eval()
    info = model.feature_info
    assert [(d["num_chs"], d["reduction"]) for d in info] == expected
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert [tuple(m.shape) for m in maps] == [(2, c, size // r, size // r) for c, r in expected]
        torch.testing.assert_close(maps[-1], model.forward_features(x))  # the last map is forward_features
        torch.testing.assert_close(final, maps[-1])
        features = leannets.create_model(name, features_only=True, out_indices=(0, -1)).eval()
        assert isinstance(features, FeatureListNet) and len(features(x)) == 2
        assert [d["num_chs"] for d in features.feature_info] == [expected[0][0], expected[-1][0]]


def test_intermediate_maps_are_the_stage_outputs():
    model = leannets.create_model("resnet20_standard").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        s0 = model.stages[0](model.stem(x))
        s1 = model.stages[1](s0)
        maps = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        final, last_two = model.forward_intermediates(x, indices=2, stop_early=True, output_fmt="NHWC")
        early, first = model.forward_intermediates(x, indices=[0], stop_early=True)
    torch.testing.assert_close(maps[0], s0)
    torch.testing.assert_close(maps[1], s1)
    torch.testing.assert_close(last_two[0], s1.permute(0, 2, 3, 1))  # an int n: the last n maps
    torch.testing.assert_close(final, model.forward_features(x))
    torch.testing.assert_close(early, s0)  # stop_early: the forward ends at the deepest map asked for
    with pytest.raises(ValueError, match="this model has 3 feature maps"):
        model.forward_intermediates(x, indices=[3])
    with pytest.raises(ValueError, match="output_fmt must be"):
        model.forward_intermediates(x, output_fmt="NLC")
    with pytest.raises(ValueError, match="features_only needs a classification model"):
        FeatureListNet(torch.nn.Linear(2, 2))


def _checkpointed_twin(name: str, **kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A model and its grad-checkpointed copy after one backward in training mode; their gradients must agree
    and something must have been checkpointed (a no-op set_grad_checkpointing fails here)."""
    torch.manual_seed(0)
    model = leannets.create_model(name, **kwargs).train()
    twin = copy.deepcopy(model)
    twin.set_grad_checkpointing()
    x = torch.randn(2, 3, 32, 32)
    model(x).square().mean().backward()
    twin(x).square().mean().backward()
    for (n, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=n)
    assert any("forward" in m.__dict__ for m in twin._feature_container()[1]), "nothing was checkpointed"
    return model, twin


def test_grad_checkpointing_gives_the_same_gradients_and_state_dict():
    model, twin = _checkpointed_twin("resnet20_standard")
    assert list(twin.state_dict()) == list(model.state_dict())
    copied = copy.deepcopy(twin)  # the copy checkpoints its own blocks, not the original's
    assert copied.stages[0].forward.__self__ is copied.stages[0]
    twin.set_grad_checkpointing(False)
    assert "forward" not in twin.stages[0].__dict__ and not twin.grad_checkpointing


def test_a_model_without_a_block_container_has_its_final_map_only():
    model = leannets.create_model("wae_vgg_cifar_small").eval()
    info = model.feature_info
    assert [(d["module"], d["reduction"]) for d in info] == [("forward_features", 16)]  # a concatenation
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_intermediates(x, intermediates_only=True)[0],
                                   model.forward_features(x))
    model.set_grad_checkpointing()  # the backbone's and the fusion net's blocks
    assert model.grad_checkpointing and "forward" in model.fusion_net.features[0].__dict__


def test_grad_checkpointing_trains_through_in_place_blocks():
    """VGG's blocks include ReLU(inplace=True): checkpointed, backward failed ("modified by an inplace operation")."""
    _checkpointed_twin("vgg_cifar_small", num_classes=10)
