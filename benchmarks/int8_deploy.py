"""fp32 against int8 deployment (ONNX Runtime static QDQ) of trained CIFAR-10 checkpoints: top-1 and latency.

Usage: python benchmarks/int8_deploy.py --runs DIR --records DIR --data-root ../shared/data
           [--threads 2] [--rounds 30] [--calibration-images 256] [--no-latency] [--reuse-accuracy JSON]
           [--compare DIR ...] [--json PATH] [--markdown PATH]

Pairs: MobileNetV3-Small DWConv vs XSepConv (the cpu-scale ×0.5 pair), ResNet-20 standard vs Multiception,
DenseNet-BC-40 vs DxNet-4-4-4. Checkpoints are the run folders (``--runs``) named by the run records
(``--records``) of each model, paired by seed among runs of the same length and data; a pair that no reproduction
trained comes from ``leannets compare`` output folders (``--compare DIR``: short runs, their epochs shown).

- Accuracy: every checkpoint is exported to ONNX with its BN folded (``leannets export``), quantized on N
  evenly spaced training images (``--quantize int8 --calibration cifar10_jpeg``), and both files are evaluated
  on the 10,000 test images (``leannets eval FILE.onnx``): mean over seeds with its 95% interval, and the int8 −
  fp32 drop paired by checkpoint.
- Latency: the first seed's pair, batch 1, onnxruntime fp32 and int8 of both models timed in interleaved rounds
  (the library's harness); ratios int8 / fp32 per model and B / A in int8, medians of per-round ratios with 95%
  intervals. Take it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from leannets._io import atomic_write_json, atomic_write_text
from leannets.analysis.export import evaluate_onnx, export_model, load_model_source
from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.latency import build_call, time_interleaved, torch_threads
from leannets.analysis.quantize import quantize_int8
from leannets.analysis.statistics import mean_ci, median_ci, paired_difference
from leannets.commands.export import calibration_images
from leannets.engine.recipe import load_recipe

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import machine  # noqa: E402

PAIRS = [("mobilenetv3_small_cifar_050", "mobilenetv3_small_cifar_050_xsep", "MobileNetV3-Small ×0.5: DW vs XSep"),
         ("resnet20_standard", "resnet20_multiception", "ResNet-20: standard vs Multiception"),
         ("densenet_bc_cifar_6_6_6", "dxnet_cifar_4_4_4", "DenseNet-BC-40 vs DxNet-4-4-4")]
DATASET = "cifar10_jpeg"


def _group(record: dict[str, Any]) -> str:
    """Runs comparable across models: same data, epochs and precision (the model's own recipe may differ)."""
    recipe = record["recipe"]
    data, train = recipe.get("data") or {}, recipe.get("train") or {}
    return json.dumps([data.get("name"), data.get("limit_train"), train.get("epochs"),
                       (record.get("machine") or {}).get("amp")])


def find_pairs(records_dir: Path, runs_dir: Path, a: str, b: str) -> list[tuple[int, Path, Path]]:
    """(seed, checkpoint of a, checkpoint of b) of the largest group of seeds trained for both models."""
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for f in sorted(records_dir.glob("*.json")):
        rec = json.loads(f.read_text(encoding="utf-8"))
        model = (rec.get("result") or {}).get("model")
        ckpt = runs_dir / rec.get("run_id", "") / "last.pt"
        if model in (a, b) and ckpt.exists() and (rec["recipe"].get("data") or {}).get("name") == DATASET:
            found.setdefault((model, _group(rec)), {})[int(rec["seed"])] = ckpt
    best: list[tuple[int, Path, Path]] = []
    for (model, group), seeds in found.items():
        other = found.get((b, group), {}) if model == a else {}
        pairs = [(s, seeds[s], other[s]) for s in sorted(seeds) if s in other]
        best = pairs if len(pairs) > len(best) else best
    return best


def compare_pairs(compare_dirs: list[Path], a: str, b: str) -> list[tuple[int, Path, Path]]:
    """(seed, checkpoint of a, checkpoint of b) from ``leannets compare`` runs that trained both models (one
    recipe for all, so every seed pairs): the short runs standing in where no reproduction trained a pair."""
    best: list[tuple[int, Path, Path]] = []
    for folder in compare_dirs:
        path = folder / "results.json"
        if not path.is_file():
            continue
        models = {m["name"]: m for m in json.loads(path.read_text(encoding="utf-8"))["models"]}
        if a not in models or b not in models:
            continue
        ckpts = {name: {int(s["seed"]): folder / "runs" / Path(s["run_dir"]).name / "last.pt"
                        for s in models[name]["per_seed"]} for name in (a, b)}
        pairs = [(s, ckpts[a][s], ckpts[b][s]) for s in sorted(ckpts[a]) if s in ckpts[b]
                 and ckpts[a][s].is_file() and ckpts[b][s].is_file()]
        best = pairs if len(pairs) > len(best) else best
    return best


def _accuracy(ckpt: Path, data_root: str, n_calib: int, tmp: Path) -> tuple[float, float, str]:
    """(fp32 top-1 %, int8 top-1 %, quantization summary) of one checkpoint on the test split."""
    loaded = load_model_source(str(ckpt))
    fp32, int8 = tmp / f"{ckpt.parent.name}.onnx", tmp / f"{ckpt.parent.name}.int8.onnx"
    export_model(loaded.model, fp32, "onnx", input_size=loaded.input_size, fold_bn=True,
                 metadata=loaded.deployment_metadata())
    images = calibration_images(DATASET, n_calib, loaded.input_size, loaded, f"{data_root}/cifar10-jpeg")
    quant = quantize_int8(fp32, int8, images, DATASET, loaded.deployment_metadata())
    data = load_recipe({"model": {"name": loaded.name},
                        "data": {"name": DATASET, "root": f"{data_root}/cifar10-jpeg"}})["data"]
    acc = [100 * evaluate_onnx(p, data)["metrics"]["acc1"] for p in (fp32, int8)]
    print(f"  {ckpt.parent.name}: fp32 {acc[0]:.2f}%, int8 {acc[1]:.2f}%", file=sys.stderr, flush=True)
    return acc[0], acc[1], f"int8 ops {quant.int8_ops}, fp32 ops {quant.fp32_ops}"


def _latency(a: Path, b: Path, threads: int, rounds: int) -> dict[str, Any]:
    models = {name: fold_bn(load_model_source(str(p)).model) for name, p in (("A", a), ("B", b))}
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch_threads(threads):
        calls = {f"{n} {kind}": build_call(m, x, backend, threads, fold=False)
                 for n, m in models.items() for kind, backend in (("fp32", "onnxruntime"),
                                                                   ("int8", "onnxruntime-int8"))}
        samples, _ = time_interleaved(calls, rounds, 3, 5.0, "cpu")
    out: dict[str, Any] = {k: median_ci(v)[0] for k, v in samples.items()}
    for label, num, den in (("A int8/fp32", "A int8", "A fp32"), ("B int8/fp32", "B int8", "B fp32"),
                            ("B/A fp32", "B fp32", "A fp32"), ("B/A int8", "B int8", "A int8")):
        r, lo, hi = median_ci([n / d for n, d in zip(samples[num], samples[den])])
        out[label] = {"ratio": r, "ci": [lo, hi]}
    return out


def _reused(path: str | None, title: str, seeds: list[int]) -> dict[str, Any] | None:
    """The row of an earlier ``--json`` output for the same pair and seeds (its accuracies are reused)."""
    if not path:
        return None
    for row in json.loads(Path(path).read_text(encoding="utf-8"))["rows"]:
        if row["pair"] == title and row["seeds"] == seeds and "missing" not in row:
            return {k: v for k, v in row.items() if k != "latency"}
    return None


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="leannets-int8-") as tmp:
        for a, b, title in PAIRS:
            pairs = find_pairs(Path(args.records), Path(args.runs), a, b)
            source = "reproduction runs"
            if not pairs:
                pairs, source = compare_pairs([Path(d) for d in args.compare], a, b), "a leannets compare run"
            row: dict[str, Any] = {"pair": title, "a": a, "b": b, "seeds": [s for s, _, _ in pairs]}
            if pairs:
                row["source"] = f"{source} ({_epochs(pairs[0][1])} epochs)"
            if not pairs:
                row["missing"] = "no trained checkpoints of both models in the records"
                rows.append(row)
                continue
            reused = _reused(args.reuse_accuracy, title, row["seeds"])
            for key, idx in (("a", 1), ("b", 2)) if reused is None else ():
                accs = [_accuracy(p[idx], args.data_root, args.calibration_images, Path(tmp)) for p in pairs]
                fp32, int8 = [v[0] for v in accs], [v[1] for v in accs]
                row[key + "_fp32"], row[key + "_int8"] = fp32, int8
                row[key + "_quant"] = accs[0][2]
                if len(accs) > 1:
                    row[key + "_drop"] = paired_difference(int8, fp32).as_dict()
            row.update(reused or {})
            if not args.no_latency:
                row["latency"] = _latency(pairs[0][1], pairs[0][2], args.threads, args.rounds)
            rows.append(row)
            print(_row_text(row), flush=True)
    return rows


def _epochs(ckpt: Path) -> int | str:
    """Epochs of the run whose checkpoint this is (its result.json), or '?'."""
    result = ckpt.parent / "result.json"
    return json.loads(result.read_text(encoding="utf-8")).get("epochs", "?") if result.is_file() else "?"


def _mean(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f} (1 seed)"
    iv = mean_ci(values)
    return f"{iv.mean:.2f} ({iv.low:.2f}–{iv.high:.2f})"


def _drop(row: dict[str, Any], key: str) -> str:
    d = row.get(key + "_drop")
    if d is None:
        return f"{row[key + '_int8'][0] - row[key + '_fp32'][0]:+.2f} (1 seed)"
    return f"{d['mean']:+.2f} ({d['low']:+.2f} to {d['high']:+.2f})"


def _ratio(lat: dict[str, Any], key: str) -> str:
    r = lat[key]
    return f"{r['ratio']:.2f} ({r['ci'][0]:.2f}–{r['ci'][1]:.2f})"


def _row_text(row: dict[str, Any]) -> str:
    if "missing" in row:
        return f"{row['pair']}: {row['missing']}"
    lines = [f"{row['pair']} — seeds {row['seeds']}"]
    for key in ("a", "b"):
        lines.append(f"  {row[key]}: fp32 {_mean(row[key + '_fp32'])}, int8 {_mean(row[key + '_int8'])}, "
                     f"int8 − fp32 {_drop(row, key)} points; {row[key + '_quant']}")
    if "latency" in row:
        lat = row["latency"]
        lines.append(f"  latency ratios: int8/fp32 {row['a']} {_ratio(lat, 'A int8/fp32')}, {row['b']} "
                     f"{_ratio(lat, 'B int8/fp32')}; B/A fp32 {_ratio(lat, 'B/A fp32')}, int8 {_ratio(lat, 'B/A int8')}")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]], settings: str) -> str:
    head = ["model", "checkpoints", "seeds", "fp32 top-1 %", "int8 top-1 %", "int8 − fp32 (points)",
            "int8 / fp32 latency",
            "vs the pair's first model (int8 latency)"]
    out = ["<!-- generated by benchmarks/int8_deploy.py --markdown; do not edit -->", "",
           f"Settings: {settings}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "missing" in row:
            out.append(f"| {row['a']} / {row['b']} | — | — | {row['missing']} | | | | |")
            continue
        lat = row.get("latency")
        for key, tag in (("a", "A"), ("b", "B")):
            cells = [f"`{row[key]}`", row.get("source", "reproduction runs"), str(len(row["seeds"])),
                     _mean(row[key + "_fp32"]), _mean(row[key + "_int8"]),
                     _drop(row, key), _ratio(lat, f"{tag} int8/fp32") if lat else "not measured",
                     "1" if key == "a" else (_ratio(lat, "B/A int8") if lat else "not measured")]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="folder of the training runs (checkpoints)")
    p.add_argument("--records", required=True, help="folder of the run records")
    p.add_argument("--data-root", required=True, help="folder holding cifar10-jpeg")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calibration-images", type=int, default=256)
    p.add_argument("--no-latency", action="store_true", help="accuracy only (e.g. while a training run is active)")
    p.add_argument("--reuse-accuracy", default=None, metavar="JSON",
                   help="take the accuracies of pairs with the same seeds from an earlier --json output")
    p.add_argument("--compare", nargs="*", default=[], metavar="DIR",
                   help="leannets compare output folders: checkpoints of a pair no reproduction run trained")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None, help="write the table as a generated markdown file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args)
    latency = "latency not measured" if args.no_latency else \
        f"batch 1 latency over {args.rounds} interleaved rounds"
    settings = (f"ONNX Runtime, CPU, {args.threads} threads, {latency}; "
                f"int8 calibrated on {args.calibration_images} evenly spaced CIFAR-10 training images; top-1 on the "
                "10,000 test images, mean over seeds (95% CI)")
    if args.json:
        atomic_write_json(args.json, {"settings": settings, "machine": machine(), "rows": rows})
    if args.markdown:
        atomic_write_text(args.markdown, markdown(rows, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
