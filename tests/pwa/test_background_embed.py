"""Background embedding (pwa/features/embed/background.js): images added to an open project are embedded
while the user works, so Train embeds nothing; a reload resumes what was left; a prediction meanwhile
waits for at most one background call, not for the queue. Every wait is on a condition, never a time."""

from __future__ import annotations

import base64

import pytest

from .conftest import digit_images, png, wait_screen

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
