"""The README's run command (`bash tools/dev.sh run`) brings the app up with default artifacts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, free_port

pytestmark = pytest.mark.slow


def test_run_command_serves_app_and_default_artifacts():
    port = free_port()
    env = dict(os.environ, TEJAS_VENV=str(Path(sys.executable).parent.parent))
    process = subprocess.Popen(
        ["bash", "tools/dev.sh", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900  # first run on a fresh clone installs and exports
        while True:
            try:
                response = urllib.request.urlopen(f"http://127.0.0.1:{port}/artifacts/default/manifest.json", timeout=2)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "app did not come up"
                time.sleep(0.5)
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert b"<title>Tejas" in page.read()
        assert (ROOT / "pwa" / "vendor" / "ort-training" / "ort-training-wasm-simd-threaded.wasm").is_file()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
