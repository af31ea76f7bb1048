"""The app applies the image rule the core and the server share (rules.json "image", issue 24 part 1): an
image whose sides are more than 20:1 apart is refused at import and at embedding with the core's sentence,
before the resize that would make a 3000×1 strip 549,000×183 pixels; a 20:1 panorama still embeds."""

from __future__ import annotations

import base64

import pytest

from ..hostile_images import HOSTILE, LEGITIMATE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STRIP = HOSTILE["strip-3000x1.png"][0]
TALL = HOSTILE["strip-1x100000.png"][0]
PANORAMA = LEGITIMATE["panorama-20to1.png"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_import_and_embedding_refuse_strips_with_the_cores_sentence(app):
    result = app.evaluate(
        """async (images) => {
            const { readImage } = await import('/features/dataset/images.js');
            const { embedImages } = await import('/tejas.js');
            const blobs = images.map((b) => new Blob([Uint8Array.from(atob(b), (c) => c.charCodeAt(0))]));
            const read = [];
            for (const blob of blobs) {
              try {
                const image = await readImage(blob);
                read.push({ ok: [image.width, image.height] });
              } catch (error) {
                read.push({ error: error.message });
              }
            }
            const pulled = await readImage(blobs[0], { sizeRule: false });  // stored before the rule
            const embedded = await embedImages(blobs, {});
            return { read, pulled: [pulled.width, pulled.height], failures: embedded.failures };
        }""",
        [b64(STRIP), b64(TALL), b64(PANORAMA)],
    )
    assert result["read"] == [
        {"error": "image too narrow: 3000×1 pixels (sides at most 20:1)"},
        {"error": "image too narrow: 1×100000 pixels (sides at most 20:1)"},
        {"ok": [2000, 100]},
    ]
    assert result["pulled"] == [3000, 1]
    assert sorted(result["failures"], key=lambda f: f["index"]) == [
        {"index": 0, "message": "image too narrow: 3000×1 pixels (sides at most 20:1)"},
        {"index": 1, "message": "image too narrow: 1×100000 pixels (sides at most 20:1)"},
    ]
