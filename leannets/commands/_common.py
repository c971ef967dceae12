"""Helpers shared by CLI sub-commands."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

__all__ = ["existing_files"]


def existing_files(paths: Iterable[str | os.PathLike], what: str = "image") -> list[Path]:
    """``paths`` as :class:`Path` objects; raises ``FileNotFoundError`` naming every one that is not a file."""
    out = [Path(p) for p in paths]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{what} file(s) not found: {', '.join(missing)}")
    return out
