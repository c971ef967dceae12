"""``leannets sharpness CHECKPOINT [CHECKPOINT …]``: minima sharpness by parameter perturbation (Figs. 9–10)."""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SIGMAS = [0.0, 0.0025, 0.005, 0.0075, 0.01]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sharpness", help="Tr(Hessian) / mean eigenvalue of trained models by Gaussian weight perturbation",
        description="Add N(0, σ²) noise to every conv filter of each checkpoint (R seeded realizations per σ), "
                    "record the mean loss of the checkpoint's task on a data split, fit loss = a + b·σ² "
                    "(Tr(H) = 2b) and write sharpness.json + sharpness.png to --out.")
    p.add_argument("checkpoints", nargs="+", help="leannets checkpoints (.pt) or run folders")
    p.add_argument("--data", default=None,
                   help="dataset folder (sets data.root) or registered dataset name (default: the checkpoint's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data override, e.g. --set data.limit_train=500 (repeatable)")
    p.add_argument("--split", default="train", choices=["train", "eval", "val"],
                   help="split the loss is measured on (the paper uses the training set)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples of the split")
    p.add_argument("--sigmas", type=float, nargs="+", default=DEFAULT_SIGMAS, metavar="σ",
                   help=f"perturbation standard deviations (default: {' '.join(map(str, DEFAULT_SIGMAS))})")
    p.add_argument("--repeats", type=int, default=10, help="noise realizations R per σ")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same for every model)")
    p.add_argument("--params", default="conv", choices=["conv", "all"],
                   help="perturb every conv filter (paper) or all parameters")
    p.add_argument("--names", nargs="+", default=None, help="labels for the checkpoints (default: model names)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="runs/sharpness", help="output folder for sharpness.json / sharpness.png")
    p.set_defaults(func=run)


def _labels(checkpoints: list[str], models: list[str], names: list[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(checkpoints):
            raise ValueError(f"--names has {len(names)} labels for {len(checkpoints)} checkpoints")
        return names
    labels = []
    for ckpt, model in zip(checkpoints, models):
        label = model
        if models.count(model) > 1:  # same architecture twice: tell them apart by run folder
            path = Path(ckpt)
            label = f"{model} ({(path if path.is_dir() else path.parent).name})"
        labels.append(label)
    for i, label in enumerate(labels):  # still ambiguous (e.g. the same checkpoint twice): number them
        if labels.count(label) > 1:
            labels[i] = f"{label} #{i + 1}"
    return labels


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    import torch

    from leannets.analysis.sharpness import (checkpoint_data, estimate_sharpness, format_sharpness_table,
                                             save_sharpness, task_loss_fn)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    loaded = [checkpoint_data(c, data=args.data, overrides=args.overrides, split=args.split, limit=args.limit,
                              device=args.device) for c in args.checkpoints]
    labels = _labels(args.checkpoints, [ck["recipe"]["model"]["name"] for *_, ck in loaded], args.names)
    results = []
    for label, (model, task, loader, ckpt) in zip(labels, loaded):
        print(f"{label}: {loader.num_samples} samples ({args.split}), {len(args.sigmas)} σ × {args.repeats} "
              f"realizations", flush=True)
        res = estimate_sharpness(model, task_loss_fn(task, loader), args.sigmas, repeats=args.repeats,
                                 seed=args.seed, params=args.params, name=label)
        res.extra = {"checkpoint": ckpt["path"], "model": ckpt["recipe"]["model"]["name"],
                     "task": ckpt["recipe"]["task"]["name"], "split": args.split, "num_samples": loader.num_samples}
        results.append(res)
    meta = {"data": args.data, "overrides": args.overrides, "split": args.split, "limit": args.limit,
            "sigmas": args.sigmas, "repeats": args.repeats, "seed": args.seed, "params": args.params}
    json_path, png_path = save_sharpness(results, args.out, meta=meta)
    print(format_sharpness_table(results))
    print(f"wrote {json_path} and {png_path}")
    return 0
