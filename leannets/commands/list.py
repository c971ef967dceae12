"""``leannets list [PATTERN] [--task T] [--json]``: registered models with their paper references."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models with their paper references")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'dxnet*'")
    p.add_argument("--task", default=None, help="only models of this task (classification, denoising, ...)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.models import list_models, model_info
    from leannets.models._registry import TASKS

    if args.task is not None and args.task not in TASKS:
        raise ValueError(f"unknown task {args.task!r} for --task; known tasks: {', '.join(TASKS)}")
    infos = [model_info(n) for n in list_models(args.pattern, task=args.task)]
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    width = max((len(i.name) for i in infos), default=10)
    for i in infos:
        size = "×".join(map(str, i.input_size))
        print(f"{i.name:<{width}}  {i.task:<16} {size:<11} {i.source} — {i.paper}")
    print(f"{len(infos)} models")
    return 0
