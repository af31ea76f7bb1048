"""A server that stops while its device probe is still importing torch kills the probe instead of waiting
for it: on a small machine every `tejas serve` start and stop paid for a torch import (about 6 s a stop
in the test suite). The probe here never answers, so only killing it lets the queue's thread end."""

from __future__ import annotations

from sync_server.core.config import Settings
from sync_server.core.db import make_engine, make_sessionmaker, migrate
from sync_server.jobs import queues, workers
from testkit.services import wait_for


def test_stopping_kills_a_probe_that_has_not_answered(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'tejas.db'}")
    engine = make_engine(settings)
    migrate(engine)
    monkeypatch.setattr(workers, "PROBE", "import time\ntime.sleep(600)")
    queue = queues.InProcessQueue(settings, make_sessionmaker(engine))
    queue.start()
    wait_for(lambda: queue.probe is not None, timeout=60, what="the device probe to start")
    queue.stop()
    assert queue.probe.poll() is not None and queue.probe.returncode < 0  # killed, not waited for
    assert not queue.thread.is_alive()
    assert queue.device == workers.UNKNOWN
    engine.dispose()


def test_a_probe_answers_with_the_device(monkeypatch):
    monkeypatch.setattr(workers, "PROBE", 'print(\'noise\')\nprint(\'{"device": "cpu", "device_name": "X"}\')')
    seen = []
    assert workers.probe_device(seen.append) == {"device": "cpu", "device_name": "X"}
    assert seen and seen[0].returncode == 0
    monkeypatch.setattr(workers, "PROBE", "import sys\nsys.exit(3)")
    assert workers.probe_device() == workers.UNKNOWN
