"""``leannets robustness RUN [RUN …]``: accuracy under Gaussian noise (WAE paper, Table 7)."""
from __future__ import annotations

import argparse

from leannets._io import atomic_write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="accuracy of trained classifiers under additive Gaussian noise (one table)")
    p.add_argument("runs", nargs="+", help="run folders or checkpoints (leannets train output)")
    p.add_argument("--variances", nargs="+", type=float, default=[0.0, 0.01, 0.02, 0.05, 0.1],
                   help="noise variances on [0, 1] images")
    p.add_argument("--data-root", default=None, help="override data.root of the runs' recipes")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test images")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same draw for every model)")
    p.add_argument("--no-clip", action="store_true", help="do not clip noisy images to [0, 1]")
    p.add_argument("--decomposition", default=None, metavar="PNG",
                   help="also write the WAE decomposition figure (input | I_L | I_H | reconstruction) of the "
                        "first run whose model has a WAE decoder")
    p.add_argument("--images", type=int, default=6, help="images in the decomposition figure")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")
    p.set_defaults(func=run)


def _load(path: str, data_root: str | None):  # noqa: ANN202
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.engine.checkpoint import load_model
    from leannets.engine.recipe import apply_overrides, stage_configs, validate_recipe
    from leannets.engine.task import create_task

    model, ckpt = load_model(path)
    recipe = ckpt["recipe"]
    if data_root:
        recipe = validate_recipe(apply_overrides(recipe, {"data.root": data_root}))
    splits = create_task(stage_configs(recipe)[-1]).build_data()
    if not hasattr(splits.eval, "images"):
        raise ValueError(f"{path}: robustness needs an in-memory dataset (got {type(splits.eval).__name__})")
    info = ckpt["data_info"]
    return model, splits, info.get("mean") or splits.mean, info.get("std") or splits.std, ckpt


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at import: keeps `leannets --help` fast
    from leannets.analysis.robustness import format_noise_table, noise_robustness


    results = {}
    vis_done = args.decomposition is None
    for path in args.runs:
        model, splits, mean, std, ckpt = _load(path, args.data_root)
        images, labels = splits.eval.images, splits.eval.labels
        if args.limit:
            images, labels = images[:args.limit], labels[:args.limit]
        name = f"{ckpt['recipe']['model']['name']} ({path})"
        results.update(noise_robustness({name: model}, images, labels, args.variances, mean, std,
                                        seed=args.seed, clip=not args.no_clip))
        if not vis_done and getattr(model, "uses_transform_loss", False):
            from leannets.analysis.wae_vis import save_decomposition_png

            out = save_decomposition_png(args.decomposition, model, splits.eval.images[:args.images], mean, std,
                                         title=name)
            print(f"wrote {out}")
            vis_done = True
    print(format_noise_table(results))
    if not vis_done:
        print("note: no run had a WAE decoder; no decomposition figure written")
    if args.json:
        atomic_write_json(args.json, {n: {str(v): a for v, a in r.items()} for n, r in results.items()})
    return 0
