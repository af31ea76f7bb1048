"""Embedding in the browser (embed worker, onnxruntime-web 1.30 wasm) equals native onnxruntime on
the same images, because preprocessing reproduces Pillow's resize bit for bit."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from tejas_ml.export.checks import preprocess, session
from tejas_ml.export.photos import load_photos

from ..conftest import manifest_of
from .conftest import png

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_images() -> dict[str, np.ndarray]:
    images = {p.name: p.rgb for p in load_photos()[:5]}
    rng = np.random.default_rng(0)
    images["odd_size_noise"] = (rng.random((333, 517, 3)) * 255).astype(np.uint8)
    images["small_upscaled"] = (rng.random((80, 100, 3)) * 255).astype(np.uint8)  # shorter side < 256
    return images


test_images.__test__ = False  # a helper, not a test


def test_js_resize_equals_pillow_bit_for_bit(app):
    for name, rgb in test_images().items():
        h, w = rgb.shape[:2]
        size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        expected = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        got = app.evaluate(
            """async ([b64, w, h, ow, oh]) => {
                const { resizeRgb } = await import('/features/embed/preprocess.js');
                const rgb = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                return Array.from(resizeRgb(rgb, w, h, ow, oh));
            }""",
            [base64.b64encode(rgb.tobytes()).decode(), w, h, size[0], size[1]],
        )
        ours = np.array(got, np.uint8).reshape(expected.shape)
        assert np.array_equal(ours, expected), name


def embed_in_browser(page, blobs: list[bytes], **options) -> dict:
    return page.evaluate(
        """async ([images, options]) => {
            const { embedImages } = await import('/tejas.js');
            const blobs = images.map((b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
            const result = await embedImages(blobs, options);
            return { ...result, features: Array.from(result.features) };
        }""",
        [[base64.b64encode(b).decode() for b in blobs], options],
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_browser_embeddings_equal_native_onnxruntime(app, default_export, threads):
    folder, _ = default_export
    manifest = manifest_of(folder)
    images = test_images()
    spec = manifest["input"]
    batch = np.stack(
        [
            preprocess(rgb, spec["resize"]["shorter_side"], spec["size"][0], spec["mean"], spec["std"]).numpy()
            for rgb in images.values()
        ]
    )
    native = session(folder / "backbone.onnx", threads=2).run(None, {"image": batch})[0]

    result = embed_in_browser(app, [png(rgb) for rgb in images.values()], threads=threads, batchSize=3)
    assert result["failures"] == [] and result["threads"] == threads and result["provider"] == "wasm"
    browser = np.array(result["features"], np.float32).reshape(len(images), manifest["feature_size"])
    print(f"threads={threads} max abs diff browser vs native: {np.abs(browser - native).max():.2e}")
    assert np.abs(browser - native).max() <= 1e-5  # the README states this bound


def test_a_corrupt_image_is_reported_and_skipped(app, default_export):
    folder, _ = default_export
    good = [png(rgb) for rgb in list(test_images().values())[:2]]
    result = embed_in_browser(app, [good[0], b"definitely not an image", good[1]])
    assert result["failures"] == [{"index": 1, "message": "not a readable image (the browser cannot decode it)"}]
    assert result["embedded"] == [0, 2]
    features = np.array(result["features"]).reshape(3, -1)
    assert np.abs(features[0]).sum() > 0 and np.abs(features[2]).sum() > 0 and not features[1].any()
