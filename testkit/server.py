"""`tejas serve` as a real process (the repository's own `tejas` command, beside this Python)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .services import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEJAS = str(Path(PYTHON).parent / "tejas")


class Server:
    """`tejas serve` as a real process on a free port, serving the given artifacts folder.

    `data_dir` holds the server's database and blobs (embedded defaults); `env` adds TEJAS_* settings
    (e.g. TEJAS_DATABASE_URL for Postgres, TEJAS_BLOB_STORE=s3). `restart()` starts it again on the
    same port and data after `kill()` (SIGKILL) or `stop()`."""

    def __init__(
        self,
        artifacts_dir: Path,
        pwa_dir: Path | None = None,
        data_dir: Path | None = None,
        env: dict | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, TEJAS_ARTIFACTS_DIR=str(artifacts_dir))
        if pwa_dir is not None:
            self.env["TEJAS_PWA_DIR"] = str(pwa_dir)
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="tejas-data-"))
        self.data_dir = data_dir
        self.env["TEJAS_DATA_DIR"] = str(data_dir)
        # fast argon2 for tests (the defaults cost ~130 ms per hash here); production keeps the defaults
        self.env.setdefault("TEJAS_ARGON2_TIME_COST", "1")
        self.env.setdefault("TEJAS_ARGON2_MEMORY_KIB", "8")
        self.env.setdefault("TEJAS_ARGON2_PARALLELISM", "1")
        self.env.update(env or {})
        self.start()

    def start(self):
        # output goes to a file: a pipe nobody reads would block a chatty server
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.data_dir / "server.log"
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                [TEJAS, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/health", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()}") from None
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not come up in 60 s")

    restart = start

    def kill(self):
        """SIGKILL: no shutdown handlers run, like a crash or a pulled plug."""
        self.process.kill()
        self.process.wait(10)

    def stop(self):
        stop_process(self.process)
