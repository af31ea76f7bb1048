"""Response headers every file needs: cross-origin isolation (WASM threads) and sane caching."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# SharedArrayBuffer, and so onnxruntime-web's wasm threads, exists only in cross-origin isolated pages.
ISOLATION_HEADERS = {
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-embedder-policy": b"require-corp",
    b"cross-origin-resource-policy": b"same-origin",
}


class IsolationHeaders:
    """ASGI middleware adding ISOLATION_HEADERS, and `Cache-Control: no-store` on everything under /api/
    (user data: nothing of it is kept in a browser's HTTP cache or a proxy), `no-cache` on the app's own
    files unless they say otherwise (the service worker does the caching; the server always revalidates
    so an update is seen)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ISOLATION_HEADERS]
                headers += list(ISOLATION_HEADERS.items())
                if scope["path"].startswith("/api/"):
                    # user data (blobs, job files, predictions, accounts): never kept by a browser or a proxy
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                elif not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
