"""A batch prediction job (POST /api/batches): the uploaded zip through `predict_source`, progress events
about once a second, report.json and report.csv stored as the job's result files. Run by the same
runner as training jobs (claim, heartbeat, fenced writes: jobs/runner.py), in-process or on Celery."""

from __future__ import annotations

import time
from pathlib import Path

from tejas import job_events
from tejas.artifacts import sha256_file
from tejas.predictions import ArchiveError
from tejas_ml.prediction.batch import Stopped, Throughput, predict_source, write_reports
from tejas_ml.prediction.model import Classifier, ModelError

from ..core.config import Settings
from ..core.db import session_scope
from ..jobs import state
from ..models import Job, JobFile
from ..storage import make_store
from .models import ModelNotFound, model_file

PROGRESS_EVERY_S = 1.0
REPORTS = ("report.json", "report.csv")


def run_prediction_job(
    settings: Settings, sessions, job_id: str, attempt: int, beat, work: Path, download
) -> str | None:
    """Predict the job's zip; returns its final status (None: the job is no longer ours)."""
    jobs_store = make_store(settings, "jobs")
    refused = None
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        # the zip's file count was taken when it was accepted (POST /api/batches)
        options, upload, total = dict(job.options), job.upload_sha256, job.images
        try:
            path = model_file(session, job.user_id, options["model"], settings, jobs_store, make_store(settings))
        except ModelNotFound as exc:
            refused = f"{exc}."
    if refused:
        state.fail(sessions, job_id, attempt, refused, settings.retention_days)
        return "failed"
    top_k = int(options.get("top_k", 3))
    try:
        classifier = Classifier(path, settings.prediction_threads)
    except ModelError as exc:
        state.fail(sessions, job_id, attempt, str(exc), settings.retention_days)
        return "failed"
    archive = download(jobs_store, upload, work / "batch.zip")
    rows: list[dict] = []
    speed = Throughput()
    try:
        if not state.record(sessions, job_id, attempt, job_events.prediction_started(total)):
            return None
        last = time.monotonic()
        failed = 0
        for row in predict_source(classifier, archive, top_k=top_k, should_stop=beat.stop_requested):
            rows.append(row)
            failed += bool(row["error"])
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                progress = job_events.progress(
                    done=len(rows), total=total, failed=failed, images_per_second=round(speed.rate(len(rows)), 2)
                )
                if not state.record(sessions, job_id, attempt, progress):
                    return None  # taken over by another worker
    except Stopped:
        if beat.lost.is_set() and not beat.cancelled.is_set():
            return None
        state.finish(sessions, job_id, attempt, job_events.cancelled(), settings.retention_days)
        return "cancelled"
    except ArchiveError as exc:
        state.fail(sessions, job_id, attempt, f"The zip cannot be used: {exc}", settings.retention_days)
        return "failed"
    finally:
        classifier.close()
    rate = round(speed.rate(len(rows)), 2)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    write_reports(rows, classifier, top_k, out / "report.json", out / "report.csv", job=job_id)
    files = {}
    for name in REPORTS:
        sha = sha256_file(out / name)
        jobs_store.put_file(sha, out / name)
        files[name] = {"sha256": sha, "size": (out / name).stat().st_size}
    failed = sum(1 for r in rows if r["error"])
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job.attempt != attempt or job.status != "running":
            return None
        for name, info in files.items():
            session.merge(JobFile(job_id=job_id, name=name, sha256=info["sha256"], size=info["size"]))
    result = {
        "images": len(rows),
        "failed": failed,
        "images_per_second": rate,
        "files": files,
        "model": options["model"],
        "classes": classifier.classes,
    }
    done = job_events.predicted(images=len(rows), failed=failed, files=sorted(files), images_per_second=rate)
    state.finish(sessions, job_id, attempt, done, settings.retention_days, result=result)
    return "done"
