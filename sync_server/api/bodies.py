"""Routes that read their request body themselves (an image, a zip, a text CSV, a model's float32s): how
the OpenAPI schema declares such a body, and the body streamed to a file while it is hashed and counted:
an upload is never held in memory, and one over its limit is refused as it arrives (or at once, from its
Content-Length).

A route that reads its body raw declares it with `openapi_extra=raw_body(...)`; tests/sync_server/
test_thin_routes.py checks that every such route does.

Several servers (and workers) may share one data dir. The process receiving an upload holds an exclusive
`flock` on its `.part` file until it is done with it; the kernel drops the lock when that process dies,
however it dies (SIGKILL included). So a `.part` file nobody holds is provably abandoned, and that is all
a starting server removes (core/partials.py): another server's upload in flight is left alone (any server
starting on the same data dir used to delete it)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import HTTPException, Request

from ..core.config import Settings
from ..core.partials import locked_part


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


@asynccontextmanager
async def received(request: Request, folder: Path, limit: int, refusal: HTTPException) -> AsyncIterator[tuple]:
    """`async with received(...) as (path, sha256, size)`: the body in a `.part` file under `folder`
    (deleted when the block ends, however it ends; the server deletes leftovers of a crash on start)."""
    declared = request.headers.get("content-length")
    # ASCII digits only: "²".isdigit() is True but int() refuses it (a 500, when not behind a server that checks)
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise refusal
    fd, path = locked_part(folder)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise refusal
                digest.update(chunk)
                out.write(chunk)
        yield path, digest.hexdigest(), size
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # only now the lock goes: the file is gone before anyone could sweep it
