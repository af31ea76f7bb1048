"""Blobs in a local folder: blobs/ab/abcdef… (two-character fan-out), written by rename."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..core.partials import abandoned, locked_part
from .base import CHUNK


class LocalStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put_file(self, sha256: str, path: Path) -> None:
        target = self._path(sha256)
        target.parent.mkdir(exist_ok=True)
        # a name of its own: two requests may store the same blob at once (the last rename wins, same bytes);
        # locked while written: a copy cut by a crash is told from one still being written (sweep_partials)
        fd, partial = locked_part(target.parent, suffix=".partial", prefix=f".{sha256[:8]}.{os.getpid()}.")
        try:
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def sweep_partials(self) -> int:
        """Delete the partial copies of writers that died mid-copy (SIGKILL, power): those no process holds a
        lock on (core/partials.py) and whose pid, if on this machine, no longer runs; copies of live writers
        (other processes sharing the folder, here or on another machine or container) are left alone."""
        removed = 0
        for partial in self.root.glob("??/.*.partial"):
            parts = partial.name.split(".")  # "", sha prefix, pid, random + "", "partial"
            pid = int(parts[2]) if len(parts) >= 5 and parts[2].isdigit() else None
            if pid is not None and _running(pid):
                continue
            removed += abandoned(partial)
        return removed

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

    def names(self) -> Iterator[str]:
        for path in self.root.glob("??/*"):
            if not path.name.startswith(".") and path.name[:2] == path.parent.name:  # not a partial copy
                yield path.name


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
