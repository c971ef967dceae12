"""``leannets reproduce PAPER [--table NAME …] [--scale smoke|cpu|paper] [--out DIR] [--data-root DIR]
[--seed N]``: run a paper's tables/figures and write report.md, results.json and PNG plots."""
from __future__ import annotations

import argparse
import shlex


def register(sub: argparse._SubParsersAction) -> None:
    from leannets.reproduce import PAPERS, SCALES

    p = sub.add_parser("reproduce", help="reproduce a paper's tables/figures (report beside the paper's numbers)")
    p.add_argument("paper", choices=PAPERS, help="which paper")
    p.add_argument("--table", action="append", default=None, metavar="NAME",
                   help="only this table/figure (repeatable; see --list)")
    p.add_argument("--scale", choices=SCALES, default="smoke",
                   help="smoke: embedded data, tiny runs (CI); cpu: real small data from --data-root, "
                        "≤ 60 min for all papers on 2 cores; paper: the published recipes (GPU, resumable)")
    p.add_argument("--out", default=None, help="output folder (default: reproductions/<paper>-<scale>)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (cpu scale: e.g. ../shared/data; paper scale: see docs/reproduce.md)")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="folder of the training runs (checkpoints; default: <out>/runs)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--list", action="store_true", help="list the paper's tables/figures and exit")
    p.add_argument("--plan", action="store_true",
                   help="print every training run (recipe + overrides, validated) without running anything")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leannets.reproduce import get_paper, run_paper
    from leannets.reproduce.runner import verdict_counts

    paper = get_paper(args.paper)
    if args.list:
        for exp in paper.experiments:
            print(f"{exp.name:<10} {exp.ref:<14} {exp.title}  [scales: {', '.join(exp.scales)}]")
        return 0
    for name in args.table or []:
        paper.experiment(name)  # ValueError naming the allowed tables
    if args.plan:
        from leannets.reproduce.runner import plan_paper

        runs = plan_paper(paper, args.table, args.scale, args.data_root, args.seed)
        for r in runs:
            ov = " ".join(f"{k}={v}" for k, v in sorted(r["overrides"].items()) if not k.startswith("model."))
            print(f"{r['experiment']:<12} {r['row']:<16} {r['model']['name']:<32} {r['recipe']} {ov}")
        print(f"{len(runs)} runs ({len({r['run_id'] for r in runs})} distinct) at {args.scale} scale")
        return 0
    command = _command(args)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    doc = run_paper(paper, tables=args.table, scale=args.scale, out_dir=args.out, data_root=args.data_root,
                    seed=args.seed, threads=args.threads, command=command, log=log, runs_dir=args.runs)
    out = args.out or f"reproductions/{paper.name}-{args.scale}"
    print(f"{paper.name} ({args.scale}): {verdict_counts(doc)} — {out}/report.md")
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["leannets", "reproduce", args.paper, "--scale", args.scale]
    for t in args.table or []:
        parts += ["--table", t]
    if args.data_root:
        parts += ["--data-root", args.data_root]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    return " ".join(shlex.quote(p) for p in parts)
