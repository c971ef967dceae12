"""``leannets.convert``: model surgery (:func:`leannets.models.convert.convert_model`) with the parameters and MACs
before and after counted by the one profiler."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from leannets.models.convert import ConvertReport, convert_model, probe_input

from .profile import count_macs, count_params

__all__ = ["convert", "ConvertReport"]


def convert(model: nn.Module, *, input_size: Sequence[int] | None = None, **options: Any) -> ConvertReport:
    """Convert ``model`` in place (options: :func:`~leannets.models.convert.convert_model`); the report also gives
    params and MACs (at ``input_size``, default the model's) before and after."""
    x = probe_input(model, input_size)
    before = (count_params(model)[0], _macs(model, x))
    report = convert_model(model, input_size=tuple(x.shape[1:]), **options)
    report.params = (before[0], count_params(model)[0])
    report.macs = (before[1], _macs(model, x))
    return report


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return count_macs(model, x)
    finally:
        model.train(training)
