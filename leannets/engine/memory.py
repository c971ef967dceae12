"""A training run's peak memory, estimated before the first step, so a run that cannot fit is refused with a
message instead of being killed by the operating system.

The estimate runs the model once on the ``meta`` device (no memory, no compute) and adds up:

- every module's output for one sample (what autograd keeps for the backward pass), times the batch size
  per process, times 2 (the gradients of those activations live at the same time at the peak);
- 4 copies of the parameters (weights, gradients, two optimizer moments).

It is an estimate, deliberately simple and on the high side for in-place activations; it is compared with
the memory the machine has available now (``MemAvailable`` on Linux, free device memory on CUDA).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

__all__ = ["InsufficientMemoryError", "estimate_training_bytes", "available_bytes", "check_training_memory"]

ACTIVATION_FACTOR = 2  # saved activations + their gradients at the peak of the backward pass
PARAMETER_COPIES = 4  # weights, gradients, two optimizer moments (Adam; SGD with momentum needs one)
HEADROOM = 0.9  # refuse above this share of the available memory


class InsufficientMemoryError(ValueError):
    """The run would not fit in the available memory (a user error: the CLI prints one line, exit code 2)."""


def estimate_training_bytes(build: Callable[[], nn.Module], input_shape: Sequence[int], batch_size: int) -> int:
    """Estimated peak bytes of training the model ``build()`` returns on batches of ``batch_size`` images of
    shape ``input_shape`` (C, H, W). ``build`` is called under ``torch.device("meta")``."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # the real model's initialisation is unchanged
        model = build()
    per_sample = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal per_sample
        tensors = output if isinstance(output, (tuple, list)) else [output]
        per_sample += sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        model.train()(torch.zeros(1, *input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return ACTIVATION_FACTOR * per_sample * batch_size + PARAMETER_COPIES * params


def available_bytes(device: torch.device) -> int | None:
    """Memory available for a new allocation on ``device`` now; ``None`` when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_training_memory(build: Callable[[], nn.Module], input_shape: Sequence[int], batch_size: int,
                          device: torch.device, model_name: str) -> int:
    """Raise :class:`InsufficientMemoryError` (the estimate, what is available, what to lower) when the run
    cannot fit; returns the estimate in bytes (0 when the model cannot run on the meta device)."""
    try:
        need = estimate_training_bytes(build, input_shape, batch_size)
    except Exception:  # noqa: BLE001 - e.g. an op without a meta kernel: the estimate is advisory, train anyway
        return 0
    have = available_bytes(device)
    if have is not None and need > HEADROOM * have:
        size = "×".join(str(int(v)) for v in input_shape)
        raise InsufficientMemoryError(
            f"training {model_name} on batches of {batch_size} images of {size} needs about {need / 2**30:.1f} GiB "
            f"(estimated before the first step), but {have / 2**30:.1f} GiB are available on {device}: lower "
            "data.batch_size or data.input_size, or choose a smaller model")
    return need
