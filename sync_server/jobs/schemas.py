"""The job API's request and answer shapes (POST /api/jobs, /api/jobs/upload, /api/batches answer a JobOut)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tejas.catalog import IMAGE_BACKBONES, MODES

from ..schemas import ID

BACKBONES = ("auto", *IMAGE_BACKBONES)  # "auto": the backbone of the server's default artifacts


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal[MODES] = "full"
    backbone: Literal[BACKBONES] = "auto"
    epochs: int = Field(10, ge=1, le=500, description="at most TEJAS_MAX_EPOCHS (500)")
    learning_rate: float | None = Field(None, gt=0, le=1, description="null: the mode's default")
    batch_size: int = Field(32, ge=2, le=1024)
    augment: bool = True
    seed: int = Field(0, ge=0, le=2**53 - 1)
    validation_share: float = Field(0.2, ge=0, le=0.9)
    patience: int = Field(5, ge=0, le=500, description="epochs without improvement before stopping; 0: never")
    max_length: int = Field(
        128, ge=8, le=128, description="text jobs: tokens per text while training (validation and the app use 128)"
    )


class UploadOptions(Options):
    name: str = Field("", max_length=200, description="a label for the job")
    modality: Literal["image", "text"] = Field(
        "image", description="image: the body is an ImageFolder zip; text: a CSV of text,label rows (docs/jobs.md)"
    )


class JobIn(Options):
    project: str = Field(pattern=ID, description="a synced project's id")
    name: str = Field("", max_length=200)

    # strict: JSON `false` is no integer, `"5"` no number (query parameters of /upload stay lax: all text)
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"project": "p1", "mode": "full", "epochs": 5}]}
    )


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="train, or predict (a batch from POST /api/batches)")
    project: str | None
    name: str
    source: str
    status: str
    options: dict
    created: str
    started: str | None
    finished: str | None
    expires: str | None
    device: str | None
    device_name: str | None
    epoch: int
    epochs: int
    images: int | None
    classes: list[str] | None
    error: str | None
    cancel_requested: bool
    result: dict | None


class JobsOut(BaseModel):
    jobs: list[JobOut]


class WorkerOut(BaseModel):
    device: str
    device_name: str
    queue: str


class CapabilitiesOut(BaseModel):
    device: str | None
    device_name: str | None
    workers: list[WorkerOut]
    queue: str
    max_upload_bytes: int
    max_epochs: int
    modes: list[str]
    text_modes: list[str]
    backbones: list[str]
    throughput: dict[str, float]
