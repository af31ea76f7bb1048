"""The testing harness sits below both its users: bench/ imports testkit/ and never tests/; testkit/ imports
neither tests/ nor bench/ (so a benchmark runs without the test suite's fixtures, and the harness stays
the one home of what both share). Imports inside functions count, as do relative ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from testkit.server import ROOT

# folder -> the top-level packages its modules must not import
RULES = {"bench": {"tests"}, "testkit": {"tests", "bench"}}


def imported_packages(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in `path`, relative ones resolved against `root`."""
    package = path.relative_to(root).parent.parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                dotted = [*base, *(node.module.split(".") if node.module else [])]
            else:
                dotted = (node.module or "").split(".")
            found.append((node.lineno, dotted[0] if dotted else ""))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def violations(folder: str, root: Path = ROOT) -> list[str]:
    forbidden = RULES[folder]
    return [
        f"{path.relative_to(root)}:{line} imports {top}"
        for path in sorted((root / folder).rglob("*.py"))
        for line, top in imported_packages(path, root)
        if top in forbidden
    ]


@pytest.mark.parametrize("folder", sorted(RULES))
def test_the_harness_and_the_benchmarks_never_import_the_tests(folder):
    assert list((ROOT / folder).rglob("*.py")), f"{folder}/ has no modules: the scan would prove nothing"
    assert violations(folder) == []


def test_the_scan_finds_every_kind_of_import(tmp_path):
    """The scan itself: absolute, relative, function-level and import_module() imports of tests/ are found."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "planted.py").write_text(
        "import tests.services\n"
        "from tests.conftest import Server\n"
        "def f():\n"
        "    from ..tests import services\n"
        "    import importlib; importlib.import_module('tests.pycore')\n"
        "from testkit.server import Server\n"
    )
    found = violations("bench", tmp_path)
    assert found == [f"bench/planted.py:{line} imports tests" for line in (1, 2, 4, 5)]
