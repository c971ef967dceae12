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

# 5 cycles of allocating, filling and freeing 64 MiB (above glibc's largest dynamic mmap threshold), counted
# after 2 warm-up cycles; prints the minor page faults and the state
CYCLES = """
import json, resource, sys, torch
from leannets.engine.allocator import allocator_state, keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def cycle():
    t = torch.ones(16 << 20)
    del t
cycle(); cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, allocator_state()]))
"""


def _faults(mode: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CYCLES, mode], capture_output=True, text=True, check=True, timeout=120)
    faults, state = json.loads(out.stdout.strip().splitlines()[-1])
    return int(faults), state


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's (elsewhere it does nothing)")
def test_kept_memory_is_reused_without_page_faults():
    system, system_state = _faults("system")
    kept, kept_state = _faults("keep")
    pages = 5 * (64 << 20) // 4096
    assert system_state == "system" and kept_state == "keep"
    # by default each 64 MiB block comes from fresh, zeroed pages (4 KiB ones, or fewer faults where the kernel
    # backs them with transparent huge pages); kept, the freed heap serves them again
    assert kept * 10 < system and kept < pages // 50, {"system": system, "keep": kept}


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
