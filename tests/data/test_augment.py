"""On-device augmentation (crop/flip/cutout/normalise), determinism, resumable skipping, DDP sharding."""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from leannets.data import ImageTensors, make_loader
from leannets.data.loader import DeviceLoader, EpochSampler, FileLoader, augment_batch


def _images(n: int = 24, c: int = 3, s: int = 16, seed: int = 0) -> ImageTensors:
    g = torch.Generator().manual_seed(seed)
    return ImageTensors(torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8), torch.arange(n) % 10)


def _batches(loader, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_crop_is_a_shift_of_the_zero_padded_image():
    imgs = _images(8).images
    out = augment_batch(imgs, torch.Generator().manual_seed(1), crop_padding=4)
    out = (out * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(imgs, (4, 4, 4, 4))
    shifts = set()
    for i in range(8):
        hits = [(dy, dx) for dy in range(9) for dx in range(9)
                if torch.equal(padded[i, :, dy:dy + 16, dx:dx + 16], out[i])]
        assert hits, f"image {i} is not a crop of its padded version"
        shifts.add(hits[0])
    assert len(shifts) > 1


def test_flip_mirrors_about_half_and_cutout_zeroes_a_clipped_square():
    imgs = _images(200, s=32).images
    out = (augment_batch(imgs, torch.Generator().manual_seed(2), flip=True) * 255).round().to(torch.uint8)
    flipped = [torch.equal(out[i], imgs[i].flip(2)) for i in range(200)]
    assert all(f or torch.equal(out[i], imgs[i]) for i, f in enumerate(flipped))
    assert 70 < sum(flipped) < 130
    ones = torch.full((200, 3, 32, 32), 255, dtype=torch.uint8)
    cut = augment_batch(ones, torch.Generator().manual_seed(3), cutout=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    zeros = (cut == 0).all(1).flatten(1).sum(1)
    assert (cut[cut != 0] == 1.0).all()  # (1 - 0.5) / 0.5 outside the square
    assert zeros.min() >= 64 and zeros.max() == 256  # clipped at corners, full 16x16 inside


def test_device_loader_deterministic_per_seed_and_epoch():
    split = _images(40)
    cfg = dict(crop_padding=4, flip=True, cutout=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    a = DeviceLoader(split, 8, train=True, seed=5, **cfg)
    b = DeviceLoader(split, 8, train=True, seed=5, **cfg)
    c = DeviceLoader(split, 8, train=True, seed=6, **cfg)
    ea, eb = _batches(a, 3), _batches(b, 3)
    assert len(ea) == 5
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(ea, eb))
    assert not torch.equal(ea[0][0], _batches(a, 4)[0][0])
    assert not torch.equal(ea[0][0], _batches(c, 3)[0][0])
    # Every training sample is seen exactly once per epoch.
    assert sorted(torch.cat([y for _, y in ea]).tolist()) == sorted(split.labels.tolist())


def test_skip_resumes_mid_epoch_exactly():
    split = _images(40)
    loader = DeviceLoader(split, 8, train=True, seed=1, crop_padding=2, flip=True)
    full = _batches(loader, 2)
    loader.set_epoch(2)
    loader.skip(3)
    rest = [(x, y) for x, y in loader]
    assert len(rest) == 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[3:], rest))


def test_ddp_shards_concatenate_to_the_single_process_batch():
    split = _images(48)
    kw = dict(train=True, seed=3, crop_padding=4, flip=True, cutout=4)
    single = _batches(DeviceLoader(split, 16, **kw), 1)
    ranks = [_batches(DeviceLoader(split, 8, rank=r, world_size=2, **kw), 1) for r in range(2)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 3
    for step in range(3):
        assert torch.equal(torch.cat([ranks[0][step][0], ranks[1][step][0]]), single[step][0])
        assert torch.equal(torch.cat([ranks[0][step][1], ranks[1][step][1]]), single[step][1])
    # Evaluation shards cover every sample once, in order.
    ev = [_batches(DeviceLoader(split, 5, train=False, rank=r, world_size=2)) for r in range(2)]
    labels = torch.cat([y for shard in ev for _, y in shard])
    assert torch.equal(labels, split.labels)


def test_make_loader_uses_global_batch_and_normalisation():
    split = _images(32)
    data_cfg = {"batch_size": 16, "eval_batch_size": 7, "crop_padding": 0, "flip": False, "cutout": 0,
                "augment": True, "normalize": True, "num_workers": 0}
    tr = make_loader(split, data_cfg, train=True, mean=(0.5,) * 3, std=(0.5,) * 3, world_size=2, rank=1)
    x, _ = next(iter(tr))
    assert x.shape[0] == 8 and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    ev = make_loader(split, data_cfg, train=False, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(ev) == 5
    x, _ = next(iter(ev))
    assert torch.allclose(x, split.images[:7].float() / 255 * 2 - 1)


def test_file_loader_sampler_matches_device_loader_order_and_shards():
    n = 30
    ds = TensorDataset(torch.arange(n))
    single = EpochSampler(n, 6, train=True, seed=4)
    single.epoch = 2
    ranks = []
    for r in range(2):
        s = EpochSampler(n, 3, train=True, seed=4, rank=r, world_size=2)
        s.epoch = 2
        ranks.append(list(s))
    order = list(single)
    for step in range(5):
        assert ranks[0][step * 3:(step + 1) * 3] + ranks[1][step * 3:(step + 1) * 3] == order[step * 6:(step + 1) * 6]
    loader = FileLoader(ds, 6, train=True, seed=4)
    loader.set_epoch(2)
    got = torch.cat([b[0] for b in loader]).tolist()
    assert got == order
    loader.set_epoch(2)
    loader.skip(4)
    assert torch.cat([b[0] for b in loader]).tolist() == order[24:]


def test_random_resized_crop_box_respects_scale_and_ratio_and_eval_center_crop():
    import numpy as np
    from PIL import Image

    from leannets.data.transforms import eval_transform, random_resized_crop_box

    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, w, h = random_resized_crop_box(120, 80, rng, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= left and left + w <= 120 and 0 <= top and top + h <= 80
        assert 0.08 * 9600 * 0.8 <= w * h <= 9600
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1 or (w, h) == (120, 80)  # (120, 80): the fallback
    img = Image.fromarray(np.arange(100 * 60 * 3, dtype=np.uint32).reshape(60, 100, 3).astype(np.uint8))
    out = eval_transform(img, 32, crop_pct=0.875)  # shorter side -> 36, then a centred 32x32 crop
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
