"""Helpers of the I/O tests: memory-map checks and bit-exact comparison."""

from __future__ import annotations

import mmap
import os

import numpy as np


def is_memory_mapped(arr: np.ndarray) -> bool:
    """True when ``arr`` is a view into a memory-mapped file (not a copy in memory)."""
    base = arr
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def in_file_mapping(arr: np.ndarray, path) -> bool:
    """True when the memory of ``arr`` lies in a mapping of the file ``path`` (Linux)."""
    target = os.path.realpath(path)
    address = arr.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == target:
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= address < high:
                    return True
    return False


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def resident_bytes() -> int:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_valid_files(folder) -> dict[str, str]:
    """Small valid files written by the real libraries, by kind: NumPy ``.npy``/``.npz``
    (stored and deflated), safetensors, ONNX, PyTorch (zip and legacy), Keras ``.h5`` and
    ``.keras``, and ``lowentropy.save`` of a format and of a network."""
    import json
    import zipfile

    import h5py
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import save_file

    import lowentropy as le
    from lowentropy.networks import Layer, Network

    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    K = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    W2 = rng.standard_normal((6, 3)).astype(np.float32)
    out = {kind: os.path.join(folder, name) for kind, name in [
        ("npy", "w.npy"), ("npz", "w.npz"), ("npz_deflated", "wc.npz"),
        ("safetensors", "w.safetensors"), ("onnx", "m.onnx"), ("torch", "m.pt"),
        ("torch_legacy", "old.pt"), ("keras_h5", "m.h5"), ("keras", "m.keras"),
        ("le_format", "f.npz"), ("le_network", "n.npz")]}
    np.save(out["npy"], W)
    np.savez(out["npz"], fc=W, fc_bias=b, conv=K)
    np.savez_compressed(out["npz_deflated"], fc=W, fc_bias=b, conv=K)
    save_file({"fc.weight": W, "fc.bias": b, "conv.weight": K}, out["safetensors"])
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
         helper.make_node("MatMul", ["h", "W2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "B"),
         numpy_helper.from_array(W2, "W2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              out["onnx"])
    sd = {"fc.weight": torch.from_numpy(W), "fc.bias": torch.from_numpy(b),
          "conv.weight": torch.from_numpy(K)}
    torch.save(sd, out["torch"])
    torch.save(sd, out["torch_legacy"], _use_new_zipfile_serialization=False)
    with h5py.File(out["keras_h5"], "w") as f:
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"dense", b"conv"]
        dense = mw.create_group("dense").create_group("dense")
        dense["kernel:0"], dense["bias:0"] = W.T.copy(), b
        mw.create_group("conv").create_group("conv")["kernel:0"] = K.transpose(2, 3, 1, 0).copy()
    weights = os.path.join(folder, "model.weights.h5")
    with h5py.File(weights, "w") as f:
        var = f.create_group("layers").create_group("dense").create_group("vars")
        var["0"], var["1"] = W.T.copy(), b
    with zipfile.ZipFile(out["keras"], "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        zf.write(weights, "model.weights.h5")
    le.save(out["le_format"], le.CSER.from_dense(np.round(W * 2) / 2))
    le.save(out["le_network"], Network("n", [Layer("fc", W, bias=b), Layer("conv", K, "conv", 4)]))
    return out


def check_loaded(obj) -> None:
    """A loaded object is usable: a format passes ``check`` and multiplies; every layer of
    a network has every weight readable (a mapping past the file would crash here) and its
    matrix multiplies a vector."""
    from lowentropy.formats import Format
    from lowentropy.networks import Network

    if isinstance(obj, Format):
        obj.check()
        assert (obj @ np.ones(obj.shape[1], obj.dtype)).shape == (obj.shape[0],)
        return
    assert isinstance(obj, Network), type(obj)
    for layer in obj.layers:
        matrix = layer.matrix
        assert isinstance(matrix, np.ndarray) and matrix.dtype.kind == "f"
        np.add.reduce(matrix.astype(np.float64), axis=None)  # touches every byte
        with np.errstate(all="ignore"):
            y = matrix @ np.ones(matrix.shape[1], matrix.dtype)
        assert y.shape == (matrix.shape[0],)
        if layer.bias is not None:
            np.asarray(layer.bias, np.float64).sum()
