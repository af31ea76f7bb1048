"""Files being written that several processes (servers, workers sharing a data dir) must tell apart from
files whose writer died: the writer holds an exclusive `flock` on its file for as long as it needs it, and
the kernel drops that lock when the writer dies, however (SIGKILL included). A file nobody holds is
provably abandoned; one somebody holds is never touched, whichever process or container holds it."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path


def locked_part(folder: Path, suffix: str = ".part", prefix: str = "tmp") -> tuple[int, Path]:
    """A new file in `folder` and its descriptor, holding an exclusive flock on it (kept until closed).

    Between creating the file and locking it a sweep could remove it: the path is checked to still be the
    locked file, and another is made if not."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        fd, name = tempfile.mkstemp(dir=folder, suffix=suffix, prefix=prefix)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a sweep holding it briefly is waited for
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, Path(name)
        except FileNotFoundError:
            pass
        os.close(fd)


def abandoned(path: Path) -> bool:
    """Delete `path` if no process holds a lock on it (its writer died); whether it was deleted."""
    try:
        fd = os.open(path, os.O_RDWR)  # O_RDWR: flock is emulated with fcntl locks on NFS, which need it
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        path.unlink(missing_ok=True)  # under our lock: a writer re-checks its path after locking
        return True
    finally:
        os.close(fd)


def sweep_abandoned(folder: Path, pattern: str = "*.part") -> int:
    """Remove the files matching `pattern` in `folder` that no live process holds; how many."""
    if not folder.is_dir():
        return 0
    return sum(abandoned(path) for path in folder.glob(pattern))
