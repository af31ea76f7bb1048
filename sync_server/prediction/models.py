"""The models a user can predict with on the server, named by a reference:

- `job:<job id>`: the model.onnx of one of the user's finished training jobs;
- `model:<model id>`: a model the app synced (its parameters blob + the server's artifact set, written
  into an ONNX file by the core's own writer, as the app's export does);
- `project:<project id>`: the current model of a synced project.

ONNX files are kept under data_dir/models by a digest of what they are made of, so each is written
once; `ModelCache` keeps a few loaded onnxruntime sessions per process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from array import array
from collections import OrderedDict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tejas.catalog import APP_MODES

from ..core.config import Settings
from ..models import Job, JobFile, Record
from ..storage import BlobStore

__all__ = [
    "ModelCache",
    "ModelNotFound",
    "ModelUnusable",
    "check_synced_model",
    "list_models",
    "model_file",
    "parse_reference",
]

REFERENCE = r"^(job|model|project):[A-Za-z0-9_-][A-Za-z0-9_.:-]{0,127}$"
_REFERENCE = re.compile(REFERENCE)


class ModelNotFound(LookupError):
    """No such model among the user's, or one this server cannot run; str() says which and why."""


def parse_reference(ref: str) -> tuple[str, str]:
    if not _REFERENCE.match(ref or ""):
        raise ModelNotFound("name a model as job:<job id>, model:<synced model id> or project:<synced project id>")
    kind, _, ident = ref.partition(":")
    return kind, ident


def _record(session: Session, user_id: str, kind: str, record_id: str) -> dict | None:
    row = session.scalar(
        select(Record.data).where(
            Record.user_id == user_id, Record.kind == kind, Record.record_id == record_id, Record.deleted.is_(False)
        )
    )
    return row


def _job_model(session: Session, user_id: str, job_id: str) -> JobFile:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
    if job is None:
        raise ModelNotFound("model job:…: no training job of yours has that id")
    row = session.get(JobFile, (job.id, "model.onnx"))
    if job.kind != "train" or job.status != "done" or row is None:
        raise ModelNotFound(f"model job:…: that job has no trained model (it is {job.status})")
    return row


def _atomic_write(dest: Path, write) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _from_job(row: JobFile, jobs_store: BlobStore, cache: Path) -> Path:
    dest = cache / f"{row.sha256}.onnx"
    if not dest.is_file():

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                for chunk in jobs_store.open(row.sha256):
                    f.write(chunk)

        _atomic_write(dest, write)
    return dest


def _floats(data: bytes) -> array:
    values = array("f")
    values.frombytes(data)
    return values


class ModelUnusable(ModelNotFound):
    """A synced model record that was valid to push but cannot be made into a classifier (no layout, no
    fc.weight, offsets past its parameters, ...): the client's 422, never the server's 500."""


def _unusable(kind: str, why: str) -> ModelUnusable:
    return ModelUnusable(
        f"model {kind}:…: its synced record cannot be used ({why}); train it again in the app and sync"
    )


def _is_count(value, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= 2**40


def _checked_record(model: dict, kind: str, feature_size: int) -> tuple[list[str], str, dict[str, dict], str, str]:
    """(classes, mode, layout by name, the head's weight and bias names) of a synced model record, each part
    checked as the app writes it: the head's weight is [rows ≥ classes, feature size], its bias [rows ≥ classes]."""
    classes = model.get("classes")
    if not (isinstance(classes, list) and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in classes)):
        raise _unusable(kind, "classes: expected a list of {id, name}")
    if len(classes) < 2:
        raise _unusable(kind, f"classes: a classifier needs at least 2, the record has {len(classes)}")
    mode = model.get("mode") or "head"
    if mode not in APP_MODES:
        raise _unusable(kind, f"mode: expected {' or '.join(APP_MODES)}")
    layout = model.get("layout")
    if not isinstance(layout, list):
        raise _unusable(kind, "no layout of its parameters")
    by_name: dict[str, dict] = {}
    for p in layout:
        if not (
            isinstance(p, dict)
            and isinstance(p.get("name"), str)
            and _is_count(p.get("offset"))
            and isinstance(p.get("shape"), list)
            and 1 <= len(p["shape"]) <= 8
            and all(_is_count(n, 1) for n in p["shape"])
        ):
            raise _unusable(kind, "layout: expected a list of {name, offset, shape}")
        by_name[p["name"]] = p
    weight = next((n for n in by_name if n == "fc.weight" or n.endswith(".fc.weight")), None)
    if weight is None:
        raise _unusable(kind, "its layout has no fc.weight")
    bias = weight[: -len("weight")] + "bias"
    k = len(classes)
    w_shape, b_shape = by_name[weight]["shape"], (by_name.get(bias) or {}).get("shape")
    if not (len(w_shape) == 2 and w_shape[0] >= k and w_shape[1] == feature_size):
        raise _unusable(kind, f"{weight} is {w_shape}; {k} classes need [≥{k}, {feature_size}]")
    if b_shape is None or not (len(b_shape) == 1 and b_shape[0] >= k):
        raise _unusable(kind, f"{bias} is {b_shape or 'missing'}; {k} classes need [≥{k}]")
    if mode == "last_block" and len(by_name) <= 2:
        raise _unusable(kind, "a last-block model without its last block's tensors")
    return [c["name"] for c in classes], mode, by_name, weight, bias


def _from_synced(model: dict, kind: str, blobs: BlobStore, settings: Settings, cache: Path) -> Path:
    from tejas.artifacts import ArtifactError, read_manifest, sha256_file
    from tejas.onnx_writer import write_classifier_onnx

    artifacts = settings.artifacts_dir / settings.artifacts_name
    manifest = read_manifest(artifacts)
    wanted = model["artifacts"].get("backbone_sha256") if isinstance(model.get("artifacts"), dict) else None
    have = manifest["files"]["backbone.onnx"]["sha256"]
    if wanted and wanted != have:
        raise ModelNotFound(
            f"model {kind}:…: trained with other artifacts than this server has; retrain it in the app and sync"
        )
    f = int(manifest["feature_size"])
    classes, mode, layout, weight_name, bias_name = _checked_record(model, kind, f)
    parameters = model.get("parameters") or {}
    key = hashlib.sha256(
        json.dumps(
            [parameters.get("sha256"), sha256_file(artifacts / "manifest.json"), classes, mode, sorted(layout.items())]
        ).encode()
    ).hexdigest()
    dest = cache / f"{key}.onnx"
    if dest.is_file():
        return dest
    try:
        data = b"".join(blobs.open(parameters["sha256"]))
    except (KeyError, FileNotFoundError):
        raise ModelNotFound(f"model {kind}:…: its parameters were not synced yet; sync the project again") from None
    if len(data) % 4:
        raise _unusable(kind, f"its parameters are {len(data)} bytes, not float32 values")
    values = _floats(data)
    k = len(classes)

    def take(name: str, count: int) -> array:
        offset = layout[name]["offset"]
        if offset + count > len(values):
            raise _unusable(kind, f"{name} reaches past the {len(values)} values of its parameters")
        return values[offset : offset + count]

    block = None
    if mode == "last_block":
        block = {}
        for name, p in layout.items():
            if name in (weight_name, bias_name):
                continue
            size = 1
            for n in p["shape"]:
                size *= n
            block[name] = take(name, size)
    weight, bias = take(weight_name, k * f), take(bias_name, k)
    try:
        return _atomic_write(dest, lambda tmp: write_classifier_onnx(artifacts, weight, bias, classes, tmp, block))
    except (ValueError, ArtifactError) as exc:  # the core's own checks: distinct class names, block tensors
        raise _unusable(kind, str(exc)) from None


def model_file(
    session: Session, user_id: str, ref: str, settings: Settings, jobs_store: BlobStore, blobs: BlobStore
) -> Path:
    """The ONNX file of the user's model `ref` (written or fetched once); ModelNotFound says why not."""
    kind, ident = parse_reference(ref)
    cache = settings.data_dir / "models"
    if kind == "job":
        return _from_job(_job_model(session, user_id, ident), jobs_store, cache)
    if kind == "project":
        head = _record(session, user_id, "head", ident)
        if not head or not head.get("modelId"):
            raise ModelNotFound("model project:…: no synced project of yours with a trained model has that id")
        ident = head["modelId"]
    model = _record(session, user_id, "model", ident)
    if model is None:
        raise ModelNotFound(f"model {kind}:…: no synced model of yours has that id")
    job = _server_job(model, kind)
    if job:
        return _from_job(_job_model(session, user_id, job), jobs_store, cache)
    return _from_synced(model, kind, blobs, settings, cache)


def _server_job(model: dict, kind: str) -> str | None:
    """The training job a synced model record came from (the server trained it), else None."""
    server, artifacts = model.get("server") or {}, model.get("artifacts") or {}
    if not (isinstance(server, dict) and isinstance(artifacts, dict)):
        raise _unusable(kind, "server and artifacts: expected objects")
    job = server.get("job")
    return job if isinstance(job, str) and job and artifacts.get("kind") == "job" else None


def check_synced_model(model: dict, kind: str, settings: Settings) -> None:
    """ModelUnusable when a synced model record cannot be made into a classifier (its parameters unread):
    what a stream checks when it is made, before its worker would fail on every image."""
    from tejas.artifacts import ArtifactError, read_manifest

    if _server_job(model, kind) is None:
        try:
            feature_size = int(read_manifest(settings.artifacts_dir / settings.artifacts_name)["feature_size"])
        except (ArtifactError, KeyError, TypeError, ValueError):
            return  # the server's own artifacts are the matter: the worker reports it
        _checked_record(model, kind, feature_size)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def list_models(session: Session, user_id: str) -> list[dict]:
    """Every model of the user's that `model_file` can run: finished training jobs and synced models."""
    out = []
    jobs = session.scalars(
        select(Job)
        .where(Job.user_id == user_id, Job.kind == "train", Job.status == "done")
        .order_by(Job.finished_at.desc())
    )
    for job in jobs:
        out.append(
            {
                "ref": f"job:{job.id}",
                "source": "job",
                "name": job.name,
                "project": job.project_id,
                "classes": job.classes or [],
                "created": job.finished_at.isoformat() + "Z" if job.finished_at else None,
            }
        )
    heads = {
        (data or {}).get("modelId"): record_id
        for record_id, data in session.execute(
            select(Record.record_id, Record.data).where(
                Record.user_id == user_id, Record.kind == "head", Record.deleted.is_(False)
            )
        )
    }
    rows = session.execute(
        select(Record.record_id, Record.project_id, Record.data).where(
            Record.user_id == user_id, Record.kind == "model", Record.deleted.is_(False)
        )
    )
    for record_id, project_id, data in rows:
        data = data or {}
        # listed as the record says, whatever it holds: a malformed one is refused when used, with the reason
        classes = data.get("classes") if isinstance(data.get("classes"), list) else []
        out.append(
            {
                "ref": f"model:{record_id}",
                "source": "synced",
                "name": _text(data.get("name")) or "model trained in the app",
                "project": project_id,
                "classes": [c["name"] for c in classes if isinstance(c, dict) and isinstance(c.get("name"), str)],
                "created": _text(data.get("created")),
                "current": heads.get(record_id) == project_id,
            }
        )
    return out


class ModelCache:
    """Loaded classifiers by file, the few most recently used (sessions are ~15 MB each)."""

    def __init__(self, size: int = 4, threads: int | None = None):
        self.size, self.threads = size, threads
        self.loaded: OrderedDict[str, object] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path):
        from tejas_ml.prediction.model import Classifier

        key = str(path)
        with self.lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
        classifier = Classifier(path, self.threads)
        with self.lock:
            self.loaded[key] = classifier
            while len(self.loaded) > self.size:
                _, old = self.loaded.popitem(last=False)
                old.close()
        return classifier
