"""``leannets export CHECKPOINT|MODEL --format onnx|torchscript|safetensors``: a deployable file, checked
against PyTorch before the command returns (safetensors: the model's tensors, read without pickle, checked by
rebuilding the model from the file). An ONNX file carries what it needs to be used without leannets in
its ``metadata_props``: model, input size, resize rule, mean/std and class names (``leannets predict`` reads
them)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


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

    loaded = load_model_source(args.source, num_classes=args.num_classes)
    input_size = tuple(args.input_size) if args.input_size else loaded.input_size
    out = Path(args.out) if args.out else default_export_path(loaded.name, args.fmt)
    result = export_model(loaded.model, out, args.fmt, input_size=input_size, fold_bn=args.fold_bn,
                          opset=args.opset, dynamic_batch=not args.static_batch, verify=not args.no_verify,
                          tolerance=args.tolerance,
                          metadata=_metadata(loaded, args.fmt))
    if args.json:
        print(json.dumps({"source": args.source, "model": loaded.name, **result.as_dict()}, indent=2))
        return 0
    size = "×".join(map(str, result.input_size))
    print(f"wrote {result.path} ({args.fmt}, model {loaded.name}, input {size}"
          + (f", {result.folded_bn_pairs} conv-BN pairs folded" if result.folded_bn_pairs is not None else "") + ")")
    if result.max_rel_error is not None:
        print(f"checked against PyTorch on a batch of {result.verified_batch}: max abs error "
              f"{result.max_abs_error:.3g}, relative {result.max_rel_error:.3g} (tolerance {args.tolerance:g})")
    return 0
