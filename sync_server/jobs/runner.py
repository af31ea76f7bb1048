"""Run one job in this process (the in-process queue's worker process, or a Celery worker):
claim it, fetch its data, train with a heartbeat beside, keep checkpoints in the blob store, store the
results, finish it. Every write names the attempt this worker holds (jobs/state.py), so a worker that
was presumed dead cannot finish a job twice.

    python -m sync_server.jobs.runner JOB_ID [PARENT_PID [WORKER_NAME]]
        (what the in-process queue and a Celery worker's task start: one process per job, so the memory a
        job took goes back to the system when it ends)

SIGTERM asks this process to stop soon: it writes a checkpoint of the epoch so far, hands the job back to
the queue (`released`) and exits; the next worker resumes it. Work folders are `work/<job>-<attempt>`; one
left by an attempt that was killed is removed when the job is claimed again (sweep_work).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

from tejas import job_events

from ..core.config import Settings
from ..core.db import make_engine, make_sessionmaker, session_scope
from ..models import Job, JobFile
from ..records import project_records
from ..storage import make_store
from . import state
from .attempt import RELEASE, RELEASED, Heartbeat, StopWhen, download, fetch_checkpoint, sweep_work, worker_name

log = logging.getLogger("tejas.jobs")


def _train_resuming(train, resume: bool, notice):
    """`train(resume)`, and once more from scratch when the checkpoint turns out unusable when loaded."""
    from tejas_ml.training.checkpoints import CheckpointError

    try:
        return train(resume)
    except CheckpointError as exc:
        if not resume:
            raise
        log.warning("checkpoint refused: %s", exc.__cause__ or exc)
        notice(f"{exc} The job starts over.")
        return train(False)


def run_job(settings: Settings, job_id: str, parent: int | None = None, sessions=None) -> str | None:
    """Run the job if it can be claimed; returns its final status (None: not ours to run)."""
    if sessions is None:
        sessions = make_sessionmaker(make_engine(settings))
    store = make_store(settings, "jobs")
    attempt = state.claim(sessions, job_id, worker_name(), settings.job_stale_seconds)
    if attempt is None:
        return None
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        user_id, project_id, options = job.user_id, job.project_id, dict(job.options)
        upload, checkpoint_sha, kind = job.upload_sha256, job.checkpoint_sha256, job.kind
    try:
        sweep_work(settings, sessions)  # earlier attempts' folders, this job's included
    except Exception:
        log.warning("sweeping work folders failed", exc_info=True)
    work = settings.data_dir / "work" / f"{job_id}-{attempt}"  # a late-dying older attempt cleans up only its own
    work.mkdir(parents=True, exist_ok=True)
    beat = Heartbeat(sessions, job_id, attempt, settings.job_heartbeat_seconds, parent, releasable=kind != "predict")
    beat.start()
    if kind == "predict":
        return _run_prediction(settings, sessions, job_id, attempt, beat, work)
    # torch takes seconds to import: the heartbeat runs meanwhile, so the claim is not taken for a dead worker
    from tejas_ml.training.data import DataError, from_archive, from_project
    from tejas_ml.training.results import ResultError
    from tejas_ml.training.run import train_and_write
    from tejas_ml.training.trainer import Cancelled, TrainConfig

    checkpoint = work / "checkpoint.pt"
    held_checkpoint = {"sha": checkpoint_sha}

    def on_event(kind: str, data: dict) -> None:
        fields = {}
        if kind == "started":
            fields = {"device": data["device"], "device_name": data["device_name"], "images": data["images"]}
        elif kind == "epoch":
            fields = {"epoch": data["epoch"]}
        elif kind == "checkpoint":
            return  # announced by on_checkpoint once the file is stored
        if not state.record(sessions, job_id, attempt, (kind, data), **fields):
            beat.lost.set()

    def on_checkpoint(path: Path, epoch: int) -> None:
        from tejas.artifacts import sha256_file

        sha = sha256_file(path)
        store.put_file(sha, path)
        old = held_checkpoint["sha"]
        held_checkpoint["sha"] = sha
        if state.record(sessions, job_id, attempt, job_events.checkpoint(epoch), checkpoint_sha256=sha):
            if old and old != sha:
                store.delete(old)
        else:
            beat.lost.set()

    def finish(event: job_events.Event, **fields) -> str:
        state.finish(sessions, job_id, attempt, event, settings.retention_days, **fields)
        return event[0]

    try:
        config = TrainConfig(
            mode=options["mode"],
            epochs=options["epochs"],
            learning_rate=options.get("learning_rate"),
            batch_size=options["batch_size"],
            augment=options.get("augment", False),  # text jobs have none
            seed=options["seed"],
            validation_share=options["validation_share"],
            patience=options["patience"],
            workers=settings.job_loader_workers,
            checkpoint_seconds=settings.job_checkpoint_seconds,
        )
        stop = StopWhen(beat)
        resume = fetch_checkpoint(sessions, store, job_id, attempt, checkpoint_sha, checkpoint)

        def notice(message: str) -> None:
            state.record(sessions, job_id, attempt, job_events.notice(message))

        if options.get("modality") == "text":
            hooks = {"on_event": on_event, "on_checkpoint": on_checkpoint, "should_stop": stop}
            return _run_text(settings, sessions, store, job_id, attempt, work, options, config, resume, hooks, notice)
        cache = work / "images"
        if upload:
            examples = from_archive(download(store, upload, work / "upload.zip"), cache)
        else:
            blobs = make_store(settings)
            with session_scope(sessions) as session:
                records = project_records(session, user_id, project_id)
            examples = from_project(records, blobs.open, cache)
        state.record(sessions, job_id, attempt, None, classes=examples.classes, epochs=config.epochs)
        artifacts = settings.artifacts_dir / settings.artifacts_name
        summary, _ = _train_resuming(
            lambda resume: train_and_write(
                examples,
                config,
                artifacts,
                work / "out",
                backbone_name=options.get("backbone", "auto"),
                checkpoint=checkpoint,
                resume=resume,
                job=job_id,
                on_event=on_event,
                on_checkpoint=on_checkpoint,
                should_stop=stop,
            ),
            resume,
            notice,
        )
        if beat.stop_requested():
            raise Cancelled()
        return _store_results(sessions, store, job_id, attempt, work / "out", summary, finish)
    except Cancelled:
        if beat.lost.is_set() and not beat.cancelled.is_set():
            return None  # the server died or another worker took the job over: not ours to end
        if beat.releasing():
            state.release(sessions, job_id, attempt, RELEASED)
            return "released"
        return finish(job_events.cancelled())
    except (DataError, ResultError) as exc:
        # raised in a DataLoader worker, the message carries that worker's traceback: keep the sentence
        state.fail(
            sessions,
            job_id,
            attempt,
            str(exc).strip().splitlines()[-1].removeprefix("DataError: "),
            settings.retention_days,
        )
        return "failed"
    except Exception as exc:  # a bug or the machine: say so, keep the trace in the log
        return _internal_error(settings, sessions, job_id, attempt, "training", exc)
    finally:
        beat.done.set()
        shutil.rmtree(work, ignore_errors=True)


def _store_results(sessions, store, job_id: str, attempt: int, out: Path, summary: dict, finish) -> str:
    """Result files into the jobs area of the blob store, their rows, and the job done."""
    files = {}
    for name, info in summary["files"].items():
        store.put_file(info["sha256"], out / name)
        files[name] = info
    result = {
        "validation_accuracy": summary["validation_accuracy"],
        "images_per_second": summary["images_per_second"],
        "checks": summary["checks"],
        "files": files,
        "app_model": {k: v for k, v in summary["app_model"].items() if k not in ("metrics", "split")},
    }
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job.attempt == attempt and job.status == "running":
            for name, info in files.items():
                session.merge(JobFile(job_id=job_id, name=name, sha256=info["sha256"], size=info["size"]))
    done = job_events.trained(validation_accuracy=summary["validation_accuracy"], files=sorted(files))
    return finish(done, result=result)


def _run_text(settings: Settings, sessions, store, job_id, attempt, work: Path, options, config, resume, hooks, notice):
    """A text job: texts from the synced project or the uploaded CSV, the encoder fine-tuned, results
    stored and the job done (the caller's handlers end it when it fails or is cancelled)."""
    from tejas_ml.training.run import train_text_and_write
    from tejas_ml.training.text_data import texts_from_csv, texts_from_project
    from tejas_ml.training.trainer import Cancelled

    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        user_id, project_id, upload = job.user_id, job.project_id, job.upload_sha256
    if upload:
        examples = texts_from_csv(download(store, upload, work / "upload.csv"), "the uploaded CSV")
    else:
        with session_scope(sessions) as session:
            records = project_records(session, user_id, project_id)
        examples = texts_from_project(records, make_store(settings).open)
    state.record(sessions, job_id, attempt, None, classes=examples.classes, epochs=config.epochs)
    summary, _ = _train_resuming(
        lambda resume: train_text_and_write(
            examples,
            config,
            work / "out",
            max_length=options.get("max_length", 128),
            checkpoint=work / "checkpoint.pt",  # fetched and checked by the caller
            resume=resume,
            job=job_id,
            **hooks,
        ),
        resume,
        notice,
    )
    if hooks["should_stop"]():
        raise Cancelled()

    def finish(event: job_events.Event, **fields) -> str:
        state.finish(sessions, job_id, attempt, event, settings.retention_days, **fields)
        return event[0]

    return _store_results(sessions, store, job_id, attempt, work / "out", summary, finish)


def _internal_error(settings: Settings, sessions, job_id: str, attempt: int, what: str, exc: Exception) -> str:
    """Fail the job with a sentence naming the error; its trace goes to the log, never to the user (no
    path, no traceback: state.fail keeps the message's last line and file names only)."""
    log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    detail = state.public_reason(str(exc)).strip()[:300]
    named = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    reason = f"The {what} stopped with an internal error ({named}); the server's log has the details."
    state.fail(sessions, job_id, attempt, reason, settings.retention_days)
    return "failed"


def _run_prediction(settings: Settings, sessions, job_id: str, attempt: int, beat: Heartbeat, work: Path) -> str | None:
    """A batch prediction job (no torch in this process: onnxruntime only)."""
    from ..prediction.job import run_prediction_job

    try:
        return run_prediction_job(settings, sessions, job_id, attempt, beat, work, download)
    except Exception as exc:
        return _internal_error(settings, sessions, job_id, attempt, "prediction", exc)
    finally:
        beat.done.set()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parent = int(argv[1]) if len(argv) > 1 else None
    if len(argv) > 2:
        os.environ["TEJAS_JOB_WORKER_NAME"] = argv[2]  # the Celery worker's name: the job row shows who holds it
    signal.signal(signal.SIGTERM, lambda *_: RELEASE.set())
    status = run_job(Settings(), argv[0], parent=parent)
    log.info("job %s: %s", argv[0], status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
