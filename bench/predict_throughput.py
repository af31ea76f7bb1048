#!/usr/bin/env python3
"""Prediction throughput of every way Tejas classifies many images, each beside native onnxruntime
measured in the same run on the same ONNX model and the same images.

Paths (docs/predictions.md):
  app       in Debian Chromium, offline code path: predictMany(projectId, Files) and predictMany(projectId,
            zip) in batches, against predict(projectId, blob) one image at a time
  cli       `tejas predict MODEL.onnx images.zip --out r.json`: the process's wall time, and its own rate
            (after the model is loaded)
  batch     POST /api/batches with the zip on a real `tejas serve`: the job's `started` → `done` (upload
            excluded) and POST → `done` (upload, runner start and model load included)
  stream    `tejas stream-worker` processes (1 and 2) on Redis, images appended through
            POST /api/streams/{name}/images: live (appended as fast as a few HTTP clients can while the
            workers run: rows/s once the first row exists, latency append → result row) and backlog (the
            same images appended while the warmed workers are paused with SIGSTOP, then resumed: what the
            workers alone sustain)
  native    onnxruntime on the same ONNX file, the images decoded and preprocessed beforehand (the model's
            own preprocessing), the same batch sizes and thread counts as each path; also with decoding
            (the Classifier the CLI, jobs and workers use, called in-process)

The model: a head trained in the browser on a few images of the same kind (3 classes) over the given
artifacts; its parameters are written as ONNX by the core's write_classifier_onnx (CLI and native) and
synced to the server as the app syncs a model (batch and stream): the same weights everywhere. Every
path's top-1 class is compared with native's for each image.

    python bench/predict_throughput.py                       # 300 images 300×200, streams with 1 and 2 workers
    python bench/predict_throughput.py --images 6 --batch-size 2 --stream-workers 1 --native-seconds 0.2  # the test
Writes bench/results/predict_throughput.json (or --out); exits 1 when a path failed (the JSON says which).
Needs artifacts (bash tools/dev.sh run exports artifacts/default), pwa/vendor, /usr/bin/chromium and
/usr/bin/redis-server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import _git, machine_facts, new_report, vendored_npm, write_report  # noqa: E402
from testkit.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testkit.server import TEJAS, Server  # noqa: E402
from testkit.services import REDIS_SERVER, RedisServer, stop_process, wait_for  # noqa: E402

# Code the numbers depend on besides bench/ and pwa/ (report.py's list covers bench/, pwa/, tools/).
SERVER_PATHS = ("sync_server", "tejas_ml")
CLASSES = ["sky", "sand", "forest"]
TRAIN_PER_CLASS = 5
TRAIN_EPOCHS = 5
START_S = 120  # a process (server, worker) to come up
PATH_TIMEOUT_S = 600  # any one path to finish

# --------------------------------------------------------------------------------------------- the page

SETUP = """async ([train, classNames, epochs]) => {
  const t = await import('/tejas.js');
  window.benchFileOf = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
  window.benchFiles = [];
  const project = await t.createProject('Throughput');
  const classes = [];
  for (const name of classNames) classes.push(await t.addClass(project.id, name));
  for (const [name, b64, y] of train) await t.addSamples(project.id, classes[y].id, [window.benchFileOf(b64, name)]);
  await t.train(project.id, { epochs });
  const model = await t.currentModel(project.id);
  return { projectId: project.id, mode: model.mode ?? 'head', classes: model.classes.map((c) => c.name),
           layout: model.layout, parameters: Array.from(model.parameters) };
}"""

ADD_FILES = """(images) => {
  for (const [name, b64] of images) window.benchFiles.push(window.benchFileOf(b64, name));
}"""

ADD_ZIPS = """([zip, warm]) => {
  window.benchZip = window.benchFileOf(zip, 'images.zip');
  window.benchWarmZip = window.benchFileOf(warm, 'warm.zip');
}"""

MANY = """async ([projectId, fromZip, batchSize, topK]) => {
  const t = await import('/tejas.js');
  // warm-up: the embed worker's session and wasm (and, for a zip, the Python worker that reads it)
  const warm = fromZip ? window.benchWarmZip : window.benchFiles.slice(0, batchSize);
  await t.predictMany(projectId, warm, { batchSize, topK });
  const source = fromZip ? window.benchZip : window.benchFiles;
  const started = performance.now();
  const result = await t.predictMany(projectId, source, { batchSize, topK });
  const seconds = (performance.now() - started) / 1000;
  const threads = (await t.embedImages([window.benchFiles[0]], {})).threads;
  return { seconds, innerSeconds: result.seconds, total: result.total, failed: result.failed, threads,
           rows: result.rows.map((r) => [r.file, r.error, r.top.map((c) => [c.name, c.probability])]) };
}"""

SINGLE = """async ([projectId, topK]) => {
  const t = await import('/tejas.js');
  await t.predict(projectId, window.benchFiles[0], { topK });  // warm-up
  const rows = [];
  const started = performance.now();
  for (const file of window.benchFiles) {
    const top = await t.predict(projectId, file, { topK });
    rows.push([file.name, null, top.map((c) => [c.name, c.probability])]);
  }
  const seconds = (performance.now() - started) / 1000;
  const threads = (await t.embedImages([window.benchFiles[0]], {})).threads;
  return { seconds, total: rows.length, threads, rows };
}"""


THREADS = """async () => (await (await import('/tejas.js')).embedImages([window.benchFiles[0]], {})).threads"""

# --------------------------------------------------------------------------------------------- images


def photo_like(count: int, size: tuple[int, int], seed: int, prefix: str = "img") -> list[tuple[str, bytes]]:
    """(name, bytes): smooth colour fields with detail and sensor-like noise, alternately JPEG (quality 88)
    and PNG, so decoding costs what a photo's does."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for i in range(count):
        coarse = np.asarray(
            Image.fromarray((rng.random((3, 4, 3)) * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        )
        fine = np.asarray(
            Image.fromarray((rng.random((max(2, h // 12), max(2, w // 12), 3)) * 255).astype(np.uint8)).resize(
                (w, h), Image.Resampling.BICUBIC
            )
        )
        pixels = 0.75 * coarse + 0.25 * fine + rng.normal(0, 3, (h, w, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        if i % 2 == 0:
            image.save(buffer, "JPEG", quality=88)
            out.append((f"{prefix}-{i:04d}.jpg", buffer.getvalue()))
        else:
            image.save(buffer, "PNG")
            out.append((f"{prefix}-{i:04d}.png", buffer.getvalue()))
    return out


def write_zip(path: Path, images: list[tuple[str, bytes]]) -> Path:
    """Stored, not deflated: JPEG and PNG are compressed already (as a user's zip of photos mostly is)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in images:
            archive.writestr(name, data)
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def epoch(moment: datetime) -> float:
    """A naive UTC datetime from the database as seconds since the epoch."""
    return moment.replace(tzinfo=UTC).timestamp()


def as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def top_rows(rows) -> dict[str, list[tuple[str, float]]]:
    """Rows of any path as {file: [(class, probability), ...]} (rows with an error are left out)."""
    return {name: [(c, float(p)) for c, p in top] for name, error, top in rows if not error}


def agreement(got: dict[str, list], reference: dict[str, list]) -> dict:
    """How a path's results compare with native onnxruntime's on the same images."""
    same = [name for name in reference if name in got and got[name] and got[name][0][0] == reference[name][0][0]]
    diffs = [abs(got[name][0][1] - reference[name][0][1]) for name in same]
    return {
        "rows": len(got),
        "top1_same_as_native": len(same),
        "top1_agreement": len(same) / max(1, len(reference)),
        "max_top1_probability_diff": max(diffs) if diffs else None,
    }


# --------------------------------------------------------------------------------------------- native


class Native:
    """Native onnxruntime on the ONNX file every path runs: the Classifier the CLI, jobs and workers use
    (one per thread count, the same session options), fed the images decoded and preprocessed beforehand.
    On a shared machine the load drifts, so each path is bracketed by native windows at its own threads ×
    batch, measured just before and just after it."""

    def __init__(self, model: Path, images: list[tuple[str, bytes]], seconds: float):
        from tejas_ml.prediction.model import Classifier, decode

        self.model, self.images, self.seconds = model, images, seconds
        self.classifiers: dict[int, Classifier] = {}
        spec = self.classifier(1).input_spec
        self.inputs = np.stack([decode(data, spec) for _, data in images])

    def classifier(self, threads: int):
        from tejas_ml.prediction.model import Classifier

        if threads not in self.classifiers:
            self.classifiers[threads] = Classifier(self.model, threads)
        return self.classifiers[threads]

    def window(self, threads: int, batch: int) -> float:
        """Images/s of back-to-back batches (cycling through the images) for at least `seconds`."""
        classifier = self.classifier(threads)
        classifier.probabilities(self.inputs[:batch])  # warm-up
        done, start, started = 0, 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < self.seconds or done == 0:
            if start >= len(self.inputs):
                start = 0
            part = self.inputs[start : start + batch]
            classifier.probabilities(part)
            done, start = done + len(part), start + batch
        return done / elapsed

    def with_decode(self, threads: int, batch: int) -> float:
        """Images/s of the Classifier on image bytes (Pillow decoding and resizing included), one window."""
        classifier = self.classifier(threads)
        done, start, started = 0, 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < self.seconds or done == 0:
            if start >= len(self.images):
                start = 0
            part = [data for _, data in self.images[start : start + batch]]
            classifier.predict(part, 3)
            done, start = done + len(part), start + batch
        return done / elapsed

    def table(self, configs) -> list[dict]:
        rows = []
        for threads, batch in sorted(configs):
            rate, decoded = self.window(threads, batch), self.with_decode(threads, batch)
            rows.append(
                {
                    "threads": threads,
                    "batch": batch,
                    "images_per_second": rate,
                    "with_decode_images_per_second": decoded,
                }
            )
            print(
                f"native threads={threads} batch={batch}: {rate:.1f} img/s (with decoding {decoded:.1f})",
                file=sys.stderr,
            )
        return rows

    def around(self, threads: int, batch: int, measure):
        """(measure()'s result, native img/s just before and just after it, without and with decoding)."""
        before = self.window(threads, batch), self.with_decode(threads, batch)
        result = measure()
        after = self.window(threads, batch), self.with_decode(threads, batch)
        return result, before, after

    def predictions(self, threads: int, top_k: int) -> dict[str, list]:
        """Native top-k per image: what each path's results are compared with."""
        classifier = self.classifier(threads)
        out = {}
        for i in range(0, len(self.images), 16):
            part = self.images[i : i + 16]
            for (name, _), result in zip(part, classifier.predict([d for _, d in part], top_k), strict=True):
                out[name] = [(t["class"], t["probability"]) for t in result["top"]]
        return out

    def close(self) -> None:
        for classifier in self.classifiers.values():
            classifier.close()


# --------------------------------------------------------------------------------------------- the app


class App:
    """Chromium on the app, one page: a project trained on a few images, the query images loaded as Files."""

    def __init__(self, playwright, server_url: str):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.version = self.browser.version
        self.context = self.browser.new_context()
        self.page = self.context.new_page()
        self.page.goto(server_url + "/")

    def train(self, train_images: list[tuple[str, bytes, int]]) -> dict:
        items = [[name, b64(data), label] for name, data, label in train_images]
        return self.page.evaluate(SETUP, [items, CLASSES, TRAIN_EPOCHS])

    def load(self, images, archive: Path, warm_archive: Path) -> None:
        for i in range(0, len(images), 50):  # a few MB per message
            self.page.evaluate(ADD_FILES, [[name, b64(data)] for name, data in images[i : i + 50]])
        self.page.evaluate(ADD_ZIPS, [b64(archive.read_bytes()), b64(warm_archive.read_bytes())])

    def many(self, project: str, from_zip: bool, batch: int, top_k: int) -> dict:
        return self.page.evaluate(MANY, [project, from_zip, batch, top_k])

    def threads(self) -> int:
        """The wasm threads the app's embed worker runs (ort-web's numThreads, fixed when it starts)."""
        return self.page.evaluate(THREADS)

    def single(self, project: str, top_k: int) -> dict:
        return self.page.evaluate(SINGLE, [project, top_k])

    def close(self) -> None:
        self.browser.close()


def head_of(trained: dict) -> tuple[list[float], list[float]]:
    """(weight N×F row-major, bias N) of the browser's head from its parameters and layout."""
    parameters = np.asarray(trained["parameters"], dtype=np.float32)
    n = len(trained["classes"])
    by_name = {p["name"]: p for p in trained["layout"]}
    w, b = by_name["fc.weight"], by_name["fc.bias"]
    features = int(w["shape"][1])
    weight = parameters[w["offset"] : w["offset"] + n * features]
    bias = parameters[b["offset"] : b["offset"] + n]
    return weight.tolist(), bias.tolist()


# --------------------------------------------------------------------------------------------- the server


def sync_model(account, artifacts: Path, trained: dict) -> str:
    """The browser's model synced as the app syncs one (tests/sync_server/predict_support.py does the same
    for a random head): its parameters blob, the project, classes, model record and head. → `model:<id>`."""
    from tejas.artifacts import read_manifest
    from testkit.sync_client import project_changes

    manifest = read_manifest(artifacts)
    blob = np.asarray(trained["parameters"], dtype="<f4").tobytes()
    account.upload(blob, kind="model")
    project, model_id = f"p{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    class_ids = {name: f"c{i}" for i, name in enumerate(trained["classes"])}
    device = account.device()
    changes = project_changes(device, project, "throughput", class_ids)
    record = {
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "head",
        "classes": [{"id": class_ids[n], "name": n} for n in trained["classes"]],
        "layout": trained["layout"],
        "parameters": {"sha256": hashlib.sha256(blob).hexdigest(), "length": len(trained["parameters"])},
        "artifacts": {"kind": "default", "backbone_sha256": manifest["files"]["backbone.onnx"]["sha256"]},
    }
    changes.append(device.change("model", model_id, project, record))
    changes.append(device.change("head", project, project, {"modelId": model_id}))
    device.push(changes)
    return f"model:{model_id}"


def sql(engine, query: str, **params) -> list:
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text(query), params).all()


def run_batch(account, engine, archive: Path, ref: str, top_k: int) -> dict:
    """POST the zip, wait for the job's end; times from the job's events in the database."""
    posted = time.time()
    with open(archive, "rb") as body:
        response = account.post(
            "/api/batches",
            params={"model": ref, "top_k": top_k, "name": "throughput"},
            content=body,
            headers={"Content-Type": "application/zip"},
            timeout=PATH_TIMEOUT_S,
        )
    uploaded = time.time()
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/batches: {response.status_code} {response.text[:300]}")
    job_id = response.json()["id"]
    job = wait_for(
        lambda: (j := account.get(f"/api/jobs/{job_id}").json())["status"] in ("done", "failed", "cancelled") and j,
        PATH_TIMEOUT_S,
        "the batch job's end",
        0.05,
    )
    if job["status"] != "done":
        raise RuntimeError(f"batch job {job['status']}: {job.get('error')}")
    events = {
        kind: epoch(as_datetime(at))
        for kind, at in sql(engine, "SELECT kind, at FROM job_events WHERE job_id = :j ORDER BY seq", j=job_id)
    }
    report = account.get(f"/api/jobs/{job_id}/files/report.json").json()
    return {
        "upload_seconds": uploaded - posted,
        "queued_to_started_seconds": events["started"] - events.get("queued", uploaded),
        "job_seconds": events["done"] - events["started"],
        "wall_seconds": events["done"] - posted,
        "images": report["images"],
        "failed": report["failed"],
        "rows": [[r["file"], r["error"], [[t["class"], t["probability"]] for t in r["top"]]] for r in report["rows"]],
    }


class Workers:
    """`tejas stream-worker` processes with the server's settings and their own onnxruntime thread count."""

    def __init__(self, server, work: Path, count: int, threads: int, run: str):
        env = dict(server.env, TEJAS_PREDICTION_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        for i in range(count):
            name = f"{run}-w{i + 1}"
            self.logs[name] = work / f"{name}.log"
            with open(self.logs[name], "w") as log:
                self.processes[name] = subprocess.Popen(
                    [TEJAS, "stream-worker", "--name", name], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work
                )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def pause(self) -> None:
        for p in self.processes.values():
            os.kill(p.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for p in self.processes.values():
            os.kill(p.pid, signal.SIGCONT)

    def stop(self) -> None:
        for p in self.processes.values():
            try:
                os.kill(p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            stop_process(p, timeout=30)

    def tail(self) -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            for name, log in self.logs.items()
            if log.exists()
        )


def append_all(base_url: str, headers: dict, stream: str, images, clients: int, rate: float | None = None) -> float:
    """POST every image to the stream (key = its file name) with `clients` HTTP clients, as fast as they
    can, or (rate) one client sending image i at i / rate seconds; → seconds."""
    import httpx

    local = threading.local()

    def one(item):
        name, data = item
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=base_url, headers=headers, timeout=60)
        response = local.http.post(f"/api/streams/{stream}/images", params={"key": name}, content=data)
        if response.status_code != 202:
            raise RuntimeError(f"append {name}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    if rate:
        for i, item in enumerate(images):
            ahead = started + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)  # the schedule of a camera sending `rate` images a second
            one(item)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, images))
    return time.perf_counter() - started


def stream_rows(engine, stream: str) -> list:
    return sql(
        engine,
        "SELECT p.image_key, p.label, p.confidence, p.top, p.worker, p.appended_at, p.created_at "
        "FROM predictions p JOIN streams s ON p.stream_id = s.id WHERE s.name = :n ORDER BY p.created_at",
        n=stream,
    )


def stream_measure(rows: list) -> dict:
    """Throughput once the first row exists (rows after the first write ÷ time from it to the last write)
    and latency from append to result row."""
    created = [epoch(as_datetime(r.created_at)) for r in rows]
    first, last = created[0], created[-1]
    # one write is one worker's batch: its rows' created_at lie microseconds apart, writes tens of ms
    in_first = sum(1 for r, c in zip(rows, created, strict=True) if r.worker == rows[0].worker and c - first < 0.005)
    latency_ms = [1000 * (c - epoch(as_datetime(r.appended_at))) for r, c in zip(rows, created, strict=True)]
    return {
        "images_after_first_write": len(rows) - in_first,
        "first_to_last_row_seconds": last - first,
        "rows_in_first_write": in_first,
        "latency_p50_ms": percentile(latency_ms, 50),
        "latency_p95_ms": percentile(latency_ms, 95),
        "latency_max_ms": max(latency_ms),
        "rows_by_worker": {w: sum(1 for r in rows if r.worker == w) for w in sorted({r.worker for r in rows})},
        "rows": [[r.image_key, None, [[t["class"], t["probability"]] for t in _json(r.top)]] for r in rows],
    }


STREAM_MODES = {
    "backlog": "appended while the warmed workers were paused (SIGSTOP), then resumed: what the workers sustain",
    "live": "appended as fast as the HTTP clients can while the workers run",
    "paced": "appended by one client at a steady share of the backlog's rate: latency without a queue",
}


class StreamRun:
    """`count` warmed stream workers; `measure(mode)` appends every image to a new stream and waits for
    all their rows."""

    def __init__(self, server, account, engine, work: Path, ref: str, count: int, threads: int, top_k: int):
        self.account, self.engine, self.ref, self.count, self.top_k = account, engine, ref, count, top_k
        self.base_url, self.headers = str(account.http.base_url), dict(account.http.headers)
        self.run = f"s{count}"
        self.workers = Workers(server, work, count, threads, self.run)

    def warm(self, warm_images) -> None:
        """Every worker registered, its model loaded and a row written."""
        warm = f"{self.run}-warm"
        _put_stream(self.account, warm, self.ref, self.top_k)

        def registered():
            if not self.workers.alive():
                raise RuntimeError("a stream worker exited")
            return self.account.get(f"/api/streams/{warm}").json()["workers"] >= self.count

        wait_for(registered, START_S, f"{self.count} stream worker(s) registered", every=0.2)
        for i, item in enumerate(warm_images):
            append_all(self.base_url, self.headers, warm, [item], 1)
            wait_for(lambda i=i: len(stream_rows(self.engine, warm)) > i, START_S, f"warm-up row {i + 1}", 0.05)
            if len({r.worker for r in stream_rows(self.engine, warm)}) >= self.count:
                return
        raise RuntimeError(f"not every one of {self.count} workers wrote a warm-up row")

    def measure(self, mode: str, images, clients: int, rate: float | None = None) -> dict:
        name = f"{self.run}-{mode}"
        _put_stream(self.account, name, self.ref, self.top_k)
        if mode == "backlog":
            self.workers.pause()
        try:
            append_seconds = append_all(self.base_url, self.headers, name, images, clients, rate)
        finally:
            if mode == "backlog":
                self.workers.resume()
        wait_for(lambda: len(stream_rows(self.engine, name)) >= len(images), PATH_TIMEOUT_S, f"{name}: all rows", 0.05)
        measured = stream_measure(stream_rows(self.engine, name))
        measured.update(
            append_clients=1 if rate else clients,
            append_seconds=append_seconds,
            append_images_per_second=len(images) / append_seconds,
            append_rate_asked=rate,
        )
        return measured

    def stop(self) -> None:
        self.workers.stop()


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _put_stream(account, name: str, ref: str, top_k: int) -> None:
    response = account.put(f"/api/streams/{name}", json={"model": ref, "top_k": top_k})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"PUT /api/streams/{name}: {response.status_code} {response.text[:300]}")


# --------------------------------------------------------------------------------------------- the run


class Run:
    """The report's rows: each path measured between two native windows at its own threads × batch."""

    def __init__(self, report: dict, native: Native, reference: dict):
        self.report, self.native, self.reference = report, native, reference

    def measure(self, threads: int, batch: int, measure):
        """(measure()'s result, the native fields of a row: the mean of the windows before and after)."""
        result, before, after = self.native.around(threads, batch, measure)
        return result, {
            "native_images_per_second": (before[0] + after[0]) / 2,
            "native_before": before[0],
            "native_after": after[0],
            "native_with_decode_images_per_second": (before[1] + after[1]) / 2,
            "native_with_decode_before": before[1],
            "native_with_decode_after": after[1],
        }

    def add(self, path, label, timed, images, seconds, threads, batch, native_fields, rows, **extra) -> dict:
        rate = images / seconds
        entry = {
            "path": path,
            "label": label,
            "timed": timed,
            "images": images,
            "seconds": seconds,
            "images_per_second": rate,
            "threads": threads,
            "batch": batch,
            **native_fields,
            "over_native": rate / native_fields["native_images_per_second"],
            **extra,
            **agreement(top_rows(rows), self.reference),
        }
        self.report["results"].append(entry)
        print(
            f"{path}: {rate:.1f} img/s ({entry['over_native']:.2f}× native "
            f"{entry['native_images_per_second']:.1f}, before {entry['native_before']:.1f} after "
            f"{entry['native_after']:.1f}); top-1 = native for {entry['top1_same_as_native']}/{len(self.reference)}",
            file=sys.stderr,
        )
        return entry

    def attempt(self, name: str, measure) -> None:
        try:
            measure()
        except Exception as exc:  # one path failing must not hide the others' numbers
            self.report["errors"].append({"path": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)


def rows_of(report_rows: list[dict]) -> list:
    """Report rows (CLI, batch job) as [file, error, [[class, probability], ...]]."""
    return [[r["file"], r["error"], [[t["class"], t["probability"]] for t in r["top"]]] for r in report_rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "default", help="an artifact set")
    parser.add_argument("--images", type=int, default=300, help="query images (default 300)")
    parser.add_argument("--image-size", default="300x200", help="W×H of each image (default 300x200)")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="the app's, the CLI's and the stream workers' batch (default 16)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="onnxruntime threads of the CLI and the server (default: cores, ≤ 4)"
    )
    parser.add_argument("--stream-workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument(
        "--stream-threads", type=int, default=None, help="threads per stream worker (default: --threads ÷ workers)"
    )
    parser.add_argument("--append-clients", type=int, default=4, help="HTTP clients appending to a live stream")
    parser.add_argument(
        "--pace", type=float, default=0.5, help="the paced stream's rate as a share of its backlog rate (default 0.5)"
    )
    parser.add_argument(
        "--native-seconds", type=float, default=3.0, help="length of each native onnxruntime window (default 3)"
    )
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "predict_throughput.json")
    args = parser.parse_args(argv)
    size = tuple(int(x) for x in re.split(r"[x×]", args.image_size))
    threads = args.threads or min(4, os.cpu_count() or 1)
    worker_counts = [int(x) for x in args.stream_workers.split(",") if x.strip()]
    if args.images < 2 * args.batch_size:
        parser.error("--images must be at least twice --batch-size (a stream's throughput needs several writes)")
    missing = [
        what
        for what, ok in (
            (f"{args.artifacts}/manifest.json (bash tools/dev.sh run exports artifacts/default)",
             (args.artifacts / "manifest.json").is_file()),
            ("pwa/vendor (bash tools/dev.sh run)", (ROOT / "pwa" / "vendor" / "vendor.json").is_file()),
            (CHROMIUM, Path(CHROMIUM).exists()),
            (str(REDIS_SERVER), REDIS_SERVER.exists()),
        )
        if not ok
    ]  # fmt: skip
    if missing:
        print(f"predict bench: error: missing {', '.join(missing)}", file=sys.stderr)
        return 1

    images = photo_like(args.images, size, seed=0)
    train_images = [
        (name, data, i % len(CLASSES))
        for i, (name, data) in enumerate(photo_like(TRAIN_PER_CLASS * len(CLASSES), size, seed=1, prefix="train"))
    ]
    warm_images = photo_like(20, size, seed=2, prefix="warm")
    work = Path(tempfile.mkdtemp(prefix="tejas-predict-bench-"))
    artifacts_root = work / "artifacts"
    shutil.copytree(args.artifacts, artifacts_root / "default")
    archive = write_zip(work / "images.zip", images)
    warm_archive = write_zip(work / "warm.zip", images[:2])
    manifest = json.loads((args.artifacts / "manifest.json").read_text())
    stream_threads = {n: args.stream_threads or max(1, threads // n) for n in worker_counts}
    report = new_report(
        "predict_throughput",
        # tracked files under sync_server/ that differed from the commit during the run
        git_modified_server=_modified(),
        machine=None,  # at the end, with the load average of the run
        load_average_start=[round(x, 2) for x in os.getloadavg()],
        # the scheduling priority the run (and every process it starts) had: `nice -n -10 python bench/…` gives
        # the measured processes a larger share of a machine others are using
        nice=os.nice(0),
        chromium=None,
        npm=vendored_npm(),
        config={
            "images": len(images),
            "image_size": list(size),
            "formats": {
                kind: sum(1 for name, _ in images if name.endswith(suffix))
                for kind, suffix in (("JPEG", ".jpg"), ("PNG", ".png"))
            },
            "mean_file_bytes": round(sum(len(d) for _, d in images) / len(images)),
            "zip_bytes": archive.stat().st_size,
            "top_k": args.top_k,
            "batch_size": args.batch_size,
            "batch_job_batch_size": 16,  # tejas_ml.prediction.batch.BATCH_SIZE: jobs take no batch option
            "threads": threads,
            "browser_threads": None,
            "stream_workers": worker_counts,
            "stream_threads_per_worker": {str(n): t for n, t in stream_threads.items()},
            "stream_batch_size": args.batch_size,
            "append_clients": args.append_clients,
            "pace": args.pace,
            "native_seconds_per_window": args.native_seconds,
        },
        model=None,
        native=[],
        results=[],
        errors=[],
    )
    redis = server = engine = app = native = None
    playwright_manager = None
    try:
        redis = RedisServer()
        server = Server(
            artifacts_root,
            data_dir=work / "data",
            env={
                "TEJAS_REDIS_URL": redis.url,
                "TEJAS_PREDICTION_THREADS": str(threads),
                "TEJAS_STREAM_BATCH_SIZE": str(args.batch_size),
                # the bench kills no worker; a paused one must keep its entries
                "TEJAS_STREAM_CLAIM_IDLE_SECONDS": "600",
                "TEJAS_JOB_HEARTBEAT_SECONDS": "1",
                "PYTHONWARNINGS": "ignore",
            },
        )
        from playwright.sync_api import sync_playwright
        from sqlalchemy import create_engine

        from tejas.onnx_writer import write_classifier_onnx
        from testkit.sync_client import Account

        engine = create_engine(f"sqlite:///{work / 'data' / 'tejas.db'}")

        # the model: a head trained in the browser, the same parameters as ONNX here and synced to the server
        playwright_manager = sync_playwright()
        app = App(playwright_manager.start(), server.url)
        report["chromium"] = app.version
        trained = app.train(train_images)
        weight, bias = head_of(trained)
        model = work / "model.onnx"
        write_classifier_onnx(artifacts_root / "default", weight, bias, trained["classes"], model)
        account = Account(server.url)
        ref = sync_model(account, artifacts_root / "default", trained)
        report["model"] = {
            "architecture": manifest["architecture"],
            "weights": manifest.get("weights", {}).get("kind"),
            "input_size": manifest["input"]["size"],
            "classes": trained["classes"],
            "mode": trained["mode"],
            "trained": f"the head, in the app on {len(train_images)} other images of the same kind "
            f"({TRAIN_PER_CLASS} per class), {TRAIN_EPOCHS} epochs",
            "onnx": "written by tejas.onnx_writer.write_classifier_onnx (CLI, native); the server writes its own "
            "from the synced parameters (batch, streams)",
            "onnx_bytes": model.stat().st_size,
            "onnx_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        }
        app.load(images, archive, warm_archive)
        browser_threads = report["config"]["browser_threads"] = app.threads()

        # native onnxruntime at every threads × batch a path uses, with and without decoding
        native = Native(model, images, args.native_seconds)
        configs = {(browser_threads, args.batch_size), (browser_threads, 1), (threads, args.batch_size), (threads, 16)}
        configs |= {(stream_threads[n] * n, args.batch_size) for n in worker_counts}
        report["native"] = native.table(configs)
        run = Run(report, native, native.predictions(threads, args.top_k))

        # (1) the app, offline code path: batches (Files, a zip) and one predict() per image
        def app_paths() -> None:
            project = trained["projectId"]
            for from_zip in (False, True):
                result, fields = run.measure(
                    browser_threads,
                    args.batch_size,
                    lambda from_zip=from_zip: app.many(project, from_zip, args.batch_size, args.top_k),
                )
                run.add(
                    "app_many_zip" if from_zip else "app_many_files",
                    f"app: predictMany({'a zip' if from_zip else 'Files'}), batch {args.batch_size}",
                    "the awaited call in the page, warm (one call before it)",
                    result["total"],
                    result["seconds"],
                    result["threads"],
                    args.batch_size,
                    fields,
                    result["rows"],
                    inner_seconds=result["innerSeconds"],
                    failed=result["failed"],
                )
            result, fields = run.measure(browser_threads, 1, lambda: app.single(project, args.top_k))
            run.add(
                "app_single",
                "app: predict() one image at a time",
                "a loop of awaited predict(projectId, blob) calls in the page, warm",
                result["total"],
                result["seconds"],
                result["threads"],
                1,
                fields,
                result["rows"],
            )

        run.attempt("app", app_paths)
        app.close()
        app = None

        # (2) the CLI
        def cli_path() -> None:
            out = work / "cli.json"
            command = [
                TEJAS, "predict", str(model), str(archive), "--out", str(out), "--top-k", str(args.top_k),
                "--threads", str(threads), "--batch-size", str(args.batch_size),
            ]  # fmt: skip

            def measure():
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, timeout=PATH_TIMEOUT_S)
                return done, time.perf_counter() - started

            (done, wall), fields = run.measure(threads, args.batch_size, measure)
            if done.returncode != 0:
                raise RuntimeError(f"tejas predict exited {done.returncode}: {done.stderr[-1000:]}")
            own = re.search(r"predicted at ([\d.,]+) img/s", done.stderr)
            cli = json.loads(out.read_text())
            own_rate = float(own.group(1).replace(",", "")) if own else None
            run.add(
                "cli",
                "`tejas predict` a zip",
                "the process, start to exit (Python start, imports, model load, zip, report)",
                cli["images"],
                wall,
                threads,
                args.batch_size,
                fields,
                rows_of(cli["rows"]),
                own_images_per_second=own_rate,
                own_over_native=own_rate / fields["native_images_per_second"] if own_rate else None,
                failed=cli["failed"],
            )

        run.attempt("cli", cli_path)

        # (3) the server's batch job
        def batch_path() -> None:
            result, fields = run.measure(threads, 16, lambda: run_batch(account, engine, archive, ref, args.top_k))
            common = {
                "upload_seconds": result["upload_seconds"],
                "queued_to_started_seconds": result["queued_to_started_seconds"],
                "failed": result["failed"],
            }
            for path, label, timed, seconds in (
                ("batch_job", "server: POST /api/batches, the job",
                 "job events `started` → `done` (upload, runner start and model load excluded)", "job_seconds"),
                ("batch_wall", "server: POST /api/batches, upload included",
                 "POST sent → job event `done` (upload, queue, runner start, model load, job)", "wall_seconds"),
            ):  # fmt: skip
                run.add(
                    path, label, timed, result["images"], result[seconds], threads, 16, fields, result["rows"], **common
                )

        run.attempt("batch", batch_path)

        # (4) streams: backlog (what the workers sustain), live (appends as fast as HTTP allows), paced
        for count in worker_counts:

            def stream_path(count=count) -> None:
                per_worker, total = stream_threads[count], stream_threads[count] * count
                stream = StreamRun(server, account, engine, work, ref, count, per_worker, args.top_k)
                try:
                    stream.warm(warm_images)
                    backlog_rate = None
                    for mode in STREAM_MODES:
                        rate = args.pace * backlog_rate if mode == "paced" else None
                        if mode == "paced" and not rate:
                            continue
                        result, fields = run.measure(
                            total,
                            args.batch_size,
                            lambda mode=mode, rate=rate: stream.measure(mode, images, args.append_clients, rate),
                        )
                        rows = result.pop("rows")
                        entry = run.add(
                            f"stream_{mode}_{count}",
                            f"stream, {count} worker{'s' * (count != 1)}, {mode}",
                            f"rows after the first write ÷ first → last write; {STREAM_MODES[mode]}",
                            result["images_after_first_write"],
                            result["first_to_last_row_seconds"],
                            total,
                            args.batch_size,
                            fields,
                            rows,
                            mode=mode,
                            workers=count,
                            threads_per_worker=per_worker,
                            **result,
                        )
                        if mode == "backlog":
                            backlog_rate = entry["images_per_second"]
                        print(
                            f"  latency p50 {entry['latency_p50_ms']:.0f} ms, p95 {entry['latency_p95_ms']:.0f} ms; "
                            f"appends {entry['append_images_per_second']:.1f} img/s",
                            file=sys.stderr,
                        )
                except BaseException:
                    print(stream.workers.tail(), file=sys.stderr)
                    raise
                finally:
                    stream.stop()

            run.attempt(f"stream_{count}", stream_path)
    except Exception as exc:
        report["errors"].append({"path": "setup", "error": f"{type(exc).__name__}: {exc}"[:2000]})
        print(f"predict bench: setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if server is not None:
            print(server.log.read_text(errors="replace")[-3000:], file=sys.stderr)
    finally:
        if app is not None:
            app.close()
        if playwright_manager is not None:
            playwright_manager.__exit__(None, None, None)
        if native is not None:
            native.close()
        if engine is not None:
            engine.dispose()
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["notes"] = notes(report)
    report["ok"] = not report["errors"]
    report["machine"] = machine_facts(torch=False)
    write_report(args.out, report)
    return 0 if report["ok"] else 1


def _modified() -> list[str]:
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *SERVER_PATHS)
    return [line.split(None, 1)[1] for line in dirty.splitlines()] if dirty else []


def notes(report: dict) -> dict[str, str]:
    """What limits each path, in numbers from this run."""
    by = {r["path"]: r for r in report["results"]}
    out = {}
    many, single, zipped = by.get("app_many_files"), by.get("app_single"), by.get("app_many_zip")
    if many and single:
        out["app"] = (
            f"batches of {many['batch']} ran at {many['images_per_second'] / single['images_per_second']:.1f}× the "
            f"images/s of one predict() per image ({many['over_native']:.2f}× and {single['over_native']:.2f}× "
            f"native onnxruntime at their batch sizes). Both run the backbone in onnxruntime-web's wasm "
            f"({many['threads']} threads) in the embed worker, which also decodes and resizes each image; wasm is "
            "what separates the app from native."
        )
        if zipped:
            out["app"] += (
                f" A zip ran at {zipped['over_native']:.2f}× native against {many['over_native']:.2f}× for the same "
                "images as Files: its entries are read in the Python worker (Pyodide) under the core's archive rules, "
                "the next batch while one is embedded."
            )
    cli = by.get("cli")
    if cli and cli.get("own_images_per_second"):
        decode = cli["native_with_decode_images_per_second"]
        share = cli["own_images_per_second"] / decode
        out["cli"] = (
            f"its own rate ({cli['own_images_per_second']:.0f} img/s once the model is loaded) is {share:.2f}× "
            f"native onnxruntime with Pillow decoding and resizing in-process ({decode:.0f} img/s) and "
            f"{cli['own_over_native']:.2f}× native without: "
            + (
                "decoding and resizing the photos is what separates it from onnxruntime alone"
                if share >= 0.9
                else "decoding and resizing the photos explains part of the gap to onnxruntime alone, reading the "
                "zip and writing the report the rest"
            )
            + f"; starting the process (Python, imports, model load) adds "
            f"{cli['seconds'] - cli['images'] / cli['own_images_per_second']:.1f} s to the wall time."
        )
    job, wall = by.get("batch_job"), by.get("batch_wall")
    if job and wall:
        out["batch"] = (
            f"the job predicts like `tejas predict` (the same predict_source, {job['threads']} threads, batch "
            f"{job['batch']}) at {job['images_per_second'] / job['native_with_decode_images_per_second']:.2f}× "
            f"native with decoding; POST → done adds the upload ({job['upload_seconds']:.2f} s) and the runner "
            f"process's start and model load ({job['queued_to_started_seconds']:.2f} s from `queued` to `started`)."
        )
    for count in report["config"]["stream_workers"]:
        live, backlog, paced = (by.get(f"stream_{mode}_{count}") for mode in ("live", "backlog", "paced"))
        if not (live and backlog):
            continue
        appends = live["append_images_per_second"]
        bound = (
            f"bounded by the appends through HTTP ({appends:.0f} img/s from {live['append_clients']} clients, "
            f"no faster than the {backlog['images_per_second']:.0f} rows/s the workers sustain on a backlog)"
            if appends < backlog["images_per_second"] * 1.1
            else f"bounded by the workers: the appends ran at {appends:.0f} img/s, faster than the "
            f"{backlog['images_per_second']:.0f} rows/s the workers sustain, so images queue and the latency is "
            f"mostly that wait"
        )
        text = (
            f"live, the stream is {bound}. On a backlog the workers reach {backlog['over_native']:.2f}× native "
            f"onnxruntime without decoding"
        )
        if backlog.get("native_with_decode_images_per_second"):
            ratio = backlog["images_per_second"] / backlog["native_with_decode_images_per_second"]
            text += f" ({ratio:.2f}× with decoding)"
        text += (
            "; besides decoding, each batch reads its images from the blob store, writes its rows and "
            "acknowledges in Redis, and the server, Redis and the appending clients share the same cores."
        )
        if paced:
            text += (
                f" Paced at {paced['append_images_per_second']:.0f} img/s, an image's result row exists "
                f"{paced['latency_p50_ms']:.0f} ms (p50) / {paced['latency_p95_ms']:.0f} ms (p95) after its append."
            )
        out[f"stream_{count}"] = text
    return out


if __name__ == "__main__":
    sys.exit(main())
