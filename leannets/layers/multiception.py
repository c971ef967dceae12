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
- *Fused path.* All branches run as ONE depthwise ``conv2d`` (groups = C_in, channel
  multiplier m for Multiception, 1 for MixConv/DSConv) with the smaller kernels zero-embedded
  in the largest; the weights stay separate parameters. The fused output is ordered by input
  channel, so the pointwise weight columns (not the activations) are permuted. In eval the
  BNs are folded into the two convs on the fly. Outputs and gradients equal the reference
  path. ``impl="auto"`` picks the faster path (see :func:`choose_impl`).
"""
from __future__ import annotations

import operator
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels, ops
from .create_act import create_act
from .create_conv import register_conv_type
from .depthwise import conv2d
from .dispatch import choose_impl, clear_autotune_cache, dtype_ok, folded
from .kernels import bn_is_affine, bn_scale_shift, check_input
from .pointwise import pointwise

__all__ = ["IMPLS", "STRIDE_IN", "MULTI_KERNEL_TYPES", "AUTHORS_STAGE_KERNELS", "MulticeptionConv", "MixConv",
           "DSConv", "SeparableMultiKernel", "stage_kernel_sizes", "validate_kernel_sizes", "split_channels",
           "multiception_params", "dsconv_params", "standard_params", "choose_impl", "clear_autotune_cache",
           "AuthorsMixConv", "AuthorsDSConv", "AUTHORS_MIXCONV_KERNELS"]

IMPLS = ("auto", "reference", "fused", "kernels", "autotune")
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

    Args:
        in_ch: input channels C_in.
        out_ch: output channels C_out.
        branches: ``(first_input_channel, channels, kernel_size)`` per depthwise branch, in
            concatenation order.
        stride: spatial stride of the whole layer.
        stride_in: ``"pointwise"`` or ``"depthwise"`` (identical in eval; see module docstring).
        pointwise_bias: bias on the 1×1 conv (the authors' code has one; BN absorbs it).
        mid_act: activation between the first BN and the pointwise conv (``None``: none).
        impl: ``auto`` | ``reference`` | ``fused`` | ``autotune``.
    """

    conv_type = "separable"
    #: inference runs the folded 1×1 conv as a matrix product (set by ``prepare_for_inference`` where faster)
    gemm: bool = False

    def __init__(self, in_ch: int, out_ch: int, branches: Sequence[tuple[int, int, int]], stride: int = 1,
                 stride_in: str = "pointwise", pointwise_bias: bool = True, mid_act: str | None = None,
                 impl: str = "auto") -> None:
        super().__init__()
        name = self.conv_type
        if in_ch <= 0 or out_ch <= 0:
            raise ValueError(f"{name}: channels must be positive, got in_ch={in_ch}, out_ch={out_ch}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"{name}: stride must be a positive int, got {stride!r}")
        if stride_in not in STRIDE_IN:
            raise ValueError(f"{name}: stride_in must be one of {STRIDE_IN}, got {stride_in!r}")
        if impl not in IMPLS:
            raise ValueError(f"{name}: impl must be one of {IMPLS}, got {impl!r}")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.stride_in, self.impl, self.mid_act = stride_in, impl, mid_act
        self.branches = tuple(tuple(int(v) for v in b) for b in branches)
        # Multiception's shape: several branches, each over every input channel (what the C ops compute)
        self._all_channel_branches = len(self.branches) > 1 and all(s == 0 and c == in_ch for s, c, _ in self.branches)
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
        self._init_fused_layout()

    def _init_fused_layout(self) -> None:
        # Fused conv output channels are ordered by (input channel, branch): groups = in_ch.
        keys = []
        for b, (start, c, _) in enumerate(self.branches):
            keys += [(start + i, b) for i in range(c)]
        per_channel = [0] * self.in_ch
        for ch, _ in keys:
            per_channel[ch] += 1
        self.multiplier = per_channel[0]
        self._fusable = all(n == self.multiplier for n in per_channel)
        order = sorted(range(len(keys)), key=lambda i: keys[i])
        self.register_buffer("fused_perm", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("fused_inv_perm", torch.argsort(self.fused_perm), persistent=False)
        self.register_buffer("concat_order", torch.arange(len(keys)), persistent=False)

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel_sizes={self.kernel_sizes}, stride={self.stride}, "
                f"stride_in={self.stride_in!r}, impl={self.impl!r}")

    # -- paths ---------------------------------------------------------------------------------
    def _eval_affine_ok(self) -> bool:
        """BN1 is an affine map (running stats / folded) and the act commutes with subsampling."""
        return self.mid_act in _POINTWISE_ACTS and all(bn_is_affine(bn) for bn in self.bn1)

    def _strides(self) -> tuple[int, int]:
        if self.stride == 1:
            return 1, 1
        if self.stride_in == "depthwise" or self._eval_affine_ok():
            return self.stride, 1
        return 1, self.stride

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """One depthwise conv call per branch, concatenated (the paper's formulation)."""
        s_dw, s_pw = self._strides()
        ys = []
        for (start, c, _), conv, bn in zip(self.branches, self.dw, self.bn1):
            xb = x if c == self.in_ch else x[:, start:start + c]
            ys.append(bn(conv(xb, stride=s_dw, fast=False)))  # plain PyTorch: the oracle
        y = self.act(ys[0] if len(ys) == 1 else torch.cat(ys, 1))
        return self.bn2(self.pw(y, stride=s_pw))

    @property
    def gemm_switch(self) -> bool:
        """Inference ends with a 1×1 conv that ``gemm`` can run as a matrix product (the C-kernel path)."""
        return self._all_channel_branches

    def kernel_inference_ok(self, x: torch.Tensor) -> bool:
        """The C multi-branch kernel computes this call: inference, every branch over all channels."""
        if not self._all_channel_branches or self.mid_act not in _POINTWISE_ACTS:
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        return (all(bn_is_affine(bn) for bn in self.bn1) and bn_is_affine(self.bn2)
                and kernels.act_code(self.act) is not None and dtype_ok(x, self.pw.weight))

    def branch_op_ok(self, x: torch.Tensor) -> bool:
        """``leannets::multi_depthwise_conv`` computes the branches of this training call: Multiception (several
        branches, each over all channels, no bias) on CPU float32 or bf16 data."""
        return (self._all_channel_branches
                and all(conv.bias is None and conv.padding_mode == "zeros" for conv in self.dw)
                and x.device.type == "cpu" and x.dim() == 4 and dtype_ok(x, self.dw[0].weight))

    def _tap_major_weights(self) -> torch.Tensor:
        """Every branch's weights as tap-major (k·k, C), flattened and concatenated (differentiable)."""
        return torch.cat([conv.weight.reshape(c, k * k).t().reshape(-1) for conv, (_, c, k) in
                          zip(self.dw, self.branches)])

    def _kernel_weights(self) -> dict[str, torch.Tensor]:
        """BN-folded branch weights (tap-major, concatenated), biases and the folded pointwise conv."""
        ws, bs = [], []
        for conv, bn, (_, c, k) in zip(self.dw, self.bn1, self.branches):
            w = conv.weight.detach().reshape(c, k * k).float()
            b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(c)
            scale, shift = bn_scale_shift(bn)
            if scale is not None:
                w, b = w * scale.detach()[:, None], b * scale.detach() + shift.detach()
            ws.append(w.t().reshape(-1))
            bs.append(b)
        pw_w, pw_b = self._pointwise_weights()
        pw_w, pw_b = pw_w.detach(), None if pw_b is None else pw_b.detach()
        return {"w": torch.cat(ws).contiguous(), "b": torch.cat(bs).contiguous(),
                "pw_w": pw_w.contiguous(memory_format=torch.channels_last), "pw_b": pw_b}

    def forward_kernels(self, x: torch.Tensor) -> torch.Tensor:
        """CPU path on the C kernels. Inference: every branch (BN folded) in one ``leannets::multi_depthwise`` call, then the
        folded pointwise conv. Training: every Multiception branch in one ``leannets::multi_depthwise_conv`` call
        (C forward and backward; MixConv/DSConv: the branch convs with the C backward of :class:`DepthwiseConv2d`
        and a concatenation), one BN call over the result (exactly the per-branch BNs), act, pointwise, BN."""
        s_dw, s_pw = self._strides()
        if self.kernel_inference_ok(x):
            w = folded(self, "_kernel_cache", self._kernel_weights)
            y = ops.multi_depthwise(x, w["w"], w["b"], self.kernel_sizes, s_dw, kernels.act_code(self.act))
            return pointwise(y, w["pw_w"], w["pw_b"], self.gemm) if s_pw == 1 else F.conv2d(y, w["pw_w"], w["pw_b"], s_pw)
        if self.branch_op_ok(x):
            y = ops.multi_depthwise_conv(x, self._tap_major_weights(), self.kernel_sizes, s_dw)
            ys = list(y.split(self.in_ch, 1))
        else:
            ys = [conv(x if c == self.in_ch else x[:, start:start + c], stride=s_dw)
                  for (start, c, _), conv in zip(self.branches, self.dw)]
            y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
        if all(bn_is_affine(bn) for bn in self.bn1) or not self.fused_supported():
            y = torch.cat([bn(t) for bn, t in zip(self.bn1, ys)], 1) if len(ys) > 1 else self.bn1[0](y)
        else:
            y = self._fused_bn1_train(y, permuted=False)
        return self.bn2(self.pw(self.act(y), stride=s_pw))

    def _fused_depthwise(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Zero-embedded kmax×kmax weights (and biases) in concatenation order."""
        ws, bs = [], []
        for conv, (_, c, k) in zip(self.dw, self.branches):
            p = (self.kmax - k) // 2
            ws.append(F.pad(conv.weight, (p, p, p, p)) if p else conv.weight)
            bs.append(conv.bias)
        w = torch.cat(ws) if len(ws) > 1 else ws[0]
        if all(b is None for b in bs):
            return w, None
        b = torch.cat([torch.zeros(c, device=w.device, dtype=w.dtype) if bb is None else bb
                       for bb, (_, c, _) in zip(bs, self.branches)])
        return w, b

    def _fused_bn1_train(self, y: torch.Tensor, permuted: bool = True) -> torch.Tensor:
        """BN1 as one call over the concatenated tensor (fused, input-channel order; or concatenation
        order with ``permuted=False``), updating each branch BN's buffers."""
        bns = list(self.bn1)
        bn0 = bns[0]
        perm = self.fused_perm if permuted else self.concat_order
        tracking = bn0.track_running_stats and bn0.running_mean is not None
        use_batch = bn0.training or not tracking
        momentum = 0.0
        if bn0.training and tracking:
            for bn in bns:
                bn.num_batches_tracked.add_(1)
            momentum = 1.0 / float(bn0.num_batches_tracked) if bn0.momentum is None else bn0.momentum
        rm = torch.cat([bn.running_mean for bn in bns])[perm] if tracking else None
        rv = torch.cat([bn.running_var for bn in bns])[perm] if tracking else None
        weight = torch.cat([bn.weight for bn in bns])[perm] if bn0.affine else None
        bias = torch.cat([bn.bias for bn in bns])[perm] if bn0.affine else None
        out = F.batch_norm(y, rm, rv, weight, bias, use_batch, momentum, bn0.eps)
        if use_batch and tracking and bn0.training:
            inv = self.fused_inv_perm if permuted else self.concat_order
            with torch.no_grad():
                for bn, m_, v_ in zip(bns, rm[inv].split([c for _, c, _ in self.branches]),
                                      rv[inv].split([c for _, c, _ in self.branches])):
                    bn.running_mean.copy_(m_)
                    bn.running_var.copy_(v_)
        return out

    def fused_supported(self) -> bool:
        if not self._fusable or (self.multiplier > 1 and self.mid_act not in _ELEMENTWISE_ACTS):
            return False
        kinds = {type(bn) for bn in self.bn1}
        if len(kinds) != 1 or not kinds <= {nn.BatchNorm2d, nn.Identity}:
            return False
        if kinds == {nn.BatchNorm2d}:
            cfg = {(bn.eps, bn.momentum, bn.affine, bn.track_running_stats, bn.training) for bn in self.bn1}
            return len(cfg) == 1
        return True

    def _fused_weights(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(depthwise w, b, pointwise w, b) of the fused path in fused channel order, with every
        BN that acts as a fixed affine map (eval) folded in."""
        perm = self.fused_perm
        w, b = self._fused_depthwise()
        if all(bn_is_affine(bn) for bn in self.bn1) and isinstance(self.bn1[0], nn.BatchNorm2d):
            affine = [bn_scale_shift(bn) for bn in self.bn1]
            scale = torch.cat([a[0] for a in affine])
            shift = torch.cat([a[1] for a in affine])
            w = w * scale.view(-1, 1, 1, 1)
            b = shift if b is None else b * scale + shift
        pw_w, pw_b = self._pointwise_weights()
        if self.multiplier > 1:  # BN2 scales output rows: permuting the input columns commutes with it
            w, b, pw_w = w[perm], None if b is None else b[perm], pw_w[:, perm]
        return w, b, pw_w, pw_b

    def _pointwise_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 1×1 conv's (weight, bias) with BN2 folded in when it is a fixed affine map (eval)."""
        pw_w, pw_b = self.pw.weight, self.pw.bias
        if isinstance(self.bn2, nn.BatchNorm2d) and bn_is_affine(self.bn2):
            scale, shift = bn_scale_shift(self.bn2)
            pw_w = pw_w * scale.view(-1, 1, 1, 1)
            pw_b = shift if pw_b is None else pw_b * scale + shift
        return pw_w, pw_b

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """All branches in one depthwise ``conv2d`` call (weights zero-embedded, kept separate)."""
        if not self.fused_supported():
            return self.forward_reference(x)
        s_dw, s_pw = self._strides()
        bn1_folded = all(bn_is_affine(bn) for bn in self.bn1)
        bn2_folded = bn_is_affine(self.bn2)
        if bn1_folded and bn2_folded and not torch.is_grad_enabled():
            w, b, pw_w, pw_b = folded(self, "_fused_cache", self._fused_weights)
        else:
            w, b, pw_w, pw_b = self._fused_weights()
        y = F.conv2d(x, w, b, s_dw, self.kmax // 2, 1, self.in_ch)
        if not bn1_folded:
            y = self._fused_bn1_train(y)
        y = F.conv2d(self.act(y), pw_w, pw_b, s_pw)
        return y if bn2_folded else self.bn2(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_ch, self.conv_type)
        impl = choose_impl(self, x)
        if impl == "kernels":
            return self.forward_kernels(x)
        if impl == "fused":
            return self.forward_fused(x)
        return self.forward_reference(x)


class MulticeptionConv(SeparableMultiKernel):
    """Depthwise Multiception: every kernel size applied depthwise to ALL input channels.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_sizes: odd kernel sizes, repeats allowed (the authors' last stage uses (3, 3):
            two independent 3×3 depthwise kernels per channel). One size = DSConv.
        stride: spatial stride; by default applied in the pointwise conv (authors' code).
        **kwargs: ``stride_in``, ``pointwise_bias``, ``mid_act``, ``impl`` (see
            :class:`SeparableMultiKernel`).
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


@register_conv_type("multiception")
def _multiception(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return MulticeptionConv(in_ch, out_ch, kernel_size, stride, **kw)


@register_conv_type("mixconv")
def _mixconv(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return MixConv(in_ch, out_ch, kernel_size, stride, **kw)


@register_conv_type("dsconv")
def _dsconv(in_ch: int, out_ch: int, kernel_size: int | Sequence[int], stride: int, **kw: Any) -> nn.Module:
    return DSConv(in_ch, out_ch, kernel_size, stride, **kw)


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
