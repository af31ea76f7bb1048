"""The app's About screen in Debian chromium: cross-origin isolated, and every exported ONNX file loads
and runs in onnxruntime-web (1.30 for inference, 1.19.2 for training), where the head trains."""

from __future__ import annotations

import json
import shutil

import pytest

from ..conftest import manifest_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def run_selfcheck(page, url: str) -> dict:
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#selfcheck:not([disabled])", timeout=30_000)
    page.click("#selfcheck")
    page.wait_for_function("document.body.dataset.selfcheck", timeout=180_000)
    status = page.inner_text("#selfcheck-status")
    assert page.evaluate("document.body.dataset.selfcheck") == "passed", status
    assert errors == []
    return json.loads(page.inner_text("#selfcheck-result"))


@pytest.mark.parametrize("which", ["default_export", "resnet18_random"])
def test_artifacts_load_and_train_in_the_browser(which, request, serve, page, tmp_path):
    folder = request.getfixturevalue(which)
    folder = folder[0] if isinstance(folder, tuple) else folder
    artifacts = tmp_path / "artifacts"
    shutil.copytree(folder, artifacts / "default")  # the page loads artifacts/default
    manifest = manifest_of(folder)
    server = serve(artifacts)

    result = run_selfcheck(page, server.url + "/#/about")

    assert result["crossOriginIsolated"] is True
    assert result["backbone"]["version"] == "1.30.0"
    assert result["backbone"]["dims"] == [2, manifest["feature_size"]]
    training = result["training"]
    assert training["inference"]["backbone"] == [3, manifest["feature_size"]]
    head = training["head"]
    assert head["parameterCount"] == manifest["training"]["head"]["parameter_count"]
    assert head["losses"][-1] < head["losses"][0]
    assert head["accuracy"] >= 2 / 3
    trunk_shape = manifest["models"]["backbone_trunk"]["outputs"][0]["shape"]
    assert training["inference"]["backbone_trunk"][1:] == trunk_shape[1:]
    assert training["inference"]["last_block"] == [3, manifest["feature_size"]]
    last = training["lastBlock"]
    assert last["parameterCount"] == manifest["training"]["last_block"]["parameter_count"]
    assert all(loss == loss for loss in last["losses"])  # finite, not NaN
    page.screenshot(path=str(tmp_path / "selfcheck.png"), full_page=True)


def test_page_reports_missing_artifacts(serve, page, tmp_path):
    server = serve(tmp_path / "empty")
    page.goto(server.url + "/#/about")
    page.wait_for_function("document.getElementById('architecture').textContent.includes('no artifacts')")
    assert page.locator("#selfcheck").is_disabled()
