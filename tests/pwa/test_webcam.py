"""A camera whose picture does not change (covered, or frozen): Chromium's fake camera fed a one-frame
video. A held burst keeps one frame, says how many unchanged ones it dropped, and adding a frame the
class already has says so instead of failing silently."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ..conftest import CHROMIUM, CHROMIUM_ARGS
from .conftest import PAGE_HELPERS, wait_count, wait_screen

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write_still_y4m(path, width=320, height=240):
    """A one-frame Y4M video (Chromium's fake camera loops it: every frame is the same picture)."""
    y = np.tile(np.linspace(16, 235, width, dtype=np.uint8), (height, 1))  # a grey ramp
    u = np.full((height // 2, width // 2), 100, np.uint8)
    v = np.full((height // 2, width // 2), 160, np.uint8)
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes())


def test_a_frozen_camera_burst_says_the_picture_did_not_change(default_export, serve, tmp_path, playwright):
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    server = serve(tmp_path / "artifacts")
    video = tmp_path / "still.y4m"
    write_still_y4m(video)
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"]
    )
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.add_init_script(PAGE_HELPERS)
        page.goto(server.url + "/")
        project_id = page.evaluate(
            """async () => {
              const t = await import('/tejas.js');
              const project = await t.createProject('Camera');
              await t.addClass(project.id, 'still');
              return project.id;
            }"""
        )
        page.goto(f"{server.url}/#/p/{project_id}/data")
        wait_screen(page, "data")
        page.get_by_role("button", name="Camera", exact=True).click()
        page.get_by_role("button", name="Turn camera on").click()
        page.wait_for_selector("#camera-panel .webcam[data-camera=on]")
        page.get_by_role("button", name="Take photo").click()
        wait_count(page, "still", 1)

        status = "document.querySelector('#camera-panel .webcam [role=status]').textContent"
        page.get_by_role("button", name="Hold to record").hover()
        page.mouse.down()
        page.wait_for_function(f"/\\(([3-9]|\\d\\d+) unchanged\\)/.test({status})", timeout=120_000)
        page.mouse.up()
        page.wait_for_function(f"/^Recorded 1 frame\\./.test({status})")
        assert "the picture did not change" in page.evaluate(status)
        page.wait_for_function(
            "/Nothing added: .* is already in this project/.test(document.querySelector('#toasts').textContent)"
        )
        assert int(page.inner_text(".class-card[data-class-name='still'] .count")) == 1
    finally:
        browser.close()
