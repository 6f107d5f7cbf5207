"""Rules on the source tree itself: keycrew modules are imported at module level only (the CLI's
lazy imports aside), and every top-level package sits in the import-linter layers contract."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "keycrew"
# The CLI imports lazily so that `keycrew --help` does not load the whole application.
LAZY_IMPORTS_ALLOWED = {PACKAGE / "cli.py"}
LAYERS_CONTRACT = "layers"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports_keycrew(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        # A relative import stays inside keycrew by definition.
        return node.level > 0 or (node.module or "").split(".")[0] == "keycrew"
    return any(alias.name.split(".")[0] == "keycrew" for alias in node.names)


def function_body_imports(source: str) -> list[tuple[int, str]]:
    """(line, function name) of every keycrew import inside a function or method body."""
    found: dict[int, str] = {}
    # ast.walk goes outside in, so a nested function's name overwrites its enclosing one's.
    for function in ast.walk(ast.parse(source)):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for statement in function.body:
                for node in ast.walk(statement):
                    if isinstance(node, ast.Import | ast.ImportFrom) and _imports_keycrew(node):
                        found[node.lineno] = function.name
    return sorted(found.items())


def test_the_source_tree_is_where_the_tests_look() -> None:
    assert (PACKAGE / "__init__.py").is_file()
    assert len(_modules()) > 50


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from keycrew.errors import NotFound\n", []),
        ("def f():\n    from keycrew.errors import NotFound\n", [(2, "f")]),
        ("def f():\n    import keycrew.errors\n", [(2, "f")]),
        ("class C:\n    async def m(self):\n        from . import x\n", [(3, "m")]),
        ("def f():\n    if True:\n        from keycrew import clock\n", [(3, "f")]),
        ("def f():\n    import json\n", []),
        ("def f():\n    def g():\n        import keycrew\n", [(3, "g")]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from keycrew.context import Ctx\n", []),
    ],
)
def test_the_import_finder_sees_function_bodies_only(source: str, expected: list[tuple[int, str]]) -> None:
    assert function_body_imports(source) == expected


def test_no_keycrew_import_inside_a_function_body() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} in {name}()"
        for path in _modules()
        if path not in LAZY_IMPORTS_ALLOWED
        for line, name in function_body_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "import keycrew modules at module level (or under TYPE_CHECKING)"


def _layered_modules() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == LAYERS_CONTRACT]
    assert len(contracts) == 1, "one layers contract is expected"
    return {name.strip() for layer in contracts[0]["layers"] for name in layer.split("|")}


def _top_level_modules() -> set[str]:
    names = set()
    for entry in PACKAGE.iterdir():
        if entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(f"keycrew.{entry.name}")
        elif entry.suffix == ".py" and entry.stem != "__init__":
            names.add(f"keycrew.{entry.stem}")
    return names


def test_every_top_level_package_is_in_the_layers_contract() -> None:
    missing = _top_level_modules() - _layered_modules()
    assert missing == set(), "add these to the layers contract in pyproject.toml"


def test_the_layers_contract_names_no_module_that_is_gone() -> None:
    assert _layered_modules() - _top_level_modules() == set()
