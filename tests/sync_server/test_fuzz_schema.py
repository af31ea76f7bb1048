"""Schema-driven fuzzing (schemathesis over the app's OpenAPI schema): whatever it sends, signed in or
not, the server answers without a 5xx."""

from __future__ import annotations

import atexit
import tempfile
from functools import cache
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from sync_server.core.config import Settings
from sync_server.core.db import migrate
from sync_server.jobs import make_queue
from sync_server.main import create_app
from sync_server.storage import make_store

from ..services import REDIS_SERVER, start_redis

DATA = Path(tempfile.mkdtemp(prefix="tejas-fuzz-"))
# the stream routes run against a real Redis (without one they answer their documented 503)
REDIS = start_redis() if REDIS_SERVER.exists() else None
if REDIS is not None:
    atexit.register(REDIS.stop)
APP = create_app(
    Settings(
        data_dir=DATA,
        artifacts_dir=DATA / "artifacts",
        argon2_time_cost=1,
        argon2_memory_kib=8,
        argon2_parallelism=1,
        redis_url=REDIS.url if REDIS else "redis://127.0.0.1:1/0",
    )
)
# what the lifespan does when uvicorn starts the app (schemathesis calls it without one)
migrate(APP.state.engine)
APP.state.store = make_store(APP.state.settings)
APP.state.jobs_store = make_store(APP.state.settings, "jobs")
APP.state.queue = make_queue(APP.state.settings, APP.state.sessions)  # not started: jobs stay queued
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)


@cache
def token() -> str:
    with TestClient(APP) as client:
        credentials = {"email": "fuzz@example.org", "password": "fuzzing pass"}
        client.post("/api/auth/signup", json=credentials)  # 202, no token: sign in next
        return client.post("/api/auth/signin", json=credentials).json()["token"]


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_no_server_errors(case):
    headers = (
        {}
        if (case.path, case.method) in {("/api/auth/signout", "POST"), ("/api/me", "DELETE")}
        else {"Authorization": f"Bearer {token()}"}
    )
    response = case.call(headers=headers)
    if REDIS is None and case.path.startswith("/api/streams") and response.status_code == 503:
        return  # documented: the stream routes need Redis
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])


# --- headers ------------------------------------------------------------------------------------
# Last-Event-ID is a declared header of the event routes, so the run above fuzzes it by its schema; here
# every operation that takes a body gets hostile Content-Length and Content-Type values (lying, negative,
# 23 digits, non-ASCII digits, bytes that are no UTF-8) and bodies (malformed JSON, half a multipart), and
# Last-Event-ID values outside its schema: never a 5xx.
PATH_VALUES = {"sha256": "0" * 64, "name": "fuzz-stream", "job_id": "0" * 32, "project_id": "p1"}
HOSTILE_NUMBERS = [b"0", b"1", b"-1", b"\xb2", "١٢".encode(), b"1" * 23, b"1e3", b" 7 ", b"", b"0x10", b"\xff\xfe"]
HOSTILE_TYPES = [
    b"application/json",
    b"application/json; charset=\xff",
    b"application/zip",
    b"application/octet-stream",
    b"multipart/form-data",
    b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=x",
    b"application/x-www-form-urlencoded",
    b"text/plain; charset=utf-99",
    b"\xff\xfe",
    b"",
]
HOSTILE_BODIES = [b"", b"{", b"{}", b"[]", b"null", b'{"device": "d1", "changes": [{}]}', b"PK\x03\x04", b"--x\r\n"]


def _with_body() -> list[tuple[str, str]]:
    out = []
    for path, item in APP.openapi()["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation and path not in ("/api/auth/signup",):  # sign-ups are rate limited
                out.append((method.upper(), path.format(**PATH_VALUES)))
    return sorted(out)


def _events_paths() -> list[str]:
    return sorted(
        path.format(**PATH_VALUES)
        for path, item in APP.openapi()["paths"].items()
        if any(p["name"] == "Last-Event-ID" for p in item.get("get", {}).get("parameters", []))
    )


CLIENT = TestClient(APP, raise_server_exceptions=False)  # a 500 comes back as a response (lifespan as above)
header_value = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS), st.binary(max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b)
)


@given(
    operation=st.sampled_from(_with_body()),
    length=header_value,
    content_type=st.one_of(st.sampled_from(HOSTILE_TYPES), header_value),
    body=st.one_of(st.sampled_from(HOSTILE_BODIES), st.binary(max_size=200)),
)
@example(operation=("POST", "/api/jobs/upload"), length=b"\xb2", content_type=b"application/zip", body=b"PK")
@example(operation=("POST", "/api/sync/push"), length=b"1" * 23, content_type=b"application/json", body=b"{")
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_content_length_and_type_never_5xx(operation, length, content_type, body):
    method, path = operation
    headers = [
        ("authorization", f"Bearer {token()}".encode()),
        ("content-length", length),
        ("content-type", content_type),
    ]
    response = CLIENT.request(method, path, content=body, headers=headers)
    if REDIS is None and path.startswith("/api/streams") and response.status_code == 503:
        return
    assert response.status_code < 500, (method, path, length, content_type, body[:60], response.text[:300])


@given(path=st.sampled_from(_events_paths()), value=header_value)
@example(path=f"/api/jobs/{PATH_VALUES['job_id']}/events", value=b"\xb2")
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_last_event_id_never_5xx(path, value):
    response = CLIENT.get(path, headers=[("authorization", f"Bearer {token()}".encode()), ("last-event-id", value)])
    assert response.status_code < 500, (path, value, response.text[:300])
    assert response.status_code in (404, 422), (path, value, response.status_code)
