"""``leannets upscale IMAGE [IMAGE …] --checkpoint CKPT``: write super-resolved images.

Inputs are taken as low-resolution images and enlarged by the checkpoint's scale. With
``--downscale-first`` they are taken as high-resolution references instead: each is cropped to a
multiple of the scale, downscaled by MATLAB-compatible bicubic, upscaled by the network, and
PSNR/SSIM (Y channel for RGB, border = scale) of MATLAB-bicubic upscaling and of the network are printed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import existing_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolve images with a trained super-resolution checkpoint")
    p.add_argument("images", nargs="+", help="image files (PNG/JPG/BMP/TIFF)")
    p.add_argument("--checkpoint", required=True, help="a super-resolution checkpoint (.pt) or its run folder")
    p.add_argument("--out", default="upscaled", help="output folder (default: ./upscaled)")
    p.add_argument("--downscale-first", action="store_true",
                   help="treat inputs as high-resolution references: downscale, upscale, report PSNR/SSIM")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import numpy as np
    import torch

    from leannets.data.restoration import load_image, save_image
    from leannets.engine.restoration_metrics import imresize, modcrop, psnr, quantize, ssim
    from leannets.engine.tasks.restoration import load_restoration_model, run_model

    paths = existing_files(args.images)
    model, task, ckpt = load_restoration_model(args.checkpoint, expect="super_resolution", device=args.device)
    device = next(model.parameters()).device
    channels = int(getattr(model, "in_chans", 3))
    s = int(getattr(model, "scale", task.scale))
    out_dir = Path(args.out)
    print(f"{ckpt['recipe']['model']['name']} ×{s} ({'gray' if channels == 1 else 'RGB'}) from {ckpt['path']}")
    for path in paths:
        img = load_image(path, channels)
        hr = None
        if args.downscale_first:
            hr = modcrop(img, s)
            img = imresize(hr, 1.0 / s)
            save_image(out_dir / f"{path.stem}_lr.png", img)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()[None] / 255.0
        with torch.no_grad():
            y = run_model(model, x.to(device)).float().cpu()
        out = quantize(y)
        dest = save_image(out_dir / f"{path.stem}_x{s}.png", out[0].to(torch.uint8))
        line = f"{path.name} ({img.shape[1]}×{img.shape[0]}) -> {dest} ({out.shape[-1]}×{out.shape[-2]})"
        if hr is not None:
            ref = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1).float()[None]
            bic = torch.from_numpy(np.ascontiguousarray(imresize(img, s))).permute(2, 0, 1).float()[None]
            kw = dict(crop_border=s, y_channel=channels == 3)
            line += (f"  bicubic {psnr(bic, ref, **kw):.2f} dB / {ssim(bic, ref, **kw):.4f}"
                     f"  network {psnr(out, ref, **kw):.2f} dB / {ssim(out, ref, **kw):.4f} (PSNR / SSIM"
                     f"{', Y' if channels == 3 else ''}, border {s})")
        print(line)
    return 0
