"""Host memory for training: keep freed memory in the process instead of handing it back to the kernel.

glibc's malloc serves every block above its mmap threshold (128 KiB, rising with use to at most 32 MiB) with
fresh pages from the kernel, unmaps it when it is freed, and returns the free top of its heap to the kernel
once it passes the trim threshold. A training step allocates and frees activations and gradients of up to
tens or hundreds of MB, so on CPU every step page-faults and zeroes the same memory again; the faults cost
a large share of a step for memory-bound nets (``python benchmarks/allocator.py`` prints the faults per step
and the step-time ratio per model). :func:`keep_freed_memory` serves every block from the heap and never
trims it: after the first steps no page is faulted again (unless the kernel reclaims idle pages on its own),
and the process keeps its peak memory until it exits (the peak itself barely grows: the memory freed is the
memory the next step allocates, and only fragmentation adds to it).

It sets two process-wide glibc options (``mallopt``), once, and cannot be undone in the process (glibc
offers no way to restore its dynamic thresholds); the trainer applies it unless ``train.allocator:
system``. Elsewhere than Linux with glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import platform
import sys

from leannets.config import ALLOCATORS

__all__ = ["ALLOCATORS", "keep_freed_memory", "allocator_state"]

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc <malloc.h>
_kept = False


def _mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap (no mmap) and never trim it; ``True`` when it is in effect."""
    global _kept
    if not _kept:
        mallopt = _mallopt()
        # -1 as the trim threshold is SIZE_MAX once glibc widens it: the heap is never trimmed
        _kept = mallopt is not None and bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
    return _kept


def allocator_state() -> str:
    """``keep`` once :func:`keep_freed_memory` took effect in this process, else ``system``."""
    return "keep" if _kept else "system"
