"""Request-body limits, enforced while the body arrives: its size (a client cannot make the server buffer
more than the limit, whatever Content-Length says) and its pace (a body that stops arriving is dropped)."""

from __future__ import annotations

import asyncio
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


class _BodyStalled(HTTPException):
    """Raised from `receive` when the body stops arriving (an HTTPException, so FastAPI lets it through)."""


class BodyTimeout:
    """408 and a closed connection for a request whose body stops arriving: no piece of it for `seconds`
    (TEJAS_BODY_TIMEOUT_SECONDS). uvicorn waits for a body forever, so a client that sends headers and a
    Content-Length and then nothing would hold an upload slot, a temporary file and a thread. The timeout
    is per piece, not for the whole body: a slow upload that keeps coming is not cut."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app, self.seconds = app, seconds
        self.message = f"The request body stopped arriving (nothing for {seconds:g} s); send it again."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        started = False
        stalled = False

        async def timed_receive() -> Message:
            nonlocal body_done, stalled
            if body_done:  # after the body: waiting for a disconnect (streams) may take as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                stalled = True
                raise _BodyStalled(408, self.message) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if stalled:  # the rest of the body may still come: this connection carries no next request
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except _BodyStalled:
            if started:
                raise
            body = json.dumps({"detail": self.message}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
