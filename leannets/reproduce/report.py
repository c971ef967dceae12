"""``report.md`` + ``results.json``: our figures beside the paper's (quoted) figures, verdicts, plots."""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from leannets._io import atomic_write_json, atomic_write_text

from .claims import fmt_num
from .results import STATUSES, ExperimentResult, format_counts

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context

__all__ = ["write_report", "render_report", "METRICS", "markdown_table"]

# metric -> (column title, divisor, digits)
METRICS: dict[str, tuple[str, float, int]] = {
    "params": ("params (M)", 1e6, 4),
    "macs": ("MACs (M)", 1e6, 4),
    "train_params": ("trained model params (M)", 1e6, 4),
    "train_macs": ("trained model MACs (M)", 1e6, 4),
    "error": ("top-1 error (%)", 1.0, 4),
    "acc1": ("top-1 acc. (%)", 1.0, 4),
    "top5_error": ("top-5 error (%)", 1.0, 4),
    "psnr": ("PSNR (dB)", 1.0, 4),
    "ssim": ("SSIM", 1.0, 4),
    "loss": ("eval loss", 1.0, 4),
}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return fmt_num(v)
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_columns(res: ExperimentResult, refs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Columns worth showing: cost figures, the trained model's cost when it differs from the
    paper's model, the task metric(s), anything referenced by the paper, and extra metrics an
    analysis asked for (``extras["metric_columns"]``)."""
    def measured(name: str) -> bool:
        return any(isinstance(r.metrics.get(name), (int, float)) for r in res.rows)

    def referenced(name: str) -> bool:
        return any(name in refs.get(r.key, {}) for r in res.rows)

    substituted = any(r.trained_model and r.trained_model != r.model for r in res.rows)
    wanted = ["params", "macs"] + (["train_params", "train_macs"] if substituted else [])
    task = ["error"] if (referenced("error") or not measured("acc1")) else ["acc1"]
    wanted += task + ["top5_error", "psnr", "ssim"]
    cols = [c for c in wanted if (measured(c) and (c not in ("top5_error",) or referenced(c))) or referenced(c)]
    cols += [c for c in res.extras.get("metric_columns", []) if c not in cols]
    return cols


_UNIT = {"G": 1e9, "M": 1e6, "K": 1e3, "k": 1e3}


def metric_format(name: str) -> tuple[str, float, int]:
    """(column title, divisor, significant digits); MAC counts are shown in millions."""
    if name in METRICS:
        return METRICS[name]
    if name.endswith("macs"):
        return f"{name} (M)", 1e6, 5
    return name, 1.0, 4


def _paper_value(name: str, ref: Any) -> str:
    """A quoted value converted to the column's unit (e.g. 15.36 G shown as 15360 in a (M) column)."""
    _, div, _ = metric_format(name)
    value = ref.value
    if isinstance(value, (int, float)) and ref.unit in _UNIT and div not in (1.0, _UNIT[ref.unit]):
        value = value * _UNIT[ref.unit] / div
        return fmt_num(value, 5)
    return str(value)


def _fmt_metric(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    title, div, digits = metric_format(name)
    v = value / div
    if name in ("params", "train_params"):
        return f"{v:.4f} ({int(value):,})"
    return fmt_num(v, digits)


def _rows_table(res: ExperimentResult, refs: Mapping[str, Mapping[str, str]], ctx: "Context") -> str:
    cols = _metric_columns(res, refs)
    header = ["row", "model (ours)"]
    for c in cols:
        title = metric_format(c)[0]
        header.append(f"{title} ours")
        if any(c in refs.get(r.key, {}) for r in res.rows):
            header.append(f"{title} paper (quoted)")
    rows = []
    for r in res.rows:
        model = r.model["name"]
        if r.trained_model and r.trained_model != r.model:
            kw = ", ".join(f"{k}={v}" for k, v in sorted(r.trained_model.get("kwargs", {}).items()))
            model += f"; trained: {r.trained_model['name']}" + (f"({kw})" if kw else "")
        line: list[Any] = [r.label, model]
        for c in cols:
            line.append(_fmt_metric(c, r.metrics.get(c)))
            if any(c in refs.get(x.key, {}) for x in res.rows):
                key = refs.get(r.key, {}).get(c)
                line.append(_paper_value(c, ctx.reference[key]) if key else "—")
        rows.append(line)
    return markdown_table(header, rows)


def _verdict_table(res: ExperimentResult) -> str:
    rows = [[v.text, v.ref, v.ours or "—", v.paper or "—", f"**{v.label()}**"] for v in res.verdicts]
    return markdown_table(["claim", "where", "ours", "paper (quoted)", "verdict"], rows)


def _extra_tables(res: ExperimentResult) -> list[str]:
    out = []
    for t in res.extras.get("tables", []):
        out.append(f"**{t['title']}**\n\n" + markdown_table(t["columns"], t["rows"]))
        if t.get("note"):
            out.append(t["note"])
    return out


def render_report(doc: Mapping[str, Any], results: Sequence[ExperimentResult], ctx: "Context") -> str:
    s = doc["summary"]
    env = doc["environment"]
    lines = [
        f"# Reproduction of *{doc['title']}* — `{doc['scale']}` scale", "",
        f"Command: `{doc['command'] or 'leannets reproduce ' + doc['paper'] + ' --scale ' + doc['scale']}`  ",
        f"Seeds {', '.join(map(str, doc.get('seeds') or [doc['seed']]))} · torch {env['torch']} · "
        f"{env['threads']} CPU threads" + (f" · {env['accelerator']}" if env.get("accelerator") else "")
        + f" · {doc['seconds'] / 60:.1f} min", "",
        f"**Verdicts: {format_counts(s)}.**", "",
        f"> Columns marked *paper (quoted)* are copied from the paper text "
        f"(`leannets/reference/{doc['paper']}.json`, with table/figure references); every other number was "
        f"computed by this run. {ctx.reference.notice}", "",
    ]
    if doc["scale"] == "smoke":
        lines += ["> **Smoke scale**: tiny models and a few steps on embedded data. Trained numbers only show that "
                  "the pipeline runs; training claims are not checked. Parameter/MAC claims use the full-size models "
                  "and are checked.", ""]
    elif doc["scale"] in ("cpu", "gpu"):
        lines += [f"> **{doc['scale'].upper()} scale**: the whole CIFAR-10 (every accuracy on its 10,000 test images) "
                  "and short schedules chosen from pilot runs (see each section); what cannot be trained to the "
                  "floor in the budget (75% top-1 on CIFAR-10, 25 dB for σ = 50 denoising) is not trained and its "
                  f"claims read \"not checked (budget)\". Every trained row is trained with "
                  f"{len(doc.get('seeds') or [0])} seeds; relative claims are judged on the 95% interval of the "
                  "paired difference over seeds (reproduced / contradicted / inconclusive, docs/reproduce.md), only "
                  "when the baseline reaches the floor; absolute accuracies are not comparable with the paper's "
                  "full recipe.", ""]
    lines += ["| table/figure | verdicts |", "|---|---|"]
    for r in results:
        counts = {k: sum(v.status == k for v in r.verdicts) for k in STATUSES}
        lines.append(f"| [{r.ref}](#{_anchor(r)}) {r.title} | {format_counts(counts)} |")
    lines.append("")
    for exp_res in results:
        exp = ctx.paper.experiment(exp_res.name)
        refs = {row.key: dict(row.ref) for row in exp.rows}
        lines += [f"## {exp_res.ref}: {exp_res.title}", f"<a id=\"{_anchor(exp_res)}\"></a>", ""]
        for note in exp_res.notes:
            lines += [note, ""]
        runs = [r.run for r in exp_res.rows if r.run]
        if exp_res.trained and runs:
            recipes = sorted({r.get("recipe_name") for r in runs})
            ov = ", ".join(f"{k}={v}" for k, v in sorted((runs[0].get("overrides") or {}).items())
                           if not k.startswith(("model.", "train.progress", "train.device", "seed")))
            n = next((r.metrics["eval_samples"] for r in exp_res.rows if r.metrics.get("eval_samples")), None)
            lines += [f"Trained with recipe{'s' if len(recipes) > 1 else ''} {', '.join(f'`{r}`' for r in recipes)} "
                      f"and overrides `{ov}` (seed {ctx.seed}); metrics from the final epoch on the test split"
                      + (f" ({n} samples)" if n else "") + "; no schedule or checkpoint selection reads it.", ""]
        if exp_res.rows:
            lines += [_rows_table(exp_res, refs, ctx), ""]
        lines += [t + "\n" for t in _extra_tables(exp_res)]
        for text in exp_res.extras.get("text", []):
            lines += [text, ""]
        if exp_res.verdicts:
            lines += [_verdict_table(exp_res), ""]
        for f in exp_res.files:
            if f.endswith(".png"):
                lines += [f"![{exp_res.ref}]({f})", ""]
            else:
                lines += [f"File: [`{f}`]({f})", ""]
    lines += _runs_section(doc)
    lines += ["## Not in the paper text", "", "Figures whose numbers were lost in the text extraction "
              "(only the qualitative claims are checked):", ""]
    lines += [f"- {t}" for t in ctx.reference.not_in_text] + [""]
    return "\n".join(lines)


def _runs_section(doc: Mapping[str, Any]) -> list[str]:
    """Every training run the report rests on: where it came from, the machine and the minutes it took."""
    runs = doc.get("runs") or []
    if not runs:
        return []
    rows = [[r["run_id"], r["source"], r.get("gpu") or r.get("cpu") or "—", r.get("threads") or "—",
             r.get("amp") or "—", f"{r['minutes']:.1f}", (r.get("commit") or "—")[:12],
             r.get("retrained_because") or ""] for r in runs]
    retrained = sum(bool(r.get("retrained_because")) for r in runs)
    return ["## Training runs", "",
            f"{len(runs)} runs, {doc.get('cpu_hours', 0.0):.2f} CPU-hours"
            + (f" and {doc['gpu_hours']:.2f} GPU-hours" if doc.get("gpu_hours") else "")
            + " of training as recorded (`records/`; a record is reused while its recipe and model still hold)"
            + (f"; {retrained} retrained because their record no longer held." if retrained else "."), "",
            markdown_table(["run", "from", "machine", "threads", "amp", "minutes", "commit", "retrained because"],
                           rows), ""]


def _anchor(res: ExperimentResult) -> str:
    return f"exp-{res.name}"


def write_report(doc: Mapping[str, Any], results: Sequence[ExperimentResult], ctx: "Context") -> None:
    """Write ``results.json`` and ``report.md`` into ``ctx.out_dir`` (atomically)."""
    atomic_write_json(ctx.out_dir / "results.json", clean_json(json.loads(json.dumps(doc, default=_json_default))))
    atomic_write_text(ctx.out_dir / "report.md", render_report(doc, results, ctx))


def clean_json(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by ``None``, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clean_json(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)
