"""The workers a server knows of: the device a job would train on (asked of a fresh interpreter) and
each worker's row with its heartbeat (GET /api/jobs/capabilities lists the live ones)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import delete, select

from ..core.clock import utcnow
from ..core.db import session_scope
from ..models import Worker

log = logging.getLogger("tejas.jobs")

# the trainer's own choice of device and its name
PROBE = (
    "import json\n"
    "from tejas_ml.training.network import device_name, pick_device\n"
    "device = pick_device()\n"
    "print(json.dumps({'device': device.type, 'device_name': device_name(device)}))"
)


def probe_device() -> dict:
    """The device a worker process would train on, asked of a fresh interpreter (CUDA stays out of ours)."""
    try:
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:
        log.warning("device probe failed: %s", exc)
        return {"device": "cpu", "device_name": "unknown"}


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
