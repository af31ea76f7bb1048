"""Protocol-buffer wire format, stdlib only: enough to read, modify and write ONNX models in Pyodide.

Messages are parsed one level at a time into `Field`s whose length-delimited values stay memoryview
slices of the original buffer, so a 45 MB ONNX file is split into its top-level fields without
copying or decoding its tensors. Writing produces a list of chunks (bytes and memoryviews) that
`write_chunks` streams to a file; large payloads are never concatenated in Python.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "VARINT",
    "FIXED64",
    "LEN",
    "FIXED32",
    "DecodeError",
    "Field",
    "parse",
    "read_varint",
    "encode_varint",
    "key",
    "varint_field",
    "bytes_field",
    "string_field",
    "float_field",
    "message_field",
    "message",
    "chunks_size",
    "write_chunks",
    "first",
    "every",
    "every_int",
    "as_int",
    "as_str",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """The bytes are not a well-formed protocol-buffer message."""


class Field(NamedTuple):
    """One field occurrence: number, wire type, and value (int for VARINT/FIXED*, memoryview for LEN).

    `raw` is the whole encoded field (key included), so unchanged fields are copied through as is.
    """

    number: int
    wire: int
    value: int | memoryview
    raw: memoryview


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    result = 0
    shift = 0
    try:
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise DecodeError("varint longer than 10 bytes")
    except IndexError:
        raise DecodeError("truncated varint") from None


def parse(buf) -> list[Field]:
    """Split one message into its fields (one level deep; nested messages stay memoryviews)."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    fields = []
    pos = 0
    end = len(view)
    while pos < end:
        start = pos
        tag, pos = read_varint(view, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise DecodeError(f"field number 0 at byte {start}")
        if wire == VARINT:
            value, pos = read_varint(view, pos)
        elif wire == LEN:
            size, pos = read_varint(view, pos)
            if pos + size > end:
                raise DecodeError(f"field {number} at byte {start}: {size} bytes announced, {end - pos} left")
            value = view[pos : pos + size]
            pos += size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise DecodeError(f"field {number} at byte {start}: truncated fixed32")
            value = int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        elif wire == FIXED64:
            if pos + 8 > end:
                raise DecodeError(f"field {number} at byte {start}: truncated fixed64")
            value = int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        else:
            # Groups are deprecated and ONNX never uses them.
            raise DecodeError(f"field {number} at byte {start}: unsupported wire type {wire}")
        fields.append(Field(number, wire, value, view[start:pos]))
    return fields


def first(fields: list[Field], number: int, default=None):
    """Value of the last occurrence of a non-repeated field (protobuf's merge rule), or `default`."""
    found = default
    for field in fields:
        if field.number == number:
            found = field.value
    return found


def every(fields: list[Field], number: int) -> list:
    """Values of every occurrence of a repeated field, in order."""
    return [field.value for field in fields if field.number == number]


def every_int(fields: list[Field], number: int) -> list[int]:
    """Signed values of a repeated integer field, packed or not (proto2 writers use either)."""
    values = []
    for field in fields:
        if field.number != number:
            continue
        if field.wire != LEN:
            values.append(as_int(field.value))
            continue
        pos = 0
        while pos < len(field.value):
            value, pos = read_varint(field.value, pos)
            values.append(as_int(value))
    return values


def as_int(value: int) -> int:
    """A decoded varint as a signed int32/int64 (negative values are sign-extended to 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_str(value) -> str:
    return bytes(value).decode("utf-8")


def encode_varint(value: int) -> bytes:
    """Unsigned varint; negative numbers are encoded as 64-bit two's complement (protobuf's int64)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return encode_varint((number << 3) | wire)


def varint_field(number: int, value: int) -> bytes:
    return key(number, VARINT) + encode_varint(value)


def float_field(number: int, value: float) -> bytes:
    return key(number, FIXED32) + struct.pack("<f", value)


def bytes_field(number: int, value) -> list:
    """A length-delimited field as chunks: the payload (bytes or memoryview) is not copied."""
    size = value.nbytes if isinstance(value, memoryview) else len(value)
    return [key(number, LEN) + encode_varint(size), value]


def string_field(number: int, value: str) -> bytes:
    data = value.encode("utf-8")
    return key(number, LEN) + encode_varint(len(data)) + data


def message_field(number: int, chunks: list) -> list:
    """A nested message field around already-encoded `chunks`."""
    return [key(number, LEN) + encode_varint(chunks_size(chunks)), *chunks]


def message(*parts) -> list:
    """Flatten encoded parts (bytes, memoryviews, lists of chunks) into one chunk list."""
    out = []
    for part in parts:
        if isinstance(part, list):
            out.extend(part)
        else:
            out.append(part)
    return out


def chunks_size(chunks: list) -> int:
    return sum(c.nbytes if isinstance(c, memoryview) else len(c) for c in chunks)


def write_chunks(chunks: list, file) -> int:
    """Write chunks to a binary file object; small ones are batched to keep the write count low."""
    pending = bytearray()
    total = 0
    for chunk in chunks:
        size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        total += size
        if size < 65536:
            pending += chunk
            continue
        if pending:
            file.write(pending)
            pending = bytearray()
        file.write(chunk)
    if pending:
        file.write(pending)
    return total
