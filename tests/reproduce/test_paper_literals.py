"""Every paper number in a declaration is read from ``leannets/reference/<paper>.json`` by key: a paper file that
types one in (as a number, or inside a claim text or note) fails here."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from leannets.reproduce import list_papers, load_reference

PAPERS_DIR = Path(__file__).resolve().parents[2] / "leannets" / "reproduce" / "papers"
#: keyword arguments whose numbers are our tolerances or units, never a quoted figure
TOLERANCE_KEYS = {"tol", "rel_tol", "tolerance", "rounding", "unit", "x_scale"}
#: a number in a text with a unit or sign after it: 44%, 3.13×, 15.36 G, 0.86M, 82k, 25 dB
UNIT_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(%|×|x\b|G\b|M\b|k\b|dB)")


def _quoted(paper: str) -> dict[float, str]:
    out = {}
    for key, rv in load_reference(paper).values.items():
        if isinstance(rv.value, (int, float)) and not isinstance(rv.value, bool):
            scaled = rv.unit in ("M", "G") and rv.value != 1  # 3.1 M is also typed as 3.1e6 (1 M is just the unit)
            for scale in (1.0, 1e6, 1e9) if scaled else (1.0,):
                out[round(abs(float(rv.value)) * scale, 9)] = key
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _tolerances(tree: ast.AST) -> set[int]:
    return {id(kw.value) for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords
            if kw.arg in TOLERANCE_KEYS}


def _distinctive(x: float) -> bool:
    """Whether a number is unlikely to match a quoted figure by chance: >= 10, or three significant digits
    (0.5, 0.75 and 2 are widths, kernel sizes and tolerances as often as quoted figures)."""
    digits = f"{abs(x):.6g}".replace(".", "").lstrip("0").rstrip("0") if "." in f"{abs(x):.6g}" else ""
    return abs(x) >= 10 or len(digits) >= 3


def typed_paper_numbers(source: str, quoted: dict[float, str]) -> list[str]:
    """``"line: number (reference key)"`` for every quoted figure typed into ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree) | _tolerances(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skip or isinstance(node.value, bool):
            continue
        if isinstance(node.value, int):
            continue  # integers are epochs, sizes, counts and seeds; quoted figures are floats or texts
        if isinstance(node.value, float):
            numbers = [node.value]
        elif isinstance(node.value, str):
            numbers = [float(m.group(1)) for m in UNIT_NUMBER.finditer(node.value)]
        else:
            continue
        for x in numbers:
            key = quoted.get(round(abs(x), 9))
            if key and _distinctive(x):
                hits.append((node.lineno, f"{node.lineno}: {x:g} ({key})"))
    return [text for _, text in sorted(hits)]


@pytest.mark.parametrize("paper", list_papers())
def test_no_paper_number_is_typed_into_a_declaration(paper):
    source = (PAPERS_DIR / f"{paper}.py").read_text(encoding="utf-8")
    assert typed_paper_numbers(source, _quoted(paper)) == []


def test_the_scan_finds_typed_numbers_and_spares_tolerances_and_docstrings():
    quoted = {32.48: "table5.average.param_diff", 3.1e6: "fig6.prosr_l.params", 0.5: "x.acc_gain", 3.13: "speedup"}
    source = ('"""Saves 32.48% on average."""\n'
              'a = Claim("Multiception reduces parameters by 32.48% on average")\n'
              'b = MatchesValue(fn=lambda r: 3.1e6 / r, tol=0.5, unit=1e6)\n'
              'c = AtLeast("runs 3.13× faster", expected=3.13)\n')
    assert typed_paper_numbers(source, quoted) == ["2: 32.48 (table5.average.param_diff)",
                                                   "3: 3.1e+06 (fig6.prosr_l.params)", "4: 3.13 (speedup)",
                                                   "4: 3.13 (speedup)"]
