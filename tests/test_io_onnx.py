"""ONNX models built with onnx.helper: Gemm, MatMul and Conv weights; damaged files."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from io_helpers import same_bits

from lowentropy.io import detect_format, load_network

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(0)
K = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)   # Conv: (F, C, kh, kw)
KB = RNG.standard_normal(4).astype(np.float32)
W1 = RNG.standard_normal((8, 12)).astype(np.float32)       # Gemm transB=1: out x in
B1 = RNG.standard_normal(8).astype(np.float32)
W2 = RNG.standard_normal((8, 5)).astype(np.float32)        # MatMul: in x out
W3 = RNG.standard_normal((5, 6)).astype(np.float64)        # Gemm transB=0: in x out
SCALE = RNG.standard_normal((1, 6)).astype(np.float64)     # feeds Mul: skipped
STEPS = np.arange(6, dtype=np.int64).reshape(2, 3)         # feeds Reshape-like op: skipped


def _model(external: bool = False):
    nodes = [
        helper.make_node("Conv", ["img", "K", "KB"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], transB=1),
        helper.make_node("MatMul", ["h", "W2"], ["y"]),
        helper.make_node("Cast", ["y"], ["y64"], to=TensorProto.DOUBLE),
        helper.make_node("Gemm", ["y64", "W3"], ["z"]),
        helper.make_node("Mul", ["z", "SCALE"], ["out"]),
        helper.make_node("Identity", ["STEPS"], ["steps"]),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("K", K), ("KB", KB), ("W1", W1), ("B1", B1), ("W2", W2), ("W3", W3),
              ("SCALE", SCALE), ("STEPS", STEPS)]]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 10, 10]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 7, 12])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 8, 8]),
         helper.make_tensor_value_info("out", TensorProto.DOUBLE, None),
         helper.make_tensor_value_info("steps", TensorProto.INT64, [2, 3])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _fixed_model():
    """Gemm needs 2-D input: the same graph with x of shape (batch, 12)."""
    model = _model()
    dims = model.graph.input[1].type.tensor_type.shape.dim
    del dims[1]
    model.graph.output[1].type.tensor_type.shape.Clear()
    return model


def test_weights_of_gemm_matmul_and_conv(tmp_path):
    model = _fixed_model()
    onnx.checker.check_model(model)
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    assert detect_format(path) == "onnx"
    net = load_network(path)
    assert net.name == "tiny" and net.names == ["K", "W1", "W2", "W3"]
    assert [layer.kind for layer in net] == ["conv", "fc", "fc", "fc"]
    assert same_bits(net["K"].weight, K) and same_bits(net["K"].bias, KB)
    assert same_bits(net["W1"].weight, W1) and same_bits(net["W1"].bias, B1)
    assert same_bits(net["W2"].weight, W2.T) and net["W2"].bias is None
    assert same_bits(net["W3"].weight, W3.T)
    assert [layer.matrix.shape for layer in net] == [(4, 27), (8, 12), (5, 8), (6, 5)]
    assert net["K"].uses_per_inference == 8 * 8  # output positions from the shapes
    assert net["W1"].uses_per_inference == 1


def test_matmul_uses_count_tokens(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    W = RNG.standard_normal((12, 4)).astype(np.float32)
    graph = helper.make_graph(
        nodes, "proj", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7, 4])],
        [numpy_helper.from_array(W, "W")])
    onnx.save(helper.make_model(graph), tmp_path / "proj.onnx")
    layer = load_network(tmp_path / "proj.onnx")["W"]
    assert layer.uses_per_inference == 7 and same_bits(layer.weight, W.T)


def test_external_data_only_from_the_model_folder(tmp_path):
    model = _fixed_model()
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    net = load_network(tmp_path / "ext.onnx")
    assert same_bits(net["W1"].weight, W1) and same_bits(net["K"].weight, K)

    outside = tmp_path / "secret"
    outside.mkdir()
    (tmp_path / "ext.data").rename(outside / "ext.data")
    sub = tmp_path / "model"
    sub.mkdir()
    loaded = onnx.load(tmp_path / "ext.onnx", load_external_data=False)
    for tensor in loaded.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret/ext.data"
    onnx.save(loaded, sub / "escape.onnx")
    with pytest.raises(ValueError, match="outside the model's folder"):
        load_network(sub / "escape.onnx")


def test_truncated_and_garbage_files_are_refused(tmp_path):
    onnx.save(_fixed_model(), tmp_path / "ok.onnx")
    data = (tmp_path / "ok.onnx").read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.onnx: (not a readable|invalid) ONNX"):
            load_network(tmp_path / "cut.onnx")
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match="noise.onnx"):
        load_network(tmp_path / "noise.onnx")


def test_a_graph_without_weight_nodes_has_no_layers(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "B"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(np.ones((2, 2), np.float32), "B")])
    onnx.save(helper.make_model(graph), tmp_path / "add.onnx")
    with pytest.raises(ValueError, match="no floating-point tensor"):
        load_network(tmp_path / "add.onnx")


def test_missing_onnx_names_the_package(tmp_path, monkeypatch):
    onnx.save(_fixed_model(), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx"):
        load_network(tmp_path / "m.onnx")


def test_bfloat16_initializers_become_float32(tmp_path):
    values = np.array([[1.0, -2.5, 0.5], [3.0, 0.0, -0.125]], np.float32)  # exact in bf16
    W = helper.make_tensor("W", TensorProto.BFLOAT16, [3, 2], values.T.ravel())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "bf",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 2])], [W])
    onnx.save(helper.make_model(graph), tmp_path / "bf.onnx")
    layer = load_network(tmp_path / "bf.onnx")["W"]
    assert layer.weight.dtype == np.float32 and same_bits(np.ascontiguousarray(layer.weight),
                                                          values)
