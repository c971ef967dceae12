"""Minima sharpness by random parameter perturbation (Dense xUnit Networks, Sec. 4.4, Figs. 9–10).

Around a minimum θ₀ the loss is ``L(θ) ≈ L(θ₀) + ½ (θ−θ₀)ᵀ H (θ−θ₀)``, so for
``θ ~ N(θ₀, σ² I)``::

    E[L(θ)] = L(θ₀) + ½ Tr(H) σ²                                            (paper eq. 2)

:func:`estimate_sharpness` adds N(0, σ²) noise to the selected parameters (by default every
convolution filter, as in the paper) for each σ and ``repeats`` seeded realizations, records the
mean loss, and fits ``mean loss = a + b σ²`` by least squares: ``Tr(H) = 2b``, the mean Hessian
eigenvalue is ``Tr(H) / #perturbed parameters`` and R² tells how quadratic the loss really is.

Realization ``r`` uses the same standard-normal direction ``z_r`` for every σ (common random
numbers): the σ-dependence is then measured without extra noise, which makes the slope much
more stable for a given budget; it stays an unbiased estimate of ``½ Tr(H)``.

The loss is any callable ``loss_fn(model) -> float`` (the mean loss on a fixed dataset), so the
estimator works for every task: :func:`task_loss_fn` wraps an engine :class:`~leannets.engine.task.Task`
(its ``eval_step`` ``loss``: cross-entropy for classification, MSE for restoration, ...) and
:func:`criterion_loss_fn` wraps a loader and a criterion.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from leannets._io import atomic_save_figure, atomic_write_json, pyplot
from leannets.data import dataset_info, make_loader
from leannets.engine.checkpoint import load_model
from leannets.engine.recipe import apply_overrides, parse_override, stage_configs, validate_recipe
from leannets.engine.task import create_task

__all__ = ["SharpnessResult", "perturbable_parameters", "fit_quadratic", "estimate_sharpness", "task_loss_fn",
           "criterion_loss_fn", "checkpoint_data", "plot_sharpness", "save_sharpness", "format_sharpness_table",
           "PARAM_SETS", "SPLITS"]

PARAM_SETS = ("conv", "all")
SPLITS = ("train", "eval", "val")
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class SharpnessResult:
    """Measured loss-vs-perturbation curve and the fitted sharpness of one model.

    Attributes:
        name: model label.
        sigmas: perturbation standard deviations σ.
        mean_loss, std_loss: mean / standard deviation of the loss over the realizations, per σ.
        losses: every realization's loss, ``losses[i][r]`` for σ_i and realization r.
        base_loss: loss of the unperturbed model.
        intercept, slope: least-squares fit ``mean_loss ≈ intercept + slope · σ²``.
        trace_hessian: ``2 · slope`` (estimate of Tr(H) over the perturbed parameters).
        mean_eigenvalue: ``trace_hessian / num_params``.
        r2: coefficient of determination of the fit.
        num_params: number of perturbed scalars.
        params: which parameters were perturbed (``"conv"`` or ``"all"``).
        repeats, seed: realizations per σ and the noise seed.
    """

    name: str
    sigmas: list[float]
    mean_loss: list[float]
    std_loss: list[float]
    losses: list[list[float]]
    base_loss: float
    intercept: float
    slope: float
    trace_hessian: float
    mean_eigenvalue: float
    r2: float
    num_params: int
    params: str
    repeats: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def perturbable_parameters(model: nn.Module, which: str = "conv") -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs to perturb: every conv filter (weights) or all parameters."""
    if which not in PARAM_SETS:
        raise ValueError(f"params must be one of {PARAM_SETS}, got {which!r}")
    if which == "all":
        out = [(n, p) for n, p in model.named_parameters()]
    else:
        out = [(f"{n}.weight" if n else "weight", m.weight) for n, m in model.named_modules()
               if isinstance(m, _CONV_TYPES) and isinstance(getattr(m, "weight", None), nn.Parameter)]
    seen: set[int] = set()
    unique = []
    for n, p in out:  # shared parameters are perturbed once
        if id(p) not in seen:
            seen.add(id(p))
            unique.append((n, p))
    if not unique:
        raise ValueError(f"model {type(model).__name__} has no parameters to perturb (params={which!r})")
    return unique


def fit_quadratic(sigmas: Sequence[float], mean_loss: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``mean_loss ≈ a + b σ²``; returns ``(a, b, R²)``."""
    s2 = np.asarray(sigmas, dtype=np.float64) ** 2
    y = np.asarray(mean_loss, dtype=np.float64)
    if s2.shape != y.shape:
        raise ValueError(f"fit_quadratic: {len(s2)} sigmas but {len(y)} losses")
    if len(np.unique(s2)) < 2:
        raise ValueError(f"fit_quadratic: need at least 2 distinct |σ| values, got {list(sigmas)}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"fit_quadratic: non-finite mean losses {y.tolist()} (σ too large?)")
    design = np.stack([np.ones_like(s2), s2], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - (a + b * s2)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), r2


def _check_sigmas(sigmas: Sequence[float]) -> list[float]:
    out = [float(s) for s in sigmas]
    if len(out) < 2:
        raise ValueError(f"sigmas: need at least 2 values, got {out}")
    bad = [s for s in out if not math.isfinite(s) or s < 0]
    if bad:
        raise ValueError(f"sigmas must be finite and >= 0, got {bad}")
    return out


@torch.no_grad()
def estimate_sharpness(model: nn.Module, loss_fn: Callable[[nn.Module], float], sigmas: Sequence[float],
                       repeats: int = 10, seed: int = 0, params: str = "conv", name: str | None = None,
                       progress: Callable[[str], None] | None = None) -> SharpnessResult:
    """Perturb ``params`` with N(0, σ²) noise, record the mean loss per σ and fit ``a + b σ²``.

    Args:
        model: trained model (put in eval mode for the measurement, restored afterwards).
        loss_fn: ``loss_fn(model) -> float``, the mean loss on a fixed dataset.
        sigmas: noise standard deviations (σ = 0 reuses the unperturbed loss).
        repeats: noise realizations R per σ.
        seed: noise seed; realization r draws ``z_r`` from ``Generator().manual_seed(seed + r)``.
        params: ``"conv"`` (every convolution filter, as in the paper) or ``"all"``.
        name: label stored in the result.
        progress: optional ``callback(message)``.

    The model's parameters are restored exactly, also when ``loss_fn`` raises.
    """
    sigmas = _check_sigmas(sigmas)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    targets = perturbable_parameters(model, params)
    saved = [p.detach().clone() for _, p in targets]
    was_training = model.training
    model.eval()
    losses = [[0.0] * repeats for _ in sigmas]
    try:
        base = float(loss_fn(model))
        for r in range(repeats):
            gen = torch.Generator().manual_seed(seed + r)
            z = [torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype) for _, p in targets]
            for i, sigma in enumerate(sigmas):
                if sigma == 0:
                    losses[i][r] = base
                    continue
                for (_, p), p0, zi in zip(targets, saved, z):
                    p.copy_(p0 + sigma * zi)
                losses[i][r] = float(loss_fn(model))
            if progress:
                progress(f"{name or 'model'}: realization {r + 1}/{repeats}")
    finally:
        for (_, p), p0 in zip(targets, saved):
            p.copy_(p0)
        model.train(was_training)
    arr = np.asarray(losses, dtype=np.float64)
    mean, std = arr.mean(1), arr.std(1)
    a, b, r2 = fit_quadratic(sigmas, mean)
    n = sum(p.numel() for _, p in targets)
    return SharpnessResult(
        name=name or getattr(model, "model_name", type(model).__name__), sigmas=sigmas,
        mean_loss=mean.tolist(), std_loss=std.tolist(), losses=arr.tolist(), base_loss=base,
        intercept=a, slope=b, trace_hessian=2 * b, mean_eigenvalue=2 * b / n, r2=r2, num_params=n,
        params=params, repeats=repeats, seed=seed)


def task_loss_fn(task: Any, loader: Iterable, autocast: Callable[[], Any] | None = None
                 ) -> Callable[[nn.Module], float]:
    """``loss_fn`` from an engine Task: the mean ``loss`` its ``evaluate`` reports on ``loader``."""

    def loss_fn(model: nn.Module) -> float:
        metrics = task.evaluate(model, loader, autocast=autocast)
        if "loss" not in metrics:
            raise ValueError(f"task {type(task).__name__}.eval_step must report 'loss', got {sorted(metrics)}")
        return metrics["loss"]

    return loss_fn


def criterion_loss_fn(loader: Iterable, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      device: str | torch.device = "cpu") -> Callable[[nn.Module], float]:
    """``loss_fn`` for ``(input, target)`` batches: sample-weighted mean of ``criterion(model(x), y)``.

    ``criterion`` must return the batch *mean* (e.g. ``F.cross_entropy`` or ``F.mse_loss``).
    """

    @torch.no_grad()
    def loss_fn(model: nn.Module) -> float:
        total, count = 0.0, 0
        for batch in loader:
            x, y = batch[0].to(device), batch[1].to(device)
            n = int(x.shape[0])
            total += float(criterion(model(x), y)) * n
            count += n
        if count == 0:
            raise ValueError("criterion_loss_fn: the loader yielded no samples")
        return total / count

    return loss_fn


def checkpoint_data(path: str | os.PathLike, data: str | None = None, overrides: dict[str, Any] | list[str] | None = None,
                    split: str = "train", limit: int | None = None, device: str = "cpu", use_ema: bool = True
                    ) -> tuple[nn.Module, Any, Any, dict[str, Any]]:
    """A checkpoint's model (eval mode), task and a deterministic, un-augmented loader of one split.

    Args:
        path: leannets checkpoint (``.pt``) or run folder; loaded with ``weights_only=True``.
        data: a folder (→ ``data.root``) or a registered dataset name (→ ``data.name``); default: the
            checkpoint recipe's data.
        overrides: further ``data.*`` overrides (``{"data.limit_eval": 100}`` or ``["data.cutout=0"]``).
        split: ``train`` (as in the paper: loss on the training set), ``eval`` or ``val``.
        limit: use only the first ``limit`` samples of the split.
        device: where the model and batches live.

    The batches are normalised with the statistics stored in the checkpoint (those used in training).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    model, ckpt = load_model(path, device=device, use_ema=use_ema)
    over: dict[str, Any] = {}
    if data:
        if Path(data).exists():
            over["data.root"] = str(data)
        else:
            dataset_info(data)  # ValueError naming the known datasets
            over["data.name"] = data
    items = [parse_override(o) for o in overrides] if isinstance(overrides, list) else list((overrides or {}).items())
    for key, value in items:
        over[key if key.startswith("data.") else f"data.{key}"] = value
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        over["data.limit_eval" if split == "eval" else "data.limit_train"] = limit
    recipe = validate_recipe(apply_overrides(ckpt["recipe"], over))
    cfg = stage_configs(recipe)[-1]
    task = create_task(cfg)
    splits = task.build_data()
    info = ckpt.get("data_info", {})
    if info.get("num_classes") and getattr(splits, "num_classes", 0) not in (None, 0, info["num_classes"]):
        raise ValueError(f"checkpoint {ckpt['path']} predicts {info['num_classes']} classes but dataset "
                         f"{splits.name!r} has {splits.num_classes}")
    chosen = {"train": splits.train, "eval": splits.eval, "val": getattr(splits, "val", None)}[split]
    if chosen is None:
        raise ValueError("split 'val' needs data.val_fraction > 0 (e.g. --set data.val_fraction=0.1)")
    loader = make_loader(chosen, cfg.data, train=False, device=torch.device(device), seed=cfg.seed,
                         mean=info.get("mean") or getattr(splits, "mean", None),
                         std=info.get("std") or getattr(splits, "std", None))
    return model, task, loader, ckpt


def plot_sharpness(results: Sequence[SharpnessResult], path: str | os.PathLike, quad_range: float = 1.0) -> Path:
    """PNG with (a) mean loss vs σ (± std, fitted ``a + b σ²``) and (b) the Fig. 10 1-D quadratics.

    Panel (b) draws ``½ λ̄ t²`` for each model, ``λ̄`` being its mean Hessian eigenvalue
    (the 1-D function whose second derivative matches the Hessian's average curvature).
    """
    plt = pyplot()

    if not results:
        raise ValueError("plot_sharpness: no results")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    t = np.linspace(-quad_range, quad_range, 201)
    for i, r in enumerate(results):
        c = colors[i % len(colors)]
        s = np.asarray(r.sigmas)
        ax1.errorbar(s, r.mean_loss, yerr=r.std_loss, fmt="o", color=c, capsize=3)
        grid = np.linspace(0, s.max(), 100)
        ax1.plot(grid, r.intercept + r.slope * grid ** 2, "-", color=c,
                 label=f"{r.name}: Tr(H)={r.trace_hessian:.4g}, R²={r.r2:.3f}")
        ax2.plot(t, 0.5 * r.mean_eigenvalue * t ** 2, color=c, label=f"{r.name}: λ̄={r.mean_eigenvalue:.3g}")
    ax1.set_xlabel("perturbation σ")
    ax1.set_ylabel(f"mean loss over {results[0].repeats} realizations (± std); lines: a + bσ²")
    ax1.set_title("Loss vs. parameter perturbation (Fig. 9)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("t (1-D parameter offset)")
    ax2.set_ylabel("½ λ̄ t²  (loss increase)")
    ax2.set_title("1-D quadratic with the mean Hessian eigenvalue (Fig. 10)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120, bbox_inches="tight")


def save_sharpness(results: Sequence[SharpnessResult], out_dir: str | os.PathLike, stem: str = "sharpness",
                   meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (every number) and ``<stem>.png`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    atomic_write_json(json_path, {"meta": meta or {}, "results": [r.as_dict() for r in results]})
    plot_sharpness(results, png_path)
    return json_path, png_path


def format_sharpness_table(results: Sequence[SharpnessResult]) -> str:
    """Markdown table: model, perturbed params, L₀, Tr(H), mean eigenvalue, R²."""
    lines = ["| model | perturbed params | loss L0 | Tr(H) | mean eigenvalue | R² |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.name} | {r.num_params:,} | {r.base_loss:.4f} | {r.trace_hessian:.4g} | "
                     f"{r.mean_eigenvalue:.4g} | {r.r2:.4f} |")
    return "\n".join(lines)
