"""Packaging metadata: an SPDX license expression (PEP 639), classifiers, the py.typed marker, declared extras."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_declares_license_classifiers_typing_and_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    meta = project["project"]
    assert meta["license"] == "Apache-2.0"  # a PEP 639 expression, not a table
    assert "Typing :: Typed" in meta["classifiers"]
    assert not any(c.startswith("License ::") for c in meta["classifiers"])  # PEP 639 forbids both
    assert (ROOT / "leannets" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["leannets"]
    # the C kernels are compiled from their source on first use: a wheel must carry it
    assert "layers/_kernels/*.c" in project["tool"]["setuptools"]["package-data"]["leannets"]
    assert "layers/_kernels/*.h" in project["tool"]["setuptools"]["package-data"]["leannets"]
    from leannets.layers.kernels import _SOURCES
    for name in (*_SOURCES, "common.h"):  # every source the build compiles ships with the package
        assert (ROOT / "leannets" / "layers" / "_kernels" / name).is_file(), name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for extra in meta["optional-dependencies"]:
        assert f"`{extra}`" in readme, f"the README does not declare the optional extra {extra!r}"
