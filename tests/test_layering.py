"""Imports go one way: the `tejas` command (tejas_cli) -> the exporter and the server -> the stdlib core.

The core (pwa/py/tejas) also runs in the browser, so it imports the standard library and itself only:
never the server, the exporter or the command, not even lazily inside a function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

CORE = ROOT / "pwa" / "py" / "tejas"
PACKAGES = {"tejas": CORE, "tejas_export": ROOT / "tools" / "tejas_export", "sync_server": ROOT / "sync_server"}


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in `path`, incl. importlib.import_module("x")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def offenders(package: Path, allowed) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sorted(package.rglob("*.py"))
        for line, module in imported(path)
        if not allowed(module)
    ]


def test_the_core_imports_only_the_standard_library_and_itself():
    bad = offenders(CORE, lambda m: m == "tejas" or m in sys.stdlib_module_names)
    assert not bad, "the stdlib core must not import these (move the code above the core):\n" + "\n".join(bad)


@pytest.mark.parametrize("package", ["tejas_export", "sync_server"])
def test_nothing_below_the_command_imports_it(package):
    assert not offenders(PACKAGES[package], lambda m: m != "tejas_cli")


def test_the_scan_sees_lazy_and_dynamic_imports(tmp_path):
    (tmp_path / "m.py").write_text(
        "import json\ndef f():\n    from sync_server.main import serve\n"
        "    import tejas_export.cli\n    importlib.import_module('sync_server.x')\n"
    )
    assert [m for _, m in imported(tmp_path / "m.py")] == ["json", "sync_server", "tejas_export", "sync_server"]
