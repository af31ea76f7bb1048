"""Predict → Many images: a zip of 500 images predicted offline through the UI (one non-image entry an
error row), the 20 least sure added to a class as corrections, the downloaded CSV equal to predict()
image by image; the CSV neutralises spreadsheet formulas; a hostile zip is refused with the core's reason."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import time
import zipfile

import jsonschema
import pytest

from tejas.predictions import REPORT_SCHEMA

from .conftest import (
    ANIMAL_NAMES,
    PAGE_HELPERS,
    WAIT_FOR_SERVICE_WORKER,
    png,
    query_images,
    unique_animals,
    wait_screen,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IMAGES = 500
# Deadlines, not speeds: 500 images take ~30 s on a quiet 2-core machine and several times that on a busy one.
PREDICT_TIMEOUT_MS = 900_000
ADD_TIMEOUT_MS = 300_000
TOP_K = 3
RANKS = [f"{c}_{i}" for i in range(1, TOP_K + 1) for c in ("class", "probability")]
HEADER = ["file", "predicted", "confidence", *RANKS, "error"]


def test_csv_neutralises_formulas_and_quotes_per_rfc4180(app):
    """The CSV writer alone: cells a spreadsheet would run as formulas get a leading ', quotes are doubled."""
    rows = [
        {"index": 0, "file": "=cmd.png", "top": [{"name": "cat", "probability": 0.75}], "error": None},
        {"index": 1, "file": 'a,"b"\nc.png', "top": [], "error": "not an image (not PNG, JPEG, WebP, GIF or BMP)"},
        {"index": 2, "file": "@x.png", "top": [{"name": "dog", "probability": 1e-9}], "error": None},
        {"index": 3, "file": "-1+2.png", "top": [{"name": "bird", "probability": 0.5}], "error": None},
    ]
    text = app.evaluate("async (rows) => (await import('/tejas.js')).predictionsCsv({ topK: 1, rows })", rows)
    assert text.endswith("\r\n") and text.startswith("file,predicted,confidence,class_1,probability_1,error\r\n")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[1] == ["'=cmd.png", "cat", "0.750000", "cat", "0.750000", ""]
    assert parsed[2] == ['a,"b"\nc.png', "", "", "", "", "not an image (not PNG, JPEG, WebP, GIF or BMP)"]
    assert parsed[3][0] == "'@x.png" and parsed[3][2] == "0.000000"
    assert parsed[4][0] == "'-1+2.png"


PREDICT_EACH = """async ([projectId, images, topK]) => {
  const t = await import('/tejas.js');
  const out = {};
  for (const [name, b64] of images) {
    const top = await t.predict(projectId, fileFrom(b64, name), { topK });
    out[name] = top.map((c) => [c.name, c.probability]);
  }
  return out;
}"""


def test_many_images_offline_through_the_ui(app_copy, serve, tmp_path, browser_type, browser_type_launch_args):
    pwa, artifacts = app_copy
    server = serve(artifacts, pwa)
    animals = unique_animals(20)
    items = [(base64.b64encode(png(rgb)).decode(), y) for y, images in animals.items() for rgb in images]
    queries = query_images(IMAGES)
    names = [f"photos/{'cats' if i % 2 else 'misc'}/{i:03d}.png" for i in range(IMAGES)]
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in zip(names, queries, strict=True):
            z.writestr(name, data)
        z.writestr("photos/notes.txt", b"not an image at all")
        z.writestr("__MACOSX/photos/._000.png", b"litter the core leaves out")
    hostile = tmp_path / "evil.zip"
    with zipfile.ZipFile(hostile, "w") as z:
        z.writestr("../evil.png", queries[0])

    context = browser_type.launch_persistent_context(
        tmp_path / "profile", accept_downloads=True, **browser_type_launch_args
    )
    timings = {}
    try:
        page = context.new_page()
        page.add_init_script(PAGE_HELPERS)
        page.goto(server.url + "/")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        server.stop()
        context.set_offline(True)
        page.reload()
        wait_screen(page, "projects")

        started = time.perf_counter()
        project_id = page.evaluate(
            """async ([names, items]) => {
              const { t, project } = await projectWith('Animals', names, items);
              await t.train(project.id, { epochs: 8 });
              return project.id;
            }""",
            [ANIMAL_NAMES, items],
        )
        timings["train 100 images"] = time.perf_counter() - started

        # the zip through the UI, offline
        page.evaluate("(id) => { location.hash = `#/p/${id}/predict/many`; }", project_id)
        wait_screen(page, "predict")
        page.get_by_role("link", name="Many images").wait_for()
        started = time.perf_counter()
        page.set_input_files("#many-zip", str(archive))
        page.wait_for_selector("main[data-many-state=done]", timeout=PREDICT_TIMEOUT_MS)
        timings[f"predict {IMAGES} images (UI)"] = time.perf_counter() - started
        status = page.inner_text("#many-status")
        assert f"Predicted {IMAGES + 1} images" in status and "1 could not be read" in status, status
        assert page.locator("#many-table tbody tr").count() == 50  # a page of rows, not 501
        assert page.evaluate(
            "[...document.querySelectorAll('#many-table tbody img')].every((i) => i.src.startsWith('blob:'))"
        )
        page.select_option("#many-filter", value="errors")
        failed_row = page.locator("#many-table tbody tr")
        assert failed_row.count() == 1
        assert "photos/notes.txt" in failed_row.inner_text() and "not an image" in failed_row.inner_text()
        page.select_option("#many-filter", value="all")

        # the 20 least sure → class "cat", as corrections
        page.get_by_label("How many").fill("20")
        page.get_by_role("button", name="Select least sure").click()
        assert page.inner_text("#many-selected") == "20 images selected"
        page.select_option("#many-class", label="cat")
        page.get_by_role("button", name="Add 20 images to class").click()
        page.wait_for_selector("main[data-added='20']", timeout=ADD_TIMEOUT_MS)
        page.locator("#many-retrain-now").wait_for()

        with page.expect_download() as csv_download:
            page.get_by_role("button", name="Download CSV").click()
        csv_text = csv_download.value.path().read_bytes().decode("utf-8")
        with page.expect_download() as json_download:
            page.get_by_role("button", name="Download JSON").click()
        report = json.loads(json_download.value.path().read_text(encoding="utf-8"))

        samples = page.evaluate(
            """async (projectId) => {
              const t = await import('/tejas.js');
              const classes = await t.listClasses(projectId);
              return (await t.listSamples(projectId)).map((s) => ({
                contentId: s.contentId, source: s.source, className: classes.find((c) => c.id === s.classId).name }));
            }""",
            project_id,
        )
        refused = page.evaluate(
            """async ([projectId, b64]) => {
              const t = await import('/tejas.js');
              return t.predictMany(projectId, fileFrom(b64, 'evil.zip')).then(() => 'accepted', (e) => e.message);
            }""",
            [project_id, base64.b64encode(hostile.read_bytes()).decode()],
        )

        # every row equals predict() on the same image, one by one
        started = time.perf_counter()
        singles = page.evaluate(
            PREDICT_EACH,
            [project_id, [(n, base64.b64encode(d).decode()) for n, d in zip(names, queries, strict=True)], TOP_K],
        )
        timings[f"predict() {IMAGES} images one by one"] = time.perf_counter() - started
    finally:
        context.close()
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})

    assert refused == "evil.zip: unsafe path '../evil.png' (leaves the archive)"

    parsed = list(csv.reader(io.StringIO(csv_text, newline="")))
    assert parsed[0] == HEADER
    rows = {r[0]: r for r in parsed[1:]}
    assert len(parsed) - 1 == len(rows) == IMAGES + 1
    assert rows["photos/notes.txt"][1:-1] == [""] * (len(HEADER) - 2) and rows["photos/notes.txt"][-1].startswith(
        "not an image"
    )
    for name in names:
        row = rows[name]
        expected = singles[name]
        assert row[-1] == "" and row[1] == expected[0][0] and float(row[2]) == pytest.approx(expected[0][1], abs=1e-4)
        for i, (class_name, probability) in enumerate(expected):
            assert row[3 + 2 * i] == class_name, (name, row, expected)
            assert float(row[4 + 2 * i]) == pytest.approx(probability, abs=1e-4), (name, row, expected)

    assert report["top_k"] == TOP_K and report["model"]["classes"] == ANIMAL_NAMES and len(report["rows"]) == IMAGES + 1
    jsonschema.validate(report, REPORT_SCHEMA)  # the core's report format: images, failed, each file's sha256
    assert report["images"] == IMAGES + 1 and report["failed"] == 1
    by_file = {r["file"]: r for r in report["rows"]}
    assert by_file["photos/notes.txt"]["sha256"] is None
    assert all(by_file[n]["sha256"] == hashlib.sha256(d).hexdigest() for n, d in zip(names, queries, strict=True))
    for name in names[:50]:  # the JSON carries the exact values
        top = by_file[name]["top"]
        assert [t["class"] for t in top] == [c for c, _ in singles[name]]
        assert [t["probability"] for t in top] == pytest.approx([p for _, p in singles[name]], abs=1e-5)

    # the 20 least sure are in the dataset, class "cat", marked as corrections (ranked by the JSON's exact
    # values: the CSV's 6 decimals could tie two images at the boundary)
    least = sorted(names, key=lambda n: by_file[n]["top"][0]["probability"])[:20]
    digests = {hashlib.sha256(queries[names.index(n)]).hexdigest() for n in least}
    corrections = {s["contentId"]: s for s in samples if s["source"] == "correction"}
    assert set(corrections) == digests
    assert {s["className"] for s in corrections.values()} == {"cat"}
    assert len(samples) == len(items) + 20
