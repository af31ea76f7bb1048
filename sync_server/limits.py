"""Request-body size limits, enforced while the body arrives (a client cannot make the server buffer
more than the limit, whatever Content-Length says)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(HTTPException):
    """Raised from `receive`; FastAPI re-raises HTTPExceptions met while reading a body (others become 400)."""


class BodyLimit:
    """413 for an /api request body over `limit` bytes; blob uploads (`PUT /api/blobs/…`) training zips
    (`POST /api/jobs/upload`), zips to predict (`POST /api/batches`) and stream images (`POST
    /api/streams/{name}/images`) check their own."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit
        self.message = f"Request too large: at most {limit / 2**20:g} MiB per request (send fewer changes per push)."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith("/api/")
            or (scope["method"] == "PUT" and path.startswith("/api/blobs/"))
            or (scope["method"] == "POST" and path in ("/api/jobs/upload", "/api/batches"))
            or (scope["method"] == "POST" and path.startswith("/api/streams/") and path.endswith("/images"))
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(413, self.message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self.message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
