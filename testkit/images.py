"""Real, decodable images made with the stdlib only (so the shared tests run in Pyodide too)."""

from __future__ import annotations

import base64
import struct
import zlib

# 8×6 images saved by Pillow (JPEG q80, WebP lossless and lossy, GIF87a).
JPEG_8x6 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0o"
    "MCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAGAAgD"
    "ASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB"
    "kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZ"
    "mqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQF"
    "BgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX"
    "2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDgKKKK+eP2E//Z"
)
WEBP_LOSSLESS_8x6 = base64.b64decode("UklGRiIAAABXRUJQVlA4TBYAAAAvB0ABAAdQjyLXo/8BgCD8b5uI6H8I")
WEBP_LOSSY_8x6 = base64.b64decode(
    "UklGRjYAAABXRUJQVlA4ICoAAACQAQCdASoIAAYAAsBMJaACdLoAA5gA/u2QP4hd7G2//PTP62/j/xkAAAA="
)
GIF_8x6 = base64.b64decode("R0lGODdhCAAGAIEAAMgeHgAAAAAAAAAAACwAAAAACAAGAAAIDgABCBxIsKDBgwgTDgwIADs=")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 8, height: int = 6, seed: int = 0, level: int = 6) -> bytes:
    """An RGB PNG whose pixels depend on `seed` (distinct seeds give distinct files)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(((x * 31 + seed * 7) % 256, (y * 17 + seed * 13) % 256, (seed * 101 + x * y) % 256))
    if width * height >= 2:  # the seed itself in the first two pixels: distinct seeds, distinct files
        rows[1:7] = (seed % (1 << 48)).to_bytes(6, "big")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), level))
        + _chunk(b"IEND", b"")
    )


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares an absurd size (a decompression bomb's calling card)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _chunk(b"IEND", b"")
    )


def bmp(width: int = 8, height: int = 6, seed: int = 0) -> bytes:
    row = bytes((x + seed) % 256 for x in range(width * 3))
    row += b"\0" * ((4 - len(row) % 4) % 4)
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def jpeg(seed: int = 0) -> bytes:
    """The 8×6 JPEG with a comment segment that makes each seed's bytes distinct."""
    comment = f"tejas test {seed}".encode()
    return JPEG_8x6[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + JPEG_8x6[2:]
