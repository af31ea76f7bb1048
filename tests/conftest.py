"""Shared fixtures: exported artifacts (exported once per session), a real server, Debian chromium."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

# The harness (testkit/) holds what benchmarks share with the tests; re-exported for the tests' imports.
from testkit.browser import CHROMIUM, CHROMIUM_ARGS
from testkit.server import PYTHON, ROOT, TEJAS, Server
from testkit.services import free_port  # noqa: F401

# Every job event that a server or worker started by the tests writes is checked against
# pwa/py/tejas/schemas/job_events.json; one that does not match raises (tests/sync_server/test_job_events.py).
os.environ["TEJAS_VALIDATE_EVENTS"] = "1"


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
def mobilenet_v2_224(tmp_path_factory) -> Path:
    """MobileNetV2-ImageNet at 224² (head only, 10 classes at most): the default's (160²) float32 reference.
    One export for the session: the browser bench's drift reference and the variants' float32-224."""
    tmp = tmp_path_factory.mktemp("mobilenet_v2-224")
    args = ["--backbone", "mobilenet_v2", "--max-classes", "10", "--input-size", "224"]
    return _export(tmp, "mobilenet_v2-224", args)


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
