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
