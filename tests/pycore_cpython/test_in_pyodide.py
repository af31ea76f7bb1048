"""The shared core tests (tests/pycore/test_*.py), run again inside Pyodide (npm pyodide, Node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT

SHARED = sorted(p.stem for p in (ROOT / "tests" / "pycore").glob("test_*.py"))


@pytest.fixture(scope="session")
def pyodide_report(tmp_path_factory) -> tuple[dict, Path]:
    """Run every shared module once in Pyodide; (results by test id, the host dir mounted at /out)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the README's test command installs Node.js")
    out = tmp_path_factory.mktemp("pyodide-out")
    modules = [f"tests.pycore.{name}" for name in SHARED]
    runner = ROOT / "tests" / "pycore" / "pyodide_runner.mjs"
    result = subprocess.run(
        [node, str(runner), str(ROOT), str(out), *modules], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout), out


@pytest.mark.parametrize("module", SHARED)
def test_shared_module_passes_in_pyodide(module, pyodide_report):
    results, _ = pyodide_report
    mine = {k: v for k, v in results.items() if k.startswith(f"{module}::")}
    assert mine, f"no tests ran from {module}"
    failures = {k: v["traceback"] for k, v in mine.items() if not v["ok"]}
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
