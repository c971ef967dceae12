"""The fixed CDF 9/7 DWT front end matches PyWavelets and halves the resolution exactly."""
import numpy as np
import pytest
import pywt
import torch

from leannets.layers.wavelet import DWT2d, IDWT2d, wavelet_filters


def _pywt_dwt2(x: torch.Tensor, wavelet: str = "bior4.4") -> np.ndarray:
    ca, (ch, cv, cd) = pywt.dwt2(x.double().numpy(), wavelet, mode="periodization")
    return np.concatenate([ca, ch, cv, cd], axis=1)


@pytest.mark.parametrize("size", [(32, 32), (16, 24), (15, 17), (224, 224)])
def test_dwt_matches_pywavelets_periodization(size):
    x = torch.rand(2, 3, *size)
    y = DWT2d("bior4.4", 3)(x)
    ref = _pywt_dwt2(x)
    assert y.shape == ref.shape == (2, 12, (size[0] + 1) // 2, (size[1] + 1) // 2)
    np.testing.assert_allclose(y.double().numpy(), ref, atol=2e-5, rtol=0)


def test_subband_order_and_orientation():
    # Horizontal stripes (vary along H) are horizontal edges: energy in cH, none in cV.
    x = torch.zeros(1, 1, 32, 32)
    x[..., ::2, :] = 1.0
    ca, ch, cv, cd = DWT2d("bior4.4", 1).split(DWT2d("bior4.4", 1)(x))
    assert ch.abs().sum() > 10 and cv.abs().sum() < 1e-4 and cd.abs().sum() < 1e-4
    assert torch.allclose(ca, torch.full_like(ca, float(ca.mean())), atol=1e-4)


def test_other_wavelets_and_single_channel():
    x = torch.rand(1, 1, 20, 20)
    for wavelet in ("haar", "db2", "bior2.2"):
        np.testing.assert_allclose(DWT2d(wavelet, 1)(x).double().numpy(), _pywt_dwt2(x, wavelet), atol=2e-5)


def test_idwt_inverts_dwt_and_matches_pywavelets():
    x = torch.rand(2, 3, 16, 20)
    y = DWT2d()(x)
    torch.testing.assert_close(IDWT2d()(y), x, atol=2e-5, rtol=0)
    ca, ch, cv, cd = (t.double().numpy() for t in y.chunk(4, 1))
    ref = pywt.idwt2((ca, (ch, cv, cd)), "bior4.4", mode="periodization")
    np.testing.assert_allclose(IDWT2d()(y).double().numpy(), ref, atol=2e-5)


def test_filters_come_from_pywavelets():
    f = wavelet_filters("bior4.4")
    np.testing.assert_array_equal(f["dec_lo"], pywt.Wavelet("bior4.4").dec_lo)
    assert len(f["dec_lo"]) == 10  # the 9/7 taps zero-padded to even length


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="cannot be halved"):
        DWT2d()(torch.rand(1, 3, 1, 8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        DWT2d()(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown wavelet 'nope'"):
        DWT2d("nope")
    with pytest.raises(ValueError, match=r"\(N, 12, h, w\)"):
        IDWT2d()(torch.rand(1, 3, 8, 8))


def test_real_images_keep_their_energy_in_ca(shared_data):
    from leannets.data.cifar import read_cifar10

    _, test, _ = read_cifar10(shared_data / "cifar10-subset")
    x = test.images[:64].float() / 255.0
    y = DWT2d()(x)
    ca, ch, cv, cd = DWT2d().split(y)
    total = y.pow(2).sum()
    assert ca.pow(2).sum() / total > 0.95  # natural images: the approximation band carries the energy
    torch.testing.assert_close(IDWT2d()(y), x, atol=3e-5, rtol=0)
