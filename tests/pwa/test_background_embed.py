"""Background embedding (pwa/features/embed/background.js): images added to an open project are embedded
while the user works, so Train embeds nothing; a reload resumes what was left; a prediction meanwhile
waits for at most one background call, not for the queue; with the project open in two tabs only one
embeds it (a Web Lock), the other counts along and takes over when that one closes. Every wait is on a
condition, never a time."""

from __future__ import annotations

import base64

import pytest

from .conftest import PAGE_HELPERS, digit_images, png, wait_screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The status line on the Data screen says ready for exactly `total` images.
READY = """(total) => {
  const line = document.querySelector('#preparing');
  return line && line.dataset.state === 'ready' && line.dataset.total === String(total);
}"""

# How many plain (unaugmented) embeddings IndexedDB holds.
CACHED = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open('tejas');
  open.onsuccess = () => {
    const request = open.result.transaction('embeddings').objectStore('embeddings').getAll();
    request.onsuccess = () => {
      resolve(request.result.filter((e) => e.augmentationId === 'none').length);
      open.result.close();
    };
    request.onerror = () => reject(request.error);
  };
  open.onerror = () => reject(open.error);
})"""


def digits(per_class: int, classes: int, skip: int = 0) -> list[tuple[str, int]]:
    """Distinct 64×64 digit PNGs (base64) with their class, `per_class` of each of the first classes."""
    train, validation = digit_images()
    out, seen = [], {}
    for rgb, y in train + validation:
        if y < classes and skip <= seen.get(y, 0) < skip + per_class:
            out.append((base64.b64encode(png(rgb)).decode(), int(y)))
        seen[y] = seen.get(y, 0) + 1
    return out


def open_project(page, classes: list[str]) -> str:
    """A new image project with these classes, its Data screen open; returns its id."""
    wait_screen(page, "projects")
    project_id = page.evaluate(
        """async (names) => {
          const t = await import('/tejas.js');
          const project = await t.createProject('Background');
          for (const name of names) await t.addClass(project.id, name);
          return project.id;
        }""",
        classes,
    )
    page.evaluate("(id) => { location.hash = `#/p/${id}/data`; }", project_id)
    wait_screen(page, "data")
    page.wait_for_selector("#preparing[role=status][aria-live=polite]", state="attached")
    return project_id


ADD = """async ([id, items]) => {
  const t = await import('/tejas.js');
  const classes = await t.listClasses(id);
  for (const [c, cls] of classes.entries()) {
    const files = items.filter(([, y]) => y === c).map(([b64], i) => fileFrom(b64, `${c}-${i}.png`));
    if (files.length) await t.addSamples(id, cls.id, files);
  }
}"""


def test_train_after_background_embedding_embeds_nothing(app):
    page = app
    project_id = open_project(page, ["zero", "one", "two"])
    page.evaluate(ADD, [project_id, digits(10, 3)])
    page.wait_for_function(READY, arg=30, timeout=600_000)
    assert "All 30 images ready for training" in page.inner_text("#preparing")
    assert page.evaluate(CACHED) == 30

    result = page.evaluate(
        """async (id) => {
          const t = await import('/tejas.js');
          const before = t.embedCounts();
          const stages = new Set();
          const model = await t.train(id, { epochs: 3, onProgress: (p) => stages.add(p.stage) });
          return { before, after: t.embedCounts(), stages: [...stages], classes: model.classes.length };
        }""",
        project_id,
    )
    # every image was embedded once, by the background, and training embedded none
    assert result["before"]["background"]["images"] == 30
    assert result["after"] == result["before"], result
    assert result["stages"] == ["training"] and result["classes"] == 3


def test_a_reload_midway_resumes_with_what_is_left(app):
    page = app
    project_id = open_project(page, ["zero", "one", "two"])
    # Added while paused, so one scan counts all 30; after the first call of 8 is stored, pause again
    # (no new call starts) and reload the page.
    page.evaluate("async () => (await import('/tejas.js')).backgroundEmbedding.pause()")
    page.evaluate(ADD, [project_id, digits(10, 3)])
    with page.expect_navigation(timeout=600_000):
        page.evaluate(
            """async (id) => {
              const t = await import('/tejas.js');
              t.backgroundEmbedding.subscribe(id, (s) => {
                if (s.total === 30 && s.pending > 0 && s.pending < 30 && !window.reloading) {
                  window.reloading = true;
                  t.backgroundEmbedding.pause();
                  location.reload();
                }
              });
              t.backgroundEmbedding.resume();
            }""",
            project_id,
        )
    wait_screen(page, "data")
    page.wait_for_function(READY, arg=30, timeout=600_000)
    assert page.evaluate(CACHED) == 30
    counts = page.evaluate("async () => (await import('/tejas.js')).embedCounts()")
    # this page embedded only what the last one left: 30 minus its one call of 8
    assert counts["background"]["images"] == 22, counts
    assert counts["foreground"]["images"] == 0


def test_a_prediction_waits_for_one_background_call_not_the_queue(app):
    page = app
    project_id = open_project(page, ["zero", "one"])
    page.evaluate(ADD, [project_id, digits(4, 2)])
    page.wait_for_function(READY, arg=8, timeout=600_000)
    page.evaluate("async (id) => { await (await import('/tejas.js')).train(id, { epochs: 2 }); }", project_id)
    page.wait_for_function(READY, arg=8, timeout=600_000)

    more = digits(20, 2, skip=4)
    query = digits(1, 1, skip=30)[0][0]
    result = page.evaluate(
        """async ([id, items, query]) => {
          const t = await import('/tejas.js');
          const bg = t.backgroundEmbedding;
          // as soon as background embedding has counted the 40 new images, predict and embed in the foreground
          // added while paused, so one scan counts all 40
          bg.pause();
          const classes = await t.listClasses(id);
          for (const [c, cls] of classes.entries()) {
            const files = items.filter(([, y]) => y === c).map(([b64], i) => fileFrom(b64, `more-${c}-${i}.png`));
            await t.addSamples(id, cls.id, files);
          }
          const queued = new Promise((resolve) => {
            const stop = bg.subscribe(id, (s) => { if (s.pending >= 40) { stop(); resolve(s); } });
          });
          bg.resume();
          const atStart = await queued;
          const before = t.embedCounts().background;
          const [top, features] = await Promise.all([
            t.predict(id, fileFrom(query, 'query.png')),
            t.embedImages([fileFrom(query, 'query.png')]),
          ]);
          const after = t.embedCounts().background;
          const atEnd = bg.status(id);
          await bg.ready(id);
          return { atStart, atEnd, calls: after.calls - before.calls, top: top.length,
                   features: features.embedded.length, final: bg.status(id) };
        }""",
        [project_id, more, query],
    )
    assert result["atStart"]["pending"] >= 40
    # both foreground calls ran after at most the one background call in flight, not after the queue
    assert result["calls"] <= 1, result
    assert result["atEnd"]["pending"] >= 40 - 8 and not result["atEnd"]["ready"], result
    assert result["top"] == 2 and result["features"] == 1
    assert result["final"]["ready"] and result["final"]["total"] == 48


# Page-side controls of background embedding and its state.
PAUSE = "async () => (await import('/tejas.js')).backgroundEmbedding.pause()"
RESUME = "async () => (await import('/tejas.js')).backgroundEmbedding.resume()"
COUNTS = "async () => (await import('/tejas.js')).embedCounts()"
# The module as window.tejas, so that conditions can be synchronous (wait_for_function does not await).
EXPOSE = "async () => { window.tejas = await import('/tejas.js'); }"
STATE = """([id, want]) => {
  const status = window.tejas.backgroundEmbedding.status(id);
  return Object.entries(want).every(([key, value]) => status[key] === value);
}"""
# Whether some tab of the browser holds the project's background-embedding lock.
LOCKED = "async (id) => (await navigator.locks.query()).held.some((lock) => lock.name === `tejas-embed:${id}`)"
# Resolves once no tab holds the lock (a request of it is granted), within a minute.
LET_GO = "async (id) => navigator.locks.request(`tejas-embed:${id}`, { signal: AbortSignal.timeout(60e3) }, () => true)"
# Once this tab is embedding the project with `pending` or fewer images left, a foreground call (as a
# training would be) that lasts until RELEASE: no background call starts meanwhile, the lock stays held.
HOLD = """async ([id, pending]) => {
  const bg = (await import('/tejas.js')).backgroundEmbedding;
  window.holds ??= [];
  let held = false;
  bg.subscribe(id, (s) => {
    if (held || !s.running || s.pending > pending) return;
    held = true;
    const hold = new Promise((resolve) => window.holds.push(resolve));
    bg.foreground(() => hold);
  });
}"""
RELEASE = "() => window.holds.shift()()"


def second_tab(page, project_id: str):
    """Another tab of the same browser (same origin, same IndexedDB) on the project's Data screen."""
    tab = page.context.new_page()
    tab.add_init_script("delete Navigator.prototype.serviceWorker;")
    tab.add_init_script(PAGE_HELPERS)
    tab.goto(page.url.split("#")[0] + f"#/p/{project_id}/data")
    wait_screen(tab, "data")
    tab.wait_for_selector("#preparing[role=status]", state="attached")
    tab.evaluate(EXPOSE)
    return tab


def test_two_tabs_embed_each_image_once(app):
    project_id = open_project(app, ["zero", "one", "two"])
    other = second_tab(app, project_id)
    app.evaluate(ADD, [project_id, digits(8, 3)])
    for tab in (app, other):
        tab.wait_for_function(READY, arg=24, timeout=600_000)
    counts = [tab.evaluate(COUNTS) for tab in (app, other)]
    assert sum(c["background"]["images"] for c in counts) == 24, counts
    assert [c["foreground"]["images"] for c in counts] == [0, 0]
    assert app.evaluate(CACHED) == 24


def test_the_other_tab_counts_along_and_finishes_when_the_embedding_tab_closes(app):
    owner = app
    project_id = open_project(owner, ["zero", "one", "two"])
    owner.evaluate(EXPOSE)
    other = second_tab(owner, project_id)
    # Added while both tabs are paused, so one scan counts all 24 and the tab resumed first embeds them.
    other.evaluate(PAUSE)
    owner.evaluate(PAUSE)
    owner.evaluate(ADD, [project_id, digits(8, 3)])
    owner.evaluate(HOLD, [project_id, 16])
    owner.evaluate(RESUME)
    owner.wait_for_function(STATE, arg=[project_id, {"pending": 16, "running": True, "waiting": True}])
    other.evaluate(RESUME)
    other.wait_for_function(STATE, arg=[project_id, {"pending": 16, "elsewhere": True, "running": False}])
    assert other.evaluate(LOCKED, project_id)

    # a foreground call here does not wait for the other tab's lock
    query = digits(1, 1, skip=30)[0][0]
    features = other.evaluate(
        "async (b64) => (await (await import('/tejas.js')).embedImages([fileFrom(b64, 'q.png')])).embedded", query
    )
    assert len(features) == 1

    # the owner stores one more call of 8 and holds again: this tab's count follows its announcement
    owner.evaluate(HOLD, [project_id, 8])
    owner.evaluate(RELEASE)
    other.wait_for_function(STATE, arg=[project_id, {"pending": 8, "elsewhere": True}])
    owner.wait_for_function(STATE, arg=[project_id, {"pending": 8, "waiting": True}])
    assert "Preparing 8 images for training" in other.inner_text("#preparing")
    assert owner.evaluate(COUNTS)["background"]["images"] == 16

    # closing the owner lets go of its lock: this tab embeds exactly the 8 it left
    owner.close()
    other.wait_for_function(READY, arg=24, timeout=600_000)
    assert other.evaluate(CACHED) == 24
    counts = other.evaluate(COUNTS)
    assert counts["background"]["images"] == 8, counts
    assert not other.evaluate(STATE, [project_id, {"elsewhere": True}])


def test_pause_cancel_and_another_project_let_go_of_the_lock(app):
    page = app
    project_id = open_project(page, ["zero", "one", "two"])
    page.evaluate(EXPOSE)
    page.evaluate(PAUSE)
    page.evaluate(ADD, [project_id, digits(8, 3)])
    page.evaluate(HOLD, [project_id, 16])
    page.evaluate(RESUME)
    page.wait_for_function(STATE, arg=[project_id, {"pending": 16, "waiting": True}])
    assert page.evaluate(LOCKED, project_id)
    # each lets go at once, while a foreground call (the hold) is still running
    page.evaluate(PAUSE)
    assert page.evaluate(LET_GO, project_id)
    page.evaluate(RESUME)

    page.evaluate(HOLD, [project_id, 8])
    page.evaluate(RELEASE)
    page.wait_for_function(STATE, arg=[project_id, {"pending": 8, "waiting": True}])
    assert page.evaluate(LOCKED, project_id)
    page.evaluate("async () => (await import('/tejas.js')).backgroundEmbedding.cancel()")
    assert page.evaluate(LET_GO, project_id)

    page.evaluate(HOLD, [project_id, 8])
    page.evaluate(RELEASE)
    page.evaluate("async (id) => (await import('/tejas.js')).backgroundEmbedding.watch(id)", project_id)
    page.wait_for_function(STATE, arg=[project_id, {"pending": 8, "running": True, "waiting": True}])
    assert page.evaluate(LOCKED, project_id)
    page.evaluate(
        """async () => {
          const t = await import('/tejas.js');
          t.backgroundEmbedding.watch((await t.createProject('Another')).id);
        }"""
    )
    assert page.evaluate(LET_GO, project_id)

    # after the other project, this one's last 8 (cancelled and let go of calls lost no work)
    page.evaluate(RELEASE)
    status = page.evaluate("async (id) => (await import('/tejas.js')).backgroundEmbedding.ready(id)", project_id)
    assert status["ready"] and status["total"] == 24, status
    assert page.evaluate(COUNTS)["background"]["images"] == 24
    assert page.evaluate(CACHED) == 24
