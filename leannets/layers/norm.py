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

__all__ = ["batch_norm"]


def batch_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``; a training ``nn.BatchNorm2d`` runs as the ``leannets::batch_norm_train`` op where it applies."""
    if not dispatch.batch_norm_op_applies(module, x):
        return module(x)
    out, mean, var = ops.batch_norm_train(x, module.weight, module.bias, module.eps)
    if module.track_running_stats and module.running_mean is not None:
        module.num_batches_tracked.add_(1)
        momentum = 1.0 / float(module.num_batches_tracked) if module.momentum is None else module.momentum
        n = x.numel() // x.shape[1]
        with torch.no_grad():
            module.running_mean.lerp_(mean, momentum)
            module.running_var.lerp_(var * (n / (n - 1)), momentum)
    return out
