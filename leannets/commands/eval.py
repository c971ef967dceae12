"""``leannets eval CHECKPOINT [--data NAME|DIR] [--sigma S | --scale K] [--set data.k=v|task.k=v …]``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (loss and the task's metrics)")
    p.add_argument("checkpoint", help="checkpoint file or run folder (a folder means its last.pt), or an exported "
                                      "classifier .onnx (fp32 or int8; with --data)")
    p.add_argument("--data", default=None,
                   help="dataset name, or a folder (used by the task directly when it supports folders, e.g. "
                        "restoration test sets; otherwise it becomes data.root)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="dataset folder (data.root)")
    p.add_argument("--sigma", type=float, default=None, help="noise σ for denoising checkpoints (task.sigma)")
    p.add_argument("--scale", type=int, default=None, help="upscaling factor for SR checkpoints (task.scale)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override data.* or task.* recipe keys, e.g. --set data.limit_eval=100 (repeatable)")
    p.add_argument("--split", default="eval", choices=("eval", "train", "val"), help="which split to evaluate")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even if an EMA was kept")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _eval_onnx(args: argparse.Namespace, overrides: dict) -> dict:
    """An exported classifier (fp32 or int8 ONNX) on ``--data`` (a dataset name) with ``data.*`` overrides."""
    from leannets.analysis.export import evaluate_onnx
    from leannets.engine.recipe import load_recipe

    if not args.data or Path(args.data).is_dir():
        raise ValueError(f"eval of {args.checkpoint}: give --data DATASET (and --data-root DIR); an ONNX file "
                         "does not store its data")
    data = {"name": args.data, **{k[5:]: v for k, v in overrides.items() if k.startswith("data.")}}
    return evaluate_onnx(args.checkpoint, load_recipe({"model": {"name": "resnet20_standard"}, "data": data})["data"])


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.engine.checkpoint import load_checkpoint
    from leannets.engine.recipe import parse_override
    from leannets.engine.task import Task, get_task_class
    from leannets.engine.trainer import evaluate_checkpoint, resolve_device

    overrides: dict = {}
    for text in args.overrides:
        key, value = parse_override(text)
        if not key.startswith(("data.", "task.")):
            raise ValueError(f"--set {text!r}: eval accepts only data.* and task.* keys")
        overrides[key] = value
    if args.sigma is not None:
        overrides["task.sigma"] = args.sigma
    if args.scale is not None:
        overrides["task.scale"] = args.scale
    if args.data_root:
        overrides["data.root"] = args.data_root
    out = None
    if Path(args.checkpoint).suffix == ".onnx":
        out = _eval_onnx(args, overrides)
    elif args.data and Path(args.data).is_dir():
        ckpt = load_checkpoint(args.checkpoint)
        cls = get_task_class(ckpt["recipe"]["task"]["name"])
        if cls.evaluate_folder.__func__ is not Task.evaluate_folder.__func__:
            options = {k[5:]: v for k, v in overrides.items() if k.startswith("task.")}
            res = cls.evaluate_folder(args.checkpoint, args.data, options, str(resolve_device(args.device)))
            if res is not None:
                out = {"metrics": res["metrics"], "report": res.get("report"), "num_samples": res.get("num_samples"),
                       "split": "folder", "checkpoint": ckpt["path"], "data": args.data,
                       "model": ckpt["recipe"]["model"]["name"]}
        if out is None:
            overrides["data.root"] = args.data
    elif args.data:
        overrides["data.name"] = args.data
    if out is None:
        out = evaluate_checkpoint(args.checkpoint, overrides=overrides, device=args.device, use_ema=not args.no_ema,
                                  split=args.split)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    if out.get("quantized"):
        print(f"quantized: {out['quantized']}")
    n = out.get("num_samples")
    print(f"{out['model']} on {out['data']} ({out['split']} split{f', {n} samples' if n else ''}) — "
          f"{out['checkpoint']}")
    if out.get("report"):
        print(out["report"])
    for k, v in sorted(out["metrics"].items()):
        print(f"  {k:<12} {v:.4f}")
    return 0
