"""Run the shared core tests without pytest (inside Pyodide); prints one JSON report."""

from __future__ import annotations

import importlib
import inspect
import json
import tempfile
import time
import traceback
from pathlib import Path


def _call(function, args: dict):
    started = time.perf_counter()
    try:
        function(**args)
    except Exception as error:  # report every failure, keep going
        return {
            "ok": False,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()[-2000:],
            "seconds": time.perf_counter() - started,
        }
    return {"ok": True, "seconds": time.perf_counter() - started}


def _arguments(function, name: str, out_root: Path) -> dict:
    args = {}
    parameters = inspect.signature(function).parameters
    if "tmp_path" in parameters:
        args["tmp_path"] = Path(tempfile.mkdtemp(prefix="tejas-"))
    if "out_dir" in parameters:
        args["out_dir"] = out_root / name
        args["out_dir"].mkdir(parents=True, exist_ok=True)
    return args


def run(module_names: list[str], out_root: str) -> str:
    out = Path(out_root)
    results = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        short = module_name.rsplit(".", 1)[-1]
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and function.__module__ == module.__name__:
                results[f"{short}::{name}"] = _call(function, _arguments(function, name, out))
        for case in getattr(module, "CASES", []):
            check = module.check_case
            results[f"{short}::check_case[{case.id}]"] = _call(check, {"case": case, **_arguments(check, case.id, out)})
    return json.dumps(results)
