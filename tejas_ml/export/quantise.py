"""Weight-only uint8 quantisation: the file stores uint8 weights, the model computes in float32.

onnxruntime's `quantize_dynamic` also quantises activations at run time and runs integer kernels (MatMulInteger,
ConvInteger, DynamicQuantizeLinear) whose results depend on the CPU: MLAS's u8u8 kernels on an AVX2 CPU without
AVX-512/VNNI are not those of a VNNI CPU, and all-MiniLM-L6-v2 dropped from min cosine 0.958 to 0.942 against
float32 there (issue 24 part 8; measured under `qemu-x86_64 -cpu Haswell`, docs/text.md). Activations quantised per
batch also make a text's features depend on its batch, and onnxruntime-web's wasm kernels round differently again.

Here each weight (but a grouped convolution's) is stored as uint8 with a float scale and a uint8 zero point per
output channel (per row for an embedding table) and dequantised in the graph: DequantizeLinear feeding the float
MatMul/Gemm/Conv, and for a large Gather table Gather on the uint8 rows, then (row - zero point) * scale for the
rows gathered only. The download is ~4x smaller; the arithmetic is float32's, so results are the same on every
CPU, in every batch and in the browser up to float rounding. onnxruntime keeps DequantizeLinear on constants
unfolded (its ConstantFolding skips it while QDQ handling is on, the default) and, with no quantised activation
beside it, fuses it into no integer kernel. onnxruntime 1.19.2 has no 8-bit weight-only mode
(matmul_4bits_quantizer writes 4 bits: the contrib MatMulNBits or int4 DequantizeLinear, opset 21), hence this
module. Standard ONNX ops only (DequantizeLinear's `axis`: opset >= 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# A Gather table with at least this many rows (a vocabulary) is stored as uint8 rows; position and token-type
# tables are small and stay float32.
GATHER_MIN_ROWS = 1024
# Ops whose presence means integer kernels run at inference time: their results depend on the CPU.
INTEGER_KERNEL_OPS = frozenset(
    {"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "QuantizeLinear",
     "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm", "QAttention", "MatMulNBits"}
)  # fmt: skip


def _uint8(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 weight, float32 scale, uint8 zero point), asymmetric over all axes but `axis`, 0 exactly
    representable (so zero weights stay zero)."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    low = np.minimum(weight.min(axis=others), 0.0)
    high = np.maximum(weight.max(axis=others), 0.0)
    scale = ((high - low) / 255.0).astype(np.float32)
    scale[scale == 0] = 1.0  # an all-zero channel
    zero_point = np.clip(np.round(-low / scale), 0, 255).astype(np.uint8)
    shape = [1] * weight.ndim
    shape[axis] = -1
    quantised = np.round(weight / scale.reshape(shape)) + zero_point.reshape(shape)
    return np.clip(quantised, 0, 255).astype(np.uint8), scale, zero_point


def _weight_axis(node, position: int, dims: int) -> int | None:
    """The output-channel axis of a node's weight input at `position`, or None when it is not a weight."""
    if node.op_type == "MatMul" and position == 1 and dims == 2:
        return 1  # [in, out]
    if node.op_type == "Gemm" and position == 1 and dims == 2:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "Conv" and position == 1 and dims >= 3:
        # A grouped (depthwise) convolution stays float32: a few weights per channel, each rounding weighs; in
        # MobileNetV2 they are 3% of the weights and all of the drift (min cosine to float32 on noise 0.89 with
        # them in uint8, 0.9987 without; on the check photos 0.9845 / 0.9988).
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        return 0 if groups == 1 else None  # [out, in / groups, *kernel]
    return None


def quantise_weights_uint8(source: Path, target: Path) -> dict:
    """Write `source` to `target` with its MatMul/Gemm/Conv weights and large Gather tables stored as uint8
    (module docstring); return counts of what was quantised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, position))

    def float_initializer(name: str):
        tensor = initializers.get(name)
        return tensor if tensor is not None and tensor.data_type == TensorProto.FLOAT else None

    counts = {"dequantized_weights": 0, "gather_tables": 0}
    nodes = []
    done: set[str] = set()
    for node in graph.node:
        for name in node.input:
            tensor = float_initializer(name)
            if tensor is None or name in done:
                continue
            uses = consumers[name]
            axes = {_weight_axis(user, pos, len(tensor.dims)) for user, pos in uses}
            if len(axes) == 1 and None not in axes:
                # every user takes it as a weight on the same axis: DequantizeLinear gives the float tensor back
                axis = axes.pop()
                quantised, scale, zero_point = _uint8(numpy_helper.to_array(tensor), axis)
                graph.initializer.remove(tensor)
                graph.initializer.extend(
                    [numpy_helper.from_array(quantised, f"{name}_uint8"),
                     numpy_helper.from_array(scale, f"{name}_scale"),
                     numpy_helper.from_array(zero_point, f"{name}_zero_point")]
                )  # fmt: skip
                nodes.append(
                    helper.make_node(
                        "DequantizeLinear", [f"{name}_uint8", f"{name}_scale", f"{name}_zero_point"], [name],
                        name=f"{name}_dequantize", axis=axis,
                    )
                )  # fmt: skip
                done.add(name)
                counts["dequantized_weights"] += 1
        if (
            node.op_type == "Gather"
            and float_initializer(node.input[0]) is not None
            and len(initializers[node.input[0]].dims) == 2
            and initializers[node.input[0]].dims[0] >= GATHER_MIN_ROWS
            and next((a.i for a in node.attribute if a.name == "axis"), 0) == 0
            and len(consumers[node.input[0]]) == 1
        ):
            # Gather the uint8 rows (and each row's scale and zero point), dequantise only those
            name, indices, output = node.input[0], node.input[1], node.output[0]
            quantised, scale, zero_point = _uint8(numpy_helper.to_array(initializers[name]), 0)
            graph.initializer.remove(initializers[name])
            graph.initializer.extend(
                [numpy_helper.from_array(quantised, f"{name}_uint8"),
                 numpy_helper.from_array(scale.reshape(-1, 1), f"{name}_scale"),
                 numpy_helper.from_array(zero_point.reshape(-1, 1), f"{name}_zero_point")]
            )  # fmt: skip
            p = f"{name}_rows"
            nodes += [
                helper.make_node("Gather", [f"{name}_uint8", indices], [f"{p}_uint8"], name=f"{p}_gather", axis=0),
                helper.make_node("Gather", [f"{name}_zero_point", indices], [f"{p}_zp"], name=f"{p}_zp", axis=0),
                helper.make_node("Gather", [f"{name}_scale", indices], [f"{p}_scale"], name=f"{p}_scale", axis=0),
                helper.make_node("Cast", [f"{p}_uint8"], [f"{p}_float"], name=f"{p}_cast", to=TensorProto.FLOAT),
                helper.make_node("Cast", [f"{p}_zp"], [f"{p}_zp_float"], name=f"{p}_cast_zp", to=TensorProto.FLOAT),
                helper.make_node("Sub", [f"{p}_float", f"{p}_zp_float"], [f"{p}_centred"], name=f"{p}_centre"),
                helper.make_node("Mul", [f"{p}_centred", f"{p}_scale"], [output], name=f"{p}_dequantize"),
            ]
            counts["gather_tables"] += 1
            continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return counts


def integer_kernel_ops(path: Path) -> set[str]:
    """Integer-kernel op types in the ONNX file at `path` and in onnxruntime's optimised graph of it (what the
    CPU actually runs): empty for a model whose results do not depend on the CPU's integer kernels."""
    import tempfile

    import onnx
    import onnxruntime as ort

    found = {n.op_type for n in onnx.load(str(path)).graph.node} & INTEGER_KERNEL_OPS
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimised = onnx.load(options.optimized_model_filepath)
    return found | ({n.op_type for n in optimised.graph.node} & INTEGER_KERNEL_OPS)
