"""The blob store: bytes by sha256. `local` keeps them in a folder (the embedded default); `s3` in any
S3 API (AWS S3, MinIO; moto in the tests). Chosen by TEJAS_BLOB_STORE, never by code changes."""

from __future__ import annotations

from ..core.config import Settings
from .base import CHUNK, BlobStore

__all__ = ["CHUNK", "BlobStore", "make_store"]


def make_store(settings: Settings, area: str = "blobs") -> BlobStore:
    """The store of an `area`: "blobs" (synced images and models) or "jobs" (training uploads,
    checkpoints and results), kept apart so that collecting one never touches the other."""
    if settings.blob_store == "s3":
        from .s3 import S3Store

        return S3Store(settings, settings.s3_prefix if area == "blobs" else f"{area}/")
    from .local import LocalStore

    return LocalStore(settings.data_dir / area)
