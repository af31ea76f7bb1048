"""The app's side of an agreement test: a js_*.mjs script (answering through js_serve.mjs) in one
long-lived Node process, asked one JSON request at a time."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from ..conftest import ROOT


class NodeSide:
    def __init__(self, script: str):
        node = shutil.which("node")
        if node is None:
            pytest.fail("node not found: the README's test command installs Node.js")
        self.process = subprocess.Popen(
            [node, str(ROOT / "tests" / "pycore_cpython" / script), str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def __call__(self, kind: str, *args) -> dict:
        """{"value": ...} or {"error": message} from the app's code for `kind`."""
        self.process.stdin.write(json.dumps({"kind": kind, "args": jsonable(args)}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"node exited ({self.process.poll()})"
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


def jsonable(value):
    """JSON has no NaN or infinities: they travel tagged (js_serve.mjs revives them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
