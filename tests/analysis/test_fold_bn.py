import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import leannets
from leannets.analysis.fold_bn import find_conv_bn_pairs, fold_bn


def _probe(name: str) -> torch.Tensor:
    model_info = leannets.model_info(name)
    c = model_info.input_size[0]
    model = leannets.create_model(name)
    size = max(32, getattr(model, "min_input_size", 1))
    div = getattr(model, "size_divisor", 1)
    size = -(-size // div) * div
    return torch.randn(1, c, size, size)


def test_folds_grouped_asymmetric_and_2x2_kernels(randomize_bn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(8, 8, (1, 5), padding=(0, 2), groups=8, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.k2 = nn.Conv2d(8, 8, 2, groups=8)
            self.bn2 = nn.BatchNorm2d(8)
            self.pw = nn.Conv2d(8, 4, 1)
            self.bn3 = nn.BatchNorm2d(4)

        def forward(self, x):
            x = F.relu(self.bn1(self.dw(x)))
            x = self.bn2(self.k2(F.pad(x, (0, 1, 0, 1))))
            return self.bn3(self.pw(x))

    net = Net().eval()
    randomize_bn(net)
    x = torch.randn(2, 8, 9, 9)
    folded = fold_bn(net, x)
    assert folded.folded_bn_pairs == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-5)


def test_bn_after_non_conv_or_shared_output_is_left_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn_after_cat = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
            self.bn_shared = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            z = self.conv2(x)
            return self.bn_after_cat(torch.cat([y, y], 1)), self.bn_shared(z) + z

    net = Net().eval()
    assert find_conv_bn_pairs(net, torch.randn(1, 3, 8, 8)) == []


@pytest.mark.parametrize("name", leannets.list_models())
def test_fold_bn_is_exact_for_every_registered_model(name, randomize_bn):
    model = leannets.create_model(name).eval()
    randomize_bn(model)
    x = _probe(name)
    with torch.no_grad():
        ref = model(x)
        out = fold_bn(model, x)(x)
    scale = ref.abs().max().clamp_min(1e-6)
    assert (out - ref).abs().max() / scale < 1e-4
