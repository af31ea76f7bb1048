"""Shared tests of the stdlib model writers (protobuf, safetensors, .pt, classifier ONNX); CPython and Pyodide.

They build a tiny artifacts folder themselves (ONNX backbone written with tejas.protobuf, a manifest,
a safetensors state dict), so they need no torch. tests/pycore_cpython/test_writers_cpython.py loads
what `test_write_tiny_models` and `test_resnet18_sized_writes_are_fast` leave in out_dir with torch
and onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import time
import zipfile
from array import array
from pathlib import Path

from tejas import protobuf as pb
from tejas.artifacts import ArtifactError
from tejas.model_export import floats, read_pt_metadata, write_classifier_pt
from tejas.onnx_writer import FLOAT, describe_onnx, graph, model, node, tensor_proto, value_info, write_classifier_onnx
from tejas.safetensors import SafetensorsError, Tensor, float32_tensor, read_safetensors, write_safetensors
from tejas.torch_writer import ALIGNMENT, pickle_state_dict, write_state_dict_pt

from .support import raises

TINY_FEATURES = 5
TINY_CLASSES = ["cat", "dog", "ünïcode bird"]
# Deterministic, exactly representable in float32 (so every writer's output is predictable).
TINY_WEIGHT = [((i * 7) % 11 - 5) / 8 for i in range(len(TINY_CLASSES) * TINY_FEATURES)]
TINY_BIAS = [0.25, -0.5, 0.125]


def tiny_state() -> dict[str, Tensor]:
    """A small torchvision-like state dict: conv, batch norm (with num_batches_tracked), ImageNet-ish fc."""
    return {
        "conv.weight": float32_tensor([i / 16 for i in range(TINY_FEATURES * 3)], (TINY_FEATURES, 3, 1, 1)),
        "bn.weight": float32_tensor([1.0] * TINY_FEATURES, (TINY_FEATURES,)),
        "bn.running_mean": float32_tensor([-0.5, 0.0, 0.5, 1.0, 1.5], (TINY_FEATURES,)),
        "bn.num_batches_tracked": Tensor("I64", (), struct.pack("<q", 12345)),
        "fc.weight": float32_tensor([0.5] * 10 * TINY_FEATURES, (10, TINY_FEATURES)),
        "fc.bias": float32_tensor([0.0] * 10, (10,)),
    }


def tiny_backbone() -> list:
    """image [batch,3,4,4] -> ReduceMean over H,W -> MatMul [3,F] -> features [batch,F] (opset 17, IR 8)."""
    projection = float32_tensor([(i % 4) / 4 - 0.3 for i in range(3 * TINY_FEATURES)], (3, TINY_FEATURES))
    nodes = [
        node("ReduceMean", ["image"], ["pooled"], "pool", axes=[2, 3], keepdims=0),
        node("MatMul", ["pooled", "projection"], ["features"], "project"),
    ]
    body = graph(
        "tiny_backbone",
        nodes,
        [value_info("image", FLOAT, ["batch", 3, 4, 4])],
        [value_info("features", FLOAT, ["batch", TINY_FEATURES])],
        [tensor_proto("projection", projection)],
    )
    return model(body, opset=17, ir_version=8, producer="tejas-tests", metadata={"origin": "tiny"})


def make_tiny_artifacts(folder: Path) -> Path:
    """An artifacts folder with what the writers read: manifest.json, backbone.onnx, backbone_state."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "backbone.onnx", "wb") as f:
        pb.write_chunks(tiny_backbone(), f)
    write_safetensors(tiny_state(), folder / "backbone_state.safetensors")
    manifest = {
        "schema_version": 1,
        "name": "tiny",
        "architecture": "tiny",
        "feature_size": TINY_FEATURES,
        "input": {"name": "image", "size": [4, 4]},
        "models": {"backbone": {"file": "backbone.onnx"}},
        "state_dict": {
            "file": "backbone_state.safetensors",
            "format": "safetensors",
            "classifier": {"weight": "fc.weight", "bias": "fc.bias"},
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


class _StubUnpickler(pickle.Unpickler):
    """Unpickles a .pt's data.pkl without torch: tensors become (dtype, storage key, numel, shape, stride)."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, shape, stride, requires_grad, hooks: (*storage, offset, shape, stride)
        if module == "torch" and name.endswith("Storage"):
            return name
        raise AssertionError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid
        assert (kind, location) == ("storage", "cpu"), pid
        return storage_type, key, numel


def read_pt(path) -> tuple[dict, dict]:
    """(entries of data.pkl as tuples, raw bytes of each storage record) of a .pt file."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        state = _StubUnpickler(archive.open("archive/data.pkl")).load()
        storages = {n.rsplit("/", 1)[1]: archive.read(n) for n in archive.namelist() if "/data/" in n}
        assert archive.read("archive/version") == b"3\n"
        assert archive.read("archive/byteorder") == b"little"
    return state, storages


def test_varints_round_trip():
    for value in (0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63), -42):
        encoded = pb.encode_varint(value)
        decoded, end = pb.read_varint(encoded, 0)
        assert end == len(encoded) and pb.as_int(decoded) == value, value
    assert pb.encode_varint(300) == b"\xac\x02"
    assert len(pb.encode_varint(-1)) == 10  # int64 negatives take ten bytes on the wire
    with raises(pb.DecodeError, match="truncated"):
        pb.read_varint(b"\x80\x80", 0)


def test_parse_keeps_payloads_as_views_and_rejects_garbage():
    payload = bytes(range(200))
    message = pb.message(
        pb.varint_field(1, 150), pb.bytes_field(2, payload), pb.float_field(3, 1.5), pb.key(4, pb.FIXED64) + bytes(8)
    )
    data = b"".join(bytes(c) for c in message)
    fields = pb.parse(data)
    assert [(f.number, f.wire) for f in fields] == [(1, 0), (2, 2), (3, 5), (4, 1)]
    assert fields[0].value == 150 and isinstance(fields[1].value, memoryview)
    assert bytes(fields[1].value) == payload
    assert struct.unpack("<f", fields[2].value.to_bytes(4, "little"))[0] == 1.5
    assert b"".join(bytes(f.raw) for f in fields) == data  # copied through unchanged
    assert pb.chunks_size(message) == len(data)
    with raises(pb.DecodeError, match="200 bytes announced"):
        pb.parse(data[:50])
    with raises(pb.DecodeError, match="wire type 3"):
        pb.parse(b"\x0b")
    packed = pb.parse(pb.key(1, pb.LEN) + b"\x03\x01\x02\x03" + pb.varint_field(1, 4))
    assert pb.every_int(packed, 1) == [1, 2, 3, 4]


def test_safetensors_round_trip_and_errors(tmp_path):
    state = tiny_state()
    path = tmp_path / "s.safetensors"
    write_safetensors(state, path, {"format": "pt"})
    raw = path.read_bytes()
    (size,) = struct.unpack_from("<Q", raw)
    assert size % 8 == 0 and json.loads(raw[8 : 8 + size])["__metadata__"] == {"format": "pt"}
    tensors, metadata = read_safetensors(path)
    assert metadata == {"format": "pt"} and list(tensors) == list(state)
    for name, tensor in state.items():
        assert tensors[name].dtype == tensor.dtype and tensors[name].shape == tensor.shape
        assert bytes(tensors[name].data) == bytes(tensor.data)
    (tmp_path / "cut.safetensors").write_bytes(raw[:-4])
    with raises(SafetensorsError, match="cut.safetensors: tensor 'fc.bias' has data_offsets"):
        read_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 4) + b"{no}")
    with raises(SafetensorsError, match="junk.safetensors: header is not valid JSON"):
        read_safetensors(tmp_path / "junk.safetensors")


def test_pt_has_torch_layout(tmp_path):
    state = tiny_state()
    path = tmp_path / "state.pt"
    write_state_dict_pt(state, path, {"extra/note.json": b"{}"})
    entries, storages = read_pt(path)
    assert list(entries) == list(state)
    assert entries["conv.weight"] == ("FloatStorage", "0", 15, 0, (5, 3, 1, 1), (3, 1, 1, 1))
    assert entries["bn.num_batches_tracked"] == ("LongStorage", "3", 1, 0, (), ())
    for index, tensor in enumerate(state.values()):
        assert storages[str(index)] == bytes(tensor.data)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name_size, extra_size = struct.unpack_from("<HH", raw, info.header_offset + 26)
            assert (info.header_offset + 30 + name_size + extra_size) % ALIGNMENT == 0, info.filename
        names = archive.namelist()
    assert names[:4] == [
        "archive/data.pkl",
        "archive/.format_version",
        "archive/.storage_alignment",
        "archive/byteorder",
    ]
    assert names[-2:] == ["archive/version", "archive/extra/note.json"]
    assert pickle_state_dict(state) == pickle_state_dict(dict(state))  # deterministic


def test_classifier_onnx_structure(tmp_path):
    artifacts = make_tiny_artifacts(tmp_path / "tiny")
    dest = tmp_path / "classifier.onnx"
    info = write_classifier_onnx(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, dest)
    assert info["num_classes"] == 3 and info["class_names"] == TINY_CLASSES
    backbone, written = describe_onnx(artifacts / "backbone.onnx"), describe_onnx(dest)
    assert (written["ir_version"], written["opsets"]) == (8, {"": 17}) == (backbone["ir_version"], backbone["opsets"])
    assert written["inputs"] == backbone["inputs"] == [("image", FLOAT, ["batch", 3, 4, 4])]
    assert written["outputs"] == [("probabilities", FLOAT, ["batch", 3]), ("logits", FLOAT, ["batch", 3])]
    assert written["ops"] == ["ReduceMean", "MatMul", "Gemm", "Softmax"]
    inits = written["initializers"]
    assert bytes(inits["projection"]["raw_data"]) == bytes(backbone["initializers"]["projection"]["raw_data"])
    assert inits["tejas_head.weight"]["dims"] == [3, TINY_FEATURES] and inits["tejas_head.bias"]["dims"] == [3]
    assert list(floats(Tensor("F32", (15,), inits["tejas_head.weight"]["raw_data"]))) == TINY_WEIGHT
    assert list(floats(Tensor("F32", (3,), inits["tejas_head.bias"]["raw_data"]))) == TINY_BIAS
    meta = written["metadata"]
    assert json.loads(meta["class_names"]) == TINY_CLASSES and meta["origin"] == "tiny"
    assert meta["tejas_manifest_sha256"] == hashlib.sha256((artifacts / "manifest.json").read_bytes()).hexdigest()
    # Writing from an array('f') gives the same bytes; a second head replaces the first one's metadata.
    again = tmp_path / "again.onnx"
    write_classifier_onnx(artifacts, array("f", TINY_WEIGHT), array("f", TINY_BIAS), TINY_CLASSES, again)
    assert again.read_bytes() == dest.read_bytes()


def test_classifier_pt_replaces_only_the_classifier(tmp_path):
    artifacts = make_tiny_artifacts(tmp_path / "tiny")
    dest = tmp_path / "classifier.pt"
    write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, dest)
    entries, storages = read_pt(dest)
    state = tiny_state()
    assert list(entries) == list(state)
    assert entries["fc.weight"][2:] == (15, 0, (3, TINY_FEATURES), (TINY_FEATURES, 1))
    assert entries["fc.bias"][2:] == (3, 0, (3,), (1,))
    by_name = {name: storages[entry[1]] for name, entry in entries.items()}
    assert (
        by_name["fc.weight"] == array("f", TINY_WEIGHT).tobytes()
        and by_name["fc.bias"] == array("f", TINY_BIAS).tobytes()
    )
    for name in ("conv.weight", "bn.running_mean", "bn.num_batches_tracked"):
        assert by_name[name] == bytes(state[name].data), name
    assert read_pt_metadata(dest)["class_names"] == TINY_CLASSES


def test_writers_name_the_file_and_the_fix(tmp_path):
    artifacts = make_tiny_artifacts(tmp_path / "tiny")
    out = tmp_path / "x"
    with raises(ValueError, match="head weight has 14 values; 3 classes x 5 features need 15"):
        write_classifier_onnx(artifacts, TINY_WEIGHT[:-1], TINY_BIAS, TINY_CLASSES, out)
    with raises(ValueError, match="head bias has 2 values"):
        write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS[:2], TINY_CLASSES, out)
    with raises(ValueError, match="distinct"):
        write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, ["a", "a", "b"], out)
    with raises(ValueError, match="at least 2"):
        write_classifier_onnx(artifacts, TINY_WEIGHT[:5], TINY_BIAS[:1], ["a"], out)
    (artifacts / "backbone_state.safetensors").unlink()
    with raises(ArtifactError, match=r"backbone_state.safetensors: missing; re-export with `tejas export --force`"):
        write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    del manifest["state_dict"]
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    with raises(ArtifactError, match=r"manifest.json: no backbone state dict recorded; re-export"):
        write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out)
    (artifacts / "backbone.onnx").write_bytes(b"\x0a\xff")
    with raises(ArtifactError, match=r"backbone.onnx: .*re-export with `tejas export --force`"):
        write_classifier_onnx(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out)
    with raises(ArtifactError, match="manifest.json: missing"):
        write_classifier_onnx(tmp_path / "nowhere", TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out)


def test_write_tiny_models(out_dir):
    """Files that the CPython side loads with onnxruntime and torch (and compares byte for byte)."""
    artifacts = make_tiny_artifacts(out_dir / "artifacts")
    write_classifier_onnx(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out_dir / "tiny.onnx")
    write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out_dir / "tiny.pt")
    write_state_dict_pt(tiny_state(), out_dir / "tiny_state.pt")
    first = (out_dir / "tiny.pt").read_bytes()
    write_classifier_pt(artifacts, TINY_WEIGHT, TINY_BIAS, TINY_CLASSES, out_dir / "tiny.pt")
    assert (out_dir / "tiny.pt").read_bytes() == first


def resnet18_sized_artifacts(folder: Path) -> Path:
    """Artifacts of ResNet18's size (backbone.onnx 44.7 MB, a 122-tensor 46.7 MB state dict), all zeros."""
    make_tiny_artifacts(folder)
    # 60 conv-sized initializers of 186,200 floats = 44.7 MB, like ResNet18's backbone.onnx
    inits = [tensor_proto(f"w{i}", Tensor("F32", (186_200,), bytes(4 * 186_200))) for i in range(60)]
    inits.append(tensor_proto("projection", float32_tensor([0.0] * 3 * 512, (3, 512))))
    nodes = [
        node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
        node("MatMul", ["pooled", "projection"], ["features"]),
    ]
    body = graph(
        "g",
        nodes,
        [value_info("image", FLOAT, ["batch", 3, 4, 4])],
        [value_info("features", FLOAT, ["batch", 512])],
        inits,
    )
    with open(folder / "backbone.onnx", "wb") as f:
        pb.write_chunks(model(body), f)
    state = {f"t{i}": Tensor("F32", (93_000,), bytes(4 * 93_000)) for i in range(120)}
    state["fc.weight"], state["fc.bias"] = (
        Tensor("F32", (1000, 512), bytes(2048000)),
        Tensor("F32", (1000,), bytes(4000)),
    )
    write_safetensors(state, folder / "backbone_state.safetensors")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["feature_size"] = 512
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_resnet18_sized_writes(tmp_path, out_dir):
    """ResNet18-sized .pt and .onnx files get written whole (speed: bench/pycore.py; timings -> out_dir)."""
    artifacts = resnet18_sized_artifacts(tmp_path / "big")
    weight, bias = array("f", [0.001] * 10 * 512), array("f", [0.0] * 10)
    classes = [f"class {i}" for i in range(10)]
    timings = {}
    for kind, write in (("onnx", write_classifier_onnx), ("pt", write_classifier_pt)):
        started = time.perf_counter()
        write(artifacts, weight, bias, classes, tmp_path / f"big.{kind}")
        timings[kind] = time.perf_counter() - started
        timings[f"{kind}_bytes"] = (tmp_path / f"big.{kind}").stat().st_size
    (out_dir / "timings.json").write_text(json.dumps(timings))
    assert timings["onnx_bytes"] > 44_000_000 and timings["pt_bytes"] > 44_000_000
