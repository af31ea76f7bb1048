"""Projects, classes and samples in IndexedDB through the JS API: content-addressed, logged, and safe
when the disk is full."""

from __future__ import annotations

import base64

import pytest

from tejas.dataset import validate_class_name

from ..pycore.images_for_tests import png

pytestmark = pytest.mark.browser

SETUP = """async (pngs) => {
  const t = await import('/tejas.js');
  const file = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
  window.file = file;
  const project = await t.createProject('Birds');
  const robin = await t.addClass(project.id, 'robin');
  const crow = await t.addClass(project.id, 'crow');
  const result = await t.addSamples(project.id, robin.id, [
    file(pngs[0], 'a.png'), file(pngs[1], 'b.png'), file(btoa('not an image at all'), 'notes.png'),
    file(pngs[0], 'a-again.png'),
  ]);
  return { project, robin, crow, added: result.added.map((s) => s.name), skipped: result.skipped };
}"""


@pytest.fixture
def app(serve, tmp_path, page):
    page.goto(serve(tmp_path / "artifacts").url + "/")
    return page


def pngs(n: int, size: int = 8) -> list[str]:
    return [base64.b64encode(png(size, size, seed=i)).decode() for i in range(n)]


def test_projects_classes_samples_and_change_log(app):
    made = app.evaluate(SETUP, pngs(2))
    assert made["added"] == ["a.png", "b.png"]
    assert made["skipped"] == [
        {"name": "notes.png", "reason": "not an image (not PNG, JPEG, WebP, GIF or BMP)"},
        {"name": "a-again.png", "reason": 'already in this project (class "robin")'},
    ]
    state = app.evaluate(
        """async ({ project, robin, crow }) => {
          const t = await import('/tejas.js');
          const errors = [];
          for (const name of ['ROBIN', 'CON', '...', '']) {
            await t.addClass(project.id, name).catch((e) => errors.push(e.message));
          }
          await t.renameClass(crow.id, 'raven');
          const samples = await t.listSamples(project.id);
          const image = await t.getImage(samples[0].contentId);
          await t.deleteClass(robin.id);
          return {
            errors, classes: (await t.listClasses(project.id)).map((c) => c.name),
            samples: samples.map((s) => [s.name, s.format, s.width, s.height]).sort(),
            imageBytes: image.size, imageType: image.type,
            left: (await t.listSamples(project.id)).length,
            log: (await t.listChanges(project.id)).map((c) => `${c.op} ${c.store}`),
          };
        }""",
        made,
    )
    assert state["errors"] == [
        'class "robin" already exists',
        "class name 'CON' is reserved on Windows",
        "class name '...' is only dots",
        "class name is empty",
    ]
    assert state["classes"] == ["raven"]
    assert state["samples"] == [["a.png", "png", 8, 8], ["b.png", "png", 8, 8]]
    assert state["imageType"] == "image/png" and state["imageBytes"] == len(png(8, 8, seed=0))
    assert state["left"] == 0
    assert state["log"] == [
        "put projects",
        "put classes",
        "put classes",
        "put samples",
        "put samples",
        "put classes",
        "delete samples",
        "delete samples",
        "delete classes",
    ]


def test_everything_survives_a_reload_and_project_delete_cleans_up(app):
    made = app.evaluate(SETUP, pngs(2))
    app.reload()
    after = app.evaluate(
        """async (id) => {
          const t = await import('/tejas.js');
          const before = { projects: (await t.listProjects()).length, samples: (await t.listSamples(id)).length };
          await t.deleteProject(id);
          return { before, projects: (await t.listProjects()).length, samples: (await t.listSamples(id)).length };
        }""",
        made["project"]["id"],
    )
    assert after == {"before": {"projects": 1, "samples": 2}, "projects": 0, "samples": 0}


def test_full_disk_fails_the_one_write_and_keeps_what_was_saved(
    serve, tmp_path, browser_type, browser_type_launch_args
):
    # Chromium enforces a CDP quota override in a persistent profile (an incognito one ignores it).
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        url = serve(tmp_path / "artifacts").url
        # Set before the database opens: an open connection keeps the quota it started with.
        cdp = context.new_cdp_session(page)
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": url, "quotaSize": 500_000})
        page.goto(url + "/")
        made = page.evaluate(SETUP, pngs(2))
        big = base64.b64encode(png(600, 600, seed=99, level=0)).decode()  # ~1 MB
        outcome = page.evaluate(
            """async ([{ project, robin }, big]) => {
              const t = await import('/tejas.js');
              const error = await t.addSamples(project.id, robin.id, [window.file(big, 'huge.png')])
                .then(() => null, (e) => [e.name, e.message]);
              return { error, samples: (await t.listSamples(project.id)).map((s) => s.name).sort() };
            }""",
            [made, big],
        )
    finally:
        context.close()
    assert outcome["error"] == [
        "QuotaExceededError",
        "Storage is full: could not save 1 image(s). Delete projects or samples to make room; "
        "nothing saved before was lost.",
    ]
    assert outcome["samples"] == ["a.png", "b.png"]


NAMES = [
    "cat",
    "",
    "   ",
    ".",
    "...",
    "CON",
    "con.txt",
    "Lpt9",
    "a|b",
    "x" * 101,
    "tab\there",
    "ends.",
    "ends ",
    "it's",
    'say "hi"',
    "émigré",
    "back\\slash",
    "ok name",
]


def test_class_name_rules_equal_the_python_core(app):
    js = app.evaluate(
        "async (names) => { const t = await import('/tejas.js'); return names.map((n) => t.validateClassName(n)); }",
        NAMES,
    )
    assert js == [validate_class_name(n) for n in NAMES]


def test_first_project_asks_for_persistent_storage(app):
    """Chromium answers persist() false headless, so the call itself is what is checked."""
    app.evaluate("""() => {
      window.persistCalls = 0;
      const original = navigator.storage.persist.bind(navigator.storage);
      navigator.storage.persist = () => { window.persistCalls++; return original(); };
    }""")
    result = app.evaluate("""async () => {
      const t = await import('/tejas.js');
      await t.createProject('First');
      const afterFirst = window.persistCalls;
      await t.createProject('Second');
      return { afterFirst, afterSecond: window.persistCalls, status: await t.storageStatus() };
    }""")
    assert result["afterFirst"] == 1 and result["afterSecond"] == 1
    status = result["status"]
    assert status["persisted"] is False and status["usage"] > 0 and status["quota"] > status["usage"]
