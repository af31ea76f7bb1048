"""Thin routes (issue 25): a route module holds HTTP only, so it stays small and imports no other route
module (what routes share lives in services or in sync_server/api/); no product module grows past 400
lines; and every route that reads its body raw declares it with the one helper, sync_server/api/bodies.py's
`raw_body`, so the OpenAPI schema says application/octet-stream the same way everywhere."""

from __future__ import annotations

import ast
import inspect
import tempfile
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from sync_server.api.bodies import raw_body
from sync_server.core.config import Settings
from sync_server.main import create_app

from .. import test_layering as layering
from ..conftest import ROOT

ROUTES = ROOT / "sync_server" / "api" / "routes"
ROUTE_LINES = 250
MODULE_LINES = 400
# What a handler does when it reads its body itself (no pydantic body parameter).
READS_RAW = ("request.stream()", "request.body()", "received_body(", "received(", "create_from_upload(")
# Routes known to take raw bytes: the scan must find at least these (it cannot pass by finding none).
RAW_ROUTES = {
    ("PUT", "/api/blobs/{sha256}"),
    ("POST", "/api/streams/{name}/images"),
    ("POST", "/api/jobs/upload"),
    ("POST", "/api/batches"),
}


def route_modules(folder: Path = ROUTES) -> list[Path]:
    return [p for p in sorted(folder.glob("*.py")) if p.name != "__init__.py"]


def route_crossings(folder: Path = ROUTES) -> list[str]:
    """`file:line: imports X` for every import in a route module of another route module (lazy ones too)."""
    known = layering.modules()
    package = layering.module_name(folder / "__init__.py")
    bad = []
    for path in route_modules(folder):
        own = layering.module_name(path)
        for line, name in layering.imported(path):
            target = layering.module_of(name, known) or name
            if target.startswith(package + ".") and target != own:
                bad.append(f"{path.relative_to(folder.parents[2])}:{line}: imports {target}")
    return list(dict.fromkeys(bad))  # `from .jobs import a, b` names the module once


def test_no_route_module_imports_another():
    bad = route_crossings()
    assert not bad, "move what routes share into a service or sync_server/api/:\n" + "\n".join(bad)


def test_the_crossing_scan_sees_plain_relative_and_lazy_imports(tmp_path, monkeypatch):
    routes = tmp_path / "sync_server" / "api" / "routes"
    routes.mkdir(parents=True)
    for folder in (tmp_path / "sync_server", tmp_path / "sync_server" / "api", routes):
        (folder / "__init__.py").write_text("")
    (routes / "a.py").write_text("from .b import x\nfrom ..deps import CurrentUser\n")
    (routes / "b.py").write_text("def f():\n    from sync_server.api.routes import c\n")
    (routes / "c.py").write_text("from . import a\nfrom ...prediction import streams\n")
    monkeypatch.setitem(layering.PACKAGES, "sync_server", tmp_path / "sync_server")
    assert route_crossings(routes) == [
        "sync_server/api/routes/a.py:1: imports sync_server.api.routes.b",
        "sync_server/api/routes/b.py:2: imports sync_server.api.routes.c",
        "sync_server/api/routes/c.py:1: imports sync_server.api.routes.a",
    ]


def product_modules() -> list[Path]:
    python = [p for top in ("sync_server", "tejas_ml", "tejas_cli") for p in (ROOT / top).rglob("*.py")]
    python += (ROOT / "pwa" / "py" / "tejas").rglob("*.py")
    scripts = [p for p in (ROOT / "pwa").rglob("*.js") if "vendor" not in p.relative_to(ROOT / "pwa").parts]
    return sorted(p for p in [*python, *scripts] if "node_modules" not in p.parts)


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_route_modules_are_small():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in route_modules() if (n := lines(p)) > ROUTE_LINES]
    assert not big, f"route modules over {ROUTE_LINES} lines (move the logic into a service):\n" + "\n".join(big)


def test_no_product_module_is_over_400_lines():
    found = product_modules()
    assert ROOT / "pwa" / "tejas.js" in found and ROOT / "sync_server" / "main.py" in found  # the scan sees both sides
    assert not any("vendor" in p.parts for p in found)
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in found if (n := lines(p)) > MODULE_LINES]
    assert not big, f"product modules over {MODULE_LINES} lines (split them by concern):\n" + "\n".join(big)


@pytest.fixture(scope="module")
def app():
    data = Path(tempfile.mkdtemp(prefix="tejas-thin-routes-"))
    return create_app(Settings(data_dir=data, artifacts_dir=data / "artifacts"))


def api_routes(routes) -> list[APIRoute]:
    """The app's API routes, also inside included routers (FastAPI keeps those whole: `original_router`)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found += api_routes(router.routes)
    return found


def raw_routes(app) -> dict[tuple[str, str], APIRoute]:
    """The routes whose handler reads its body itself, found from the handlers' source."""
    found = {}
    for route in api_routes(app.routes):
        if any(mark in inspect.getsource(route.endpoint) for mark in READS_RAW):
            for method in route.methods:
                found[(method, route.path)] = route
    return found


def test_every_raw_body_route_declares_octet_stream_with_the_helper(app):
    raw = raw_routes(app)
    assert RAW_ROUTES <= raw.keys(), f"the scan missed raw-body routes: {sorted(RAW_ROUTES - raw.keys())}"
    declared = {
        (method, route.path)
        for route in api_routes(app.routes)
        if "requestBody" in (route.openapi_extra or {})
        for method in route.methods
    }
    assert declared == raw.keys(), "a route declaring a raw body must read one, and the other way round"
    schema = app.openapi()["paths"]
    for (method, path), route in sorted(raw.items()):
        body = route.openapi_extra["requestBody"]
        assert route.openapi_extra == raw_body(body.get("description"), required=body.get("required")), path
        assert schema[path][method.lower()]["requestBody"]["content"] == {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
        }, path


def openapi_extras_not_from_the_helper(folder: Path = ROUTES) -> list[str]:
    """`file:line` of every `openapi_extra=` in a route module whose value is not a call of raw_body."""
    bad = []
    for path in route_modules(folder):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "openapi_extra":
                call = node.value
                func = call.func if isinstance(call, ast.Call) else None
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name != "raw_body":
                    bad.append(f"{path.relative_to(folder.parents[2])}:{node.value.lineno}")
    return bad


def test_route_modules_spell_raw_bodies_only_through_the_helper(tmp_path):
    bad = openapi_extras_not_from_the_helper()
    helper = "openapi_extra=raw_body(...) (sync_server/api/bodies.py)"
    assert not bad, f"declare raw bodies with {helper}:\n" + "\n".join(bad)
    routes = tmp_path / "sync_server" / "api" / "routes"
    routes.mkdir(parents=True)
    (routes / "x.py").write_text(
        "@router.put('/a', openapi_extra=raw_body(required=True))\ndef a(): ...\n"
        "@router.put('/b', openapi_extra={'requestBody': {}})\ndef b(): ...\n"
    )
    assert openapi_extras_not_from_the_helper(routes) == ["sync_server/api/routes/x.py:3"]
