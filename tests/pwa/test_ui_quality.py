"""The app as a whole: installable (Chromium reports no installability errors) and working offline
after install; every screen free of serious or critical axe-core violations in light and dark, not
wider than a 360 px phone; screenshots of each screen at 360×740 and 1280×800 (into
test-results/screenshots/; `bash tools/dev.sh screenshots` refreshes docs/screenshots/)."""

from __future__ import annotations

import base64
import json

import pytest

from .conftest import (
    ANIMAL_NAMES,
    PAGE_HELPERS,
    SCREENSHOTS,
    SIZES,
    WAIT_FOR_SERVICE_WORKER,
    add_class,
    axe_violations,
    create_project,
    open_tab,
    png,
    unique_animals,
    wait_screen,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_installable_and_works_offline_after_install(app_copy, serve, tmp_path, browser_type, browser_type_launch_args):
    pwa, artifacts = app_copy
    manifest = json.loads((pwa / "manifest.webmanifest").read_text())
    assert {"any", "maskable"} <= {icon["purpose"] for icon in manifest["icons"]}
    server = serve(artifacts, pwa)
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        wait_screen(page, "projects")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        cdp = context.new_cdp_session(page)
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert errors == [], errors
        assert page.is_hidden("#update-banner")

        server.stop()
        assert page.is_hidden("#network")
        context.set_offline(True)
        page.wait_for_selector("#network:visible")  # the offline indicator
        page.reload()
        wait_screen(page, "projects")
        create_project(page, "On a plane")
        add_class(page, "clouds")
        for tab in ("Train", "Predict", "Evaluate", "Export", "Data"):
            open_tab(page, tab)
            failed = page.locator("main .error[role=alert]:visible")
            assert failed.count() == 0, failed.all_inner_texts()
        page.goto(page.url.split("#")[0] + "#/about")
        wait_screen(page, "about")
        page.wait_for_function("document.getElementById('architecture').textContent.includes('features')")
    finally:
        context.close()


SETUP = """async ([names, items]) => {
  const { t, project } = await projectWith('Animals', names, items);
  await t.train(project.id, { epochs: 8 });
  return project.id;
}"""

SCREENS = ["projects", "data", "train", "predict", "predict-many", "evaluate", "export", "sync", "about"]


def show(page, screen: str, project_id: str, query) -> None:
    """Open a screen in a state worth looking at."""
    url = page.url.split("#")[0]
    page.goto(
        f"{url}#/"
        if screen == "projects"
        else f"{url}#/{screen}"
        if screen in ("about", "sync")
        else f"{url}#/p/{project_id}/predict/many"
        if screen == "predict-many"
        else f"{url}#/p/{project_id}/{screen}"
    )
    page.reload()  # a fresh render at this viewport
    wait_screen(page, screen.removesuffix("-many"))
    if screen == "predict-many":  # Predict → Many images, with a few results in its table
        copies = [query.with_name(f"{query.stem}-{i}.png") for i in range(3)]
        for copy in copies:
            copy.write_bytes(query.read_bytes())
        page.set_input_files("#many-files", [str(c) for c in copies])
        page.wait_for_selector("main[data-many-state=done]")
    elif screen == "predict":
        page.set_input_files("#predict-file", str(query))
        page.wait_for_selector("#prediction li.best")
    elif screen == "evaluate":
        button = page.locator("#confusion td.wrong button:not([disabled])").first
        if button.count():
            button.click()
            page.wait_for_selector("#cell-images:not([hidden])")
    elif screen == "train":
        page.get_by_text("Advanced settings").click()
    page.wait_for_function("[...document.images].every((i) => i.complete)")
    page.evaluate("() => { document.activeElement?.blur(); scrollTo(0, 0); }")
    page.wait_for_timeout(300)


def test_every_screen_accessible_fits_a_phone_and_is_photographed(ui, tmp_path):
    page = ui
    animals = unique_animals(21)
    items = [(base64.b64encode(png(rgb)).decode(), y) for y, images in animals.items() for rgb in images[:20]]
    project_id = page.evaluate(SETUP, [ANIMAL_NAMES, items])
    query = tmp_path / "query.png"
    query.write_bytes(png(animals[2][20]))  # a cat it did not see
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for screen in SCREENS:
            show(page, screen, project_id, query)
            page.screenshot(
                path=str(SCREENSHOTS / f"{screen}-{viewport['width']}x{viewport['height']}.png"), full_page=True
            )
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                problems[f"{screen} {size}: wider than the screen by"] = overflow
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                if violations := axe_violations(page):
                    problems[f"{screen} {size} {scheme}"] = violations
            page.emulate_media(color_scheme="light")
    page.emulate_media(color_scheme="dark")
    show(page, "train", project_id, query)
    page.screenshot(path=str(SCREENSHOTS / "train-dark-1280x800.png"), full_page=True)
    (tmp_path / "problems.json").write_text(json.dumps(problems, indent=1))
    assert problems == {}, problems
    assert PAGE_HELPERS
