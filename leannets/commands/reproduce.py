"""``leannets reproduce PAPER|all [--table NAME …] [--scale smoke|cpu|gpu|paper] [--out DIR] [--data-root DIR]
[--seed N] [--device D] [--jobs N]``: run a paper's tables/figures and write report.md, results.json and PNG plots.

``all`` runs the four papers one after the other into ``OUT/<paper>/`` (training runs shared in
``OUT/runs`` unless ``--runs``) and writes ``OUT/README.md``: an index with each paper's verdicts
and minutes and the total time.
"""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from leannets._io import atomic_write_text
from leannets.reproduce.results import STATUSES


def register(sub: argparse._SubParsersAction) -> None:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.reproduce import SCALES
    from leannets.reproduce.spec import paper_modules

    p = sub.add_parser("reproduce", help="reproduce a paper's tables/figures (report beside the paper's numbers)")
    p.add_argument("paper", choices=(*paper_modules(), "all"), help="which paper (all: the four, one after the other)")
    p.add_argument("--table", action="append", default=None, metavar="NAME",
                   help="only this table/figure (repeatable; see --list)")
    p.add_argument("--scale", choices=SCALES, default="smoke",
                   help="smoke: embedded data, tiny runs (CI); cpu: real data from --data-root, 3 seeds (5 where "
                        "declared), ≤ 3 CPU-hours per paper on 2 cores, accumulated as run records; gpu: the CIFAR-size experiments on one GPU (≈ 12 min, 3 seeds); paper: "
                        "the published recipes (GPU, resumable)")
    p.add_argument("--out", default=None,
                   help="output folder (default: reproductions/<paper>-<scale>; all: reproductions/all-<scale>)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (cpu scale: e.g. ../shared/data; paper scale: see docs/reproduce.md)")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="folder of the training runs (checkpoints; default: <out>/runs)")
    p.add_argument("--records", default=None, metavar="DIR",
                   help="folder of run records, a few KB per finished run (default: <out>/records, all: OUT/records; none "
                        "at smoke scale): "
                        "a run whose record still holds is not trained again, each run trained adds one")
    p.add_argument("--no-train", action="store_true",
                   help="build the reports from the records (and finished run folders) only: a run without one is "
                        "listed as missing and its claims read not measured")
    p.add_argument("--retime", action="store_true",
                   help="time again what a measurement record in --records holds (the WAE speed-ups), and record it")
    p.add_argument("--seed", type=int, default=0, help="first seed of every trained row (default: 0)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per trained row, paired across rows (default: 1 at smoke, 3 at cpu, gpu and paper scale)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None,
                   help="train.device at gpu and paper scale (default: auto = cuda when available); e.g. cpu for a "
                        "smoke run of the gpu path")
    p.add_argument("--jobs", type=int, default=1,
                   help="training runs at once (gpu scale: several small runs share one GPU; default 1)")
    p.add_argument("--list", action="store_true", help="list the paper's tables/figures and exit")
    p.add_argument("--plan", action="store_true",
                   help="print every training run (recipe + overrides, validated) without running anything")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.paper == "all":
        _run_all(args)
    else:
        _run_one(args)
    return 0


def _run_one(args: argparse.Namespace) -> dict | None:
    """One paper (or its ``--list`` / ``--plan``); returns the results dict when it ran."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.reproduce import get_paper, run_paper
    from leannets.reproduce.runner import verdict_counts

    paper = get_paper(args.paper)
    if args.list:
        for exp in paper.experiments:
            print(f"{exp.name:<10} {exp.ref:<14} {exp.title}  [scales: {', '.join(exp.scales)}]")
        return None
    for name in args.table or []:
        paper.experiment(name)  # ValueError naming the allowed tables
    if args.plan:
        from leannets.reproduce.runner import plan_paper

        records = _records_dir(args, paper.name)
        runs = plan_paper(paper, args.table, args.scale, args.data_root, args.seed, args.seeds, args.device,
                          records_dir=records if records is not None and records.is_dir() else None)
        for r in runs:
            ov = " ".join(f"{k}={v}" for k, v in sorted(r["overrides"].items()) if not k.startswith("model."))
            kw = r["model"].get("kwargs") or {}
            model = r["model"]["name"] + (f"({', '.join(f'{k}={v}' for k, v in sorted(kw.items()))})" if kw else "")
            print(f"{r['experiment']:<12} {r['row']:<16} {model:<32} {_cost(r):<10} {r['recipe']} {ov}")
        print(_plan_total(runs, args.scale))
        return None
    command = _command(args)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    doc = run_paper(paper, tables=args.table, scale=args.scale, out_dir=args.out, data_root=args.data_root,
                    seed=args.seed, threads=args.threads, command=command, log=log, runs_dir=args.runs,
                    seeds=args.seeds, device=args.device, jobs=args.jobs,
                    records_dir=_records_dir(args, paper.name), retime=args.retime, no_train=args.no_train)
    out = args.out or f"reproductions/{paper.name}-{args.scale}"
    print(f"{paper.name} ({args.scale}): {verdict_counts(doc)} — {out}/report.md")
    return doc


def _run_all(args: argparse.Namespace) -> None:
    """Each paper into ``OUT/<paper>``, then ``OUT/README.md`` indexing them."""
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.reproduce import PAPERS

    if args.table:
        raise ValueError("--table names one paper's tables; it cannot be used with `reproduce all`")
    root = Path(args.out or f"reproductions/all-{args.scale}")
    runs = args.runs or (None if args.list or args.plan else str(root / "runs"))
    records = args.records or (None if args.scale == "smoke" else str(root / "records"))
    docs = []
    for name in PAPERS:
        one = argparse.Namespace(**{**vars(args), "paper": name, "out": str(root / name), "runs": runs,
                                    "records": records})
        if args.list or args.plan:
            print(f"# {name}")
        doc = _run_one(one)
        if doc is not None:
            docs.append(doc)
    if docs:
        index = write_index(root, docs, _command(args))
        print(f"all ({args.scale}): {sum(d['seconds'] for d in docs) / 60:.1f} min — {index}")


def write_index(root: os.PathLike | str, docs: list[dict], command: str) -> Path:
    """``root/README.md``: one row per paper (verdicts, minutes, report link) and the total time."""

    env = docs[0]["environment"]
    gpu = f" · {env['accelerator']}" if env.get("accelerator") else ""
    lines = [f"# Reproductions — `{docs[0]['scale']}` scale", "",
             f"Command: `{command}`  ",
             f"Seeds {', '.join(map(str, docs[0].get('seeds') or [docs[0]['seed']]))} · "
             f"torch {env['torch']} · {env['threads']} CPU threads{gpu}", "",
             "| paper | " + " | ".join(STATUSES) + " | decided trained claims | minutes | training CPU-hours "
             "| machines | report |",
             "|---" * (len(STATUSES) + 6) + "|"]
    for d in docs:
        s = d["summary"]
        machines = sorted({r.get("gpu") or r.get("cpu") or "?" for r in d.get("runs") or []})
        lines.append(f"| {d['title']} | " + " | ".join(str(s.get(k, 0)) for k in STATUSES) + " | "
                     f"{s.get('decided trained', 0)} | {d['seconds'] / 60:.1f} | {d.get('cpu_hours', 0.0):.2f} | "
                     f"{'; '.join(machines) or '—'} | "
                     f"[{d['paper']}/report.md]({d['paper']}/report.md) |")
    total = sum(d["seconds"] for d in docs) / 60
    hours = sum(d.get("cpu_hours", 0.0) for d in docs)
    lines += ["", f"**Total: {total:.1f} min** to build these reports (runs read from their records take no time) "
              f"and **{hours:.2f} CPU-hours** of training in the records they rest on.", ""]
    path = Path(root) / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _cost(run: dict) -> str:
    """``recorded`` (a record holds it), ``≈N min`` (the recorded cost of its recipe with other seeds, or of its
    epochs at the recorded seconds per epoch of the same step) or ``?``."""
    if run.get("recorded"):
        return "recorded"
    return "?" if run.get("estimate_min") is None else f"≈{run['estimate_min']:.0f} min"


def _plan_total(runs: list[dict], scale: str) -> str:
    distinct = {r["run_id"]: r for r in runs}.values()
    todo = [r for r in distinct if not r.get("recorded")]
    known = [r["estimate_min"] for r in todo if r.get("estimate_min") is not None]
    text = f"{len(runs)} runs ({len(distinct)} distinct) at {scale} scale"
    if any("recorded" in r for r in distinct):
        unknown = f", {len(todo) - len(known)} without an estimate" if len(known) < len(todo) else ""
        text += (f"; {len(distinct) - len(todo)} recorded, {len(todo)} to train: ≈{sum(known) / 60:.1f} h from the "
                 f"records (their recipes' minutes, or their epochs at the recorded seconds per epoch){unknown}")
    return text


def _records_dir(args: argparse.Namespace, paper: str) -> Path | None:
    """``--records``, else ``<out>/records`` (none at smoke scale: a few steps on digits prove nothing worth keeping)."""
    if args.records:
        return Path(args.records)
    if args.scale == "smoke":
        return None
    return Path(args.out or f"reproductions/{paper}-{args.scale}") / "records"


def _command(args: argparse.Namespace) -> str:
    parts = ["leannets", "reproduce", args.paper, "--scale", args.scale]
    for t in args.table or []:
        parts += ["--table", t]
    if args.data_root:
        parts += ["--data-root", args.data_root]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.device:
        parts += ["--device", args.device]
    if args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    return " ".join(shlex.quote(p) for p in parts)
