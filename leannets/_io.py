"""Atomic file writes (temp file in the same folder + rename): nothing written is ever half-done."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_save_figure"]


def _temp_beside(path: Path, suffix: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder + rename."""
    path = Path(path)
    tmp = _temp_beside(path, ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save_figure(fig: Any, path: str | os.PathLike, close: bool = True, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to a temp PNG beside ``path``, then rename; closes the figure unless ``close=False``."""
    path = Path(path)
    tmp = _temp_beside(path, ".png")
    try:
        fig.savefig(tmp, **{"format": "png", **savefig_kwargs})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return path
