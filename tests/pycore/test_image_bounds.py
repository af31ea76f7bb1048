"""The core's image rule (rules.json "image", issue 24): what decoding an image may cost is judged from its
bytes before any decoder runs — the canvas every frame fits in (GIF image descriptors, APNG fcTL chunks,
WebP ANMF chunks), its pixels and the ratio of its sides (resizing a 3000×1 strip of 83 bytes to a 183 px
shorter side made the server's memory grow ~950 MB), and the size a model's resize would make.
Shared: runs under pytest and inside Pyodide (the app's zip import reads images with this core).
"""

from __future__ import annotations

import struct
import sys
import zipfile

import tejas.images
from tejas.dataset import read_archive
from tejas.images import ImageError, sniff_image
from tejas.limits import DEFAULT_LIMITS
from tejas.rules import (
    MAX_ASPECT_RATIO,
    MAX_IMAGE_FRAMES,
    MAX_IMAGE_PIXELS,
    image_size_problem,
    resize_problem,
    resized_size,
)

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


def python_lines_run(data: bytes) -> tuple[int, int, str]:
    """Sniffing `data`: the lines of tejas/images.py Python ran, the frames it read and the result (the size
    or the refusal). The work counted, not timed: a walk of the bytes in Python runs lines for every byte."""
    lines = frames = 0
    images_py = tejas.images.__file__

    def line(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return line

    def call(frame, event, arg):  # a function starts: trace its lines if it is in tejas/images.py
        nonlocal frames
        if frame.f_code.co_filename != images_py:
            return None
        frames += frame.f_code.co_qualname == "Canvas.add"
        return line

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        try:
            info = sniff_image(data, LIMIT)
            result = f"{info.width}×{info.height}"
        except ImageError as error:
            result = str(error)
    finally:
        sys.settrace(previous)
    return lines, frames, result


def test_a_gif_walk_is_bounded_by_frames_not_bytes():
    # 20 MB of stray bytes (Pillow passes over them) and of 3-byte extensions: no Python per byte or block
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    for filler in (b"\x00", b"\xff", b"!\x01\x00", b"\x02ab"):
        data = screen + filler * (20_000_000 // len(filler)) + b";"
        lines, frames, result = python_lines_run(data)
        assert (result, frames) == ("1×1", 0) and lines < 100, (filler, lines)
    # one frame with 20 MB of 1-byte data sub-blocks
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02"
    lines, frames, result = python_lines_run(screen + frame + b"\x01\x00" * 10_000_000 + b"\x00;")
    assert (result, frames) == ("1×1", 1) and lines < 100, lines
    # 12 MB of 1×1 frames (a million) are refused at the limit: the frames read, not the file, bound the work
    one_by_one = frame + b"\x00"
    data = screen + one_by_one * (12_000_000 // len(one_by_one)) + b";"
    lines, frames, result = python_lines_run(data)
    assert MAX_IMAGE_FRAMES == 10_000 and result == "image has too many frames: more than 10000"
    assert frames == MAX_IMAGE_FRAMES + 1 and lines < 20 * frames, lines
    # at the limit the frames pass, and the canvas still grows to fit the largest of them; one more is refused
    grown = screen + one_by_one * (MAX_IMAGE_FRAMES - 1) + b"," + struct.pack("<HHHHB", 5, 6, 10, 10, 0) + b"\x02\x00;"
    assert (sniff_image(grown, LIMIT).width, sniff_image(grown, LIMIT).height) == (15, 16)
    assert refusal(grown[:-1] + b"," + struct.pack("<HHHHB", 0, 0, 9000, 9000, 0) + b"\x02\x00;") == (
        "image has too many frames: more than 10000"
    )


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
