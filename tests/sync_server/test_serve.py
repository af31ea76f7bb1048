"""`tejas serve` as a real uvicorn process: the app, the artifacts, cross-origin isolation headers."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
}


def fetch(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def test_app_and_artifacts_served_with_isolation_headers(serve, resnet18_random):
    server = serve(resnet18_random.parent)  # the folder holding "t"
    for path in ("/", "/sw.js", "/app.js", "/artifacts/t/manifest.json"):
        url = server.url + path
        status, headers, body = fetch(url)
        assert status == 200, url
        for key, value in ISOLATION.items():
            assert headers.get(key) == value, (url, key)
        assert body
    status, headers, body = fetch(server.url + "/artifacts/t/backbone.onnx")
    assert status == 200 and len(body) == (resnet18_random / "backbone.onnx").stat().st_size
    assert headers["cross-origin-embedder-policy"] == "require-corp"


def test_content_types_the_browser_insists_on(serve, resnet18_random):
    server = serve(resnet18_random.parent)
    assert fetch(server.url + "/app.js")[1]["content-type"].startswith("text/javascript")
    assert fetch(server.url + "/manifest.webmanifest")[1]["content-type"].startswith("application/manifest+json")
    wasm = fetch(server.url + "/vendor/ort/ort-wasm-simd-threaded.wasm")
    assert wasm[1]["content-type"] == "application/wasm" and wasm[2][:4] == b"\0asm"
    assert fetch(server.url + "/vendor/ort/ort-wasm-simd-threaded.mjs")[1]["content-type"].startswith("text/javascript")


def test_health_lists_artifacts_and_missing_files_are_404(serve, resnet18_random):
    server = serve(resnet18_random.parent)
    status, _, body = fetch(server.url + "/api/health")
    assert status == 200 and b'"artifacts":["t"]' in body
    with pytest.raises(urllib.error.HTTPError) as error:
        fetch(server.url + "/artifacts/t/nothing.onnx")
    assert error.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as error:
        fetch(server.url + "/artifacts/../pyproject.toml")
    assert error.value.code == 404
