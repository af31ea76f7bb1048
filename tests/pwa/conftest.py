"""Browser-test helpers: the app served with the default export, PNG bytes of an RGB array, and the
page-side helpers (PAGE_HELPERS) the tests' scripts share."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from ..conftest import ROOT

# Added to every test page: fileFrom(base64, name) → File, base64Of(blob) → string, and
# projectWith(name, classNames, [[base64, classIndex], ...]) → {t, project, classes}.
PAGE_HELPERS = """
window.fileFrom = (b64, name) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name);
window.base64Of = async (blob) => {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
window.projectWith = async (name, classNames, items) => {
  const t = await import('/tejas.js');
  const project = await t.createProject(name);
  const classes = [];
  for (const className of classNames) classes.push(await t.addClass(project.id, className));
  for (const [i, [b64, y]] of items.entries()) {
    await t.addSamples(project.id, classes[y].id, [window.fileFrom(b64, `${i}.png`)]);
  }
  return { t, project, classes };
};
"""


@pytest.fixture
def app(default_export, serve, tmp_path, page):
    """The page at the app's root, served with the default export as artifacts/default."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    # The checkout's precache list names the dev export's files, not this one's, so a service worker
    # could never install here (and the app would rightly say so): this page runs as in a browser
    # without service workers. Tests of the service worker use app_copy, whose list matches.
    page.add_init_script("delete Navigator.prototype.serviceWorker;")
    page.add_init_script(PAGE_HELPERS)
    page.goto(serve(tmp_path / "artifacts").url + "/")
    return page


@pytest.fixture
def app_copy(default_export, tmp_path):
    """(pwa, artifacts): a copy of the app serving the default export, its precache list made for
    exactly those files (the service worker checks every file's sha256)."""
    folder, _ = default_export
    pwa, artifacts = tmp_path / "pwa", tmp_path / "artifacts"
    shutil.copytree(ROOT / "pwa", pwa, ignore=shutil.ignore_patterns("py"))
    # of the core's sources the page needs only the shared tables (features/rules.js imports rules.json)
    shutil.copytree(ROOT / "pwa" / "py" / "tejas" / "schemas", pwa / "py" / "tejas" / "schemas")
    shutil.copytree(folder, artifacts / "default")
    write_precache(pwa, artifacts / "default")
    return pwa, artifacts


def write_precache(pwa: Path, artifacts: Path) -> str:
    """Run tools/precache.py for an app folder; returns the version."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "precache.py"), "--pwa", str(pwa), "--artifacts", str(artifacts)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr.strip().rsplit(" ", 1)[-1]  # "precache: ... version <v>"


def png(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


CLASSES, TRAIN, VALIDATION = 5, 20, 20


@cache
def digit_images():
    """sklearn's 8×8 digits (ship offline) as 64×64 RGB PNGs: 5 classes × (20 train + 20 validation)."""
    digits = load_digits()
    train, validation = [], []
    for label in range(CLASSES):
        rows = np.flatnonzero(digits.target == label)[: TRAIN + VALIDATION]
        for k, row in enumerate(rows):
            gray = (digits.images[row] * (255 / 16)).astype(np.uint8)
            rgb = np.asarray(Image.fromarray(gray).resize((64, 64), Image.Resampling.NEAREST).convert("RGB"))
            (train if k < TRAIN else validation).append((rgb, label))
    return train, validation


@cache
def animal_images(size: int = 112):
    """Animal-MNIST (28×28 grey animal drawings, PyPI `animal-mnist`, MIT) upscaled to size×size RGB:
    the first 5 classes × (20 train + 20 validation). Read from the package's files: importing the
    package would import tensorflow."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None:
        pytest.fail("animal-mnist is not installed: `pip install --no-deps animal-mnist==0.4` (tools/dev.sh does)")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz") as f:
        images = pickle.load(f)
    with gzip.open(folder / "animal_label_version_3.gz") as f:
        labels = np.asarray(pickle.load(f))
    train, validation = [], []
    for label in range(CLASSES):
        for k, row in enumerate(np.flatnonzero(labels == label)[: TRAIN + VALIDATION]):
            grey = Image.fromarray(np.asarray(images[row], np.uint8))
            rgb = np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR).convert("RGB"))
            (train if k < TRAIN else validation).append((rgb, label))
    return train, validation


# What the first 5 Animal-MNIST labels show.
ANIMAL_NAMES = ["bear", "bird", "cat", "cow", "dog"]


def unique_animals(per_class: int) -> dict[int, list]:
    """Animal-MNIST images, `per_class` distinct ones of each of 5 classes (the set repeats a few)."""
    train, validation = animal_images()
    seen, out = set(), {}
    for rgb, label in train + validation:
        if rgb.tobytes() in seen or len(out.setdefault(label, [])) == per_class:
            continue
        seen.add(rgb.tobytes())
        out[label].append(rgb)
    return out


# Resolves when a service worker is active; rejects with a hint if its install fails (a stale
# pwa/precache.js lists hashes the served files no longer have: tools/precache.py regenerates it).
WAIT_FOR_SERVICE_WORKER = """async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  if (!registration) {
    // a first install that fails removes its registration; the app records why (features/update.js)
    const why = document.body.dataset.offlineError;
    throw new Error(why ? `service worker install failed: ${why}` : 'no service worker registered');
  }
  // A registration exists before its script is even fetched, with no worker yet: judge a worker once
  // one appears; one that turns 'redundant' failed to install.
  let worker = null;
  for (let i = 0; i < 1200; i++) {
    if (registration.active) return true;
    worker = registration.installing || registration.waiting || worker;
    if (worker?.state === 'redundant') {
      throw new Error('service worker install failed: is pwa/precache.js stale? run tools/precache.py');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('service worker did not activate in 120 s');
}"""


# Screenshots go to a git-ignored folder; `bash tools/dev.sh screenshots` points this at docs/screenshots/.
SCREENSHOTS = Path(os.environ.get("TEJAS_SCREENSHOTS") or ROOT / "test-results" / "screenshots")
AXE = ROOT / "pwa" / "vendor" / "axe-core" / "axe.min.js"
SIZES = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture
def ui(app):
    """The app page at desktop size, its first screen rendered."""
    app.set_viewport_size(SIZES["desktop"])
    wait_screen(app, "projects")
    return app


def wait_screen(page, screen: str, timeout: float = 30_000):
    """Wait until the router has rendered `screen` (main[data-screen][data-ready])."""
    page.wait_for_selector(f"main[data-ready][data-screen={screen}]", timeout=timeout)


def open_tab(page, label: str):
    page.click(f".tabs a:text-is('{label}')")
    wait_screen(page, label.lower())


def create_project(page, name: str):
    page.goto(page.url.split("#")[0] + "#/")
    wait_screen(page, "projects")
    page.get_by_label("Project name").fill(name)
    page.get_by_role("button", name="Create project").click()
    wait_screen(page, "data")


def add_class(page, name: str):
    page.get_by_label("New class").fill(name)
    page.get_by_role("button", name="Add class").click()
    page.wait_for_selector(f".class-card[data-class-name='{name}']")


def class_count(page, name: str) -> int:
    return int(page.inner_text(f".class-card[data-class-name='{name}'] .count"))


COUNT = "([name, n, least]) => { const c = document.querySelector(`.class-card[data-class-name='${name}'] .count`); \
return c && (least ? Number(c.textContent) >= n : Number(c.textContent) === n); }"


def wait_count(page, class_name: str, n: int, at_least: bool = False, timeout: float = 60_000) -> None:
    """Wait until a class shows `n` images (or at least n)."""
    page.wait_for_function(COUNT, arg=[class_name, n, at_least], timeout=timeout)


def add_images(page, class_name: str, paths) -> None:
    """Add image files to a class with its own "Add images" file picker; waits until they are shown."""
    before = class_count(page, class_name)
    card = page.locator(f".class-card[data-class-name='{class_name}']")
    with page.expect_file_chooser() as chooser:
        card.get_by_role("button", name=f"Add images to {class_name}").click()
    chooser.value.set_files([str(p) for p in paths])
    wait_count(page, class_name, before + len(paths))


def write_pngs(folder: Path, images) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(images):
        path = folder / f"{i:03d}.png"
        path.write_bytes(png(rgb))
        paths.append(path)
    return paths


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the current page (vendored from npm)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def query_images(count: int) -> list[bytes]:
    """`count` distinct 64×64 PNGs: Animal-MNIST drawings, mirrored and shifted (none in the training set,
    which holds 112×112 ones)."""
    base, validation = animal_images(64)
    seen, out = set(), []
    for variant in range(4):
        for rgb, _ in base + validation:
            image = np.roll(rgb[:, ::-1] if variant % 2 else rgb, 3 * (variant // 2), axis=1)
            data = png(np.ascontiguousarray(image))
            if data not in seen:
                seen.add(data)
                out.append(data)
            if len(out) == count:
                return out
    raise AssertionError(f"only {len(out)} distinct images")
