"""Plain checks of the codebase's shape (issue #21): modules of one job, no reach-ins.

- no module of the package imports another module's private (``_name``) names:
  what is shared has a public name and a docstring;
- no module is longer than 700 lines;
- every module has a docstring saying what it holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_convcheck"
MODULES = sorted(PACKAGE.rglob("*.py"))
LONGEST = 700


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(path: Path) -> list[str]:
    """``from pytest_convcheck.x import _y`` (or relative) where ``x`` is another module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = (
                    here.split(".")[: -node.level]
                    if path.name != "__init__.py"
                    else here.split(".")[: len(here.split(".")) - node.level + 1]
                )
                source = ".".join([*base, source] if source else base)
            if not source.startswith("pytest_convcheck") or source == here:
                continue
            found += [
                f"{here}: from {source} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 20


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    assert _private_imports(path) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short_and_say_what_they_hold(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= LONGEST, f"{path.name}: split it along its seams"
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
