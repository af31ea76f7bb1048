"""bench/text.py at toy size (the first 120 SMS, one thread, 10 rows per class): both encoders embed in Chromium
beside native onnxruntime on the same batches (float32 equal to native, uint8 close), the head trains in the
browser, every macro-F1 and the drift are recorded; a toy run cannot back the README. No timing is asserted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from bench import readme_tables

from ..conftest import ROOT

TEXTS = 120


@pytest.mark.slow
@pytest.mark.browser
def test_toy_run_measures_browser_and_native_and_accuracy(tmp_path):
    out = tmp_path / "text.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "text.py"), "--limit", str(TEXTS), "--threads", "1",
         "--few-shot", "10", "--seeds", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "text" and report["chromium"] and report["npm"]["ort"].startswith("onnxruntime-web@")
    assert re.fullmatch(r"[0-9a-f]{40}", report["git_commit"]) and report["machine"]["onnxruntime"]
    config = report["config"]
    assert config["texts"] == TEXTS and config["limit"] == TEXTS and config["threads"] == [1]
    assert config["padded_tokens_unsorted"] >= config["padded_tokens_sorted"] >= config["tokens"] > TEXTS
    assert sum(config["split"][k] for k in ("train", "validation")) == config["distinct_texts"] <= TEXTS

    rows = {(r["encoder"], r["threads"]): r for r in report["embedding"]}
    assert set(rows) == {("float32", 1), ("uint8", 1)}
    for row in rows.values():
        assert row["texts"] == TEXTS and row["browser_threads"] == 1 and row["provider"] == "wasm"
        assert row["same_tokens_as_native"]  # the browser's tokenizer and batches are native's
        assert row["texts_per_second"] > 0 and row["native_before"] > 0 and row["native_after"] > 0
        assert row["over_native"] == pytest.approx(row["texts_per_second"] / row["native_texts_per_second"])
    assert rows[("float32", 1)]["max_abs_diff_vs_native"] < 1e-4
    assert rows[("uint8", 1)]["min_cosine_vs_native"] > 0.95

    assert report["head"]["steps"] > 0 and report["head"]["steps_per_second"] > 0
    accuracy = report["accuracy"]
    for key in ("browser_head", "minilm_logistic", "minilm_uint8_logistic", "tfidf_logistic"):
        assert 0 <= accuracy[key] <= 1, key
    for key in ("browser_head", "minilm_logistic", "tfidf_logistic"):
        assert len(accuracy["few_shot"][key]["runs"]) == 2, key
    quantised = report["quantised"]
    assert quantised["drift_points"] == pytest.approx(
        100 * (quantised["macro_f1_float32"] - quantised["macro_f1_uint8"])
    )
    assert quantised["within_limit"] == (quantised["drift_points"] <= 1.0)
    assert quantised["app_default"] is False

    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results)
    shutil.copyfile(out, results / "text.json")
    with pytest.raises(readme_tables.ResultsError, match="a test's run"):
        readme_tables.text_block(results)


def test_committed_results_are_a_full_run():
    report = json.loads((ROOT / "bench" / "results" / "text.json").read_text())
    assert not report["config"].get("limit") and report["config"]["texts"] == 4862
    assert {(r["encoder"], r["threads"]) for r in report["embedding"]} == {
        (e, t) for e in ("float32", "uint8") for t in (1, 2)
    }
    assert all(r["same_tokens_as_native"] for r in report["embedding"])
