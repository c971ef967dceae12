"""``leannets predict CHECKPOINT|MODEL.onnx IMAGE… [--topk 5]``: top-k classes of images with a trained classifier
(a checkpoint in PyTorch, or an exported ONNX file in onnxruntime using the preprocessing stored in it).

Images are prepared the way the engine evaluates: converted to the checkpoint's channel count,
resized (inputs of at most 64 px, e.g. CIFAR-size models, take the whole image resized; larger
inputs are resized to ``size / crop_pct`` and center-cropped), scaled to [0, 1] and normalised
with the training data's mean and std stored in the checkpoint.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

SMALL_INPUT = 64  # = leannets.analysis.export.SMALL_INPUT (not imported here: keeps `leannets --help` fast)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k predictions of a trained classifier checkpoint on image files")
    p.add_argument("checkpoint", help="checkpoint file or run folder from `leannets train`, or an ONNX file from "
                                      "`leannets export` (run with onnxruntime, prepared by its stored metadata)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, ...)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--classes", default=None,
                   help="class names: a text file with one name per line, or a comma-separated list "
                        "(default: the names stored in the checkpoint)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def parse_class_names(spec: str | None, num_classes: int, stored: Sequence[str]) -> list[str]:
    """Class names from ``--classes`` (file or comma list), else the checkpoint's, else ``class i``."""
    if spec:
        path = Path(spec)
        if path.is_file():
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif "," in spec or num_classes == 1:
            names = [n.strip() for n in spec.split(",")]
        else:
            raise FileNotFoundError(f"--classes {spec!r}: no such file (give a file or a comma-separated list)")
        if len(names) != num_classes:
            raise ValueError(f"--classes gives {len(names)} names but the model predicts {num_classes} classes")
        return names
    if stored and len(stored) == num_classes:
        return list(stored)
    return [f"class {i}" for i in range(num_classes)]


def load_image(path: str | Path, input_size: Sequence[int], crop_pct: float = 0.875) -> torch.Tensor:
    """A float tensor (C, H, W) in [0, 1] prepared for a model with ``input_size`` (C, H, W)."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from PIL import Image, UnidentifiedImageError

    from leannets.data.transforms import as_8bit

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    c, h, w = (int(v) for v in input_size)
    if c not in (1, 3):
        raise ValueError(f"predict supports 1- or 3-channel models, this one takes {c} channels")
    try:
        with Image.open(path) as im:
            im = as_8bit(im).convert("L" if c == 1 else "RGB")  # a 16-bit PNG scaled, not clipped
            if max(h, w) <= SMALL_INPUT or crop_pct >= 1.0:
                im = im.resize((w, h), Image.BICUBIC)
            else:
                scale = max(h, w) / crop_pct / min(im.size)
                im = im.resize((max(w, round(im.size[0] * scale)), max(h, round(im.size[1] * scale))), Image.BICUBIC)
                left, top = (im.size[0] - w) // 2, (im.size[1] - h) // 2
                im = im.crop((left, top, left + w, top + h))
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"image {path} cannot be read as an image: {err}") from err
    t = torch.from_numpy(arr.copy())
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def predict(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, topk: int, batch: int = 32
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, class indices), each (N, topk), best first."""
    probs = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            probs.append(torch.softmax(model(images[i:i + batch]).float(), dim=1))
    p = torch.cat(probs)
    k = min(topk, p.shape[1])
    top = p.topk(k, dim=1)
    return top.values, top.indices


@dataclass
class _Source:
    """What predicting needs from a checkpoint or an exported ONNX file."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    input_size: tuple[int, int, int]
    num_classes: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    crop_pct: float


def _checkpoint_source(path: str) -> _Source:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.export import load_model_source

    loaded = load_model_source(path)
    if loaded.task != "classification":
        raise ValueError(f"predict is for classifiers; {loaded.name} is a {loaded.task} model "
                         "(use `leannets denoise` / `leannets upscale` for restoration checkpoints)")
    num_classes = int(getattr(loaded.model, "num_classes", 0) or 0)
    if num_classes <= 0:
        raise ValueError(f"{loaded.name}: the checkpoint's model has no classifier head")
    data = loaded.recipe.get("data") or {}
    normalize = data.get("normalize", True)
    return _Source(loaded.name, loaded.model, tuple(loaded.input_size), num_classes, loaded.class_names,
                   loaded.mean if normalize else [], loaded.std if normalize else [],
                   float(data.get("crop_pct") or 0.875))


def _onnx_source(path: str) -> _Source:
    """An ONNX file from `leannets export`, prepared by the rule stored in its metadata (run by onnxruntime)."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.export import load_exported, onnx_deployment_metadata

    session = load_exported(path, "onnx")
    meta = onnx_deployment_metadata(session, path)
    input_size = meta["input_size"]
    probe = session.run(None, {"input": np.zeros((1, *input_size), dtype=np.float32)})[0]

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"input": x.numpy().astype(np.float32)})[0])

    return _Source(meta["model"], forward, input_size, int(probe.shape[1]), meta["class_names"], meta["mean"],
                   meta["std"], meta["crop_pct"])


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    if not Path(args.checkpoint).exists():
        raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist (predict needs a trained checkpoint "
                                "from `leannets train` or an ONNX file from `leannets export`)")
    onnx = Path(args.checkpoint).suffix == ".onnx"
    src = _onnx_source(args.checkpoint) if onnx else _checkpoint_source(args.checkpoint)
    names = parse_class_names(args.classes, src.num_classes, src.class_names)
    x = torch.stack([load_image(p, src.input_size, src.crop_pct) for p in args.images])
    if src.mean and src.std:
        x = (x - torch.tensor(src.mean).view(1, -1, 1, 1)) / torch.tensor(src.std).view(1, -1, 1, 1)
    probs, idx = predict(src.forward, x, args.topk, args.batch)
    results = [{"image": str(p), "top": [{"class": int(i), "name": names[int(i)], "prob": float(q)}
                                         for q, i in zip(probs[n], idx[n])]}
               for n, p in enumerate(args.images)]
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "model": src.name, "runtime": "onnxruntime" if onnx
                          else "pytorch", "predictions": results}, indent=2))
        return 0
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r["top"], 1):
            print(f"  {rank}. {t['name']:<24} {100 * t['prob']:6.2f}%  (class {t['class']})")
    return 0
