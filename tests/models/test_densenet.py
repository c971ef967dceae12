import pytest
import torch
import torch.nn as nn

from leannets.analysis.profile import count_macs, count_params
from leannets.models import create_model, model_info
from leannets.models.densenet import DenseNet


def _params(name: str, **kw) -> int:
    return count_params(create_model(name, **kw))[0]


def test_densenet_bc_100_has_769162_params():
    assert _params("densenet_bc_cifar_16_16_16") == 769_162


def test_densenet121_params_and_macs():
    model = create_model("densenet121").eval()
    assert count_params(model)[0] == 7_978_856
    macs = count_macs(model, torch.randn(1, 3, 224, 224))
    assert 2.8e9 <= macs <= 2.9e9


def test_densenet_26_26_26_is_1_7m_as_in_table_1():
    n = _params("densenet_bc_cifar_26_26_26")
    assert round(n / 1e6, 1) == 1.7
    assert n == 1_739_002


def test_table_1_densenet_16_16_16_rounds_to_0_8m():
    assert round(_params("densenet_bc_cifar_16_16_16") / 1e6, 1) == 0.8


def test_registry_metadata():
    info = model_info("densenet121")
    assert info.input_size == (3, 224, 224) and info.num_classes == 1000 and "Huang" in info.paper
    assert model_info("densenet_bc_cifar_16_16_16").input_size == (3, 32, 32)


def _copy(src: nn.Module, dst: nn.Module) -> nn.Module:
    dst.load_state_dict(src.state_dict())
    return dst


def test_memory_efficient_same_outputs_and_gradients():
    ref = DenseNet((3, 3), growth_rate=6, num_classes=5)
    eff = _copy(ref, DenseNet((3, 3), growth_rate=6, num_classes=5, memory_efficient=True))
    x = torch.randn(4, 3, 16, 16)
    outs, grads = [], []
    for model in (ref, eff):
        model.train()
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_wrong_channels_names_model_and_shapes():
    model = create_model("densenet_bc_cifar_16_16_16")
    with pytest.raises(ValueError) as err:
        model(torch.randn(2, 1, 32, 32))
    msg = str(err.value)
    assert "densenet_bc_cifar_16_16_16" in msg and "(N, 3, H, W)" in msg and "(2, 1, 32, 32)" in msg


def test_too_small_input_names_model_and_shapes():
    model = create_model("densenet_bc_cifar_6_6_6").eval()
    assert model.min_input_size == 4
    model(torch.randn(1, 3, 4, 4))  # the smallest accepted size runs
    with pytest.raises(ValueError, match=r"densenet_bc_cifar_6_6_6.*H, W >= 4.*\(1, 3, 3, 8\)"):
        model(torch.randn(1, 3, 3, 8))
    big = create_model("densenet121")
    with pytest.raises(ValueError, match=r"densenet121.*H, W >= 32.*\(1, 3, 31, 31\)"):
        big(torch.randn(1, 3, 31, 31))


def test_forward_features_head_and_reset_classifier():
    model = create_model("densenet_bc_cifar_6_6_6", num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.num_features, 8, 8) and (feats >= 0).all()  # after final BN-ReLU
    pooled = model.forward_head(feats, pre_logits=True)
    torch.testing.assert_close(pooled, feats.mean((2, 3)))
    logits = model.forward_head(feats)
    torch.testing.assert_close(logits, model.fc(pooled))
    torch.testing.assert_close(model(x), logits)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_drop_rate_adds_dropout_in_training_only():
    model = create_model("densenet_bc_cifar_6_6_6", drop_rate=0.2)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    assert _params("densenet_bc_cifar_6_6_6", drop_rate=0.2) == _params("densenet_bc_cifar_6_6_6")


def test_bad_options_raise():
    with pytest.raises(ValueError, match="stem"):
        DenseNet(stem="tiny")
    with pytest.raises(ValueError, match="reduction"):
        DenseNet(reduction=0.0)


def test_gradients_reach_every_parameter():
    model = create_model("densenet_bc_cifar_6_6_6", num_classes=4)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
