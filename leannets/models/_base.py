"""Shared model interface: input validation and the timm-style classifier API."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["LeanModule", "Classifier", "init_weights"]


class LeanModule(nn.Module):
    """Base of every registered model: validates the input shape before running.

    Subclasses set ``in_chans`` and ``min_input_size`` (the smallest spatial size the
    network's downsampling accepts) and may set ``size_divisor`` (sizes must be multiples).
    """

    in_chans: int = 3
    min_input_size: int = 1
    size_divisor: int = 1

    @property
    def display_name(self) -> str:
        return getattr(self, "model_name", type(self).__name__)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the model, the expected and the received shape."""
        if torch.jit.is_scripting() or torch.jit.is_tracing():
            return
        expected = (f"(N, {self.in_chans}, H, W) with H, W >= {self.min_input_size}"
                    + (f" and divisible by {self.size_divisor}" if self.size_divisor > 1 else ""))
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{self.display_name}: expected input {expected}, got {tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if min(h, w) < self.min_input_size or h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f"{self.display_name}: expected input {expected}, got {tuple(x.shape)}")


class Classifier(LeanModule):
    """Image classifier with ``forward_features`` → global average pool → dropout → ``fc``.

    Subclasses implement :meth:`forward_features` and create ``self.fc`` via
    :meth:`reset_classifier` (``num_features`` must be set first).
    """

    num_features: int
    num_classes: int
    drop_rate: float = 0.0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global-average-pool the feature map; return pooled features or logits."""
        x = x.mean((2, 3))
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer (``num_classes=0`` gives an identity head)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


def init_weights(model: nn.Module, conv_mode: str = "fan_out", linear_std: float | None = 0.01) -> None:
    """Standard initialisation shared by the model families.

    Convs: Kaiming normal (ReLU gain) with ``conv_mode`` fan, zero bias; BatchNorm: 1/0;
    Linear: N(0, ``linear_std``) weights (``None`` keeps PyTorch's default) and zero bias.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
