"""The app driven through its UI in Debian chromium, one test per feature: projects; classes and
samples (file picker, folder drop, zip, paste, webcam, drawing, move, delete + undo); training with a
live chart; predict → correct → retrain; the confusion matrix's cells; exports with their Python
snippets; imports. Set-up that is not the feature under test may use the JS API."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from .conftest import (
    ANIMAL_NAMES,
    PAGE_HELPERS,
    add_class,
    add_images,
    class_count,
    create_project,
    digit_images,
    open_tab,
    png,
    unique_animals,
    wait_count,
    wait_screen,
    write_pngs,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
assert PAGE_HELPERS  # the `app` fixture adds them to every page


def digits(label: int, count: int, start: int = 0):
    train, _ = digit_images()
    return [rgb for rgb, y in train if y == label][start : start + count]


def toast_text(page) -> str:
    return page.inner_text("#toasts")


def test_projects_create_rename_delete_and_storage(ui, tmp_path):
    page = ui
    # keyboard only: the name field, Enter creates the project
    page.get_by_label("Project name").focus()
    page.keyboard.type("Birds")
    page.keyboard.press("Enter")
    wait_screen(page, "data")
    add_class(page, "robin")
    add_images(page, "robin", write_pngs(tmp_path / "robin", digits(0, 2)))
    page.click(".tabs .back")
    wait_screen(page, "projects")

    card = page.locator(".project-card", has_text="Birds")
    assert "1 class · 2 images" in card.inner_text()
    page.wait_for_function(
        "document.querySelectorAll('.project-card .mosaic img[src^=\"blob:\"]').length === 2"
    )  # thumbnails
    assert re.search(r"Storage: .+ used of .+ available", page.inner_text("#storage-status"))
    assert page.locator("#persistence").count() == 1

    card.get_by_role("button", name="Rename Birds").click()
    page.get_by_label("Project name", exact=True).last.fill("Garden birds")
    page.get_by_role("button", name="Save").click()
    page.locator(".project-card h2", has_text="Garden birds").wait_for()

    # delete asks first; Cancel keeps it, Delete removes it
    page.get_by_role("button", name="Delete Garden birds").click()
    page.get_by_role("button", name="Cancel").click()
    assert page.locator(".project-card").count() == 1
    page.get_by_role("button", name="Delete Garden birds").click()
    page.locator("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_selector(".empty:has-text('No projects yet')")
    assert "Deleted" in toast_text(page)
    # visible focus: a focused control gets an outline
    page.get_by_label("Project name").focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_classes_and_every_way_to_add_samples(ui, tmp_path):
    page = ui
    create_project(page, "Digits")
    # class-name rules, shown by the field
    page.get_by_label("New class").fill("a/b")
    page.get_by_role("button", name="Add class").click()
    page.wait_for_selector("#class-error:has-text('not allowed')")
    add_class(page, "zero")
    add_class(page, "one")
    page.get_by_label("New class").fill("ZERO")
    page.get_by_role("button", name="Add class").click()
    page.wait_for_selector("#class-error:has-text('already exists')")
    assert "Not ready to train" in page.inner_text(".warnings")

    # file picker, with one corrupt file skipped and reported
    paths = write_pngs(tmp_path / "zero", digits(0, 3))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    add_images(page, "zero", paths)
    card = page.locator(".class-card[data-class-name='zero']")
    with page.expect_file_chooser() as chooser:
        card.get_by_role("button", name="Add images to zero").click()
    chooser.value.set_files(str(bad))
    page.wait_for_function("document.getElementById('toasts').textContent.includes('bad.png')")
    assert "corrupt PNG" in toast_text(page)
    assert class_count(page, "zero") == 3

    # a folder dropped onto the screen: each subfolder becomes a class (a real drag through CDP)
    root = tmp_path / "drop" / "more"
    write_pngs(root / "two", digits(2, 3))
    write_pngs(root / "three", digits(3, 2))
    (root / "three" / "notes.txt").write_text("not an image")
    box = page.locator("main").bounding_box()
    cdp = page.context.new_cdp_session(page)
    data = {"items": [], "files": [str(root)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": box["x"] + 50, "y": box["y"] + 50, "data": data})
    page.wait_for_selector(".class-card[data-class-name='three'] .thumbs li:nth-child(2)", timeout=60_000)
    assert class_count(page, "two") == 3
    assert class_count(page, "three") == 2

    # an ImageFolder zip: its folder "one" fills the existing class
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, rgb in enumerate(digits(1, 4)):
            archive.writestr(f"one/{i}.png", png(rgb))
    zip_path = tmp_path / "ones.zip"
    zip_path.write_bytes(buffer.getvalue())
    page.set_input_files("#add-zip", str(zip_path))
    wait_count(page, "one", 4)

    # paste into the class chosen under "Add to class"
    page.select_option("#target-class", label="two")
    pasted = base64.b64encode(png(digits(2, 1, start=5)[0])).decode()
    page.evaluate(
        """(b64) => {
          const data = new DataTransfer();
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          data.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
          document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
        }""",
        pasted,
    )
    wait_count(page, "two", 4)

    # webcam (Chromium's fake camera): one photo, then a held-down burst
    page.select_option("#target-class", label="three")
    page.get_by_role("button", name="Camera", exact=True).click()
    page.get_by_role("button", name="Turn camera on").click()
    page.wait_for_selector("#camera-panel .webcam[data-camera=on]")
    page.get_by_role("button", name="Take photo").click()
    wait_count(page, "three", 3)
    # Hold the button until the burst has 3 frames (however long that takes here), then release. The
    # button captures the pointer, so thumbnails loading above it while it is held do not end the burst.
    hold = page.get_by_role("button", name="Hold to record")
    hold.hover()
    page.mouse.down()
    page.wait_for_selector("#camera-panel button.recording", timeout=10_000)
    status = "document.querySelector('#camera-panel .webcam [role=status]').textContent"
    page.wait_for_function(f"/Recording… ([3-9]|\\d\\d+) frames/.test({status})", timeout=120_000)
    page.mouse.up()
    page.wait_for_function(f"/Recorded \\d+ frames/.test({status})")
    recorded = int(re.search(r"Recorded (\d+) frames", page.inner_text("#camera-panel .webcam [role=status]")).group(1))
    assert recorded >= 3
    wait_count(page, "three", 3 + recorded)
    page.get_by_role("button", name="Turn camera off").click()

    # drawing: a stroke, undo (blank again), another stroke, add it
    page.select_option("#target-class", label="zero")
    page.get_by_role("button", name="Draw", exact=True).click()
    canvas = page.locator("#draw-panel canvas")
    ink = """() => {
      const c = document.querySelector('#draw-panel canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) n += d[i] < 128;
      return n;
    }"""
    canvas.scroll_into_view_if_needed()
    c = canvas.bounding_box()

    def stroke(points):
        page.mouse.move(c["x"] + points[0][0] * c["width"], c["y"] + points[0][1] * c["height"])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(c["x"] + x * c["width"], c["y"] + y * c["height"], steps=8)
        page.mouse.up()

    stroke([(0.2, 0.2), (0.8, 0.8)])
    assert page.evaluate(ink) > 100
    page.locator("#draw-panel").get_by_role("button", name="Undo").click()
    assert page.evaluate(ink) == 0
    stroke([(0.5, 0.15), (0.2, 0.5), (0.5, 0.85), (0.8, 0.5), (0.5, 0.15)])
    page.get_by_role("button", name="Add drawing to class").click()
    wait_count(page, "zero", 4)
    sources = page.evaluate(
        """async () => { const t = await import('/tejas.js'); const [p] = await t.listProjects();
          return (await t.listSamples(p.id)).map((s) => s.source).sort(); }"""
    )
    assert {"drawing", "paste", "webcam", "zip", "file"} <= set(sources)

    # select two images of "zero", move them to "one"
    zero = page.locator(".class-card[data-class-name='zero'] .thumb input")
    zero.nth(0).check()
    zero.nth(1).check()
    bar = page.locator(".selection-bar")
    assert "2 images selected" in bar.inner_text()
    bar.get_by_label("Move selected images to class").select_option(label="one")
    bar.get_by_role("button", name="Move").click()
    wait_count(page, "one", 6)
    assert class_count(page, "zero") == 2

    # delete one, then undo
    page.locator(".class-card[data-class-name='one'] .thumb input").first.check()
    bar.get_by_role("button", name="Delete").click()
    wait_count(page, "one", 5)
    page.locator("#toasts").get_by_role("button", name="Undo").click()
    wait_count(page, "one", 6)
    assert "Not ready to train" not in page.inner_text(".warnings")


def test_training_panel_live_chart_progress_and_cancel(ui, tmp_path):
    page = ui
    create_project(page, "Animals")
    for label, images in unique_animals(20).items():
        add_class(page, ANIMAL_NAMES[label])
        add_images(page, ANIMAL_NAMES[label], write_pngs(tmp_path / str(label), images))
    assert sum(class_count(page, name) for name in ANIMAL_NAMES) == 100

    open_tab(page, "Train")
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Epochs").fill("6")
    page.get_by_role("button", name="Train model").click()
    page.wait_for_selector("#train-progress:not([hidden])")
    # embedding, then training: a head run of a few epochs can end between two polls, so done counts too
    page.wait_for_function(
        "document.getElementById('train-stage').textContent.startsWith('Training')"
        " || document.querySelector('main[data-training=done]') !== null",
        timeout=120_000,
    )
    # the run carries on while the user looks elsewhere
    open_tab(page, "Data")
    open_tab(page, "Train")
    page.wait_for_selector("main[data-training=done]", timeout=300_000)

    assert page.get_attribute("#train-chart", "data-points") == "6"  # a point per epoch
    assert page.locator("#train-chart canvas").count() == 1
    assert page.locator("#history-table tbody tr").count() == 6
    accuracy = page.inner_text("#validation-accuracy")
    assert re.fullmatch(r"\d+%", accuracy)
    assert int(accuracy[:-1]) >= 50, accuracy  # 5 classes: chance is 20%

    # train again and cancel: the model that was there stays. The run is made long (500 epochs of batch 4,
    # 10,000 head steps) so that Cancel lands while it runs: a 6-epoch head run ends in a blink.
    if not page.get_by_label("Epochs").is_visible():
        page.get_by_text("Advanced settings").click()
    page.get_by_label("Epochs").fill("500")
    page.get_by_label("Batch size").select_option("4")
    page.get_by_role("button", name="Train again").click()
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("main[data-training=cancelled]")
    assert "previous model" in page.inner_text("#train-stage")
    page.reload()
    wait_screen(page, "train")
    assert page.inner_text("#validation-accuracy") == accuracy


def test_predict_correct_and_retrain(ui, tmp_path):
    page = ui
    create_project(page, "Zero or one")
    for label, name in enumerate(["zero", "one"]):
        add_class(page, name)
        add_images(page, name, write_pngs(tmp_path / name, digits(label, 12)))
    open_tab(page, "Train")
    page.get_by_role("button", name="Train model").click()
    page.wait_for_selector("main[data-training=done]", timeout=300_000)

    open_tab(page, "Predict")
    # an image unlike both classes (a four); whatever it is called, teach it the other answer
    query = tmp_path / "four.png"
    query.write_bytes(png(digits(4, 1)[0]))
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose image…").click()
    chooser.value.set_files(str(query))
    page.wait_for_selector("#prediction li.best")
    first = page.inner_text("#prediction li.best .name")
    assert page.locator("#prediction li").count() == 2
    right = "one" if first == "zero" else "zero"
    page.get_by_text("Wrong? Teach it the right answer").click()
    page.select_option("#correct-class", label=right)
    assert page.is_checked("#retrain-now")
    page.get_by_role("button", name="Add to dataset").click()
    page.wait_for_selector("main[data-retrained=true]", timeout=300_000)
    assert page.inner_text("#prediction li.best .name") == right

    # a drawing predicts too
    page.get_by_role("button", name="Draw", exact=True).click()
    page.locator("#predict-draw canvas").scroll_into_view_if_needed()
    c = page.locator("#predict-draw canvas").bounding_box()
    page.mouse.move(c["x"] + c["width"] / 2, c["y"] + 20)
    page.mouse.down()
    page.mouse.move(c["x"] + c["width"] / 2, c["y"] + c["height"] - 20, steps=10)
    page.mouse.up()
    page.evaluate("document.querySelector('main').dataset.predicted = ''")
    page.get_by_role("button", name="Predict drawing").click()
    page.wait_for_function("document.querySelector('main').dataset.predicted !== ''")

    # live camera: predictions keep coming
    page.get_by_role("button", name="Camera", exact=True).click()
    page.locator("#predict-camera").get_by_role("button", name="Turn camera on").click()
    page.wait_for_selector("#predict-camera .webcam[data-camera=on]")
    page.get_by_role("button", name="Live prediction").click()
    page.wait_for_function("Number(document.querySelector('main').dataset.liveFrames) >= 3", timeout=60_000)
    page.get_by_role("button", name="Stop live prediction").click()


EVALUATE_SETUP = """async ([names, items]) => {
  const { t, project } = await projectWith('Animals', names, items);
  await t.train(project.id, { epochs: 8 });
  location.hash = `#/p/${project.id}/evaluate`;
  return project.id;
}"""

# Independently of the stored metrics: each validation image predicted now → the cells' image ids.
PREDICTED_CELLS = """async (projectId) => {
  const t = await import('/tejas.js');
  const model = await t.currentModel(projectId);
  const samples = new Map((await t.listSamples(projectId)).map((s) => [s.contentId, s]));
  const index = new Map(model.classes.map((c, i) => [c.id, i]));
  const cells = {};
  for (const id of model.split.validation) {
    const [top] = await t.predict(projectId, await t.getImage(id), { topK: 1 });
    (cells[`${index.get(samples.get(id).classId)},${index.get(top.classId)}`] ??= []).push(id);
  }
  return cells;
}"""


def test_confusion_matrix_cells_show_their_images(ui):
    page = ui
    items = [(base64.b64encode(png(rgb)).decode(), y) for y, images in unique_animals(20).items() for rgb in images]
    project_id = page.evaluate(EVALUATE_SETUP, [ANIMAL_NAMES, items])
    wait_screen(page, "evaluate", timeout=300_000)
    assert page.locator("#per-class tbody tr").count() == 5
    expected = page.evaluate(PREDICTED_CELLS, project_id)
    wrong = page.locator("#confusion td.wrong button:not([disabled])")
    assert wrong.count() >= 1, "a 5-class Animal-MNIST model with 16 images a class makes some mistakes"

    for k in range(wrong.count()):
        button = wrong.nth(k)
        t, p = button.get_attribute("data-t"), button.get_attribute("data-p")
        button.click()
        page.wait_for_selector(f"#cell-images[data-cell='{t},{p}']")
        shown = page.eval_on_selector_all("#cell-images .cell-item", "items => items.map((i) => i.dataset.contentId)")
        assert sorted(shown) == sorted(expected[f"{t},{p}"]), (t, p)
        assert int(button.inner_text()) == len(shown)

    # relabel one of them from the cell: the model is now stale
    assert page.locator("#stale").count() == 0
    item = page.locator("#cell-images .cell-item").first
    item.locator("select").select_option(index=int(p))
    item.get_by_role("button", name="Relabel").click()
    page.wait_for_selector("#stale")
    assert "Relabelled" in item.inner_text()


EXPORT_SETUP = """async (items) => {
  const { t, project } = await projectWith('Zero one', ['zero', 'one'], items);
  await t.train(project.id, { epochs: 10 });
  location.hash = `#/p/${project.id}/export`;
  return project.id;
}"""


def run_snippet(code: str, folder) -> tuple[str, float]:
    (folder / "snippet.py").write_text(code)
    result = subprocess.run([sys.executable, "snippet.py"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    name, probability = result.stdout.split()
    return name, float(probability)


def test_exports_with_python_snippets_and_imports(ui, tmp_path):
    page = ui
    items = [(base64.b64encode(png(rgb)).decode(), label) for label in (0, 1) for rgb in digits(label, 12)]
    project_id = page.evaluate(EXPORT_SETUP, items)
    wait_screen(page, "export", timeout=300_000)

    folder = tmp_path / "downloads"
    folder.mkdir()
    photo = Image.fromarray(digits(1, 1, start=15)[0])
    photo.save(folder / "photo.jpg", quality=95)
    browser = page.evaluate(
        """async ([projectId, b64]) => {
          const t = await import('/tejas.js');
          return (await t.predict(projectId, fileFrom(b64, 'photo.jpg'), { topK: 1 }))[0];
        }""",
        [project_id, base64.b64encode((folder / "photo.jpg").read_bytes()).decode()],
    )
    for button, snippet in (("#download-onnx", "#onnx-snippet"), ("#download-pt", "#pt-snippet")):
        with page.expect_download(timeout=120_000) as download:
            page.click(button)
        download.value.save_as(folder / download.value.suggested_filename)
        code = page.inner_text(snippet)
        assert download.value.suggested_filename in code
        name, probability = run_snippet(code, folder)
        assert name == browser["name"], (button, name, browser)
        assert abs(probability - browser["probability"]) < 0.02, (button, probability, browser)
    assert sorted(p.name for p in folder.iterdir()) == ["Zero-one.onnx", "Zero-one.pt", "photo.jpg", "snippet.py"]

    with page.expect_download(timeout=120_000) as download:
        page.click("#download-dataset")
    dataset = tmp_path / download.value.suggested_filename
    download.value.save_as(dataset)
    with zipfile.ZipFile(dataset) as archive:
        assert sum(n.endswith(".png") for n in archive.namelist()) == 24
    with page.expect_download(timeout=120_000) as download:
        page.click("#download-project")
    project_file = tmp_path / download.value.suggested_filename
    download.value.save_as(project_file)

    # the project file comes back as a new project with its model
    page.set_input_files("#import-project", str(project_file))
    page.wait_for_function(
        f"!location.hash.includes('{project_id}') && location.hash.endsWith('/data')", timeout=120_000
    )
    wait_screen(page, "data")
    assert class_count(page, "zero") == 12 and class_count(page, "one") == 12
    open_tab(page, "Evaluate")
    assert page.locator("#confusion").count() == 1

    # the dataset zip imports from the projects screen as a new project
    page.click(".tabs .back")
    wait_screen(page, "projects")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import .zip…").click()
    chooser.value.set_files(str(dataset))
    wait_screen(page, "data", timeout=120_000)
    assert class_count(page, "zero") == 12 and class_count(page, "one") == 12
    page.click(".tabs .back")
    wait_screen(page, "projects")
    assert page.locator(".project-card").count() == 3


def test_zip_import_refuses_bad_archives_with_a_message(ui, tmp_path):
    page = ui
    create_project(page, "Safe")
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../escape/x.png", png(np.zeros((8, 8, 3), np.uint8)))
    path = tmp_path / "evil.zip"
    path.write_bytes(evil.getvalue())
    page.set_input_files("#add-zip", str(path))
    page.wait_for_selector(".toast.error")
    assert "evil.zip" in page.inner_text(".toast.error")
    assert page.locator(".class-card").count() == 0
