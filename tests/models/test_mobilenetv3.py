"""MobileNetV3-Small (Howard et al. 2019) and its XSepConv version (Chen et al. 2020, Sec. 4)."""
import pytest
import torch
import torch.nn as nn

import leannets
from leannets.analysis.profile import count_macs, count_params
from leannets.layers.padding import EvenPad2d, padding_schedule
from leannets.layers.xsepconv import XSepConv
from leannets.models.mobilenetv3 import SMALL_BLOCKS, MobileNetV3Small, paper_depthwise


def _dw_layers(model: MobileNetV3Small) -> list[nn.Module]:
    return [b.conv_dw for b in model.blocks]


def test_imagenet_params_at_width_1():
    model = leannets.create_model("mobilenetv3_small_100")
    params = count_params(model)[0]
    assert abs(params - 2.54e6) / 2.54e6 < 0.01
    assert params == 2_542_856  # torchvision / timm mobilenet_v3_small, 1000 classes


def test_imagenet_forward_and_classifier_api():
    model = leannets.create_model("mobilenetv3_small_050_xsep").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 288, 7, 7)
        assert model(x).shape == (1, 1000)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, model.head_hidden_size)
    assert model.num_features == 288  # forward_features' width (timm's meaning)
    assert model.head_hidden_size == 1024  # Howard et al. / timm keep the hidden head at 1024 at every width
    assert model.stem[0].out_channels == 16  # and the stem at 16 below width 0.75
    scaled = leannets.create_model("mobilenetv3_small_050_xsep", width_rule="scaled")
    assert scaled.head_hidden_size == 512 and scaled.stem[0].out_channels == 8
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("layout, size, final", [("cifar", 32, 4), ("tiny", 64, 8), ("tiny", 56, 7),
                                                 ("tiny16", 56, 4), ("tiny16", 64, 4), ("imagenet", 224, 7),
                                                 ("cifar", 33, 5)])
@pytest.mark.parametrize("depthwise", ["dw", "xsep"])
def test_layouts(layout, size, final, depthwise):
    model = MobileNetV3Small(0.5, layout, depthwise, num_classes=3).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, size, size))
    assert feats.shape[-2:] == (final, final)


@pytest.mark.parametrize("tag, timm_m", [("050", 1.59), ("075", 2.04), ("100", 2.54)])
def test_howard_width_rule_gives_timms_counts(tag, timm_m):
    """timm's mobilenetv3_small_{050,075,100} (1000 classes): 1.59, 2.04, 2.54 M parameters."""
    assert round(count_params(leannets.create_model(f"mobilenetv3_small_{tag}"))[0] / 1e6, 2) == timm_m
    scaled = count_params(leannets.create_model(f"mobilenetv3_small_{tag}", width_rule="scaled"))[0]
    assert (round(scaled / 1e6, 2) == timm_m) == (tag == "100")  # the rules agree only at width 1.0
    with pytest.raises(ValueError, match="width_rule must be one of howard, scaled"):
        MobileNetV3Small(width_rule="torch")


def test_tiny_imagenet_layout_reproduces_the_4_75_percent_saving():
    """Sec. 4.2: XSepConv "saves 4.75% of the computational cost" on Tiny-ImageNet: the stride-8 layout at the
    56×56 training crop gives 4.747%; the stride-16 layout (tiny16) would give 4.20%."""
    x = torch.randn(1, 3, 56, 56)
    dw, xs = (count_macs(leannets.create_model(n).eval(), x)
              for n in ("mobilenetv3_small_tiny_100", "mobilenetv3_small_tiny_100_xsep"))
    assert 100 * (1 - xs / dw) == pytest.approx(4.75, abs=0.01)
    assert leannets.model_info("mobilenetv3_small_tiny_100").input_size == (3, 56, 56)
    dw16, xs16 = (count_macs(MobileNetV3Small(layout="tiny16", depthwise=d, num_classes=200).eval(), x)
                  for d in ("dw", "xsep"))
    assert 100 * (1 - xs16 / dw16) == pytest.approx(4.20, abs=0.01) and dw / dw16 == pytest.approx(3.2, abs=0.05)


@pytest.mark.parametrize("tag, width", [("050", 0.5), ("075", 0.75), ("100", 1.0), ("125", 1.25)])
def test_width_multipliers_registered_and_ordered(tag, width):
    dw = leannets.create_model(f"mobilenetv3_small_cifar_{tag}")
    xs = leannets.create_model(f"mobilenetv3_small_cifar_{tag}_xsep")
    assert dw.width == xs.width == width
    assert count_params(xs)[0] < count_params(dw)[0]
    for name in (f"mobilenetv3_small_{tag}", f"mobilenetv3_small_tiny_{tag}_xsep"):
        assert leannets.is_model(name)
    assert "XSepConv" in leannets.model_info(f"mobilenetv3_small_cifar_{tag}_xsep").paper
    assert "MobileNetV3" in leannets.model_info(f"mobilenetv3_small_{tag}").paper


def test_paper_setting_per_block():
    model = leannets.create_model("mobilenetv3_small_cifar_050_xsep")
    kinds = [(type(m).__name__, getattr(m, "kernel_size", None)) for m in _dw_layers(model)]
    expected = [("ConvBnAct", None)] * 4 + [("XSepConv", 5)] * 4 + [("ConvBnAct", None)] + [("XSepConv", 3)] * 2
    assert kinds == expected
    assert paper_depthwise() == ["dw"] * 4 + ["xsep5"] * 4 + ["dw", "xsep3", "xsep3"]
    # Downsampling blocks keep vanilla depthwise; every replaced layer is stride 1.
    assert all(m.stride == 1 for m in _dw_layers(model) if isinstance(m, XSepConv))


def test_mac_saving_equals_sum_over_replaced_layers():
    x = torch.randn(1, 3, 32, 32)
    dw = leannets.create_model("mobilenetv3_small_cifar_100").eval()
    xs = leannets.create_model("mobilenetv3_small_cifar_100_xsep").eval()
    sizes = {}
    hooks = [b.conv_dw.register_forward_hook(lambda m, i, o, j=j: sizes.__setitem__(j, o.shape))
             for j, b in enumerate(xs.blocks)]
    with torch.no_grad():
        xs(x)
    for h in hooks:
        h.remove()
    saving = 0
    for j, m in enumerate(_dw_layers(xs)):
        if isinstance(m, XSepConv):
            _, c, h, w = sizes[j]
            saving += (25 - (4 + 2 * m.kernel_size)) * c * h * w
    assert count_macs(dw, x) - count_macs(xs, x) == saving > 0


def test_fig4_and_fig5_options():
    down = leannets.create_model("mobilenetv3_small_tiny_100_k7down_xsep")
    blk = down.blocks[3].conv_dw
    assert isinstance(blk, XSepConv) and blk.stride == 2 and blk.kernel_size == 7
    base = leannets.create_model("mobilenetv3_small_tiny_100_k7down")
    assert base.blocks[3].conv_dw[0].kernel_size == (7, 7)
    mid = leannets.create_model("mobilenetv3_small_tiny_100_k7mid_xsep")
    assert [m.kernel_size for m in _dw_layers(mid)[4:8]] == [7] * 4
    assert leannets.create_model("mobilenetv3_small_tiny_100_k7mid").blocks[4].conv_dw[0].kernel_size == (7, 7)
    x = torch.randn(1, 3, 56, 56)
    # Fig. 4/5: the XSepConv versions need fewer MACs than their vanilla k = 7 counterparts.
    assert count_macs(down.eval(), x) < count_macs(base.eval(), x)
    assert count_macs(mid.eval(), x) < count_macs(leannets.create_model("mobilenetv3_small_tiny_100_k7mid").eval(), x)


def test_improved_padding_schedule_in_forward_order():
    model = leannets.create_model("mobilenetv3_small_cifar_050_xsep")
    sched = padding_schedule(model)
    assert len(sched) == 6  # the paper's setting has N % 4 == 2
    assert [r[1] for r in sched] == list(range(1, 7))
    assert [int(r[0].split(".")[1]) for r in sched] == [4, 5, 6, 7, 9, 10]
    assert [r[2] for r in sched] == ["right_bottom", "left_top", "left_bottom", "right_top",
                                     "right_bottom", "left_top"]
    fig4 = leannets.create_model("mobilenetv3_small_tiny_100_k7down_xsep")
    assert padding_schedule(fig4)[0][0].startswith("blocks.3.") and len(padding_schedule(fig4)) == 7
    one = MobileNetV3Small(0.5, "cifar", ["dw"] * 10 + ["xsep"], num_classes=10)
    assert padding_schedule(one)[0][2] == "groups"  # N = 1: per-group symmetric padding
    asym = MobileNetV3Small(0.5, "cifar", "xsep", padding="asymmetric")
    assert {r[2] for r in padding_schedule(asym)} == {"right_bottom"}


def test_schedule_assignment_keeps_bn_stats_and_train_mode():
    torch.manual_seed(0)
    model = MobileNetV3Small(0.5, "cifar", "xsep", num_classes=10)
    assert model.training
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(int(bn.num_batches_tracked) == 0 for bn in bns)
    assert all(torch.all(bn.running_mean == 0) for bn in bns)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_schedule_survives_export_with_folded_bn(tmp_path, fmt):
    from leannets.analysis.export import export_model

    model = leannets.create_model("mobilenetv3_small_cifar_050_xsep").eval()
    res = export_model(model, tmp_path / f"m.{fmt}", fmt=fmt, input_size=(3, 32, 32), fold_bn=True)
    assert res.max_rel_error is not None and res.max_rel_error < 1e-4
    assert res.folded_bn_pairs == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(p.index is not None for p in model.modules() if isinstance(p, EvenPad2d))


def test_training_step_changes_weights():
    model = MobileNetV3Small(0.5, "cifar", "xsep", num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    w0 = model.blocks[4].conv_dw.conv_2x2.conv.weight.clone()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(w0, model.blocks[4].conv_dw.conv_2x2.conv.weight)


@pytest.mark.parametrize("kwargs, match", [
    (dict(layout="mnist"), "layout"), (dict(width=0), "width"), (dict(depthwise=["dw"] * 3), "11 entries"),
    (dict(depthwise=["dw"] * 10 + ["sep"]), "xsep<k>"), (dict(mid_kernel=4), "mid_kernel"),
    (dict(depthwise="xsep", xsep_variant="front"), "variant"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileNetV3Small(**kwargs)


def test_input_validation_names_model():
    model = leannets.create_model("mobilenetv3_small_cifar_050_xsep")
    with pytest.raises(ValueError, match="mobilenetv3_small_cifar_050_xsep"):
        model(torch.randn(1, 1, 32, 32))
    assert len(SMALL_BLOCKS) == 11
