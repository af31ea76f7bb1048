"""Crafted images for the image rule (rules.json "image", issue 24): hostile sizes that must be refused
before anything is decoded, and legitimate but unusual images that must still predict. Made in memory with
Pillow and struct (the stdlib builders of tests/pycore/hostile_headers.py for GIF, APNG, PNG and BMP
headers); a header is patched where Pillow would not write the lie.

`HOSTILE[name] = (bytes, words the refusal contains)`, `LEGITIMATE[name] = bytes`.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

from .pycore.hostile_headers import apng, bmp_claiming, gif
from .pycore.images_for_tests import png_header_claiming


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image)).convert(mode)


def webp_animated_with_frame(width: int, height: int) -> bytes:
    """An animated 16×16 WebP whose second ANMF frame declares width × height."""
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green")]
    data = bytearray(_save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    second = data.index(b"ANMF", data.index(b"ANMF") + 4)
    data[second + 14 : second + 17] = (width - 1).to_bytes(3, "little")
    data[second + 17 : second + 20] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def webp_canvas(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas declares width × height around a 16×16 lossless image."""
    still = _save(Image.new("RGB", (16, 16), "red"), "WEBP", lossless=True)
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + still[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_declaring(width: int, height: int, progressive: bool) -> bytes:
    """A small JPEG whose start-of-frame declares width × height."""
    data = bytearray(_save(_gradient(32, 24), "JPEG", progressive=progressive, quality=80))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_top_down(width: int, height: int) -> bytes:
    """A BMP stored top-down (negative height), as Windows writes some."""
    data = bytearray(_save(_gradient(width, height), "BMP"))
    data[22:26] = struct.pack("<i", -height)
    rows = data[54:]
    stride = len(rows) // height
    data[54:] = b"".join(rows[i * stride : (i + 1) * stride] for i in reversed(range(height)))
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return _save(_gradient(64, 40), "JPEG", exif=exif.tobytes(), quality=85)


def _palette_png() -> bytes:
    image = _gradient(48, 40).quantize(16)
    return _save(image, "PNG", transparency=0)


def _animated(fmt: str, **options) -> bytes:
    frames = [_gradient(40, 30), _gradient(40, 30).transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], **options)


TOO_NARROW, TOO_LARGE = "image too narrow", "image too large"

HOSTILE: dict[str, tuple[bytes, str]] = {
    # strips: a few bytes that a resize to a model's shorter side would make hundreds of megabytes
    "strip-3000x1.png": (_save(Image.new("RGB", (3000, 1)), "PNG"), TOO_NARROW),
    "strip-1x3000.png": (_save(Image.new("RGB", (1, 3000)), "PNG"), TOO_NARROW),
    "strip-100000x1.png": (_save(Image.new("L", (100000, 1)), "PNG"), TOO_NARROW),
    "strip-1x100000.png": (_save(Image.new("L", (1, 100000)), "PNG"), TOO_NARROW),
    "strip-2100x100.png": (_save(Image.new("RGB", (2100, 100)), "PNG"), TOO_NARROW),  # 21:1, just over
    "strip-30000x1.gif": (_save(Image.new("L", (30000, 1)), "GIF"), TOO_NARROW),
    "strip-16383x1.webp": (_save(Image.new("RGB", (16383, 1)), "WEBP", lossless=True), TOO_NARROW),
    "strip-1x16383.webp": (_save(Image.new("RGB", (1, 16383)), "WEBP", quality=50), TOO_NARROW),
    "strip-5000x2.jpg": (_save(Image.new("RGB", (5000, 2)), "JPEG"), TOO_NARROW),
    "strip-1x4000.bmp": (_save(Image.new("RGB", (1, 4000)), "BMP"), TOO_NARROW),
    "strip-top-down-3000x1.bmp": (bmp_top_down(3000, 1), TOO_NARROW),
    # frames larger than the header's size
    "gif-9000x9000-frame-on-1x1-screen.gif": (gif((1, 1), [(0, 0, 9000, 9000)]), TOO_LARGE),
    "gif-huge-second-frame.gif": (gif((16, 16), [(0, 0, 16, 16), (0, 0, 65535, 65535)]), TOO_LARGE),
    "gif-frame-far-right.gif": (gif((16, 16), [(60000, 0, 16, 16)]), TOO_NARROW),
    "apng-huge-first-frame.png": (apng((9000, 9000), after_idat=False), TOO_LARGE),
    "apng-huge-second-frame.png": (apng((100000, 100000), after_idat=True), TOO_LARGE),
    "apng-strip-second-frame.png": (apng((16, 5000), after_idat=True), TOO_NARROW),
    "webp-anim-huge-frame.webp": (webp_animated_with_frame(16000, 16000), TOO_LARGE),
    "webp-canvas-16Mx16M.webp": (webp_canvas(1 << 24, 1 << 24), TOO_LARGE),
    "webp-canvas-1x9000.webp": (webp_canvas(1, 9000), TOO_NARROW),
    # headers declaring huge sizes
    "jpeg-progressive-65000x65000.jpg": (jpeg_declaring(65000, 65000, progressive=True), TOO_LARGE),
    "jpeg-progressive-60000x2.jpg": (jpeg_declaring(60000, 2, progressive=True), TOO_NARROW),
    "jpeg-baseline-65535x65535.jpg": (jpeg_declaring(65535, 65535, progressive=False), TOO_LARGE),
    "png-100000x100000.png": (png_header_claiming(100000, 100000), TOO_LARGE),
    "png-8001x8000.png": (png_header_claiming(8001, 8000), TOO_LARGE),  # just over 64 megapixels
    "png-2147483647x1.png": (png_header_claiming(2**31 - 1, 1), TOO_LARGE),
    "bmp-negative-height-huge.bmp": (bmp_claiming(50000, -50000), TOO_LARGE),
}

LEGITIMATE: dict[str, bytes] = {
    "panorama-20to1.png": _save(_gradient(2000, 100), "PNG"),  # exactly the limit
    "panorama-10to1.jpg": _save(_gradient(1600, 160), "JPEG", quality=85),
    "tall-1to20.png": _save(_gradient(20, 400), "PNG"),
    "one-pixel.png": _save(Image.new("RGB", (1, 1), "orange"), "PNG"),
    "grey-16-bit.png": _save(_gradient(64, 48, "L").convert("I;16"), "PNG"),
    "palette-transparent.png": _palette_png(),
    "rgba.png": _save(_gradient(50, 40, "RGBA"), "PNG"),
    "cmyk.jpg": _save(_gradient(64, 48, "CMYK"), "JPEG", quality=85),
    "exif-rotated.jpg": exif_rotated_jpeg(),
    "progressive.jpg": _save(_gradient(64, 48), "JPEG", progressive=True, quality=85),
    "animated.gif": _animated("GIF"),
    "animated.png": _animated("PNG"),
    "animated.webp": _animated("WEBP", lossless=True),
    "lossy.webp": _save(_gradient(64, 48), "WEBP", quality=80),
    "top-down.bmp": bmp_top_down(40, 30),
}
