"""Depthwise Multiception convolution (Bao et al., ICARCV 2020) and the separable convs it is
compared with: DSConv, MixConv (Tan & Le 2019). All three are conv factory types, and so are
the two layers the authors' code actually compared with (the defaults of the paper's tables):

- ``mixconv_authors``: the authors' "MixConv" — input and output channels split into three groups,
  each a *dense* (not depthwise) k×k conv with k = 3, 5, 7 in every stage (the kernel sizes passed
  in are ignored, as in their code), concatenated; no BatchNorm (the only factory type that does
  not end with BN, as the authors' layer). ResNet-20: 269,848 parameters.
- ``dsconv_authors``: the authors' DSConv — depthwise 3×3 (stride) → pointwise 1×1 (bias) → BN,
  no BN between the two (ResNet-20: 166,858 parameters; ours, ``dsconv``, has one: 167,434).

Layout shared by the three (``in_ch`` → ``out_ch``, ends with BatchNorm like every factory type)::

    branches of depthwise k_b×k_b convs → BN → [mid act] → pointwise 1×1 → BN
    Multiception: one branch per kernel size, each over ALL input channels (m·C_in channels)
    MixConv:      channels split into one group per kernel size (C_in channels in total)
    DSConv:       a single branch

Implementation notes (see ``docs/multiception.md``):

- *Concat → BN is stored as one BN per branch.* BN is per-channel, so BN(cat(y_1..y_m)) equals
  cat(BN_1(y_1), ..., BN_m(y_m)) exactly, in training and eval, with the same parameters. The
  split makes each BN read a conv output directly, so :func:`leannets.analysis.fold_bn`
  folds every BN of these layers (a BN after a concatenation could not be folded).
- *Stride.* ``stride_in="pointwise"`` (the authors' Multiception) runs the depthwise convs at
  stride 1 and subsamples in the 1×1; ``"depthwise"`` strides the depthwise convs. Once the BN
  uses running statistics (eval) the two are the same function, because a per-channel affine
  commutes with subsampling, so in eval the stride always moves into the depthwise convs
  (s² fewer depthwise MACs). In training they differ: BN batch statistics over all H×W
  positions vs the subsampled ones, and s² more depthwise work.
- *One forward, ops chosen per call* (:mod:`leannets.layers.dispatch`). Inference folds the BNs into the
  convs once per module state: Multiception runs all branches in one ``leannets::multi_depthwise`` C op,
  MixConv/DSConv one depthwise ``conv2d`` with the smaller kernels zero-embedded in the largest (the weights stay
  separate parameters); then the folded 1×1. Training runs the modules, Multiception's branches in one
  ``leannets::multi_depthwise_conv`` op with a C backward and BN1 as one call over the concatenation. Outputs
  and gradients equal the per-branch PyTorch formulation, which :func:`~leannets.layers.dispatch.reference_path`
  runs (MAC counts, BN folding, tests).
"""
from __future__ import annotations

import operator
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import dispatch, kernels, ops
from .create_act import create_act
from .create_conv import register_conv_type
from .depthwise import conv2d
from .kernels import bn_is_affine, bn_scale_shift, check_input
from .norm import batch_step_momentum, update_running_stats
from .pointwise import pointwise

__all__ = ["STRIDE_IN", "MULTI_KERNEL_TYPES", "AUTHORS_STAGE_KERNELS", "MulticeptionConv", "MixConv", "DSConv",
           "SeparableMultiKernel", "stage_kernel_sizes", "validate_kernel_sizes", "split_channels",
           "multiception_params", "dsconv_params", "standard_params", "AuthorsMixConv", "AuthorsDSConv",
           "AUTHORS_MIXCONV_KERNELS", "LAYER_OPTIONS"]

STRIDE_IN = ("pointwise", "depthwise")
# Elementwise activations commute with spatial subsampling and with a channel permutation;
# per-channel ones (PReLU) only with subsampling.
_ELEMENTWISE_ACTS = {None, "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "silu", "gelu", "identity"}
_POINTWISE_ACTS = _ELEMENTWISE_ACTS | {"prelu"}


def validate_kernel_sizes(conv_type: str, kernel_size: Any) -> tuple[int, ...]:
    """Kernel sizes as a tuple of odd positive ints; ``ValueError`` naming the problem otherwise."""
    allowed = "an odd int or a non-empty list of odd ints, e.g. 3 or [3, 5, 7]"
    if isinstance(kernel_size, (list, tuple)):
        raw = list(kernel_size)
    elif isinstance(kernel_size, (str, bytes, bool)) or not hasattr(kernel_size, "__index__"):
        raise ValueError(f"{conv_type}: kernel_size must be {allowed}; got {kernel_size!r}")
    else:
        raw = [kernel_size]
    if not raw:
        raise ValueError(f"{conv_type}: kernel_size is an empty list; it must be {allowed}")
    sizes = []
    for k in raw:
        if isinstance(k, bool) or not hasattr(k, "__index__"):
            raise ValueError(f"{conv_type}: kernel size {k!r} in {kernel_size!r} is not an int; it must be {allowed}")
        k_int = operator.index(k)
        if k_int < 1 or k_int % 2 == 0:
            raise ValueError(f"{conv_type}: kernel size {k_int} in {kernel_size!r} is not odd and positive "
                             "(an even kernel cannot keep the spatial size with symmetric padding); "
                             f"it must be {allowed}")
        sizes.append(k_int)
    return tuple(sizes)


def split_channels(channels: int, groups: int) -> list[int]:
    """MixNet rule: equal split, the remainder goes to the first group."""
    split = [channels // groups] * groups
    split[0] += channels - sum(split)
    return split


def multiception_params(in_ch: int, out_ch: int, kernel_sizes: Sequence[int], bn: bool = False,
                        pointwise_bias: bool = False) -> int:
    """Paper eq. 6: C_in·Σ_i k_i² (depthwise) + m·C_in·C_out (pointwise) weights.

    ``bn`` adds the BN affine parameters (2·m·C_in + 2·C_out), ``pointwise_bias`` the C_out biases.
    """
    m = len(kernel_sizes)
    n = in_ch * sum(k * k for k in kernel_sizes) + m * in_ch * out_ch
    return n + (2 * m * in_ch + 2 * out_ch if bn else 0) + (out_ch if pointwise_bias else 0)


def dsconv_params(in_ch: int, out_ch: int, k: int) -> int:
    """Paper eq. 3: C_in·k² + C_in·C_out weights."""
    return in_ch * k * k + in_ch * out_ch


def standard_params(in_ch: int, out_ch: int, k: int) -> int:
    """Paper eq. 1: k²·C_in·C_out weights."""
    return k * k * in_ch * out_ch


MULTI_KERNEL_TYPES = ("mixconv", "multiception")
# Kernel sets per ResNet stage as the authors ran them; the last stage has two 3×3 kernels
# (not one): that is what reproduces the published parameter counts (docs/multiception.md).
AUTHORS_STAGE_KERNELS: tuple[tuple[int, ...], ...] = ((3, 5, 7), (3, 5), (3, 3))


def stage_kernel_sizes(conv_type: str, kernel_sizes: Sequence[Any] | None, num_stages: int,
                       model: str = "model") -> list[Any]:
    """Per-stage ``kernel_size`` arguments for :func:`create_conv`.

    ``None`` gives the authors' arrangement ({3,5,7}, {3,5}, {3,3}, ...) for multi-kernel types
    and 3 for ``standard``/``dsconv``; otherwise one entry per stage (an int or a list).
    """
    if kernel_sizes is None:
        if conv_type in MULTI_KERNEL_TYPES:
            return [AUTHORS_STAGE_KERNELS[min(i, len(AUTHORS_STAGE_KERNELS) - 1)] for i in range(num_stages)]
        return [3] * num_stages
    if isinstance(kernel_sizes, (str, bytes)) or not isinstance(kernel_sizes, Sequence) \
            or len(kernel_sizes) != num_stages:
        raise ValueError(f"{model}: kernel_sizes must list one kernel size (or list of sizes) per stage, "
                         f"{num_stages} in all, e.g. [[3, 5, 7], [3, 5], [3, 3]][:{num_stages}]; got {kernel_sizes!r}")
    return [validate_kernel_sizes(conv_type, k) for k in kernel_sizes]


class _Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose stride can be overridden per call (for the exact eval-time stride move).

    Still an ``nn.Conv2d`` with its own ``weight``/``bias``, so BN folding sees and rewrites it.
    """

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        if stride is None or (stride, stride) == self.stride:
            return super().forward(x)
        return F.conv2d(x, self.weight, self.bias, stride, self.padding, self.dilation, self.groups)


class SeparableMultiKernel(nn.Module):
    """Depthwise branches → BN → [act] → pointwise → BN; base of the three separable types.

    One forward; :mod:`~leannets.layers.dispatch` decides per call which op computes it:

    - inference (every BN a fixed affine map, no autograd, no graph capture; :func:`dispatch.multi_inference_weights`):
      the BNs folded into the convs once per module state; Multiception runs all its branches in one
      ``leannets::multi_depthwise`` op (CPU, act included), MixConv/DSConv one depthwise conv with the smaller kernels
      zero-embedded in the largest; then the folded 1×1 conv (a matrix product where ``gemm``).
    - otherwise (training, other devices, graph capture) the layer's modules: the branches (Multiception's in one
      ``leannets::multi_depthwise_conv`` op on CPU, :func:`dispatch.multi_branch_op_applies`), BN (one call over the
      concatenation while it uses batch statistics; with no act after it, BN and the 1×1 in one
      ``leannets::bn_pointwise`` op, :func:`dispatch.bn_pointwise_applies`), act, pointwise, BN.

    Args:
        in_ch: input channels C_in.
        out_ch: output channels C_out.
        branches: ``(first_input_channel, channels, kernel_size)`` per depthwise branch, in
            concatenation order.
        stride: spatial stride of the whole layer.
        stride_in: ``"pointwise"`` or ``"depthwise"`` (identical in eval; see module docstring).
        pointwise_bias: bias on the 1×1 conv (the authors' code has one; BN absorbs it).
        mid_act: activation between the first BN and the pointwise conv (``None``: none).
    """

    conv_type = "separable"
    #: inference runs the folded 1×1 conv as a matrix product (set by ``prepare_for_inference`` where faster)
    gemm: bool = False
    #: inference ends with a 1×1 conv that ``gemm`` can run as a matrix product (what the 1×1 tuning times)
    gemm_switch: bool = True

    def __init__(self, in_ch: int, out_ch: int, branches: Sequence[tuple[int, int, int]], stride: int = 1,
                 stride_in: str = "pointwise", pointwise_bias: bool = True, mid_act: str | None = None) -> None:
        super().__init__()
        name = self.conv_type
        if in_ch <= 0 or out_ch <= 0:
            raise ValueError(f"{name}: channels must be positive, got in_ch={in_ch}, out_ch={out_ch}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"{name}: stride must be a positive int, got {stride!r}")
        if stride_in not in STRIDE_IN:
            raise ValueError(f"{name}: stride_in must be one of {STRIDE_IN}, got {stride_in!r}")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.stride_in, self.mid_act = stride_in, mid_act
        self.branches = tuple(tuple(int(v) for v in b) for b in branches)
        # Multiception's shape: several branches, each over every input channel (what the C ops compute)
        self.all_channel_branches = len(self.branches) > 1 and all(s == 0 and c == in_ch for s, c, _ in self.branches)
        self.multiplier = len(self.branches) if self.all_channel_branches else 1
        self.kernel_sizes = tuple(k for _, _, k in self.branches)
        self.kmax = max(self.kernel_sizes)
        s_dw = stride if stride_in == "depthwise" else 1
        self.dw = nn.ModuleList(
            conv2d(c, c, k, s_dw, k // 2, groups=c, bias=False) for _, c, k in self.branches)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(c) for _, c, _ in self.branches)
        mid = sum(c for _, c, _ in self.branches)
        self.act = create_act(mid_act, mid)
        self.pw = _Conv2d(mid, out_ch, 1, stride // s_dw, 0, bias=pointwise_bias)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel_sizes={self.kernel_sizes}, stride={self.stride}, "
                f"stride_in={self.stride_in!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_ch, self.conv_type)
        s_dw, s_pw = self._strides()
        w = dispatch.multi_inference_weights(self, x)
        if w is None:
            z, ys = self._depthwise(x, s_dw)
            if z is not None and dispatch.bn_pointwise_applies(self, z):
                return self.bn2(self._bn1_pointwise(z, s_pw))
            return self.bn2(self.pw(self.act(self._bn1(z, ys)), stride=s_pw))
        if self.all_channel_branches:
            y = ops.multi_depthwise(x, w["w"], w["b"], self.kernel_sizes, s_dw, kernels.act_code(self.act))
        else:
            y = self.act(F.conv2d(x, w["w"], w["b"], s_dw, self.kmax // 2, 1, self.in_ch))
        return pointwise(y, w["pw_w"], w["pw_b"], self.gemm)  # folded: the stride is in the depthwise op

    def foldable(self) -> bool:
        """Every BN is a fixed affine map (eval) and the act commutes with subsampling: inference can fold the
        BNs into the convs and move the stride into the depthwise convs."""
        return (self.mid_act in _POINTWISE_ACTS and all(bn_is_affine(bn) for bn in self.bn1)
                and bn_is_affine(self.bn2))

    def _strides(self) -> tuple[int, int]:
        if self.stride == 1:
            return 1, 1
        if self.stride_in == "depthwise" or (self.mid_act in _POINTWISE_ACTS
                                             and all(bn_is_affine(bn) for bn in self.bn1)):
            return self.stride, 1
        return 1, self.stride

    def _depthwise(self, x: torch.Tensor, stride: int) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """The depthwise branches through the layer's modules: ``(concatenation, None)`` from Multiception's branch
        op, else ``(None, one output per branch)``."""
        if dispatch.multi_branch_op_applies(self, x):
            return ops.multi_depthwise_conv(x, self._tap_major_weights(), self.kernel_sizes, stride), None
        return None, [conv(x if c == self.in_ch else x[:, start:start + c], stride=stride)
                      for (start, c, _), conv in zip(self.branches, self.dw)]

    def _bn1(self, z: torch.Tensor | None, ys: list[torch.Tensor] | None) -> torch.Tensor:
        """BN1 over the branches (``z`` concatenated, or ``ys`` one per branch), concatenated."""
        if len(self.branches) > 1 and self.bn1_one_call():
            return self._bn1_batch(z if ys is None else torch.cat(ys, 1))
        ys = list(z.split(self.in_ch, 1)) if ys is None else ys
        return torch.cat([bn(t) for bn, t in zip(self.bn1, ys)], 1) if len(ys) > 1 else self.bn1[0](ys[0])

    def _bn1_pointwise(self, z: torch.Tensor, stride: int) -> torch.Tensor:
        """BN1 on batch statistics → the 1×1 conv in one ``leannets::bn_pointwise`` op (the normalized tensor is never
        written), the branch BNs' running statistics updated as BatchNorm does."""
        bns = list(self.bn1)
        out, mean, var = ops.bn_pointwise(z, torch.cat([bn.weight for bn in bns]), torch.cat([bn.bias for bn in bns]),
                                          self.pw.weight, self.pw.bias, bns[0].eps, stride)
        n = z.numel() // z.shape[1]
        for bn, m_, v_ in zip(bns, mean.split(self.in_ch), var.split(self.in_ch)):
            update_running_stats(bn, m_, v_, n)
        return out

    def _bn1_step(self) -> float | None:
        """One training step of every branch BN's running statistics (:func:`batch_step_momentum`; one configuration
        for all, :meth:`bn1_one_call`): the momentum to update with, ``None`` when BN1 keeps no running statistics
        or is not training."""
        return [batch_step_momentum(bn) for bn in self.bn1][0]

    def _tap_major_weights(self) -> torch.Tensor:
        """Every branch's weights as tap-major (k·k, C), flattened and concatenated (differentiable)."""
        return torch.cat([conv.weight.reshape(c, k * k).t().reshape(-1) for conv, (_, c, k) in
                          zip(self.dw, self.branches)])

    def bn1_one_call(self) -> bool:
        """BN1 uses batch statistics with one configuration for every branch, outside graph capture: one
        ``batch_norm`` call over the concatenation computes exactly the per-branch BNs."""
        bns = list(self.bn1)
        if dispatch.capturing() or any(type(bn) is not nn.BatchNorm2d for bn in bns):
            return False
        cfg = {(bn.eps, bn.momentum, bn.affine, bn.track_running_stats, bn.training) for bn in bns}
        return len(cfg) == 1 and not bn_is_affine(bns[0])

    def _bn1_batch(self, y: torch.Tensor) -> torch.Tensor:
        """BN1 as one call over the concatenated branches, updating each branch BN's buffers."""
        bns = list(self.bn1)
        bn0 = bns[0]
        tracking = bn0.track_running_stats and bn0.running_mean is not None
        momentum = self._bn1_step()
        rm = torch.cat([bn.running_mean for bn in bns]) if tracking else None
        rv = torch.cat([bn.running_var for bn in bns]) if tracking else None
        weight = torch.cat([bn.weight for bn in bns]) if bn0.affine else None
        bias = torch.cat([bn.bias for bn in bns]) if bn0.affine else None
        out = F.batch_norm(y, rm, rv, weight, bias, True, 0.0 if momentum is None else momentum, bn0.eps)
        if momentum is not None:
            sizes = [c for _, c, _ in self.branches]
            with torch.no_grad():
                for bn, m_, v_ in zip(bns, rm.split(sizes), rv.split(sizes)):
                    bn.running_mean.copy_(m_)
                    bn.running_var.copy_(v_)
        return out

    def inference_weights(self) -> dict[str, torch.Tensor | None]:
        """BN-folded weights of the inference op: the branches tap-major and concatenated in float32 (Multiception's
        C op) or zero-embedded in one kmax×kmax depthwise weight (MixConv, DSConv), their biases, and the 1×1 conv
        with BN2 folded in."""
        ws, bs = [], []
        for conv, bn, (_, c, k) in zip(self.dw, self.bn1, self.branches):
            w = conv.weight.detach()
            b = conv.bias.detach() if conv.bias is not None else w.new_zeros(c)
            scale, shift = bn_scale_shift(bn)
            if scale is not None:
                w, b = w * scale.detach().view(-1, 1, 1, 1), b * scale.detach() + shift.detach()
            if self.all_channel_branches:
                w, b = w.float().reshape(c, k * k).t().reshape(-1), b.float()
            else:
                p = (self.kmax - k) // 2
                w = F.pad(w, (p, p, p, p)) if p else w
            ws.append(w)
            bs.append(b)
        pw_w, pw_b = self.pw.weight.detach(), None if self.pw.bias is None else self.pw.bias.detach()
        scale, shift = bn_scale_shift(self.bn2)
        if scale is not None:
            scale, shift = scale.detach(), shift.detach()
            pw_w = pw_w * scale.view(-1, 1, 1, 1)
            pw_b = shift if pw_b is None else pw_b * scale + shift
        return {"w": torch.cat(ws).contiguous(), "b": torch.cat(bs).contiguous(),
                "pw_w": pw_w.contiguous(memory_format=torch.channels_last), "pw_b": pw_b}


class MulticeptionConv(SeparableMultiKernel):
    """Depthwise Multiception: every kernel size applied depthwise to ALL input channels.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_sizes: odd kernel sizes, repeats allowed (the authors' last stage uses (3, 3):
            two independent 3×3 depthwise kernels per channel). One size = DSConv.
        stride: spatial stride; by default applied in the pointwise conv (authors' code).
        **kwargs: ``stride_in``, ``pointwise_bias``, ``mid_act`` (see :class:`SeparableMultiKernel`).
    """

    conv_type = "multiception"

    def __init__(self, in_ch: int, out_ch: int, kernel_sizes: int | Sequence[int] = (3, 5, 7), stride: int = 1,
                 stride_in: str = "pointwise", **kwargs: Any) -> None:
        sizes = validate_kernel_sizes(self.conv_type, kernel_sizes)
        super().__init__(in_ch, out_ch, [(0, in_ch, k) for k in sizes], stride, stride_in, **kwargs)


class MixConv(SeparableMultiKernel):
    """MixConv (Tan & Le 2019): channels split into one group per kernel size (equal split, the
    remainder to the first group, as in MixNet), mixed depthwise → BN → pointwise → BN.

    Args:
        in_ch: input channels (at least one per kernel size).
        out_ch: output channels.
        kernel_sizes: odd kernel sizes, one per channel group.
        stride: spatial stride; applied in the depthwise convs by default (MixNet).
        **kwargs: see :class:`SeparableMultiKernel`.
    """

    conv_type = "mixconv"

    def __init__(self, in_ch: int, out_ch: int, kernel_sizes: int | Sequence[int] = (3, 5, 7), stride: int = 1,
                 stride_in: str = "depthwise", **kwargs: Any) -> None:
        sizes = validate_kernel_sizes(self.conv_type, kernel_sizes)
        if in_ch < len(sizes):
            raise ValueError(f"mixconv: in_ch={in_ch} cannot be split into {len(sizes)} groups for kernel sizes "
                             f"{sizes}; use at most {in_ch} kernel sizes")
        branches, start = [], 0
        for c, k in zip(split_channels(in_ch, len(sizes)), sizes):
            branches.append((start, c, k))
            start += c
        super().__init__(in_ch, out_ch, branches, stride, stride_in, **kwargs)


class DSConv(SeparableMultiKernel):
    """Depthwise separable conv: depthwise k×k → BN → [mid act] → pointwise → BN.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: an odd kernel size (of a list, the largest is used, as for every
            single-kernel factory type).
        stride: spatial stride; applied in the depthwise conv by default (MobileNet).
        **kwargs: see :class:`SeparableMultiKernel`.
    """

    conv_type = "dsconv"

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 stride_in: str = "depthwise", **kwargs: Any) -> None:
        k = max(validate_kernel_sizes(self.conv_type, kernel_size))  # factory rule: single-kernel types take max
        super().__init__(in_ch, out_ch, [(0, in_ch, k)], stride, stride_in, **kwargs)


#: the options the three separable conv types take through the factory (``conv_kwargs``)
LAYER_OPTIONS = ("stride_in", "pointwise_bias", "mid_act")


def _options(conv_type: str, kw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kw) - set(LAYER_OPTIONS))
    if unknown:
        raise ValueError(f"conv_type {conv_type!r} got unknown options {unknown}; allowed: {', '.join(LAYER_OPTIONS)}")
    return kw


@register_conv_type("multiception")
def _multiception(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return MulticeptionConv(in_ch, out_ch, kernel_size, stride, **_options("multiception", kw))


@register_conv_type("mixconv")
def _mixconv(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return MixConv(in_ch, out_ch, kernel_size, stride, **_options("mixconv", kw))


@register_conv_type("dsconv")
def _dsconv(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return DSConv(in_ch, out_ch, kernel_size, stride, **_options("dsconv", kw))


#: The authors' MixConv always uses these kernel sizes, whatever the stage asks for.
AUTHORS_MIXCONV_KERNELS = (3, 5, 7)


class AuthorsMixConv(nn.Module):
    """The Multiception authors' "MixConv": channel groups, each a dense k×k conv, concatenated; no BN.

    Input and output channels are split alike (:func:`split_channels`), group ``i`` maps its input
    channels to its output channels with a ``AUTHORS_MIXCONV_KERNELS[i]`` kernel, no bias.

    Args:
        in_ch: input channels (at least one per group).
        out_ch: output channels (at least one per group).
        stride: stride of every group's conv.
    """

    conv_type = "mixconv_authors"

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        n = len(AUTHORS_MIXCONV_KERNELS)
        if in_ch < n or out_ch < n:
            raise ValueError(f"mixconv_authors: in_ch={in_ch} and out_ch={out_ch} must each be at least {n} "
                             f"(one channel per kernel size {AUTHORS_MIXCONV_KERNELS})")
        self.in_splits, self.out_splits = split_channels(in_ch, n), split_channels(out_ch, n)
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, stride, k // 2, bias=False)
                                   for i, o, k in zip(self.in_splits, self.out_splits, AUTHORS_MIXCONV_KERNELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts)], 1)


class AuthorsDSConv(nn.Sequential):
    """The Multiception authors' DSConv: depthwise 3×3 (stride) → pointwise 1×1 (bias) → BN, no BN between.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the depthwise conv.
    """

    conv_type = "dsconv_authors"

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False),
                         nn.Conv2d(in_ch, out_ch, 1, bias=True), nn.BatchNorm2d(out_ch))


def _no_options(conv_type: str, kw: dict[str, Any]) -> None:
    if kw:
        raise ValueError(f"conv_type {conv_type!r} takes no options (the authors' layer has none), got {sorted(kw)}")


@register_conv_type("mixconv_authors")
def _mixconv_authors(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int,
                     **kw: Any) -> nn.Module:
    _no_options("mixconv_authors", kw)  # kernel_size is ignored: the authors' layer always uses 3, 5, 7
    return AuthorsMixConv(in_ch, out_ch, stride)


@register_conv_type("dsconv_authors")
def _dsconv_authors(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    _no_options("dsconv_authors", kw)  # kernel_size is ignored: the authors' depthwise conv is always 3×3
    return AuthorsDSConv(in_ch, out_ch, stride)
