"""What every benchmark's JSON carries besides its numbers: the machine, the software, the commit, the command.

The README's benchmark tables are generated from these files (bench/readme_tables.py), so each file
must say by itself what ran where.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "pwa" / "vendor" / "vendor.json"
# Tracked paths whose local edits could change a benchmark's numbers.
MEASURED_PATHS = ("bench", "pwa", "tools", "tejas_ml")


def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    kib = _first("/proc/meminfo", "MemTotal")
    return round(int(kib.split()[0]) / 2**20, 1) if kib else None


def _distribution(*names: str) -> dict | None:
    """The first installed distribution of `names`, as {name, version}."""
    for name in names:
        try:
            return {"name": name, "version": importlib.metadata.version(name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def vendored_npm() -> dict:
    """npm packages the app serves from pwa/vendor, e.g. {"ort": "onnxruntime-web@1.30.0", ...}."""
    try:
        packages = json.loads(VENDOR.read_text())["packages"]
    except (OSError, KeyError, ValueError):
        return {}
    return {key: value["npm"] for key, value in packages.items()}


def machine_facts(*, torch: bool = True, onnxruntime: bool = True) -> dict:
    """CPU, memory, OS and Python of this machine, and the native ML runtimes' versions."""
    facts = {
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": _first("/etc/os-release", "PRETTY_NAME") or platform.system(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # other work on the machine skews every number: the 1/5/15-minute load averages when the run ended
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if onnxruntime:
        import onnxruntime as ort

        dist = _distribution("onnxruntime-training-cpu", "onnxruntime-training", "onnxruntime")
        facts["onnxruntime"] = ort.__version__
        facts["onnxruntime_distribution"] = dist["name"] if dist else None
    if torch:
        import torch as _torch

        facts["torch"] = _torch.__version__
    return facts


def new_report(benchmark: str, **fields) -> dict:
    """A report's common head: what ran (command, commit), when, and on what machine."""
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *MEASURED_PATHS)
    return {
        "benchmark": benchmark,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", _relative(sys.argv[0]), *sys.argv[1:]]),
        "git_commit": _git("rev-parse", "HEAD"),
        # tracked files under bench/, pwa/, tools/ that differed from that commit during the run
        "git_modified": [line.split(None, 1)[1] for line in dirty.splitlines()] if dirty else [],
        **fields,
    }


def _relative(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path


def write_report(out: Path, report: dict) -> None:
    """Every benchmark's JSON, written the same way."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
