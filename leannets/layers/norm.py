"""BatchNorm calls of the dense layers, through one function: the module itself, or, while training on CPU
channels_last float32 maps whose channel count is not a multiple of 16, the ``leannets::batch_norm_train`` op
(:func:`~leannets.layers.dispatch.batch_norm_op_applies`). PyTorch's channels_last BatchNorm vectorises across
channels and takes a slow path for such counts, which DenseNet's and DxNet's growth-12 maps have
(``python benchmarks/densenet_memory.py`` times the models). The module keeps its class, parameters and
buffers; its running statistics are updated as BatchNorm does (its forward hooks do not run on the op path).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import dispatch, ops

__all__ = ["batch_norm", "batch_step_momentum", "update_running_stats"]


def batch_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``; a training ``nn.BatchNorm2d`` runs as the ``leannets::batch_norm_train`` op where it applies."""
    if not dispatch.batch_norm_op_applies(module, x):
        return module(x)
    out, mean, var = ops.batch_norm_train(x, module.weight, module.bias, module.eps)
    update_running_stats(module, mean, var, x.numel() // x.shape[1])
    return out


def batch_step_momentum(bn: nn.Module) -> float | None:
    """One training step of ``bn``'s running statistics as BatchNorm counts it: ``num_batches_tracked`` advanced
    and the momentum to update with (``momentum=None``: the cumulative average); ``None`` when ``bn`` keeps no
    running statistics or is not training."""
    if not (bn.training and bn.track_running_stats and bn.running_mean is not None):
        return None
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def update_running_stats(bn: nn.Module, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """BatchNorm's update of ``bn``'s running statistics from a batch's mean and biased variance over ``count``
    values per channel (the running variance takes the unbiased one)."""
    momentum = batch_step_momentum(bn)
    if momentum is not None:
        with torch.no_grad():
            bn.running_mean.lerp_(mean, momentum)
            bn.running_var.lerp_(var * (count / max(count - 1, 1)), momentum)
