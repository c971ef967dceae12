"""``leannets compare [MODEL …] [--data NAME] [--recipe R] [--out DIR] [--epochs N]``: the main job.

Trains every model under the same recipe and seed, evaluates, profiles (params, MACs, CPU latency)
and writes ``report.md``, ``results.json`` and ``compare.png`` (metric vs MACs and vs params).
With no models it compares a DxNet with its DenseNet-BC baseline on the embedded digits data.
"""
from __future__ import annotations

import argparse

from leannets.config import DEFAULT_COMPARE_MODELS, DEFAULT_COMPARE_RECIPE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train + evaluate + profile models side by side (report, JSON, plot)")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=f"registered models, baseline first (default: {' '.join(DEFAULT_COMPARE_MODELS)})")
    p.add_argument("--data", default=None, help="dataset name (default: the recipe's, digits); another dataset than "
                   "the recipe's starts from its own data defaults (augmentation, input size), keeping the recipe's "
                   "batch sizes")
    p.add_argument("--data-root", default=None, metavar="DIR", help="dataset folder (data.root)")
    p.add_argument("--recipe", default=None, help=f"recipe file or bundled name (default: {DEFAULT_COMPARE_RECIPE})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for every model (repeatable)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (overrides the recipe)")
    p.add_argument("--seed", type=int, default=None, help="first seed (overrides the recipe's)")
    p.add_argument("--seeds", type=int, default=3,
                   help="training runs per model, seeds SEED..SEED+N-1, paired across models (default 3)")
    p.add_argument("--out", default="runs/compare", metavar="DIR", help="output folder (default runs/compare)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for training and timing")
    p.add_argument("--no-latency", action="store_true", help="skip CPU latency timing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.compare import _table, command_line, compare_models
    from leannets.engine.recipe import parse_override

    overrides = dict(parse_override(o) for o in args.overrides)
    if args.data:
        overrides["data.name"] = args.data
    if args.data_root:
        overrides["data.root"] = args.data_root
    if args.seed is not None:
        overrides["seed"] = args.seed
    results = compare_models(args.models or None, recipe=args.recipe, overrides=overrides, out_dir=args.out,
                             epochs=args.epochs, seeds=args.seeds, latency=not args.no_latency, threads=args.threads,
                             verbose=not args.quiet, progress=False if args.no_progress else None,
                             command=command_line())
    if args.quiet:
        print(_table(results))
    return 0
