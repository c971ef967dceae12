"""train.allocator: keep: freed host memory is served again without fresh pages; the trainer applies it and says so."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from leannets.engine import train
from leannets.engine.allocator import ALLOCATORS, allocator_state
from leannets.engine.recipe import load_recipe

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
TINY = {"model": {"name": "resnet20_standard"}, "data": {"name": "digits", "limit_train": 32, "limit_eval": 16,
                                                          "batch_size": 16},
        "train": {"epochs": 1, "device": "cpu", "progress": False, "amp": "off"}}

# where glibc serves a 64 MiB tensor (above its largest dynamic mmap threshold) and where it goes when freed, in MiB
# (mallinfo2: arena = heap, hblkhd = mmapped blocks, fordblks = free heap); the printed state last
PLACEMENT = """
import ctypes, json, sys, torch
from leannets.engine.allocator import allocator_state, keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def info():
    i = libc.mallinfo2()
    return {k: getattr(i, k) >> 20 for k in ("arena", "hblkhd", "fordblks")}
before = info()
t = torch.ones(16 << 20)
alive = info()
del t
print(json.dumps([before, alive, info(), allocator_state()]))
"""


def _placement(mode: str) -> tuple[dict, dict, dict, str]:
    out = subprocess.run([sys.executable, "-c", PLACEMENT, mode], capture_output=True, text=True, check=True,
                         timeout=120)
    before, alive, freed, state = json.loads(out.stdout.strip().splitlines()[-1])
    return before, alive, freed, state


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (elsewhere it does nothing)")
def test_kept_memory_is_served_from_the_heap_and_stays_there():
    """By default a 64 MiB block is a fresh mapping, unmapped when freed (its pages faulted in again on every use);
    kept, it comes from the heap and stays there, free, for the next step. (Page faults themselves are not counted
    here: a kernel's proactive reclaim may take idle pages back under load; benchmarks/allocator.py counts them.)"""
    before, alive, freed, state = _placement("system")
    assert state == "system" and alive["hblkhd"] - before["hblkhd"] >= 64 and freed["hblkhd"] < alive["hblkhd"]
    before, alive, freed, state = _placement("keep")
    assert state == "keep" and alive["hblkhd"] == before["hblkhd"] and alive["arena"] - before["arena"] >= 64
    assert freed["arena"] == alive["arena"] and freed["fordblks"] - alive["fordblks"] >= 64


def test_trainer_applies_the_recipe_choice_and_reports_it(tmp_path):
    result = train(dict(TINY), out_dir=tmp_path / "run")
    assert result["allocator"] == allocator_state()
    assert result["allocator"] == ("keep" if GLIBC else "system")
    with pytest.raises(ValueError, match=r"train.allocator.*\['keep', 'system'\]"):
        load_recipe(TINY, {"train.allocator": "jemalloc"})
    assert list(ALLOCATORS) == ["keep", "system"]


def test_records_name_the_allocator_but_their_key_ignores_it():
    from leannets.reproduce.records import identity, make_record

    resolved = load_recipe("multiception_cifar10_resnet20_standard", {"train.device": "cpu"})
    system = load_recipe("multiception_cifar10_resnet20_standard", {"train.device": "cpu", "train.allocator": "system"})
    assert identity(resolved) == identity(system)  # the same run: the allocator changes minutes, not results
    record = make_record(resolved, {"amp": "off", "device": "cpu", "allocator": "keep"}, "r", 1)
    assert record["machine"]["allocator"] == "keep"
