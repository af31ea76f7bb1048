"""Browser-test helpers: the app served with the default export, PNG bytes of an RGB array, and the
page-side helpers (PAGE_HELPERS) the tests' scripts share."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

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
    page.add_init_script(PAGE_HELPERS)
    page.goto(serve(tmp_path / "artifacts").url + "/")
    return page


def png(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()
