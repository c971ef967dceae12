"""Multiception model families: Table 5 parameter counts, structure, shake-shake, BN folding, recipes."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import leannets
from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_params
from leannets.engine.recipe import list_recipes, load_recipe
from leannets.layers.multiception import MixConv, MulticeptionConv
from leannets.models.mobilenetv2 import MobileNetV2Cifar
from leannets.models.resnet_cifar import CifarResNet
from leannets.models.shakenet import ShakeBlock, ShakeResNet, ShakeShake, ShakeShortcut, shake_shake


def _params(name: str, **kw) -> int:
    return count_params(leannets.create_model(name, **kw))[0]


def _authors_shakenet_params(model: ShakeResNet) -> int:
    """The authors' ShakeBlock builds its shortcut with ``equal_io and None or Shortcut(...)``, which
    always creates a Shortcut; identity blocks never call it, but its weights are counted."""
    extra = 0
    for block in model.modules():
        if isinstance(block, ShakeBlock) and isinstance(block.shortcut, nn.Identity):
            ch = block.branch1[-1][0].out_channels
            extra += count_params(ShakeShortcut(ch, ch, 1))[0]
    return count_params(model)[0] + extra


def test_exact_counts_from_the_authors_code():
    assert _params("resnet20_standard") == 272_474
    assert _params("resnet20_multiception") == 189_434
    assert _params("resnet50_cifar_standard") == 758_554
    assert _params("resnet50_cifar_multiception") == 509_434
    assert _params("seresnet56_standard") == 867_866


# (model, num_classes, Table 5 standard, Table 5 Multiception) in millions
TABLE5 = [
    ("resnet20", 10, 0.2724, 0.1899),
    ("resnet50_cifar", 10, 0.7586, 0.5094),  # CIFAR-10 and STL-10 rows
    ("seresnet56", 10, 0.8679, 0.5886),
    ("resnet50_cifar", 100, 0.7644, 0.5153),
    ("resnet50_cifar", 1000, 0.8229, 0.5738),  # ImageNet32x32
]


@pytest.mark.parametrize("prefix,classes,std,mc", TABLE5)
def test_table5_parameter_column(prefix, classes, std, mc):
    n_std = _params(f"{prefix}_standard", num_classes=classes)
    n_mc = _params(f"{prefix}_multiception", num_classes=classes)
    assert abs(n_std / (std * 1e6) - 1) < 0.01
    assert abs(n_mc / (mc * 1e6) - 1) < 0.01
    # "Param Diff." column within half a percentage point
    assert abs((1 - n_mc / n_std) - (1 - mc / std)) < 0.005


@pytest.mark.parametrize("classes,std,mc", [(10, 26.78, 17.57), (100, 26.81, 17.59)])
def test_table5_shakenet(classes, std, mc):
    m_std = leannets.create_model("shakenet26_2x96d_standard", num_classes=classes)
    m_mc = leannets.create_model("shakenet26_2x96d_multiception", num_classes=classes)
    # ours: no unused weights (Gastaldi's 26.2M for the standard net)
    fc = 384 * classes + classes
    assert count_params(m_std)[0] == 26_189_056 + fc
    assert count_params(m_mc)[0] == 16_976_864 + fc
    # the authors' count adds 584,640 weights of never-called shortcuts: that reproduces Table 5
    a_std, a_mc = _authors_shakenet_params(m_std), _authors_shakenet_params(m_mc)
    assert a_std - count_params(m_std)[0] == 584_640
    assert abs(a_std / (std * 1e6) - 1) < 0.001
    assert abs(a_mc / (mc * 1e6) - 1) < 0.001
    assert abs((1 - a_mc / a_std) - (1 - mc / std)) < 0.005  # "Param Diff." -34.39 %


def test_last_stage_has_two_3x3_kernels():
    """{3,3} (two 3×3 depthwise kernels per channel), not {3}: with one 3×3 kernel the
    ResNet-20 count would be 177,434, 6.6% below the paper's 0.1899M."""
    model = leannets.create_model("resnet20_multiception")
    sets = [blk.conv1.kernel_sizes for stage in model.stages for blk in stage]
    assert sets == [(3, 5, 7)] * 3 + [(3, 5)] * 3 + [(3, 3)] * 3
    one = _params("resnet20_multiception", kernel_sizes=[[3, 5, 7], [3, 5], [3]])
    assert one == 177_434


def test_only_the_first_conv_of_each_basic_block_is_replaced():
    for name, cls in [("resnet20_multiception", MulticeptionConv), ("resnet50_cifar_mixconv", MixConv),
                      ("seresnet56_multiception", MulticeptionConv)]:
        model = leannets.create_model(name)
        blocks = [b for stage in model.stages for b in stage]
        assert all(isinstance(b.conv1, cls) for b in blocks)
        assert sum(isinstance(m, cls) for m in model.modules()) == len(blocks)
        assert all(isinstance(b.conv2[0], nn.Conv2d) and b.conv2[0].kernel_size == (3, 3) for b in blocks)
    assert len(blocks) == 27  # n = 9


def test_se_block_has_reduction_8_after_the_second_bn():
    model = leannets.create_model("seresnet56_standard")
    se = model.stages[2][0].se
    assert (se.fc1.in_channels, se.fc1.out_channels, se.fc1.bias) == (64, 8, None)
    blk = model.stages[0][1]
    x = torch.randn(2, 16, 8, 8)
    blk.eval()
    with torch.no_grad():
        h = blk.conv2(blk.act1(blk.conv1(x)))
        torch.testing.assert_close(blk(x), F.relu(blk.se(h) + x))


def test_authors_mixconv_and_dsconv_reproduce_their_resnet20_counts():
    assert _params("resnet20_standard", conv_type="mixconv_authors") == 269_848
    assert _params("resnet20_standard", conv_type="dsconv_authors") == 166_858
    assert _params("resnet20_dsconv") == 167_434  # ours: BN between depthwise and pointwise
    assert _params("resnet20_mixconv") == 168_914  # Tan & Le's depthwise MixConv
    model = leannets.create_model("resnet20_standard", conv_type="mixconv_authors")
    for stage in model.stages:  # {3, 5, 7} dense convs in every stage, whatever the stage's kernel set
        mix = stage[0].conv1
        assert [c.kernel_size[0] for c in mix.convs] == [3, 5, 7] and all(c.groups == 1 for c in mix.convs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in mix.modules())
    mix = model.stages[1][0].conv1
    assert mix.in_splits == [6, 5, 5] and mix.out_splits == [12, 10, 10] and mix.convs[0].stride == (2, 2)
    ds = leannets.create_model("resnet20_standard", conv_type="dsconv_authors").stages[0][0].conv1
    assert [type(m).__name__ for m in ds] == ["DepthwiseConv2d", "Conv2d", "BatchNorm2d"]
    assert ds[0].kernel_size == (3, 3) and ds[1].bias is not None
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(mix(torch.randn(2, 16, 8, 8)).shape, torch.Size([2, 32, 4, 4]))
    with pytest.raises(ValueError, match="takes no options"):
        leannets.layers.create_conv("mixconv_authors", 16, 16, 3, 1, impl="fused")
    with pytest.raises(ValueError, match="at least 3"):
        leannets.layers.create_conv("mixconv_authors", 2, 16, 3, 1)
    assert ds(x).shape == (2, 16, 8, 8)


def test_mobilenetv2_blocks_authors_and_linear():
    # block="linear" with dsconv is torchvision's mobilenet_v2 (1000 classes: 3,504,872 parameters)
    assert _params("mobilenetv2_cifar_dsconv", num_classes=1000, block="linear") == 3_504_872
    # the authors' block: Multiception -> ReLU -> BN (one extra BN of 2·C_out per replaced block)
    authors = leannets.create_model("mobilenetv2_cifar_multiception")
    block = authors.features[1].conv
    assert [type(m).__name__ for m in block] == ["MulticeptionConv", "ReLU", "BatchNorm2d"]
    assert block[0].mid_act is None
    linear = leannets.create_model("mobilenetv2_cifar_multiception", block="linear")
    assert linear.features[1].conv[0].mid_act == "relu6"
    with pytest.raises(ValueError, match="unknown block 'x'"):
        MobileNetV2Cifar("multiception", block="x")
    model = leannets.create_model("mobilenetv2_cifar_multiception")
    mc = [m for m in model.modules() if isinstance(m, MulticeptionConv)]
    assert [(m.in_ch, m.out_ch, m.kernel_sizes, m.stride) for m in mc] == [
        (32, 16, (3, 5, 7), 1), (96, 24, (3, 5), 2), (144, 24, (3, 5), 1)]
    with pytest.raises(ValueError, match="at most 7 stages"):
        MobileNetV2Cifar("multiception", kernel_sizes=[3] * 8)


@pytest.mark.parametrize("name,kw,left", [
    ("resnet20_standard", {}, 0), ("resnet20_dsconv", {}, 0), ("resnet20_mixconv", {}, 0),
    ("resnet20_multiception", {}, 0), ("resnet20_standard", {"conv_type": "dsconv_authors"}, 0),
    ("mobilenetv2_cifar_multiception", {"block": "linear"}, 0),
    ("mobilenetv2_cifar_multiception", {}, 3)])  # the authors' BN after the ReLU follows no conv
def test_registered_models_forward_and_fold_completely(name, kw, left):
    model = leannets.create_model(name, **kw).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        folded = fold_bn(model, x[:1])
        assert ref.shape == (2, 10)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == left
        torch.testing.assert_close(folded(x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model", [
    lambda: CifarResNet(8, "multiception", widths=(4, 8, 8)),
    lambda: CifarResNet(8, "mixconv", widths=(4, 8, 8), se_reduction=4),
    lambda: ShakeResNet(8, 4, "multiception"),
    lambda: MobileNetV2Cifar("multiception", width_mult=0.25),
])
def test_every_parameter_gets_a_gradient(model):
    m = model().train()
    loss = F.cross_entropy(m(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2]))
    loss.backward()
    # A bias that only shifts what a training-mode BN normalises next (the 1×1 conv's, as in the authors' code, and
    # the first BN's when no activation follows it) has an exactly-zero gradient in exact arithmetic; float
    # rounding leaves ~1e-8 or 0 depending on the CPU. Those must be reached, the others must move.
    absorbed: set[str] = set()
    for name, mod in m.named_modules():
        if hasattr(mod, "pw") and hasattr(mod, "bn2"):
            absorbed.add(f"{name}.pw.bias")
        if isinstance(getattr(mod, "act", None), nn.Identity) and hasattr(mod, "bn1") and hasattr(mod, "bn2"):
            absorbed |= {f"{name}.bn1.{n}" for n, _ in mod.bn1.named_parameters() if n.endswith("bias")}
    dead = [n for n, p in m.named_parameters() if p.grad is None or (n not in absorbed and not p.grad.abs().sum() > 0)]
    assert dead == []
    assert all(m.get_parameter(n).grad.abs().max() < 1e-5 for n in absorbed)  # zero up to rounding, as said


def test_kernel_sizes_and_conv_kwargs_are_configurable():
    m = CifarResNet(20, "multiception", kernel_sizes=[[5, 7], 3, [3, 3]], conv_kwargs={"stride_in": "depthwise"})
    assert [s[0].conv1.kernel_sizes for s in m.stages] == [(5, 7), (3,), (3, 3)]
    assert all(s[0].conv1.stride_in == "depthwise" for s in m.stages)
    with pytest.raises(ValueError, match="one kernel size"):
        CifarResNet(20, "multiception", kernel_sizes=[[3, 5]])
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(21)
    with pytest.raises(ValueError, match="multiception: kernel size 4"):
        leannets.create_model("resnet20_multiception", kernel_sizes=[[3, 4], [3], [3]])


def test_shake_shake_function_mixes_with_alpha_and_backpropagates_with_beta():
    x1, x2 = torch.randn(3, 2, 4, 4, requires_grad=True), torch.randn(3, 2, 4, 4, requires_grad=True)
    alpha = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1)
    beta = torch.tensor([0.7, 0.2, 0.4]).view(3, 1, 1, 1)
    out = ShakeShake.apply(x1, x2, alpha, beta)
    torch.testing.assert_close(out, alpha * x1 + (1 - alpha) * x2)
    g = torch.randn_like(out)
    out.backward(g)
    torch.testing.assert_close(x1.grad, beta * g)
    torch.testing.assert_close(x2.grad, (1 - beta) * g)


def test_shake_shake_train_random_per_sample_independent_beta_and_eval_average():
    torch.manual_seed(0)
    n = 64
    x1, x2 = torch.randn(n, 3, 2, 2, requires_grad=True), torch.randn(n, 3, 2, 2, requires_grad=True)
    out = shake_shake(x1, x2, training=True)
    alpha = ((out - x2) / (x1 - x2)).detach().flatten(1)
    torch.testing.assert_close(alpha, alpha[:, :1].expand_as(alpha), rtol=1e-3, atol=1e-4)  # one α per sample
    a = alpha[:, 0]
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.15
    out.backward(torch.ones_like(out))
    beta = x1.grad.flatten(1)
    torch.testing.assert_close(beta, beta[:, :1].expand_as(beta))
    b = beta[:, 0]
    torch.testing.assert_close(x2.grad.flatten(1)[:, 0], 1 - b)
    assert b.min() >= 0 and b.max() <= 1 and (b - a).abs().mean() > 0.1  # β drawn independently of α
    with torch.no_grad():
        torch.testing.assert_close(shake_shake(x1, x2, training=False), 0.5 * (x1 + x2))


def test_shake_block_is_random_in_training_and_deterministic_in_eval():
    torch.manual_seed(0)
    blk = ShakeBlock(4, 8, 2, "multiception", (3, 5))
    x = torch.randn(4, 4, 8, 8)
    assert not torch.allclose(blk(x), blk(x))
    blk.eval()
    with torch.no_grad():
        y = blk(x)
        torch.testing.assert_close(blk(x), y)
        h1, h2 = blk.branch1(x), blk.branch2(x)
        torch.testing.assert_close(y, 0.5 * (h1 + h2) + blk.shortcut(x))


def test_shake_shortcut_uses_both_pixel_offsets():
    sc = ShakeShortcut(2, 4, 2).eval()
    x = torch.randn(1, 2, 6, 6)
    with torch.no_grad():
        y = sc(x)
        h = F.relu(x)
        torch.testing.assert_close(y[:, :2], sc.path1(h[:, :, 0::2, 0::2]))
        torch.testing.assert_close(y[:, 2:], sc.path2(F.pad(h[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, 0::2, 0::2]))
    folded = fold_bn(sc, x)
    assert folded.folded_bn_pairs == 2  # the BN after the concat is stored per half and folds


def test_multiception_recipes_follow_the_paper():
    names = [n for n in list_recipes() if n.startswith("multiception_")]
    assert len(names) == 38
    for name in names:
        r = load_recipe(name)
        assert leannets.is_model(r["model"]["name"]), name
        o, s, d = r["optim"], r["schedule"], r["data"]
        assert (o["name"], o["lr"], o["momentum"], o["nesterov"], o["weight_decay"]) == ("sgd", 0.1, 0.9, True, 2e-4)
        assert (s["name"], s["min_lr"]) == ("cosine", 5e-5)
        ds = d["name"]
        assert d["batch_size"] == (64 if ds == "stl10" else 128), name
        assert r["train"]["epochs"] == (50 if ds == "imagenet32" else 300), name
        assert d["augment"] == (ds != "imagenet32") and d["crop_padding"] == (0 if ds == "imagenet32" else 4)
    ablation = load_recipe("multiception_cifar10_resnet50_multiception_ablation_k57")
    model = leannets.create_model(ablation["model"]["name"], **ablation["model"]["kwargs"])
    assert model.stages[0][0].conv1.kernel_sizes == (5, 7)
