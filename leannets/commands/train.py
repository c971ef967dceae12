"""``leannets train --recipe FILE|NAME [--set k=v …] [--resume DIR] [--out DIR]``: run a training recipe.

Works unchanged under ``torchrun --nproc_per_node=N -m leannets.cli train …`` (DDP).
"""
from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train with a YAML recipe (single process, DDP via torchrun, resumable)")
    p.add_argument("recipe_arg", nargs="?", default=None, metavar="RECIPE",
                   help="recipe YAML file or bundled name (see --list); same as --recipe")
    p.add_argument("--recipe", default=None, help="recipe YAML file or bundled name (see --list)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override recipe keys, e.g. --set optim.lr=0.05 data.root=../data (repeatable)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR (or from a checkpoint)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/<recipe>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (else refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument("--print-recipe", action="store_true", help="print the resolved recipe and exit")
    p.add_argument("--list", action="store_true", help="list bundled recipes and exit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.engine.recipe import dump_recipe, list_recipes, load_recipe
    from leannets.engine.trainer import train

    if args.list:
        print("\n".join(list_recipes()))
        return 0
    if args.recipe_arg and args.recipe and args.recipe_arg != args.recipe:
        raise ValueError(f"two recipes given: {args.recipe_arg!r} and --recipe {args.recipe!r}; give one")
    args.recipe = args.recipe or args.recipe_arg
    if args.recipe is None and args.resume is None:
        raise ValueError("give --recipe FILE|NAME (or --resume DIR); bundled recipes: " + ", ".join(list_recipes()))
    if args.print_recipe:
        print(dump_recipe(load_recipe(args.recipe, args.overrides)), end="")
        return 0
    result = train(args.recipe, overrides=args.overrides, out_dir=args.out, resume=args.resume,
                   overwrite=args.overwrite, verbose=not args.quiet, progress=False if args.no_progress else None)
    if result.get("world_size", 1) > 1 and not _is_rank0():
        return 0
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2, default=str))
        return 0
    final = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result["final"].items()))
    best = result["best"]
    print(f"done: {result['model']} ({result['params']:,} params) {final}")
    if best.get("value") is not None:
        print(f"best {best.get('metric')} {best['value']:.4f} at stage {best.get('stage')} epoch {best.get('epoch')}")
    if result.get("out_dir"):
        print(f"run folder: {result['out_dir']}")
    return 0


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"
