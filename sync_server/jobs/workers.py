"""The workers a server knows of: the device a job would train on (asked of a fresh interpreter) and
each worker's row with its heartbeat (GET /api/jobs/capabilities lists the live ones)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select

from ..core.clock import utcnow
from ..core.db import session_scope
from ..models import Worker

log = logging.getLogger("tejas.jobs")

# the trainer's own choice of device and its name, asked at low priority: a server starting on a small
# machine has better uses for its cores than importing torch to name the CPU
PROBE = (
    "import json, os\n"
    "os.nice(10)\n"
    "from tejas_ml.training.network import device_name, pick_device\n"
    "device = pick_device()\n"
    "print(json.dumps({'device': device.type, 'device_name': device_name(device)}))"
)
UNKNOWN = {"device": "cpu", "device_name": "unknown"}


def probe_device(started: Callable[[subprocess.Popen], None] = lambda process: None) -> dict:
    """The device a worker process would train on, asked of a fresh interpreter (CUDA stays out of ours).

    `started(process)` hears of the probe's process, so that a server stopping meanwhile can kill it
    rather than wait for torch to import."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except OSError as exc:
        log.warning("device probe failed: %s", exc)
        return UNKNOWN
    started(process)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        log.warning("device probe failed: no answer in 120 s")
        return UNKNOWN
    if process.returncode != 0:
        if process.returncode > 0:  # a negative code: killed by a stopping server, nothing to report
            log.warning("device probe failed (exit status %s): %s", process.returncode, err.strip()[-500:])
        return UNKNOWN
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        log.warning("device probe failed: %s", exc)
        return UNKNOWN


def register_worker(sessions, name: str, queue: str, device: dict) -> None:
    with session_scope(sessions) as session:
        row = session.get(Worker, name) or Worker(name=name, queue=queue)
        row.device, row.device_name, row.heartbeat_at = device["device"], device["device_name"], utcnow()
        session.merge(row)


def forget_worker(sessions, name: str) -> None:
    with session_scope(sessions) as session:
        session.execute(delete(Worker).where(Worker.name == name))


def live_workers(session, stale_seconds: float) -> list[Worker]:
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    return list(session.scalars(select(Worker).where(Worker.heartbeat_at >= cutoff).order_by(Worker.name)))
