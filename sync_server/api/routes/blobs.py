"""Blobs by sha256: which are missing, upload (verified while it streams), download (only by a user
whose live records refer to the blob)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from tejas.images import ImageError, sniff_image
from tejas.limits import DEFAULT_LIMITS
from tejas_ml.texts import MAX_TEXT_BYTES, MAX_TEXT_CHARACTERS, TextError, check_text

from ... import quotas
from ...core.clock import utcnow
from ...core.db import session_scope
from ...models import Blob, Record, UserBlob
from ...schemas import SHA256, BlobOut, MissingIn, MissingOut
from ..bodies import raw_body, received_body
from ..deps import CurrentUser, ReadSessionDep, SettingsDep

router = APIRouter(prefix="/api/blobs", tags=["blobs"])

ShaPath = Annotated[str, Path(pattern=SHA256, description="sha256 of the bytes, lowercase hex")]


@router.post("/missing", response_model=MissingOut)
def missing(body: MissingIn, user: CurrentUser, db: ReadSessionDep) -> MissingOut:
    wanted = list(dict.fromkeys(body.sha256))
    held = set(db.scalars(select(UserBlob.sha256).where(UserBlob.user_id == user.id, UserBlob.sha256.in_(wanted))))
    return MissingOut(missing=[sha for sha in wanted if sha not in held])


def _check_content(kind: str, path: FilePath, size: int) -> None:
    if kind == "image":
        with open(path, "rb") as f:
            data = f.read()
        try:
            sniff_image(data, DEFAULT_LIMITS.max_pixels)
        except ImageError as exc:
            raise HTTPException(400, f"Not accepted as an image: {exc}.") from None
    elif kind == "text":
        with open(path, "rb") as f:
            data = f.read()
        try:
            check_text(data)
        except TextError as exc:
            raise HTTPException(400, f"Not accepted as a text: {exc}.") from None
    elif size == 0 or size % 4:
        raise HTTPException(
            400, f"Model parameters must be whole float32 values ({size} bytes is not a multiple of 4)."
        )


def _keep(request: Request, user_id: str, sha: str, kind: str, size: int, path: FilePath) -> None:
    """Store the bytes (once, whoever sends them) and the user's hold on them as `kind` (their own: another
    user's upload of the same bytes as another kind changes nothing for them), within their storage quota."""
    state = request.app.state
    what = f"this {'image' if kind == 'image' else kind}"
    with state.readers() as db:
        known = db.get(Blob, sha) is not None
        if db.get(UserBlob, (user_id, sha)) is None:  # before any bytes are stored (checked again below)
            quotas.check_storage(db, user_id, state.settings, size, what)
        db.commit()
    for attempt in range(3):  # the same blob sent twice at once: the loser finds the winner's rows
        if not known or not state.store.exists(sha):
            state.store.put_file(sha, path)  # bytes first: a row never points at nothing
        try:
            with session_scope(state.sessions) as db:
                if db.get(Blob, sha) is None:
                    db.add(Blob(sha256=sha, size=size, kind=kind))
            # a hold refused by the quota leaves a blob nobody holds: the next purge removes it
            with session_scope(state.sessions) as db:
                quotas.lock_user(db, user_id)
                hold = db.get(UserBlob, (user_id, sha))
                if hold is None:
                    quotas.check_storage(db, user_id, state.settings, size, what)
                    db.add(UserBlob(user_id=user_id, sha256=sha, kind=kind, size=size, created_at=utcnow()))
                else:  # sent again: the kind is the latest upload's, and the grace period starts again
                    hold.kind, hold.created_at = kind, utcnow()
            return
        except IntegrityError:  # a concurrent insert, or the blob collected in between: look again
            known = False
            if attempt == 2:
                raise


@router.put(
    "/{sha256}",
    status_code=status.HTTP_201_CREATED,
    response_model=BlobOut,
    openapi_extra=raw_body(required=True),
    responses={
        400: {"description": "Bytes do not match the sha256, or are not an image / a text / float32s."},
        413: {"description": "Larger than the limit for this kind, or over your storage quota."},
    },
)
async def upload(
    sha256: ShaPath,
    kind: Annotated[
        Literal["image", "text", "model"],
        Query(description="image or text (a sample's bytes: text is UTF-8, see docs/sync.md), model (float32s)"),
    ],
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
) -> BlobOut:
    if kind == "text":
        limit = MAX_TEXT_BYTES
        refusal = HTTPException(413, f"Too large: a text may be at most {MAX_TEXT_CHARACTERS:,} characters.")
    else:
        limit = settings.max_image_bytes if kind == "image" else settings.max_model_bytes
        refusal = "an image" if kind == "image" else "a model"
    async with received_body(request, settings, limit, refusal) as (path, digest, size):
        if digest != sha256:
            raise HTTPException(
                400,
                f"The bytes do not match their name: their sha256 is {digest}, "
                f"not {sha256} (a cut upload? send it again).",
            )
        await run_in_threadpool(_check_content, kind, path, size)
        await run_in_threadpool(_keep, request, user.id, sha256, kind, size, path)
    return BlobOut(sha256=sha256, size=size)


@router.get(
    "/{sha256}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "Not yours."}},
)
def download(sha256: ShaPath, user: CurrentUser, db: ReadSessionDep, request: Request) -> StreamingResponse:
    referenced = db.scalar(
        select(exists().where(Record.user_id == user.id, Record.blob == sha256, Record.deleted.is_(False)))
    )
    blob = db.get(Blob, sha256) if referenced else None
    db.commit()
    if blob is None:
        raise HTTPException(404, "No such blob among your synced projects.")
    try:
        chunks = request.app.state.store.open(sha256)
    except FileNotFoundError:
        raise HTTPException(404, "No such blob among your synced projects.") from None
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Length": str(blob.size), "Cache-Control": "no-store"},
    )
