"""The Sync screen shows the account's quotas as the server counts them (GET /api/me `usage`): after
signing in, and again after each sync run (issue 24, 3)."""

from __future__ import annotations

import hashlib
import io
import shutil

import httpx
import pytest
from PIL import Image

from .conftest import PAGE_HELPERS, axe_violations, wait_screen

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery"


def pngs_of_one_size(count: int) -> list[bytes]:
    out: list[bytes] = []
    seed = 0
    while len(out) < count:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (seed % 256, seed // 256, 7)).save(buffer, "PNG")
        if not out or len(buffer.getvalue()) == len(out[0]):
            out.append(buffer.getvalue())
        seed += 1
    return out


def test_the_sync_screen_shows_what_the_account_uses(default_export, serve, tmp_path, page):
    images = pngs_of_one_size(2)
    size = len(images[0])
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    env = {"TEJAS_MAX_USER_BYTES": str(2 * size), "TEJAS_MAX_JOBS_QUEUED": "3"}
    server = serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env=env)

    # the account holds one image another of its clients uploaded
    http = httpx.Client(base_url=server.url, timeout=30)
    account = {"email": "q@example.org", "password": PASSWORD}
    assert http.post("/api/auth/signup", json=account).status_code in (201, 202)
    token = http.post("/api/auth/signin", json=account).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def upload(image: bytes) -> None:
        digest = hashlib.sha256(image).hexdigest()
        answer = http.put(f"/api/blobs/{digest}?kind=image", content=image)
        assert answer.status_code == 201, answer.text

    upload(images[0])

    page.add_init_script("delete Navigator.prototype.serviceWorker;")  # as the `app` fixture does
    page.add_init_script(PAGE_HELPERS)
    page.goto(server.url + "/#/sync")
    wait_screen(page, "sync")
    page.get_by_label("Email").fill("q@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    storage = page.locator("#account-usage [data-quota=storage_bytes]")
    storage.wait_for()
    assert storage.inner_text().strip() == f"Stored: {size} bytes of {2 * size} bytes"
    assert storage.get_attribute("data-full") == "false"
    assert page.inner_text("#account-usage [data-quota=jobs]") == "Server jobs queued or running: 0 of 3"
    assert page.inner_text("#account-usage [data-quota=streams]") == "Prediction streams: 0 of 20"
    assert axe_violations(page) == []

    # the account fills up elsewhere; the next sync run brings the new count to the screen
    upload(images[1])
    page.click("#sync-now")
    page.wait_for_selector("#account-usage [data-quota=storage_bytes][data-full=true]", timeout=30_000)
    assert storage.inner_text().startswith(f"Stored: {2 * size} bytes of {2 * size} bytes")
    assert "Full: delete projects or jobs on the server to sync more." in storage.inner_text()
