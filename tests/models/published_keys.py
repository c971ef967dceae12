"""Test data: the exact state-dict key names and shapes of published ImageNet checkpoints, in their order.

Written down from the torchvision model definitions (``torchvision/models/{densenet,resnet,vgg,mobilenetv2,
mobilenetv3}.py``) and timm's (``timm/models/{mobilenetv3,vgg}.py``) — the names those ``.pth`` files carry.
Nothing here is imported from torchvision or timm (neither can be installed beside our torch).
"""
from __future__ import annotations

Keys = list[tuple[str, tuple[int, ...]]]


def _bn(prefix: str, c: int) -> Keys:
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def torchvision_densenet(layers: tuple[int, ...], growth: int = 32, init: int = 64, bn_size: int = 4) -> Keys:
    keys: Keys = [("features.conv0.weight", (init, 3, 7, 7)), *_bn("features.norm0", init)]
    c = init
    for b, n in enumerate(layers, 1):
        for i in range(1, n + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            keys += [*_bn(f"{p}.norm1", c), (f"{p}.conv1.weight", (bn_size * growth, c, 1, 1)),
                     *_bn(f"{p}.norm2", bn_size * growth), (f"{p}.conv2.weight", (growth, bn_size * growth, 3, 3))]
            c += growth
        if b < len(layers):
            keys += [*_bn(f"features.transition{b}.norm", c), (f"features.transition{b}.conv.weight", (c // 2, c, 1, 1))]
            c //= 2
    return keys + [*_bn("features.norm5", c), ("classifier.weight", (1000, c)), ("classifier.bias", (1000,))]


def torchvision_resnet50() -> Keys:
    keys: Keys = [("conv1.weight", (64, 3, 7, 7)), *_bn("bn1", 64)]
    c = 64
    for stage, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), 1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            keys += [(f"{p}.conv1.weight", (width, c, 1, 1)), *_bn(f"{p}.bn1", width),
                     (f"{p}.conv2.weight", (width, width, 3, 3)), *_bn(f"{p}.bn2", width),
                     (f"{p}.conv3.weight", (4 * width, width, 1, 1)), *_bn(f"{p}.bn3", 4 * width)]
            if i == 0:
                keys += [(f"{p}.downsample.0.weight", (4 * width, c, 1, 1)), *_bn(f"{p}.downsample.1", 4 * width)]
            c = 4 * width
    return keys + [("fc.weight", (1000, 2048)), ("fc.bias", (1000,))]


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def torchvision_vgg16(batch_norm: bool = False) -> Keys:
    keys: Keys = []
    index, c = 0, 3
    for v in VGG16:
        if v == "M":
            index += 1
            continue
        keys += [(f"features.{index}.weight", (v, c, 3, 3)), (f"features.{index}.bias", (v,))]
        if batch_norm:
            keys += _bn(f"features.{index + 1}", v)
        index += 3 if batch_norm else 2
        c = v
    for i, (o, n) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096))):
        keys += [(f"classifier.{i}.weight", (o, n)), (f"classifier.{i}.bias", (o,))]
    return keys


def timm_vgg16() -> Keys:
    """timm's VGG: the same features, a ConvMlp head (fc1 a 7×7 conv, fc2 a 1×1 conv) and ``head.fc``."""
    keys = [k for k in torchvision_vgg16() if k[0].startswith("features.")]
    return keys + [("pre_logits.fc1.weight", (4096, 512, 7, 7)), ("pre_logits.fc1.bias", (4096,)),
                   ("pre_logits.fc2.weight", (4096, 4096, 1, 1)), ("pre_logits.fc2.bias", (4096,)),
                   ("head.fc.weight", (1000, 4096)), ("head.fc.bias", (1000,))]


def _div8(v: float) -> int:
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


def torchvision_mobilenet_v2() -> Keys:
    keys: Keys = [("features.0.0.weight", (32, 3, 3, 3)), *_bn("features.0.1", 32)]
    c, index = 32, 1
    for t, out, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                         (6, 320, 1, 1)):
        for _ in range(n):
            p, hidden, j = f"features.{index}.conv", c * t, 0
            if t != 1:
                keys += [(f"{p}.0.0.weight", (hidden, c, 1, 1)), *_bn(f"{p}.0.1", hidden)]
                j = 1
            keys += [(f"{p}.{j}.0.weight", (hidden, 1, 3, 3)), *_bn(f"{p}.{j}.1", hidden),
                     (f"{p}.{j + 1}.weight", (out, hidden, 1, 1)), *_bn(f"{p}.{j + 2}", out)]
            c, index = out, index + 1
    return keys + [("features.18.0.weight", (1280, 320, 1, 1)), *_bn("features.18.1", 1280),
                   ("classifier.1.weight", (1000, 1280)), ("classifier.1.bias", (1000,))]


# MobileNetV3-Small bneck rows: kernel, expanded, out, SE
SMALL = [(3, 16, 16, True), (3, 72, 24, False), (3, 88, 24, False), (5, 96, 40, True), (5, 240, 40, True),
         (5, 240, 40, True), (5, 120, 48, True), (5, 144, 48, True), (5, 288, 96, True), (5, 576, 96, True),
         (5, 576, 96, True)]


def torchvision_mobilenet_v3_small() -> Keys:
    keys: Keys = [("features.0.0.weight", (16, 3, 3, 3)), *_bn("features.0.1", 16)]
    c = 16
    for i, (k, exp, out, se) in enumerate(SMALL, 1):
        p, j = f"features.{i}.block", 0
        if exp != c:
            keys += [(f"{p}.0.0.weight", (exp, c, 1, 1)), *_bn(f"{p}.0.1", exp)]
            j = 1
        keys += [(f"{p}.{j}.0.weight", (exp, 1, k, k)), *_bn(f"{p}.{j}.1", exp)]
        if se:
            sq = _div8(exp // 4)
            keys += [(f"{p}.{j + 1}.fc1.weight", (sq, exp, 1, 1)), (f"{p}.{j + 1}.fc1.bias", (sq,)),
                     (f"{p}.{j + 1}.fc2.weight", (exp, sq, 1, 1)), (f"{p}.{j + 1}.fc2.bias", (exp,))]
            j += 1
        keys += [(f"{p}.{j + 1}.0.weight", (out, exp, 1, 1)), *_bn(f"{p}.{j + 1}.1", out)]
        c = out
    return keys + [("features.12.0.weight", (576, 96, 1, 1)), *_bn("features.12.1", 576),
                   ("classifier.0.weight", (1024, 576)), ("classifier.0.bias", (1024,)),
                   ("classifier.3.weight", (1000, 1024)), ("classifier.3.bias", (1000,))]


def timm_mobilenetv3_small_100() -> Keys:
    """timm's layout: conv_stem/bn1, blocks.S.B (se.conv_reduce / conv_expand), conv_head as a 1×1 conv, classifier."""
    keys: Keys = [("conv_stem.weight", (16, 3, 3, 3)), *_bn("bn1", 16)]
    c = 16
    stages = [[0], [1, 2], [3, 4, 5], [6, 7], [8, 9, 10]]
    for s, rows in enumerate(stages):
        for b, r in enumerate(rows):
            k, exp, out, se = SMALL[r]
            p = f"blocks.{s}.{b}"
            if r == 0:  # DepthwiseSeparable: conv_dw, bn1, se, conv_pw, bn2
                keys += [(f"{p}.conv_dw.weight", (exp, 1, k, k)), *_bn(f"{p}.bn1", exp)]
            else:  # InvertedResidual: conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3
                keys += [(f"{p}.conv_pw.weight", (exp, c, 1, 1)), *_bn(f"{p}.bn1", exp),
                         (f"{p}.conv_dw.weight", (exp, 1, k, k)), *_bn(f"{p}.bn2", exp)]
            if se:
                sq = _div8(exp * 0.25)
                keys += [(f"{p}.se.conv_reduce.weight", (sq, exp, 1, 1)), (f"{p}.se.conv_reduce.bias", (sq,)),
                         (f"{p}.se.conv_expand.weight", (exp, sq, 1, 1)), (f"{p}.se.conv_expand.bias", (exp,))]
            last = "conv_pw" if r == 0 else "conv_pwl"
            keys += [(f"{p}.{last}.weight", (out, exp, 1, 1)), *_bn(f"{p}.bn2" if r == 0 else f"{p}.bn3", out)]
            c = out
    return keys + [("blocks.5.0.conv.weight", (576, 96, 1, 1)), *_bn("blocks.5.0.bn1", 576),
                   ("conv_head.weight", (1024, 576, 1, 1)), ("conv_head.bias", (1024,)),
                   ("classifier.weight", (1000, 1024)), ("classifier.bias", (1000,))]
