"""``leannets cam CHECKPOINT [CHECKPOINT …] IMAGE [IMAGE …] --out DIR``: class activation maps (Fig. 5).

Positional paths are split by kind: ``.pt``/``.pth``/``.ckpt`` files and run folders are
checkpoints, image files (``.png``, ``.jpg``, …) are images; ``--checkpoint`` adds checkpoints
explicitly. ``--from-data N`` takes N evaluation images of the (first) checkpoint's dataset instead
of (or besides) files; ``--correct-only`` keeps only images every model classifies correctly (as the
paper does for its comparison).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from leannets._io import atomic_write_json
from leannets.commands.sharpness import _labels

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def register(sub: argparse._SubParsersAction) -> None:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.cam import IMAGE_SUFFIXES

    p = sub.add_parser(
        "cam", help="class activation map overlays of one or more classifiers, side by side",
        description=__doc__.split("\n", 2)[2] if __doc__ else None)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=f"checkpoints ({', '.join(CHECKPOINT_SUFFIXES)} or run folders) and images "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    p.add_argument("--checkpoint", action="append", default=[], help="a checkpoint (repeatable)")
    p.add_argument("--from-data", type=int, default=0, metavar="N",
                   help="also use the first N evaluation images of the first checkpoint's dataset")
    p.add_argument("--correct-only", action="store_true",
                   help="with --from-data: only images that every model classifies correctly")
    p.add_argument("--data", default=None, help="dataset folder or name for --from-data (default: checkpoint's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data override for --from-data (repeatable)")
    p.add_argument("--class-index", type=int, default=None, help="explain this class (default: each prediction)")
    p.add_argument("--names", nargs="+", default=None, help="labels for the models (default: model names)")
    p.add_argument("--alpha", type=float, default=0.5, help="heat-map opacity in [0, 1]")
    p.add_argument("--display-size", type=int, default=128, help="minimum side of the shown images in pixels")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/cam", help="output folder")
    p.set_defaults(func=run)


def split_paths(paths: list[str], checkpoints: list[str]) -> tuple[list[str], list[str]]:
    """(checkpoints, images): positional ``paths`` split by suffix / folder, then the ``--checkpoint`` values."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.cam import IMAGE_SUFFIXES

    ckpts, images = [], []
    for raw in paths:
        p = Path(raw)
        suffix = p.suffix.lower()
        if not p.exists():
            raise FileNotFoundError(f"{raw} does not exist (give checkpoints or run folders, then images)")
        if p.is_dir() or suffix in CHECKPOINT_SUFFIXES:
            ckpts.append(raw)
        elif suffix in IMAGE_SUFFIXES:
            images.append(raw)
        else:
            raise ValueError(f"{raw}: neither a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)} or a run folder) "
                             f"nor an image ({', '.join(IMAGE_SUFFIXES)})")
    return ckpts + list(checkpoints), images


def _data_images(ckpt_path: str, args: argparse.Namespace, models: list[tuple[Any, dict]]) -> tuple[list, list]:
    """Up to ``--from-data`` (image [0,1] HWC numpy, label) pairs from the eval split, denormalised."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import torch

    from leannets.analysis.sharpness import checkpoint_data

    _, _, loader, ckpt = checkpoint_data(ckpt_path, data=args.data, overrides=args.overrides, split="eval",
                                         device=args.device)
    info = ckpt["data_info"]
    normalized = bool(info.get("mean")) and ckpt["recipe"]["data"].get("normalize", True)
    mean = torch.tensor(info["mean"] if normalized else [0.0] * info["in_chans"]).view(1, -1, 1, 1)
    std = torch.tensor(info["std"] if normalized else [1.0] * info["in_chans"]).view(1, -1, 1, 1)
    from leannets.analysis.cam import select_correct

    predictors = [lambda x01, m=model, c=mck: _predict(m, _renormalize(x01, c), args.device)
                  for model, mck in models] if args.correct_only else []
    x01, labels, _ = select_correct(((b[0].cpu().float() * std + mean, b[1].cpu()) for b in loader), predictors,
                                    args.from_data)
    if not len(labels):
        raise ValueError("--from-data: no evaluation image " + ("is classified correctly by every model"
                                                                if args.correct_only else "found"))
    return [img.clamp(0, 1).permute(1, 2, 0).numpy() for img in x01], [int(v) for v in labels]


def _renormalize(x01, ckpt: dict):  # noqa: ANN001, ANN202
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import torch

    info = ckpt["data_info"]
    if not info.get("mean") or not ckpt["recipe"]["data"].get("normalize", True):
        return x01
    mean = torch.tensor(info["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(info["std"]).view(1, -1, 1, 1)
    return (x01 - mean) / std


def _predict(model, x, device):  # noqa: ANN001, ANN202
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import torch

    with torch.no_grad():
        return model(x.to(device))


def _resize(img, size: tuple[int, int]):  # noqa: ANN001, ANN202
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import numpy as np
    from PIL import Image

    if img.shape[:2] == size:
        return img
    chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32), mode="F").resize((size[1], size[0]),
                                                                                           Image.BICUBIC))
             for c in range(img.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0, 1)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import numpy as np
    import torch

    from leannets.analysis.cam import check_cam_model, class_activation_maps, load_image, normalize_cam, plot_cam_grid
    from leannets.engine.checkpoint import load_model

    ckpts, files = split_paths(args.paths, args.checkpoint)
    if not ckpts:
        raise ValueError("give at least one checkpoint (.pt file, run folder or --checkpoint)")
    if not files and args.from_data <= 0:
        raise ValueError("give at least one image file or --from-data N")
    if args.correct_only and args.from_data <= 0:
        raise ValueError("--correct-only works with --from-data N")
    if args.display_size < 1:
        raise ValueError(f"--display-size must be >= 1, got {args.display_size}")
    models = [load_model(c, device=args.device) for c in ckpts]
    for model, _ in models:
        check_cam_model(model)
    labels = _labels(ckpts, [ck["recipe"]["model"]["name"] for _, ck in models], args.names)
    first_info = models[0][1]["data_info"]
    c0, h0, w0 = first_info.get("input_size") or (3, 32, 32)
    images, titles, truth = [], [], []
    for f in files:  # loaded at the first model's input size, in [0, 1]
        images.append(load_image(f, c0, (h0, w0)))
        titles.append(Path(f).name)
        truth.append(None)
    if args.from_data > 0:
        data_imgs, data_labels = _data_images(ckpts[0], args, models)
        names0 = first_info.get("class_names") or []
        images += data_imgs
        truth += data_labels
        titles += [f"eval: {names0[y] if y < len(names0) else y}" for y in data_labels]
    display = [_resize(img, (max(img.shape[0], args.display_size), max(img.shape[1], args.display_size)))
               for img in images]
    rows: dict[str, list] = {}
    records = []
    for label, (model, ck) in zip(labels, models):
        info = ck["data_info"]
        c, h, w = info.get("input_size") or (c0, h0, w0)
        if c != c0:
            raise ValueError(f"{label} takes {c}-channel images but {labels[0]} takes {c0}")
        x01 = torch.stack([torch.from_numpy(_resize(img, (h, w))).permute(2, 0, 1).float() for img in images])
        out = class_activation_maps(model, _renormalize(x01, ck).to(args.device), args.class_index)
        names = info.get("class_names") or []
        entries = []
        for i, disp in enumerate(display):
            cam = normalize_cam(out.cams[i:i + 1].cpu(), disp.shape[:2])[0].numpy()
            k = int(out.classes[i])
            cname = names[k] if k < len(names) else str(k)
            entries.append((cam, f"{cname} ({float(out.probs[i]):.2f})"))
            records.append({"model": label, "checkpoint": ck["path"], "index": i, "image": titles[i], "class": k,
                            "class_name": cname, "prob": float(out.probs[i]),
                            "predicted": int(out.logits[i].argmax()), "label": truth[i]})
        rows[label] = entries
    out_dir = Path(args.out)
    grid = plot_cam_grid(display, rows, out_dir / "cam_grid.png", image_titles=titles, alpha=args.alpha)
    written = [grid]
    for i, title in enumerate(titles):
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(title).stem)[:40]
        written.append(plot_cam_grid([display[i]], {k: [v[i]] for k, v in rows.items()},
                                     out_dir / f"cam_{i:03d}_{stem}.png", image_titles=[title], alpha=args.alpha))
    atomic_write_json(out_dir / "cam.json", {"models": labels, "checkpoints": ckpts, "images": titles,
                                             "class_index": args.class_index, "maps": records})
    agree = np.mean([len({r["class"] for r in records if r["index"] == i}) == 1 for i in range(len(titles))])
    print(f"{len(labels)} model(s) × {len(images)} image(s); models agree on {agree:.0%} of the images")
    print(f"wrote {grid} (+ {len(written) - 1} per-image PNGs) and {out_dir / 'cam.json'}")
    return 0
