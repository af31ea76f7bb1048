"""Zero 5xx from inputs, against a real `tejas serve` (with a real redis-server for the streams):

- a Last-Event-ID that is no event id this server sent (a non-ASCII digit, 23 digits) on job and stream
  events is refused (422 and a sentence, like a bad `after`) before a stream starts, never a 500 or an
  error inside a 200 stream;
- model records that are valid to push but malformed to use (no layout, no fc.weight, offsets past the
  parameters, classes or artifacts of the wrong type, …) get a 422 with a sentence from predictions,
  batches and streams, and GET /api/models still lists;
- an archive that expands too much as a whole (300 entries of exactly 1 MiB, ~800×) is refused at upload for
  training and for a batch, and nothing reaches the job cache.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import uuid
import zipfile

import pytest

from ..pycore.images_for_tests import bmp
from ..services import redis_server  # noqa: F401 (fixture)
from .conftest import Account
from .predict_support import image_bytes, synced_model

pytestmark = pytest.mark.slow

MiB = 1 << 20
# as bytes on the wire: "²" in Latin-1 (how servers decode header bytes) is a digit to str.isdigit()
HOSTILE_EVENT_IDS = ["²".encode("latin-1"), "١٢".encode(), b"1" * 23, str(2**63).encode(), b"-1", b"12abc", b"0x10"]


@pytest.fixture
def served(serve, tmp_path, default_export, redis_server):  # noqa: F811
    artifacts, _ = default_export
    server = serve(artifacts.parent, data_dir=tmp_path / "data", env={"TEJAS_REDIS_URL": redis_server.url})
    account = Account(server.url)
    ref, _ = synced_model(account, artifacts, ["cat", "dog"], tmp_path)
    return server, account, ref


def small_zip(n: int = 2) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(n):
            archive.writestr(f"{i}.png", image_bytes(i))
    return out.getvalue()


def expansion_bomb() -> bytes:
    """300 real BMPs each padded with zeros to exactly 1 MiB, in two classes: no entry is over the per-entry
    floor (1 MiB), the whole expands ~800× (the report's archive: 893×, 300 MiB from 344 KiB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(300):
            image = bmp(8 + i, 6)
            archive.writestr(f"{('cat', 'dog')[i % 2]}/{i:03}.bmp", image + b"\0" * (MiB - len(image)))
    return out.getvalue()


def first_status(account: Account, path: str, headers: dict | None = None, params: dict | None = None) -> int:
    """The status of an event stream, and for a 200 that its first bytes arrive (an error inside the stream
    ends it without a byte: httpx raises)."""
    with account.http.stream("GET", path, headers=headers, params=params) as response:
        if response.status_code == 200:
            next(response.iter_raw())
        else:
            response.read()
            assert response.json()["detail"].startswith("Invalid request: "), response.text
            assert "Last-Event-ID" in response.text or "after" in response.text, response.text
        return response.status_code


def test_a_bad_last_event_id_is_refused_on_job_and_stream_events(served):
    server, account, ref = served
    job = account.post("/api/batches", params={"model": ref}, content=small_zip())
    assert job.status_code == 201, job.text
    job_path = f"/api/jobs/{job.json()['id']}/events"
    assert account.put("/api/streams/door", json={"model": ref}).status_code in (200, 201)
    stream_path = "/api/streams/door/events"
    for path in (job_path, stream_path):
        for value in HOSTILE_EVENT_IDS:
            assert first_status(account, path, {"Last-Event-ID": value}) == 422, (path, value)
        assert first_status(account, path, params={"after": "1" * 23}) == 422, path
        # the ids this server sends still resume
        assert first_status(account, path, {"Last-Event-ID": "0"}) == 200, path
        assert first_status(account, path, {"Last-Event-ID": str(2**62)}) == 200, path


def test_a_non_utf8_last_event_id_header_is_refused_not_a_500(served):
    server, account, _ = served
    import http.client

    for path in ("/api/jobs/" + "0" * 32 + "/events", "/api/streams/door/events"):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.putrequest("GET", path)
        connection.putheader("Authorization", f"Bearer {account.token}")
        connection.putheader("Last-Event-ID", b"\xff\xfe\xb2")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 422, (path, response.status, response.read()[:300])
        connection.close()


def _malformed_variants(record: dict) -> dict[str, dict]:
    layout = record["layout"]
    weight = next(p for p in layout if p["name"] == "fc.weight")

    def variant(change) -> dict:
        data = copy.deepcopy(record)
        change(data)
        return data

    return {
        "no layout": variant(lambda d: d.pop("layout")),
        "no fc.weight": variant(lambda d: d.update(layout=[p for p in d["layout"] if p["name"] != "fc.weight"])),
        "layout not a list": variant(lambda d: d.update(layout="fc.weight")),
        "layout entry not an object": variant(lambda d: d.update(layout=[1, 2])),
        "offset past the parameters": variant(
            lambda d: d.update(layout=[{**p, "offset": 10**12} if p["name"] == "fc.weight" else p for p in d["layout"]])
        ),
        "offset a string": variant(
            lambda d: d.update(layout=[{**p, "offset": "0"} if p["name"] == "fc.bias" else p for p in d["layout"]])
        ),
        "weight of the wrong shape": variant(
            lambda d: d.update(
                layout=[{**p, "shape": [1, weight["shape"][1]]} if p["name"] == "fc.weight" else p for p in d["layout"]]
            )
        ),
        "no classes": variant(lambda d: d.pop("classes")),
        "classes as strings": variant(lambda d: d.update(classes=["cat", "dog"])),
        "one class": variant(lambda d: d.update(classes=d["classes"][:1])),
        "artifacts a string": variant(lambda d: d.update(artifacts="default")),
        "server a list": variant(lambda d: d.update(server=["job"])),
        "unknown mode": variant(lambda d: d.update(mode="everything")),
        "last block without its tensors": variant(lambda d: d.update(mode="last_block")),
    }


def test_model_records_valid_to_push_but_malformed_to_use_get_a_4xx(served, tmp_path):
    server, account, ref = served
    changes, _, _ = account.pull_all()
    original = next(c for c in changes if c["kind"] == "model" and c["id"] == ref.split(":", 1)[1])
    device = account.device()
    variants = _malformed_variants(original["data"])
    # one model whose parameters blob (whole float32s, as uploads require) is shorter than its layout says
    short = bytes(8)
    account.upload(short, kind="model")
    variants["parameters shorter than the layout"] = {
        **original["data"],
        "parameters": {"sha256": hashlib.sha256(short).hexdigest(), "length": 2},
    }
    refs = {}
    for what, data in variants.items():
        model_id = str(uuid.uuid4())
        device.push([device.change("model", model_id, original["project"], data)])  # valid to push
        refs[what] = f"model:{model_id}"
    files = [("images", ("a.png", image_bytes(1), "image/png"))]
    for what, model in refs.items():
        response = account.post("/api/predictions", data={"model": model}, files=files)
        assert response.status_code == 422, (what, response.status_code, response.text[:300])
        detail = response.json()["detail"]
        assert detail.endswith(".") and "sync" in detail, (what, detail)
        response = account.post("/api/batches", params={"model": model}, content=small_zip())
        assert response.status_code == 422, (what, response.status_code, response.text[:300])
        response = account.put(f"/api/streams/s{abs(hash(what)) % 10**6}", json={"model": model})
        assert response.status_code < 500, (what, response.status_code, response.text[:300])
    # listed as it is, whatever its name or date hold
    device.push([device.change("model", str(uuid.uuid4()), original["project"], {**original["data"], "name": 5})])
    listed = account.get("/api/models")
    assert listed.status_code == 200, listed.text[:500]
    assert {m["ref"] for m in listed.json()["models"]} >= set(refs.values()) | {ref}
    # the good model still predicts
    assert account.post("/api/predictions", data={"model": ref}, files=files).status_code == 200


def test_an_archive_that_expands_too_much_as_a_whole_is_refused_at_upload(served):
    server, account, ref = served
    bomb = expansion_bomb()
    assert len(bomb) < MiB
    for path, params in (("/api/jobs/upload", {}), ("/api/batches", {"model": ref})):
        response = account.post(path, params=params, content=bomb, headers={"Content-Type": "application/zip"})
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        detail = response.json()["detail"]
        assert detail.startswith("The zip cannot be used: expands "), detail
        assert "(300 MiB from " in detail and "at most 200×" in detail, detail
    assert account.get("/api/jobs").json()["jobs"] == []
    data = server.data_dir
    for area in ("work", "jobs", "uploads"):
        assert not [p for p in (data / area).rglob("*") if p.is_file()], f"{area}: something was written"


def test_values_a_database_cannot_store_get_a_4xx(server):
    """On both backends: a NUL character (Postgres text refuses it), NaN/Infinity and lone surrogates in
    record data (Postgres JSON refuses the first, no client can read back the second) → 4xx, never a 500."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        for route in ("/api/auth/signup", "/api/auth/signin"):
            response = anonymous.post(route, json={"email": "nul\u0000@example.org", "password": "long enough pass"})
            assert response.status_code < 500, (route, response.status_code, response.text[:300])
            if response.status_code == 422:
                assert response.json()["detail"].startswith("Invalid request: "), response.text
    account = Account(server.url)
    device = account.device()
    for literal in ("NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"'):
        change = device.change("project", "p1", "p1", {"name": "p", "value": 0})
        body = json.dumps({"device": device.id, "changes": [change]}).replace('"value": 0', f'"value": {literal}')
        response = account.post("/api/sync/push", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (literal, response.status_code, response.text[:300])
        assert "NaN or Infinity" in response.text or "not valid Unicode" in response.text, response.text
    assert account.get("/api/sync/pull").status_code == 200
    assert account.pull_all()[0] == []
