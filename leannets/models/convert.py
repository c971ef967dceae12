"""Model surgery: the papers' ideas in any ``nn.Module`` (``leannets.convert``).

- ``conv="xsepconv"``: every depthwise k×k conv (k ≥ ``min_kernel``, odd, unit dilation, "same" padding) becomes
  XSepConv (2×2 with the improved symmetric padding → 1×k → k×1). Where the conv is followed in its
  ``nn.Sequential`` by its BatchNorm and activation (timm / torchvision / leannets conv-norm-act blocks), the
  three become one :class:`~leannets.layers.XSepConv` with that activation after every stage, as the paper's
  block (the fast C kernels apply in inference); elsewhere (e.g. a ConvNeXt 7×7 followed by LayerNorm) the conv
  becomes 2×2 → BN → act → 1×k → BN → act → k×1, ending bare as the conv it replaces (``xsep_act``).
  Stride-2 convs take the downsampling form only where the paper's cost rule says it is cheaper (k ≥ 7;
  ``stride2="always"`` / ``"never"`` overrides).
- ``conv="multiception"``: a depthwise conv followed in its ``nn.Sequential`` by [BN] [act] and a 1×1 conv (a
  depthwise-separable pair) becomes :class:`~leannets.layers.MulticeptionConv` with ``kernel_sizes`` on all
  channels; a depthwise conv without such a pointwise partner is kept (the report says why).
- ``act="xunit"``: ReLU / ReLU6 / Hardswish / GELU modules applied to feature maps become xUnits of
  ``act_kernel`` (channels found by one probe forward).

Only the replaced layers are new (freshly initialised); every other weight, BN statistic, ``requires_grad`` flag
and the train/eval mode are kept, shared modules stay shared. The model is changed in place and returned in the
report with what changed and the parameters before and after (``leannets.convert`` adds the MACs); a recipe's
``model.convert`` applies the same options when the trainer builds the model.
"""
from __future__ import annotations

import fnmatch
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from leannets.layers.depthwise import conv2d
from leannets.layers.multiception import MulticeptionConv, validate_kernel_sizes
from leannets.layers.padding import EvenPad2d, assign_padding_schedule
from leannets.layers.xsepconv import DWConvBnAct, XSepConv, xsepconv_downsample_cost_ratio
from leannets.layers.xunit import XUnit

__all__ = ["convert_model", "probe_input", "ConvertReport", "CONVERT_OPTIONS", "CONVERT_CONVS", "CONVERT_ACTS"]

CONVERT_CONVS = ("xsepconv", "multiception")
CONVERT_ACTS = ("xunit",)
#: the options of :func:`convert_model` a recipe's ``model.convert`` may set
CONVERT_OPTIONS = ("conv", "act", "min_kernel", "kernel_sizes", "act_kernel", "stride2", "xsep_act", "include",
                   "exclude", "input_size")
#: activation modules an xUnit may replace, and the names XSepConv's factory knows them by
_ACT_NAMES: dict[type, str] = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hswish", nn.GELU: "gelu"}
#: blocks whose own activations are part of their design (never made xUnits); the bare XSepConv form is one
_BLOCKS_WITH_ACTS = (XSepConv, XUnit, DWConvBnAct, MulticeptionConv)
Select = str | Sequence[str] | Callable[[str, nn.Module], bool] | None


@dataclass
class ConvertReport:
    """What :func:`convert_model` did: ``replaced`` as ``(layer name, kind, detail)``, ``kept`` as
    ``(layer name, reason)``."""

    model: nn.Module
    replaced: list[tuple[str, str, str]] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    params: tuple[int, int] = (0, 0)
    macs: tuple[int, int] = (0, 0)
    input_size: tuple[int, ...] = ()
    note: str = ""

    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _ in self.replaced))

    def format(self) -> str:
        if not self.replaced and not self.kept:
            return f"nothing converted: {self.note}; the model is unchanged"
        lines = [f"replaced {len(self.replaced)} layer(s): "
                 + (", ".join(f"{n} {k}" for k, n in sorted(self.counts().items())) or "none")]
        lines += [f"  {name}: {kind} {detail}" for name, kind, detail in self.replaced]
        if self.kept:
            lines.append(f"kept {len(self.kept)} candidate(s):")
            lines += [f"  {name}: {why}" for name, why in self.kept]
        (p0, p1), (m0, m1) = self.params, self.macs
        lines.append(f"params {p0:,} -> {p1:,} ({p1 / max(p0, 1):.3f}x)")
        if m0:
            size = "x".join(str(v) for v in self.input_size[1:])
            lines.append(f"MACs at {size}: {m0 / 1e6:,.2f} M -> {m1 / 1e6:,.2f} M ({m1 / max(m0, 1):.3f}x)")
        return "\n".join(lines)


def convert_model(model: nn.Module, *, conv: str | None = None, act: str | None = None, min_kernel: int = 5,
            kernel_sizes: Sequence[int] = (3, 5, 7), act_kernel: int = 9, stride2: str = "auto",
            xsep_act: str = "relu", include: Select = None, exclude: Select = None,
            input_size: Sequence[int] | None = None) -> ConvertReport:
    """Replace depthwise convs (``conv``) and/or activations (``act``) of ``model`` in place (module docstring).

    Args:
        include, exclude: which layers may change: a glob on the module name (``"blocks.*"``), several, or a
            predicate ``(name, module) -> bool``.
        input_size: (C, H, W) of the probe forward and of the MAC count (default: the model's
            ``pretrained_cfg``, else 3×224×224).
    """
    if conv is None and act is None:
        raise ValueError("convert: give conv= (xsepconv, multiception) and/or act= (xunit)")
    if conv is not None and conv not in CONVERT_CONVS:
        raise ValueError(f"convert: conv must be one of {CONVERT_CONVS}, got {conv!r}")
    if act is not None and act not in CONVERT_ACTS:
        raise ValueError(f"convert: act must be one of {CONVERT_ACTS}, got {act!r}")
    if stride2 not in ("auto", "always", "never"):
        raise ValueError(f"convert: stride2 must be auto, always or never, got {stride2!r}")
    kernel_sizes = validate_kernel_sizes("multiception", list(kernel_sizes))
    x = probe_input(model, input_size)
    report = ConvertReport(model, input_size=tuple(x.shape))
    before = _params(model)
    pick = _selector(include, exclude)
    if conv is not None:
        _convert_convs(model, conv, min_kernel, kernel_sizes, stride2, xsep_act, pick, report)
    if act is not None:
        _convert_acts(model, act_kernel, x, pick, report)
    if conv == "xsepconv" and report.replaced:
        assign_padding_schedule(model, x)
    report.params = (before, _params(model))
    if not report.replaced and not report.kept:
        what = ([f"no depthwise conv (groups = channels) with a kernel >= {min_kernel}"] if conv else []) + (
            ["no ReLU / ReLU6 / Hardswish / GELU module"] if act else [])
        report.note = " and ".join(what) + (" among the selected layers" if include or exclude else "")
    return report


def probe_input(model: nn.Module, input_size: Sequence[int] | None = None) -> torch.Tensor:
    """A (1, C, H, W) zero input: ``input_size``, else the model's ``pretrained_cfg``, else 3×224×224."""
    size = tuple(input_size or (getattr(model, "pretrained_cfg", None) or {}).get("input_size") or (3, 224, 224))
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"convert: input_size must be (C, H, W), got {size}")
    p = next(model.parameters(), None)
    return torch.zeros(1, *size, device=p.device if p is not None else None)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _selector(include: Select, exclude: Select) -> Callable[[str, nn.Module], bool]:
    def as_pred(sel: Select, default: bool) -> Callable[[str, nn.Module], bool]:
        if sel is None:
            return lambda n, m: default
        if callable(sel):
            return sel
        globs = [sel] if isinstance(sel, str) else list(sel)
        return lambda n, m: any(fnmatch.fnmatchcase(n, g) for g in globs)
    inc, exc = as_pred(include, True), as_pred(exclude, False)
    return lambda n, m: inc(n, m) and not exc(n, m)


def _depthwise_reason(m: nn.Conv2d, min_kernel: int) -> str | None:
    """Why ``m`` cannot become XSepConv / Multiception (``None``: it can)."""
    k = m.kernel_size
    if k[0] != k[1] or k[0] % 2 == 0 or k[0] < 3:
        return f"kernel {k[0]}x{k[1]}: needs an odd square kernel of at least 3"
    if m.dilation != (1, 1) or m.padding_mode != "zeros":
        return "dilated or non-zero padding"
    if m.padding not in ((k[0] // 2, k[1] // 2), "same") or m.stride[0] != m.stride[1] or m.stride[0] > 2:
        return f"padding {m.padding} / stride {m.stride}: needs 'same' padding and stride 1 or 2"
    return None


def _convert_convs(model: nn.Module, kind: str, min_kernel: int, kernel_sizes: tuple[int, ...], stride2: str,
                   xsep_act: str, pick: Callable[[str, nn.Module], bool], report: ConvertReport) -> None:
    done: dict[int, nn.Module] = {}
    sites = list(model.named_modules(remove_duplicate=False))
    uses = Counter(id(m) for _, parent in sites for m in parent._modules.values())
    for parent_name, parent in sites:
        for child_name, m in list(parent._modules.items()):  # named_children() drops shared repeats
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if not (isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels and m.groups > 1):
                continue
            if id(m) in done:  # a shared conv: every reference gets the one replacement
                _swap(parent, child_name, done[id(m)])
                continue
            if m.kernel_size[0] < min_kernel or not pick(name, m):
                continue
            why = _depthwise_reason(m, min_kernel)
            s = m.stride[0]
            if why is None and kind == "xsepconv" and s == 2 and (stride2 == "never" or (
                    stride2 == "auto" and xsepconv_downsample_cost_ratio(m.kernel_size[0]) >= 1)):
                ratio = xsepconv_downsample_cost_ratio(m.kernel_size[0])
                why = (f"stride 2, k={m.kernel_size[0]}: the downsampling XSepConv would cost {ratio:.2f}x the "
                       "depthwise conv's MACs, so the paper keeps such layers (Sec. 3.1, and its MobileNetV3-Small in "
                       "Sec. 4.2); stride2='always' converts it)")
            if why is not None:
                report.kept.append((name, why))
                continue
            shared = uses[id(m)] > 1  # its neighbours differ per site: never absorb them
            new, label = (_to_xsepconv(parent, child_name, m, xsep_act, absorb=not shared) if kind == "xsepconv"
                          else (None, "used in several places (Multiception absorbs the layers after it)") if shared
                          else _to_multiception(parent, child_name, m, kernel_sizes))
            if new is None:
                report.kept.append((name, label))
                continue
            done[id(m)] = new
            report.replaced.append((name, kind, label))


def _follow(parent: nn.Module, child_name: str, count: int) -> list[tuple[str, nn.Module]]:
    """The ``count`` modules after ``child_name`` in ``parent`` when it is an ``nn.Sequential``."""
    if not isinstance(parent, nn.Sequential):
        return []
    names = list(parent._modules)
    i = names.index(child_name)
    return [(n, parent._modules[n]) for n in names[i + 1:i + 1 + count]]


def _swap(parent: nn.Module, child_name: str, new: nn.Module) -> None:
    setattr(parent, child_name, new)


def _adopt(new: nn.Module, old: nn.Module) -> nn.Module:
    """``new`` on ``old``'s device and dtype, in its train/eval mode, frozen if it was."""
    p = next(old.parameters(), None)
    if p is not None:
        new.to(device=p.device, dtype=p.dtype)
        if not p.requires_grad:
            new.requires_grad_(False)
    return new.train(old.training)


def _to_xsepconv(parent: nn.Module, child_name: str, m: nn.Conv2d, xsep_act: str, absorb: bool = True
                 ) -> tuple[nn.Module, str]:
    k, s, c = m.kernel_size[0], m.stride[0], m.in_channels
    after = _follow(parent, child_name, 2) if absorb else []
    if (len(after) == 2 and isinstance(after[0][1], nn.BatchNorm2d) and after[0][1].num_features == c
            and type(after[1][1]) in _ACT_NAMES):
        act = _ACT_NAMES[type(after[1][1])]
        new = _adopt(XSepConv(c, k, s, padding="improved", act=act), m)
        _swap(parent, child_name, new)
        for n, _ in after:
            _swap(parent, n, nn.Identity())
        return new, f"k={k} s={s} (with its BN and {act})"
    bare = nn.Sequential(OrderedDict(
        conv_2x2=DWConvBnAct(c, (2, 2), (1, 1), xsep_act, pad_strategy="improved"),
        conv_1xk=DWConvBnAct(c, (1, k), (1, s), xsep_act),
        conv_kx1=conv2d(c, c, (k, 1), (s, 1), (k // 2, 0), groups=c, bias=m.bias is not None)))
    new = _adopt(bare, m)
    _swap(parent, child_name, new)
    return new, f"k={k} s={s} (bare: 2x2 and 1xk with BN + {xsep_act}, kx1 as the conv)"


def _to_multiception(parent: nn.Module, child_name: str, m: nn.Conv2d, kernel_sizes: tuple[int, ...]
                     ) -> tuple[nn.Module | None, str]:
    c = m.in_channels
    after = _follow(parent, child_name, 4)
    between = []
    for n, mod in after:
        if isinstance(mod, nn.Conv2d):
            break
        between.append((n, mod))
    rest = after[len(between):]
    ok_between = all(isinstance(mod, nn.BatchNorm2d) or type(mod) in _ACT_NAMES for _, mod in between)
    if not rest or not ok_between or not _pointwise(rest[0][1], c):
        return None, "no 1x1 conv follows it in its nn.Sequential (Multiception replaces a depthwise-separable pair)"
    pw_name, pw = rest[0]
    acts = [_ACT_NAMES[type(mod)] for _, mod in between if type(mod) in _ACT_NAMES]
    tail = _follow(parent, pw_name, 1)
    has_bn2 = bool(tail) and isinstance(tail[0][1], nn.BatchNorm2d) and tail[0][1].num_features == pw.out_channels
    new = _adopt(MulticeptionConv(c, pw.out_channels, kernel_sizes, m.stride[0], mid_act=acts[0] if acts else None,
                                  pointwise_bias=pw.bias is not None), m)
    if not has_bn2:
        new.bn2 = nn.Identity()
    _swap(parent, child_name, new)
    for n, _ in [*between, (pw_name, pw), *(tail if has_bn2 else [])]:
        _swap(parent, n, nn.Identity())
    return new, f"kernels {kernel_sizes} s={m.stride[0]} (with its pointwise {pw_name})"


def _pointwise(mod: nn.Module, c: int) -> bool:
    return (isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1) and mod.groups == 1 and mod.in_channels == c
            and mod.stride == (1, 1))


def _convert_acts(model: nn.Module, kernel: int, x: torch.Tensor, pick: Callable[[str, nn.Module], bool],
                  report: ConvertReport) -> None:
    """Activations fed NCHW feature maps of one width become xUnits (widths from one probe forward). A map counts as
    NCHW when a Conv2d or BatchNorm2d returned a tensor of its (C, H, W) in the probe: an activation inside an MLP
    on channels-last tensors (ConvNeXt) is kept."""
    widths: dict[int, set[int]] = {}
    conv_shapes: set[tuple[int, ...]] = set()

    def seen_act(mod: nn.Module, i: tuple, o: Any) -> None:
        t = i[0] if i and isinstance(i[0], torch.Tensor) else None
        widths.setdefault(id(mod), set()).add(int(t.shape[1]) if t is not None and t.dim() == 4
                                              and tuple(t.shape[1:]) in conv_shapes else -1)

    hooks = [m.register_forward_hook(seen_act) for m in model.modules() if type(m) in _ACT_NAMES]
    hooks += [m.register_forward_hook(lambda mod, i, o: conv_shapes.add(tuple(o.shape[1:])))
              for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    inside = {id(a) for b in model.modules() if isinstance(b, _BLOCKS_WITH_ACTS) for a in b.modules() if a is not b}
    done: dict[int, nn.Module] = {}
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        for child_name, m in list(parent._modules.items()):  # named_children() drops shared repeats
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if type(m) not in _ACT_NAMES or id(m) in inside:
                continue
            if id(m) in done:
                _swap(parent, child_name, done[id(m)])
                continue
            if not pick(name, m):
                continue
            seen = widths.get(id(m), set())
            if len(seen) != 1 or -1 in seen:
                why = ("not reached by the probe forward" if not seen else "fed tensors that are not NCHW conv "
                       "feature maps" if -1 in seen else f"shared by maps of {sorted(seen)} channels")
                report.kept.append((name, why))
                continue
            new = _adopt(XUnit(seen.pop(), kernel), m)
            new.to(x.device)
            done[id(m)] = new
            _swap(parent, child_name, new)
            report.replaced.append((name, "xunit", f"k={kernel} (was {type(m).__name__})"))
