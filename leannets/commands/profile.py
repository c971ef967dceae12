"""``leannets profile NAME [NAME …]``: params, MACs, peak activation memory and latency."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters, MACs, memory and latency of models (one table)")
    p.add_argument("names", nargs="+", help="registered model names (patterns allowed, e.g. 'dxnet*')")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                   help="input size (default: each model's registered size)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="batch size for latency and memory")
    p.add_argument("--fold-bn", action="store_true", help="also time the model with BatchNorm folded")
    p.add_argument("--elementwise", action="store_true", help="count elementwise (gating) operations")
    p.add_argument("--no-latency", action="store_true", help="skip timing")
    p.add_argument("--threads", type=int, default=None, help="CPU threads pinned while timing")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def expand_names(names: list[str]) -> list[str]:
    """Expand shell patterns against the registry; unknown plain names raise ``ValueError``."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.models import list_models, model_info

    out: list[str] = []
    for name in names:
        if any(c in name for c in "*?["):
            matched = list_models(name)
            if not matched:
                raise ValueError(f"pattern {name!r} matches no registered model")
            out += matched
        else:
            model_info(name)
            out.append(name)
    return out


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.profile import format_table, profile_model
    from leannets.models import create_model, model_info

    results = []
    for name in expand_names(args.names):
        model = create_model(name, num_classes=args.num_classes)
        results.append(profile_model(model, input_size=args.input_size or model_info(name).input_size,
                                     batch=args.batch, latency=not args.no_latency, fold_bn=args.fold_bn,
                                     elementwise=args.elementwise, threads=args.threads, repeats=args.repeats))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 0
