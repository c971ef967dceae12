"""``leannets speedup MODEL``: measured speed-up of a WAE family over its full-resolution backbone."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from leannets._io import atomic_write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speedup", help="WAE speed-up: full-res backbone vs WAE and baselines (BN folded, with CIs)")
    p.add_argument("name", help="any model of a WAE family, e.g. wae_vgg16, wae_resnet50, wae_vgg_cifar_small")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes to time (default: 1)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads while timing (default: 2)")
    p.add_argument("--rounds", type=int, default=30, help="interleaved timed rounds (default: 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    p.add_argument("--backend", default="channels_last", choices=["eager", "channels_last", "compiled", "onnxruntime", "onnxruntime-int8"],
                   help="how every prepared model runs (BN is always folded)")
    p.add_argument("--variants", nargs="+", default=["halfres", "wavelet", "ilonly", "wae"],
                   help="variants to compare (wae, decomp, wavelet, halfres, ilonly, caonly)")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), default=None)
    p.add_argument("--breakdown", action="store_true",
                   help="also time the WAE-style model's parts at batch 1 (front end, backbone on I_L, fusion net, "
                        "heads) with their achieved GMAC/s; NAME picks the model (wae_<family> for a full-res name)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.speedup import (family_of, format_breakdown, format_speedups, latency_breakdown,
                                           measure_speedups)


    report = measure_speedups(args.name, batch_sizes=args.batch, device=args.device, threads=args.threads,
                              rounds=args.rounds, warmup=args.warmup, backend=args.backend,
                              variants=args.variants, input_size=args.input_size)
    print(format_speedups(report))
    doc = report.as_dict()
    if args.breakdown:
        variant, family = family_of(args.name)
        name = args.name if variant != "full" else f"wae_{family}"
        rows = latency_breakdown(name, device=args.device, threads=args.threads, rounds=args.rounds,
                                 warmup=args.warmup, channels_last=args.backend != "eager",
                                 input_size=args.input_size)
        print(f"\nwhere {name}'s time goes (batch 1, BN folded):\n")
        print(format_breakdown(name, rows))
        doc["breakdown"] = {"model": name, "parts": [asdict(r) | {"gmacs_per_s": r.gmacs_per_s} for r in rows]}
    if args.json:
        atomic_write_json(args.json, doc)
    return 0
