"""Every import points down the layer order: config → layers → models → data → engine → analysis →
reproduce → commands/cli (the layer-0 modules ``_io``, ``_log``, ``config``, ``registry`` and ``reference`` below all)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "leannets"
ORDER = ["base", "layers", "models", "data", "engine", "analysis", "reproduce", "commands"]
BASE = {"_io", "_log", "config", "registry", "reference"}


def _layer(module: str) -> int | None:
    """Layer index of a ``leannets.*`` module (``None`` for other packages and the top-level package)."""
    parts = module.split(".")
    if parts[0] != "leannets" or len(parts) == 1:
        return None
    top = parts[1]
    if top in BASE:
        return 0
    if top == "cli":
        return ORDER.index("commands")
    return ORDER.index(top) if top in ORDER else None


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package_root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in ``path``, relative ones resolved."""
    module = _module_name(path, package_root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """``"file:line: a [layer] imports b [layer]"`` for every import that points up the layer order."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        me = _layer(_module_name(path, package))
        if me is None:
            continue
        for line, target in _imports(path, package):
            theirs = _layer(target)
            if theirs is not None and theirs > me:
                bad.append(f"{path.relative_to(package.parent)}:{line}: {ORDER[me]} imports {target} ({ORDER[theirs]})")
            elif target == "leannets" and me < ORDER.index("commands"):
                bad.append(f"{path.relative_to(package.parent)}:{line}: imports the top-level package")
    return bad


def test_no_module_imports_upward():
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "leannets"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "reader.py").write_text("from leannets.engine.recipe import Field\nfrom ..layers import x\n")
    (pkg / "engine").mkdir()
    (pkg / "engine" / "task.py").write_text("from leannets.config import Field\nfrom ..commands._common import y\n")
    bad = upward_imports(pkg)
    assert len(bad) == 2
    assert "leannets/data/reader.py:1: data imports leannets.engine.recipe (engine)" in bad
    assert "leannets/engine/task.py:2: engine imports leannets.commands._common (commands)" in bad


@pytest.mark.parametrize("module", ["leannets.cli", "leannets.commands.train"])
def test_only_commands_and_cli_are_the_top(module):
    assert _layer(module) == len(ORDER) - 1


def import_cycles(layer: str, package: Path = PACKAGE) -> list[list[str]]:
    """Import cycles among the modules of one layer (``leannets.<layer>``), every import counted (also those
    under ``TYPE_CHECKING`` and inside functions): each as the list of modules around it."""
    prefix = f"leannets.{layer}"
    graph: dict[str, set[str]] = {}
    for path in sorted((package / layer).rglob("*.py")):
        me = _module_name(path, package)
        graph[me] = set()
        for _, target in _imports(path, package):
            while target.startswith(prefix) and target != me:
                if (package.parent / (target.replace(".", "/") + ".py")).is_file() or \
                        (package.parent / target.replace(".", "/") / "__init__.py").is_file():
                    graph[me].add(target)
                    break
                target = target.rpartition(".")[0]
    cycles, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            if not (nxt == prefix or node.startswith(nxt + ".")):  # a package's __init__ is not a cycle
                visit(nxt, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return cycles


@pytest.mark.parametrize("layer", ["reproduce", "models"])
def test_no_import_cycle_inside_a_layer(layer):
    assert import_cycles(layer) == []


def test_the_cycle_check_catches_a_type_checking_cycle(tmp_path):
    pkg = tmp_path / "leannets" / "reproduce"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "spec.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runner import Context\n")
    (pkg / "runner.py").write_text("from .spec import Experiment\n")
    assert import_cycles("reproduce", tmp_path / "leannets") == [
        ["leannets.reproduce.runner", "leannets.reproduce.spec", "leannets.reproduce.runner"]]
