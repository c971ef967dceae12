"""WAE classifiers (Chen et al., AAAI 2018) and their baselines with one classification structure.

:class:`WAEClassifier` = a *front end* that turns the image into two half-resolution inputs
(I_L, I_H), a standard backbone on I_L, a *fusion* sub-network (the same backbone family with
every channel count ÷ 4) on I_H, a classifier on the I_L features (score ``s_L``) and a
classifier on the concatenated I_L and I_H features (score ``s_LH``). ``forward`` returns the
plain logits ``(s_L + s_LH) / 2`` in train and eval mode alike. The training loss (sum of both
cross-entropies, plus the transform loss in stages 1 and 3) needs the parts:
``model(x, parts=True, reconstruct=...)`` returns them as a :class:`WAEOutput` (a call through
``forward`` so DDP/compile wrappers see it); ``leannets/engine/tasks/wae.py`` uses exactly that.

Front ends (``front_end=``): ``"wae"`` (learned encoder; ``wae_*``, ``decomp_*`` and
``ilonly_*``), ``"wavelet"`` (fixed CDF 9/7 DWT: cA → backbone, cH‖cV‖cD → fusion;
``wavelet_*``, or cA alone: ``caonly_*``) and ``"resize"`` (anti-aliased ½ bilinear resize, no fusion; ``halfres_*``).
The full-resolution baselines are the plain backbones (``vgg16``, ``resnet50_v1``,
``vgg_cifar_small``; :data:`FULL_RESOLUTION`).

As in the authors' deploy net (``wae_vgg.prototxt``), I_L and I_H each pass a BatchNorm without
scale and shift (Caffe's ``BatchNorm`` layers ``bn_CA`` / ``bn_CH``) before the backbone and the
fusion net (``input_norm``); the transform loss, the decoder and :meth:`WAEClassifier.decompose`
see them before it. The VGG16 family follows the deploy net: plain VGG16 convs (bias, no BN),
Caffe's ceil-mode max-pools (a 4×4 map at 112², 8,192 fc6 inputs). The ResNet-50 family uses
ResNet-50 v1, the layout of the 2015 Caffe model the authors built on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import dispatch
from ..layers.kernels import fx_tracing
from ..layers.wae import TransformLoss, WAEDecoder, WAEEncoder, half_size, transform_loss
from ..layers.wavelet import DWT2d
from ._base import Classifier, LeanModule
from ._registry import CIFAR_CFG, IMAGENET_CFG, model_cfg, register_model
from .resnet import ResNet
from .vgg import CHEN_WAE, VGG, MlpHead

__all__ = ["WAE", "WAEClassifier", "WAEOutput", "wrap_wae", "FRONT_ENDS", "BACKBONES", "VARIANTS", "FULL_RESOLUTION"]

FRONT_ENDS = ("wae", "wavelet", "resize")



def resize_half(x: torch.Tensor) -> torch.Tensor:
    """The image resized to ``ceil(H/2) × ceil(W/2)`` (bilinear, antialiased): the ½-resolution baseline's input.
    bf16/fp16 images are resized in float32 (PyTorch's antialiased kernel has no bf16 CPU version)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        return resize_half(x.float()).to(x.dtype)
    return F.interpolate(x, size=half_size(x.shape), mode="bilinear", align_corners=False, antialias=True)


torch.fx.wrap("resize_half")  # a leaf of fx graphs: the output size is computed from the input's

class WAE(LeanModule):
    """Wavelet-like auto-encoder: encoder + decoder. ``forward`` returns the reconstruction.

    Args:
        in_chans: image channels.
        mid_chs: intermediate channels of encoder and decoder (16).
        out_chans: channels of I_L and of I_H each (3).
        decoder: build the decoder (models that never use the transform loss skip it).
    """

    min_input_size = 2

    def __init__(self, in_chans: int = 3, mid_chs: int = 16, out_chans: int = 3, decoder: bool = True) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.encoder = WAEEncoder(in_chans, mid_chs, out_chans)
        self.decoder = WAEDecoder(out_chans, mid_chs, in_chans) if decoder else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(I_L, I_H)``, each ``ceil(H/2) × ceil(W/2)``."""
        return self.encoder(x)

    def decode(self, i_l: torch.Tensor, i_h: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """Reconstruction Î (cropped to ``output_size`` when given)."""
        if self.decoder is None:
            raise ValueError("WAE: built with decoder=False, it cannot reconstruct (use a wae_* model)")
        return self.decoder(i_l, i_h, output_size)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(I_L, I_H, Î)`` of one pass."""
        self.check_input(x)
        i_l, i_h = self.encode(x)
        return i_l, i_h, self.decode(i_l, i_h, x.shape[-2:])

    def loss(self, x: torch.Tensor, energy_weight: float = 1.0, reduction: str = "sum") -> TransformLoss:
        """Transform loss of a batch (stage 1 of the paper's training)."""
        i_l, i_h, recon = self.forward_all(x)
        return transform_loss(x, recon, i_h, energy_weight, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[2]


@dataclass
class WAEOutput:
    """The parts of one :class:`WAEClassifier` forward (``model(x, parts=True)``).

    Attributes:
        logits: the prediction, ``(s_l + s_lh) / 2`` (``s_l`` without fusion); ``None`` if not classified.
        s_l: scores of the I_L classifier.
        s_lh: scores of the fusion classifier (``None`` without fusion).
        i_l, i_h: the two half-resolution inputs (``i_h`` is ``None`` for the resize front end).
        recon: the WAE reconstruction Î (only with ``reconstruct=True``).
    """

    logits: torch.Tensor | None
    s_l: torch.Tensor | None
    s_lh: torch.Tensor | None
    i_l: torch.Tensor
    i_h: torch.Tensor | None
    recon: torch.Tensor | None = None


def _vgg16_backbone(in_chans: int, width_div: int, **kw: Any) -> nn.Module:
    """The authors' deploy-net VGG16: biased convs without BN, Caffe ceil-mode pools (``batch_norm=True``: BN)."""
    kw = {"batch_norm": False, "conv_bias": True, "ceil_mode": True, **kw}
    return VGG("vgg16", num_classes=0, in_chans=in_chans, width_div=width_div, fc_widths=(), **kw)


def _vgg_cifar_small_backbone(in_chans: int, width_div: int, **kw: Any) -> nn.Module:
    kw = {"batch_norm": True, "conv_bias": False, **kw}
    return VGG("cifar_small", num_classes=0, in_chans=in_chans, width_div=width_div, fc_widths=(), pool_size=1,
               **kw)


def _resnet50_backbone(in_chans: int, width_div: int, **kw: Any) -> nn.Module:
    """ResNet-50 v1 (stride on the first 1×1 conv, as the Caffe model); ``version="1.5"`` for torchvision's."""
    return ResNet((3, 4, 6, 3), num_classes=0, in_chans=in_chans, width_div=width_div, **{"version": "1", **kw})


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vgg16": _vgg16_backbone,
    "resnet50": _resnet50_backbone,
    "vgg_cifar_small": _vgg_cifar_small_backbone,
}


def _headless(net: nn.Module, chans: int, what: str) -> nn.Module:
    """A user's classifier as a WAE feature net: checked for ``forward_features`` and its input channels, its own
    classifier removed (``reset_classifier(0)``) so that no parameter is left without a gradient."""
    if not callable(getattr(net, "forward_features", None)):
        raise ValueError(f"wrap_wae: the {what} ({type(net).__name__}) has no forward_features(x); wrap a timm-style "
                         "classifier (leannets.create_model, timm.create_model, ...)")
    want = getattr(net, "in_chans", chans)
    if want != chans:
        raise ValueError(f"wrap_wae: the {what} takes {want} input channels, the front end gives it {chans}")
    if callable(getattr(net, "reset_classifier", None)):
        net.reset_classifier(0)
    return net


def _feature_chs(net: nn.Module) -> int:
    chs = getattr(net, "feature_chs", None) or getattr(net, "num_features", None)
    if not isinstance(chs, int):
        raise ValueError(f"wrap_wae: {type(net).__name__} states no num_features (the width of forward_features)")
    return chs


def wrap_wae(backbone: nn.Module, num_classes: int | None = None, fusion_net: nn.Module | None = None,
             front_end: str = "wae", **kwargs: Any) -> "WAEClassifier":
    """Put a WAE front end (paper: "Learning a Wavelet-like Auto-Encoder to Accelerate Deep Neural Networks") before
    any 3-channel classifier: the backbone then sees I_L at half resolution (¼ of its MACs), ``fusion_net`` (a
    small net of your choice, e.g. a narrower copy of the backbone) sees I_H; ``None`` classifies from I_L alone.
    The result trains with the multi-stage WAE task (``task.name: wae``; a recipe's ``model.wrap_wae``).

    Args:
        num_classes: default the backbone's ``num_classes``.
        front_end: ``wae`` (learned, with the decoder of the transform loss), ``wavelet`` or ``resize``.
        **kwargs: other :class:`WAEClassifier` options (``head_hidden``, ``input_norm``, ``wae_chs``, ...).
    """
    classes = num_classes if num_classes is not None else getattr(backbone, "num_classes", None)
    if not isinstance(classes, int) or classes < 0:
        raise ValueError(f"wrap_wae: give num_classes ({type(backbone).__name__} states none)")
    model = WAEClassifier(backbone, num_classes=classes, in_chans=3, front_end=front_end, fusion_net=fusion_net,
                          **kwargs)
    model.model_name = f"wae({getattr(backbone, 'model_name', type(backbone).__name__)})"
    return model


class WAEClassifier(Classifier):
    """Front end → backbone on I_L (+ ¼-width fusion net on I_H) → two classifiers, averaged.

    Args:
        backbone: a key of ``BACKBONES`` (``vgg16``, ``resnet50``, ``vgg_cifar_small``), or any classifier module
            with ``forward_features`` and ``num_features`` (:func:`wrap_wae`); its own head is dropped.
        num_classes: classes.
        in_chans: image channels.
        front_end: ``"wae"``, ``"wavelet"`` or ``"resize"``.
        fusion: build the I_H fusion net and the s_LH classifier (``False``: I_L only).
        fusion_div: channel divisor of the fusion net (4 in the paper).
        head_pool: spatial size the feature maps are pooled to before the fcs (1 = global pool).
        head_hidden: hidden fc widths of the I_L classifier (1024, 1024 for VGG16).
        fusion_hidden: hidden fc widths of the fusion classifier (2048, 2048 for VGG16).
        drop_rate: dropout after each hidden fc.
        wae_chs: intermediate channels of the WAE (16).
        wae_out_chans: channels of I_L and of I_H (3).
        decoder: build the WAE decoder (needed for the transform loss).
        wavelet: PyWavelets wavelet of the ``wavelet`` front end (``bior4.4`` = CDF 9/7).
        backbone_kwargs: extra arguments of the backbone builder (e.g. ``conv_type``).
        input_norm: BatchNorm without affine parameters on I_L and on I_H before the networks (the
            authors' ``bn_CA`` / ``bn_CH``); only for front ends with an I_H (``wae``, ``wavelet``).
        fusion_net: with a module ``backbone``: the net for I_H (``forward_features`` giving maps of the
            backbone's spatial size); ``None``: I_L only.
    """

    def __init__(self, backbone: str = "vgg16", num_classes: int = 1000, in_chans: int = 3, front_end: str = "wae",
                 fusion: bool = True, fusion_div: int = 4, head_pool: int = 1, head_hidden: Sequence[int] = (),
                 fusion_hidden: Sequence[int] = (), drop_rate: float = 0.0, wae_chs: int = 16,
                 wae_out_chans: int = 3, decoder: bool = True, wavelet: str = "bior4.4",
                 backbone_kwargs: dict[str, Any] | None = None, input_norm: bool = False,
                 fusion_net: nn.Module | None = None) -> None:
        super().__init__()
        custom = isinstance(backbone, nn.Module)
        if custom:
            fusion = fusion_net is not None
        elif fusion_net is not None:
            raise ValueError("WAEClassifier: fusion_net goes with a backbone module (wrap_wae), not a backbone name")
        if not custom and backbone not in BACKBONES:
            raise ValueError(f"WAEClassifier: unknown backbone {backbone!r}; allowed: {', '.join(BACKBONES)}")
        if front_end not in FRONT_ENDS:
            raise ValueError(f"WAEClassifier: unknown front_end {front_end!r}; allowed: {', '.join(FRONT_ENDS)}")
        if front_end == "resize" and (fusion or input_norm):
            raise ValueError("WAEClassifier: the 'resize' front end has no I_H, use fusion=False and "
                             "input_norm=False")
        self.in_chans = in_chans
        self.front_end = front_end
        self.backbone_name = type(backbone).__name__ if custom else backbone
        self.wae: WAE | None = None
        self.dwt: DWT2d | None = None
        if front_end == "wae":
            self.wae = WAE(in_chans, wae_chs, wae_out_chans, decoder=decoder)
            l_chans = h_chans = wae_out_chans
        elif front_end == "wavelet":
            self.dwt = DWT2d(wavelet, in_chans)
            l_chans, h_chans = in_chans, 3 * in_chans
        else:
            l_chans, h_chans = in_chans, 0
        kw = dict(backbone_kwargs or {})
        self.bn_l = nn.BatchNorm2d(l_chans, affine=False) if input_norm else None
        self.bn_h = nn.BatchNorm2d(h_chans, affine=False) if input_norm and fusion else None
        if custom:
            self.backbone = _headless(backbone, l_chans, "backbone")
            self.fusion_net = _headless(fusion_net, h_chans, "fusion_net") if fusion else None
        else:
            self.backbone = BACKBONES[backbone](l_chans, 1, **kw)
            self.fusion_net = BACKBONES[backbone](h_chans, fusion_div, **kw) if fusion else None
        self.min_input_size = 2 * getattr(self.backbone, "min_input_size", 1)
        l_feat = _feature_chs(self.backbone)
        h_feat = _feature_chs(self.fusion_net) if self.fusion_net is not None else 0
        self.head_l = MlpHead(l_feat, head_pool, head_hidden, drop_rate)
        self.head_lh = MlpHead(l_feat + h_feat, head_pool, fusion_hidden, drop_rate) if fusion else None
        # timm's meanings: forward_features' width (I_L ‖ I_H features), forward_head(pre_logits=True)'s width
        self.num_features, self.l_features = l_feat + h_feat, l_feat
        self._hidden = self.head_l.num_features + (self.head_lh.num_features if self.head_lh is not None else 0)
        self.reset_classifier(num_classes)

    @property
    def uses_transform_loss(self) -> bool:
        """Whether this model has a WAE decoder (so stage 1/3 transform-loss training applies)."""
        return self.wae is not None and self.wae.decoder is not None

    @property
    def head_hidden_size(self) -> int:
        return self._hidden

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New final linear layers for both scores (``num_classes=0``: identity); only ``global_pool="avg"``."""
        self._set_pool(num_classes, global_pool)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_l.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if self.head_lh is not None:
            n = self.head_lh.num_features
            self.fusion_fc = nn.Linear(n, num_classes) if num_classes > 0 else nn.Identity()
        for m in (self.fc, getattr(self, "fusion_fc", None)):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def decompose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The front end's ``(I_L, I_H)`` (``I_H`` is ``None`` for ``resize``)."""
        if self.wae is not None:
            return self.wae.encode(x)
        if self.dwt is not None:
            c = self.in_chans
            y = self.dwt(x)
            return y[:, :c], y[:, c:]
        return resize_half(x), None

    def _features(self, i_l: torch.Tensor, i_h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.bn_l is not None:
            i_l = self.bn_l(i_l)
        f_l = self.backbone.forward_features(i_l)
        if self.fusion_net is None:
            return f_l, None
        if self.bn_h is not None:
            i_h = self.bn_h(i_h)
        return f_l, self.fusion_net.forward_features(i_h)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """I_L features, concatenated (channels) with the I_H features when there is fusion."""
        f_l, f_h = self._features(*self.decompose(x))
        return f_l if f_h is None else torch.cat([f_l, f_h], 1)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint the blocks of the backbone and of the fusion net (the front end is small)."""
        for net in (self.backbone, self.fusion_net):
            if net is not None:
                net.set_grad_checkpointing(enable)
        self.grad_checkpointing = enable

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Averaged scores from :meth:`forward_features`' output; ``pre_logits``: both fc inputs, concatenated."""
        f_l = x[:, :self.l_features]
        h_l = self.head_l(f_l)
        if self.head_lh is None:
            return h_l if pre_logits else self.fc(h_l)
        h_lh = self.head_lh(x)
        if pre_logits or self.num_classes == 0:
            return torch.cat([h_l, h_lh], 1)
        return (self.fc(h_l) + self.fusion_fc(h_lh)) / 2

    def forward_scores(self, x: torch.Tensor, classify: bool = True, reconstruct: bool = False) -> WAEOutput:
        """All parts of one forward (see :class:`WAEOutput`).

        Args:
            classify: run the classification network (``False``: front end only, for stage 1).
            reconstruct: also decode Î (needs the WAE decoder).
        """
        self.check_input(x)
        i_l, i_h = self.decompose(x)
        recon = None
        if reconstruct:
            if not self.uses_transform_loss:
                raise ValueError(f"{self.display_name}: no WAE decoder (front_end={self.front_end!r}); "
                                 "reconstruction and the transform loss need a wae_* / ilonly_* model")
            recon = self.wae.decode(i_l, i_h, x.shape[-2:])
        if not classify:
            return WAEOutput(None, None, None, i_l, i_h, recon)
        f_l, f_h = self._features(i_l, i_h)
        s_l = self.fc(self.head_l(f_l))
        if f_h is None:
            return WAEOutput(s_l, s_l, None, i_l, i_h, recon)
        s_lh = self.fusion_fc(self.head_lh(torch.cat([f_l, f_h], 1)))
        if self.num_classes == 0:  # identity heads: the "logits" are both pre-logit vectors
            return WAEOutput(torch.cat([s_l, s_lh], 1), s_l, s_lh, i_l, i_h, recon)
        return WAEOutput((s_l + s_lh) / 2, s_l, s_lh, i_l, i_h, recon)

    def forward(self, x: torch.Tensor, parts: bool = False, classify: bool = True,
                reconstruct: bool = False) -> torch.Tensor | WAEOutput:
        """Plain logits ``(s_L + s_LH) / 2`` in train and eval mode; ``parts=True`` returns a :class:`WAEOutput`.

        Training code calls ``model(x, parts=True, ...)`` (not :meth:`forward_scores`) so that wrappers
        such as DistributedDataParallel see the call.
        """
        if fx_tracing():  # the traced graph is the plain classifier (the flags would be proxies there)
            return self.forward_scores(x).logits
        if not parts and self._merged_head_applies():
            self.check_input(x)
            f_l, f_h = self._features(*self.decompose(x))
            weight, bias = dispatch.folded(self, "_merged_head", self._merge_heads,
                                           modules=lambda: (self.fc, self.fusion_fc))
            return F.linear(self.head_lh(torch.cat([f_l, f_h], 1)), weight, bias)
        out = self.forward_scores(x, classify=classify or not parts, reconstruct=reconstruct and parts)
        return out if parts else out.logits

    def _merged_head_applies(self) -> bool:
        """Inference where both scores are a linear layer on pooled features (no hidden fc): one merged layer."""
        head_l, head_lh = self.head_l, self.head_lh
        if head_lh is None or self.training or self.num_classes == 0 or dispatch.capturing():
            return False
        if torch.is_grad_enabled() and (self.fc.weight.requires_grad or self.fusion_fc.weight.requires_grad):
            return False  # the weights' gradients come from the two layers
        return len(head_l.mlp) == 0 and len(head_lh.mlp) == 0 and head_l.pool.output_size == head_lh.pool.output_size

    def _merge_heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_L + s_LH) / 2 = [½(W_L + W_LH,L), ½ W_LH,H] · [f_L; f_H] + ½(b_L + b_LH)``: the fc on the I_L
        features and the fusion fc on I_L ‖ I_H as one weight (f_L is the fusion input's leading part), so a batch-1
        forward, bound by reading the head weights, reads the I_L part once instead of twice."""
        w_l, w_lh = self.fc.weight.float(), self.fusion_fc.weight.float()
        n = w_l.shape[1]
        weight = torch.cat([w_l + w_lh[:, :n], w_lh[:, n:]], 1) / 2
        bias = (self.fc.bias.float() + self.fusion_fc.bias.float()) / 2
        return weight.to(self.fc.weight.dtype).contiguous(), bias.to(self.fc.bias.dtype)

    def classification_loss(self, out: WAEOutput, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """``CE(s_L) + CE(s_LH)`` (paper: the two cross-entropies are summed)."""
        loss = F.cross_entropy(out.s_l.float(), target, label_smoothing=label_smoothing)
        if out.s_lh is not None:
            loss = loss + F.cross_entropy(out.s_lh.float(), target, label_smoothing=label_smoothing)
        return loss

    def transform_loss(self, x: torch.Tensor, out: WAEOutput, energy_weight: float = 1.0,
                       reduction: str = "sum") -> TransformLoss:
        """Transform loss of ``out`` (from ``model(x, parts=True, reconstruct=True)``) against ``x``."""
        if out.recon is None or out.i_h is None:
            raise ValueError(f"{self.display_name}: transform_loss needs the output of "
                             "model(x, parts=True, reconstruct=True)")
        return transform_loss(x, out.recon, out.i_h, energy_weight, reduction)


# ---------------------------------------------------------------------------------------------------
# Registered models: {wae,decomp,wavelet,halfres,ilonly,caonly}_{vgg16,resnet50,vgg_cifar_small}
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Family:
    input_size: tuple[int, int, int]
    num_classes: int
    head: dict[str, Any]
    source: str
    halfres_head: dict[str, Any] | None = None


_FAMILIES = {
    # The authors' deploy net: plain VGG16 convs, Caffe ceil-mode pools (4×4 at 112²), fc 1024-1024 on I_L and
    # 2048-2048 on the fused maps; the half-resolution baseline is the standard VGG16 (fc 4096-4096) at 112².
    "vgg16": _Family((3, 224, 224), 1000,
                     dict(head_pool=4, head_hidden=(1024, 1024), fusion_hidden=(2048, 2048), drop_rate=0.5),
                     "Tables 1-2 (VGG16 with the authors' deploy-net heads: Caffe ceil-mode pools, fc 1024 on I_L, "
                     "fusion fc 2048-2048)",
                     halfres_head=dict(head_pool=4, head_hidden=(4096, 4096), drop_rate=0.5)),
    "resnet50": _Family((3, 224, 224), 1000, dict(head_pool=1),
                        "Table 5 (ResNet-50 v1; global-pool linear classifiers)"),
    "vgg_cifar_small": _Family((3, 32, 32), 10, dict(head_pool=1),
                               "CPU-scale version of Table 2 (small VGG on 32×32 images)"),
}

#: What each family's backbone is (printed in every registered model's notes).
BACKBONE_TEXT = {"vgg16": "VGG16 as the authors' deploy net (biased convs, no BN, Caffe ceil-mode pools)",
                 "resnet50": "ResNet-50 v1 (stride on the first 1×1 conv of a bottleneck)",
                 "vgg_cifar_small": "vgg_cifar_small (6 convs with BN, our CPU-scale backbone)"}

#: The full-resolution baseline model of each backbone family (the same backbone as the family's I_L network).
FULL_RESOLUTION = {"vgg16": "vgg16", "resnet50": "resnet50_v1", "vgg_cifar_small": "vgg_cifar_small"}

# prefix: (front_end, fusion, decoder, what it is)
VARIANTS: dict[str, tuple[str, bool, bool, str]] = {
    "wae": ("wae", True, True, "WAE (I_L → backbone, I_H → ¼-width fusion net); trained in 3 stages"),
    "decomp": ("wae", True, False, "Decomposition+CNN: WAE encoder trained with the classification loss only"),
    "wavelet": ("wavelet", True, False, "Wavelet+CNN: CDF 9/7 DWT, cA → backbone, cH‖cV‖cD → fusion net"),
    "halfres": ("resize", False, False, "backbone on the image resized to ½ (I_L classifier structure)"),
    "ilonly": ("wae", False, True, "WAE I_L only (no fusion); Table 3"),
    "caonly": ("wavelet", False, False, "CDF 9/7 DWT approximation cA only → backbone (no fusion); Table 3"),
}


#: the input conv of each backbone (as a module name inside it), for ``pretrained_cfg["first_conv"]``
_BACKBONE_FIRST_CONV = {"vgg16": "features.0", "resnet50": "stem.0.0", "vgg_cifar_small": "features.0.0"}


def _cfg(front_end: str, fusion: bool, family: str) -> dict[str, Any]:
    """The declared ``pretrained_cfg``: what reads the image (the WAE encoder, or the backbone and, for the wavelet
    front end, the fusion net on the detail bands) and the two classifiers a fused model has."""
    conv = _BACKBONE_FIRST_CONV[family]
    first = ["wae.encoder.convs.0"] if front_end == "wae" else \
        [f"backbone.{conv}"] + ([f"fusion_net.{conv}"] if fusion else [])
    stats = IMAGENET_CFG if _FAMILIES[family].input_size[-1] >= 160 else CIFAR_CFG
    return model_cfg(**stats, first_conv=first, classifier=["fc", "fusion_fc"] if fusion else "fc")


def _register(name: str, prefix: str, family: str) -> None:
    """Register ``name`` = ``<prefix>_<family>`` (written out at the call, so grep finds every model)."""
    if name != f"{prefix}_{family}":
        raise ValueError(f"model name {name!r} is not {prefix}_{family}")
    front_end, fusion, decoder, what = VARIANTS[prefix]
    fam = _FAMILIES[family]

    head = fam.halfres_head if prefix == "halfres" and fam.halfres_head is not None else fam.head

    def build(**kwargs: Any) -> WAEClassifier:
        args = {"num_classes": fam.num_classes, "input_norm": front_end != "resize", **head, **kwargs}
        return WAEClassifier(family, front_end=front_end, fusion=fusion, decoder=decoder, **args)

    build.__doc__ = f"{what}; backbone: {BACKBONE_TEXT[family]}."
    build.__name__ = f"{prefix}_{family}"
    build.__module__ = __name__
    register_model(paper=CHEN_WAE, source=fam.source, input_size=fam.input_size, num_classes=fam.num_classes,
                   cfg=_cfg(front_end, fusion, family), tags=("wae", prefix, family),
                   notes=f"{what}; backbone: {BACKBONE_TEXT[family]}",
                   name=f"{prefix}_{family}")(build)


_register("wae_vgg16", "wae", "vgg16")
_register("decomp_vgg16", "decomp", "vgg16")
_register("wavelet_vgg16", "wavelet", "vgg16")
_register("halfres_vgg16", "halfres", "vgg16")
_register("ilonly_vgg16", "ilonly", "vgg16")
_register("caonly_vgg16", "caonly", "vgg16")
_register("wae_resnet50", "wae", "resnet50")
_register("decomp_resnet50", "decomp", "resnet50")
_register("wavelet_resnet50", "wavelet", "resnet50")
_register("halfres_resnet50", "halfres", "resnet50")
_register("ilonly_resnet50", "ilonly", "resnet50")
_register("caonly_resnet50", "caonly", "resnet50")
_register("wae_vgg_cifar_small", "wae", "vgg_cifar_small")
_register("decomp_vgg_cifar_small", "decomp", "vgg_cifar_small")
_register("wavelet_vgg_cifar_small", "wavelet", "vgg_cifar_small")
_register("halfres_vgg_cifar_small", "halfres", "vgg_cifar_small")
_register("ilonly_vgg_cifar_small", "ilonly", "vgg_cifar_small")
_register("caonly_vgg_cifar_small", "caonly", "vgg_cifar_small")


@register_model(paper=CHEN_WAE, source="Fig. 2 (encoder + decoder)", input_size=(3, 224, 224), num_classes=0,
                task="autoencoder", tags=("wae",), cfg=model_cfg(**IMAGENET_CFG, first_conv="encoder.convs.0"))
def wae(**kwargs: Any) -> WAE:
    """The WAE alone (stage 1): forward returns the reconstruction; ``encode`` gives (I_L, I_H)."""
    kwargs.pop("num_classes", None)
    return WAE(**kwargs)
