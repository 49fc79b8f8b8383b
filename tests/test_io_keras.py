"""Keras weights written with h5py in Keras' own layouts (Keras 2 .h5, Keras 3 .keras)."""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest
from io_helpers import in_file_mapping, same_bits

from lowentropy.io import detect_format, load_network

h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(0)
CONV = RNG.standard_normal((3, 3, 2, 4)).astype(np.float32)   # (kh, kw, C, F)
CONV_B = RNG.standard_normal(4).astype(np.float32)
DENSE = RNG.standard_normal((16, 5)).astype(np.float32)       # (in, out)
DENSE_B = RNG.standard_normal(5).astype(np.float32)
DENSE2 = RNG.standard_normal((5, 3)).astype(np.float64)
EMBED = RNG.standard_normal((10, 4)).astype(np.float32)       # (tokens, dim)
CONV1D = RNG.standard_normal((5, 4, 6)).astype(np.float32)    # (k, C, F)


def _check(net, names):
    """``names``: the layers holding CONV, DENSE, DENSE2, EMBED, CONV1D."""
    assert sorted(net.names) == sorted(names)
    conv, dense, dense2, embed, conv1d = (net[n] for n in names)
    assert conv.kind == "conv" and same_bits(conv.weight, CONV.transpose(3, 2, 0, 1))
    assert conv.matrix.shape == (4, 18) and same_bits(conv.bias, CONV_B)
    assert dense.kind == "fc" and same_bits(dense.weight, DENSE.T)
    assert dense.matrix.shape == (5, 16) and same_bits(dense.bias, DENSE_B)
    assert dense2.kind == "fc" and same_bits(dense2.weight, DENSE2.T) and dense2.bias is None
    assert embed.kind == "embedding" and same_bits(embed.weight, EMBED)
    assert conv1d.kind == "conv" and same_bits(conv1d.weight, CONV1D.transpose(2, 1, 0))


def _keras2(path, *, compression=None):
    with h5py.File(path, "w") as f:
        mw = f.create_group("model_weights")
        order = ["conv2d", "dense", "dense_1", "embedding", "conv1d"]
        mw.attrs["layer_names"] = [n.encode() for n in order]
        weights = {"conv2d": {"kernel:0": CONV, "bias:0": CONV_B},
                   "dense": {"kernel:0": DENSE, "bias:0": DENSE_B},
                   "dense_1": {"kernel:0": DENSE2},
                   "embedding": {"embeddings:0": EMBED},
                   "conv1d": {"kernel:0": CONV1D}}
        for layer in order:
            inner = mw.create_group(layer).create_group(layer)
            for key, value in weights[layer].items():
                inner.create_dataset(key, data=value, compression=compression)
        slots = f.create_group("optimizer_weights").create_group("Adam")
        slots["dense/kernel/m:0"] = np.zeros_like(DENSE)


def test_keras2_h5(tmp_path):
    _keras2(tmp_path / "model.h5")
    assert detect_format(tmp_path / "model.h5") == "keras"
    net = load_network(tmp_path / "model.h5")
    assert net.names == ["conv2d/kernel", "dense/kernel", "dense_1/kernel",  # layer_names
                         "embedding/embeddings", "conv1d/kernel"]
    _check(net, ["conv2d/kernel", "dense/kernel", "dense_1/kernel", "embedding/embeddings",
                 "conv1d/kernel"])
    assert in_file_mapping(net["dense/kernel"].weight, tmp_path / "model.h5")


def test_compressed_datasets_are_read_through_h5py(tmp_path):
    _keras2(tmp_path / "gz.h5", compression="gzip")
    net = load_network(tmp_path / "gz.h5")
    _check(net, ["conv2d/kernel", "dense/kernel", "dense_1/kernel", "embedding/embeddings",
                 "conv1d/kernel"])
    assert not in_file_mapping(net["dense/kernel"].weight, tmp_path / "gz.h5")


def _keras3_weights(path):
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        for name, values in [("conv2d", [CONV, CONV_B]), ("dense_2", [DENSE, DENSE_B]),
                             ("dense_10", [DENSE2]), ("embedding", [EMBED]),
                             ("conv1d", [CONV1D]),
                             ("batch_normalization", [np.ones(4, np.float32)] * 4)]:
            group = layers.create_group(name).create_group("vars")
            for i, value in enumerate(values):
                group[str(i)] = value
        f.create_group("vars")
        opt = f.create_group("optimizer").create_group("vars")
        opt["0"] = np.zeros((), np.int64)
        opt["1"] = np.zeros_like(DENSE)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_keras3_archive(tmp_path, compression):
    _keras3_weights(tmp_path / "model.weights.h5")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        zf.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        zf.write(tmp_path / "model.weights.h5", "model.weights.h5")
    assert detect_format(path) == "keras"
    net = load_network(path)
    assert net.name == "model"
    # natural order: conv1d, conv2d, dense_2, dense_10, embedding
    names = ["conv2d/0", "dense_2/0", "dense_10/0", "embedding/0", "conv1d/0"]
    assert net.names == ["conv1d/0", "conv2d/0", "dense_2/0", "dense_10/0", "embedding/0"]
    _check(net, names)
    assert in_file_mapping(net["dense_2/0"].weight, path) == (compression == zipfile.ZIP_STORED)
    plain = load_network(tmp_path / "model.weights.h5")
    assert plain.names == net.names


def test_damaged_keras_files(tmp_path):
    _keras2(tmp_path / "m.h5")
    data = (tmp_path / "m.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.h5: not a readable Keras HDF5 file"):
        load_network(tmp_path / "cut.h5")
    (tmp_path / "noise.keras").write_bytes(b"not a zip, not hdf5 either")
    with pytest.raises(ValueError, match="noise.keras: not a readable Keras HDF5 file"):
        load_network(tmp_path / "noise.keras")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["step"] = np.arange(3)
    with pytest.raises(ValueError, match="no floating-point tensor"):
        load_network(tmp_path / "empty.h5")


def test_missing_h5py_names_the_package(tmp_path, monkeypatch):
    _keras2(tmp_path / "m.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        load_network(tmp_path / "m.h5")
