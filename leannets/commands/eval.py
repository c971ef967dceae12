"""``leannets eval CHECKPOINT [--data NAME] [--data-root DIR] [--set data.k=v|task.k=v …]``: evaluate a checkpoint."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (loss and the task's metrics)")
    p.add_argument("checkpoint", help="checkpoint file or run folder (uses its last.pt; best.pt via the path)")
    p.add_argument("--data", default=None, help="dataset name (default: the one the checkpoint was trained on)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="dataset folder (data.root)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override data.* or task.* recipe keys, e.g. --set task.sigma=50 (repeatable)")
    p.add_argument("--split", default="eval", choices=("eval", "train", "val"), help="which split to evaluate")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even if an EMA was kept")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leannets.engine.recipe import parse_override
    from leannets.engine.trainer import evaluate_checkpoint

    overrides: dict = {}
    if args.data:
        overrides["data.name"] = args.data
    if args.data_root:
        overrides["data.root"] = args.data_root
    for text in args.overrides:
        key, value = parse_override(text)
        if not key.startswith(("data.", "task.")):
            raise ValueError(f"--set {text!r}: eval accepts only data.* and task.* keys")
        overrides[key] = value
    out = evaluate_checkpoint(args.checkpoint, overrides=overrides, device=args.device, use_ema=not args.no_ema,
                              split=args.split)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{out['model']} on {out['data']} ({out['split']} split, {out['num_samples']} samples) — {out['checkpoint']}")
    if out.get("report"):
        print(out["report"])
    for k, v in sorted(out["metrics"].items()):
        print(f"  {k:<12} {v:.4f}")
    return 0
