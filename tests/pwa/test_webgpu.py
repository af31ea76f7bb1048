"""The WebGPU path of the embed worker, checked for correctness on a tiny model: this machine's only
WebGPU adapter is Chromium's software fallback (SwiftShader, far slower than wasm), so the backbone
itself is not run there. `auto` must not pick a fallback adapter."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

from tejas_ml.export.checks import preprocess

from ..conftest import manifest_of
from .conftest import png

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Tiny(torch.nn.Module):
    """image [B,3,S,S] -> features [B,8]: strided conv, ReLU, global average pool."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 8, stride=8)

    def forward(self, image):
        return torch.relu(self.conv(image)).mean((2, 3))


@pytest.fixture
def tiny_artifacts(default_export, tmp_path):
    """artifacts/tiny: the default manifest with a tiny backbone.onnx (8 features)."""
    folder, _ = default_export
    out = tmp_path / "artifacts" / "tiny"
    out.mkdir(parents=True)
    manifest = manifest_of(folder)
    size = manifest["input"]["size"][0]
    torch.onnx.export(
        Tiny().eval(),
        (torch.zeros(1, 3, size, size),),
        str(out / "backbone.onnx"),
        input_names=["image"],
        output_names=["features"],
        dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    manifest["feature_size"] = 8
    manifest["models"] = {
        "backbone": {
            **manifest["models"]["backbone"],
            "outputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 8]}],
        }
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path / "artifacts", manifest


def test_webgpu_embeds_a_tiny_model_like_wasm_and_auto_skips_a_fallback_adapter(
    tiny_artifacts, serve, browser_type, browser_type_launch_args
):
    artifacts, manifest = tiny_artifacts
    server = serve(artifacts)
    args = {**browser_type_launch_args, "args": [*browser_type_launch_args["args"], "--enable-unsafe-webgpu"]}
    browser = browser_type.launch(**args)
    try:
        page = browser.new_page()
        page.goto(server.url + "/")
        adapter = page.evaluate(
            """async () => {
              const adapter = await navigator.gpu?.requestAdapter();
              return adapter ? { fallback: adapter.isFallbackAdapter ?? adapter.info?.isFallbackAdapter ?? null,
                                 vendor: adapter.info?.vendor, architecture: adapter.info?.architecture } : null;
            }"""
        )
        if adapter is None:
            pytest.skip("this Chromium offers no WebGPU adapter even with --enable-unsafe-webgpu")
        rng = np.random.default_rng(3)
        images = [(rng.random((240, 300, 3)) * 255).astype(np.uint8) for _ in range(3)]
        result = page.evaluate(
            """async (images) => {
              const t = await import('/tejas.js');
              const blobs = images.map((b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
              const artifacts = new URL('/artifacts/tiny/', location.href).href;
              const run = async (provider) => {
                const r = await t.embedImages(blobs, { artifacts, provider, batchSize: 2 });
                return { provider: r.provider, features: Array.from(r.features) };
              };
              return { webgpu: await run('webgpu'), wasm: await run('wasm'), auto: await run('auto') };
            }""",
            [base64.b64encode(png(i)).decode() for i in images],
        )
    finally:
        browser.close()

    assert result["webgpu"]["provider"] == "webgpu" and result["wasm"]["provider"] == "wasm"
    webgpu, wasm = (np.array(result[k]["features"]).reshape(3, 8) for k in ("webgpu", "wasm"))
    spec = manifest["input"]
    batch = torch.stack(
        [preprocess(i, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]) for i in images]
    )
    with torch.no_grad():
        expected = Tiny().eval()(batch).numpy()
    assert np.abs(wasm - expected).max() <= 1e-4
    assert np.abs(webgpu - expected).max() <= 1e-3
    # SwiftShader is a fallback adapter: auto stays on wasm with it
    if adapter["fallback"] or adapter["architecture"] == "swiftshader":
        assert result["auto"]["provider"] == "wasm", adapter
    print(f"WebGPU adapter: {adapter}; max |webgpu - torch| {np.abs(webgpu - expected).max():.2e}")
