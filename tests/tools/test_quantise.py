"""Weight-only uint8 (tejas_ml/export/quantise.py): uint8 weights in the file, float32 arithmetic at run time,
so a quantised model's results cannot depend on the CPU's integer kernels (issue 24 part 8: quantize_dynamic's
uint8 encoder gave min cosine 0.942 to float32 on an AVX2 CPU without VNNI, >= 0.95 on a VNNI one)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tejas_ml.export.quantise import INTEGER_KERNEL_OPS, integer_kernel_ops, quantise_weights_uint8

RNG = np.random.default_rng(0)
VOCAB, WIDTH = 2000, 16


def small_model(path):
    """ids -> Gather(vocabulary) -> MatMul -> Gemm(transB) -> Reshape to an image -> Conv; one MatMul weight
    shared by two MatMuls, one output channel all zeros, one small Gather table that stays float."""
    table = RNG.normal(size=(VOCAB, WIDTH)).astype(np.float32)
    positions = RNG.normal(size=(8, WIDTH)).astype(np.float32)
    w1 = RNG.normal(size=(WIDTH, WIDTH)).astype(np.float32)
    w1[:, 3] = 0  # an all-zero output channel
    w2 = (RNG.normal(size=(WIDTH, WIDTH)) * 0.1).astype(np.float32)  # Gemm transB: [out, in]
    conv = RNG.normal(size=(4, 1, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [(table, "table"), (positions, "positions"), (w1, "w1"), (w2, "w2"), (conv, "conv"),
                     (np.array([0], np.int64), "zero"), (np.array([-1, 1, 4, 4], np.int64), "image_shape")]
    ]  # fmt: skip
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["embedded"], axis=0),
        helper.make_node("Gather", ["positions", "zero"], ["position"], axis=0),
        helper.make_node("Add", ["embedded", "position"], ["x0"]),
        helper.make_node("MatMul", ["x0", "w1"], ["x1"]),
        helper.make_node("MatMul", ["x1", "w1"], ["x2"]),  # w1 again: quantised once
        helper.make_node("Gemm", ["x2", "w2"], ["x3"], transB=1),
        helper.make_node("Reshape", ["x3", "image_shape"], ["image"]),
        helper.make_node("Conv", ["image", "conv"], ["out"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 4, 4, 4])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"table": table, "positions": positions, "w1": w1, "w2": w2, "conv": conv}


def run(path, ids):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": ids})[0]


def test_weights_are_uint8_and_results_are_float32_arithmetic_on_dequantised_weights(tmp_path):
    weights = small_model(tmp_path / "f.onnx")
    counts = quantise_weights_uint8(tmp_path / "f.onnx", tmp_path / "q.onnx")
    assert counts == {"dequantized_weights": 3, "gather_tables": 1}  # w1 (shared), w2, conv; the vocabulary
    model = onnx.load(str(tmp_path / "q.onnx"))
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    float_tables = {n for n, a in stored.items() if a.dtype == np.float32 and a.size >= 64 and "_scale" not in n}
    assert float_tables == {"positions"}  # small table stays float; every big tensor is uint8 + scales
    for name, axis in (("w1", 1), ("w2", 0), ("conv", 0), ("table", 0)):
        q, scale, zp = stored[f"{name}_uint8"], stored[f"{name}_scale"].ravel(), stored[f"{name}_zero_point"].ravel()
        assert q.dtype == zp.dtype == np.uint8 and scale.size == weights[name].shape[axis]  # per output channel / row
        shape = [1] * q.ndim
        shape[axis] = -1
        back = (q.astype(np.float32) - zp.reshape(shape)) * scale.reshape(shape)
        step = np.broadcast_to(scale.reshape(shape), q.shape)
        assert np.all(np.abs(back - weights[name]) <= step / 2 + 1e-6)  # rounding to the nearest level
        weights[name] = back
    assert np.all(weights["w1"][:, 3] == 0)  # zero stays exactly zero

    ids = np.array([5, 1999, 0, 17], np.int64)
    x = weights["table"][ids] + weights["positions"][0]
    x = (x @ weights["w1"]) @ weights["w1"] @ weights["w2"].T
    image = x.reshape(-1, 1, 4, 4)
    expected = run(tmp_path / "f.onnx", ids)  # shape reference only
    got = run(tmp_path / "q.onnx", ids)
    assert got.shape == expected.shape == (4, 4, 4, 4)
    manual = np.zeros_like(got)
    padded = np.pad(image, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for b, o, i, j in np.ndindex(*manual.shape):
        manual[b, o, i, j] = np.sum(padded[b, 0, i : i + 3, j : j + 3] * weights["conv"][o, 0])
    np.testing.assert_allclose(got, manual, rtol=1e-4, atol=1e-4)
    assert not np.allclose(got, expected, rtol=1e-6, atol=0)  # really quantised


def test_a_quantised_model_runs_no_integer_kernel_even_after_onnxruntime_optimises_it(tmp_path):
    small_model(tmp_path / "f.onnx")
    quantise_weights_uint8(tmp_path / "f.onnx", tmp_path / "q.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert "DequantizeLinear" in ops and not ops & INTEGER_KERNEL_OPS
    assert integer_kernel_ops(tmp_path / "q.onnx") == set()


def test_integer_kernel_ops_catches_a_run_time_quantised_model(tmp_path):
    """What quantize_dynamic writes (the former uint8 variants) is flagged: its results depend on the CPU."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    small_model(tmp_path / "f.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "d.onnx"), weight_type=QuantType.QUInt8)
    found = integer_kernel_ops(tmp_path / "d.onnx")
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= found or "DynamicQuantizeMatMul" in found, found


def test_a_depthwise_convolution_stays_float32(tmp_path):
    """Grouped convolutions hold a few weights per channel: in uint8 they were all of MobileNetV2's drift."""
    weight = RNG.normal(size=(3, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=3)], "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3, 3])], [numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    counts = quantise_weights_uint8(tmp_path / "f.onnx", tmp_path / "q.onnx")
    assert counts == {"dequantized_weights": 0, "gather_tables": 0}
    (kept,) = onnx.load(str(tmp_path / "q.onnx")).graph.initializer
    np.testing.assert_array_equal(numpy_helper.to_array(kept), weight)
