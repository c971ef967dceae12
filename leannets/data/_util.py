"""Helpers shared by the readers: layout errors, safe pickle loading, channel statistics."""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["find_dir", "require_file", "safe_pickle_load", "channel_stats", "stats_or_override"]

_ALLOWED_PICKLE = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Only numpy arrays and builtins: a data file cannot run code when read."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a dataset pickle")


def safe_pickle_load(path: Path, layout: str) -> Any:
    """Load a dataset pickle (py2 protocol, latin1) allowing only numpy arrays; errors name the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FileNotFoundError(f"cannot read {path}: {err}. Expected layout: {layout}") from err
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - any decode error means a corrupt file
        raise ValueError(f"{path} is corrupt or not a dataset pickle ({type(err).__name__}: {err}). "
                         f"Expected layout: {layout}") from err


def find_dir(root: str | Path, names: Sequence[str], marker: str, layout: str) -> Path:
    """``root`` itself or ``root/<name>`` for the first of ``names`` that contains ``marker``."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data.root {root} does not exist. Expected layout: {layout}")
    for cand in [root, *(root / n for n in names)]:
        if (cand / marker).exists():
            return cand
    raise FileNotFoundError(f"{marker} not found in {root} or in {', '.join(str(root / n) for n in names)}. "
                            f"Expected layout: {layout}")


def require_file(folder: Path, name: str, layout: str) -> Path:
    p = folder / name
    if not p.is_file():
        raise FileNotFoundError(f"missing file {p}. Expected layout: {layout}")
    return p


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on [0, 1] of uint8 (N, C, H, W) images (chunked, float64)."""
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    ss = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].double().div_(255.0)
        s += x.sum((0, 2, 3))
        ss += (x * x).sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s / n
    std = (ss / n - mean * mean).clamp_min(1e-6).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def stats_or_override(cfg: DataSection, default: tuple[Sequence[float], Sequence[float]],
                      channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``data.mean`` / ``data.std`` from the recipe when set, else ``default``; lengths checked."""
    mean = cfg.mean or default[0]
    std = cfg.std or default[1]
    for key, v in (("mean", mean), ("std", std)):
        if len(v) != channels:
            raise ValueError(f"data.{key} must have {channels} values (one per channel), got {list(v)}")
    if any(x <= 0 for x in std):
        raise ValueError(f"data.std values must be > 0, got {list(std)}")
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)
