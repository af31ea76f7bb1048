"""Request and response bodies (pydantic), shared by routes and tests. docs/sync.md is the prose; the
sync record's shape and the revision format come from the core's schemas/sync.json, which the app reads too."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tejas.rules import is_blank_text

SYNC_SCHEMA: dict = json.loads(resources.files("tejas").joinpath("schemas", "sync.json").read_text(encoding="utf-8"))
_DEFS = SYNC_SCHEMA["$defs"]
ID: str = _DEFS["record_id"]["pattern"]  # sample ids: <project>/<sha256>
DEVICE: str = _DEFS["device"]["pattern"]
REV: str = _DEFS["rev"]["pattern"]
SHA256: str = _DEFS["sha256"]["pattern"]
MAX_PUSH_CHANGES = 1000
MAX_RECORD_BYTES: int = SYNC_SCHEMA["max_record_bytes"]
KINDS: tuple[str, ...] = tuple(_DEFS["kind"]["enum"])
_MUTATION = SYNC_SCHEMA["properties"]["mutation"]

RecordId = Annotated[str, StringConstraints(pattern=ID)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256)]
Kind = Literal[KINDS]  # type: ignore[valid-type]  # the schema's kinds


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- accounts -----------------------------------------------------------------------------------
class Credentials(Strict):
    email: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class UserOut(BaseModel):
    id: str
    email: str


class Session(BaseModel):
    token: str
    expires: str
    user: UserOut


class SignupOut(BaseModel):
    """Sign-up's answer, the same for a new email and a taken one: sign in next."""

    email: str
    message: str


class QuotaUse(BaseModel):
    used: int
    limit: int


class MeUsage(BaseModel):
    """Each per-user quota's use and limit (docs/sync.md, "Quotas")."""

    storage_bytes: QuotaUse = Field(description="blobs you hold, job uploads and job result files, in bytes")
    jobs: QuotaUse = Field(description="jobs queued or running")
    streams: QuotaUse = Field(description="prediction streams")
    stream_images_pending: QuotaUse = Field(description="images appended to your streams and not done yet")


class Me(UserOut):
    retention_days: float
    usage: MeUsage


# --- records ------------------------------------------------------------------------------------
def blob_of(kind: str, data: dict | None) -> str | None:
    """The blob a live record's data refers to: a sample's image, a model's parameters."""
    if not data:
        return None
    if kind == "sample":
        return data.get("contentId")
    if kind == "model":
        return (data.get("parameters") or {}).get("sha256")
    return None


def blob_kind(kind: str, data: dict | None) -> str | None:
    """The kind of blob a live record's data refers to: a text sample's text, another sample's image, a
    model's parameters ("model")."""
    if kind == "sample":
        return "text" if (data or {}).get("format") == "text" else "image"
    return "model" if kind == "model" else None


class Change(Strict):
    mutation: Annotated[int, Field(ge=_MUTATION["minimum"], le=_MUTATION["maximum"])]
    kind: Kind
    id: RecordId
    project: RecordId
    rev: Annotated[str, StringConstraints(pattern=REV)]
    deleted: bool = False
    data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Change:
        if self.kind in ("project", "head") and self.id != self.project:
            raise ValueError(f"a {self.kind} record's id must be its project id")
        if self.deleted:
            return self
        data = self.data
        if data is None:
            raise ValueError("a change that is not a delete needs data")
        try:  # only what every database and client reads back as it was sent
            json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("record data holds text that is not valid Unicode (a lone surrogate)") from None
        except ValueError:  # NaN, Infinity and numbers like 1e999 that JSON parsers read as Infinity
            raise ValueError("record data holds NaN or Infinity, which JSON cannot carry") from None
        if len(json.dumps(data, separators=(",", ":"))) > MAX_RECORD_BYTES:
            raise ValueError(f"record data over {MAX_RECORD_BYTES // 1024} KiB")
        # blank as the app judges it (rules.json: White_Space and invisible characters), not str.strip(),
        # which also strips U+001C..U+001F: a name the app made must never be refused on every push
        if self.kind in ("project", "class") and not (
            isinstance(data.get("name"), str) and not is_blank_text(data["name"])
        ):
            raise ValueError(f"a {self.kind} needs a non-empty name")
        if self.kind == "sample":
            content, cls = data.get("contentId"), data.get("classId")
            if not (isinstance(content, str) and _match(SHA256, content)):
                raise ValueError("a sample needs contentId, the sha256 of its image or text")
            if self.id != f"{self.project}/{content}":
                raise ValueError("a sample's id must be <project>/<contentId>")
            if not (isinstance(cls, str) and _match(ID, cls)):
                raise ValueError("a sample needs classId")
        if self.kind == "model":
            params = data.get("parameters")
            if not (
                isinstance(params, dict) and isinstance(params.get("sha256"), str) and _match(SHA256, params["sha256"])
            ):
                raise ValueError("a model needs parameters: {sha256, length}")
        if self.kind == "head":
            model = data.get("modelId")
            if model is not None and not (isinstance(model, str) and _match(ID, model)):
                raise ValueError("a head's modelId must be a record id or null")
        return self


def _match(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


class PushIn(Strict):
    device: DeviceId
    changes: Annotated[list[Change], Field(max_length=MAX_PUSH_CHANGES)]

    @model_validator(mode="after")
    def _increasing(self) -> PushIn:
        mutations = [c.mutation for c in self.changes]
        if any(b <= a for a, b in zip(mutations, mutations[1:], strict=False)):
            raise ValueError("mutation ids must increase within a push")
        return self


class PushOut(BaseModel):
    last_mutation: int
    version: int
    accepted: int
    skipped: int


class ChangeOut(BaseModel):
    version: int
    kind: str
    id: str
    project: str
    rev: str
    deleted: bool
    data: dict[str, Any] | None


class ProjectOut(BaseModel):
    id: str
    name: str | None
    records: int
    last_change: str
    expires: str


class Retention(BaseModel):
    last_change: str
    expires: str


class PullOut(BaseModel):
    changes: list[ChangeOut]
    cursor: str
    more: bool
    projects: dict[str, Retention]
    purged: dict[str, str]


# --- blobs --------------------------------------------------------------------------------------
class MissingIn(Strict):
    sha256: Annotated[list[Sha256], Field(max_length=1000)]


class MissingOut(BaseModel):
    missing: list[str]


class BlobOut(BaseModel):
    sha256: str
    size: int
