"""The Data screen's virtualised grids in Debian chromium: a class of a few hundred images renders a
bounded number of tiles, scrolling shows the right image in each tile (and drops the ones left behind,
their object URLs revoked), selection and move work on tiles far down the list, and the screen passes
axe. No timing thresholds here: speed and memory at 5,000 images are bench/browser_scale.py's."""

from __future__ import annotations

import pytest

from .conftest import PAGE_HELPERS, axe_violations, wait_count, wait_screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]
assert PAGE_HELPERS

MANY = 400

# A project with classes "many" (n distinct small PNGs drawn in the page) and "few" (2).
MAKE_PROJECT = """async (n) => {
  const t = await import('/tejas.js');
  const project = await t.createProject('Grid');
  const many = await t.addClass(project.id, 'many');
  const few = await t.addClass(project.id, 'few');
  const png = async (i) => {
    const canvas = new OffscreenCanvas(24, 24);
    const g = canvas.getContext('2d');
    g.fillStyle = `rgb(${i % 256}, ${(i * 7) % 256}, ${Math.floor(i / 256) * 60})`;
    g.fillRect(0, 0, 24, 24);
    g.fillStyle = '#fff';
    g.fillRect(i % 24, Math.floor(i / 24) % 24, 1, 1);
    return new File([await canvas.convertToBlob({ type: 'image/png' })], `img-${String(i).padStart(3, '0')}.png`);
  };
  const files = [];
  for (let i = 0; i < n; i++) files.push(await png(i));
  for (let i = 0; i < n; i += 50) await t.addSamples(project.id, many.id, files.slice(i, i + 50));
  await t.addSamples(project.id, few.id, [await png(n), await png(n + 1)]);
  return project.id;
}"""

# Every rendered tile of a class: [position, name, content id, whether its <img> shows that sample's thumbnail].
TILES = """async (name) => {
  const t = await import('/tejas.js');
  const items = [...document.querySelectorAll(`.class-card[data-class-name='${name}'] .thumbs li`)];
  const bytes = async (blob) => new Uint8Array(await blob.arrayBuffer()).join(',');
  return Promise.all(items.map(async (li) => {
    const input = li.querySelector('input');
    const img = li.querySelector('img');
    const shown = img.src ? await bytes(await (await fetch(img.src)).blob()) : null;
    return [Number(li.getAttribute('aria-posinset')), input.getAttribute('aria-label'), input.dataset.contentId,
            shown !== null && shown === await bytes(await t.getThumbnail(input.dataset.contentId))];
  }));
}"""

# The samples of a class in the grid's order (by time added; then as listSamples returns them).
ORDER = """async ([projectId, name]) => {
  const t = await import('/tejas.js');
  const cls = (await t.listClasses(projectId)).find((c) => c.name === name);
  return (await t.listSamples(projectId)).filter((s) => s.classId === cls.id)
    .sort((a, b) => (a.added < b.added ? -1 : a.added > b.added ? 1 : 0)).map((s) => s.contentId);
}"""


def wait_thumbnails(page, name: str):
    page.wait_for_function(
        "(name) => [...document.querySelectorAll(`.class-card[data-class-name='${name}'] .thumbs img`)]"
        ".every((i) => i.complete && i.src)",
        arg=name,
    )


def check_tiles(page, project_id: str, name: str) -> list:
    """The rendered tiles are a contiguous run of the class's samples, each showing its own thumbnail."""
    wait_thumbnails(page, name)
    tiles = page.evaluate(TILES, name)
    order = page.evaluate(ORDER, [project_id, name])
    positions = [p for p, *_ in tiles]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    for position, label, content_id, shows_it in tiles:
        assert content_id == order[position - 1], f"tile {position} holds the wrong sample"
        assert shows_it, f"tile {position} ({label}) shows another image"
    return tiles


def test_grid_renders_visible_rows_and_scrolls_to_the_right_images(ui):
    page = ui
    project_id = page.evaluate(MAKE_PROJECT, MANY)
    page.evaluate("(id) => { location.hash = `#/p/${id}/data`; }", project_id)
    wait_screen(page, "data")
    wait_count(page, "many", MANY)
    grid = page.locator(".class-card[data-class-name='many'] .thumbs")
    assert grid.get_attribute("aria-label") == "Images of many"

    # at the top: only the rows near the viewport exist, though the list is as tall as all its rows
    first = check_tiles(page, project_id, "many")
    assert first[0][0] == 1
    assert 0 < len(first) < MANY / 2
    assert page.evaluate(
        "document.querySelector(\".class-card[data-class-name='many'] .thumbs li\").getAttribute('aria-setsize')"
    ) == str(MANY)
    height = grid.bounding_box()["height"]
    row = page.locator(".class-card[data-class-name='many'] .thumbs li").first.bounding_box()["height"]
    assert height > (MANY / len(first)) * row  # room for every row, not just the rendered ones
    urls = page.evaluate(
        "[...document.querySelectorAll(\".class-card[data-class-name='many'] .thumbs img\")].map((i) => i.src)"
    )

    # scrolled to the end of the class: its last images, in order, each with its own thumbnail
    page.evaluate(
        "() => { const list = document.querySelector(\".class-card[data-class-name='many'] .thumbs\");"
        " scrollTo(0, scrollY + list.getBoundingClientRect().bottom - innerHeight + 10); }"
    )
    page.wait_for_function(
        "(n) => document.querySelector(\".class-card[data-class-name='many'] .thumbs li:last-child\")"
        "?.getAttribute('aria-posinset') === String(n)",
        arg=MANY,
    )
    last = check_tiles(page, project_id, "many")
    assert last[-1][0] == MANY
    assert len(last) < MANY / 2
    assert last[0][0] > first[-1][0]  # the top rows were dropped ...
    gone = page.evaluate(
        "async (urls) => (await Promise.all(urls.map((u) => fetch(u).then(() => false, () => true)))).every(Boolean)",
        urls,
    )
    assert gone  # ... and their object URLs revoked

    # select two tiles far down the list, move them to "few"
    boxes = page.locator(".class-card[data-class-name='many'] .thumb input")
    boxes.nth(boxes.count() - 1).check()
    boxes.nth(boxes.count() - 2).check()
    moved = [last[-1][2], last[-2][2]]
    bar = page.locator(".selection-bar")
    assert "2 images selected" in bar.inner_text()
    bar.get_by_label("Move selected images to class").select_option(label="few")
    bar.get_by_role("button", name="Move").click()
    wait_count(page, "few", 4)
    wait_count(page, "many", MANY - 2)
    page.locator(".class-card[data-class-name='few']").scroll_into_view_if_needed()
    few = check_tiles(page, project_id, "few")
    assert set(moved) <= {content_id for *_, content_id, _ in few}

    # keyboard: a tile's checkbox takes Space; the screen passes axe
    page.evaluate("() => scrollTo(0, 0)")
    page.locator(".class-card[data-class-name='many'] .thumb input").first.focus()
    page.keyboard.press("Space")
    assert "1 image selected" in bar.inner_text()
    bar.get_by_role("button", name="Clear selection").click()
    bar.wait_for(state="hidden")
    assert axe_violations(page) == []


def test_scale_bench_measures_a_toy_import(ui):
    """bench/browser_scale.measure_scale at toy size: every figure is there (no bound asserted: CI is slow)."""
    from bench.browser_scale import measure_scale

    result = measure_scale(ui, 30, epochs=2, log=lambda _: None)
    assert result["images"] == 30 and result["classes"] == 5
    for key in (
        "import_seconds",
        "embed_seconds",
        "peak_js_heap_used_mib",
        "peak_renderer_rss_mib",
        "memory_bound_mib",
    ):
        assert result[key] > 0, key
    assert result["train_seconds"] >= 0 and result["longest_main_thread_task_ms"] >= 0
    assert 0 < result["max_tiles_rendered"] <= 30
