"""Images whose headers lie about their size, made with the stdlib only (shared: the core's tests run in
Pyodide too; tests/hostile_images.py builds on them): GIF frames, APNG frame controls and WebP animation
frames larger than their canvas, JPEG and BMP headers declaring huge sizes."""

from __future__ import annotations

import struct
import zlib

from .images_for_tests import JPEG_8x6, bmp, png


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def gif(screen: tuple[int, int], frames: list[tuple[int, int, int, int]]) -> bytes:
    """A GIF of a `screen` logical screen holding frames (left, top, width, height) of a few bytes each."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    for left, top, width, height in frames:
        out += b"!\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
        out += b"," + struct.pack("<HHHHB", left, top, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return out + b";"


def apng(frame: tuple[int, int], after_idat: bool) -> bytes:
    """A 16×16 APNG whose first (or second, after the image data) frame control declares `frame`."""
    still = png(16, 16)
    ihdr, idat, iend = still[8:33], still[33:-12], still[-12:]

    def fctl(sequence: int, w: int, h: int) -> bytes:
        return _chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, w, h, 0, 0, 1, 10, 0, 0))

    body = ihdr + _chunk(b"acTL", struct.pack(">II", 2, 0))
    body += fctl(0, 16, 16) + idat + fctl(1, *frame) if after_idat else fctl(0, *frame) + idat
    return still[:8] + body + iend


def webp_animation(canvas: tuple[int, int], frame: tuple[int, int, int, int]) -> bytes:
    """An animated WebP (VP8X canvas, one ANMF chunk) whose frame is (left, top, width, height)."""
    left, top, width, height = frame
    vp8x = b"\x02\x00\x00\x00" + (canvas[0] - 1).to_bytes(3, "little") + (canvas[1] - 1).to_bytes(3, "little")
    fields = b"".join(v.to_bytes(3, "little") for v in (left // 2, top // 2, width - 1, height - 1))
    anmf = fields + b"\x00\x00\x00\x00"  # duration, flags; the frame's bitstream is not read
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + b"ANMF" + struct.pack("<I", len(anmf)) + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(JPEG_8x6)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(bmp())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)
