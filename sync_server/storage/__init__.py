"""The blob store: bytes by sha256. `local` keeps them in a folder (the embedded default); `s3` in any
S3 API (AWS S3, MinIO; moto in the tests). Chosen by TEJAS_BLOB_STORE, never by code changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..core.config import Settings

CHUNK = 1024 * 1024


class BlobStore(Protocol):
    def put_file(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under sha256 (atomically: a crash leaves the old state or the new)."""

    def exists(self, sha256: str) -> bool: ...

    def open(self, sha256: str) -> Iterator[bytes]:
        """The bytes, in chunks; FileNotFoundError when absent."""

    def delete(self, sha256: str) -> None:
        """Forget the blob (no error when absent)."""

    def names(self) -> Iterator[str]:
        """Every name stored in this area (what a sweep for orphans compares with the database)."""


def make_store(settings: Settings, area: str = "blobs") -> BlobStore:
    """The store of an `area`: "blobs" (synced images and models) or "jobs" (training uploads,
    checkpoints and results), kept apart so that collecting one never touches the other."""
    if settings.blob_store == "s3":
        from .s3 import S3Store

        return S3Store(settings, settings.s3_prefix if area == "blobs" else f"{area}/")
    from .local import LocalStore

    return LocalStore(settings.data_dir / area)
