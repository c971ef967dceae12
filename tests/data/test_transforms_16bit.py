"""16-bit images are scaled to 8 bits everywhere an image is read, never clipped near-white by PIL's convert."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from leannets.commands.predict import load_image as predict_image
from leannets.data.restoration import load_image as read_image
from leannets.data.transforms import as_8bit, load_image


def _pair(tmp_path):
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    Image.fromarray(eight, mode="L").save(tmp_path / "8.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "16.png")  # the same picture in 16 bits
    return eight, tmp_path / "8.png", tmp_path / "16.png"


def test_a_16_bit_png_reads_as_its_8_bit_twin(tmp_path):
    eight, p8, p16 = _pair(tmp_path)
    with Image.open(p16) as im:
        assert im.mode.startswith("I") and np.array_equal(np.asarray(as_8bit(im)), eight)
    assert np.array_equal(np.asarray(load_image(p16, "RGB")), np.asarray(load_image(p8, "RGB")))
    assert np.array_equal(read_image(p16, 1), read_image(p8, 1))
    a, b = predict_image(p16, (3, 32, 32)), predict_image(p8, (3, 32, 32))
    assert torch.equal(a, b) and 0.3 < float(a.mean()) < 0.7  # not near-white
