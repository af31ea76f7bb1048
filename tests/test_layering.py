"""Imports go one way: the `tejas` command (tejas_cli) -> the server (sync_server) -> the torch/ONNX layer
(tejas_ml) -> the stdlib core (tejas).

The core (pwa/py/tejas) also runs in the browser, so it imports the standard library and itself only:
never the layers above, not even lazily inside a function. The ML layer imports none of the server's
libraries, so `tejas export/train/predict` need only the [ml] extra; the server's API modules import no
torch; and no package has an import cycle, not even one hidden in a function-level import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

CORE = ROOT / "pwa" / "py" / "tejas"
PACKAGES = {
    "tejas": CORE,
    "tejas_ml": ROOT / "tejas_ml",
    "sync_server": ROOT / "sync_server",
    "tejas_cli": ROOT / "tejas_cli",
}
LAYERS = ["tejas_cli", "sync_server", "tejas_ml", "tejas"]  # top to bottom
# What the [server] extra adds: the ML layer must import none of it.
SERVER_LIBRARIES = {
    "fastapi", "starlette", "uvicorn", "pydantic_settings", "sqlalchemy", "alembic", "argon2", "psycopg",
    "boto3", "botocore", "sse_starlette", "celery", "kombu", "redis", "multipart", "python_multipart",
}  # fmt: skip


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in `path`, relative ones resolved, incl. import_module("x").

    `from a import b` yields "a.b" (a module or a name in a; module_of() tells which)."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def module_name(path: Path) -> str:
    for top, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem


def modules() -> dict[str, Path]:
    return {module_name(p): p for folder in PACKAGES.values() for p in sorted(folder.rglob("*.py"))}


def module_of(dotted: str, known: dict[str, Path]) -> str | None:
    """The module of ours that importing `dotted` names (the longest known prefix), or None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def offenders(package: str, allowed) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted(PACKAGES[package].rglob("*.py"))
        for line, name in imported(path)
        if not allowed(name.split(".")[0])
    ]


def test_the_core_imports_only_the_standard_library_and_itself():
    bad = offenders("tejas", lambda m: m == "tejas" or m in sys.stdlib_module_names)
    assert not bad, "the stdlib core must not import these (move the code above the core):\n" + "\n".join(bad)


@pytest.mark.parametrize("package", LAYERS[1:])
def test_no_layer_imports_a_layer_above_it(package):
    above = set(LAYERS[: LAYERS.index(package)])
    bad = offenders(package, lambda m: m not in above)
    assert not bad, f"{package} must not import {sorted(above)}:\n" + "\n".join(bad)


def test_the_ml_layer_imports_none_of_the_servers_libraries():
    bad = offenders("tejas_ml", lambda m: m not in SERVER_LIBRARIES)
    assert not bad, "tejas_ml must run with the [ml] extra alone:\n" + "\n".join(bad)


def test_export_train_and_predict_run_without_the_server_or_its_libraries():
    """The three ML subcommands parse their arguments and import their whole code path with every server
    library (and the server package itself) made unimportable, as in an install of tejas[ml] alone."""
    blocked = sorted(SERVER_LIBRARIES | {"sync_server"})
    script = textwrap.dedent(f"""
        import contextlib, importlib, io, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"{{name}} is not installed", name=name)
        sys.meta_path.insert(0, Block())
        from tejas_cli import main
        for command in ("export", "train", "predict"):
            with contextlib.redirect_stdout(io.StringIO()) as out:
                try:
                    main([command, "--help"])
                except SystemExit as exc:
                    assert exc.code == 0, (command, exc.code)
            assert "usage: tejas " + command in out.getvalue(), out.getvalue()
        for name in ("tejas_ml.export.pipeline", "tejas_ml.training.run", "tejas_ml.training.text",
                     "tejas_ml.prediction.batch", "tejas_ml.imaging", "tejas_ml.texts"):
            importlib.import_module(name)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_importing_the_servers_api_imports_no_torch():
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        import sync_server.api.routes as routes
        from sync_server.main import create_app
        for info in pkgutil.iter_modules(routes.__path__):
            importlib.import_module(f"sync_server.api.routes.{info.name}")
        import sync_server.api.deps
        heavy = sorted(m for m in ("torch", "torchvision", "onnx", "transformers") if m in sys.modules)
        print(heavy)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]", result.stdout


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = {module_of(dotted, known) for _, dotted in imported(path)}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_package_has_an_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (function-level imports count):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_scan_sees_lazy_relative_and_dynamic_imports_and_cycles(tmp_path):
    (tmp_path / "m.py").write_text(
        "import json\ndef f():\n    from sync_server.main import serve\n"
        "    import tejas_ml.export.cli\n    importlib.import_module('sync_server.x')\n"
    )
    assert [m for _, m in imported(tmp_path / "m.py")] == [
        "json", "sync_server.main.serve", "tejas_ml.export.cli", "sync_server.x"
    ]  # fmt: skip
    relative = ROOT / "tejas_ml" / "training" / "text_data.py"
    assert any(name.startswith("tejas_ml.texts.") for _, name in imported(relative))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
