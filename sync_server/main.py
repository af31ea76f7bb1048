"""The FastAPI app: wires routes, static files and headers together; nothing else lives here."""

from __future__ import annotations

import mimetypes

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .api.routes import health
from .headers import IsolationHeaders
from .settings import Settings

# Browsers refuse to compile wasm streamed with the wrong type, and ES modules need a JS type.
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/manifest+json", ".webmanifest")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Tejas", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.settings = settings
    app.include_router(health.router)
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/artifacts", StaticFiles(directory=settings.artifacts_dir), name="artifacts")
    app.mount("/", StaticFiles(directory=settings.pwa_dir, html=True), name="pwa")
    app.add_middleware(IsolationHeaders)
    return app


def serve(host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    print(f"Tejas on http://{host}:{port}  (Ctrl+C stops)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    return 0
