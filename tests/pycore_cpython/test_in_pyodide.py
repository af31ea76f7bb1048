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


def test_browser_package_zip_imports_in_pyodide(tmp_path):
    """pwa/vendor/tejas-core.zip (made by tools/vendor.py) is how the browser gets the core: unpacked
    into Pyodide's site-packages, it imports and reads a dataset zip."""
    import zipfile

    from ..pycore.images_for_tests import png

    core = ROOT / "pwa" / "vendor" / "tejas-core.zip"
    assert core.is_file(), "run tools/vendor.py (the README's commands do)"
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        archive.writestr("cat/a.png", png(seed=1))
        archive.writestr("dog/b.png", png(seed=2))
    script = f"""
import {{ loadPyodide }} from {json.dumps(str(ROOT / "node_modules/pyodide/pyodide.mjs"))};
import {{ readFileSync }} from 'node:fs';
const py = await loadPyodide();
// unpackArchive wants a Uint8Array/ArrayBuffer, not a Node Buffer ("Unknown typed array type 'Buffer'")
const sitePackages = py.runPython('import site; site.getsitepackages()[0]');
py.unpackArchive(new Uint8Array(readFileSync({json.dumps(str(core))})), 'zip', {{ extractDir: sitePackages }});
py.FS.writeFile('/tmp/d.zip', readFileSync({json.dumps(str(tmp_path / "d.zip"))}));
console.log(py.runPython(`
import tejas, tejas.dataset
d = tejas.dataset.read_archive('/tmp/d.zip')
f"{{tejas.__file__}} {{d.classes}} {{len(d.samples)}}"
`));
"""
    result = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "site-packages/tejas/__init__.py ['cat', 'dog'] 2" in result.stdout
