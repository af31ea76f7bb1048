"""The core's image rule (rules.json "image", issue 24): what decoding an image may cost is judged from its
bytes before any decoder runs — the canvas every frame fits in (GIF image descriptors, APNG fcTL chunks,
WebP ANMF chunks), its pixels and the ratio of its sides (resizing a 3000×1 strip of 83 bytes to a 183 px
shorter side made the server's memory grow ~950 MB), and the size a model's resize would make.
Shared: runs under pytest and inside Pyodide (the app's zip import reads images with this core).
"""

from __future__ import annotations

import zipfile

from tejas.dataset import read_archive
from tejas.images import ImageError, sniff_image
from tejas.limits import DEFAULT_LIMITS
from tejas.rules import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, image_size_problem, resize_problem, resized_size

from .hostile_headers import apng, bmp_claiming, gif, jpeg_claiming, webp_animation
from .images_for_tests import bmp, png, png_header_claiming
from .support import raises

LIMIT = DEFAULT_LIMITS.max_pixels


def refusal(data: bytes) -> str:
    with raises(ImageError) as raised:
        sniff_image(data, LIMIT)
    return str(raised.value)


def test_the_rule_is_the_shared_table():
    assert LIMIT == MAX_IMAGE_PIXELS == 64_000_000
    assert DEFAULT_LIMITS.max_aspect_ratio == MAX_ASPECT_RATIO == 20


def test_strips_are_refused_by_their_ratio_and_panoramas_pass():
    assert refusal(png(3000, 1)) == "image too narrow: 3000×1 pixels (sides at most 20:1)"
    assert refusal(png(1, 3000)) == "image too narrow: 1×3000 pixels (sides at most 20:1)"
    assert refusal(png(21, 1)) == "image too narrow: 21×1 pixels (sides at most 20:1)"
    assert refusal(bmp(1, 100)).startswith("image too narrow: 1×100 pixels")
    assert sniff_image(png(20, 1), LIMIT).width == 20  # exactly 20:1
    assert sniff_image(png(1, 20), LIMIT).height == 20
    assert sniff_image(png(400, 40), LIMIT).width == 400  # a 10:1 panorama
    assert sniff_image(png(3000, 1), LIMIT, max_aspect_ratio=None).width == 3000  # pixels only, on request


def test_declared_sizes_are_refused_before_decoding():
    message = "image too large: 8001×8000 pixels (limit 64 megapixels)"
    assert refusal(png_header_claiming(8001, 8000)) == message
    assert sniff_image(png_header_claiming(8000, 8000), LIMIT).width == 8000  # 64 megapixels exactly is allowed
    assert refusal(jpeg_claiming(65535, 65535)) == "image too large: 65535×65535 pixels (limit 64 megapixels)"
    assert refusal(jpeg_claiming(60000, 2)) == "image too narrow: 60000×2 pixels (sides at most 20:1)"
    assert refusal(bmp_claiming(50000, -50000)) == "image too large: 50000×50000 pixels (limit 64 megapixels)"
    assert sniff_image(bmp_claiming(8, -6), LIMIT).height == 6  # top-down rows


def test_every_gif_frame_counts():
    assert refusal(gif((1, 1), [(0, 0, 9000, 9000)])) == (
        "image too large: frame 1 is 9000×9000 pixels at (0, 0), making a 9000×9000 canvas (limit 64 megapixels)"
    )
    assert refusal(gif((16, 16), [(0, 0, 16, 16), (0, 0, 65535, 65535)])).startswith("image too large: frame 2 is")
    assert refusal(gif((16, 16), [(60000, 0, 16, 16)])) == "image too narrow: 60016×16 pixels (sides at most 20:1)"
    info = sniff_image(gif((16, 16), [(0, 0, 16, 16), (10, 10, 16, 16)]), LIMIT)  # Pillow grows the canvas too
    assert (info.width, info.height) == (26, 26)
    assert refusal(gif((16, 16), [(0, 0, 16, 16)])[:-6] + b";") == "truncated GIF (image data incomplete)"


def test_every_apng_frame_counts():
    assert refusal(apng((9000, 9000), after_idat=False)).startswith("image too large: frame 1 is 9000×9000 pixels")
    assert refusal(apng((100000, 100000), after_idat=True)).startswith("image too large: frame 2 is 100000×100000")
    assert refusal(apng((16, 5000), after_idat=True)) == "image too narrow: 16×5000 pixels (sides at most 20:1)"
    assert sniff_image(apng((16, 16), after_idat=True), LIMIT).width == 16


def test_every_webp_frame_counts():
    assert refusal(webp_animation((16, 16), (0, 0, 16000, 16000))).startswith("image too large: frame 1 is 16000×16000")
    assert refusal(webp_animation((16, 16), (30000, 0, 16, 16))).startswith("image too narrow: 30016×16 pixels")
    assert refusal(webp_animation((1 << 24, 1 << 24), (0, 0, 16, 16))).startswith("image too large: 16777216×16777216")
    assert sniff_image(webp_animation((40, 30), (8, 6, 32, 24)), LIMIT).width == 40


def test_the_resize_a_model_asks_for_is_bounded():
    assert resized_size(3000, 1, 183) == (549000, 183)  # what the 83-byte strip would have become
    assert resized_size(20, 400, 183) == (183, 3660)
    assert resize_problem(20, 1, 183) is None  # the widest allowed ratio at the default model's size
    assert resize_problem(4000, 200, 2000) == (
        "image too large to resize: 4000×200 pixels at a 2000 px shorter side would be 40000×2000 (limit 64 megapixels)"
    )
    assert image_size_problem(2000, 100) is None
    assert image_size_problem(100, 1, max_aspect_ratio=100) is None
    assert (
        image_size_problem(1000, 1000, max_pixels=500_000) == "image too large: 1000×1000 pixels (limit 0.5 megapixels)"
    )


def test_an_archive_skips_a_hostile_image_with_its_reason(out_dir):
    path = out_dir / "hostile.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(2):
            archive.writestr(f"cat/{i}.png", png(seed=i))
            archive.writestr(f"dog/{i}.png", png(seed=10 + i))
        archive.writestr("cat/pano.png", png(3000, 1))
        archive.writestr("dog/bomb.gif", gif((1, 1), [(0, 0, 9000, 9000)]))
    dataset = read_archive(path)
    assert len(dataset.samples) == 4
    skipped = {s.path: s.reason for s in dataset.skipped}
    assert skipped["cat/pano.png"] == "image too narrow: 3000×1 pixels (sides at most 20:1)"
    assert skipped["dog/bomb.gif"].startswith("image too large: frame 1 is 9000×9000 pixels")
