"""A job made of a request's body (POST /api/jobs/upload, POST /api/batches): the quota first, the body
streamed to a file (sync_server/api/bodies.py), checked, stored in the jobs area of the blob store, and a
queued job made of it (jobs/service.py), idempotently."""

from __future__ import annotations

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from .. import quotas
from ..core.db import session_scope
from ..jobs import service, state
from ..jobs.schemas import JobOut
from ..models import IdempotencyKey
from .bodies import received_body


async def create_from_upload(
    request: Request,
    response: Response,
    user_id: str,
    settings,
    what: str,
    check,
    limit: int | None = None,
    **fields,
) -> JobOut:
    """A job on the request's body (a zip): the user's quota first, then the body streamed to a file (at
    most TEJAS_MAX_UPLOAD_BYTES, never held in memory), `check(path)` (raises the 4xx, returns more of the
    job's fields), stored in the jobs area of the blob store, a queued job; the file goes however it ends.
    With an `Idempotency-Key` the same route, options and body again get the job the first request made."""
    key = service.idempotency_key(request)
    limit = min(limit or settings.max_upload_bytes, settings.max_upload_bytes)
    with session_scope(request.app.state.readers) as db:
        known = key is not None and db.get(IdempotencyKey, (user_id, key)) is not None
        if not known:  # a retry of a job already made is answered even at the quota
            service.check_quota(db, user_id, settings)
    async with received_body(request, settings, limit, what) as (path, sha, size):
        print_ = service.fingerprint(request.url.path, fields, sha)

        def earlier() -> JobOut | None:
            with session_scope(request.app.state.readers) as db:
                return service.replayed(db, user_id, key, print_, response)

        if known and (job := await run_in_threadpool(earlier)) is not None:
            return job
        checked = await run_in_threadpool(check, path)
        await run_in_threadpool(service.check_room, request, user_id, settings, size)  # before the bytes are stored
        await run_in_threadpool(request.app.state.jobs_store.put_file, sha, path)

    def create_job() -> JobOut:
        with session_scope(request.app.state.sessions) as db:
            if (job := service.replayed(db, user_id, key, print_, response)) is not None:
                return job
            return service.create(
                request,
                db,
                user_id,
                idempotency=(key, print_, response) if key else None,
                project_id=None,
                source="upload",
                upload_sha256=sha,
                upload_bytes=size,
                **fields,
                **checked,
            )

    try:
        return await run_in_threadpool(create_job)
    except quotas.QuotaExceeded:  # another request took the room meanwhile: its bytes go unless a job uses them
        await run_in_threadpool(
            state.delete_unused_upload, request.app.state.sessions, request.app.state.jobs_store, sha
        )
        raise
