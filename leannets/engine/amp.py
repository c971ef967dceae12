"""Mixed precision: which autocast dtype a training stage runs under.

``train.amp`` is ``off``, ``bf16``, ``fp16`` or ``auto``. ``auto`` picks:

- on CUDA, bf16 (fp16 where the GPU has no bf16);
- on a CPU with native bf16 (the ``avx512_bf16`` or ``amx_bf16`` flag), bf16 only for a model whose measured
  training step is at least :data:`CPU_BF16_MIN_GAIN` times faster in bf16 than in fp32. Dense convolutions
  gain most; depthwise ones run on the C kernels with bf16 activations and float32 sums
  (:mod:`leannets.layers.dispatch`), and the gain differs per model, so the choice is measured on a copy of
  the model before training starts (``benchmarks/bf16_training.py`` prints the ratios);
- on any other CPU, fp32 (emulated bf16 runs an order of magnitude slower).

``LEANNETS_CPU_BF16=0`` (or ``1``) overrides the CPU's flags; the test suite sets 0, so that it trains the same
way on every machine.

The choice is stored in the checkpoint (a resumed run keeps it) and in the run's result (``amp``).
"""
from __future__ import annotations

import copy
import functools
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["CPU_BF16_FLAGS", "CPU_BF16_MIN_GAIN", "native_bf16_cpu", "fixed_amp", "bf16_step_gain", "AMP_DTYPES"]

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: bf16 must make a CPU training step at least this much faster to be chosen by ``auto`` (below it, the
#: precision loss buys too little).
CPU_BF16_MIN_GAIN = 1.1
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively: ``LEANNETS_CPU_BF16`` (``0``/``1``) when set, else the flags of
    ``/proc/cpuinfo`` (``False`` where it is absent)."""
    env = os.environ.get("LEANNETS_CPU_BF16", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return _cpuinfo_bf16()


@functools.lru_cache(maxsize=1)
def _cpuinfo_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return any(f in flags for f in CPU_BF16_FLAGS)


def fixed_amp(mode: str, device: torch.device) -> str | None:
    """The precision ``mode`` gives on ``device`` without measuring (``off``/``bf16``/``fp16``), or ``None``
    when ``auto`` must measure the model (a CPU with native bf16)."""
    if mode != "auto":
        return mode if device.type == "cuda" or mode != "fp16" else "off"  # no useful fp16 autocast on CPU
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return None if device.type == "cpu" and native_bf16_cpu() else "off"


def _loss(out: Any) -> torch.Tensor:
    """A scalar from any model output (a tensor, or tensors inside tuples, lists and dicts)."""
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    items = out.values() if isinstance(out, dict) else out
    return sum((_loss(o) for o in items), torch.zeros(()))


def bf16_step_gain(model: nn.Module, example: torch.Tensor, rounds: int = 3) -> float:
    """Median fp32 / bf16-autocast time of a forward + backward on a copy of ``model`` (rounds interleaved,
    one warm-up each); the model, its gradients and the global RNG are left untouched."""
    probe = copy.deepcopy(model).train()
    for p in probe.parameters():
        p.requires_grad_(True)

    def step(dtype: torch.dtype | None) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = _loss(probe(example))
            loss.backward()
            probe.zero_grad(set_to_none=True)
            return time.perf_counter() - t0
        return run

    fp32, bf16 = step(None), step(torch.bfloat16)
    with torch.random.fork_rng(devices=[]):
        fp32(), bf16()
        times = [(fp32(), bf16()) for _ in range(rounds)]
    return statistics.median(a for a, _ in times) / max(statistics.median(b for _, b in times), 1e-12)
