"""The papers' own figures, stored as data in ``leannets/reference/<paper>.json``.

Every value there is *quoted* from the paper text with its table/figure reference; nothing in
these files is computed by leannets. Reports print them in columns labelled "paper (quoted)".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["RefValue", "Reference", "load_reference", "list_references"]


@dataclass(frozen=True)
class RefValue:
    """One quoted figure."""

    key: str
    ref: str
    description: str
    value: Any
    unit: str = ""
    note: str = ""
    rounding: float | None = None

    def printed_tolerance(self) -> float:
        """Half a unit of the last printed digit (or the stored ``rounding``): 0.8 → 0.05."""
        if self.rounding is not None:
            return float(self.rounding)
        text = repr(self.value)
        decimals = len(text.split(".")[1]) if "." in text else 0
        return 0.5 * 10.0 ** -decimals

    def cite(self) -> str:
        return f"{self.value}{'' if self.unit in ('', 'ratio', 'x') else ' ' + self.unit}" \
               f"{'×' if self.unit == 'x' else ''} ({self.ref})"


@dataclass(frozen=True)
class Reference:
    """All quoted figures of one paper."""

    paper: str
    title: str
    authors: str
    source_text: str
    notice: str
    values: dict[str, RefValue]
    not_in_text: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, key: str) -> RefValue:
        if key not in self.values:
            raise KeyError(f"reference {self.paper}.json has no value {key!r}")
        return self.values[key]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def value(self, key: str) -> Any:
        return self[key].value


def list_references() -> list[str]:
    """Papers with a reference file."""
    files = resources.files("leannets.reference")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=None)
def load_reference(paper: str) -> Reference:
    """Load ``leannets/reference/<paper>.json`` (package data)."""
    path = resources.files("leannets.reference") / f"{paper}.json"
    if not path.is_file():
        raise ValueError(f"no reference values for paper {paper!r}; available: {', '.join(list_references())}")
    data = json.loads(path.read_text(encoding="utf-8"))
    values: dict[str, RefValue] = {}
    for item in data["values"]:
        rv = RefValue(key=item["key"], ref=item["ref"], description=item["description"], value=item["value"],
                      unit=item.get("unit", ""), note=item.get("note", ""), rounding=item.get("rounding"))
        if rv.key in values:
            raise ValueError(f"reference {paper}.json: duplicate key {rv.key!r}")
        values[rv.key] = rv
    return Reference(paper=data["paper"], title=data["title"], authors=data.get("authors", ""),
                     source_text=data.get("source_text", ""), notice=data["notice"], values=values,
                     not_in_text=tuple(data.get("not_in_text", ())))
