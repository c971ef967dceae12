"""WAE training task (Chen et al., AAAI 2018): transform, classification and joint losses.

One task, three modes chosen per stage with ``task.mode`` (the trainer re-creates the task for
every stage, so a multi-stage recipe sets the mode and the frozen modules stage by stage)::

    task: {name: wae}
    stages:
      - {name: wae, task: {mode: transform}, freeze: [backbone, fusion_net, head_l, head_lh, fc, fusion_fc]}
      - {name: classifier, task: {mode: classify}, freeze: [wae]}
      - {name: joint, task: {mode: joint}}

- ``transform`` (stage 1): ``L_t = L_r + λ·L_e`` on the WAE alone (the classifier is not run).
- ``classify`` (stage 2, and the one-stage baselines): ``CE(s_L) + CE(s_LH)``.
- ``joint`` (stage 3): ``CE(s_L) + CE(s_LH) + λ2·L_t``.

Models other than :class:`~leannets.models.wae_classifier.WAEClassifier` (the full-resolution
backbones) train with plain cross-entropy in ``classify`` mode, so one recipe family covers
every variant. Evaluation reports ``acc1``/``acc5`` of the averaged logits, ``acc1_l`` and
``acc1_lh`` of the two scores, and in the transform/joint modes ``recon_mse`` (per element, on
the normalised input) and ``energy_ratio`` = ‖I_H‖² / (‖I_L‖² + ‖I_H‖²).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from leannets.layers.wae import LOSS_REDUCTIONS, TransformLoss, joint_loss, transform_loss
from leannets.models.wae_classifier import WAEClassifier, WAEOutput

from ..checkpoint import unwrap_model
from leannets.config import Field
from ..task import Task, cross_entropy_sums, register_task

__all__ = ["WAETask", "WAE_MODES"]

WAE_MODES = ("transform", "classify", "joint")


def _energy_ratio(out: WAEOutput) -> torch.Tensor:
    """Per-image share of the decomposition's energy that I_H carries (mean over the batch)."""
    e_l = out.i_l.float().pow(2).flatten(1).sum(1)
    e_h = out.i_h.float().pow(2).flatten(1).sum(1)
    return e_h / (e_l + e_h).clamp_min(1e-12)


@register_task("wae")
class WAETask(Task):
    """Stage-wise WAE training (see the module docstring)."""

    options = {
        "mode": Field(str, "classify", "transform (stage 1), classify (stage 2 / baselines) or joint (stage 3)",
                      choices=WAE_MODES),
        "energy_weight": Field(float, 1.0, "λ: weight of the I_H energy in the transform loss (paper: 1)"),
        "transform_weight": Field(float, 1e-3, "λ2: weight of the transform loss in the joint loss (paper: 0.001)"),
        "reduction": Field(str, "sum", "transform-loss normalisation: sum (1/2N Σ‖·‖², Caffe/paper) or mean "
                           "(per element)", choices=LOSS_REDUCTIONS),
        "label_smoothing": Field(float, 0.0, "cross-entropy label smoothing"),
    }
    main_metric = "acc1"
    higher_is_better = True

    @property
    def mode(self) -> str:
        return self.opts.mode

    def _net(self, model: nn.Module) -> nn.Module:
        net = unwrap_model(model)
        net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
        if self.mode != "classify" and not (isinstance(net, WAEClassifier) and net.uses_transform_loss):
            name = getattr(net, "model_name", type(net).__name__)
            raise ValueError(f"task.mode={self.mode!r} needs a WAE model with a decoder (wae_* or ilonly_*), "
                             f"got {name!r}; use task.mode=classify for baselines")
        return net

    def _transform(self, x: torch.Tensor, out: WAEOutput) -> TransformLoss:
        return transform_loss(x, out.recon, out.i_h, self.opts.energy_weight,
                              self.opts.reduction)

    def _forward(self, model: nn.Module, net: nn.Module, x: torch.Tensor) -> WAEOutput | torch.Tensor:
        if not isinstance(net, WAEClassifier):
            return model(x)
        mode = self.mode
        return model(x, parts=True, classify=mode != "transform", reconstruct=mode != "classify")

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch[0], batch[1]
        net = self._net(model)
        out = self._forward(model, net, x)
        ls = self.opts.label_smoothing
        if isinstance(out, torch.Tensor):
            loss = F.cross_entropy(out.float(), y, label_smoothing=ls)
            return loss, {"acc1": (out.detach().argmax(1) == y).float().mean()}
        logs: dict[str, torch.Tensor] = {}
        if self.mode != "classify":
            t = self._transform(x, out)
            logs.update(reconstruction=t.reconstruction.detach(), energy=t.energy.detach())
            if self.mode == "transform":
                return t.total, logs
        cls = net.classification_loss(out, y, ls)
        logs["acc1"] = (out.logits.detach().argmax(1) == y).float().mean()
        logs["cls_loss"] = cls.detach()
        loss = joint_loss(cls, t, self.opts.transform_weight) if self.mode == "joint" else cls
        return loss, logs

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, tuple[torch.Tensor, int]]:
        x, y = batch[0], batch[1]
        n = y.shape[0]
        net = self._net(model)
        out = self._forward(model, net, x)
        if isinstance(out, torch.Tensor):
            return cross_entropy_sums(out, y)
        metrics: dict[str, tuple[torch.Tensor, int]] = {}
        if self.mode != "classify":
            t = self._transform(x, out)
            metrics["transform_loss"] = (t.total.detach() * n, n)
            metrics["recon_mse"] = (F.mse_loss(out.recon.float(), x.float(), reduction="none").flatten(1).mean(1)
                                    .sum(), n)
            metrics["energy_ratio"] = (_energy_ratio(out).sum(), n)
            if self.mode == "transform":
                metrics["loss"] = metrics["transform_loss"]
                return metrics
        metrics.update(cross_entropy_sums(out.logits, y))
        metrics["acc1_l"] = ((out.s_l.argmax(1) == y).sum().float(), n)
        if out.s_lh is not None:
            metrics["acc1_lh"] = ((out.s_lh.argmax(1) == y).sum().float(), n)
        return metrics
