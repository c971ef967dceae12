"""``leannets export CHECKPOINT|MODEL --format onnx|torchscript|safetensors``: a deployable file, checked
against PyTorch before the command returns (safetensors: the model's tensors, read without pickle, checked by
rebuilding the model from the file). An ONNX file carries what it needs to be used without leannets in
its ``metadata_props``: model, input size, resize rule, mean/std and class names (``leannets predict`` reads
them)."""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint or registered model to ONNX, TorchScript or safetensors")
    p.add_argument("source", help="checkpoint file (from `leannets train`) or registered model name")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript", "safetensors"), default="onnx",
                   help="file format (default: onnx)")
    p.add_argument("--out", default=None, help="output file (default: ./<model>.onnx, .pt or .safetensors)")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                   help="traced input size (default: the checkpoint's data size, else the model's registered size)")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolutions first")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (model names only)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the ONNX batch dimension to 1")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted output difference relative to max(1, |output|) (default: 1e-4)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="ONNX only: int8 through ONNX Runtime static quantization (QDQ, per-channel weights)")
    p.add_argument("--calibration", default=None, metavar="DIR|DATASET",
                   help="--quantize: calibration images, a folder (searched recursively) or a registered dataset "
                        "(its training split; --data-root)")
    p.add_argument("--calibration-images", type=int, default=256, metavar="N",
                   help="--quantize: calibration images used, evenly spaced over the source (default: 256)")
    p.add_argument("--data-root", default=None, help="--calibration DATASET: the dataset's folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _metadata(loaded, fmt: str) -> dict[str, str] | None:  # noqa: ANN001 - a LoadedModel
    if fmt == "torchscript":
        return None
    meta = loaded.deployment_metadata()
    if fmt == "safetensors":
        kwargs = dict((loaded.recipe.get("model") or {}).get("kwargs") or {})
        meta["leannets.model_kwargs"] = json.dumps(kwargs)
    return meta


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.export import default_export_path, export_model, load_model_source

    if args.quantize and (args.fmt != "onnx" or not args.calibration or args.calibration_images < 1):
        raise ValueError("--quantize int8 needs --format onnx, --calibration DIR|DATASET and --calibration-images >= 1")
    loaded = load_model_source(args.source, num_classes=args.num_classes)
    input_size = tuple(args.input_size) if args.input_size else loaded.input_size
    out = Path(args.out) if args.out else default_export_path(loaded.name, args.fmt)
    if args.quantize:
        images = calibration_images(args.calibration, args.calibration_images, input_size, loaded, args.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "fp32.onnx" if args.quantize else out
        result = export_model(loaded.model, target, args.fmt, input_size=input_size, fold_bn=args.fold_bn,
                              opset=args.opset, dynamic_batch=not args.static_batch, verify=not args.no_verify,
                              tolerance=args.tolerance, metadata=_metadata(loaded, args.fmt))
        quant = None
        if args.quantize:
            from leannets.analysis.quantize import quantize_int8
            quant = quantize_int8(target, out, images, args.calibration, _metadata(loaded, args.fmt))
            result.path = str(out)
    if args.json:
        print(json.dumps({"source": args.source, "model": loaded.name, **result.as_dict(),
                          **({"int8": quant.as_dict()} if quant else {})}, indent=2))
        return 0
    size = "×".join(map(str, result.input_size))
    print(f"wrote {result.path} ({args.fmt}, model {loaded.name}, input {size}"
          + (f", {result.folded_bn_pairs} conv-BN pairs folded" if result.folded_bn_pairs is not None else "") + ")")
    if result.max_rel_error is not None:
        print(f"checked against PyTorch on a batch of {result.verified_batch}: max abs error "
              f"{result.max_abs_error:.3g}, relative {result.max_rel_error:.3g} (tolerance {args.tolerance:g})"
              + (" (the fp32 file, before quantization)" if quant else ""))
    if quant:
        agree = "" if quant.top1_agreement is None else f", top-1 equal to fp32 on {quant.top1_agreement:.1%}"
        print(f"int8: calibrated on {quant.calibration_images} images from {args.calibration}; int8 ops "
              f"{quant.int8_ops}, fp32 ops {quant.fp32_ops}; on the calibration images max |int8 - fp32| "
              f"{quant.max_abs_diff:.3g}{agree}")
    return 0


def calibration_images(source: str, n: int, input_size: tuple[int, ...], loaded, data_root: str | None  # noqa: ANN001
                       ) -> torch.Tensor:
    """``n`` evenly spaced images of a folder (prepared as ``leannets predict`` prepares them) or of a registered
    dataset's training split, normalised as the model's inputs."""
    from leannets.data import ImageTensors, build_dataset
    from leannets.data.folder import IMG_EXTENSIONS
    from leannets.engine.recipe import load_recipe

    from .predict import load_image

    folder = Path(source)
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
        if not files:
            raise ValueError(f"--calibration {source}: no images ({', '.join(IMG_EXTENSIONS)}) in the folder")
        crop = float((loaded.recipe.get("data") or {}).get("crop_pct") or 0.875)
        picked = [files[i * len(files) // min(n, len(files))] for i in range(min(n, len(files)))]
        x = torch.stack([load_image(p, input_size, crop) for p in picked])
    else:  # data.limit_train takes n evenly spaced training images, as in any recipe
        data = load_recipe({"model": {"name": "resnet20_standard"},
                            "data": {"name": source, "root": data_root, "limit_train": n}})["data"]
        split = build_dataset(data).train
        if isinstance(split, ImageTensors):
            x = split.images.float().div(255.0)
        else:
            x = torch.stack([split[i][0] for i in range(len(split))]).float().div(255.0)
        if tuple(x.shape[1:]) != tuple(input_size):
            x = torch.nn.functional.interpolate(x, size=tuple(input_size[1:]), mode="bilinear", antialias=True,
                                                align_corners=False)
    if loaded.mean and loaded.std and (loaded.recipe.get("data") or {}).get("normalize", True):
        x = (x - torch.tensor(loaded.mean).view(1, -1, 1, 1)) / torch.tensor(loaded.std).view(1, -1, 1, 1)
    return x

