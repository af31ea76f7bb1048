"""Hostile image sizes (issue 24 part 1) through every decoder the server has: each crafted image of
tests/hostile_images.py (strips 1×N and N×1, GIF/APNG/WebP frames far larger than their canvas, progressive
JPEGs and PNGs declaring huge sizes, a BMP with a negative height, ...) is refused with a sentence, and each
unusual but legitimate one (16-bit, palette, CMYK, EXIF-rotated, animated, panoramas up to 20:1) predicts.

Before: a 3000×1 PNG of 83 bytes grew the server by ~950 MB while it was resized for a prediction and a
100000×1 one raised MemoryError (a 500). The memory bound is measured in a child process, not assumed: it
decodes every crafted image and reads its own peak resident memory (VmHWM, reset before each image).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ..conftest import ROOT, TEJAS
from ..hostile_images import HOSTILE, LEGITIMATE
from ..services import redis_server  # noqa: F401 (fixture)
from .conftest import Account
from .predict_support import synced_model

pytestmark = pytest.mark.slow

CLASSES = ["cat", "dog"]
ARTIFACTS = ROOT / "artifacts" / "default"
# The largest legitimate image here: 12 megapixels, to show the decode bound scales with the canvas.
LARGE = "large-4000x3000.png"
# Memory a decode may add to the process (its peak over its resident memory before the image): an image
# refused by its header costs nothing measurable; one decoded costs its canvas (Pillow keeps 4 bytes per
# pixel, and a copy when it is not RGB already) and the resize (at most 20:1 at the model's shorter side).
# At the 64-megapixel limit that is at most 8 × 64 M = 512 MB per image in flight; the 3000×1 strip of
# 83 bytes alone grew a process by ~950 MB before the rule.
REFUSED_BOUND_MB = 16
BYTES_PER_PIXEL_BOUND = 8
DECODE_SLACK_MB = 24


def _crafted() -> dict[str, bytes]:
    images = {name: data for name, (data, _) in HOSTILE.items()} | dict(LEGITIMATE)
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), "teal").save(buffer, "PNG")
    images[LARGE] = buffer.getvalue()
    return images


def _check_row(name: str, error: str | None, top: list | None = None) -> None:
    """A hostile image's row carries its refusal; a legitimate one's its classes."""
    if name in HOSTILE:
        assert error and HOSTILE[name][1] in error, f"{name}: {error!r}"
    else:
        assert error is None, f"{name} was refused: {error}"
        assert top is None or [t["class"] for t in top] and set(t["class"] for t in top) <= set(CLASSES), name


CHILD = r"""
import json, resource, sys
from pathlib import Path
# A regression fails with MemoryError here instead of taking the machine's memory.
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from tejas_ml.prediction.model import decode

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

spec = json.loads(sys.argv[2])
folder = Path(sys.argv[1])
decode((folder / "one-pixel.png").read_bytes(), spec)  # the decoders' libraries loaded
out = {}
for path in sorted(folder.iterdir()):
    data = path.read_bytes()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = status("VmHWM:")
    try:
        decode(data, spec)
        error = None
    except ValueError as exc:
        error = str(exc)
    out[path.name] = {"error": error, "growth_mb": status("VmHWM:") - before}
print(json.dumps(out))
"""


def test_decoding_every_crafted_image_stays_within_the_memory_bound(tmp_path):
    images = _crafted()
    assert len(images) >= 40
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in images.items():
        (folder / name).write_bytes(data)
    measured = _run_child(CHILD, folder)
    assert set(measured) == set(images)
    for name, row in measured.items():
        _check_row(name, row["error"])
        if name in HOSTILE:
            assert row["growth_mb"] < REFUSED_BOUND_MB, (name, row)
        else:
            with Image.open(folder / name) as image:
                pixels = image.width * image.height
            bound = BYTES_PER_PIXEL_BOUND * pixels / 2**20 + DECODE_SLACK_MB
            assert row["growth_mb"] < bound, (name, row, bound)
    worst = max(((n, r) for n, r in measured.items() if n in HOSTILE), key=lambda item: item[1]["growth_mb"])
    print(
        f"\npeak growth: largest refused {worst[0]} {worst[1]['growth_mb']:.1f} MB; "
        f"{LARGE} {measured[LARGE]['growth_mb']:.1f} MB (12 megapixels)"
    )


def _run_child(script: str, path) -> dict:
    """What `script` prints as JSON, run in a fresh Python (its peak memory is its own) on `path` and the
    default artifacts' input description."""
    spec = json.loads((ARTIFACTS / "manifest.json").read_text())["input"]
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


THREADS_CHILD = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
from tejas_ml.prediction.model import decode

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

spec = json.loads(sys.argv[2])
data = open(sys.argv[1], "rb").read()
decode(data, spec)  # the libraries loaded, the allocator warm
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = hwm()
with ThreadPoolExecutor(4) as pool:
    shapes = [x.shape for x in pool.map(lambda _: decode(data, spec), range(4))]
print(json.dumps({"shapes": shapes, "growth_mb": hwm() - before}))
"""


def test_threads_decoding_together_share_one_pixel_budget(tmp_path):
    """The Classifier decodes in threads, requests run concurrently: four 36-megapixel images decoded at
    once hold about one canvas, not four (tejas_ml.imaging.BUDGET: 64 megapixels in flight)."""
    path = tmp_path / "big.png"
    Image.new("RGB", (6000, 6000), "teal").save(path)
    measured = _run_child(THREADS_CHILD, path)
    assert len(measured["shapes"]) == 4
    one_image_mb = BYTES_PER_PIXEL_BOUND * 6000 * 6000 / 2**20 + DECODE_SLACK_MB
    print(f"\nfour 36-megapixel decodes at once: peak growth {measured['growth_mb']:.0f} MB")
    assert measured["growth_mb"] < one_image_mb, measured


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _events(account: Account, job_id: str, timeout: float = 300) -> list[dict]:
    from .test_jobs import read_events

    return read_events(account, job_id, timeout=timeout)


def test_every_route_and_tejas_predict_answer_each_crafted_image(serve, tmp_path, redis_server):  # noqa: F811
    images = {name: data for name, data in _crafted().items() if name != LARGE}
    server = serve(
        ROOT / "artifacts",
        data_dir=tmp_path / "data",
        env={"TEJAS_REDIS_URL": redis_server.url, "TEJAS_JOB_HEARTBEAT_SECONDS": "1"},
    )
    account = Account(server.url)
    ref, local = synced_model(account, ARTIFACTS, CLASSES, tmp_path)

    # POST /api/predictions, 32 images per request at most: a row per image, never a 5xx
    names = sorted(images)
    peak_before = _vm_hwm_mb(server.process.pid)
    for start in range(0, len(names), 20):
        chunk = names[start : start + 20]
        files = [("images", (name, images[name], "application/octet-stream")) for name in chunk]
        response = account.post("/api/predictions", data={"model": ref, "top_k": 2}, files=files, timeout=120)
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        assert [r["file"] for r in rows] == chunk
        for row in rows:
            _check_row(row["file"], row["error"], row["top"])
    grown = _vm_hwm_mb(server.process.pid) - peak_before
    assert grown < 200, f"the server's peak memory grew by {grown:.0f} MB predicting small images"

    # POST /api/batches: a zip of them all, predicted as a job; the report has a row per image
    response = account.post(
        "/api/batches",
        params={"model": ref, "top_k": 2, "name": "hostile"},
        content=_zip({f"in/{name}": data for name, data in images.items()}),
        headers={"Content-Type": "application/zip"},
        timeout=120,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    events = _events(account, job["id"])
    assert events[-1]["event"] == "done", events[-1]
    report = account.get(f"/api/jobs/{job['id']}/files/report.json").json()
    by_name = {row["file"].removeprefix("in/"): row for row in report["rows"]}
    assert set(by_name) == set(images)
    for name, row in by_name.items():
        _check_row(name, row["error"], row["top"])

    # a stream append: 400 with the sentence for a hostile image, accepted for a legitimate one
    assert account.put("/api/streams/door", json={"model": ref}).status_code == 201
    for name, data in images.items():
        response = account.post("/api/streams/door/images", params={"key": name}, content=data)
        if name in HOSTILE:
            assert response.status_code == 400, (name, response.text)
            assert response.json()["detail"].startswith(f"Not accepted as an image: {HOSTILE[name][1]}"), name
        else:
            assert response.status_code in (200, 201, 202), (name, response.text)

    # a blob upload (how the app syncs an image) is checked the same way
    for name in ("strip-3000x1.png", "gif-9000x9000-frame-on-1x1-screen.gif"):
        response = account.upload(images[name], expect=400)
        assert HOSTILE[name][1] in response.json()["detail"]

    # a training upload: hostile images are skipped by the archive rules, the job is made of the rest
    legit = sorted(LEGITIMATE)
    entries = {f"cat/{n}": LEGITIMATE[n] for n in legit[:3]} | {f"dog/{n}": LEGITIMATE[n] for n in legit[3:6]}
    entries |= {f"dog/{name}": data for name, (data, _) in HOSTILE.items()}
    response = account.post(
        "/api/jobs/upload", content=_zip(entries), headers={"Content-Type": "application/zip"}, timeout=120
    )
    assert response.status_code == 201, response.text
    cancel = account.delete(f"/api/jobs/{response.json()['id']}")
    assert cancel.status_code in (202, 204), cancel.text
    only_hostile = _zip({f"cat/{name}": data for name, (data, _) in HOSTILE.items()})
    response = account.post(
        "/api/jobs/upload", content=only_hostile, headers={"Content-Type": "application/zip"}, timeout=120
    )
    assert response.status_code == 400 and "no usable images" in response.json()["detail"], response.text

    # `tejas predict` on a folder of them all: a report row per image
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in images.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "report.json"
    result = subprocess.run(
        [TEJAS, "predict", str(local), str(folder), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["file"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == set(images)
    for name, row in rows.items():
        _check_row(name, row["error"], row["top"])
    httpx.get(f"{server.url}/api/health", timeout=10).raise_for_status()  # still serving


def test_training_decoder_refuses_a_hostile_image_already_in_its_cache(tmp_path):
    """Images synced before the rule may sit in a training cache: the training decoder applies it too."""
    from tejas_ml.training.data import DataError, Example, ImageDataset

    paths = {}
    for name, data in [("strip", HOSTILE["strip-3000x1.png"][0]), ("cmyk", LEGITIMATE["cmyk.jpg"])]:
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    dataset = ImageDataset(
        [Example("a" * 64, 0, paths["cmyk"], False), Example("b" * 64, 1, paths["strip"], False)],
        lambda image: image.size,
    )
    assert dataset[0] == ((64, 48), 0)
    with pytest.raises(DataError) as raised:
        dataset[1]
    assert str(raised.value) == (
        "image bbbbbbbbbbbb… is refused: image too narrow: 3000×1 pixels (sides at most 20:1); "
        "remove it from the data and start again"
    )
