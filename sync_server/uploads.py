"""Request bodies streamed to a file while they are hashed and counted: an upload is never held in
memory, and one over its limit is refused as it arrives (or at once, from its Content-Length)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import HTTPException, Request


@asynccontextmanager
async def received(request: Request, folder: Path, limit: int, too_large: HTTPException) -> AsyncIterator[tuple]:
    """`async with received(...) as (path, sha256, size)`: the body in a `.part` file under `folder`
    (deleted when the block ends, however it ends; the server deletes leftovers of a crash on start)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
    path = Path(name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                digest.update(chunk)
                out.write(chunk)
        yield path, digest.hexdigest(), size
    finally:
        path.unlink(missing_ok=True)
