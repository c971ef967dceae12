import pytest
import torch
import torch.nn as nn

from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_macs, count_params
from leannets.layers.xunit import XUnit, xunit_num_params
from leannets.models import create_model, list_models, model_info
from leannets.models.densenet import DenseNet, DxNet


def _params(name: str, **kw) -> int:
    return count_params(create_model(name, **kw))[0]


@pytest.mark.parametrize("name,paper_m,exact", [
    ("dxnet_cifar_12_12_12", 0.5, 532_162),
    ("dxnet_cifar_19_19_19", 1.0, 1_090_930),
])
def test_table_1_params_within_10_percent(name, paper_m, exact):
    n = _params(name)
    assert n == exact
    assert abs(n - paper_m * 1e6) / (paper_m * 1e6) <= 0.10


def test_table_1_dxnets_are_smaller_than_the_densenets_they_match():
    # Table 1 rows: DenseNet 16-16-16 (0.8M) ~ DxNet 12-12-12 (0.5M); 26-26-26 (1.7M) ~ 19-19-19 (1.0M)
    assert _params("dxnet_cifar_12_12_12") < 0.75 * _params("densenet_bc_cifar_16_16_16")
    assert _params("dxnet_cifar_19_19_19") < 0.65 * _params("densenet_bc_cifar_26_26_26")


@pytest.mark.parametrize("config", [(4, 4, 4), (12, 12, 12), (19, 19, 19)])
def test_xunit_overhead_is_82k_per_layer_plus_pointwise_and_bn(config):
    dx = DxNet(config, growth_rate=12, num_init_features=24)
    plain = DenseNet(config, growth_rate=12, num_init_features=24)
    overhead = sum(config) * xunit_num_params(12, 9) + xunit_num_params(24, 9)
    assert count_params(dx)[0] - count_params(plain)[0] == overhead
    depthwise = [m for m in dx.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert sum(p.numel() for m in depthwise for p in m.parameters()) == 82 * (12 * sum(config) + 24)


def test_architecture_matches_the_paper():
    model = create_model("dxnet_cifar_12_12_12")
    stem = list(model.stem)
    assert isinstance(stem[0], nn.Conv2d) and stem[0].kernel_size == (3, 3) and stem[0].out_channels == 24
    assert isinstance(stem[1], XUnit) and stem[1].channels == 24
    units = [m for m in model.modules() if isinstance(m, XUnit)]
    assert len(units) == 36 + 1
    assert all(u.pointwise and u.gate_type == "sigmoid" and u.kernel_size == 9 for u in units)
    layers = [m for m in model.modules() if type(m).__name__ == "DenseLayer"]
    assert len(layers) == 36 and all(isinstance(layer.gate, XUnit) and layer.gate.channels == 12 for layer in layers)
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 2  # average pooling between the three blocks
    assert model.fc.in_features == model.num_features


def test_forward_backward_and_feature_shapes():
    model = create_model("dxnet_cifar_4_4_4", num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
    assert model.forward_features(x).shape == (2, model.num_features, 8, 8)


def test_svhn_dropout_variant():
    model = create_model("dxnet_cifar_4_4_4", drop_rate=0.2)
    assert _params("dxnet_cifar_4_4_4", drop_rate=0.2) == _params("dxnet_cifar_4_4_4")
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_original_xunit_variant_and_kernel_option():
    model = create_model("dxnet_cifar_4_4_4", xunit="xunit_original", xunit_kernel_size=7)
    units = [m for m in model.modules() if isinstance(m, XUnit)]
    assert all(not u.pointwise and u.gate_type == "gaussian" and u.kernel_size == 7 for u in units)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_gate_arguments_are_fixed():
    with pytest.raises(ValueError, match="gate"):
        create_model("dxnet_cifar_4_4_4", gate="relu")


def test_dxnet_105_params_and_macs():
    model = create_model("dxnet_imagenet_105").eval()
    n = count_params(model)[0]
    assert n == 6_484_840
    # "DxNet outperforms a ReLU-based DenseNet having 30% more parameters": DenseNet-121 has 23% more
    ratio = _params("densenet121") / n
    assert 1.2 < ratio < 1.35
    macs = count_macs(model, torch.randn(1, 3, 224, 224))
    assert 2.85e9 < macs < 2.92e9
    layers = [m for m in model.modules() if type(m).__name__ == "DenseLayer"]
    assert len(layers) == 6 + 12 + 20 + 12  # 2·50 convs + stem + 3 transitions + fc = 105 layers
    assert all(layer.gate.channels == 32 for layer in layers)


def test_registered_with_paper_references():
    names = list_models("dxnet*")
    assert {"dxnet_cifar_4_4_4", "dxnet_cifar_12_12_12", "dxnet_cifar_19_19_19", "dxnet_imagenet_105"} <= set(names)
    for name in names:
        info = model_info(name)
        assert "Kligvasser" in info.paper and info.source
    assert model_info("dxnet_imagenet_105").input_size == (3, 224, 224)


def test_input_validation():
    model = create_model("dxnet_cifar_4_4_4")
    with pytest.raises(ValueError, match=r"dxnet_cifar_4_4_4.*\(1, 1, 32, 32\)"):
        model(torch.randn(1, 1, 32, 32))


def test_bn_folding_is_exact_after_training_steps():
    model = create_model("dxnet_cifar_4_4_4")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    folded = fold_bn(model, x[:1])
    # per x-dense layer: BN after the xUnit's 1×1 and depthwise convs and after the bottleneck conv
    assert folded.folded_bn_pairs == 3 * 12 + 2
    ref = model(x)
    assert (folded(x) - ref).abs().max() / ref.abs().max() < 1e-4


def test_recipes_follow_the_paper():
    from leannets.engine.recipe import list_recipes, load_recipe

    if "densenet_cifar10" in list_recipes():  # the baseline recipe: identical except for the model
        base, dx = load_recipe("densenet_cifar10"), load_recipe("dxnet_cifar10")
        differ = {k for k in base if base[k] != dx[k]}
        assert differ <= {"name", "description", "model"}, differ
        assert base["model"]["name"] == "densenet_bc_cifar_16_16_16"

    c10 = load_recipe("dxnet_cifar10")
    assert c10["model"]["name"] == "dxnet_cifar_12_12_12" and c10["data"]["name"] == "cifar10"
    assert c10["optim"] == {**c10["optim"], "name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                            "weight_decay": 5e-4}
    assert c10["schedule"]["name"] == "plateau" and c10["schedule"]["factor"] == 0.5
    assert c10["train"]["epochs"] == 200 and c10["data"]["batch_size"] == 128
    d = c10["data"]
    assert d["augment"] and d["crop_padding"] == 4 and d["flip"] and d["cutout"] == 16 and d["normalize"]
    svhn = load_recipe("dxnet_svhn")
    assert svhn["model"]["kwargs"] == {"drop_rate": 0.2} and svhn["data"]["name"] == "svhn"
    assert svhn["train"]["epochs"] == 100 and svhn["data"]["batch_size"] == 128 and not svhn["data"]["augment"]
    assert svhn["optim"]["nesterov"] and svhn["schedule"]["name"] == "plateau"
    inet = load_recipe("dxnet_imagenet")
    assert inet["model"]["name"] == "dxnet_imagenet_105" and inet["data"]["input_size"] == 224
    assert inet["data"]["batch_size"] == 256 and inet["train"]["epochs"] == 90 and inet["data"]["flip"]


def test_cifar10_recipe_trains_on_real_subset(shared_data, tmp_path):
    from leannets.engine import train

    over = {"data.root": str(shared_data / "cifar10-subset"), "model.name": "dxnet_cifar_4_4_4",
            "data.batch_size": 16, "data.limit_train": 32, "data.limit_eval": 32, "train.epochs": 1,
            "train.max_steps_per_epoch": 2, "train.progress": False}
    result = train("dxnet_cifar10", overrides=over, out_dir=tmp_path / "run", verbose=False)
    assert 0 <= result["final"]["eval_acc1"] <= 1
    assert result["final"]["eval_loss"] == result["final"]["eval_loss"]  # finite, not NaN
