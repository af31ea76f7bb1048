"""Text training jobs against a real `tejas serve` (embedded defaults, in-process queue): a synced text project
fine-tunes all-MiniLM-L6-v2 to results the app can use (docs/jobs.md "Text jobs"); an uploaded CSV makes a
job that cancels; what a text job cannot do gets a clear 4xx."""

from __future__ import annotations

import json
import uuid

import numpy as np
import onnxruntime
import pytest

from tejas_ml.training.text_data import encode, pad

from ..training.spam import content_id, csv_bytes, spam_rows
from .conftest import Account, png_bytes
from .test_jobs import FAST, read_events, wait_for_event
from .test_text_sync import text_sample

pytestmark = pytest.mark.slow


@pytest.fixture
def text_server(serve, tmp_path):
    (tmp_path / "artifacts").mkdir()
    return serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env=FAST)


def sync_text_project(account: Account, rows: list[tuple[str, str]]) -> tuple[str, dict]:
    device = account.device()
    project = uuid.uuid4().hex
    classes = {"ham": f"c-{uuid.uuid4().hex[:8]}", "spam": f"c-{uuid.uuid4().hex[:8]}"}
    changes = [device.change("project", project, project, {"name": "SMS", "kind": "text"})]
    changes += [device.change("class", c, project, {"name": n, "order": i}) for i, (n, c) in enumerate(classes.items())]
    for label, text in rows:
        account.upload(text.encode(), kind="text")
        changes.append(text_sample(device, project, text, classes[label]))
    device.push(changes)
    return project, classes


def test_a_synced_text_project_fine_tunes_on_the_server(text_server):
    alice = Account(text_server.url)
    rows = spam_rows(10)
    project, classes = sync_text_project(alice, rows)
    for mode in ("head", "last_block"):
        refused = alice.post("/api/jobs", json={"project": project, "mode": mode})
        assert refused.status_code == 422 and "mode full" in refused.json()["detail"], refused.text
    refused = alice.post("/api/jobs", json={"project": project, "mode": "full", "max_length": 4})
    assert refused.status_code == 422
    response = alice.post("/api/jobs", json={"project": project, "epochs": 1, "batch_size": 8, "max_length": 32})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["options"]["modality"] == "text" and job["options"]["max_length"] == 32

    events = read_events(alice, job["id"])
    kinds = [e["event"] for e in events]
    assert kinds[0] == "queued" and "started" in kinds and kinds[-1] == "done", events[-1]
    epoch = next(e["data"] for e in events if e["event"] == "epoch")
    assert {"loss", "train_accuracy", "validation_accuracy"} <= set(epoch)
    job = alice.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done" and job["classes"] == ["ham", "spam"] and job["images"] == len(rows)
    files = job["result"]["files"]
    for name in ("model.onnx", "model.pt", "tokenizer.json", "metrics.json", "app_model.json", "parameters.bin"):
        assert name in files, name
    assert "artifacts/encoder.onnx" in files and "artifacts/manifest.json" in files

    def download(name: str) -> bytes:
        got = alice.get(f"/api/jobs/{job['id']}/files/{name}")
        assert got.status_code == 200, got.text
        return got.content

    app_model = json.loads(download("app_model.json"))
    assert [c["id"] for c in app_model["classes"]] == [classes["ham"], classes["spam"]]
    assert app_model["artifacts"]["kind"] == "job" and app_model["artifacts"]["modality"] == "text"
    assert set(app_model["split"]["train"] + app_model["split"]["validation"]) == {content_id(t) for _, t in rows}
    assert all(f"artifacts/{name}" in files for name in app_model["artifacts"]["files"])
    metrics = json.loads(download("metrics.json"))
    assert metrics["report"]["count"] == len(app_model["split"]["validation"]) and "f1" in metrics["report"]["macro"]

    session = onnxruntime.InferenceSession(download("model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == ["ham", "spam"]
    tokenizer = text_server.data_dir / "tokenizer-download.json"
    tokenizer.write_bytes(download("tokenizer.json"))
    ids, mask = pad(encode(tokenizer, [t for _, t in rows[:4]], json.loads(meta["tejas_text"])["max_length"]))
    probabilities = session.run(["probabilities"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert probabilities.shape == (4, 2) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    # another user learns nothing of it
    bob = Account(text_server.url)
    assert bob.get(f"/api/jobs/{job['id']}/files/model.onnx").status_code == 404


def test_an_uploaded_text_csv_makes_a_job_that_cancels_and_bad_csvs_are_refused(text_server):
    alice = Account(text_server.url)

    def upload(body: bytes, expect: int, **options):
        response = alice.post(
            "/api/jobs/upload",
            params={"modality": "text", **options},
            content=body,
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == expect, response.text
        return response.json()

    assert "The CSV cannot be used" in upload(png_bytes(1), 400)["detail"]
    assert "at least 2 classes" in upload(csv_bytes([("ham", "a"), ("ham", "b"), ("ham", "c")]), 422)["detail"]
    assert "mode full" in upload(csv_bytes(spam_rows(3)), 422, mode="head")["detail"]
    assert alice.get("/api/jobs").json()["jobs"] == []

    job = upload(csv_bytes(spam_rows(6)), 201, epochs=200, patience=0, batch_size=2, max_length=16, name="sms")
    assert job["classes"] == ["ham", "spam"] and job["source"] == "upload" and job["name"] == "sms"
    wait_for_event(alice, job["id"], lambda e: e["event"] == "epoch")
    response = alice.delete(f"/api/jobs/{job['id']}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    assert read_events(alice, job["id"], timeout=120)[-1]["event"] == "cancelled"
    job = alice.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "cancelled" and job["result"] is None and job["epoch"] < 200
