"""Checkpoints: atomic writes, safe (``weights_only``) loading, RNG capture and model rebuilding.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts only) with
``format == "leannets-checkpoint"``; it holds the resolved recipe, the data description needed to
rebuild the model, the model (and EMA) weights and, for resuming, optimizer / schedule / scaler /
RNG states and the loop position. Other slices load models with :func:`load_model`::

    model, ckpt = load_model("runs/x/best.pt")          # eval mode, EMA weights if present
    ckpt["recipe"], ckpt["data_info"]["num_classes"], ckpt["metrics"]
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from leannets._io import atomic_copy, atomic_write

from .recipe import stage_configs
from .task import create_task

__all__ = ["FORMAT", "save_checkpoint", "copy_checkpoint", "load_checkpoint", "load_model", "capture_rng",
           "restore_rng", "unwrap_model"]

FORMAT = "leannets-checkpoint"
VERSION = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Atomically copy a checkpoint file (used for ``best.pt`` and ``epoch_N.pt``)."""
    return atomic_copy(src, dst)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a leannets checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file (a run folder is accepted and resolves to its ``last.pt``).
        ValueError: the file holds arbitrary pickled objects (refused), is corrupt, or is not a
            leannets checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    not_a_checkpoint = (f"{p} is not a checkpoint (not a PyTorch file, or corrupt or truncated); "
                        f"give a last.pt / best.pt written by `leannets train`, or its run folder")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # not a pickle at all (random bytes, text)
            raise ValueError(not_a_checkpoint) from err
        lines = [ln.strip() for ln in str(err).splitlines() if "global" in ln.lower()]
        raise ValueError(f"checkpoint {p} was refused: it contains pickled objects other than tensors and plain "
                         f"containers, which could run arbitrary code when loaded ({lines[0]})") from err
    except Exception as err:  # noqa: BLE001 - torch.load raises KeyError, EOFError, RuntimeError ... on garbage
        raise ValueError(not_a_checkpoint) from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"checkpoint {p} is not a leannets checkpoint (missing format={FORMAT!r}); "
                         f"train one with `leannets train`")
    if obj.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint {p} has version {obj['version']}, newer than this leannets ({VERSION})")
    obj["path"] = str(p)
    return obj


def capture_rng() -> dict[str, Any]:
    """All RNG states as weights_only-loadable values (tensors and plain Python)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (via its task) and load its weights; returns (model in eval mode, ckpt)."""
    ckpt = load_checkpoint(path)
    cfg = stage_configs(ckpt["recipe"])[0]
    task = create_task(cfg)
    model = task.build_model(SimpleNamespace(**ckpt["data_info"]))
    state = ckpt["ema"] if (use_ema and ckpt.get("ema") is not None) else ckpt["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {ckpt['path']}: weights do not fit model {cfg.model.name!r}: "
                         f"{str(err).splitlines()[0]}") from err
    return model.to(device).eval(), ckpt
