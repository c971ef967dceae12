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
    p.add_argument("--elementwise", action="store_true", help="count elementwise (gating) operations")
    p.add_argument("--no-latency", action="store_true", help="skip timing")
    p.add_argument("--backend", default="channels_last",
                   choices=["eager", "channels_last", "bf16", "bf16-exact", "compiled", "onnxruntime",
                            "onnxruntime-int8"],
                   help="how the prepared model runs (default: channels_last; bf16: bf16 in and out, computing in "
                        "float32 where that is faster; see the README, Deployment and latency)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads pinned while timing (default: 2)")
    p.add_argument("--rounds", type=int, default=30, help="interleaved timed rounds (default: 30)")
    p.add_argument("--no-fold-bn", action="store_true",
                   help="time the eval model with its BatchNorm layers (default: folded, the deployment path)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", action="store_true",
                   help="print JSON: per model latency_ms (median) and latency_ci_ms, and from the second model on "
                        "ratio_to_first and ratio_to_first_ci (95%%)")
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
    from leannets.analysis.profile import format_table, profile_models
    from leannets.models import create_model, model_info

    if args.batch < 1 or args.rounds < 1 or args.threads < 1:
        raise ValueError(f"--batch, --rounds and --threads must be >= 1; got {args.batch}, {args.rounds}, "
                         f"{args.threads}")
    names = expand_names(args.names)
    models = []
    for name in names:
        model = create_model(name, num_classes=args.num_classes)
        model.model_name = name
        models.append(model)
    sizes = [tuple(args.input_size or model_info(n).input_size) for n in names]
    results = profile_models(models, sizes, args.batch, not args.no_latency, args.elementwise, True, args.backend,
                             args.threads, args.rounds, not args.no_fold_bn, args.device)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 0
