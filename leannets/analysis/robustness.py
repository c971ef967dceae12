"""Accuracy under additive Gaussian noise (Table 7 of Chen et al., AAAI 2018).

Noise of zero mean and variance ``V`` is added to the test images on the [0, 1] scale, the
result is clipped back to [0, 1] (a noisy *image*), then normalised with the statistics the
model was trained with. Every model sees the same noise draw for a given ``V`` (seeded), so
the rows of a table differ only by the model.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn

__all__ = ["PAPER_VARIANCES", "add_gaussian_noise", "noisy_accuracy", "noise_robustness", "format_noise_table"]

PAPER_VARIANCES = (0.0, 0.01, 0.02, 0.05, 0.1)


def add_gaussian_noise(images: torch.Tensor, variance: float, generator: torch.Generator | None = None,
                       clip: bool = True) -> torch.Tensor:
    """``images`` (float on [0, 1]) plus N(0, variance) noise, clipped to [0, 1] when ``clip``."""
    if variance < 0:
        raise ValueError(f"noise variance must be >= 0, got {variance}")
    if variance == 0:
        return images.clone()
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    out = images + noise * variance ** 0.5
    return out.clamp_(0.0, 1.0) if clip else out


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.float().div(255.0)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float on [0, 1], got {images.dtype}")
    return images.float()


@torch.no_grad()
def noisy_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, variance: float,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None, batch_size: int = 256,
                   seed: int = 0, clip: bool = True, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``images`` (uint8 or [0, 1] float, N×C×H×W) with noise."""
    if images.dim() != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images must be (N, C, H, W) with N = len(labels); got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)} labels")
    gen = torch.Generator().manual_seed(seed)
    model = model.eval().to(device)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) if mean is not None else None
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) if std is not None else None
    correct = 0
    for a in range(0, images.shape[0], batch_size):
        x = add_gaussian_noise(_to_unit(images[a:a + batch_size]), variance, gen, clip)
        if m is not None and s is not None:
            x = (x - m) / s
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == labels[a:a + batch_size]).sum())
    return correct / max(1, images.shape[0])


def noise_robustness(models: Mapping[str, nn.Module], images: torch.Tensor, labels: torch.Tensor,
                     variances: Sequence[float] = PAPER_VARIANCES, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, batch_size: int = 256, seed: int = 0, clip: bool = True,
                     device: str | torch.device = "cpu") -> dict[str, dict[float, float]]:
    """``{model name: {V: accuracy}}`` on the same noisy images for every model."""
    return {name: {float(v): noisy_accuracy(model, images, labels, v, mean, std, batch_size, seed + i, clip, device)
                   for i, v in enumerate(variances)}
            for name, model in models.items()}


def format_noise_table(results: Mapping[str, Mapping[float, float]]) -> str:
    """Markdown table, one row per variance, one column per model (accuracy in %)."""
    names = list(results)
    variances = sorted({v for r in results.values() for v in r})
    lines = ["| noise variance V | " + " | ".join(f"{n} acc. (%)" for n in names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for v in variances:
        cells = [f"{100 * results[n][v]:.2f}" if v in results[n] else "-" for n in names]
        lines.append(f"| {v:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
