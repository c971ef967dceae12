"""``leannets denoise IMAGE [IMAGE …] --checkpoint CKPT``: write denoised images.

Inputs are taken as noisy photos. With ``--add-noise SIGMA`` they are taken as clean instead:
seeded Gaussian noise of σ (on [0, 255]) is added first, the noisy image is written too, and
PSNR/SSIM of the noisy and the denoised image against the clean one are printed, with a warning when the
denoised image is not better than the noisy one (an under-trained model). A colour image given to a grey
denoiser is converted to grey (ITU-R 601 luma), and the command says so.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import existing_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denoise", help="denoise images with a trained denoising checkpoint")
    p.add_argument("images", nargs="+", help="image files (PNG/JPG/BMP/TIFF)")
    p.add_argument("--checkpoint", required=True, help="a denoising checkpoint (.pt) or its run folder")
    p.add_argument("--out", default="denoised", help="output folder (default: ./denoised)")
    p.add_argument("--add-noise", type=float, default=None, metavar="SIGMA",
                   help="treat inputs as clean: add N(0, SIGMA²) noise first and report PSNR/SSIM")
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise (image i uses (seed, i))")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import torch

    from leannets.data.restoration import load_image, save_image
    from leannets.engine.restoration_metrics import psnr, quantize, ssim
    from leannets.engine.tasks.restoration import eval_noise, load_restoration_model, run_model

    if args.add_noise is not None and args.add_noise < 0:
        raise ValueError(f"--add-noise must be >= 0, got {args.add_noise}")
    paths = existing_files(args.images)
    model, _, ckpt = load_restoration_model(args.checkpoint, expect="denoising", device=args.device)
    device = next(model.parameters()).device
    channels = int(getattr(model, "in_chans", 1))
    out_dir = Path(args.out)
    print(f"{ckpt['recipe']['model']['name']} ({'gray' if channels == 1 else 'RGB'}) from {ckpt['path']}")
    for i, path in enumerate(paths):
        if channels == 1 and _is_colour(path):
            print(f"{path.name}: colour image converted to grey (ITU-R 601 luma) for this grey denoiser")
        clean = torch.from_numpy(load_image(path, channels)).permute(2, 0, 1).float()[None]
        x = clean / 255.0
        if args.add_noise is not None:
            x = x + eval_noise(tuple(x.shape), args.add_noise, args.seed, i)
            save_image(out_dir / f"{path.stem}_noisy.png", quantize(x)[0].to(torch.uint8))
        with torch.no_grad():
            y = run_model(model, x.to(device)).float().cpu()
        out = quantize(y)
        dest = save_image(out_dir / f"{path.stem}_denoised.png", out[0].to(torch.uint8))
        line = f"{path.name} -> {dest}"
        if args.add_noise is not None:
            noisy = quantize(x)
            before, after = psnr(noisy, clean), psnr(out, clean)
            line += (f"  noisy {before:.2f} dB / {ssim(noisy, clean):.4f}"
                     f"  denoised {after:.2f} dB / {ssim(out, clean):.4f} (PSNR / SSIM)")
            if after <= before:
                line += (f"\nwarning: {path.name}: the denoised image ({after:.2f} dB) is not better than the noisy "
                         f"input ({before:.2f} dB); the model looks under-trained for σ = {args.add_noise:g}")
        print(line)
    return 0


def _is_colour(path: Path) -> bool:
    """Whether the file holds a colour image (read from its header only)."""
    from PIL import Image  # imported when the command runs, not at import: keeps `leannets --help` fast

    try:
        with Image.open(path) as im:
            return im.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except OSError:
        return False  # load_image names the unreadable file
