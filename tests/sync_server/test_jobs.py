"""Training jobs on the embedded defaults (in-process queue) against a real `tejas serve`: an uploaded zip
and a synced project train to results that agree with PyTorch; the event stream resumes after
Last-Event-ID without gaps; a server killed mid-job finishes the job from its checkpoint; cancel; and
bad input (hostile zips, one class, 500 MB + 1 byte, absurd options, another user's project) gets a
clear 4xx or failed event and leaves nothing behind."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import pytest
import torch
import torchvision
from PIL import Image

from sync_server.core.clock import parse_iso

from ..conftest import TEJAS
from ..pycore.test_dataset import CASES
from ..training.animals import animal_pngs, write_zip
from .conftest import Account, project_changes, sample_change, sha

pytestmark = pytest.mark.slow

FAST = {"TEJAS_JOB_HEARTBEAT_SECONDS": "1", "TEJAS_JOB_CHECKPOINT_SECONDS": "1", "TEJAS_JOB_STALE_SECONDS": "5"}


@pytest.fixture
def job_server(serve, tmp_path, default_export):
    """`tejas serve` whose artifact folder holds the default export (what jobs start from)."""
    artifacts, _ = default_export

    def start(**env):
        return serve(artifacts.parent, data_dir=tmp_path / "data", env={**FAST, **env})

    return start


def stream_events(account: Account, job_id: str, last_event_id: int | None = None, timeout: float = 600):
    """The job's server-sent events as they arrive ({id, event, data}); ends with the stream."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    current = {}
    with account.stream(
        "GET", f"/api/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(timeout, read=timeout)
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    yield current
                current = {}
            elif line.startswith("id:"):
                current["id"] = int(line[3:].strip())
            elif line.startswith("event:"):
                current["event"] = line[6:].strip()
            elif line.startswith("data:"):
                current["data"] = json.loads(line[5:].strip())


def read_events(account: Account, job_id: str, last_event_id: int | None = None, timeout: float = 600) -> list[dict]:
    """The whole stream (it ends after a terminal event)."""
    return list(stream_events(account, job_id, last_event_id, timeout))


def wait_for_event(account: Account, job_id: str, predicate, timeout: float = 600) -> dict:
    """Read the stream until an event satisfies `predicate`; returns it (the connection is then closed)."""
    events = stream_events(account, job_id, timeout=timeout)
    try:
        return next(e for e in events if predicate(e))
    except StopIteration:
        raise AssertionError(f"the stream of job {job_id} ended without the awaited event") from None
    finally:
        events.close()


def upload(account: Account, data: bytes, expect: int = 201, **options) -> httpx.Response:
    response = account.post(
        "/api/jobs/upload", params=options, content=data, headers={"Content-Type": "application/zip"}
    )
    assert response.status_code == expect, response.text
    return response


def preprocessed(png: bytes, size: int = 224) -> np.ndarray:
    """The manifest's preprocessing (resize the shorter side to size·256/224, centre crop `size`, ImageNet
    normalisation)."""
    from torchvision import transforms as T

    image = Image.open(io.BytesIO(png)).convert("RGB")
    tf = T.Compose(
        [
            T.Resize(round(size * 256 / 224), antialias=True),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    return tf(image).unsqueeze(0).numpy()


def check_results_agree(account: Account, job: dict, pngs: list[bytes], architecture: str) -> None:
    """model.onnx (onnxruntime) and model.pt (torchvision, strict) give the same probabilities."""
    files = job["result"]["files"]
    for name in ("model.onnx", "model.pt", "metrics.json", "app_model.json", "parameters.bin"):
        assert name in files, sorted(files)
    fetched = {}
    for name in ("model.onnx", "model.pt", "parameters.bin", "app_model.json", "metrics.json"):
        response = account.get(f"/api/jobs/{job['id']}/files/{name}")
        assert response.status_code == 200, response.text
        assert sha(response.content) == files[name]["sha256"]
        fetched[name] = response.content
    session = onnxruntime.InferenceSession(fetched["model.onnx"], providers=["CPUExecutionProvider"])
    batch = np.concatenate([preprocessed(p, session.get_inputs()[0].shape[2]) for p in pngs])
    onnx_probabilities = session.run(["probabilities"], {"image": batch})[0]
    classes = len(job["classes"])
    model = getattr(torchvision.models, architecture)(num_classes=classes)
    model.load_state_dict(torch.load(io.BytesIO(fetched["model.pt"]), weights_only=True), strict=True)
    with torch.no_grad():
        pt_probabilities = torch.softmax(model.eval()(torch.from_numpy(batch)), 1).numpy()
    assert np.abs(onnx_probabilities - pt_probabilities).max() <= 1e-4
    app_model = json.loads(fetched["app_model.json"])
    assert len(fetched["parameters.bin"]) == 4 * app_model["parameters"]["length"]
    metrics = json.loads(fetched["metrics.json"])
    assert metrics["report"]["count"] == len(metrics["split"]["validation"])
    cell_ids = [i for ids in metrics["report"]["cells"].values() for i in ids]
    assert sorted(cell_ids) == sorted(metrics["split"]["validation"])
    assert job["result"]["checks"]["onnx_max_abs_diff"] <= 1e-4


def check_server_predictions(account: Account, job: dict, pngs: list[bytes], tmp_path: Path) -> None:
    """The job's model predicts on the server by its job reference, and so does the same model synced back
    as the app syncs one (app_model.json + parameters.bin: the server writes its ONNX from the artifacts,
    here in last-block mode), both equal to model.onnx run locally."""
    from tejas_ml.prediction.model import Classifier

    local = tmp_path / "job-model.onnx"
    local.write_bytes(account.get(f"/api/jobs/{job['id']}/files/model.onnx").content)
    expected = Classifier(local).predict(pngs, 3)
    app_model = json.loads(account.get(f"/api/jobs/{job['id']}/files/app_model.json").content)
    parameters = account.get(f"/api/jobs/{job['id']}/files/parameters.bin").content
    account.upload(parameters, kind="model")
    device = account.device()
    project = "synced-back"
    changes = project_changes(device, project, "synced back", {c["name"]: c["id"] for c in app_model["classes"]})
    record = {k: app_model[k] for k in ("mode", "classes", "layout", "artifacts")}
    record["parameters"] = {"sha256": sha(parameters), "length": app_model["parameters"]["length"]}
    changes.append(device.change("model", "m-synced", project, record))
    changes.append(device.change("head", project, project, {"modelId": "m-synced"}))
    device.push(changes)
    files = [("images", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)]
    for ref in (f"job:{job['id']}", "model:m-synced", f"project:{project}"):
        response = account.post("/api/predictions", data={"model": ref, "top_k": "3"}, files=files)
        assert response.status_code == 200, (ref, response.text)
        for row, want in zip(response.json()["rows"], expected, strict=True):
            assert [t["class"] for t in row["top"]] == [t["class"] for t in want["top"]], ref
            got = [t["probability"] for t in row["top"]]
            assert np.allclose(got, [t["probability"] for t in want["top"]], atol=1e-4), ref
    refs = {m["ref"] for m in account.get("/api/models").json()["models"]}
    assert {f"job:{job['id']}", "model:m-synced"} <= refs


def test_an_uploaded_zip_trains_streams_its_events_and_gives_results_that_agree(job_server, tmp_path):
    server = job_server()
    alice = Account(server.url)
    data = animal_pngs(3, 6)
    job = upload(
        alice, write_zip(tmp_path / "d.zip", data).read_bytes(), mode="last_block", epochs=3, batch_size=8
    ).json()
    assert job["status"] == "queued" and job["source"] == "upload" and job["classes"] == ["bear", "bird", "cat"]
    events = read_events(alice, job["id"])
    kinds = [e["event"] for e in events]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1)), "ids are 1, 2, … without gaps"
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "done", kinds
    epochs = [e["data"] for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for e in epochs:
        assert {"loss", "train_accuracy", "validation_accuracy", "images_per_second", "eta_seconds"} <= set(e)
    started = events[1]["data"]
    assert started["device"] in ("cpu", "cuda") and started["images"] == 18
    # A client that reconnects after event 3 gets exactly the rest.
    assert read_events(alice, job["id"], last_event_id=3) == events[3:]
    job = alice.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done" and job["expires"] and job["device"] == started["device"]
    pngs = [p for ps in data.values() for p in ps]
    check_results_agree(alice, job, pngs[:6], "mobilenet_v2")
    app_model = job["result"]["app_model"]
    assert app_model["mode"] == "last_block" and app_model["artifacts"]["kind"] == "default"
    assert alice.get("/api/jobs").json()["jobs"][0]["id"] == job["id"]
    check_server_predictions(alice, job, pngs[:4], tmp_path)
    # Deleting a finished job deletes its results.
    assert alice.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not [p for p in (tmp_path / "data" / "jobs").rglob("*") if p.is_file()]


def test_a_synced_project_trains_with_its_classes_and_split(job_server):
    server = job_server()
    alice = Account(server.url)
    device = alice.device()
    classes = {"bear": "c-bear", "bird": "c-bird"}
    data = animal_pngs(2, 5)
    changes = project_changes(device, "p1", "Animals", classes)
    for name, pngs in data.items():
        for png in pngs:
            alice.upload(png)
            changes.append(sample_change(device, "p1", png, classes[name]))
    device.push(changes)
    job = alice.post("/api/jobs", json={"project": "p1", "mode": "head", "epochs": 2, "batch_size": 4}).json()
    assert job["name"] == "Animals" and job["source"] == "project"
    events = read_events(alice, job["id"])
    assert events[-1]["event"] == "done", events[-1]
    job = alice.get(f"/api/jobs/{job['id']}").json()
    app_model = job["result"]["app_model"]
    assert app_model["classes"] == [{"id": "c-bear", "name": "bear"}, {"id": "c-bird", "name": "bird"}]
    ids = {sha(p) for ps in data.values() for p in ps}
    metrics = json.loads(alice.get(f"/api/jobs/{job['id']}/files/metrics.json").content)
    assert set(metrics["split"]["train"]) | set(metrics["split"]["validation"]) == ids
    # The app's split: per class round(5 × 0.2) = 1 image validates.
    assert len(metrics["split"]["validation"]) == 2
    check_results_agree(alice, job, data["bear"][:2], "mobilenet_v2")

    # Results are kept for the retention period after the job ended, then purged with their files.
    def purge(now: str) -> str:
        run = subprocess.run(
            [TEJAS, "server", "purge", "--now", now], env=server.env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    expires = parse_iso(job["expires"])
    assert "purged 0 training job(s)" in purge((expires - timedelta(minutes=1)).isoformat())
    assert alice.get(f"/api/jobs/{job['id']}/files/model.onnx").status_code == 200
    assert "purged 1 training job(s)" in purge((expires + timedelta(minutes=1)).isoformat())
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 404
    assert not [p for p in (server.data_dir / "jobs").rglob("*") if p.is_file()]


def test_a_server_killed_mid_job_finishes_it_from_its_checkpoint(job_server, tmp_path):
    server = job_server()
    alice = Account(server.url)
    data = animal_pngs(3, 6)
    job = upload(
        alice, write_zip(tmp_path / "d.zip", data).read_bytes(), mode="full", epochs=4, batch_size=8, patience=0
    ).json()
    checkpoint = wait_for_event(alice, job["id"], lambda e: e["event"] == "checkpoint" and e["data"]["epoch"] >= 1)
    server.kill()  # SIGKILL: the server and (within a heartbeat) its worker process
    server.start()
    events = read_events(alice, job["id"])
    kinds = [e["event"] for e in events]
    assert kinds.count("done") == 1 and kinds[-1] == "done", kinds
    starts = [e["data"] for e in events if e["event"] == "started"]
    assert len(starts) == 2, kinds
    assert starts[1]["resumed_from_epoch"] >= checkpoint["data"]["epoch"] >= 1
    epochs = [e["data"]["epoch"] for e in events if e["event"] == "epoch"]
    assert sorted(set(epochs)) == [1, 2, 3, 4]
    done = alice.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "done"
    app_model = done["result"]["app_model"]
    assert app_model["artifacts"]["kind"] == "job" and app_model["mode"] == "head"
    assert "artifacts/manifest.json" in done["result"]["files"]
    check_results_agree(alice, done, data["bear"][:3], "mobilenet_v2")


def test_cancel_stops_a_running_job_and_a_queued_one(job_server, tmp_path):
    server = job_server()
    alice = Account(server.url)
    zip_bytes = write_zip(tmp_path / "d.zip", animal_pngs(2, 6)).read_bytes()
    running = upload(alice, zip_bytes, mode="full", epochs=200, batch_size=4, patience=0).json()
    queued = upload(alice, zip_bytes, mode="head", epochs=2).json()
    wait_for_event(alice, running["id"], lambda e: e["event"] == "epoch")
    response = alice.delete(f"/api/jobs/{queued['id']}")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    response = alice.delete(f"/api/jobs/{running['id']}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    events = read_events(alice, running["id"], timeout=120)
    assert events[-1]["event"] == "cancelled"
    assert [e["event"] for e in read_events(alice, queued["id"])][-1] == "cancelled"
    job = alice.get(f"/api/jobs/{running['id']}").json()
    assert job["status"] == "cancelled" and job["result"] is None and job["epoch"] < 200


def _no_leftovers(data_dir: Path) -> None:
    assert not [p for p in (data_dir / "uploads").glob("*") if p.is_file()]
    assert not [p for p in (data_dir / "jobs").rglob("*") if p.is_file()]


REFUSED = [c for c in CASES if (c.refused or c.refused_re) and c.limits == CASES[0].limits]


def test_hostile_zips_are_refused_with_the_cores_message_and_leave_nothing(job_server, tmp_path):
    server = job_server()
    alice = Account(server.url)
    assert len(REFUSED) >= 10  # the other cases skip files (tests/training/test_trainer.py reads all of them)
    for case in REFUSED:
        folder = tmp_path / case.id
        folder.mkdir()
        archive = case.build(folder)
        response = upload(alice, archive.read_bytes(), expect=400)
        detail = response.json()["detail"]
        assert detail.startswith("The zip cannot be used: "), detail
        if case.refused:
            assert detail.endswith(case.refused.removeprefix("data.zip: ")), (case.id, detail)
    assert alice.get("/api/jobs").json()["jobs"] == []
    _no_leftovers(tmp_path / "data")


def test_bad_requests_get_clear_errors_and_leave_nothing(job_server, tmp_path):
    server = job_server()
    alice, bob = Account(server.url), Account(server.url)
    good = write_zip(tmp_path / "d.zip", animal_pngs(2, 3)).read_bytes()
    # One class.
    one = write_zip(tmp_path / "one.zip", animal_pngs(1, 4)).read_bytes()
    assert "at least 2 classes" in upload(alice, one, expect=422).json()["detail"]
    # A synced project with one class, and one whose second class has a single image.
    device = alice.device()
    pngs = animal_pngs(2, 3)
    changes = project_changes(device, "solo", "Solo", {"bear": "c1"})
    changes += project_changes(device, "thin", "Thin", {"bear": "t1", "bird": "t2"})
    for png in pngs["bear"]:
        alice.upload(png)
        changes += [sample_change(device, "solo", png, "c1"), sample_change(device, "thin", png, "t1")]
    alice.upload(pngs["bird"][0])
    changes.append(sample_change(device, "thin", pngs["bird"][0], "t2"))
    device.push(changes)
    response = alice.post("/api/jobs", json={"project": "solo"})
    assert response.status_code == 422 and response.json()["detail"] == (
        "Training needs at least 2 classes (this project has 1)."
    )
    response = alice.post("/api/jobs", json={"project": "thin"})
    assert response.status_code == 422 and response.json()["detail"] == (
        'Class "bird" has 1 image; add at least 2 to train.'
    )
    # Absurd options, each refused with a sentence naming the field.
    for params, field in [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10**9}, "epochs"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"validation_share": 1.5}, "validation_share"),
        ({"mode": "everything"}, "mode"),
        ({"backbone": "vgg"}, "backbone"),
        ({"mode": "head", "backbone": "resnet18"}, "backbone"),
    ]:
        detail = upload(alice, good, expect=422, **params).json()["detail"]
        assert field in detail and detail.startswith("Invalid request"), detail
        body = {"project": "p1", **params}
        assert alice.post("/api/jobs", json=body).status_code in (404, 422)
    assert alice.post("/api/jobs", json={"project": "p1", "epochs": False}).status_code == 422
    # Another user's project is no project of yours.
    device = bob.device()
    changes = project_changes(device, "bobs", "Bob's", {"a": "ca", "b": "cb"})
    for i, class_id in enumerate(["ca", "ca", "cb", "cb"]):
        png = animal_pngs(2, 4)["bear" if class_id == "ca" else "bird"][i % 2 + (0 if class_id == "ca" else 2)]
        bob.upload(png)
        changes.append(sample_change(device, "bobs", png, class_id))
    device.push(changes)
    response = alice.post("/api/jobs", json={"project": "bobs"})
    assert response.status_code == 404 and "No synced project" in response.json()["detail"]
    # 500 MB + 1 byte, streamed without a Content-Length: refused as it arrives.
    limit = 500 * 1024 * 1024

    def body():
        chunk = bytes(1 << 20)
        for _ in range(limit // len(chunk)):
            yield chunk
        yield b"\0"

    response = alice.post("/api/jobs/upload", content=body(), headers={"Content-Type": "application/zip"})
    assert response.status_code == 413 and "500 MiB" in response.json()["detail"]
    # Declared too large: refused before a byte of the body is read (http.client sends what it is told).
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.putrequest("POST", "/api/jobs/upload")
    for key, value in {
        "Authorization": f"Bearer {alice.token}",
        "Content-Type": "application/zip",
        "Content-Length": str(limit + 1),
    }.items():
        connection.putheader(key, value)
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()
    assert alice.get("/api/jobs").json()["jobs"] == [] and bob.get("/api/jobs").json()["jobs"] == []
    _no_leftovers(tmp_path / "data")


def test_an_image_that_cannot_be_decoded_fails_the_job_with_the_reason(job_server, tmp_path):
    """Headers pass the upload's checks (the core reads headers only); the pixels are cut off."""
    server = job_server()
    alice = Account(server.url)
    data = animal_pngs(2, 3)
    png = data["bird"][0]
    data["bird"][0] = png[:50] + bytes(len(png) - 62) + png[-12:]  # IHDR and IEND intact, pixel data zeroed
    job = upload(alice, write_zip(tmp_path / "d.zip", data).read_bytes(), mode="head", epochs=1).json()
    events = read_events(alice, job["id"])
    assert events[-1]["event"] == "failed", events[-1]
    reason = events[-1]["data"]["reason"]
    assert reason.startswith(f"image {sha(data['bird'][0])[:12]}… cannot be decoded"), reason
    assert alice.get(f"/api/jobs/{job['id']}").json()["error"] == reason
