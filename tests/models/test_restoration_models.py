"""Restoration nets: parameter counts from the papers, no-BN SR, residual learning, shapes, options."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import leannets
from leannets.analysis.profile import count_macs, count_params
from leannets.layers.xunit import XUnit, xunit_num_params
from leannets.models.restoration import ConvXUnitNet, DenseDenoiser, DenseSR, DnCNN

DENOISERS = leannets.list_models(task="denoising")
SUPER_RESOLVERS = leannets.list_models(task="super_resolution")


def _params(name, **kw):
    return count_params(leannets.create_model(name, **kw))[0]


def test_all_restoration_models_are_registered_with_their_task():
    assert {"dxnet_denoise_4_4_4", "dxnet_denoise_4_6_8", "densenet_denoise_4_4_4", "densenet_denoise_4_6_8",
            "dncnn", "xdncnn", "convxunit_original", "convxunit_1x1"} <= set(DENOISERS)
    assert {"dxnet16_sr", "dxnet32_sr", "densenet16_sr", "densenet32_sr"} <= set(SUPER_RESOLVERS)
    for name in DENOISERS + SUPER_RESOLVERS:
        info = leannets.model_info(name)
        assert info.num_classes == 0 and info.paper and info.source


def test_dncnn_has_056m_parameters():
    # 17 layers × 64 channels: 640 + 15 × (36,864 + 128) + 577 (Zhang et al.: ~0.56M).
    assert _params("dncnn") == 556_097
    assert round(_params("dncnn") / 1e6, 2) == 0.56


def test_dxnet16_has_086m_parameters_within_10_percent():
    n = _params("dxnet16_sr")
    assert n == 841_667
    assert abs(n - 0.86e6) / 0.86e6 < 0.10


def test_dxnet_4_4_4_is_one_fourth_of_dncnn():
    # §4.3: "DxNet_{4,4,4} ... its size is one fourth of DnCNN in terms of number of parameters".
    ratio = _params("dxnet_denoise_4_4_4") / _params("dncnn")
    assert 0.22 < ratio < 0.28


def test_dxnet_and_densenet_differ_exactly_by_the_xunits():
    # 12 x-dense layers with an xUnit on k=16 channels + one xUnit after the 64-channel stem.
    diff = _params("dxnet_denoise_4_4_4") - _params("densenet_denoise_4_4_4")
    assert diff == 12 * xunit_num_params(16, 9) + xunit_num_params(64, 9)
    sr_diff = _params("dxnet16_sr") - _params("densenet16_sr")
    assert sr_diff == 34 * xunit_num_params(16, 9, batch_norm=False) + xunit_num_params(64, 9, batch_norm=False)


def test_xdncnn_matches_its_formula():
    c, k = 64, 9
    xunit = xunit_num_params(c, k, pointwise=False, batch_norm=True)
    expected = (9 * c + c) + xunit + 7 * (2 * c + 9 * c * c + c + xunit) + (2 * c + 9 * c + 1)
    assert _params("xdncnn") == expected == 304_769


@pytest.mark.parametrize("name", SUPER_RESOLVERS)
def test_super_resolvers_have_no_batchnorm(name):
    model = leannets.create_model(name)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.PixelShuffle) for m in model.modules())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_output_size_and_global_bicubic_residual(scale):
    model = DenseSR(block_config=(2, 2), growth_rate=4, num_init_features=8, scale=scale).eval()
    x = torch.rand(2, 3, 9, 11)
    y = model(x)
    assert y.shape == (2, 3, 9 * scale, 11 * scale)
    nn.init.zeros_(model.tail.weight)
    nn.init.zeros_(model.tail.bias)
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.interpolate(x, scale_factor=scale, mode="bicubic",
                                                           align_corners=False))


@pytest.mark.parametrize("cls,last", [(DenseDenoiser, "head"), (DnCNN, "body.-1"), (ConvXUnitNet, "body.-1")])
def test_denoisers_use_residual_learning(cls, last):
    kw = {"block_config": (2,), "num_init_features": 8, "growth_rate": 4} if cls is DenseDenoiser else {"depth": 3,
                                                                                                         "width": 8}
    model = cls(**kw).eval()
    conv = model.head if last == "head" else model.body[-1]
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        noise = cls(**kw, residual=False).eval()
        noise.load_state_dict(model.state_dict())
        torch.testing.assert_close(model(x), x - noise(x))  # output = input − predicted noise
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        torch.testing.assert_close(model(x), x)


@pytest.mark.parametrize("name", DENOISERS)
def test_denoisers_keep_size_for_gray_and_color(name):
    for c in (1, 3):
        model = leannets.create_model(name, in_chans=c).eval()
        x = torch.rand(1, c, 13, 10)
        with torch.no_grad():
            assert model(x).shape == x.shape


def test_block_config_and_growth_are_configurable():
    model = leannets.create_model("dxnet_denoise_4_4_4", block_config=(2, 3), growth_rate=8)
    assert model.block_config == (2, 3)
    # stem 64 → +2·8 = 80 → transition 40 → +3·8 = 64 channels into the head.
    assert model.num_features == 64
    sr = leannets.create_model("dxnet32_sr")
    assert sr.block_config == (4, 6, 8) and sr.num_features == 400


def test_fig4_pair_differs_only_in_the_xunit_design():
    orig = leannets.create_model("convxunit_original", depth=4)
    ours = leannets.create_model("convxunit_1x1", depth=4)
    xo = [m for m in orig.modules() if isinstance(m, XUnit)]
    xn = [m for m in ours.modules() if isinstance(m, XUnit)]
    assert len(xo) == len(xn) == 3
    assert all(not u.pointwise and u.gate_type == "gaussian" and u.kernel_size == 9 for u in xo)
    assert all(u.pointwise and u.gate_type == "sigmoid" and u.kernel_size == 9 for u in xn)
    assert count_params(ours)[0] - count_params(orig)[0] == 3 * (64 * 64 + 64)
    deeper = leannets.create_model("convxunit_1x1", depth=6)
    assert sum(isinstance(m, XUnit) for m in deeper.modules()) == 5


def test_sr_xunits_have_no_bn_and_denoiser_xunits_do():
    sr_units = [m for m in leannets.create_model("dxnet16_sr").modules() if isinstance(m, XUnit)]
    dn_units = [m for m in leannets.create_model("dxnet_denoise_4_4_4").modules() if isinstance(m, XUnit)]
    assert len(sr_units) == 35 and not any(u.batch_norm for u in sr_units)
    assert len(dn_units) == 13 and all(u.batch_norm for u in dn_units)


def test_dncnn_macs_are_weights_times_pixels():
    dn = leannets.create_model("dncnn").eval()
    m1 = count_macs(dn, torch.rand(1, 1, 16, 16))
    m2 = count_macs(dn, torch.rand(1, 1, 32, 32))
    assert m2 == 4 * m1
    # DnCNN: every conv weight is applied once per pixel.
    assert m1 == 16 * 16 * sum(p.numel() for n, p in dn.named_parameters() if n.endswith("weight") and p.dim() == 4)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="scale must be 2, 3, 4 or 8"):
        leannets.create_model("dxnet16_sr", scale=5)
    with pytest.raises(ValueError, match="block_config"):
        leannets.create_model("dxnet_denoise_4_4_4", block_config=(4, 0))
    with pytest.raises(ValueError, match="residual must be"):
        leannets.create_model("densenet16_sr", residual="nearest")
    model = leannets.create_model("dncnn")
    with pytest.raises(ValueError, match=r"dncnn.*\(N, 1, H, W\).*\(1, 3, 8, 8\)"):
        model(torch.rand(1, 3, 8, 8))
