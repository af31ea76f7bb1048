"""Blobs in a local folder: blobs/ab/abcdef… (two-character fan-out), written by rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import CHUNK


class LocalStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put_file(self, sha256: str, path: Path) -> None:
        target = self._path(sha256)
        target.parent.mkdir(exist_ok=True)
        # a name of its own: two requests may store the same blob at once (the last rename wins, same bytes)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{sha256[:8]}.", suffix=".partial")
        os.close(fd)
        try:
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def open(self, sha256: str) -> Iterator[bytes]:
        handle = open(self._path(sha256), "rb")  # FileNotFoundError when absent, before the first chunk

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
