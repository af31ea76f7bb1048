"""Identify images by their bytes (PNG, JPEG, WebP, GIF, BMP) and read their size from the header."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ImageError", "ImageInfo", "sniff_image", "EXTENSIONS"]

# The extension a file of each format gets when written (torchvision's ImageFolder filters by it).
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "gif": ".gif", "bmp": ".bmp"}
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp"}


class ImageError(ValueError):
    """Bytes that are not a usable image; str() is the reason, for a user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # png | jpeg | webp | gif | bmp
    width: int
    height: int

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png(data: bytes) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG (header incomplete)")
    width, height = struct.unpack(">II", data[16:24])
    if not data.endswith(PNG_IEND):
        raise ImageError("truncated PNG (IEND chunk missing)")
    return width, height


def _jpeg(data: bytes) -> tuple[int, int]:
    i, size = 2, None
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageError("corrupt JPEG (bad marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, then EOI
            break
        i += 2 + length
    if size is None:
        raise ImageError("truncated JPEG (no frame header)")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageError("truncated JPEG (end-of-image marker missing)")
    return size


def _gif(data: bytes) -> tuple[int, int]:
    if len(data) < 14:
        raise ImageError("truncated GIF (header incomplete)")
    if not data.rstrip(b"\x00").endswith(b";"):
        raise ImageError("truncated GIF (trailer missing)")
    return struct.unpack("<HH", data[6:10])


def _bmp(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise ImageError("truncated BMP (header incomplete)")
    (declared,) = struct.unpack("<I", data[2:6])
    if declared > len(data):
        raise ImageError(f"truncated BMP ({len(data)} of {declared} bytes)")
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # negative height = top-down rows


def _webp(data: bytes) -> tuple[int, int]:
    if len(data) < 30:
        raise ImageError("truncated WebP (header incomplete)")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 > len(data):
        raise ImageError(f"truncated WebP ({len(data)} of {riff_size + 8} bytes)")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ImageError("corrupt WebP (bad VP8 frame tag)")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageError("corrupt WebP (bad VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ImageError("corrupt WebP (unknown chunk)")


def _format(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    return None


READERS = {"png": _png, "jpeg": _jpeg, "gif": _gif, "bmp": _bmp, "webp": _webp}


def sniff_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Format and size of an image from its bytes; ImageError says why it is unusable."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    kind = _format(data)
    if kind is None:
        raise ImageError("not an image (not PNG, JPEG, WebP, GIF or BMP)")
    try:
        width, height = READERS[kind](data)
    except (struct.error, IndexError):
        raise ImageError(f"truncated {kind.upper()} (header incomplete)") from None
    if width == 0 or height == 0:
        raise ImageError(f"empty image ({width}×{height} pixels)")
    if width * height > max_pixels:
        raise ImageError(f"image too large: {width}×{height} pixels (limit {max_pixels / 1e6:g} megapixels)")
    return ImageInfo(kind, width, height)
