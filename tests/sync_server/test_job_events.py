"""Job events are defined once (tejas.job_events, schemas/job_events.json): every constructor makes an event
the schema accepts, the schema refuses what none makes, every emitter builds its events with the
constructors, the servers and workers the tests start validate each event they write (TEJAS_VALIDATE_EVENTS,
set by tests/conftest.py: an invalid one raises), and the app's watcher and `tejas train` read the
schema's kinds and fields."""

from __future__ import annotations

import ast
import json
import os
import re
from types import SimpleNamespace

import jsonschema
import pytest

from sync_server.jobs import state
from tejas import job_events

from ..conftest import ROOT

SCHEMA = json.loads(job_events.SCHEMA_PATH.read_text())


def valid(event: tuple[str, dict]) -> bool:
    kind, data = event
    return jsonschema.Draft202012Validator(SCHEMA).is_valid({"kind": kind, "data": data})


def kinds(job: str | None = None) -> set[str]:
    """The schema's kinds (those a `job` kind emits, when given)."""
    return {a["properties"]["kind"]["const"] for a in SCHEMA["oneOf"] if job is None or job in a["x-jobs"]}


EVERY_CONSTRUCTOR = {
    "queued": job_events.queued(0),
    "started": job_events.started(
        device="cuda",
        device_name="NVIDIA H100",
        train_images=8,
        validation_images=2,
        classes=["cat", "dog"],
        resumed_from_epoch=None,
    ),
    "prediction_started": job_events.prediction_started(12),
    "epoch": job_events.epoch(
        epoch=1,
        epochs=3,
        loss=0.7,
        train_accuracy=0.5,
        validation_accuracy=None,
        images_per_second=None,
        seconds=0.0,
        eta_seconds=0.0,
    ),
    "checkpoint": job_events.checkpoint(1),
    "trainer_checkpoint": job_events.checkpoint(1, step=4),
    "progress": job_events.progress(done=3, total=12, failed=1, images_per_second=2.5),
    "trained": job_events.trained(validation_accuracy=0.9, files=["model.onnx"]),
    "predicted": job_events.predicted(images=12, failed=1, files=["report.csv", "report.json"], images_per_second=3.0),
    "failed": job_events.failed("cat/1.png: not an image."),
    "cancelled": job_events.cancelled(),
    "notice": job_events.notice("The job queue cannot be reached just now."),
    "released": job_events.released("The worker running this job was stopped."),
}


def test_every_constructor_makes_an_event_the_schema_accepts():
    public = {
        n for n, f in vars(job_events).items() if callable(f) and getattr(f, "__module__", "") == job_events.__name__
    }
    assert public == set(EVERY_CONSTRUCTOR) - {"trainer_checkpoint"}, "a constructor without a case here"
    for name, event in EVERY_CONSTRUCTOR.items():
        assert valid(event), (name, event)
    assert {kind for kind, _ in EVERY_CONSTRUCTOR.values()} == kinds(), "a kind no constructor makes, or the reverse"
    assert set(job_events.TERMINAL) <= kinds() and set(job_events.TERMINAL) == set(state.TERMINAL)


@pytest.mark.parametrize(
    "event",
    [
        ("finished", {}),  # no such kind
        ("queued", {}),  # a field missing
        ("queued", {"position": -1}),
        ("queued", {"position": 0, "extra": 1}),  # a field the schema does not name
        ("failed", {"reason": ""}),
        ("epoch", {**job_events.epoch(epoch=1, epochs=1, loss=1, train_accuracy=1, validation_accuracy=1,
                                      images_per_second=1, seconds=1, eta_seconds=0)[1], "loss": "low"}),
        ("started", {**EVERY_CONSTRUCTOR["started"][1], "device": "tpu"}),
        ("started", {"images": 3, "device": "cpu"}),  # half a training start, half a prediction's
        ("done", {"files": ["model.onnx"]}),
        ("cancelled", {"reason": "x"}),
    ],
)  # fmt: skip
def test_the_schema_refuses_what_no_constructor_makes(event):
    assert not valid(event)


def test_state_emit_validates_when_asked_and_raises_on_an_invalid_event(monkeypatch):
    added = []
    session = SimpleNamespace(add=added.append)
    job = SimpleNamespace(id="j", last_event=0)
    monkeypatch.setenv("TEJAS_VALIDATE_EVENTS", "1")
    assert state.emit(session, job, job_events.queued(2)) == 1
    with pytest.raises(state.InvalidEvent, match="queued"):
        state.emit(session, job, ("queued", {"position": "first"}))
    assert [(e.kind, e.data) for e in added] == [("queued", {"position": 2})], "an invalid event is never written"
    monkeypatch.setenv("TEJAS_VALIDATE_EVENTS", "0")
    assert state.emit(session, job, ("queued", {"position": "first"})) == 2  # production: not checked


def test_the_servers_the_tests_start_validate_every_event():
    """tests/conftest.py sets it for the whole run; servers, job processes and Celery workers inherit it."""
    assert os.environ.get("TEJAS_VALIDATE_EVENTS") == "1"


EMITTERS = [
    "sync_server/jobs/state.py",
    "sync_server/jobs/runner.py",
    "sync_server/jobs/attempt.py",
    "sync_server/jobs/queues.py",
    "sync_server/jobs/celery_app.py",
    "sync_server/jobs/service.py",
    "sync_server/api/routes/jobs.py",
    "sync_server/prediction/job.py",
    "tejas_ml/training/trainer.py",
    "tejas_ml/training/text.py",
]


def test_every_emitter_builds_its_events_with_the_constructors():
    """No event made by hand: a call of emit/record/finish/on_event given a kind's name as a string."""
    by_hand = []
    for rel in EMITTERS:
        path = ROOT / rel
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("emit", "record", "finish", "on_event", "notice"):
                literal = [a.value for a in node.args if isinstance(a, ast.Constant) and a.value in kinds()]
                if literal:
                    by_hand.append(f"{rel}:{node.lineno} {name}({literal[0]!r}, …)")
    assert not by_hand, "events made without tejas.job_events:\n" + "\n".join(by_hand)


def test_the_apps_watcher_handles_exactly_the_kinds_a_training_job_emits():
    source = (ROOT / "pwa" / "features" / "jobs" / "watch.js").read_text()
    body = source[source.index("export function applyJobEvent") :]
    body = body[: body.index("\n}\n")]
    handled = set(re.findall(r"case '([a-z_]+)':", body))
    assert handled == kinds("train"), f"watch.js handles {sorted(handled)}; the schema's: {sorted(kinds('train'))}"


def test_tejas_train_reads_only_kinds_and_fields_the_schema_has():
    source = (ROOT / "tejas_ml" / "training" / "cli.py").read_text()
    body = source[source.index("def on_event") : source.index("common = {")]
    read = re.findall(r'kind == "([a-z_]+)"', body)
    assert read == ["started", "epoch"]
    for kind, block in zip(read, re.split(r'if kind == "[a-z_]+":|elif kind == "[a-z_]+":', body)[1:], strict=True):
        fields = set(re.findall(r"""data(?:\[|\.get\()['"]([a-z_]+)['"]""", block))
        alternative = next(a for a in SCHEMA["oneOf"] if a["properties"]["kind"]["const"] == kind)
        ref = alternative["properties"]["data"]
        refs = [r["$ref"] for r in ref["oneOf"]] if "oneOf" in ref else [ref["$ref"]]
        known = set().union(*(SCHEMA["$defs"][r.rsplit("/", 1)[1]]["properties"] for r in refs))
        assert fields and fields <= known, (kind, fields - known)
