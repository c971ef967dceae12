"""``leannets convert MODEL``: the papers' ideas in a registered model; prints what changed (params, MACs)."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="replace depthwise convs (XSepConv, Multiception) and activations (xUnit) "
                                       "of a model; print what changed")
    p.add_argument("model", help="registered model name")
    p.add_argument("--conv", choices=["xsepconv", "multiception"], default=None, help="what depthwise convs become")
    p.add_argument("--act", choices=["xunit"], default=None, help="what ReLU/ReLU6/Hardswish/GELU become")
    p.add_argument("--min-kernel", type=int, default=5, help="smallest depthwise kernel to replace (default: 5)")
    p.add_argument("--kernel-sizes", type=int, nargs="+", default=[3, 5, 7], help="Multiception kernels (3 5 7)")
    p.add_argument("--act-kernel", type=int, default=9, help="xUnit depthwise kernel (default: 9, the paper's)")
    p.add_argument("--stride2", choices=["auto", "always", "never"], default="auto",
                   help="stride-2 XSepConv: auto converts only where the paper's cost rule says it is cheaper")
    p.add_argument("--include", nargs="+", default=None, metavar="GLOB", help="only layers whose name matches")
    p.add_argument("--exclude", nargs="+", default=None, metavar="GLOB", help="never layers whose name matches")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None,
                   help="probe / MAC input size (default: the model's)")
    p.add_argument("--save", default=None, metavar="FILE.safetensors",
                   help="write the converted model's weights, with the model name and these options as metadata "
                        "(reload: create_model, convert with the same options, load_state_dict)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def options_of(args: argparse.Namespace) -> dict:
    """The ``convert`` options of the command line (as a recipe's ``model.convert`` takes them)."""
    return {"conv": args.conv, "act": args.act, "min_kernel": args.min_kernel, "kernel_sizes": list(args.kernel_sizes),
            "act_kernel": args.act_kernel, "stride2": args.stride2, "include": args.include, "exclude": args.exclude}


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.convert import convert
    from leannets.models import create_model

    model = create_model(args.model)
    if args.conv is None and args.act is None:
        raise ValueError("leannets convert: give --conv (xsepconv, multiception) and/or --act (xunit)")
    report = convert(model, input_size=args.input_size, **options_of(args))
    if report.note:
        raise ValueError(f"{args.model}: {report.format()}")
    if args.save:
        from leannets._io import save_safetensors

        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_safetensors(args.save, state, {"leannets.model": args.model,
                                            "leannets.convert": json.dumps(options_of(args))})
    if args.json:
        print(json.dumps({"model": args.model, "replaced": [list(r) for r in report.replaced],
                          "kept": [list(k) for k in report.kept], "counts": report.counts(),
                          "params": list(report.params), "macs": list(report.macs),
                          "input_size": list(report.input_size)}, indent=1))
    else:
        print(f"{args.model}:\n{report.format()}")
    return 0
