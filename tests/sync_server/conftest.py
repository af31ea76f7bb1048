"""A real `tejas serve` per test on each backend (embedded SQLite + folder; Postgres + an S3 API), and a
small protocol client (docs/sync.md) the tests drive it with."""

from __future__ import annotations

import io

import pytest
from PIL import Image

# The protocol client lives in the harness (benchmarks use it too); re-exported for the tests' imports.
from testkit.sync_client import PASSWORD, Account, Clock, Device, project_changes, sample_change, sha  # noqa: F401

from ..services import backend, fresh_postgres_db, postgres_url, s3_server  # noqa: F401 (fixtures)


def png_bytes(seed: int, size: int = 8) -> bytes:
    """A small PNG, different for every seed."""
    image = Image.new("RGB", (size, size), (seed % 256, (seed // 256) % 256, (seed * 7) % 256))
    image.putpixel((0, 0), ((seed * 13) % 256, (seed // 65536) % 256, 1))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def server(serve, tmp_path, backend):  # noqa: F811
    """`tejas serve` on this test's backend (parametrized: embedded, postgres+s3)."""
    (tmp_path / "artifacts").mkdir()
    return serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env=backend)


@pytest.fixture
def embedded_server(serve, tmp_path):
    """`tejas serve` on the embedded defaults only (for tests about one server's behaviour)."""
    (tmp_path / "artifacts").mkdir()
    return lambda **env: serve(tmp_path / "artifacts", data_dir=tmp_path / "data", env=env)
