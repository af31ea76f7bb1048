"""Write PyTorch `.pt` files (torch.save's zip format) with the stdlib, for state dicts of plain tensors.

The layout mirrors what torch 2.14's `torch.save` writes: `archive/data.pkl` (pickle protocol 2:
an OrderedDict of `torch._utils._rebuild_tensor_v2` calls whose storages are persistent ids
('storage', torch.FloatStorage, key, 'cpu', numel)), `archive/.format_version`,
`archive/.storage_alignment`, `archive/byteorder`, one `archive/data/<key>` per tensor, and
`archive/version`. Every record starts 64-byte aligned, as torch's writer does, so torch can also
memory-map the file (`torch.load(..., mmap=True)`). Files load with `torch.load(weights_only=True)`.
Output is deterministic (zero timestamps), so CPython and Pyodide write byte-identical files.
"""

from __future__ import annotations

import binascii
import json
import struct
import zipfile

from .safetensors import Tensor

__all__ = ["ALIGNMENT", "STORAGE_TYPES", "pickle_state_dict", "read_extra_json", "write_state_dict_pt"]

ALIGNMENT = 64
# safetensors dtype -> torch's legacy storage class, the name torch's pickles use for each dtype.
STORAGE_TYPES = {
    "F64": "DoubleStorage",
    "F32": "FloatStorage",
    "F16": "HalfStorage",
    "BF16": "BFloat16Storage",
    "I64": "LongStorage",
    "I32": "IntStorage",
    "I16": "ShortStorage",
    "I8": "CharStorage",
    "U8": "ByteStorage",
    "BOOL": "BoolStorage",
}
_FLAGS = 0x0808  # data descriptor follows the data; names are UTF-8 (what torch's miniz writes)
_EXTRA_ID = b"FB"  # the extra-field id torch's writer uses for its alignment padding

# Pickle opcodes (protocol 2), named as in the stdlib's pickletools.
_PROTO2, _STOP, _MARK, _TUPLE, _EMPTY_TUPLE, _REDUCE = b"\x80\x02", b".", b"(", b"t", b")", b"R"
_SETITEMS, _BINPERSID, _NEWFALSE, _BINPUT, _BINGET = b"u", b"Q", b"\x89", b"q", b"h"
_LONG_BINPUT, _LONG_BINGET = b"r", b"j"


class _Pickler:
    """Just the opcodes a state dict needs; globals are memoised like the stdlib pickler does."""

    def __init__(self):
        self.out = bytearray(_PROTO2)
        self.memo: dict[str, int] = {}

    def global_(self, module: str, name: str) -> None:
        ident = f"{module}\n{name}\n"
        if ident in self.memo:
            index = self.memo[ident]
            self.out += _BINGET + bytes([index]) if index < 256 else _LONG_BINGET + struct.pack("<I", index)
            return
        self.out += b"c" + ident.encode("ascii")
        index = self.memo[ident] = len(self.memo)
        self.out += _BINPUT + bytes([index]) if index < 256 else _LONG_BINPUT + struct.pack("<I", index)

    def int_(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data

    def str_(self, value: str) -> None:
        data = value.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def int_tuple(self, values) -> None:
        if not values:
            self.out += _EMPTY_TUPLE
            return
        self.out += _MARK
        for value in values:
            self.int_(value)
        self.out += _TUPLE

    def empty_ordered_dict(self) -> None:
        self.global_("collections", "OrderedDict")
        self.out += _EMPTY_TUPLE + _REDUCE


def _strides(shape) -> list[int]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return strides[::-1]


def pickle_state_dict(tensors: dict[str, Tensor]) -> bytes:
    """data.pkl for `tensors`: storage keys are "0", "1", ... in the dict's order."""
    p = _Pickler()
    p.empty_ordered_dict()
    p.out += _MARK
    for key, (name, tensor) in enumerate(tensors.items()):
        if tensor.dtype not in STORAGE_TYPES:
            raise ValueError(f"tensor {name!r}: dtype {tensor.dtype} has no torch storage type")
        p.str_(name)
        p.global_("torch._utils", "_rebuild_tensor_v2")
        p.out += _MARK + _MARK  # args tuple, then the persistent id tuple inside it
        p.str_("storage")
        p.global_("torch", STORAGE_TYPES[tensor.dtype])
        p.str_(str(key))
        p.str_("cpu")
        p.int_(tensor.numel)
        p.out += _TUPLE + _BINPERSID
        p.int_(0)  # storage offset
        p.int_tuple(tensor.shape)
        p.int_tuple(_strides(tensor.shape))
        p.out += _NEWFALSE  # requires_grad
        p.empty_ordered_dict()  # backward hooks
        p.out += _TUPLE + _REDUCE
    p.out += _SETITEMS + _STOP
    return bytes(p.out)


class _ZipWriter:
    """The zip subset torch's writer (miniz) produces: stored records, each followed by a data descriptor.

    Written by hand rather than with `zipfile` because torch can compute storage offsets without
    reading the central directory (`torch.utils.serialization.config.load.calculate_storage_offsets`),
    which assumes miniz's exact layout: 30-byte local header + name + "FB" padding extra field, the
    data at a 64-byte boundary, then a 16-byte data descriptor. Timestamps are zero, as torch's.
    """

    def __init__(self, file):
        self.file = file
        self.offset = 0
        self.central = []

    def add(self, name: str, data) -> None:
        encoded = name.encode("utf-8")
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if size >= 0xFFFFFFFF or self.offset >= 0xFFFFFFFF:
            raise ValueError(f"{name}: records over 4 GiB are not supported")
        padding = -(self.offset + 30 + len(encoded) + 4) % ALIGNMENT
        extra = _EXTRA_ID + struct.pack("<H", padding) + b"Z" * padding
        crc = binascii.crc32(data)
        # signature, version needed, flags (data descriptor + UTF-8), method, time, date, crc, sizes: 0
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, _FLAGS, 0, 0, 0, 0, 0, 0, len(encoded), len(extra))
        descriptor = struct.pack("<IIII", 0x08074B50, crc, size, size)
        self.file.write(header + encoded + extra)
        self.file.write(data)
        self.file.write(descriptor)
        self.central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                0,
                0,
                _FLAGS,
                0,
                0,
                0,
                crc,
                size,
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                self.offset,
            )
            + encoded
        )
        self.offset += len(header) + len(encoded) + len(extra) + size + len(descriptor)

    def close(self) -> None:
        directory = b"".join(self.central)
        count = len(self.central)
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), self.offset, 0)
        self.file.write(directory + end)


def write_state_dict_pt(tensors: dict[str, Tensor], dest, extra_records: dict[str, bytes] | None = None) -> None:
    """Write `tensors` as a torch.save-compatible state dict to `dest` (tensors must be little-endian).

    `extra_records` adds files inside the archive (e.g. "extra/classes.json"); torch.load ignores them.
    """
    prefix = "archive/"
    with open(dest, "wb") as f:
        archive = _ZipWriter(f)
        archive.add(prefix + "data.pkl", pickle_state_dict(tensors))
        archive.add(prefix + ".format_version", b"1")
        archive.add(prefix + ".storage_alignment", str(ALIGNMENT).encode())
        archive.add(prefix + "byteorder", b"little")
        # Storages must follow each other in key order: torch's offset calculation walks them so.
        for key, tensor in enumerate(tensors.values()):
            archive.add(f"{prefix}data/{key}", tensor.data)
        archive.add(prefix + "version", b"3\n")
        for name, data in (extra_records or {}).items():
            archive.add(prefix + name, data)
        archive.close()


def read_extra_json(path, name: str = "extra/tejas.json") -> dict:
    """Read a JSON record that write_state_dict_pt stored beside the tensors (stdlib zipfile)."""
    with zipfile.ZipFile(path) as archive:
        prefix = archive.namelist()[0].split("/", 1)[0]
        return json.loads(archive.read(f"{prefix}/{name}"))
