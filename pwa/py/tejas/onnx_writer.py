"""Build an inference classifier ONNX (backbone + trained head + softmax) with the stdlib only.

`write_classifier_onnx` takes the artifacts' backbone.onnx (image -> features) — or for text artifacts the
encoder their manifest's text.encoder names (input_ids, attention_mask -> features) — appends
Gemm(features, W, b) -> "logits" and Softmax(axis=1) -> "probabilities", and stores the class names
in the model's metadata_props. Only the top-level fields of ModelProto and GraphProto are parsed
(tejas.protobuf); everything else, including the backbone's initializers, is copied through as
memoryview slices, so IR version, opset and weights stay exactly as exported.
The small proto builders (`tensor_proto`, `node`, `value_info`, `graph`, `model`) are public so
tests can make tiny models without the onnx package.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from . import protobuf as pb
from .artifacts import ArtifactError
from .model_export import check_head, is_text, last_block_tensors, model_metadata, text_metadata
from .safetensors import Tensor

__all__ = [
    "FLOAT",
    "INT64",
    "LOGITS",
    "PROBABILITIES",
    "attribute",
    "classifier_onnx_chunks",
    "describe_onnx",
    "graph",
    "last_block_onnx_chunks",
    "model",
    "node",
    "tensor_proto",
    "value_info",
    "write_classifier_onnx",
]

# TensorProto.DataType values, and safetensors dtype names -> them.
FLOAT, INT64 = 1, 7
_DATA_TYPES = {"F32": FLOAT, "U8": 2, "I8": 3, "I16": 5, "I32": 6, "I64": INT64, "BOOL": 9, "F16": 10, "F64": 11}
LOGITS, PROBABILITIES = "logits", "probabilities"
HEAD_WEIGHT, HEAD_BIAS = "tejas_head.weight", "tejas_head.bias"

# Field numbers from onnx.proto (ModelProto, GraphProto, NodeProto, ...).
_MODEL_IR, _MODEL_PRODUCER, _MODEL_GRAPH, _MODEL_OPSET, _MODEL_METADATA = 1, 2, 7, 8, 14
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INIT, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 2, 5, 11, 12
_ATTR_INT, _ATTR_INTS, _ATTR_FLOAT, _ATTR_STRING = 2, 7, 1, 3


def tensor_proto(name: str, tensor: Tensor) -> list:
    """TensorProto with raw_data (little-endian bytes, not copied)."""
    dims = b"".join(pb.varint_field(1, d) for d in tensor.shape)
    return pb.message(
        dims, pb.varint_field(2, _DATA_TYPES[tensor.dtype]), pb.string_field(8, name), pb.bytes_field(9, tensor.data)
    )


def attribute(name: str, value) -> list:
    """AttributeProto for an int, a float, a str or a list of ints."""
    if isinstance(value, int):  # bools too
        body = pb.varint_field(3, int(value)) + pb.varint_field(20, _ATTR_INT)
    elif isinstance(value, float):
        body = pb.float_field(2, value) + pb.varint_field(20, _ATTR_FLOAT)
    elif isinstance(value, str):
        body = pb.string_field(4, value) + pb.varint_field(20, _ATTR_STRING)
    else:
        body = b"".join(pb.varint_field(8, v) for v in value) + pb.varint_field(20, _ATTR_INTS)
    return [pb.string_field(1, name) + body]


def node(op_type: str, inputs: list[str], outputs: list[str], name: str = "", **attributes) -> list:
    """NodeProto in the default domain."""
    parts = [pb.string_field(1, i) for i in inputs] + [pb.string_field(2, o) for o in outputs]
    if name:
        parts.append(pb.string_field(3, name))
    parts.append(pb.string_field(4, op_type))
    for key in sorted(attributes):
        parts += pb.message_field(5, attribute(key, attributes[key]))
    return parts


def value_info(name: str, elem_type: int, dims: list) -> list:
    """ValueInfoProto of a tensor; int dims are fixed, str dims are named dynamic axes."""
    shape = b"".join(
        pb.key(1, pb.LEN) + pb.encode_varint(len(d)) + d
        for d in (pb.string_field(2, x) if isinstance(x, str) else pb.varint_field(1, x) for x in dims)
    )
    tensor_type = pb.varint_field(1, elem_type) + pb.key(2, pb.LEN) + pb.encode_varint(len(shape)) + shape
    type_proto = pb.key(1, pb.LEN) + pb.encode_varint(len(tensor_type)) + tensor_type
    return [pb.string_field(1, name) + pb.key(2, pb.LEN) + pb.encode_varint(len(type_proto)) + type_proto]


def graph(name: str, nodes: list, inputs: list, outputs: list, initializers: list = ()) -> list:
    """GraphProto from encoded nodes, input/output value infos and initializer tensors."""
    parts = []
    for item in nodes:
        parts += pb.message_field(_GRAPH_NODE, item)
    parts.append(pb.string_field(_GRAPH_NAME, name))
    for item in initializers:
        parts += pb.message_field(_GRAPH_INIT, item)
    for item in inputs:
        parts += pb.message_field(_GRAPH_INPUT, item)
    for item in outputs:
        parts += pb.message_field(_GRAPH_OUTPUT, item)
    return parts


def _metadata_entry(key: str, value: str) -> list:
    return pb.message_field(_MODEL_METADATA, [pb.string_field(1, key) + pb.string_field(2, value)])


def model(graph_chunks: list, opset: int = 17, ir_version: int = 8, producer: str = "tejas", metadata=None) -> list:
    """ModelProto around an encoded graph, importing the default domain at `opset`."""
    parts = [pb.varint_field(_MODEL_IR, ir_version), pb.string_field(_MODEL_PRODUCER, producer)]
    parts += pb.message_field(_MODEL_GRAPH, graph_chunks)
    parts += pb.message_field(_MODEL_OPSET, [pb.string_field(1, "") + pb.varint_field(2, opset)])
    for key, value in (metadata or {}).items():
        parts += _metadata_entry(key, value)
    return parts


def _read_value_info(view) -> tuple[str, int, list]:
    """(name, elem_type, dims) of a tensor ValueInfoProto; dims are ints, names, or None if unknown."""
    fields = pb.parse(view)
    name = pb.as_str(pb.first(fields, 1, b""))
    tensor = pb.parse(pb.first(pb.parse(pb.first(fields, 2, b"")), 1, b""))
    dims = []
    for dim in pb.every(pb.parse(pb.first(tensor, 2, b"")), 1):
        d = pb.parse(dim)
        value, param = pb.first(d, 1), pb.first(d, 2)
        dims.append(pb.as_int(value) if value is not None else pb.as_str(param) if param is not None else None)
    return name, pb.first(tensor, 1, 0), dims


def _graph_names(graph_fields) -> set:
    """Every tensor name the graph defines: inputs, initializers, node outputs."""
    names = set()
    for field in graph_fields:
        if field.number in (_GRAPH_INPUT, _GRAPH_INIT):
            names.add(pb.as_str(pb.first(pb.parse(field.value), 1 if field.number == _GRAPH_INPUT else 8, b"")))
        elif field.number == _GRAPH_NODE:
            names.update(pb.as_str(v) for v in pb.every(pb.parse(field.value), 2))
    return names


def classifier_onnx_chunks(backbone, weight: Tensor, bias: Tensor, metadata: dict[str, str]) -> list:
    """The backbone model (bytes) with the head appended, as chunks for protobuf.write_chunks.

    The backbone must output "features" [batch, F]; weight is [N, F], bias [N], both float32.
    """
    model_fields = pb.parse(backbone)
    graph_fields = pb.parse(pb.first(model_fields, _MODEL_GRAPH, b""))
    outputs = {info[0]: info for info in (_read_value_info(v) for v in pb.every(graph_fields, _GRAPH_OUTPUT))}
    if "features" not in outputs:
        raise ValueError(f"backbone has no 'features' output (outputs: {sorted(outputs)})")
    _, elem_type, dims = outputs["features"]
    n, f = weight.shape
    if elem_type != FLOAT or len(dims) != 2 or dims[1] not in (f, None):
        raise ValueError(
            f"backbone output 'features' is {dims} (type {elem_type}); the head expects [batch, {f}] float"
        )
    taken = _graph_names(graph_fields) & {HEAD_WEIGHT, HEAD_BIAS, LOGITS, PROBABILITIES}
    if taken:
        raise ValueError(f"backbone already defines {sorted(taken)}; it is not a plain image -> features backbone")
    batch = dims[0] if dims[0] is not None else "batch"

    parts = [
        f.raw for f in graph_fields if not (f.number == _GRAPH_OUTPUT and _read_value_info(f.value)[0] == "features")
    ]
    parts += pb.message_field(
        _GRAPH_NODE, node("Gemm", ["features", HEAD_WEIGHT, HEAD_BIAS], [LOGITS], "tejas_head", transB=1)
    )
    parts += pb.message_field(_GRAPH_NODE, node("Softmax", [LOGITS], [PROBABILITIES], "tejas_softmax", axis=1))
    parts += pb.message_field(_GRAPH_INIT, tensor_proto(HEAD_WEIGHT, weight))
    parts += pb.message_field(_GRAPH_INIT, tensor_proto(HEAD_BIAS, bias))
    parts += pb.message_field(_GRAPH_OUTPUT, value_info(PROBABILITIES, FLOAT, [batch, n]))
    parts += pb.message_field(_GRAPH_OUTPUT, value_info(LOGITS, FLOAT, [batch, n]))

    chunks = []
    for field in model_fields:
        if field.number == _MODEL_GRAPH:
            chunks += pb.message_field(_MODEL_GRAPH, parts)
        elif field.number == _MODEL_METADATA and _metadata_key(field.value) in metadata:
            continue  # replaced below
        else:
            chunks.append(field.raw)
    for key, value in metadata.items():
        chunks += _metadata_entry(key, value)
    return chunks


def _opsets(model_fields) -> dict:
    return {pb.as_str(pb.first(o, 1, b"")): pb.first(o, 2) for o in map(pb.parse, pb.every(model_fields, _MODEL_OPSET))}


def last_block_onnx_chunks(trunk, block, tensors: dict[str, Tensor], joint: str = "block_input") -> list:
    """A backbone (image -> features) as chunks: the trunk model (bytes, image -> `joint`) with the
    last block (bytes: `joint` + its parameters as graph inputs -> features) appended, the
    parameters becoming initializers with the values in `tensors`.
    """
    trunk_fields = pb.parse(trunk)
    block_fields = pb.parse(block)
    if _opsets(trunk_fields) != _opsets(block_fields):
        raise ValueError(
            f"trunk and last block import different opsets: {_opsets(trunk_fields)} vs {_opsets(block_fields)}"
        )
    trunk_graph = pb.parse(pb.first(trunk_fields, _MODEL_GRAPH, b""))
    block_graph = pb.parse(pb.first(block_fields, _MODEL_GRAPH, b""))
    if joint not in {_read_value_info(v)[0] for v in pb.every(trunk_graph, _GRAPH_OUTPUT)}:
        raise ValueError(f"the trunk has no '{joint}' output")
    inputs = {info[0]: info for info in (_read_value_info(v) for v in pb.every(block_graph, _GRAPH_INPUT))}
    if joint not in inputs:
        raise ValueError(f"the last block has no '{joint}' input")
    parameters = [name for name in inputs if name != joint]
    if set(parameters) != set(tensors):
        missing, unexpected = sorted(set(parameters) - set(tensors)), sorted(set(tensors) - set(parameters))
        raise ValueError(f"last-block parameters do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for name in parameters:
        dims = inputs[name][2]
        if list(dims) != list(tensors[name].shape):
            raise ValueError(f"last-block parameter {name} is {dims} in the graph, {list(tensors[name].shape)} given")
    clash = (_graph_names(trunk_graph) & _graph_names(block_graph)) - {joint}
    if clash:
        raise ValueError(f"trunk and last block both define {sorted(clash)[:3]}")

    parts = [f.raw for f in trunk_graph if not (f.number == _GRAPH_OUTPUT and _read_value_info(f.value)[0] == joint)]
    parts += [f.raw for f in block_graph if f.number == _GRAPH_NODE]
    for name in parameters:
        parts += pb.message_field(_GRAPH_INIT, tensor_proto(name, tensors[name]))
    parts += [f.raw for f in block_graph if f.number == _GRAPH_OUTPUT]
    chunks = []
    for field in trunk_fields:
        if field.number == _MODEL_GRAPH:
            chunks += pb.message_field(_MODEL_GRAPH, parts)
        else:
            chunks.append(field.raw)
    return chunks


def _metadata_key(view) -> str:
    return pb.as_str(pb.first(pb.parse(view), 1, b""))


def _read_model(folder: Path, manifest: dict, key: str) -> tuple[Path, bytes]:
    entry = manifest["models"].get(key)
    if entry is None:
        raise ArtifactError(f"{folder}: no {key} model; re-export with `tejas export --train last-block --force`")
    return _read_file(folder / entry["file"])


def _read_file(path: Path) -> tuple[Path, bytes]:
    try:
        return path, path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; re-export with `tejas export --force`") from None


def write_classifier_onnx(artifacts_dir, head_weight, head_bias, class_names, dest, last_block=None) -> dict:
    """Write backbone.onnx + the trained head (N = len(class_names) classes) as one model to `dest`;
    for text artifacts, the encoder that text.encoder names + the head (inputs input_ids, attention_mask).

    head_weight: N*F floats (row-major [N, F], list or array('f')); head_bias: N floats. With
    last_block ({tensor name: floats}, a model trained in last-block mode), the backbone is
    backbone_trunk.onnx + last_block.onnx holding those tensors. Outputs are "probabilities" and
    "logits" [batch, N]; metadata_props hold `class_names` (JSON list) and the artifacts'
    provenance (text: `tejas_text`, how to tokenize, instead of `tejas_input`). Returns the metadata as a dict.
    """
    folder = Path(artifacts_dir)
    manifest, digest, head = check_head(folder, head_weight, head_bias, class_names)
    text = None
    if is_text(manifest):
        if last_block:
            raise ArtifactError("a text model trains its head only; it has no last block to write")
        text = text_metadata(folder, manifest)
        path, backbone = _read_file(folder / text["encoder"])
    elif last_block:
        tensors = last_block_tensors(manifest, last_block)
        path, trunk = _read_model(folder, manifest, "backbone_trunk")
        block_path, block = _read_model(folder, manifest, "last_block")
        try:
            composed = io.BytesIO()
            pb.write_chunks(last_block_onnx_chunks(trunk, block, tensors), composed)
        except (ValueError, pb.DecodeError) as exc:
            raise ArtifactError(f"{block_path}: {exc}; re-export with `tejas export --force`") from None
        backbone = composed.getbuffer()
    else:
        path, backbone = _read_model(folder, manifest, "backbone")
    info = model_metadata(manifest, digest, head, last_block, text)
    metadata = {
        "class_names": json.dumps(head.class_names, ensure_ascii=False),
        "tejas_architecture": str(info["architecture"]),
        "tejas_num_classes": str(head.num_classes),
        "tejas_feature_size": str(info["feature_size"]),
    }
    if text is None:
        metadata["tejas_input"] = json.dumps(info["input"], sort_keys=True)
    else:
        metadata["tejas_modality"] = "text"
        metadata["tejas_text"] = json.dumps(text, sort_keys=True, ensure_ascii=False)
    metadata["tejas_manifest_sha256"] = digest
    metadata["tejas_trained"] = info["trained"]
    try:
        chunks = classifier_onnx_chunks(backbone, head.weight, head.bias, metadata)
    except (ValueError, pb.DecodeError) as exc:
        raise ArtifactError(f"{path}: {exc}; re-export with `tejas export --force`") from None
    with open(dest, "wb") as f:
        pb.write_chunks(chunks, f)
    return info


def describe_onnx(data) -> dict:
    """Summary of a model (bytes or path): IR, opsets, inputs/outputs, op types, initializers, metadata."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = Path(data).read_bytes()
    fields = pb.parse(data)
    graph_fields = pb.parse(pb.first(fields, _MODEL_GRAPH, b""))
    initializers = {}
    for view in pb.every(graph_fields, _GRAPH_INIT):
        t = pb.parse(view)
        initializers[pb.as_str(pb.first(t, 8, b""))] = {
            "dims": pb.every_int(t, 1),
            "data_type": pb.first(t, 2),
            "raw_data": pb.first(t, 9),
        }
    return {
        "ir_version": pb.first(fields, _MODEL_IR),
        "opsets": {
            pb.as_str(pb.first(o, 1, b"")): pb.first(o, 2) for o in map(pb.parse, pb.every(fields, _MODEL_OPSET))
        },
        "inputs": [_read_value_info(v) for v in pb.every(graph_fields, _GRAPH_INPUT)],
        "outputs": [_read_value_info(v) for v in pb.every(graph_fields, _GRAPH_OUTPUT)],
        "ops": [pb.as_str(pb.first(pb.parse(v), 4, b"")) for v in pb.every(graph_fields, _GRAPH_NODE)],
        "initializers": initializers,
        "metadata": {
            _metadata_key(v): pb.as_str(pb.first(pb.parse(v), 2, b"")) for v in pb.every(fields, _MODEL_METADATA)
        },
    }
