"""Image classification: cross-entropy (optional label smoothing), top-1/top-5 accuracy."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets.config import Field
from ..task import Task, cross_entropy_sums, register_task


@register_task("classification")
class ClassificationTask(Task):
    """Cross-entropy training; evaluation reports ``loss``, ``acc1`` and ``acc5`` (fractions)."""

    options = {"label_smoothing": Field(float, 0.0, "cross-entropy label smoothing")}
    main_metric = "acc1"
    higher_is_better = True

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, target = batch[0], batch[1]
        logits = model(images)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=self.opts.label_smoothing)
        acc = (logits.detach().argmax(1) == target).float().mean()
        return loss, {"acc1": acc}

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, int]]:
        images, target = batch[0], batch[1]
        return cross_entropy_sums(model(images), target)
