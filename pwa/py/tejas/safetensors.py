"""Read and write safetensors files with the stdlib: raw little-endian tensors behind a JSON header.

Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
(optionally "__metadata__": {str: str}), then the tensors' bytes. Tensors are `Tensor`s whose data
stays a memoryview of the file's bytes, so reading a 45 MB state dict copies nothing.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from pathlib import Path
from typing import NamedTuple

__all__ = ["DTYPE_SIZES", "SafetensorsError", "Tensor", "float32_tensor", "read_safetensors", "write_safetensors"]

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit


class SafetensorsError(ValueError):
    """A safetensors file is malformed; the message names the file."""


class Tensor(NamedTuple):
    """A dense row-major tensor: dtype (safetensors name), shape, and its raw little-endian bytes."""

    dtype: str
    shape: tuple
    data: bytes | memoryview

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.data.nbytes if isinstance(self.data, memoryview) else len(self.data)


def float32_tensor(values, shape) -> Tensor:
    """A float32 Tensor from a flat sequence of floats (or an array('f'), used without copying)."""
    data = values if isinstance(values, array) and values.typecode == "f" else array("f", values)
    if sys.byteorder == "big":  # tensors are stored little-endian everywhere
        data = array("f", data)
        data.byteswap()
    tensor = Tensor("F32", tuple(shape), memoryview(data).cast("B"))
    if tensor.numel * 4 != tensor.nbytes:
        raise ValueError(f"{len(data)} values do not fill shape {list(shape)}")
    return tensor


def read_safetensors(path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a safetensors file; return (tensors by name in header order, the header's __metadata__)."""
    path = Path(path)
    buf = memoryview(path.read_bytes())
    if len(buf) < 8:
        raise SafetensorsError(f"{path}: too short to be a safetensors file")
    (header_size,) = struct.unpack_from("<Q", buf, 0)
    if header_size > min(_MAX_HEADER, len(buf) - 8):
        raise SafetensorsError(
            f"{path}: header length {header_size} exceeds the file; the file is truncated or corrupt"
        )
    try:
        header = json.loads(bytes(buf[8 : 8 + header_size]).decode("utf-8"))
    except ValueError as exc:
        raise SafetensorsError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = buf[8 + header_size :]
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r} lacks dtype, shape or data_offsets") from None
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        tensor = Tensor(dtype, shape, data[begin:end])
        if not 0 <= begin <= end <= len(data) or tensor.nbytes != tensor.numel * DTYPE_SIZES[dtype]:
            raise SafetensorsError(f"{path}: tensor {name!r} has data_offsets that do not match its shape")
        tensors[name] = tensor
    return tensors, metadata


def write_safetensors(tensors: dict[str, Tensor], path, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (in the given order) to `path`; deterministic for the same input."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in DTYPE_SIZES or tensor.nbytes != tensor.numel * DTYPE_SIZES[tensor.dtype]:
            raise ValueError(f"tensor {name!r}: {tensor.nbytes} bytes do not fit {tensor.dtype} {list(tensor.shape)}")
        header[name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for tensor in tensors.values():
            f.write(tensor.data)
