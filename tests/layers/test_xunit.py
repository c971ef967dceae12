import pytest
import torch
import torch.nn as nn

from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_params
from leannets.layers import create_act, list_acts
from leannets.layers.depthwise import DepthwiseConv2d
from leannets.layers.xunit import GaussianGate, XUnit, xunit_num_params


@pytest.mark.parametrize("pointwise", [True, False])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("channels,k", [(12, 9), (24, 9), (5, 7), (3, 3)])
def test_param_count_matches_formula(pointwise, batch_norm, channels, k):
    unit = XUnit(channels, kernel_size=k, pointwise=pointwise, batch_norm=batch_norm)
    expected = channels * k * k + channels  # depthwise K×K + bias
    if pointwise:
        expected += channels * channels + channels
    if batch_norm:
        expected += 4 * channels
    assert count_params(unit)[0] == expected == xunit_num_params(channels, k, pointwise, batch_norm)


@pytest.mark.parametrize("channels", [12, 32])
def test_depthwise_part_is_82k_as_in_the_paper(channels):
    unit = XUnit(channels, kernel_size=9)
    dw = [m for m in unit.modules() if isinstance(m, nn.Conv2d) and m.groups == channels]
    assert len(dw) == 1
    assert sum(p.numel() for p in dw[0].parameters()) == 82 * channels


def test_layouts_of_both_designs():
    dx = XUnit(8)  # DxNet: 1×1 → BN → ReLU → dw → BN → sigmoid
    kinds = [type(m) for m in dx.branch]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, DepthwiseConv2d, nn.BatchNorm2d, nn.Sigmoid]
    assert dx.branch[0].kernel_size == (1, 1) and dx.branch[3].kernel_size == (9, 9)
    orig = XUnit(8, gate="gaussian", pointwise=False)  # CVPR'18: BN → ReLU → dw → BN → exp(−x²)
    assert [type(m) for m in orig.branch] == [nn.BatchNorm2d, nn.ReLU, DepthwiseConv2d, nn.BatchNorm2d, GaussianGate]
    no_bn = XUnit(8, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())


@pytest.mark.parametrize("gate", ["sigmoid", "gaussian"])
@pytest.mark.parametrize("pointwise", [True, False])
def test_gate_in_unit_interval_and_output_is_gated_input(gate, pointwise):
    unit = XUnit(6, kernel_size=5, gate=gate, pointwise=pointwise)
    x = torch.randn(3, 6, 11, 13) * 50  # large inputs push the gate to its limits
    for mode in (unit.train, unit.eval):
        mode()
        w = unit.weight_map(x)
        assert w.shape == x.shape
        assert w.min() >= 0 and w.max() <= 1
        y = unit(x)
        torch.testing.assert_close(y, x * w)
        assert (y.abs() <= x.abs() + 1e-6).all()


def test_gaussian_gate_values():
    x = torch.tensor([0.0, 1.0, -2.0, 30.0])
    torch.testing.assert_close(GaussianGate()(x), torch.exp(-x ** 2))
    assert GaussianGate()(x)[0] == 1


def test_weight_map_is_spatial_with_kxk_support():
    unit = XUnit(4, kernel_size=5, pointwise=False).eval()
    x = torch.randn(1, 4, 15, 15).abs() + 0.5
    base = unit.weight_map(x)
    x2 = x.clone()
    x2[0, 1, 7, 7] += 3.0
    diff = (unit.weight_map(x2) - base).abs()[0, 1]
    changed = diff > 1e-7
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.sum() > 1  # neighbours react: the activation has spatial connections
    assert rows.min() >= 5 and rows.max() <= 9 and cols.min() >= 5 and cols.max() <= 9
    # without the 1×1 conv other channels are untouched; with it they are mixed
    assert (unit.weight_map(x2) - base)[0, [0, 2, 3]].abs().max() == 0
    mixed = XUnit(4, kernel_size=5, pointwise=True).eval()
    assert (mixed.weight_map(x2) - mixed.weight_map(x))[0, [0, 2, 3]].abs().max() > 0


def test_gradients_reach_input_and_every_parameter():
    unit = XUnit(5, kernel_size=9)
    x = torch.randn(2, 5, 10, 10, requires_grad=True)
    unit(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in unit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_gradcheck_double():
    unit = XUnit(2, kernel_size=3, gate="gaussian", pointwise=True, batch_norm=False).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(unit, (x,))


def test_input_not_modified_in_place():
    for kw in ({"pointwise": False, "batch_norm": False}, {"pointwise": True}, {"pointwise": False}):
        unit = XUnit(3, kernel_size=3, **kw)
        x = torch.randn(1, 3, 6, 6)
        ref = x.clone()
        unit(x)
        assert torch.equal(x, ref), kw


def test_activation_factory():
    assert {"xunit", "xunit_original"} <= set(list_acts())
    dx = create_act("xunit", 12)
    assert isinstance(dx, XUnit) and dx.pointwise and dx.gate_type == "sigmoid" and dx.kernel_size == 9
    orig = create_act("xunit_original", 12)
    assert isinstance(orig, XUnit) and not orig.pointwise and orig.gate_type == "gaussian" and orig.kernel_size == 9
    small = create_act("xunit", 4, kernel_size=7, batch_norm=False)
    assert small.kernel_size == 7 and count_params(small)[0] == xunit_num_params(4, 7, True, False)
    with pytest.raises(ValueError, match="needs `channels`"):
        create_act("xunit")


@pytest.mark.parametrize("kwargs,match", [
    ({"channels": 0}, "channels"),
    ({"channels": 4, "kernel_size": 4}, "odd"),
    ({"channels": 4, "gate": "relu"}, "sigmoid"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XUnit(**kwargs)


def test_wrong_channels_raise():
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\).*\(1, 3, 8, 8\)"):
        XUnit(4)(torch.randn(1, 3, 8, 8))


def test_bn_folds_exactly_inside_xunit():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.act = XUnit(6, kernel_size=5)

        def forward(self, x):
            return self.act(self.conv(x))

    net = Net()
    net.train()
    for _ in range(3):  # non-trivial running statistics
        net(torch.randn(4, 3, 12, 12))
    net.eval()
    x = torch.randn(2, 3, 12, 12)
    folded = fold_bn(net, x)
    assert folded.folded_bn_pairs == 2  # both branch BNs follow a conv
    torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)
