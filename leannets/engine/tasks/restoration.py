"""Image restoration tasks for the one trainer: ``denoising`` and ``super_resolution``.

Data are clean images (``leannets.data.restoration``); the task makes the degraded input:

- ``denoising``: additive white Gaussian noise of ``task.sigma`` on the [0, 255] scale, drawn on
  the fly for training and from a generator seeded by ``(task.eval_seed, image index)`` for
  evaluation, so every run evaluates the same noisy images. No clipping of the noisy input.
- ``super_resolution``: MATLAB-bicubic (antialiased) ``1/task.scale`` downsampling rounded to 8 bits,
  of each training patch on the device, and of each evaluation image after cropping it to a
  multiple of the scale (MATLAB ``modcrop``), as the SR benchmarks are made.

Loss: ``task.loss`` (MSE for denoising, L1 for SR, as the paper). Evaluation: every image whole
(padded by reflection to the model's ``size_divisor`` and cropped back), output clipped and rounded
to 8 bits, PSNR and SSIM on [0, 255] (Y channel of BT.601 and a border of ``scale`` pixels for SR
by default); the main metric is PSNR (higher is better). :meth:`RestorationTask.report` is the
per-image table ``leannets eval`` prints; :func:`evaluate_folder` evaluates a checkpoint on any folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets.config import Field, StageConfig
from leannets.data import DataSplits
from leannets.data.loader import derive_seed
from leannets.data.restoration import ImageDataset
from leannets.models import create_model

from ..checkpoint import load_model
from ..recipe import apply_overrides, stage_configs
from ..restoration_metrics import imresize, imresize_torch, psnr_batch, quantize, ssim_batch
from ..task import Task, create_task, register_task

__all__ = ["RestorationTask", "DenoisingTask", "SuperResolutionTask", "eval_noise", "run_model",
           "evaluate_folder", "format_rows", "restoration_task_for", "load_restoration_model"]


def eval_noise(shape: tuple[int, ...], sigma: float, seed: int, index: int) -> torch.Tensor:
    """The fixed evaluation noise of image ``index``: N(0, (σ/255)²), float32 on the CPU."""
    gen = torch.Generator().manual_seed(derive_seed("restoration-noise", seed, index))
    return torch.randn(shape, generator=gen, dtype=torch.float32) * (sigma / 255.0)


def run_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a restoration model to a whole ``(N, C, H, W)`` image: pad by reflection so the model's
    ``size_divisor`` and ``min_input_size`` are met, then crop the output back (× its ``scale``)."""
    div = max(1, int(getattr(model, "size_divisor", 1)))
    min_size = max(1, int(getattr(model, "min_input_size", 1)))
    scale = int(getattr(model, "scale", 1))
    h, w = x.shape[-2:]
    th = max(min_size, -(-h // div) * div)
    tw = max(min_size, -(-w // div) * div)
    th, tw = -(-th // div) * div, -(-tw // div) * div
    if (th, tw) != (h, w):
        mode = "reflect" if th - h < h and tw - w < w else "replicate"
        x = F.pad(x, (0, tw - w, 0, th - h), mode=mode)
    return model(x)[..., : h * scale, : w * scale]


class RestorationTask(Task):
    """Shared parts of the denoising and super-resolution tasks (image-to-image, PSNR/SSIM)."""

    main_metric = "psnr"
    higher_is_better = True
    default_loss = "mse"

    def __init__(self, cfg: StageConfig) -> None:
        super().__init__(cfg)
        self._rows: dict[int, dict[str, float]] = {}

    # -- configuration ----------------------------------------------------------------------------
    @property
    def loss_name(self) -> str:
        return self.opts.loss or self.default_loss

    @property
    def scale(self) -> int:
        return 1

    @property
    def y_channel(self) -> bool:
        return bool(self.opts.y_channel)

    @property
    def crop_border(self) -> int:
        value = self.opts.crop_border
        return self.scale if value is None else int(value)

    def loss_fn(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "l1":
            return F.l1_loss(out.float(), target.float())
        return F.mse_loss(out.float(), target.float())

    # -- data and model -----------------------------------------------------------------------------
    def build_data(self):  # -> DataSplits
        splits = super().build_data()
        ds: Any = splits.train
        while ds is not None and not hasattr(ds, "set_epoch"):
            ds = getattr(ds, "dataset", None)
        if ds is not None and hasattr(ds, "seed"):
            ds.seed = self.cfg.seed
        self._check_patch(int(splits.input_size[-1]))
        return splits

    def _check_patch(self, patch: int) -> None:
        pass

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Model keyword arguments the task fixes (e.g. the SR scale)."""
        return {}

    def build_model(self, splits: DataSplits) -> nn.Module:
        m = self.cfg.model
        kwargs = dict(m.kwargs or {})
        kwargs.update(self.model_kwargs(kwargs))
        if getattr(splits, "in_chans", None):
            kwargs.setdefault("in_chans", splits.in_chans)
        model = create_model(m.name, **kwargs)
        kind = getattr(model, "task", None)
        if kind is not None and kind != self.name:
            raise ValueError(f"model {m.name!r} is a {kind} model but the recipe's task.name is "
                             f"{self.name!r}; pick a {self.name} model (leannets list) or task.name={kind}")
        if int(getattr(model, "scale", 1)) != self.scale:
            raise ValueError(f"model {m.name!r} upscales ×{getattr(model, 'scale', 1)} but task.scale is {self.scale}")
        return model

    # -- degradations -----------------------------------------------------------------------------
    def degrade_batch(self, clean: torch.Tensor) -> torch.Tensor:
        """Training input made from clean ``(N, C, H, W)`` images in [0, 1]."""
        raise NotImplementedError

    def eval_pair(self, clean: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input in [0, 1] ``(1, C, h, w)``, uint8-valued target ``(1, C, H, W)``) of one image."""
        raise NotImplementedError

    # -- steps ------------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        clean = batch[0] if isinstance(batch, (list, tuple)) else batch
        if clean.dtype == torch.uint8:
            clean = clean.float() / 255.0
        out = model(self.degrade_batch(clean))
        loss = self.loss_fn(out, clean)
        with torch.no_grad():
            mse = F.mse_loss(out.detach().float().clamp(0, 1), clean.float())
            psnr = -10.0 * torch.log10(mse.clamp_min(1e-12))
        return loss, {"psnr": psnr}

    @torch.no_grad()
    def evaluate_image(self, model: nn.Module, clean: torch.Tensor, index: int) -> dict[str, float]:
        """Loss, PSNR and SSIM of one clean uint8 ``(C, H, W)`` image."""
        device = next(model.parameters()).device
        inp, target = self.eval_pair(clean.cpu(), int(index))
        out = run_model(model, inp.to(device)).float().cpu()
        if out.shape != target.shape:
            raise ValueError(f"model output {tuple(out.shape)} does not match the target {tuple(target.shape)}")
        loss = float(self.loss_fn(out, target.float() / 255.0))
        pred = quantize(out)
        kw = dict(crop_border=self.crop_border, y_channel=self.y_channel and target.shape[1] == 3)
        return {"loss": loss, "psnr": float(psnr_batch(pred, target, **kw)[0]),
                "ssim": float(ssim_batch(pred, target, **kw)[0])}

    def _items(self, batch: Any) -> Iterable[tuple[torch.Tensor, int]]:
        if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], (list, tuple)):
            for img, idx in batch:  # list-collated whole images
                yield img, int(idx)
        else:  # a stacked batch (images, indices)
            images, idx = batch[0], batch[1]
            for i in range(images.shape[0]):
                yield images[i], int(idx[i])

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, int]]:
        sums = {"loss": 0.0, "psnr": 0.0, "ssim": 0.0}
        n = 0
        for img, idx in self._items(batch):
            if img.is_floating_point():
                img = (img * 255.0).round().clamp(0, 255).to(torch.uint8)
            values = self.evaluate_image(model, img, idx)
            self._rows[idx] = values
            for k, v in values.items():
                sums[k] += v
            n += 1
        return {k: (torch.tensor(v, dtype=torch.float64), n) for k, v in sums.items()}

    def evaluate(self, model: nn.Module, loader: Any, distributed: bool = False,
                 autocast: Callable[[], Any] | None = None) -> dict[str, float]:
        """Mean loss/PSNR/SSIM over the loader's images (per-image values kept for :meth:`report`)."""
        self._rows = {}
        return super().evaluate(model, loader, distributed, autocast)

    def report(self, model: nn.Module, loader: Any) -> str | None:
        """Per-image PSNR/SSIM table of the last :meth:`evaluate` (recomputed if there was none)."""
        dataset: Any = getattr(loader, "dataset", None)
        names = None
        while dataset is not None and names is None:
            names = getattr(dataset, "names", None)
            dataset = getattr(dataset, "dataset", None)
        if not getattr(self, "_rows", None):
            self.evaluate(model, loader)
        rows = [{"image": names[i] if names is not None and i < len(names) else f"#{i}", **v}
                for i, v in sorted(self._rows.items())]
        return format_rows({"task": self.name, "rows": rows, "mean": _mean(rows), "data": self.cfg.data.name,
                            "settings": self.describe(model)})

    def describe(self, model: nn.Module) -> dict[str, Any]:
        """The evaluation settings printed with the results."""
        channels = int(getattr(model, "in_chans", 1))
        return {"sigma": getattr(self, "sigma", None), "scale": self.scale, "y_channel": self.y_channel and channels == 3,
                "crop_border": self.crop_border, "channels": channels, "model": self.cfg.model.name}

    @torch.no_grad()
    def evaluate_images(self, model: nn.Module, dataset: Any,
                        progress: Callable[[int, int, str], None] | None = None) -> list[dict[str, Any]]:
        """Per-image ``{"image", "psnr", "ssim", "loss"}`` rows over an :class:`ImageDataset`-like dataset."""
        was_training = model.training
        model.eval()
        rows = []
        names = getattr(dataset, "names", None)
        try:
            for i in range(len(dataset)):
                img, idx = dataset[i]
                name = names[i] if names is not None else f"#{idx}"
                rows.append({"image": name, **self.evaluate_image(model, img, idx)})
                if progress is not None:
                    progress(i + 1, len(dataset), name)
        finally:
            model.train(was_training)
        return rows


_COMMON = {
    "loss": Field(str, None, "training loss (default: mse for denoising, l1 for SR)", choices=("mse", "l1"),
                  nullable=True),
    "eval_seed": Field(int, 0, "seed of the fixed evaluation degradation"),
    "crop_border": Field(int, None, "pixels ignored at each border by PSNR/SSIM (default: the SR scale, 0 for "
                         "denoising)", nullable=True),
}


@register_task("denoising")
class DenoisingTask(RestorationTask):
    """Additive Gaussian noise removal; PSNR/SSIM on RGB (or gray) by default."""

    options = {**_COMMON,
               "sigma": Field(float, 50.0, "noise standard deviation on the [0, 255] scale"),
               "y_channel": Field(bool, False, "evaluate on the BT.601 Y channel of RGB images")}
    default_loss = "mse"

    def __init__(self, cfg: StageConfig) -> None:
        super().__init__(cfg)
        if float(self.opts.sigma) < 0:
            raise ValueError(f"task.sigma must be >= 0, got {self.opts['sigma']}")

    @property
    def sigma(self) -> float:
        return float(self.opts.sigma)

    @property
    def crop_border(self) -> int:
        value = self.opts.crop_border
        return 0 if value is None else int(value)

    def degrade_batch(self, clean: torch.Tensor) -> torch.Tensor:
        return clean + torch.randn_like(clean) * (self.sigma / 255.0)

    def eval_pair(self, clean: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        target = clean.to(torch.float32)[None]
        noisy = target / 255.0 + eval_noise(tuple(target.shape), self.sigma, int(self.opts.eval_seed),
                                            index)
        return noisy, target


@register_task("super_resolution")
class SuperResolutionTask(RestorationTask):
    """Bicubic ×scale super-resolution; PSNR/SSIM on Y (BT.601) ignoring ``scale`` border pixels."""

    options = {**_COMMON,
               "scale": Field(int, 4, "upscaling factor", choices=(2, 3, 4, 8)),
               "y_channel": Field(bool, True, "evaluate on the BT.601 Y channel of RGB images")}
    default_loss = "l1"

    @property
    def scale(self) -> int:
        return int(self.opts.scale)

    def build_data(self):  # -> DataSplits
        splits = super().build_data()
        c, h, w = splits.input_size
        splits.input_size = (c, h // self.scale, w // self.scale)  # what the network sees
        return splits

    def _check_patch(self, patch: int) -> None:
        if patch % self.scale:
            raise ValueError(f"data.patch_size={patch} must be a multiple of task.scale={self.scale} "
                             f"(it is the high-resolution patch side)")

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "scale" in kwargs and int(kwargs["scale"]) != self.scale:
            raise ValueError(f"model.kwargs.scale={kwargs['scale']} differs from task.scale={self.scale}")
        return {"scale": self.scale}

    def degrade_batch(self, clean: torch.Tensor) -> torch.Tensor:
        lr = imresize_torch(clean.float(), 1.0 / self.scale)
        return (lr * 255.0).round().clamp(0, 255) / 255.0

    def eval_pair(self, clean: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scale
        c, h, w = clean.shape
        if h < s or w < s:
            raise ValueError(f"evaluation image {index} ({w}×{h}) is smaller than the scale {s}")
        hr = clean[:, : h - h % s, : w - w % s]
        lr = imresize(hr.permute(1, 2, 0).numpy().astype(np.uint8), 1.0 / s)
        lr_t = torch.from_numpy(np.ascontiguousarray(lr)).reshape(lr.shape[0], lr.shape[1], c).permute(2, 0, 1)
        return lr_t[None].float() / 255.0, hr[None].to(torch.float32)


def restoration_task_for(ckpt: dict[str, Any], **task_overrides: Any) -> RestorationTask:
    """The restoration task of a checkpoint's recipe, with ``task.*`` overrides (e.g. ``sigma``)."""
    overrides = {f"task.{k}": v for k, v in task_overrides.items() if v is not None}
    cfg = stage_configs(apply_overrides(ckpt["recipe"], overrides))[0]
    task = create_task(cfg)
    if not isinstance(task, RestorationTask):
        raise ValueError(f"checkpoint {ckpt.get('path', '')} was trained for task {cfg.task.name!r}, "
                         f"not denoising or super_resolution")
    return task


def load_restoration_model(checkpoint: str | Path, expect: str | None = None, device: str = "cpu",
                           **task_overrides: Any) -> tuple[nn.Module, RestorationTask, dict[str, Any]]:
    """(model in eval mode, its task, checkpoint) of a restoration checkpoint.

    Args:
        expect: ``"denoising"`` or ``"super_resolution"``: refuse other checkpoints with a clear error.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        task_overrides: ``task.*`` values to change (e.g. ``sigma``).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, ckpt = load_model(checkpoint, device=device)
    name = str(ckpt["recipe"]["task"]["name"])
    if expect is not None and name != expect:
        hint = {"denoising": "leannets denoise", "super_resolution": "leannets upscale"}.get(name, "leannets eval")
        raise ValueError(f"checkpoint {checkpoint} holds a {name} model ({ckpt['recipe']['model']['name']}), "
                         f"not {expect}; use `{hint}`")
    return model, restoration_task_for(ckpt, **task_overrides), ckpt


def evaluate_folder(checkpoint: str | Path, data: str | Path, *, sigma: float | None = None,
                    scale: int | None = None, y_channel: bool | None = None, crop_border: int | None = None,
                    eval_seed: int | None = None, limit: int | None = None, device: str = "cpu",
                    progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Evaluate a restoration checkpoint on a folder of clean images.

    Returns ``{"task", "rows": [{"image", "psnr", "ssim", "loss"}, ...], "mean": {...}, "settings"}``.
    ``sigma``/``scale`` must agree with the checkpoint's task (σ may differ for a blind test; the
    scale of an SR net is fixed by its upsampler).
    """
    model, _, ckpt = load_restoration_model(checkpoint, device=device)
    name = str(ckpt["recipe"]["task"]["name"])
    if sigma is not None and name != "denoising":
        raise ValueError(f"--sigma is for denoising checkpoints; {checkpoint} is a {name} model (use --scale)")
    if scale is not None and name != "super_resolution":
        raise ValueError(f"--scale is for super-resolution checkpoints; {checkpoint} is a {name} model (use --sigma)")
    if scale is not None and int(scale) != int(getattr(model, "scale", scale)):
        raise ValueError(f"--scale {scale} does not match the checkpoint's ×{getattr(model, 'scale', '?')} model")
    task = restoration_task_for(ckpt, sigma=sigma, y_channel=y_channel, crop_border=crop_border, eval_seed=eval_seed)
    channels = int(getattr(model, "in_chans", 1))
    dataset = ImageDataset.from_folder(data, channels=channels, limit=limit)
    rows = task.evaluate_images(model, dataset, progress=progress)
    return {"task": name, "rows": rows, "mean": _mean(rows), "settings": task.describe(model),
            "checkpoint": str(checkpoint), "data": str(data)}


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in ("psnr", "ssim", "loss")}


def format_rows(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`evaluate_folder` rows plus the mean."""
    s = result["settings"]
    what = f"σ={s['sigma']:g}" if result["task"] == "denoising" else f"×{s['scale']}"
    lines = [f"{result['settings']['model']} — {result['task']} {what} on {result['data']} "
             f"({'Y' if s['y_channel'] else ('gray' if s['channels'] == 1 else 'RGB')}, border {s['crop_border']})",
             "", "| image | PSNR (dB) | SSIM |", "|---|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['image']} | {r['psnr']:.2f} | {r['ssim']:.4f} |")
    m = result["mean"]
    lines.append(f"| **mean ({len(result['rows'])} images)** | **{m['psnr']:.2f}** | **{m['ssim']:.4f}** |")
    return "\n".join(lines)
