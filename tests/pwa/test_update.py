"""Service-worker updates: a new version installs beside the running one (which keeps serving its own
files), copies unchanged files from the old cache instead of downloading them, refuses files whose
content does not match its list, and takes over when the app's "Reload to update" is pressed."""

from __future__ import annotations

import pytest

from .conftest import write_precache

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REGISTER = """async () => {
  const { registerServiceWorker } = await import('/features/update.js');
  window.updateReady = false;
  window.registration = await registerServiceWorker({ onUpdateReady: () => { window.updateReady = true; } });
  await navigator.serviceWorker.ready;
  return true;
}"""

STATE = """async () => ({
  caches: (await caches.keys()).filter((n) => n.startsWith('tejas-')).sort(),
  marker: (await (await fetch('/features/random.js')).text()).includes('// version two'),
  controlled: navigator.serviceWorker.controller !== null,
})"""


def _update(page) -> bool:
    """Ask for an update; True once a new version waits, False if its install failed."""
    return page.evaluate(
        """async () => {
          await window.registration.update().catch(() => null);
          for (let i = 0; i < 600; i++) {
            if (window.updateReady) return true;
            const r = window.registration;
            if (!r.installing && !r.waiting) return false;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          throw new Error('install did not settle in 60 s');
        }"""
    )


def test_new_version_installs_beside_the_old_and_takes_over_on_reload(app_copy, serve, browser):
    pwa, artifacts = app_copy
    first = write_precache(pwa, artifacts / "default")
    server = serve(artifacts, pwa)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        page.evaluate(REGISTER)
        page.reload()  # now the service worker controls the page
        page.evaluate(REGISTER)
        state = page.evaluate(STATE)
        assert state == {"caches": [f"tejas-{first}"], "marker": False, "controlled": True}

        # A file whose content no longer matches the list: the new version refuses to install and
        # the running one carries on.
        random_js = pwa / "features" / "random.js"
        version_two = random_js.read_text() + "\n// version two\n"
        random_js.write_text(version_two)
        second = write_precache(pwa, artifacts / "default")
        random_js.write_text(version_two + "// edited after the list was made\n")
        assert _update(page) is False
        # the page says why (the worker tells it; features/update.js)
        page.wait_for_function("document.body.dataset.offlineError?.includes('features/random.js')")
        assert "content changed" in page.evaluate("document.body.dataset.offlineError")
        assert page.evaluate(STATE)["caches"] == [f"tejas-{first}"]
        assert page.is_hidden("#update-banner")
        random_js.write_text(version_two)

        # Unchanged files come from the old cache: remove a large one from the server.
        wasm = next((pwa / "vendor" / "pyodide").glob("*.wasm"))
        wasm.unlink()
        assert _update(page) is True
        state = page.evaluate(STATE)
        # both versions side by side; the page still gets the old version's files
        assert state == {"caches": sorted([f"tejas-{first}", f"tejas-{second}"]), "marker": False, "controlled": True}

        # the app offers the new version; its button switches to it
        page.wait_for_selector("#update-banner:visible")
        with page.expect_navigation():
            page.click("#update-reload")
        page.wait_for_load_state()
        state = page.evaluate(STATE)
        assert state == {"caches": [f"tejas-{second}"], "marker": True, "controlled": True}
        # the copied file is still there, with the headers that keep cross-origin isolation
        assert page.evaluate("self.crossOriginIsolated") is True
        status = page.evaluate(f"fetch('/vendor/pyodide/{wasm.name}').then((r) => r.status)")
        assert status == 200
    finally:
        context.close()
