"""Text projects driven through the UI in Debian chromium: a Text project from the projects screen; the
Data screen (a CSV previewed with its bad rows listed by row number, then imported; texts typed into a
class; edit, relabel, delete + undo; the dataset downloaded as CSV); then train, predict a typed text and
correct it, a confusion-matrix cell listing its texts, the ONNX + tokenizer.json downloads with the
page's Python snippet run against the browser's probabilities, and the app reloaded offline predicting
a text. Every text screen: no serious axe violation in light or dark, nothing wider than a 360 px phone.
Set-up that is not the feature under test may use the JS API."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT
from .conftest import (
    PAGE_HELPERS,
    SCREENSHOTS,
    SIZES,
    WAIT_FOR_SERVICE_WORKER,
    axe_violations,
    open_tab,
    wait_screen,
    write_precache,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT_ARTIFACTS = ROOT / "artifacts" / "text"

HAM = [
    "Are we still on for lunch tomorrow?",
    "I'll call you when I get home tonight",
    "Can you pick up some milk on the way back",
    "Sorry, running ten minutes late, start without me",
    "Happy birthday! Hope you have a lovely day",
    "Did you finish the report for Monday?",
    "The train is delayed again, see you at seven",
    "Thanks for dinner last night, it was great",
    "Mum says the keys are under the flower pot",
    "Let's watch the match at Dave's place on Saturday",
    "My phone battery is almost dead, text you later",
    "Don't forget the dentist appointment at 3",
]
SPAM = [
    "WINNER! You have been selected to receive a £1000 cash prize. Call 09061701461 now",
    "URGENT! Your mobile number has won a bonus of £2000. Claim at www.prize-now.example",
    "FREE entry in our weekly competition to win FA Cup final tickets. Text FA to 87121",
    "Congratulations, you have won a free holiday to the Canaries! Reply WIN to claim",
    "You have 1 new voicemail. Call 0906 123 4567 to listen (£1.50/min)",
    "SIX chances to win CASH! From 100 to 20,000 pounds, txt CSH11 and send to 87575",
    "Your account has been credited with 500 free minutes. Text STOP to opt out",
    "Claim your free ringtone now! Reply TONE to 85555, 18+ only",
    "Last chance! Cheap loans approved today, no credit checks, call now",
    "PRIVATE! Your 2003 account statement shows 800 unredeemed bonus points. Call 08719899217",
    "Get the latest mobile phone FREE! Call The Mobile Update Co FREE on 08002986030",
    "You are a winner U have been specially selected 2 receive £1000 cash. Txt WIN to 80086",
]


def text_artifacts() -> Path:
    if not (TEXT_ARTIFACTS / "manifest.json").is_file():
        pytest.fail("artifacts/text missing: `tejas export --modality text --out artifacts/text` (tools/dev.sh does)")
    return TEXT_ARTIFACTS


def small_csv(path: Path) -> set[int]:
    """A CSV of HAM and SPAM (header text,label) with three bad rows; returns their 1-based line numbers."""
    rows = [("text", "label")] + [(t, "ham") for t in HAM[:6]]
    bad = []
    rows.append(("", "ham"))  # empty text
    bad.append(len(rows))
    rows += [(t, "spam") for t in SPAM[:6]]
    rows.append(("Call me when you land", ""))  # no label
    bad.append(len(rows))
    rows += [(t, "ham") for t in HAM[6:]]
    rows.append(("spam " * 1200, "spam"))  # 6,000 characters: too long
    bad.append(len(rows))
    rows += [(t, "spam") for t in SPAM[6:]]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return set(bad)


@pytest.fixture
def text_ui(default_export, serve, tmp_path, page):
    """The app's projects screen at desktop size, served with the default export and the text artifacts."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    shutil.copytree(text_artifacts(), tmp_path / "artifacts" / "text")
    page.add_init_script(PAGE_HELPERS)
    page.set_viewport_size(SIZES["desktop"])
    page.goto(serve(tmp_path / "artifacts").url + "/")
    wait_screen(page, "projects")
    return page


def create_text_project(page, name: str):
    page.goto(page.url.split("#")[0] + "#/")
    wait_screen(page, "projects")
    page.get_by_label("Project name").fill(name)
    page.get_by_role("radio", name=re.compile("^Text")).check()
    page.get_by_role("button", name="Create project").click()
    wait_screen(page, "data")


def count(page, class_name: str) -> int:
    return int(page.inner_text(f".class-card[data-class-name='{class_name}'] .count"))


COUNT_IS = """([name, n]) =>
  Number(document.querySelector(`.class-card[data-class-name='${name}'] .count`)?.textContent) === n"""


def wait_count(page, class_name: str, n: int, timeout: float = 60_000):
    page.wait_for_function(COUNT_IS, arg=[class_name, n], timeout=timeout)


def item(page, text: str):
    """The list item of a text on the Data screen (found with the screen's own Find box)."""
    page.fill("#text-filter", text)
    return page.locator(".text-item", has=page.locator(".text", has_text=text)).first


def check_screen(page, name: str) -> None:
    """No serious or critical axe violation in light or dark, nothing wider than a 360 px phone; a
    screenshot of each size (test-results/screenshots/text-<name>-<size>.png)."""
    problems = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.screenshot(
            path=str(SCREENSHOTS / f"text-{name}-{viewport['width']}x{viewport['height']}.png"), full_page=True
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            problems[f"{size}: wider than the screen by"] = overflow
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            if violations := axe_violations(page):
                problems[f"{size} {scheme}"] = violations
        page.emulate_media(color_scheme="light")
    page.set_viewport_size(SIZES["desktop"])
    assert problems == {}, (name, problems)


def test_text_data_screen_import_type_edit_relabel_delete_and_csv(text_ui, tmp_path):
    page = text_ui
    create_text_project(page, "Spam or not")
    assert page.inner_text(".tabs .kind-badge") == "Text"

    # a CSV: the preview says what it read and lists the bad rows by their row number
    path = tmp_path / "sms.csv"
    bad_rows = small_csv(path)
    page.set_input_files("#import-csv", str(path))
    page.wait_for_selector("#csv-preview:not([hidden]) #csv-import")
    assert "24 texts" in page.inner_text("#csv-facts")
    assert "text, label" in page.inner_text("#csv-facts")  # the header it found
    listed = page.eval_on_selector_all(
        "#csv-skipped li", "items => items.map((i) => [Number(i.dataset.row), i.textContent])"
    )
    assert {row for row, _ in listed} == bad_rows, listed
    assert all(text.startswith(f"Row {row}: ") for row, text in listed)
    reasons = dict(listed)
    empty, unlabelled, long = sorted(bad_rows)
    assert "empty" in reasons[empty] and "label" in reasons[unlabelled] and "5,000" in reasons[long], reasons
    classes = page.eval_on_selector_all(
        "#csv-classes tbody tr", "rows => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])"
    )
    assert sorted(classes) == [["ham", "12"], ["spam", "12"]]
    check_screen(page, "data-preview")
    page.click("#csv-import")
    page.wait_for_selector("#csv-result:has-text('Imported 24 texts')")
    wait_count(page, "ham", 12)
    wait_count(page, "spam", 12)
    # the same file again: nothing new, every row said to be there already
    page.set_input_files("#import-csv", str(path))
    page.click("#csv-import")
    page.wait_for_selector("#csv-result:has-text('Imported 0 texts')")
    assert "already in this project" in page.text_content("#csv-import-skipped")

    # a file that is not text: refused with the core's sentence, which names the file once
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    page.set_input_files("#import-csv", str(png))
    toast = page.locator(".toast", has_text="is not a text file")
    toast.wait_for()
    assert toast.inner_text().startswith("photo.csv is not a text file: it is a PNG image"), toast.inner_text()
    assert page.locator("#csv-preview").is_hidden()
    toast.get_by_role("button", name="Dismiss").click()  # an error stays until dismissed

    # typed texts, one per line, into the class chosen
    page.select_option("#text-class", label="spam")
    page.fill("#text-input", "Free ringtones: text GO to 80888\n\nTxt STOP to end your £5/week subscription now")
    page.click("#add-texts")
    wait_count(page, "spam", 14)
    assert page.input_value("#text-input") == ""

    # edit: the text changes, its class stays
    item(page, "Free ringtones").get_by_role("button", name=re.compile("^Edit")).click()
    page.locator("dialog textarea").fill("Free ringtones for you: text GO to 80888")
    page.locator("dialog").get_by_role("button", name="Save").click()
    page.wait_for_selector(".class-card[data-class-name='spam'] .text:has-text('Free ringtones for you')")
    page.fill("#text-filter", "")
    assert count(page, "spam") == 14
    texts = page.evaluate(
        "async () => (await (await import('/tejas.js')).listTexts(location.hash.split('/')[2])).map((s) => s.text)"
    )
    assert "Free ringtones for you: text GO to 80888" in texts and "Free ringtones: text GO to 80888" not in texts

    # relabel: select a ham text and move it to spam
    item(page, HAM[0]).locator("input[type=checkbox]").check()
    page.select_option("#move-class", label="spam")
    page.locator(".selection-bar").get_by_role("button", name="Move").click()
    wait_count(page, "ham", 11)
    assert count(page, "spam") == 15
    page.fill("#text-filter", "")

    # delete two, then undo
    spam_card = page.locator(".class-card[data-class-name='spam']")
    spam_card.locator(".text-item input[type=checkbox]").nth(0).check()
    spam_card.locator(".text-item input[type=checkbox]").nth(1).check()
    page.locator(".selection-bar").get_by_role("button", name="Delete").click()
    wait_count(page, "spam", 13)
    page.locator(".toast").get_by_role("button", name="Undo").click()
    wait_count(page, "spam", 15)
    check_screen(page, "data")

    # the dataset as CSV: every text with its class
    with page.expect_download(timeout=60_000) as download:
        page.click("#download-csv")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "Spam-or-not.csv"
    with saved.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", "label"]
    got = sorted((t, label) for t, label in rows[1:])
    expected = (
        [(t, "ham") for t in HAM[1:]]
        + [(t, "spam") for t in SPAM + [HAM[0], "Free ringtones for you: text GO to 80888"]]
        + [("Txt STOP to end your £5/week subscription now", "spam")]
    )
    assert got == sorted(expected)

    # the projects screen tells text projects apart
    page.click(".tabs .back")
    wait_screen(page, "projects")
    card = page.locator(".project-card", has_text="Spam or not")
    assert card.locator(".kind-badge").inner_text() == "Text"
    assert "2 classes · 26 texts" in card.inner_text()
    check_screen(page, "projects")


TEXT_SETUP = """async ([ham, spam]) => {
  const t = await import('/tejas.js');
  const project = await t.createProject('SMS', { kind: 'text' });
  const h = await t.addClass(project.id, 'ham');
  const s = await t.addClass(project.id, 'spam');
  await t.addTexts(project.id, h.id, ham);
  await t.addTexts(project.id, s.id, spam);
  return project.id;
}"""

PREDICT_TEXTS = """async ([projectId, texts]) => {
  const r = await (await import('/tejas.js')).predictTexts(projectId, texts);
  return { classes: r.classes, probabilities: Array.from(r.probabilities) };
}"""

# The snippet's output per text: "class p | class p <- text"
SNIPPET_LINE = re.compile(r"^(?P<top>.+?) <- ")


def run_snippet(code: str, folder: Path, texts: list[str]) -> list[dict[str, float]]:
    """Run the page's Python snippet on `texts`: {class: probability} of its top classes per text."""
    (folder / "classify.py").write_text(code)
    result = subprocess.run(
        [sys.executable, "classify.py", *texts], cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(texts), result.stdout
    out = []
    for line in lines:
        top = SNIPPET_LINE.match(line)["top"]
        out.append({name: float(p) for name, p in (part.rsplit(" ", 1) for part in top.split(" | "))})
    return out


def test_text_project_trains_predicts_corrects_evaluates_exports_and_works_offline(
    app_copy, serve, tmp_path, browser_type, browser_type_launch_args
):
    pwa, artifacts = app_copy
    shutil.copytree(text_artifacts(), artifacts / "text")
    write_precache(pwa, artifacts / "default")  # the text files are listed beside the default ones
    server = serve(artifacts, pwa)
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_HELPERS)
        page.set_viewport_size(SIZES["desktop"])
        page.goto(server.url + "/")
        page.wait_for_function("navigator.serviceWorker.getRegistration().then((r) => !!r)")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        project_id = page.evaluate(TEXT_SETUP, [HAM, SPAM])
        page.goto(f"{server.url}/#/p/{project_id}/train")
        wait_screen(page, "train")

        # train: the image panel, worded for texts (no augmentation, no last block)
        assert "24 texts in 2 classes" in page.inner_text("#train-form")
        page.get_by_text("Advanced settings").click()
        assert page.locator("select[name=augment]").count() == 0
        assert page.is_disabled("input[name=mode][value=last_block]")
        page.get_by_role("button", name="Train model").click()
        page.wait_for_selector("main[data-training=done]", timeout=600_000)
        assert page.locator("#train-chart canvas").count() == 1
        assert "held-out text" in page.inner_text("#model-origin")
        assert re.fullmatch(r"\d+\.\d%", page.inner_text("#macro-f1"))
        check_screen(page, "train")

        # predict a typed text; image-only modes are not offered
        open_tab(page, "Predict")
        assert page.locator(".mode-switch").count() == 0
        query = "Call now to claim your prize, or see you at lunch?"
        page.fill("#predict-text", query)
        page.get_by_role("button", name="Predict").click()
        page.wait_for_selector("#prediction li.best")
        assert page.locator("#prediction li").count() == 2
        first = page.inner_text("#prediction li.best .name")
        right = "ham" if first == "spam" else "spam"
        before = browser_probability(page, project_id, query, right)
        page.get_by_text("Wrong? Teach it the right answer").click()
        page.select_option("#correct-class", label=right)
        assert page.is_checked("#retrain-now")
        page.get_by_role("button", name="Add to dataset").click()
        page.wait_for_selector("main[data-retrained=true]", timeout=600_000)
        after = browser_probability(page, project_id, query, right)
        assert after > before, (before, after)  # the corrected text now trains on its right class
        corrected = page.evaluate(
            """async ([projectId, text]) => (await (await import('/tejas.js')).listTexts(projectId))
                 .filter((s) => s.text === text).map((s) => s.source)""",
            [project_id, query],
        )
        assert corrected == ["correction"]
        check_screen(page, "predict")

        # evaluate: a cell of the confusion matrix lists its texts
        open_tab(page, "Evaluate")
        assert page.locator("#per-class tbody tr").count() == 2
        cells = page.evaluate(
            """async (projectId) => {
              const t = await import('/tejas.js');
              const model = await t.currentModel(projectId);
              const out = {};
              for (const [key, ids] of Object.entries(model.metrics.cells)) {
                out[key] = await Promise.all(ids.map((id) => t.getText(id)));
              }
              return out;
            }""",
            project_id,
        )
        buttons = page.locator("#confusion td button:not([disabled])")
        assert buttons.count() >= 1
        for k in range(buttons.count()):
            button = buttons.nth(k)
            key = f"{button.get_attribute('data-t')},{button.get_attribute('data-p')}"
            button.click()
            page.wait_for_selector(f"#cell-images[data-cell='{key}']")
            shown = page.eval_on_selector_all("#cell-images .cell-text", "items => items.map((i) => i.textContent)")
            assert sorted(shown) == sorted(cells[key]), key
            assert page.locator("#cell-images img").count() == 0  # texts, not thumbnails
        check_screen(page, "evaluate")

        # export: ONNX + tokenizer.json, and the snippet on the page reproduces the browser's probabilities
        open_tab(page, "Export")
        folder = tmp_path / "downloads"
        folder.mkdir()
        for button in ("#download-onnx", "#download-tokenizer"):
            with page.expect_download(timeout=300_000) as download:
                page.click(button)
            download.value.save_as(folder / download.value.suggested_filename)
        assert sorted(p.name for p in folder.iterdir()) == ["SMS.onnx", "tokenizer.json"]
        check_screen(page, "export")
        code = page.inner_text("#onnx-snippet")
        assert "SMS.onnx" in code and "tokenizer.json" in code
        queries = [query, "WINNER! Claim your free prize now", "see you at home later", "ok"]
        python = run_snippet(code, folder, queries)
        browser = page.evaluate(PREDICT_TEXTS, [project_id, queries])
        n = len(browser["classes"])
        for i, top in enumerate(python):
            for name, p in top.items():
                assert abs(p - browser["probabilities"][i * n + browser["classes"].index(name)]) <= 1e-4, (i, name)
        with page.expect_download(timeout=60_000) as download:
            page.click("#download-csv")
        assert download.value.suggested_filename == "SMS.csv"

        # offline: the server gone and the network cut, the app reloads and predicts a typed text
        server.stop()
        context.set_offline(True)
        page.reload()
        wait_screen(page, "export")
        open_tab(page, "Predict")
        page.fill("#predict-text", "WINNER! Claim your free prize now")
        page.get_by_role("button", name="Predict").click()
        page.wait_for_selector("#prediction li.best", timeout=120_000)
        assert page.inner_text("#prediction li.best .name") == "spam"
        assert page.is_visible("#network")  # the offline indicator
    finally:
        context.close()


def browser_probability(page, project_id: str, text: str, class_name: str) -> float:
    top = page.evaluate(
        "async ([projectId, text]) => (await import('/tejas.js')).predictText(projectId, text, { topK: 5 })",
        [project_id, text],
    )
    return next(t["probability"] for t in top if t["name"] == class_name)
