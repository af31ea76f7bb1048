"""Offline: after one visit, with the server killed and the network off, the app reloads and a
project goes from images to a trained model, predictions and downloaded ONNX / .pt files."""

from __future__ import annotations

import base64

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision

from ..conftest import manifest_of
from .conftest import PAGE_HELPERS, WAIT_FOR_SERVICE_WORKER, digit_images, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_everything_works_offline_after_one_visit(app_copy, serve, tmp_path, browser_type, browser_type_launch_args):
    pwa, artifacts = app_copy
    server = serve(artifacts, pwa)
    context = browser_type.launch_persistent_context(tmp_path / "profile", **browser_type_launch_args)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_HELPERS)
        page.goto(server.url + "/")
        # the first visit installs the service worker and its whole precache
        page.wait_for_function("navigator.serviceWorker.getRegistration().then((r) => !!r)")
        page.evaluate(WAIT_FOR_SERVICE_WORKER)
        server.stop()
        context.set_offline(True)
        page.reload()
        assert page.evaluate("self.crossOriginIsolated") is True
        assert page.evaluate("navigator.serviceWorker.controller !== null") is True

        train, _ = digit_images()
        items = [(base64.b64encode(png(r)).decode(), int(y)) for r, y in train if y < 2][8:32]  # 12 of each
        out = page.evaluate(
            """async (items) => {
              const { t, project } = await projectWith('Offline', ['zero', 'one'], items);
              const [file, b64] = [fileFrom, base64Of];
              const model = await t.train(project.id, { epochs: 8 });
              const top = await t.predict(project.id, file(items[0][0], 'q.png'), { topK: 2 });
              return { accuracy: model.metrics.accuracy, top, onnx: await b64(await t.exportOnnx(project.id)),
                       pt: await b64(await t.exportPytorch(project.id)) };
            }""",
            items,
        )
    finally:
        context.close()
    assert out["top"][0]["name"] == "zero"
    onnx_path = tmp_path / "offline.onnx"
    onnx_path.write_bytes(base64.b64decode(out["onnx"]))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[2]  # the default export's crop
    assert session.run(["probabilities"], {"image": np.zeros((1, 3, size, size), np.float32)})[0].shape == (1, 2)
    pt_path = tmp_path / "offline.pt"
    pt_path.write_bytes(base64.b64decode(out["pt"]))
    net = getattr(torchvision.models, manifest_of(artifacts / "default")["architecture"])(num_classes=2)
    net.load_state_dict(torch.load(pt_path, weights_only=True), strict=True)
