"""Prediction on the server (docs/predictions.md): the models you can use, a few images answered
directly (POST /api/predictions), and a zip of up to 500 MB as a job (POST /api/batches) whose progress
and report go through the job routes (/api/jobs/{id}/events, /files/report.csv)."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ...core.db import session_scope
from ...jobs.schemas import JobOut
from ...jobs.service import zip_refused
from ...prediction.models import REFERENCE, ModelCache, ModelNotFound, ModelUnusable, list_models, model_file
from ..bodies import raw_body
from ..deps import CurrentUser, ReadSessionDep, SettingsDep
from ..job_uploads import create_from_upload

router = APIRouter(tags=["predictions"])

ModelRef = Annotated[str, Query(pattern=REFERENCE, description="job:<id>, model:<id> or project:<id>")]
TopK = Annotated[int, Query(ge=1, le=100, description="classes per image")]
MODEL_NOT_FOUND = {404: {"description": "No such model among yours."}, 422: {"description": "Cannot be used here."}}


class ModelOut(BaseModel):
    ref: str
    source: str
    name: str
    project: str | None
    classes: list[str]
    created: str | None
    current: bool | None = None


class ModelsOut(BaseModel):
    models: list[ModelOut]


class TopClass(BaseModel):
    model_config = {"populate_by_name": True}

    class_: str = Field(alias="class")
    probability: float


class Row(BaseModel):
    file: str
    sha256: str | None
    top: list[TopClass]
    error: str | None


class PredictionsOut(BaseModel):
    model: dict
    top_k: int
    rows: list[Row]


@router.get("/api/models")
def models(user: CurrentUser, db: ReadSessionDep) -> ModelsOut:
    """Your models the server can predict with: finished training jobs and models synced from the app."""
    return ModelsOut(models=[ModelOut(**m) for m in list_models(db, user.id)])


def _model_path(request: Request, user_id: str, ref: str):
    """The ONNX file of the user's model (404 / 422 with the reason)."""
    state = request.app.state
    with session_scope(state.readers) as db:
        try:
            return model_file(db, user_id, ref, state.settings, state.jobs_store, state.store)
        except ModelNotFound as exc:
            code = 422 if isinstance(exc, ModelUnusable) or "other artifacts" in str(exc) else 404
            raise HTTPException(code, f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None


def _classifier(request: Request, path):
    state = request.app.state
    if getattr(state, "models", None) is None:
        state.models = ModelCache(size=4, threads=state.settings.prediction_threads)
    return state.models.get(path)


@router.post(
    "/api/predictions",
    responses={**MODEL_NOT_FOUND, 413: {"description": "Too many or too large images."}},
)
async def predict(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="the images (each checked by its content)")],
    model: Annotated[str, Form(pattern=REFERENCE, description="job:<id>, model:<id> or project:<id>")],
    top_k: Annotated[int, Form(ge=1, le=100)] = 3,
) -> PredictionsOut:
    """Classify up to TEJAS_MAX_PREDICTION_IMAGES images at once; a file that is no image gets its error row."""
    from tejas.images import ImageError, sniff_image
    from tejas.limits import DEFAULT_LIMITS

    if len(images) > settings.max_prediction_images:
        raise HTTPException(
            413, f"Too many images: at most {settings.max_prediction_images} per request (send a zip to /api/batches)."
        )
    path = await run_in_threadpool(_model_path, request, user.id, model)
    classifier = await run_in_threadpool(_classifier, request, path)
    files, datas = [], []
    for upload in images:
        data = await upload.read(settings.max_image_bytes + 1)
        name = upload.filename or "image"
        if len(data) > settings.max_image_bytes:
            raise HTTPException(413, f"{name}: larger than {settings.max_image_bytes / 2**20:g} MiB.")
        files.append(name)
        datas.append(data)
    rows: list[dict] = [{} for _ in files]
    readable = []
    for i, data in enumerate(datas):
        try:
            sniff_image(data, DEFAULT_LIMITS.max_pixels)
            readable.append(i)
        except ImageError as exc:
            rows[i] = {"file": files[i], "sha256": None, "top": [], "error": str(exc)}
    predicted = await run_in_threadpool(classifier.predict, [datas[i] for i in readable], top_k)
    for i, result in zip(readable, predicted, strict=True):
        rows[i] = {"file": files[i], "sha256": hashlib.sha256(datas[i]).hexdigest(), **result}
    k = max(1, min(top_k, len(classifier.classes)))
    return PredictionsOut(model=classifier.describe(), top_k=k, rows=[Row(**r) for r in rows])


def _check_zip(path) -> int:
    """Refuse the zip whole by the core's archive rules (400); the number of files in it."""
    from tejas.predictions import ArchiveError, count_images

    try:
        count = count_images(path)
    except ArchiveError as exc:
        raise zip_refused(path, exc) from None
    if count == 0:
        raise HTTPException(400, "The zip cannot be used: it holds no files.")
    return count


@router.post(
    "/api/batches",
    status_code=201,
    openapi_extra=raw_body("a zip of images (any layout); any Content-Type (application/zip is usual)"),
    responses={
        **MODEL_NOT_FOUND,
        400: {"description": "Not a usable zip."},
        413: {"description": "Over TEJAS_MAX_UPLOAD_BYTES, or over your storage quota."},
        429: {"description": "Too many jobs queued."},
    },
)
async def batch(
    request: Request,
    response: Response,
    user: CurrentUser,
    settings: SettingsDep,
    model: ModelRef,
    top_k: TopK = 3,
    name: Annotated[str, Query(max_length=200)] = "",
) -> JobOut:
    """Predict every image of a zip as a job: streamed to the blob store, never held in memory; follow it
    at /api/jobs/{id}/events, download /api/jobs/{id}/files/report.csv (or report.json)."""
    await run_in_threadpool(_model_path, request, user.id, model)
    return await create_from_upload(
        request,
        response,
        user.id,
        settings,
        "a zip to predict",
        lambda path: {"images": _check_zip(path)},
        kind="predict",
        name=(name or "batch prediction")[:200],
        options={"model": model, "top_k": top_k},
        epochs=0,
    )
