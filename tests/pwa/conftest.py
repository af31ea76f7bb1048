"""Browser-test helpers: the app served with the default export, and PNG bytes of an RGB array."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image


@pytest.fixture
def app(default_export, serve, tmp_path, page):
    """The page at the app's root, served with the default export as artifacts/default."""
    folder, _ = default_export
    shutil.copytree(folder, tmp_path / "artifacts" / "default")
    page.goto(serve(tmp_path / "artifacts").url + "/")
    return page


def png(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()
