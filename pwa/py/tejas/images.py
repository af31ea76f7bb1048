"""Identify images by their bytes (PNG, JPEG, WebP, GIF, BMP), read their size from the headers (every
frame's, for GIF, APNG and animated WebP) and refuse what would cost too much to decode (rules.json "image")."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rules import MAX_ASPECT_RATIO, RULES, image_size_problem, megapixels, message

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


# A reader returns (width, height, frames): the header's size and each frame's (left, top, width, height)
# where the format has frames, since a frame may be larger than the size the header declares (Pillow then
# grows the canvas to fit it; a GIF of a 1×1 screen can hold a 9000×9000 frame).
Frames = list[tuple[int, int, int, int]]


def _png(data: bytes) -> tuple[int, int, Frames]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG (header incomplete)")
    width, height = struct.unpack(">II", data[16:24])
    if not data.endswith(PNG_IEND):
        raise ImageError("truncated PNG (IEND chunk missing)")
    # APNG: every fcTL chunk (before and after the image data) gives a frame's size and offset
    frames: Frames = []
    animated, i, n = False, 8, len(data)
    while i + 8 <= n:
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"acTL":
            animated = True
        elif kind == b"fcTL":
            if i + 28 > n:
                raise ImageError("truncated PNG (frame header incomplete)")
            _, w, h, left, top = struct.unpack(">IIIII", data[i + 8 : i + 28])
            frames.append((left, top, w, h))
        elif (kind == b"IDAT" and not animated) or kind == b"IEND":
            break  # a still PNG declares nothing after its image data that changes its size
        i += 12 + length
    return width, height, frames


def _jpeg(data: bytes) -> tuple[int, int, Frames]:
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
    return size[0], size[1], []


def _gif_skip_sub_blocks(data: bytes, i: int) -> int:
    """The offset after the data sub-blocks starting at `i` (each a length byte and that many bytes)."""
    n = len(data)
    while i < n:
        size = data[i]
        i += 1 + size
        if size == 0:
            return i
    raise ImageError("truncated GIF (image data incomplete)")


def _gif(data: bytes) -> tuple[int, int, Frames]:
    if len(data) < 14:
        raise ImageError("truncated GIF (header incomplete)")
    if not data.rstrip(b"\x00").endswith(b";"):
        raise ImageError("truncated GIF (trailer missing)")
    width, height, flags = struct.unpack("<HHB", data[6:11])
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    frames: Frames = []
    n = len(data)
    while i < n and data[i] != 0x3B:  # up to the trailer
        block = data[i]
        if block == 0x21:  # extension: label, then sub-blocks
            i = _gif_skip_sub_blocks(data, i + 2)
        elif block == 0x2C:  # image descriptor: one frame
            if i + 10 > n:
                raise ImageError("truncated GIF (frame header incomplete)")
            left, top, w, h, frame_flags = struct.unpack("<HHHHB", data[i + 1 : i + 10])
            frames.append((left, top, w, h))
            i += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0)
            i = _gif_skip_sub_blocks(data, i + 1)  # after the LZW code size byte
        else:
            i += 1  # a stray byte: Pillow's reader passes over it too
    return width, height, frames


def _bmp(data: bytes) -> tuple[int, int, Frames]:
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
    return abs(width), abs(height), []  # negative height = top-down rows


def _webp(data: bytes) -> tuple[int, int, Frames]:
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
        return width & 0x3FFF, height & 0x3FFF, []
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageError("corrupt WebP (bad VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, []
    if chunk == b"VP8X":
        width, height = int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        # animation: every ANMF chunk gives a frame's offset (in 2-pixel units) and size
        frames: Frames = []
        i, end = 12, riff_size + 8
        while i + 8 <= end:
            kind, (size,) = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])
            if kind == b"ANMF":
                if i + 20 > end:
                    raise ImageError("truncated WebP (frame header incomplete)")
                field = [int.from_bytes(data[j : j + 3], "little") for j in range(i + 8, i + 20, 3)]
                frames.append((field[0] * 2, field[1] * 2, field[2] + 1, field[3] + 1))
            i += 8 + size + (size & 1)  # chunks are padded to an even size
        return width, height, frames
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


def sniff_image(data: bytes, max_pixels: int, max_aspect_ratio: int | None = MAX_ASPECT_RATIO) -> ImageInfo:
    """Format and size of an image from its bytes; ImageError says why it is unusable, or why decoding it
    would cost too much (rules.json "image": the canvas every frame fits in, its pixels and its sides'
    ratio; `max_aspect_ratio=None` checks the pixels only)."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    kind = _format(data)
    if kind is None:
        raise ImageError("not an image (not PNG, JPEG, WebP, GIF or BMP)")
    try:
        width, height, frames = READERS[kind](data)
    except (struct.error, IndexError):
        raise ImageError(f"truncated {kind.upper()} (header incomplete)") from None
    if width == 0 or height == 0:
        raise ImageError(f"empty image ({width}×{height} pixels)")
    problem = image_size_problem(width, height, max_pixels, max_aspect_ratio)
    if problem:
        raise ImageError(problem)
    canvas_width = max([width] + [left + w for left, _, w, _ in frames])
    canvas_height = max([height] + [top + h for _, top, _, h in frames])
    if (canvas_width, canvas_height) != (width, height):
        if canvas_width * canvas_height > max_pixels:
            frame, (left, top, w, h) = max(
                enumerate(frames, 1), key=lambda f: (f[1][0] + f[1][2]) * (f[1][1] + f[1][3])
            )
            raise ImageError(
                message(
                    RULES["image"]["messages"]["frame_too_large"],
                    frame=frame,
                    frame_width=w,
                    frame_height=h,
                    left=left,
                    top=top,
                    width=canvas_width,
                    height=canvas_height,
                    megapixels=megapixels(max_pixels),
                )
            )
        problem = image_size_problem(canvas_width, canvas_height, max_pixels, max_aspect_ratio)
        if problem:
            raise ImageError(problem)
    return ImageInfo(kind, canvas_width, canvas_height)
