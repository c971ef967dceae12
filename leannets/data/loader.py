"""Loaders: on-device batch augmentation for in-memory sets, DataLoader workers for file-based sets.

Both loaders are deterministic under a seed and resumable mid-epoch: the order of epoch ``e`` and
the augmentation of every sample depend only on ``(seed, e, position)``, so :meth:`skip` can jump to
any step after a restart. Under DDP every rank draws the same global permutation and keeps its
slice of each global batch, so N ranks see exactly the samples (and augmentations) of one process
with the same global batch.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ._registry import ImageTensors, data_section

__all__ = ["DeviceLoader", "FileLoader", "EpochSampler", "make_loader", "augment_batch", "derive_seed",
           "describe_preprocessing"]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across runs and platforms)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _generator(*parts: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def augment_batch(images: torch.Tensor, gen: torch.Generator, *, crop_padding: int = 0, flip: bool = False,
                  cutout: int = 0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
                  ) -> torch.Tensor:
    """Random crop (zero padding) → horizontal flip → to float [0,1] → normalise → cutout.

    Args:
        images: uint8 (N, C, H, W) on any device.
        gen: CPU generator; all random parameters are drawn from it (then moved to the device),
            so the result does not depend on the device.
        crop_padding: pad by this many zeros, then crop back to H×W at a random offset.
        flip: flip each image horizontally with probability 1/2.
        cutout: zero (after normalisation, i.e. set to the mean) a square of this side centred at a
            uniformly random pixel, clipped at the border (DeVries & Taylor, 2017).
        mean, std: per-channel statistics on [0, 1]; ``None`` skips normalisation.
    """
    n, c, h, w = images.shape
    dev = images.device
    # Draw every random number up front in a fixed order so enabling one op never shifts another.
    offs = torch.randint(0, 2 * crop_padding + 1, (2, n), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    centres = torch.stack([torch.randint(0, h, (n,), generator=gen), torch.randint(0, w, (n,), generator=gen)])
    x = images
    if crop_padding > 0:
        p = crop_padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        offs = offs.to(dev)
        rows = offs[0, :, None] + torch.arange(h, device=dev)
        cols = offs[1, :, None] + torch.arange(w, device=dev)
        x = padded[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2)
    if flip:
        x = torch.where(flips.to(dev)[:, None, None, None], x.flip(3), x)
    x = x.float().div_(255.0)
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        x = x.sub_(m).div_(s)
    if cutout > 0:
        cy, cx = centres.to(dev)
        ys = torch.arange(h, device=dev)[None, :]
        xs = torch.arange(w, device=dev)[None, :]
        half = cutout // 2
        in_y = (ys >= (cy[:, None] - half)) & (ys < (cy[:, None] - half + cutout))
        in_x = (xs >= (cx[:, None] - half)) & (xs < (cx[:, None] - half + cutout))
        mask = in_y[:, :, None] & in_x[:, None, :]
        x = x.masked_fill(mask[:, None], 0.0)
    return x.contiguous()


def _normalize(images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor:
    x = images.float().div_(255.0)
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        x = x.sub_(m).div_(s)
    return x


def _shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    per = math.ceil(n / world)
    return min(rank * per, n), min((rank + 1) * per, n)


class DeviceLoader:
    """Batches of an :class:`ImageTensors` split, augmented on the device.

    Training: a fresh permutation per epoch (seeded by ``(seed, epoch)``), global batches of
    ``batch_size × world_size`` with the last partial batch dropped; this rank keeps its slice.
    Evaluation: the rank's contiguous shard in order, no augmentation.

    Yields ``(images float (B, C, H, W), labels int64 (B,))`` on ``device``.
    """

    def __init__(self, split: ImageTensors, batch_size: int, *, train: bool, device: torch.device | str = "cpu",
                 seed: int = 0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 crop_padding: int = 0, flip: bool = False, cutout: int = 0, augment: bool = True,
                 rank: int = 0, world_size: int = 1, channels_last: bool = False, max_steps: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.mean, self.std = mean, std
        self.aug = dict(crop_padding=crop_padding, flip=flip, cutout=cutout) if (train and augment) else {}
        self.rank, self.world_size = rank, world_size
        self.channels_last, self.max_steps, self.dtype = channels_last, max_steps, dtype
        self.epoch, self._start = 0, 0

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    def __len__(self) -> int:
        if self.train:
            global_b = self.batch_size * self.world_size
            steps = max(1, self.num_samples // global_b) if self.num_samples >= self.world_size else 0
        else:
            lo, hi = _shard_bounds(self.num_samples, self.rank, self.world_size)
            steps = math.ceil((hi - lo) / self.batch_size)
        return min(steps, self.max_steps) if self.max_steps else steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, steps: int) -> None:
        """Make the next iteration start at step ``steps`` of the current epoch."""
        self._start = steps

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype) if x.dtype != self.dtype else x
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, self._start = self._start, 0
        if not self.train:
            lo, hi = _shard_bounds(self.num_samples, self.rank, self.world_size)
            for step in range(start, len(self)):
                a = lo + step * self.batch_size
                b = min(a + self.batch_size, hi)
                yield self._finish(_normalize(self.images[a:b], self.mean, self.std)), self.labels[a:b]
            return
        n = self.num_samples
        global_b = min(self.batch_size * self.world_size, n)
        perm = torch.randperm(n, generator=_generator("perm", self.seed, self.epoch)).to(self.device)
        per_rank = global_b // self.world_size
        for step in range(start, len(self)):
            idx = perm[step * global_b:(step + 1) * global_b]
            gen = _generator("aug", self.seed, self.epoch, step)
            x = augment_batch(self.images[idx], gen, mean=self.mean, std=self.std, **self.aug) if self.aug else \
                _normalize(self.images[idx], self.mean, self.std)
            sl = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
            yield self._finish(x[sl]), self.labels[idx][sl]


class EpochSampler(Sampler[int]):
    """Deterministic, DDP-sharded, resumable sampler for map-style datasets (see :class:`DeviceLoader`)."""

    def __init__(self, n: int, batch_size: int, *, train: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 max_steps: int | None = None) -> None:
        self.n, self.batch_size, self.train, self.seed = n, batch_size, train, seed
        self.rank, self.world_size, self.max_steps = rank, world_size, max_steps
        self.epoch, self.start = 0, 0

    def steps(self) -> int:
        if self.train:
            s = max(1, self.n // (self.batch_size * self.world_size)) if self.n >= self.world_size else 0
        else:
            lo, hi = _shard_bounds(self.n, self.rank, self.world_size)
            s = math.ceil((hi - lo) / self.batch_size)
        return min(s, self.max_steps) if self.max_steps else s

    def indices(self) -> list[int]:
        steps = self.steps()
        if not self.train:
            lo, hi = _shard_bounds(self.n, self.rank, self.world_size)
            return list(range(lo, hi))[self.start * self.batch_size:steps * self.batch_size]
        global_b = min(self.batch_size * self.world_size, self.n)
        per_rank = global_b // self.world_size
        perm = torch.randperm(self.n, generator=_generator("perm", self.seed, self.epoch)).tolist()
        out: list[int] = []
        for step in range(self.start, steps):
            chunk = perm[step * global_b:(step + 1) * global_b]
            out += chunk[self.rank * per_rank:(self.rank + 1) * per_rank]
        return out

    def __iter__(self) -> Iterator[int]:
        idx = self.indices()
        self.start = 0
        return iter(idx)

    def __len__(self) -> int:
        return len(self.indices())


def _set_dataset_epoch(dataset: Any, epoch: int) -> None:
    while dataset is not None:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
            return
        dataset = getattr(dataset, "dataset", None)


def _find_attr(dataset: Any, name: str) -> Any:
    while dataset is not None:
        if hasattr(dataset, name):
            return getattr(dataset, name)
        dataset = getattr(dataset, "dataset", None)
    return None


class FileLoader:
    """DataLoader over a map-style dataset with an :class:`EpochSampler`; batches go to ``device``.

    A leading uint8 image tensor is converted to float and normalised on the device.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, train: bool, device: torch.device | str = "cpu",
                 seed: int = 0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 num_workers: int = 0, rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 max_steps: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.device, self.dtype = torch.device(device), dtype
        self.dataset, self.train = dataset, train
        self.sampler = EpochSampler(len(dataset), batch_size, train=train, seed=seed, rank=rank,
                                    world_size=world_size, max_steps=max_steps)
        self.mean, self.std, self.channels_last = mean, std, channels_last
        set_seed = _find_attr(dataset, "set_seed")
        if set_seed is not None:
            set_seed(seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
                                 collate_fn=_find_attr(dataset, "collate_fn"),
                                 pin_memory=self.device.type == "cuda", drop_last=False,
                                 persistent_workers=False)

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def __len__(self) -> int:
        return self.sampler.steps()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = epoch
        _set_dataset_epoch(self.dataset, epoch)

    def skip(self, steps: int) -> None:
        self.sampler.start = steps

    def _move(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=True)
            return batch.to(self.dtype) if batch.is_floating_point() and batch.dtype != self.dtype else batch
        if isinstance(batch, (list, tuple)):
            return type(batch)(self._move(b) for b in batch)
        if isinstance(batch, Mapping):
            return {k: self._move(v) for k, v in batch.items()}
        return batch

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            batch = self._move(batch)
            if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor) \
                    and batch[0].dtype == torch.uint8:
                x = _normalize(batch[0], self.mean, self.std).to(self.dtype)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                batch = (x, *batch[1:])
            yield batch


def describe_preprocessing(splits: Any, data_cfg: Mapping[str, Any]) -> dict[str, str] | None:
    """What the model sees, in words (train / eval transforms, normalisation, storage): the builder's own
    description when it gives one, the on-device batch augmentation for in-memory splits; ``None`` otherwise."""
    given = (getattr(splits, "meta", None) or {}).get("preprocessing")
    if given:
        return dict(given)
    if not isinstance(getattr(splits, "train", None), ImageTensors):
        return None
    cfg = data_section(data_cfg)
    _, h, w = splits.train.images.shape[1:]
    steps = [f"zero-pad {cfg.crop_padding} + random {h}×{w} crop"] if cfg.crop_padding else []
    steps += ["horizontal flip"] if cfg.flip else []
    steps += [f"cutout {cfg.cutout}"] if cfg.cutout else []
    train = " + ".join(steps) if cfg.augment and steps else "none"
    mean, std = getattr(splits, "mean", None), getattr(splits, "std", None)
    norm = (f"mean ({', '.join(f'{v:.4g}' for v in mean)}), std ({', '.join(f'{v:.4g}' for v in std)})"
            if cfg.normalize and mean and std else "none (pixels / 255)")
    return {"train": train + " (on the device, per batch)", "eval": f"as stored ({h}×{w})", "normalise": norm,
            "storage": "decoded once, held in memory as uint8"}


def make_loader(split: Any, data_cfg: Mapping[str, Any], *, train: bool, device: torch.device | str = "cpu",
                seed: int = 0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                rank: int = 0, world_size: int = 1, channels_last: bool = False, max_steps: int | None = None,
                dtype: torch.dtype = torch.float32) -> DeviceLoader | FileLoader:
    """The loader for one split under a resolved ``data`` recipe section; floating batches come as ``dtype``.

    ``data.batch_size`` is the *global* training batch (divided across ``world_size`` ranks);
    ``data.eval_batch_size`` is per rank.
    """
    data_cfg = data_section(data_cfg)
    if train:
        if data_cfg.batch_size % world_size:
            raise ValueError(f"data.batch_size={data_cfg.batch_size} is not divisible by the "
                             f"{world_size} DDP processes")
        batch = data_cfg.batch_size // world_size
    else:
        batch = data_cfg.eval_batch_size
    if not data_cfg.normalize:
        mean = std = None
    if isinstance(split, ImageTensors):
        return DeviceLoader(split, batch, train=train, device=device, seed=seed, mean=mean, std=std,
                            crop_padding=data_cfg.crop_padding, flip=data_cfg.flip, cutout=data_cfg.cutout,
                            augment=data_cfg.augment, rank=rank, world_size=world_size, channels_last=channels_last,
                            max_steps=max_steps, dtype=dtype)
    if isinstance(split, Dataset):
        return FileLoader(split, batch, train=train, device=device, seed=seed, mean=mean, std=std,
                          num_workers=data_cfg.num_workers, rank=rank, world_size=world_size,
                          channels_last=channels_last, max_steps=max_steps, dtype=dtype)
    raise ValueError(f"cannot load a split of type {type(split).__name__}: expected ImageTensors or a "
                     f"torch.utils.data.Dataset")
