"""WAE encoder/decoder shapes, transform/joint losses and their gradients."""
import pytest
import torch

from leannets.layers.wae import WAEDecoder, WAEEncoder, half_size, joint_loss, transform_loss
from leannets.models.wae_classifier import WAE


@pytest.mark.parametrize("h,w", [(32, 32), (33, 31), (2, 3), (17, 40)])
def test_encoder_decoder_shapes_even_and_odd(h, w):
    wae = WAE()
    x = torch.randn(2, 3, h, w)
    i_l, i_h, recon = wae.forward_all(x)
    assert i_l.shape == i_h.shape == (2, 3, (h + 1) // 2, (w + 1) // 2)
    assert recon.shape == x.shape
    if h % 2 == 0 and w % 2 == 0:
        assert i_l.shape[-2:] == (h // 2, w // 2)  # exact halving
        assert wae.decode(i_l, i_h).shape == x.shape


def test_encoder_layout_matches_paper():
    enc = WAEEncoder()
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 16, (3, 3), (1, 1)), (16, 16, (3, 3), (1, 1)), (16, 16, (3, 3), (1, 1)), (16, 6, (3, 3), (2, 2))]
    dec = WAEDecoder()
    for branch in (dec.branch_l, dec.branch_h):
        assert isinstance(branch[0], torch.nn.ConvTranspose2d) and branch[0].stride == (2, 2)
        assert sum(isinstance(m, torch.nn.Conv2d) for m in branch) == 3


def test_branch_convs_are_two_independent_convs():
    # I_L depends only on the first 3 output filters, I_H only on the last 3.
    enc = WAEEncoder()
    x = torch.randn(1, 3, 8, 8)
    i_l, i_h = enc(x)
    with torch.no_grad():
        enc.branches.weight[3:].add_(1.0)
    i_l2, i_h2 = enc(x)
    torch.testing.assert_close(i_l, i_l2)
    assert not torch.allclose(i_h, i_h2)


def test_sizes_that_cannot_be_halved_raise():
    with pytest.raises(ValueError, match=r"1×8 cannot be halved"):
        WAEEncoder()(torch.randn(1, 3, 1, 8))
    with pytest.raises(ValueError, match="cannot be halved|H, W >= 2"):
        WAE()(torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"cannot rebuild 12×12 from 8×8"):
        WAEDecoder()(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), (12, 12))
    with pytest.raises(ValueError, match="equal shape"):
        WAEDecoder()(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        WAEEncoder()(torch.randn(1, 1, 8, 8))
    assert half_size((3, 7, 9)) == (4, 5)


def test_transform_loss_normalisations():
    x, recon, i_h = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.randn(4, 3, 4, 4)
    s = transform_loss(x, recon, i_h, energy_weight=1.0, reduction="sum")
    # Caffe Euclidean loss: 1/(2N) Σ_n ||.||²
    torch.testing.assert_close(s.reconstruction, ((x - recon) ** 2).sum() / (2 * 4))
    torch.testing.assert_close(s.energy, (i_h ** 2).sum() / (2 * 4))
    torch.testing.assert_close(s.total, s.reconstruction + s.energy)
    m = transform_loss(x, recon, i_h, energy_weight=0.5, reduction="mean")
    torch.testing.assert_close(m.total, ((x - recon) ** 2).mean() + 0.5 * (i_h ** 2).mean())
    with pytest.raises(ValueError, match="reduction must be one of"):
        transform_loss(x, recon, i_h, reduction="max")
    with pytest.raises(ValueError, match="differ in shape"):
        transform_loss(x, recon[..., :7], i_h)


def test_transform_loss_gradients_reach_encoder_and_decoder():
    wae = WAE()
    x = torch.randn(2, 3, 16, 16)
    wae.loss(x).total.backward()
    for name, p in wae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_energy_term_pushes_only_through_the_ih_branch():
    wae = WAE()
    x = torch.randn(2, 3, 16, 16)
    i_l, i_h = wae.encode(x)
    transform_loss(x, x.clone(), i_h).total.backward()  # perfect reconstruction: only energy remains
    g = wae.encoder.branches.weight.grad
    assert g[:3].abs().sum() == 0 and g[3:].abs().sum() > 0
    assert wae.decoder.branch_l[0].weight.grad is None


def test_gradient_matches_finite_difference():
    torch.manual_seed(1)
    wae = WAE(mid_chs=4).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.double)
    w = wae.encoder.branches.weight
    loss = wae.loss(x).total
    loss.backward()
    eps = 1e-6
    with torch.no_grad():
        w[4, 2, 1, 1] += eps
        up = wae.loss(x).total
        w[4, 2, 1, 1] -= 2 * eps
        down = wae.loss(x).total
    assert abs((up - down) / (2 * eps) - w.grad[4, 2, 1, 1]) < 1e-5 * max(1.0, abs(float(w.grad[4, 2, 1, 1])))


def test_joint_loss_weight():
    cls, t = torch.tensor(2.0), torch.tensor(300.0)
    assert float(joint_loss(cls, t)) == pytest.approx(2.3)
    assert float(joint_loss(cls, t, transform_weight=0.01)) == pytest.approx(5.0)
