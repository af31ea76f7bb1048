"""Request bodies streamed to a file while they are hashed and counted: an upload is never held in
memory, and one over its limit is refused as it arrives (or at once, from its Content-Length).

Several servers (and workers) may share one data dir. The process receiving an upload holds an exclusive
`flock` on its `.part` file until it is done with it; the kernel drops the lock when that process dies,
however it dies (SIGKILL included). So a `.part` file nobody holds is provably abandoned, and that is all
a starting server removes (core/partials.py): another server's upload in flight is left alone (any server
starting on the same data dir used to delete it)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import HTTPException, Request

from .core.partials import locked_part


@asynccontextmanager
async def received(request: Request, folder: Path, limit: int, too_large: HTTPException) -> AsyncIterator[tuple]:
    """`async with received(...) as (path, sha256, size)`: the body in a `.part` file under `folder`
    (deleted when the block ends, however it ends; the server deletes leftovers of a crash on start)."""
    declared = request.headers.get("content-length")
    # ASCII digits only: "²".isdigit() is True but int() refuses it (a 500, when not behind a server that checks)
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    fd, path = locked_part(folder)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                digest.update(chunk)
                out.write(chunk)
        yield path, digest.hexdigest(), size
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # only now the lock goes: the file is gone before anyone could sweep it
