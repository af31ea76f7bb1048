"""An old tab never stalls a database upgrade: when a newer version of the app opens the database in
another tab, the old tab closes its connection (its page and its workers), so the upgrade goes on, and
tells its user to reload."""

from __future__ import annotations

OUTDATED = "Tejas was updated in another tab; reload this page to keep working."

# The next version of the app, in the new tab: the app's own migrations plus one, opened with its own open function.
OPEN_NEXT_VERSION = """async () => {
  const db = await import('/db.js');
  db.MIGRATIONS.push((database) => database.createObjectStore('next'));
  const opened = await db.openDatabase();
  const projects = await db.transaction(['projects'], 'readonly', (s) => db.getAll(s.projects));
  return { version: opened.version, stores: [...opened.objectStoreNames], projects: projects.map((p) => p.name) };
}"""


def test_an_old_tab_closes_its_database_when_a_newer_version_opens_it(serve, tmp_path, page):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    server = serve(artifacts)
    # no service worker: the checkout's precache list names another export's files (see tests/pwa/conftest.py)
    page.context.add_init_script("delete Navigator.prototype.serviceWorker;")
    old = page
    old.goto(server.url + "/")
    old.evaluate("async () => { const t = await import('/tejas.js'); await t.createProject('Kept'); }")
    old.wait_for_selector("#view[data-ready='true']")
    assert old.is_hidden("#outdated-banner")
    versions = old.evaluate("async () => (await indexedDB.databases()).map((d) => d.version)")
    assert versions == [3]

    new = old.context.new_page()
    new.goto(server.url + "/manifest.webmanifest")  # the app's origin, without the app opening the database
    upgraded = new.evaluate(OPEN_NEXT_VERSION)  # rejects ("open in another tab") if the old tab blocks it
    assert upgraded["version"] == 4 and "next" in upgraded["stores"] and upgraded["projects"] == ["Kept"]

    old.wait_for_selector("#outdated-banner", state="visible")
    banner = old.inner_text("#outdated-banner")
    assert banner.startswith("Tejas was updated in another tab; this one has stopped saving.")
    assert old.get_by_role("button", name="Reload").is_visible()
    # and its writes fail saying what to do, instead of reaching a closed database
    message = old.evaluate(
        "async () => { try { await (await import('/tejas.js')).createProject('Late'); return null; }"
        " catch (error) { return error.message; } }"
    )
    assert message == OUTDATED
