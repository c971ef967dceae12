"""Shared model interface: input validation and the timm-style classifier API.

Every :class:`Classifier` also has timm's feature and memory API:

- :attr:`Classifier.feature_info`: one entry per multi-scale feature map (``module``, ``num_chs``,
  ``reduction``): the last output of the model's block container at each resolution, the final one being
  :meth:`~Classifier.forward_features`' output, named by the submodule that returns it (hook it by that name).
  A model whose ``forward_features`` ends in a functional op or a concatenation (the WAE fusion models) has no
  such submodule: that entry is named ``"forward_features"``; take it from ``forward_intermediates``. It is found
  once by a small probe forward (64², eval mode); as timm's, it answers ``channels()``, ``reduction()`` and
  ``module_name()``.
- :meth:`Classifier.forward_intermediates`: timm's signature, ``(final, maps)`` (``indices``, ``stop_early``,
  ``output_fmt``, ``intermediates_only``); ``create_model(name, features_only=True)`` wraps a model as
  :class:`FeatureListNet`.
- :meth:`Classifier.set_grad_checkpointing`: recompute each block of the container in the backward pass
  instead of storing its activations (``torch.utils.checkpoint``, non-reentrant); the state dict is unchanged.
"""
from __future__ import annotations

import types
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from leannets.layers.kernels import tracing

__all__ = ["LeanModule", "Classifier", "FeatureListNet", "init_weights"]

#: ``feature_info``'s name of the final map where no submodule returns it (it is ``forward_features``' output).
FINAL_FEATURES = "forward_features"
#: Attribute names of the block container a family's ``forward_features`` runs through, in order of preference.
FEATURE_CONTAINERS = ("stages", "blocks", "features")


class LeanModule(nn.Module):
    """Base of every registered model: validates the input shape before running.

    Subclasses set ``in_chans`` and ``min_input_size`` (the smallest spatial size the
    network's downsampling accepts) and may set ``size_divisor`` (sizes must be multiples).
    """

    in_chans: int = 3
    min_input_size: int = 1
    size_divisor: int = 1

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name of ``pretrained_cfg``."""
        return self.pretrained_cfg

    def __prepare_scriptable__(self) -> nn.Module:
        """``torch.jit.script`` calls this first: the models use Python features TorchScript lacks (and TorchScript is
        deprecated), so say which paths are supported instead of failing deep inside the compiler."""
        raise TypeError(f"{self.display_name}: torch.jit.script is not supported; use torch.jit.trace, torch.export "
                        "or torch.fx.symbolic_trace (all tested for every registered model)")

    @property
    def display_name(self) -> str:
        return getattr(self, "model_name", type(self).__name__)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the model, the expected and the received shape."""
        if tracing():
            return
        expected = (f"(N, {self.in_chans}, H, W) with H, W >= {self.min_input_size}"
                    + (f" and divisible by {self.size_divisor}" if self.size_divisor > 1 else ""))
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{self.display_name}: expected input {expected}, got {tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if min(h, w) < self.min_input_size or h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f"{self.display_name}: expected input {expected}, got {tuple(x.shape)}")


class FeatureInfo(list):
    """``feature_info`` as timm offers it: a list of ``{"module", "num_chs", "reduction"}`` dicts that also answers
    ``channels()``, ``reduction()`` and ``module_name()`` (all maps, or the one at ``idx``)."""

    def _get(self, key: str, idx: int | None) -> Any:
        return [d[key] for d in self] if idx is None else self[idx][key]

    def channels(self, idx: int | None = None) -> Any:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> Any:
        return self._get("reduction", idx)

    def module_name(self, idx: int | None = None) -> Any:
        return self._get("module", idx)


class Classifier(LeanModule):
    """Image classifier with ``forward_features`` → global average pool → dropout → ``fc``.

    Subclasses implement :meth:`forward_features` and create ``self.fc`` via
    :meth:`reset_classifier` (``num_features`` must be set first).

    As timm: ``num_features`` is the channel width :meth:`forward_features` returns, ``head_hidden_size`` the width
    of ``forward_head(x, pre_logits=True)`` (the same unless the head has hidden layers). ``global_pool`` is
    ``"avg"``, ``"max"`` or ``""`` (no pooling: ``forward_head`` returns the feature map; only without a classifier).
    """

    num_features: int
    num_classes: int
    drop_rate: float = 0.0
    global_pool: str = "avg"

    @property
    def head_hidden_size(self) -> int:
        return self.num_features

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "max":
            return x.amax((2, 3))
        return x if self.global_pool == "" else x.mean((2, 3))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the feature map (``global_pool``); return pooled features or logits."""
        x = self._pool(x)
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the final linear layer (``num_classes=0`` gives an identity head); ``global_pool``: ``"avg"``,
        ``"max"`` or ``""`` (unpooled features, with ``num_classes=0``); ``None`` keeps it."""
        self._set_pool(num_classes, global_pool)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def _set_pool(self, num_classes: int, global_pool: str | None) -> None:
        pool = self.global_pool if global_pool is None else global_pool
        if pool not in self.POOLS:
            raise ValueError(f"{self.display_name}: global_pool must be one of {self.POOLS}, got {pool!r}")
        if pool != "avg" and type(self).forward_head is not Classifier.forward_head:
            raise ValueError(f"{self.display_name}: its own head pools (and may have hidden layers); only "
                             "global_pool='avg'")
        if pool == "" and num_classes > 0:
            raise ValueError(f"{self.display_name}: global_pool='' (unpooled features) needs num_classes=0")
        self.global_pool = pool

    POOLS = ("avg", "max", "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    # -- timm feature / memory API -------------------------------------------------------------------
    def _feature_container(self) -> tuple[str, nn.Module]:
        for name in FEATURE_CONTAINERS:
            module = getattr(self, name, None)
            if isinstance(module, nn.Sequential) and len(module) > 1:
                return name, module
        raise NotImplementedError(f"{self.display_name}: no block container ({', '.join(FEATURE_CONTAINERS)}) to "
                                  "take multi-scale features or checkpoint from")

    def _tap_names(self, x: torch.Tensor) -> list[tuple[str, int, int]]:
        """(module name, channels, reduction) of the last container output at each resolution, then the final map
        (the only one for a model without a block container, e.g. the two-input WAE classifiers)."""
        try:
            name, container = self._feature_container()
            blocks = {f"{name}.{k}" for k, _ in container.named_children()}
        except NotImplementedError:
            blocks = set()
        seen: list[tuple[str, torch.Tensor]] = []
        hooks = [m.register_forward_hook(lambda mod, i, o, key=k: seen.append((key, o)))
                 for k, m in self.named_modules() if k]
        try:
            final = self.forward_features(x)
        finally:
            for h in hooks:
                h.remove()
        size = int(x.shape[-1])
        last: dict[int, tuple[str, int, int]] = {}
        for key, out in seen:
            if key in blocks and isinstance(out, torch.Tensor) and out.dim() == 4:
                last[int(out.shape[-1])] = (key, int(out.shape[1]), round(size / int(out.shape[-1])))
        taps = [last[w] for w in sorted(last, reverse=True)]
        # the final map is named by the last submodule that returned it, so that hooking by name works; a model
        # whose forward_features ends in a functional op or a concatenation has none: FINAL_FEATURES then
        final_name = next((k for k, out in reversed(seen) if out is final), FINAL_FEATURES)
        final_tap = (final_name, int(final.shape[1]), round(size / int(final.shape[-1])))
        return [t for t in taps if t[2] != final_tap[2]] + [final_tap]

    @property
    def feature_info(self) -> FeatureInfo:
        """``[{"module", "num_chs", "reduction"}, ...]`` of the maps :meth:`forward_intermediates` returns."""
        cached = self.__dict__.get("_feature_info")
        if cached is None:
            size = max(64, self.min_input_size)
            size = -(-size // max(1, self.size_divisor)) * max(1, self.size_divisor)
            param = next(self.parameters(), None)
            with torch.no_grad():
                probe = torch.zeros(1, self.in_chans, size, size,
                                    device=param.device if param is not None else None)
                training = self.training
                self.eval()
                try:
                    taps = self._tap_names(probe)
                finally:
                    self.train(training)
            cached = [{"module": m, "num_chs": c, "reduction": r} for m, c, r in taps]
            self.__dict__["_feature_info"] = cached
        return FeatureInfo(dict(d) for d in cached)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: ``(final features, [maps of feature_info])`` for ``x``.

        Args:
            indices: which entries of :attr:`feature_info` (an int ``n``: the last ``n``; default all).
            norm: accepted for timm's signature; the maps are taken where :attr:`feature_info` names them, and
                the last one is :meth:`forward_features`' output, normalised wherever the model normalises.
            stop_early: stop the forward after the deepest map asked for (``final`` is then that map).
            output_fmt: ``"NCHW"`` or ``"NHWC"`` (the maps only).
            intermediates_only: return the list of maps alone.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"{self.display_name}: output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        self.check_input(x)
        info = self.feature_info
        picked = _feature_indices(indices, len(info))
        keys = [info[i]["module"] for i in picked]
        last = max(picked) if stop_early and picked else len(info) - 1
        got: dict[str, torch.Tensor] = {}

        def keep(key: str, out: torch.Tensor) -> None:
            got[key] = out.clone()  # a clone: the next block may modify its input in place (an in-place ReLU)
            if key == info[last]["module"] and last != len(info) - 1:
                raise _StopForward

        hooks = [self.get_submodule(k).register_forward_hook(lambda mod, i, o, key=k: keep(key, o))
                 for k in set(keys) - {FINAL_FEATURES}]
        try:
            final = self.forward_features(x)
            got[FINAL_FEATURES] = final
        except _StopForward:
            final = got[info[last]["module"]]
        finally:
            for h in hooks:
                h.remove()
        maps = [got[k] for k in keys]
        if output_fmt == "NHWC":
            maps = [m.permute(0, 2, 3, 1) for m in maps]
        return maps if intermediates_only else (final, maps)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block of the container in backward instead of keeping its activations (training).
        An in-place block (a VGG ``ReLU(inplace=True)``) is left as it is: checkpointed, it would overwrite the
        input it saved for the recomputation, and it keeps no activation worth dropping."""
        _, container = self._feature_container()
        for block in container:
            if enable and not getattr(block, "inplace", False):
                block.forward = types.MethodType(_checkpoint_forward, block)  # type: ignore[method-assign]
            else:
                block.__dict__.pop("forward", None)
        self.grad_checkpointing = enable


def _checkpoint_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """A block's own forward, recomputed in backward while training (bound per block; survives deepcopy)."""
    plain = type(self).forward
    if self.training and torch.is_grad_enabled():
        return checkpoint(plain, self, *args, use_reentrant=False, **kwargs)
    return plain(self, *args, **kwargs)


class _StopForward(Exception):
    """Raised by a hook to end a forward once the deepest map asked for is taken (``stop_early``)."""


def _feature_indices(indices: int | Sequence[int] | None, n: int) -> list[int]:
    """timm's ``indices``: ``None`` all, an int ``k`` the last ``k``, a sequence those (negative from the end)."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"indices={indices}: this model has {n} feature maps")
        return list(range(n - indices, n))
    out = [int(i) + n if int(i) < 0 else int(i) for i in indices]
    if any(not 0 <= i < n for i in out):
        raise ValueError(f"indices {list(indices)}: this model has {n} feature maps (0..{n - 1}, or negative)")
    return out


class FeatureListNet(nn.Module):
    """A classifier's multi-scale feature maps as the output (``create_model(..., features_only=True)``).

    Args:
        model: a :class:`Classifier`.
        out_indices: which entries of its :attr:`~Classifier.feature_info` to return (default: all).
    """

    def __init__(self, model: Classifier, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(model, Classifier):
            raise ValueError(f"features_only needs a classification model, got {type(model).__name__}")
        self.model = model
        n = len(model.feature_info)
        self.out_indices = _feature_indices(None if out_indices is None else list(out_indices), n)
        self.feature_info = FeatureInfo(model.feature_info[i] for i in self.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, intermediates_only=True)


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
