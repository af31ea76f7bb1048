"""The README's benchmark numbers are the committed JSON's (bench/readme_tables.py --check), and none
is typed by hand in the benchmark section. Fast: reads files, runs no benchmark and no browser."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from bench import readme_tables

from ..conftest import ROOT

RESULTS = ROOT / "bench" / "results"


def test_readme_matches_the_committed_results(capsys):
    assert readme_tables.main(["--check"]) == 0, capsys.readouterr().err


def test_check_fails_when_the_readme_or_the_json_changes(tmp_path, capsys):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- bench:browser-embed -->\n(.*?)<!-- /bench:browser-embed -->", text, re.S)
    edited = block.group(1).replace("|", "| 1", 1)
    readme.write_text(text.replace(block.group(1), edited))
    assert readme_tables.main(["--check", "--readme", str(readme)]) == 1
    assert "differs" in capsys.readouterr().err

    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    report = json.loads((results / "browser.json").read_text())
    report["embedding"][0]["browser_images_per_second"] += 1.0
    (results / "browser.json").write_text(json.dumps(report))
    readme.write_text(text)
    assert readme_tables.main(["--check", "--readme", str(readme), "--results", str(results)]) == 1


def test_a_test_run_cannot_back_the_readme(tmp_path, capsys):
    """A run with the test-only busy main-thread task measures the measurement, not the app."""
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    report = json.loads((results / "browser.json").read_text())
    report["project"][0]["injected_busy_ms"] = 300
    (results / "browser.json").write_text(json.dumps(report))
    assert readme_tables.main(["--check", "--results", str(results)]) == 1
    assert "--inject-busy-ms" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["native_embed", "browser", "pycore", "sync_load"])
def test_each_result_says_where_and_how_it_ran(name):
    report = json.loads((RESULTS / f"{name}.json").read_text())
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["memory_gib"] > 0
    assert machine["os"] and machine["python"]
    assert re.fullmatch(r"[0-9a-f]{40}", report["git_commit"]) and report["command"].startswith("python bench/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["created"])
    if name not in ("pycore", "sync_load"):
        assert machine["onnxruntime"] and machine["torch"]
    if name == "browser":
        assert report["chromium"] and report["npm"]["ort"].startswith("onnxruntime-web@")
        assert report["npm"]["ort-training"].startswith("onnxruntime-web@")
    if name == "pycore":
        assert report["pyodide_runtime"]["pyodide"] and report["pyodide_runtime"]["node"]


# Numbers the benchmark section may state outside the generated blocks: settings and names, not results.
SETTINGS = {"1", "2", "5", "8", "16", "32", "160", "224", "1.19.2", "18", "3", "100", "5,000"}


def test_no_number_in_the_benchmark_section_is_typed_by_hand():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Benchmarks\n") : text.index("\n## ", text.index("## Benchmarks\n") + 1)]
    prose = re.sub(r"<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->", "", section, flags=re.S)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)  # commands
    prose = re.sub(r"`[^`]*`", "", prose)  # names and flags
    numbers = set(re.findall(r"\d+(?:[.,]\d+)*", prose))
    assert numbers <= SETTINGS, f"numbers outside bench:* markers: {sorted(numbers - SETTINGS)}"
