"""PSNR / SSIM / BT.601 Y against scikit-image, and MATLAB imresize against independent references."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from leannets.engine.restoration_metrics import (cubic_kernel, imresize, imresize_torch, modcrop, psnr, psnr_batch,
                                                   quantize, resize_weights, rgb_to_y, ssim, ssim_batch)


def _pair(shape, seed=0, noise=25):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def _sk_ssim(a, b, channel_axis=None):
    return sk_ssim(a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                   channel_axis=channel_axis)


@pytest.mark.parametrize("shape", [(37, 45), (40, 52, 3)])
def test_psnr_matches_skimage(shape):
    a, b = _pair(shape)
    assert psnr(a, b) == pytest.approx(sk_psnr(a, b, data_range=255), abs=1e-10)


def test_psnr_border_crop_and_tensor_layouts_agree():
    a, b = _pair((30, 34, 3), seed=1)
    ref = sk_psnr(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255)
    ta = torch.from_numpy(a).permute(2, 0, 1)
    tb = torch.from_numpy(b).permute(2, 0, 1)
    assert psnr(a, b, crop_border=4) == pytest.approx(ref, abs=1e-10)
    assert psnr(ta, tb, crop_border=4) == pytest.approx(ref, abs=1e-10)
    batch = psnr_batch(torch.stack([ta, tb]), torch.stack([tb, tb]), crop_border=4)
    assert batch[0] == pytest.approx(ref, abs=1e-10) and math.isinf(float(batch[1]))


def test_y_channel_is_matlab_bt601():
    a, _ = _pair((16, 16, 3), seed=2)
    np.testing.assert_allclose(rgb_to_y(a), rgb2ycbcr(a)[..., 0], atol=1e-9)
    ty = rgb_to_y(torch.from_numpy(a).permute(2, 0, 1).double())
    np.testing.assert_allclose(ty[0].numpy(), rgb2ycbcr(a)[..., 0], atol=1e-9)
    assert rgb_to_y(np.zeros((2, 2, 3)))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.full((2, 2, 3), 255.0))[0, 0] == pytest.approx(235.0)


def test_psnr_and_ssim_on_y_match_skimage():
    a, b = _pair((48, 40, 3), seed=3)
    ya, yb = rgb2ycbcr(a)[..., 0], rgb2ycbcr(b)[..., 0]
    assert psnr(a, b, y_channel=True, crop_border=2) == pytest.approx(
        sk_psnr(ya[2:-2, 2:-2], yb[2:-2, 2:-2], data_range=255), abs=1e-9)
    assert ssim(a, b, y_channel=True, crop_border=2) == pytest.approx(_sk_ssim(ya[2:-2, 2:-2], yb[2:-2, 2:-2]), abs=1e-9)


@pytest.mark.parametrize("shape,axis", [((41, 50), None), ((33, 47, 3), 2)])
@pytest.mark.parametrize("noise", [5, 60])
def test_ssim_matches_skimage_gaussian_window(shape, axis, noise):
    a, b = _pair(shape, seed=noise, noise=noise)
    assert ssim(a, b) == pytest.approx(_sk_ssim(a, b, axis), abs=1e-9)


def test_ssim_of_identical_images_is_one_and_batches_are_per_image():
    a, b = _pair((24, 24), seed=4)
    assert ssim(a, a) == pytest.approx(1.0)
    ta, tb = torch.from_numpy(a)[None].double(), torch.from_numpy(b)[None].double()
    per = ssim_batch(torch.stack([ta, ta]), torch.stack([ta, tb]))
    assert per[0] == pytest.approx(1.0) and per[1] == pytest.approx(_sk_ssim(a, b), abs=1e-9)


def test_metric_errors_name_the_problem():
    a, b = _pair((20, 20))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, b[:-1])
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a[:8, :8], b[:8, :8])
    with pytest.raises(ValueError, match="crop_border 10"):
        psnr(a, b, crop_border=10)
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(a)


def test_quantize_clips_and_rounds_to_8_bits():
    x = torch.tensor([-0.1, 0.0, 0.5, 1.2, 0.1234])
    np.testing.assert_array_equal(quantize(x).numpy(), [0, 0, 128, 255, 31])


# ---------------------------------------------------------------------------------------------
# MATLAB imresize
# ---------------------------------------------------------------------------------------------

def _matlab_reference(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB imresize (bicubic, antialiased) written out pixel by pixel from its ``contributions``:
    loops over output pixels and taps, mirrors out-of-range taps (MATLAB's aux = [1:n, n:-1:1])."""

    def resize_axis(x: np.ndarray, axis: int) -> np.ndarray:
        x = np.moveaxis(x, axis, 0)
        n = x.shape[0]
        m = int(math.ceil(n * scale))
        width = 4.0 / scale if scale < 1 else 4.0
        out = np.zeros((m,) + x.shape[1:])
        for i in range(1, m + 1):
            u = i / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - width / 2)
            taps, weights = [], []
            for j in range(left, left + int(math.ceil(width)) + 2):
                d = u - j
                wgt = scale * float(cubic_kernel(np.array(scale * d))) if scale < 1 else float(cubic_kernel(np.array(d)))
                k = j - 1
                while k < 0 or k >= n:  # symmetric (half-sample) mirroring
                    k = -k - 1 if k < 0 else 2 * n - k - 1
                taps.append(k)
                weights.append(wgt)
            total = sum(weights)
            for k, wgt in zip(taps, weights):
                out[i - 1] += wgt / total * x[k]
        return np.moveaxis(out, 0, axis)

    return resize_axis(resize_axis(img.astype(np.float64), 0), 1)


def test_x2_antialiased_taps_are_matlabs():
    # MATLAB's ×1/2 bicubic with antialiasing: cubic(x/2)/2 sampled at ±0.5, ±1.5, ±2.5, ±3.5.
    row = resize_weights(32, 16, 0.5)[8]
    taps = row[13:21] * 256
    np.testing.assert_allclose(taps, [-3, -9, 29, 111, 111, 29, -9, -3], atol=1e-12)
    assert row.sum() == pytest.approx(1.0)
    assert np.count_nonzero(row) == 8


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.7, 2.0])
def test_imresize_matches_pixel_by_pixel_reference(scale):
    img = np.random.default_rng(5).random((23, 29, 2)) * 255
    np.testing.assert_allclose(imresize(img, scale), _matlab_reference(img, scale), atol=1e-9)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4])
def test_imresize_interior_matches_pillow_bicubic(scale):
    # Pillow's BICUBIC is the same a = -0.5 kernel with the same support stretching when shrinking; it
    # only differs at the border (it renormalises instead of mirroring), so compare 3 pixels in.
    img = np.random.default_rng(6).random((96, 120)).astype(np.float32)
    ours = imresize(img.astype(np.float64), scale)
    pil = np.asarray(Image.fromarray(img, mode="F").resize((ours.shape[1], ours.shape[0]), Image.BICUBIC))
    assert np.abs(ours - pil)[3:-3, 3:-3].max() < 1e-6
    assert np.abs(ours - pil).max() > 1e-3  # ...and the border handling really differs


def test_imresize_uint8_rounds_and_preserves_constants():
    flat = np.full((20, 24, 3), 77, np.uint8)
    small = imresize(flat, 0.25)
    assert small.dtype == np.uint8 and small.shape == (5, 6, 3) and (small == 77).all()
    img = np.random.default_rng(7).integers(0, 256, (24, 24)).astype(np.uint8)
    np.testing.assert_array_equal(imresize(img, 0.5),
                                  np.clip(np.round(imresize(img.astype(np.float64), 0.5)), 0, 255).astype(np.uint8))


def test_torch_imresize_equals_numpy():
    img = np.random.default_rng(8).random((2, 3, 36, 28))
    ours = imresize_torch(torch.from_numpy(img), 0.25).numpy()
    ref = np.stack([imresize(np.moveaxis(im, 0, 2), 0.25) for im in img]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_imresize_and_modcrop_errors():
    with pytest.raises(ValueError, match="scale must be positive"):
        imresize(np.zeros((4, 4)), -1)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        imresize(np.zeros((1, 2, 3, 4)), 0.5)
    assert modcrop(np.zeros((10, 13, 3)), 4).shape == (8, 12, 3)
    with pytest.raises(ValueError, match="smaller than the scale"):
        modcrop(np.zeros((3, 9)), 4)


def test_bicubic_baseline_on_real_set5_matches_published_value(shared_data):
    # The literature's bicubic ×4 baseline on Set5 (Y channel, 4-pixel border) is 28.42 dB
    # (e.g. Lim et al. 2017, Lai et al. 2017); MATLAB downscaling + upscaling must reproduce it.
    from leannets.data.restoration import list_images, load_image

    values = []
    for f in list_images(shared_data / "restoration" / "CSet5"):
        hr = modcrop(load_image(f, 3), 4)
        up = imresize(imresize(hr, 0.25), 4.0)
        values.append(psnr(up, hr, y_channel=True, crop_border=4))
    assert np.mean(values) == pytest.approx(28.42, abs=0.03)
