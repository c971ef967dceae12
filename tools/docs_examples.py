"""Rewrite the generated ``leannets compare`` sections of the docs from the committed runs' results.

A section is ``<!-- compare-example:begin RESULTS -->`` … ``<!-- compare-example:end -->``, RESULTS being a
``results.json`` written by ``leannets compare`` and committed under ``docs/examples/`` (the report's summary is
rendered from it by :func:`leannets.analysis.compare.format_summary`). tests/docs checks that the docs and the
committed results agree.

Usage: python tools/docs_examples.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from leannets._io import atomic_write_text, replace_section
from leannets.analysis.compare import format_summary

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"<!-- compare-example:begin (?P<path>\S+) -->")
END = "<!-- compare-example:end -->"


def render(path: str) -> str:
    """The section for the results at ``path`` (relative to the repository root)."""
    results = json.loads((ROOT / path).read_text(encoding="utf-8"))
    return f"<!-- compare-example:begin {path} -->\n{format_summary(results)}\n{END}"


def rewrite(text: str, where: str = "text") -> str:
    for path in BEGIN.findall(text):
        text = replace_section(text, f"<!-- compare-example:begin {path} -->", END, render(path), where)
    return text


def main() -> int:
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        missing = [path for path in BEGIN.findall(text) if not (ROOT / path).is_file()]
        if missing:
            print(f"error: {page.relative_to(ROOT)}: a compare-example section names {missing[0]}, which does not "
                  "exist (commit the run's results.json there)", file=sys.stderr)
            return 2
        new = rewrite(text, str(page.relative_to(ROOT)))
        if new != text:
            atomic_write_text(page, new)
            print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
