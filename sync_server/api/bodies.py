"""Routes that read their request body themselves (an image, a zip, a text CSV, a model's float32s): how
the OpenAPI schema declares such a body, and the body streamed to a file under the data dir (never held
in memory, refused with a 413 as soon as it passes its limit; sync_server/uploads.py does the streaming).

A route that reads its body raw declares it with `openapi_extra=raw_body(...)`; tests/sync_server/
test_thin_routes.py checks that every such route does."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from fastapi import HTTPException, Request

from ..core.config import Settings
from ..uploads import received


def raw_body(description: str | None = None, *, required: bool | None = None) -> dict:
    """The `openapi_extra` of a route whose body is raw bytes (any Content-Type; application/octet-stream
    in the schema); `required` is left out of the schema unless given (OpenAPI's default: not required)."""
    body: dict = {}
    if required is not None:
        body["required"] = required
    if description is not None:
        body["description"] = description
    body["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    return {"requestBody": body}


def too_large(what: str, limit: int) -> HTTPException:
    """The 413 for a body over `limit` bytes: "Too large: `what` may be at most N MiB."."""
    return HTTPException(413, f"Too large: {what} may be at most {limit / 2**20:g} MiB.")


def received_body(
    request: Request, settings: Settings, limit: int, refusal: str | HTTPException
) -> AbstractAsyncContextManager[tuple]:
    """`async with received_body(request, settings, limit, "an image") as (path, sha256, size)`: the body in
    a `.part` file under the data dir's uploads folder, deleted when the block ends. `refusal` is what the
    413 names (`too_large(refusal, limit)`), or the 413 itself."""
    if isinstance(refusal, str):
        refusal = too_large(refusal, limit)
    return received(request, settings.data_dir / "uploads", limit, refusal)
