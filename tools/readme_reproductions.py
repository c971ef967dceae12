"""Rewrite the README's reproduction bullets from the committed reports (docs/reproductions/*/results.json).

Usage: python tools/readme_reproductions.py   (after ``leannets reproduce all ... --out docs/reproductions``;
tests/docs checks that the README and the reports agree)
"""
from __future__ import annotations

import json
from pathlib import Path

from leannets._io import rewrite_section
from leannets.reproduce.results import format_counts
from leannets.reproduce.spec import list_papers

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"dxnet": "Dense xUnit Networks", "wae": "WAE", "xsepconv": "XSepConv", "multiception": "Depthwise Multiception"}
BEGIN = "<!-- reproductions:begin (generated from docs/reproductions/*/results.json) -->"
END = "<!-- reproductions:end -->"


def bullets() -> list[str]:
    rows = []
    for paper in list_papers():
        doc = json.loads((ROOT / "docs" / "reproductions" / paper / "results.json").read_text(encoding="utf-8"))
        s = doc["summary"]
        rows.append(f"- [{NAMES.get(paper, paper)}](docs/reproductions/{paper}/report.md) ({s['decided trained']} "
                    f"decided trained claims, {doc['cpu_hours']:.2f} CPU-hours: {format_counts(s)})")
    return rows


def main() -> int:
    readme = ROOT / "README.md"
    rewrite_section(readme, BEGIN, END, "\n".join([BEGIN, *bullets(), END]))
    print("\n".join(bullets()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
