"""Atomic writes (one place): content, permissions from the umask, no temp files left, orphan cleanup."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import torch

from leannets._io import (atomic_copy, atomic_save_figure, atomic_write, atomic_write_bytes, atomic_write_json,
                          atomic_write_text, pyplot, remove_orphan_temps, replace_section, rewrite_section)
from leannets.engine.checkpoint import save_checkpoint


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_writer_gives_the_umask_permissions(tmp_path, umask_022):
    fig = pyplot().figure()
    paths = [atomic_write_text(tmp_path / "a.md", "x"), atomic_write_json(tmp_path / "r.json", {"a": 1}),
             atomic_write_bytes(tmp_path / "b.bin", b"\0"), atomic_save_figure(fig, tmp_path / "f.png"),
             save_checkpoint({"w": torch.zeros(2)}, tmp_path / "last.pt")]
    paths.append(atomic_copy(paths[-1], tmp_path / "best.pt"))
    assert {p.name: _mode(p) for p in paths} == {p.name: 0o644 for p in paths}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = atomic_write_text(tmp_path / "report.md", "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_json_writes_objects_with_to_dict_as_dicts(tmp_path):
    class Section:
        def to_dict(self):
            return {"epochs": 3}

    atomic_write_json(tmp_path / "r.json", {"train": Section()})
    assert (tmp_path / "r.json").read_text().replace(" ", "").replace("\n", "") == '{"train":{"epochs":3}}'


def test_orphan_temps_older_than_the_cutoff_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    old = tmp_path / ".last.pt.abc123.tmp"
    nested = tmp_path / "sub" / ".metrics.csv.x.tmp"
    fresh = tmp_path / ".result.json.new.tmp"
    keep = tmp_path / "notes.tmp"  # not a hidden temp of ours
    for p in (old, nested, fresh, keep):
        p.write_text("x")
    past = time.time() - 60
    for p in (old, nested, keep):
        os.utime(p, (past, past))
    removed = remove_orphan_temps(tmp_path, older_than=time.time() - 30)
    assert sorted(removed) == sorted([old, nested])
    assert fresh.exists() and keep.exists() and not old.exists()


def test_replace_section_swaps_only_the_generated_block(tmp_path):
    text = "head\n<!-- a:begin -->\nold\n<!-- a:end -->\ntail <!-- a:end -->\n"
    new = replace_section(text, "<!-- a:begin -->", "<!-- a:end -->", "<!-- a:begin -->\nnew\n<!-- a:end -->", "t")
    assert new == "head\n<!-- a:begin -->\nnew\n<!-- a:end -->\ntail <!-- a:end -->\n"
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    block = "<!-- a:begin -->\nnew\n<!-- a:end -->"
    assert rewrite_section(page, "<!-- a:begin -->", "<!-- a:end -->", block) is True
    assert page.read_text(encoding="utf-8") == new
    assert rewrite_section(page, "<!-- a:begin -->", "<!-- a:end -->", block) is False  # unchanged: not rewritten


@pytest.mark.parametrize("text", ["no markers", "<!-- a:end --> before <!-- a:begin -->", "<!-- a:begin --> only"])
def test_replace_section_names_the_file_when_a_marker_is_missing(text):
    with pytest.raises(ValueError, match=r"page\.md: no generated section between the markers"):
        replace_section(text, "<!-- a:begin -->", "<!-- a:end -->", "x", "page.md")
