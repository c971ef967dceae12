"""XSepConv block: shapes, paper cost ratios (Sec. 3.1), receptive field, factory wiring, BN folding."""
import math

import pytest
import torch
import torch.nn as nn

from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_macs
from leannets.layers import create_conv, list_conv_types
from leannets.layers.xsepconv import XSEP_VARIANTS, XSepConv, xsepconv_cost_ratio, xsepconv_downsample_cost_ratio


def _conv_weights(m: nn.Module) -> int:
    return sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))


@pytest.mark.parametrize("variant", XSEP_VARIANTS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (8, 8), (9, 12)])
def test_shapes(variant, stride, hw):
    m = XSepConv(6, 5, stride, variant=variant)
    y = m(torch.randn(2, 6, *hw))
    assert y.shape == (2, 6, math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_standard_cost_ratio_is_4_plus_2k_over_k2(k):
    c, h = 8, 16
    x = torch.randn(1, c, h, h)
    xsep = XSepConv(c, k).eval()
    dw = nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False)
    assert count_macs(xsep, x) == (4 + 2 * k) * h * h * c
    assert count_macs(dw, x) == k * k * h * h * c
    assert count_macs(xsep, x) / count_macs(dw, x) == pytest.approx(xsepconv_cost_ratio(k))
    assert _conv_weights(xsep) / _conv_weights(dw) == pytest.approx(xsepconv_cost_ratio(k))
    if k == 5:  # "when k = 5, XSepConv can save 44% of the computational cost and parameter size"
        assert round(xsepconv_cost_ratio(5), 2) == 0.56


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_downsampling_cost_ratio_matches_paper_and_pays_off_only_from_k7(k):
    c, h, w = 8, 16, 16
    x = torch.randn(1, c, h, w)
    xsep = XSepConv(c, k, stride=2).eval()
    dw = nn.Conv2d(c, c, k, stride=2, padding=k // 2, groups=c, bias=False)
    expected = 4 * h * w * c + k * h * w * c // 2 + k * h * w * c // 4
    assert count_macs(xsep, x) == expected
    ratio = count_macs(xsep, x) / count_macs(dw, x)
    assert ratio == pytest.approx(xsepconv_downsample_cost_ratio(k))
    assert (ratio < 1) == (k >= 7)


@pytest.mark.parametrize("stride", [1, 2])
def test_variant_costs(stride):
    c, k, x = 8, 5, torch.randn(1, 8, 16, 16)
    macs = {v: count_macs(XSepConv(c, k, stride, variant=v).eval(), x) for v in XSEP_VARIANTS}
    weights = {v: _conv_weights(XSepConv(c, k, stride, variant=v)) for v in XSEP_VARIANTS}
    assert weights["standard"] == weights["behind"] == weights["parallel"] == (4 + 2 * k) * c
    assert weights["no2x2"] == 2 * k * c
    if stride == 1:  # "FLOPs and parameters are the same" (Table 3)
        assert macs["standard"] == macs["behind"] == macs["parallel"]
    assert macs["no2x2"] < min(macs["standard"], macs["behind"], macs["parallel"])


@pytest.mark.parametrize("k", [3, 5])
def test_receptive_field_is_k_plus_1(k):
    m = XSepConv(1, k, act=None).eval()
    for conv in m.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.constant_(conv.weight, 1.0)
    x = torch.zeros(1, 1, 21, 21)
    x[..., 10, 10] = 1.0
    with torch.no_grad():
        support = m(x)[0, 0].abs() > 1e-6
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    assert rows.max() - rows.min() + 1 == k + 1 and cols.max() - cols.min() + 1 == k + 1


@pytest.mark.parametrize("variant", XSEP_VARIANTS)
@pytest.mark.parametrize("padding", ["asymmetric", "symmetric", "improved"])
def test_bn_folds_exactly_and_backward_runs(variant, padding, randomize_bn):
    m = XSepConv(8, 5, 2, variant=variant, padding=padding, act="hswish")
    x = torch.randn(2, 8, 9, 9)
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    randomize_bn(m)
    folded = fold_bn(m, x)
    n_convs = sum(isinstance(c, nn.Conv2d) for c in m.modules())
    assert folded.folded_bn_pairs == n_convs
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), rtol=1e-4, atol=1e-5)


def test_conv_factory_wiring():
    assert "xsepconv" in list_conv_types()
    m = create_conv("xsepconv", 8, 16, 5, 2, variant="no2x2", padding="symmetric", act="hswish")
    assert isinstance(m[0], XSepConv) and m[0].variant == "no2x2" and m[0].padding == "symmetric"
    assert isinstance(m[-1], nn.BatchNorm2d) and isinstance(m[1], nn.Conv2d) and m[1].kernel_size == (1, 1)
    assert m(torch.randn(2, 8, 9, 9)).shape == (2, 16, 5, 5)
    # Multi-kernel sizes resolve to the largest (single-kernel type).
    assert create_conv("xsepconv", 4, 4, [3, 7])[0].kernel_size == 7
    x = torch.randn(1, 8, 16, 16)
    pw = 8 * 16 * 16 * 16
    assert count_macs(create_conv("xsepconv", 8, 16, 5, 1).eval(), x) == (4 + 10) * 16 * 16 * 8 + pw


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=4), "odd"), (dict(kernel_size=1), "odd"), (dict(stride=3), "stride"),
    (dict(variant="front"), "variant"), (dict(padding="reflect"), "padding"), (dict(channels=0), "channels"),
])
def test_bad_arguments(kwargs, match):
    args = dict(channels=4, kernel_size=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        XSepConv(**args)


def test_factory_rejects_unknown_options_and_unequal_stride():
    with pytest.raises(ValueError, match="unknown options"):
        create_conv("xsepconv", 4, 4, 5, 1, groups=2)
    with pytest.raises(ValueError, match="stride"):
        create_conv("xsepconv", 4, 4, 5, (1, 2))
