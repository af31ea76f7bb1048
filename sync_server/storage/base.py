"""What every blob store offers (the interface `local` and `s3` implement) and the chunk size they stream in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

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
