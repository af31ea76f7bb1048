"""Shared fixtures: exported artifacts (exported once per session), a real server, Debian chromium."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TEJAS = str(Path(PYTHON).parent / "tejas")
CHROMIUM = "/usr/bin/chromium"
# Debian chromium flags that work on this machine (../shared/NOTES.md); no downloads, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a synthetic camera (moving test pattern), allowed without a prompt: the webcam tests use it
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def offline_env(tmp: Path, **extra) -> dict:
    """Environment where ImageNet ResNet18 weights are not obtainable: empty torch hub, no downloads."""
    env = dict(os.environ)
    env.update(TORCH_HOME=str(tmp / "torch-home"), TEJAS_NO_DOWNLOAD="1", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def run_export(args: list[str], env: dict, script: bool = True) -> subprocess.CompletedProcess:
    """Run the exporter CLI (the tools/ script, or `tejas export`) and capture its output."""
    command = [PYTHON, str(ROOT / "tools" / "export_training_artifacts.py")] if script else [TEJAS, "export"]
    return subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _export(tmp: Path, name: str, args: list[str], script: bool = True) -> Path:
    out = tmp / name
    result = run_export([*args, "--out", str(out)], offline_env(tmp), script=script)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def resnet18_random(tmp_path_factory) -> Path:
    """ResNet18 with random weights (asked for) and last-block artifacts, via tools/ script."""
    tmp = tmp_path_factory.mktemp("resnet18")
    return _export(tmp, "t", ["--backbone", "resnet18", "--weights", "none", "--train", "last-block"])


@pytest.fixture(scope="session")
def default_export(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The default export as the run command makes it (`tejas export --train last-block`, backbone
    auto) on a machine where ResNet18 ImageNet weights are unobtainable."""
    tmp = tmp_path_factory.mktemp("default")
    out = tmp / "default"
    result = run_export(["--train", "last-block", "--out", str(out)], offline_env(tmp), script=False)
    assert result.returncode == 0, result.stderr
    return out, result


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            import tempfile

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
        from .services import stop_process

        stop_process(self.process)


@pytest.fixture
def serve():
    """serve(artifacts_dir, pwa_dir=None, data_dir=None, env=None) -> running Server; stopped after the test."""
    servers = []

    def start(artifacts_dir: Path, pwa_dir: Path | None = None, **kwargs) -> Server:
        servers.append(Server(artifacts_dir, pwa_dir, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian chromium (Playwright's own browser download is not reachable)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run the README's test command (it installs Debian chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
