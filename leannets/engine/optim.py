"""Optimizers (SGD / Adam / AdamW), learning-rate schedules and the weight EMA."""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import torch
import torch.nn as nn

from leannets.config import OptimSection, ScheduleSection

__all__ = ["build_optimizer", "LRSchedule", "ModelEma", "param_groups"]


def param_groups(model: nn.Module, weight_decay: float, no_decay_norm_bias: bool) -> list[dict[str, Any]]:
    """Trainable parameters, optionally with norm weights and biases (1-D tensors) exempt from decay."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: the stage's `freeze` list covers the whole model")
    if not no_decay_norm_bias or weight_decay == 0:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """The optimizer of a resolved ``optim`` recipe section over the model's trainable parameters.

    ``momentum`` and ``nesterov`` apply to SGD only, ``betas`` and ``eps`` to Adam/AdamW only (a stage that
    switches optimizer inherits the other keys harmlessly).
    """
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias)
    name = cfg.name
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


class LRSchedule:
    """Per-step learning rate: linear warm-up then constant / cosine (to a floor) / multi-step, and
    reduce-on-plateau (per evaluation) multiplying whatever the schedule gives.

    Args:
        optimizer: its groups' ``lr`` are set by :meth:`step`.
        cfg: resolved ``schedule`` section.
        base_lr: the recipe's ``optim.lr``.
        total_steps: optimizer steps of the whole stage (epochs × steps per epoch).
        steps_per_epoch: to convert ``warmup_epochs`` to steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleSection, base_lr: float, total_steps: int,
                 steps_per_epoch: int) -> None:
        self.optimizer, self.cfg, self.base_lr = optimizer, cfg, base_lr
        self.total = max(1, total_steps)
        self.warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.milestones = [int(round(m / 100.0 * self.total)) for m in cfg.milestones]
        self.plateau_scale = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.cooldown_left = 0
        self.last_lr = self.lr_at(0)
        self.step(0)

    def lr_at(self, step: int) -> float:
        c = self.cfg
        name = c.name
        if step < self.warmup:
            frac = c.warmup_start + (1 - c.warmup_start) * step / self.warmup
            return self.base_lr * frac * self.plateau_scale
        if name == "cosine":
            t = (step - self.warmup) / max(1, self.total - self.warmup)
            lr = c.min_lr + (self.base_lr - c.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        elif name == "multistep":
            lr = self.base_lr * c.gamma ** sum(step >= m for m in self.milestones)
        else:
            lr = self.base_lr
        if name == "plateau":
            lr = max(lr * self.plateau_scale, c.min_lr)
        return lr

    def step(self, step: int) -> float:
        """Set the learning rate for optimizer step ``step`` (0-based within the stage)."""
        lr = self.lr_at(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.last_lr = lr
        return lr

    def epoch_end(self, metric: float | None) -> bool:
        """Feed the validation loss (plateau schedule only); returns True when the lr was reduced."""
        if self.cfg.name != "plateau" or metric is None or metric != metric:
            return False
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.best is None or metric < self.best * (1 - self.cfg.threshold):
            self.best = metric
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.cfg.patience and self.cooldown_left == 0:
            self.plateau_scale *= self.cfg.factor
            self.bad_epochs = 0
            self.cooldown_left = self.cfg.cooldown
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])


class ModelEma:
    """Exponential moving average of a model's parameters (buffers are copied).

    ``ema = decay · ema + (1 - decay) · param`` after every optimizer step.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._param_names = {n for n, _ in self.module.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            e = ema_state[name]
            if value.dtype.is_floating_point and name in self._param_names:
                e.mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)
            else:
                e.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
