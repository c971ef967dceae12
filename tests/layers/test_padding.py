"""Even-kernel padding strategies and the network-wide improved schedule (XSepConv Sec. 3.2)."""
import pytest
import torch
import torch.nn as nn

from leannets.layers.padding import (GROUP_DIRECTIONS, IMPROVED_DIRECTIONS, EvenPad2d, assign_padding_schedule,
                                     improved_direction, padding_schedule, same_pad_amounts)


def _box_stack(n: int, strategy: str, channels: int = 4) -> nn.Sequential:
    """``n`` × (pad → 2×2 depthwise box filter) with the given padding strategy."""
    layers = []
    for _ in range(n):
        conv = nn.Conv2d(channels, channels, 2, groups=channels, bias=False)
        nn.init.constant_(conv.weight, 0.25)
        layers += [EvenPad2d(2, 1, strategy), conv]
    return nn.Sequential(*layers)


def _centroids(y: torch.Tensor) -> torch.Tensor:
    """(C, 2) centroid (row, col) of each channel of a (1, C, H, W) non-negative map."""
    y = y[0]
    rows = torch.arange(y.shape[-2], dtype=y.dtype)[:, None]
    cols = torch.arange(y.shape[-1], dtype=y.dtype)[None, :]
    mass = y.sum((1, 2))
    return torch.stack([(y * rows).sum((1, 2)) / mass, (y * cols).sum((1, 2)) / mass], dim=1)


def _shift(n: int, strategy: str) -> torch.Tensor:
    x = torch.zeros(1, 4, 41, 41, dtype=torch.float64)
    x[..., 20, 20] = 1.0
    stack = _box_stack(n, strategy).double()
    assign_padding_schedule(stack, x)
    with torch.no_grad():
        return _centroids(stack(x)) - 20.0


def test_direction_table_and_n_mod_4_rules():
    assert [improved_direction(i, 8) for i in range(1, 9)] == list(IMPROVED_DIRECTIONS) * 2
    assert IMPROVED_DIRECTIONS == ("right_bottom", "left_top", "left_bottom", "right_top")
    # N % 4 == 1: the last layer falls back to Wu et al.'s per-group padding.
    assert [improved_direction(i, 5) for i in range(1, 6)] == list(IMPROVED_DIRECTIONS) + ["groups"]
    assert improved_direction(1, 1) == "groups"
    # N % 4 == 2: the last two are opposite.
    assert [improved_direction(i, 6) for i in (5, 6)] == ["right_bottom", "left_top"]
    with pytest.raises(ValueError, match="index"):
        improved_direction(0, 4)


@pytest.mark.parametrize("size", [1, 2, 7, 8, 15])
@pytest.mark.parametrize("strategy", ["asymmetric", "symmetric", "improved"])
def test_same_size_output_for_odd_and_even_inputs(size, strategy):
    pad = EvenPad2d(2, 1, strategy)
    conv = nn.Conv2d(5, 5, 2, groups=5)
    y = conv(pad(torch.randn(2, 5, size, size + 3)))
    assert y.shape == (2, 5, size, size + 3)


def test_pad_sides_per_direction():
    x = torch.ones(1, 1, 3, 3)
    sides = {}
    for name in IMPROVED_DIRECTIONS:
        pad = EvenPad2d(2, 1, "improved")
        pad.index, pad.total = IMPROVED_DIRECTIONS.index(name) + 1, 4
        y = pad(x)[0, 0]
        assert y.shape == (4, 4)
        sides[name] = (y[0].sum() == 0, y[-1].sum() == 0, y[:, 0].sum() == 0, y[:, -1].sum() == 0)
    # (top zero, bottom zero, left zero, right zero)
    assert sides["right_bottom"] == (False, True, False, True)
    assert sides["left_top"] == (True, False, True, False)
    assert sides["left_bottom"] == (False, True, True, False)
    assert sides["right_top"] == (True, False, False, True)
    assert same_pad_amounts(8, 2, 2) == (0, 0) and same_pad_amounts(7, 2, 2) == (0, 1)


def test_symmetric_pads_each_channel_group_toward_its_corner():
    x = torch.ones(1, 8, 2, 2)
    y = EvenPad2d(2, 1, "symmetric")(x)[0]
    for g, direction in enumerate(GROUP_DIRECTIONS):
        ch = y[2 * g]
        assert (ch[0].sum() == 0) == ("top" in direction)
        assert (ch[:, 0].sum() == 0) == ("left" in direction)
    # Fewer channels than groups still works (empty groups are skipped).
    assert EvenPad2d(2, 1, "symmetric")(torch.ones(1, 3, 4, 4)).shape == (1, 3, 5, 5)


@pytest.mark.parametrize("n", [4, 8])
def test_improved_preserves_centroid_when_n_is_multiple_of_4(n):
    assert torch.allclose(_shift(n, "improved"), torch.zeros(4, 2, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("n", [4, 8])
def test_asymmetric_shifts_by_half_n_toward_top_left(n):
    assert torch.allclose(_shift(n, "asymmetric"), torch.full((4, 2), -n / 2, dtype=torch.float64), atol=1e-9)


def test_symmetric_balances_one_layer_but_channels_drift_half_n():
    shift = _shift(8, "symmetric")
    assert torch.allclose(shift.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(shift.abs(), torch.full((4, 2), 4.0, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7])
def test_improved_offset_stays_within_one_pixel_for_any_n(n):
    shift = _shift(n, "improved")
    assert shift.abs().max() <= 0.5 + 1e-9
    if n % 4 == 1:  # the last, per-group layer leaves the channel mean unshifted
        assert torch.allclose(shift.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9)


def test_schedule_follows_forward_order_not_registration_order():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = EvenPad2d(2, 1, "improved")
            self.unused = EvenPad2d(2, 1, "improved")
            self.early = EvenPad2d(2, 1, "improved")
            self.fixed = EvenPad2d(2, 1, "asymmetric")

        def forward(self, x):
            return self.late(self.fixed(self.early(x)))

    net = Net()
    order = assign_padding_schedule(net, torch.zeros(1, 3, 4, 4))
    assert order == ["early", "late", "unused"]
    assert (net.early.index, net.late.index, net.unused.index) == (1, 2, 3)
    assert net.early.total == 3 and net.fixed.index is None
    assert [r[0] for r in padding_schedule(net)] == ["early", "late", "unused", "fixed"]
    assert net.late.direction == "left_top" and net.fixed.direction == "right_bottom"
    # Deterministic: running it again gives the same numbering.
    assert assign_padding_schedule(net, torch.zeros(1, 3, 4, 4)) == order


def test_unassigned_improved_layer_uses_group_padding_and_bad_strategy_rejected():
    assert EvenPad2d(2).direction == "groups"
    with pytest.raises(ValueError, match="strategy"):
        EvenPad2d(2, 1, "reflect")
    with pytest.raises(ValueError, match="kernel_size"):
        EvenPad2d((2, 2, 2))
