"""Helpers shared by CLI sub-commands."""
from __future__ import annotations

from leannets._io import atomic_save_figure, atomic_write_json, atomic_write_text

__all__ = ["atomic_save_figure", "atomic_write_json", "atomic_write_text"]
