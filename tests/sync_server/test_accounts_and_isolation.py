"""Accounts (argon2, hashed tokens, expiry, revocation, rate limit) and isolation: every route in the
OpenAPI schema, walked as another user against the first user's ids, answers 404 and changes nothing."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import uuid
import zipfile

import httpx
import pytest

from ..services import redis_server  # noqa: F401 (fixture)
from .conftest import PASSWORD, Account, png_bytes, project_changes, sample_change, sha

OPEN_ROUTES = {
    ("get", "/api/health"),
    ("get", "/api/health/live"),
    ("get", "/api/health/ready"),
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/signin"),
}


def operations(base_url: str):
    schema = httpx.get(base_url + "/api/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_passwords_argon2_tokens_hashed_at_rest(embedded_server):
    server = embedded_server()
    alice = Account(server.url)
    database = server.data_dir / "tejas.db"
    with sqlite3.connect(database) as db:
        (stored,) = db.execute("select password_hash from users").fetchone()
        digests = [row[0] for row in db.execute("select digest from tokens")]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert digests == [hashlib.sha256(alice.token.encode()).hexdigest()]
    raw = b"".join(p.read_bytes() for p in server.data_dir.glob("tejas.db*"))
    assert alice.token.encode() not in raw and PASSWORD.encode() not in raw
    # sign out revokes that token only
    phone = Account(server.url, email=alice.email, signup=False)
    assert alice.post("/api/auth/signout").status_code == 204
    assert alice.get("/api/me").status_code == 401
    assert phone.get("/api/me").json()["email"] == alice.email
    # wrong password, unknown email, taken email, short password: clear answers
    signin = httpx.post(server.url + "/api/auth/signin", json={"email": alice.email, "password": "nope nope"})
    assert signin.status_code == 401 and signin.json()["detail"] == "Wrong email or password."
    unknown = httpx.post(server.url + "/api/auth/signin", json={"email": "who@example.org", "password": "nope nope"})
    assert unknown.status_code == 401 and unknown.json() == signin.json()
    taken = httpx.post(server.url + "/api/auth/signup", json={"email": alice.email.upper(), "password": PASSWORD})
    assert taken.status_code == 202  # answered like a new email (test_auth_abuse.py)
    short = httpx.post(server.url + "/api/auth/signup", json={"email": "s@example.org", "password": "short"})
    assert short.status_code == 400 and "at least 8 characters" in short.json()["detail"]


def test_sign_in_attempts_are_rate_limited(embedded_server):
    server = embedded_server(TEJAS_LOGIN_MAX_FAILURES="3")
    alice = Account(server.url)
    attempt = lambda password: httpx.post(  # noqa: E731
        server.url + "/api/auth/signin", json={"email": alice.email, "password": password}
    )
    assert [attempt("wrong password").status_code for _ in range(3)] == [401, 401, 401]
    limited = attempt(PASSWORD)  # even the right password waits now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in limited.json()["detail"]


def test_expired_token_is_refused(embedded_server):
    server = embedded_server(TEJAS_TOKEN_DAYS="-1")  # issued already expired: no waiting for a clock
    alice = Account(server.url)
    assert alice.get("/api/me").status_code == 401


def test_every_route_needs_a_valid_token(embedded_server):
    server = embedded_server()
    bad = {
        "missing": {},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "wrong scheme": {"Authorization": "Basic YTpi"},
        "empty": {"Authorization": "Bearer"},
    }
    ids = {"project_id": "p1", "sha256": "0" * 64, "job_id": "0" * 32, "name": "model.onnx"}
    checked = 0
    for method, path, _ in operations(server.url):
        if (method, path) in OPEN_ROUTES:
            continue
        url = server.url + path.format(**ids)
        for name, headers in bad.items():
            response = httpx.request(method, url, headers=headers, params={"kind": "image"}, json={})
            assert response.status_code == 401, (method, path, name, response.text)
        checked += 1
    assert checked >= 10


def two_class_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(4):
            z.writestr(f"{'ab'[i % 2]}/{i}.png", png_bytes(100 + i))
    return buffer.getvalue()


def make_alice(server):
    """Alice with a project (2 images, a model) synced; returns (account, project, image, parameters)."""
    alice = Account(server.url)
    device = alice.device()
    project, cls, model = (uuid.uuid4().hex for _ in range(3))
    image, parameters = png_bytes(1), bytes(range(64))
    alice.upload(image)
    alice.upload(png_bytes(2))
    alice.upload(parameters, kind="model")
    device.push(
        [
            *project_changes(device, project, "Secret", {"cat": cls}),
            sample_change(device, project, image, cls),
            sample_change(device, project, png_bytes(2), cls),
            device.change("model", model, project, {"parameters": {"sha256": sha(parameters), "length": 16}}),
            device.change("head", project, project, {"modelId": model}),
        ]
    )
    return alice, project, image, parameters


# Bodies for the routes that take one; a route added later without an entry here fails the walk.
def bodies(project: str, image: bytes, bob_device: str):
    foreign_change = {
        "mutation": 1,
        "kind": "project",
        "id": project,
        "project": project,
        "rev": "999999999999999-000000-" + bob_device,
        "deleted": True,
        "data": None,
    }
    return {
        ("post", "/api/auth/signup"): {"json": {"email": "x@example.org", "password": "pw"}},
        ("post", "/api/auth/signin"): {"json": {"email": "x@example.org", "password": "pw"}},
        ("post", "/api/blobs/missing"): {"json": {"sha256": [sha(image)]}},
        ("put", "/api/blobs/{sha256}"): {"content": b"not the bytes", "params": {"kind": "image"}},
        ("post", "/api/sync/push"): {"json": {"device": bob_device, "changes": [foreign_change]}},
        ("post", "/api/jobs"): {"json": {"project": project, "mode": "head", "epochs": 1}},
        ("post", "/api/jobs/upload"): {"content": two_class_zip(), "headers": {"Content-Type": "application/zip"}},
        # Alice's project's model, named by Bob: 404 like a model that does not exist
        ("post", "/api/predictions"): {
            "data": {"model": f"project:{project}"},
            "files": [("images", ("a.png", image, "image/png"))],
        },
        ("post", "/api/batches"): {"content": two_class_zip(), "params": {"model": f"project:{project}"}},
        ("put", "/api/streams/{name}"): {"json": {"model": f"project:{project}"}},
        ("post", "/api/streams/{name}/images"): {"content": image, "params": {"key": "k"}},
    }


def test_another_user_can_never_reach_alices_data(embedded_server, redis_server):  # noqa: F811
    """Bob walks every route with Alice's ids: 404 wherever an id is in the path; elsewhere nothing of
    Alice's appears in the answer; afterwards Alice's data is exactly as it was."""
    server = embedded_server(TEJAS_REDIS_URL=redis_server.url)
    alice, project, image, parameters = make_alice(server)
    # a stream named like the job file the walk asks for (both path parameters are `name`)
    stream = alice.put("/api/streams/model.onnx", json={"model": f"project:{project}"})
    assert stream.status_code == 201, stream.text
    assert alice.post("/api/streams/model.onnx/images", params={"key": "k"}, content=image).status_code == 202
    job = alice.post(
        "/api/jobs/upload",
        content=two_class_zip(),
        params={"mode": "head", "epochs": 1},
        headers={"Content-Type": "application/zip"},
    ).json()
    before = alice.pull_all()[0]
    bob = Account(server.url)
    ids = {"project_id": project, "sha256": sha(image), "job_id": job["id"], "name": "model.onnx"}
    table = bodies(project, image, "bobs-phone")
    seen = set()
    # walked last: Bob's push (it makes Bob records under Alice's ids), then the routes that end his session
    last = {("post", "/api/sync/push"): 1, ("post", "/api/auth/signout"): 2, ("delete", "/api/me"): 3}
    for method, path, operation in sorted(operations(server.url), key=lambda op: last.get(op[:2], 0)):
        kwargs = dict(table.get((method, path), {}))
        needs_body = "requestBody" in operation
        assert not needs_body or kwargs, f"{method.upper()} {path}: add a body to bodies() so the walk covers it"
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        response = bob.request(method, path.format(**{n: ids[n] for n in names}), **kwargs)
        seen.add((method, path))
        if names and (method, path) != ("put", "/api/blobs/{sha256}"):
            assert response.status_code == 404, (method, path, response.text)
            assert project not in response.text and alice.email not in response.text
        elif (method, path) == ("put", "/api/blobs/{sha256}"):
            # content-addressed: anyone may send bytes that hash to a name, nobody can replace them
            assert response.status_code == 400
        else:
            assert response.status_code < 500, (method, path, response.text)
            if (method, path) != ("post", "/api/sync/push"):
                assert project not in response.text, (method, path)
            assert alice.email not in response.text and sha(image) not in response.text.replace(
                '"missing":["' + sha(image) + '"]', ""
            )
    assert {("delete", "/api/me"), ("post", "/api/sync/push"), ("get", "/api/sync/pull")} <= seen
    # Bob's push of a tombstone for Alice's project id touched only Bob's own records
    assert alice.pull_all()[0] == before
    assert alice.get(f"/api/blobs/{sha(image)}").content == image
    assert alice.get(f"/api/blobs/{sha(parameters)}").content == parameters
    assert [p["id"] for p in alice.get("/api/projects").json()] == [project]
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 200  # Bob's DELETE did not reach it
    assert alice.get("/api/streams/model.onnx").json()["appended"] == 1  # nor his DELETE and POST of her stream
    assert {
        ("put", "/api/streams/{name}"),
        ("delete", "/api/streams/{name}"),
        ("get", "/api/streams/{name}/events"),
    } <= seen
    assert {("post", "/api/jobs"), ("delete", "/api/jobs/{job_id}"), ("get", "/api/jobs/{job_id}/events")} <= seen


@pytest.mark.parametrize("header", ["Bearer " + "A" * 43, "Bearer ' or 1=1 --", "Bearer " + "x" * 5000])
def test_forged_tokens(embedded_server, header):
    server = embedded_server()
    response = httpx.get(server.url + "/api/me", headers={"Authorization": header})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_an_app_served_elsewhere_may_call_the_api(embedded_server):
    """CORS: tokens travel in a header (no cookies), so any origin's page may sync with this server."""
    server = embedded_server()
    preflight = httpx.options(
        server.url + "/api/sync/pull",
        headers={
            "Origin": "https://tejas.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://tejas.example")
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    answer = httpx.get(server.url + "/api/health", headers={"Origin": "https://tejas.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
