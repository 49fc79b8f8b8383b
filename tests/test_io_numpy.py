"""load_network on NumPy files, format detection by content, and the embedded names."""

from __future__ import annotations

import os
import sys
import tempfile
import types
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from io_helpers import is_memory_mapped, same_bits

from lowentropy.io import detect_format, load_network
from lowentropy.networks import Network

# --- .npz ----------------------------------------------------------------------------------

shapes = st.one_of(hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                   hnp.array_shapes(min_dims=4, max_dims=4, max_side=3))
weights = st.tuples(st.sampled_from([np.float16, np.float32, np.float64]), shapes).flatmap(
    lambda ds: hnp.arrays(ds[0], ds[1], elements=st.floats(-4, 4, width=16)))


@given(arrays=st.lists(weights, min_size=1, max_size=4), compressed=st.booleans())
def test_npz_layers_are_the_arrays_in_order(arrays, compressed):
    named = {f"layer{i}": a for i, a in enumerate(arrays)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.npz")
        (np.savez_compressed if compressed else np.savez)(path, **named)
        net = load_network(path)
        assert net.names == list(named)
        for layer, arr in zip(net, named.values(), strict=True):
            assert same_bits(layer.weight, arr)
            assert layer.kind == ("fc" if arr.ndim == 2 else "conv")
            assert layer.uses_per_inference == 1 and layer.bias is None
            assert layer.matrix.shape == (arr.shape[0], arr.size // arr.shape[0])
            assert is_memory_mapped(layer.weight) != compressed or arr.size == 0
        del net


def test_npz_biases_attach_by_name(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "features.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "features.0.bias": rng.standard_normal(4).astype(np.float32),
        "fc1": rng.standard_normal((5, 36)).astype(np.float32),
        "fc1_bias": rng.standard_normal(5).astype(np.float32),
        "fc2": rng.standard_normal((2, 5)).astype(np.float32),
        "fc2.bias": rng.standard_normal(3).astype(np.float32),  # wrong length: not a bias
        "bn.running_mean": rng.standard_normal(4).astype(np.float32),
        "steps": np.arange(6).reshape(2, 3),  # integers: skipped
        "token_embedding": rng.standard_normal((10, 4)),
    }
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    net = load_network(path)
    assert net.name == "model" and net.source == str(path)
    assert net.names == ["features.0.weight", "fc1", "fc2", "token_embedding"]
    assert [layer.kind for layer in net] == ["conv", "fc", "fc", "embedding"]
    assert same_bits(net["features.0.weight"].bias, arrays["features.0.bias"])
    assert same_bits(net["fc1"].bias, arrays["fc1_bias"])
    assert net["fc2"].bias is None and net["token_embedding"].bias is None
    assert net["features.0.weight"].matrix.shape == (4, 27)


def test_npy_is_one_memory_mapped_layer(tmp_path):
    W = np.random.default_rng(2).standard_normal((6, 7))
    path = tmp_path / "fc6.npy"
    np.save(path, np.asfortranarray(W))
    net = load_network(path, name="alex")
    assert net.name == "alex" and net.names == ["fc6"]
    assert same_bits(net["fc6"].weight, W) and is_memory_mapped(net["fc6"].weight)
    assert not net["fc6"].weight.flags.writeable


def test_nan_weights_are_kept_visible(tmp_path):
    W = np.ones((3, 4), np.float32)
    W[1, 2] = np.nan
    np.savez(tmp_path / "n.npz", w=W)
    layer = load_network(tmp_path / "n.npz")["w"]
    assert np.isnan(layer.weight[1, 2]) and np.isnan(layer.weight).sum() == 1


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    obj = np.empty((2, 2), dtype=object)
    np.savez(tmp_path / "o.npz", w=np.ones((2, 2)), evil=obj)
    with pytest.raises(ValueError, match="objects.*never loaded"):
        load_network(tmp_path / "o.npz")
    np.save(tmp_path / "o.npy", obj, allow_pickle=True)
    with pytest.raises(ValueError, match="objects"):
        load_network(tmp_path / "o.npy")


def test_files_without_weight_layers_are_refused(tmp_path):
    np.savez(tmp_path / "ints.npz", a=np.arange(6).reshape(2, 3), b=np.ones(3))
    with pytest.raises(ValueError, match="no floating-point tensor of 2 or more dimensions"):
        load_network(tmp_path / "ints.npz")
    np.save(tmp_path / "vec.npy", np.ones(5))
    with pytest.raises(ValueError, match="2 or more dimensions"):
        load_network(tmp_path / "vec.npy")


def test_truncated_numpy_files_are_refused(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((50, 50)))
    data = (tmp_path / "w.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated"):
        load_network(tmp_path / "cut.npy")
    (tmp_path / "head.npy").write_bytes(data[:20])
    with pytest.raises(ValueError, match="not a valid .npy"):
        load_network(tmp_path / "head.npy")
    np.savez(tmp_path / "w.npz", w=np.ones((50, 50)))
    data = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated zip"):
        load_network(tmp_path / "cut.npz")


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000), }"
    header = header.ljust(118) + "\n"
    (tmp_path / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                        + header.encode() + b"\0" * 64)
    with pytest.raises(ValueError, match="truncated"):
        load_network(tmp_path / "huge.npy")


# --- detection -------------------------------------------------------------------------------

def test_detection_is_by_content_not_extension(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 2), np.float32))
    os.rename(tmp_path / "x.npy", tmp_path / "x.safetensors")
    assert detect_format(tmp_path / "x.safetensors") == "npy"
    assert load_network(tmp_path / "x.safetensors").names == ["x"]
    np.savez(tmp_path / "y.npz", a=np.ones((2, 2)))
    os.rename(tmp_path / "y.npz", tmp_path / "y.onnx")
    assert detect_format(tmp_path / "y.onnx") == "npz"


def test_unknown_formats_list_the_supported_ones(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"just some text, no weights here")
    with pytest.raises(ValueError, match="unknown weight file format.*safetensors.*ONNX"):
        load_network(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.md", "hello")
    with pytest.raises(ValueError, match="none of the supported formats.*readme.md"):
        load_network(tmp_path / "other.zip")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_network(tmp_path / "empty.npy")


def test_missing_paths_folders_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file nor an embedded"):
        load_network(tmp_path / "nothing.npz")
    with pytest.raises(ValueError, match="folder"):
        load_network(tmp_path)
    np.save(tmp_path / "w.npy", np.ones((2, 2)))
    with pytest.raises(TypeError, match="only to embedded networks"):
        load_network(tmp_path / "w.npy", pruned=True)
    with pytest.raises(TypeError, match="network name or a file path"):
        load_network(3.5)


# --- embedded names --------------------------------------------------------------------------

@pytest.fixture
def fake_registry(monkeypatch):
    calls = []

    def embedded_network(name, **options):
        calls.append((name, options))
        return Network(name, [], source=f"embedded:{name}")

    module = types.ModuleType("lowentropy.networks.registry")
    module.list_networks = lambda: ["lenet300", "alexnet"]
    module.embedded_network = embedded_network
    monkeypatch.setitem(sys.modules, "lowentropy.networks.registry", module)
    return calls


def test_embedded_names_go_to_the_registry(fake_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "alexnet", np.ones((2, 2)))  # a file of that name does not win
    net = load_network("alexnet", seed=3)
    assert net.source == "embedded:alexnet" and fake_registry == [("alexnet", {"seed": 3})]
    assert load_network("lenet300", name="mine").name == "mine"
    assert load_network("alexnet.npy").source == "alexnet.npy"  # not a name: a path
    with pytest.raises(FileNotFoundError, match="embedded networks: lenet300, alexnet"):
        load_network("vgg")


def test_without_a_registry_every_string_is_a_path(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lowentropy.networks.registry", None)
    with pytest.raises(FileNotFoundError) as info:
        load_network("alexnet")
    assert "embedded networks:" not in str(info.value)
    np.save(tmp_path / "w.npy", np.ones((2, 2)))
    assert load_network(str(tmp_path / "w.npy")).names == ["w"]
