"""Identify images by their bytes (PNG, JPEG, WebP, GIF, BMP), read their size from the headers (every
frame's, for GIF, APNG and animated WebP) and refuse what would cost too much to decode (rules.json "image")."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .rules import MAX_ASPECT_RATIO, MAX_IMAGE_FRAMES, RULES, image_size_problem, megapixels, message

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


# A reader returns (width, height, canvas): the header's size and the canvas its frames fit in, where the
# format has frames, since a frame may be larger than the size the header declares (Pillow then grows the
# canvas to fit it; a GIF of a 1×1 screen can hold a 9000×9000 frame).
class Canvas:
    """The canvas every frame fits in, kept as a running maximum while a reader walks the frames (no list:
    a 12 MB GIF holds a million 1×1 frames), with the frame that makes the largest canvas for the refusal.
    More than rules.json image.max_frames frames are refused as they are met, so the walk stays bounded."""

    __slots__ = ("width", "height", "frames", "largest", "_largest_area")

    def __init__(self) -> None:
        self.width = self.height = self.frames = 0
        self.largest: tuple[int, int, int, int, int] | None = None  # (frame number, left, top, width, height)
        self._largest_area = -1

    def add(self, left: int, top: int, width: int, height: int) -> None:
        self.frames += 1
        if self.frames > MAX_IMAGE_FRAMES:
            raise ImageError(message(RULES["image"]["messages"]["too_many_frames"], max_frames=MAX_IMAGE_FRAMES))
        right, bottom = left + width, top + height
        self.width, self.height = max(self.width, right), max(self.height, bottom)
        if right * bottom > self._largest_area:  # the first of equals, as max() chose over a list
            self._largest_area = right * bottom
            self.largest = (self.frames, left, top, width, height)


def _png(data: bytes) -> tuple[int, int, Canvas]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageError("truncated PNG (header incomplete)")
    width, height = struct.unpack(">II", data[16:24])
    if not data.endswith(PNG_IEND):
        raise ImageError("truncated PNG (IEND chunk missing)")
    # APNG: every fcTL chunk (before and after the image data) gives a frame's size and offset
    canvas = Canvas()
    animated, i, n = False, 8, len(data)
    while i + 8 <= n:
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"acTL":
            animated = True
        elif kind == b"fcTL":
            if i + 28 > n:
                raise ImageError("truncated PNG (frame header incomplete)")
            _, w, h, left, top = struct.unpack(">IIIII", data[i + 8 : i + 28])
            canvas.add(left, top, w, h)
        elif (kind == b"IDAT" and not animated) or kind == b"IEND":
            break  # a still PNG declares nothing after its image data that changes its size
        i += 12 + length
    return width, height, canvas


def _jpeg(data: bytes) -> tuple[int, int, Canvas]:
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
    return size[0], size[1], Canvas()


def _gif_pattern(blocks: str) -> re.Pattern[bytes]:
    """`blocks` with {sub_blocks} standing for a run of data sub-blocks up to its terminator: each a length
    byte and that many bytes, then a zero byte. One alternative per length, shortest first and only tried
    before a non-zero byte, so a sub-block costs at most as many comparisons as it has bytes; possessive, so
    nothing is kept to backtrack to. Matched by the regular expression engine, not a loop in Python: 20 MB
    of 2-byte sub-blocks are ten million of them."""
    one = "|".join(f"\\x{size:02x}.{{{size}}}" for size in range(1, 256))
    return re.compile(blocks.replace("{sub_blocks}", f"(?:(?!\\x00)(?:{one}))*+\\x00").encode("latin-1"), re.DOTALL)


# Data sub-blocks (after an image descriptor) up to their terminator.
_GIF_SUB_BLOCKS = _gif_pattern("{sub_blocks}")
# What comes before the next image descriptor or the trailer: extensions (0x21, a label, sub-blocks) and stray
# bytes (anything but 0x21, 0x2C and 0x3B: Pillow's reader passes over them too). Stops at a frame, the
# trailer, or an extension whose sub-blocks run past the end.
_GIF_BETWEEN_FRAMES = _gif_pattern("(?:[^!,;]++|!.{sub_blocks})*+")


def _gif(data: bytes) -> tuple[int, int, Canvas]:
    if len(data) < 14:
        raise ImageError("truncated GIF (header incomplete)")
    if not data.rstrip(b"\x00").endswith(b";"):
        raise ImageError("truncated GIF (trailer missing)")
    width, height, flags = struct.unpack("<HHB", data[6:11])
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    canvas = Canvas()
    n = len(data)
    i = _GIF_BETWEEN_FRAMES.match(data, i).end()
    while i < n and data[i] != 0x3B:  # up to the trailer
        if data[i] != 0x2C:  # an extension whose sub-blocks run past the end
            raise ImageError("truncated GIF (image data incomplete)")
        # image descriptor: one frame
        if i + 10 > n:
            raise ImageError("truncated GIF (frame header incomplete)")
        left, top, w, h, frame_flags = struct.unpack("<HHHHB", data[i + 1 : i + 10])
        canvas.add(left, top, w, h)
        i += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0)
        sub_blocks = _GIF_SUB_BLOCKS.match(data, i + 1)  # after the LZW code size byte
        if sub_blocks is None:
            raise ImageError("truncated GIF (image data incomplete)")
        i = _GIF_BETWEEN_FRAMES.match(data, sub_blocks.end()).end()
    return width, height, canvas


def _bmp(data: bytes) -> tuple[int, int, Canvas]:
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
    return abs(width), abs(height), Canvas()  # negative height = top-down rows


def _webp(data: bytes) -> tuple[int, int, Canvas]:
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
        return width & 0x3FFF, height & 0x3FFF, Canvas()
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageError("corrupt WebP (bad VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, Canvas()
    if chunk == b"VP8X":
        width, height = int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        # animation: every ANMF chunk gives a frame's offset (in 2-pixel units) and size
        canvas = Canvas()
        i, end = 12, riff_size + 8
        while i + 8 <= end:
            kind, (size,) = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])
            if kind == b"ANMF":
                if i + 20 > end:
                    raise ImageError("truncated WebP (frame header incomplete)")
                field = [int.from_bytes(data[j : j + 3], "little") for j in range(i + 8, i + 20, 3)]
                canvas.add(field[0] * 2, field[1] * 2, field[2] + 1, field[3] + 1)
            i += 8 + size + (size & 1)  # chunks are padded to an even size
        return width, height, canvas
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
        width, height, canvas = READERS[kind](data)
    except (struct.error, IndexError):
        raise ImageError(f"truncated {kind.upper()} (header incomplete)") from None
    if width == 0 or height == 0:
        raise ImageError(f"empty image ({width}×{height} pixels)")
    problem = image_size_problem(width, height, max_pixels, max_aspect_ratio)
    if problem:
        raise ImageError(problem)
    canvas_width, canvas_height = max(width, canvas.width), max(height, canvas.height)
    if (canvas_width, canvas_height) != (width, height):
        if canvas_width * canvas_height > max_pixels:
            assert canvas.largest is not None  # the canvas grew: a frame made it
            frame, left, top, w, h = canvas.largest
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
