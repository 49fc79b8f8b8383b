"""safetensors: the parser against files of the real library, and hostile headers."""

from __future__ import annotations

import json
import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from io_helpers import is_memory_mapped, resident_bytes, same_bits

from lowentropy.io import load_network, read_safetensors

st_numpy = pytest.importorskip("safetensors.numpy")

FLOATS = (np.float16, np.float32, np.float64)
INTS = (np.int8, np.uint8, np.int32, np.int64, np.bool_)

tensors = st.tuples(st.sampled_from(FLOATS + INTS),
                    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)).flatmap(
    lambda ds: hnp.arrays(ds[0], ds[1]))


@given(st.dictionaries(st.text("abcdef._", min_size=1, max_size=8), tensors, max_size=5))
def test_floating_tensors_read_back_bit_exact(named):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.safetensors")
        st_numpy.save_file(named, path)
        got = read_safetensors(path)
        expected = {k: v for k, v in named.items() if v.dtype.kind == "f"}
        assert set(got) == set(expected)
        for key, arr in expected.items():
            assert same_bits(got[key], arr), key
            assert not got[key].flags.writeable
        del got


def test_network_from_a_safetensors_file(tmp_path):
    rng = np.random.default_rng(0)
    named = {
        "conv.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float16),
        "conv.bias": rng.standard_normal(8).astype(np.float16),
        "fc.weight": rng.standard_normal((10, 72)).astype(np.float32),
        "fc.bias": rng.standard_normal(10).astype(np.float32),
        "position_ids": np.arange(12, dtype=np.int64).reshape(1, 12),
    }
    path = tmp_path / "model.safetensors"
    st_numpy.save_file(named, str(path), metadata={"format": "pt"})
    net = load_network(path)
    assert sorted(net.names) == ["conv.weight", "fc.weight"]
    for layer in net:
        assert same_bits(layer.weight, named[layer.name])
        assert same_bits(layer.bias, named[layer.name.replace("weight", "bias")])
        assert is_memory_mapped(layer.weight)
    assert net["conv.weight"].kind == "conv" and net["fc.weight"].kind == "fc"


def _write(path, header, data: bytes = b"", length: int | None = None) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + raw + data)
    return str(path)


def test_bf16_becomes_float32_exactly(tmp_path):
    # float32 values whose low 16 bits are zero are exactly their bfloat16 upper halves
    values = np.array([[1.0, -2.5, 0.0], [np.nan, 3.140625, -0.0]], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    path = _write(tmp_path / "b.safetensors",
                  {"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}},
                  bits.tobytes())
    got = read_safetensors(path)["w"]
    assert got.dtype == np.float32 and same_bits(got, values)


def test_bf16_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    t = torch.randn(5, 4).to(torch.bfloat16)
    st_torch.save_file({"w": t}, str(tmp_path / "t.safetensors"))
    assert same_bits(read_safetensors(tmp_path / "t.safetensors")["w"], t.float().numpy())


def _entry(dtype="F32", shape=(2, 2), offsets=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HOSTILE = {
    "header longer than the file": ({"w": _entry()}, 16, 10**6, "larger than the file"),
    "header over the limit": ({"w": _entry()}, 16, None, "exceeds the limit"),
    "not JSON": (b"{not json", 0, None, "not UTF-8 JSON"),
    "not UTF-8": (b"{\xff\xfe}", 0, None, "not UTF-8 JSON"),
    "a JSON list": ([1, 2], 0, None, "JSON object"),
    "unknown dtype": ({"w": _entry(dtype="F128")}, 16, None, "unknown dtype 'F128'"),
    "negative dimension": ({"w": _entry(shape=(-2, -2))}, 16, None, "non-negative"),
    "float dimension": ({"w": _entry(shape=(2.0, 2))}, 16, None, "non-negative integers"),
    "huge shape": ({"w": _entry(shape=(2**62, 2**62))}, 16, None, "data_offsets span 16"),
    "size mismatch": ({"w": _entry(shape=(3, 2))}, 16, None, "takes 24 bytes"),
    "end before begin": ({"w": _entry(offsets=(16, 0))}, 16, None, "0 <= begin <= end"),
    "negative offset": ({"w": _entry(offsets=(-16, 0))}, 16, None, "0 <= begin <= end"),
    "past the data": ({"w": _entry(shape=(2, 3), offsets=(0, 24))}, 16, None,
                      "ends at byte 24, past the end of the data"),
    "overlap": ({"a": _entry(), "b": _entry(offsets=(8, 24))}, 24, None, "overlaps"),
    "hole": ({"a": _entry(shape=(1, 2), offsets=(0, 8)), "b": _entry(shape=(1, 2),
              offsets=(12, 20))}, 20, None, "hole of 4 bytes"),
    "truncated data": ({"w": _entry()}, 8, None, "truncated file"),
    "trailing bytes": ({"w": _entry()}, 24, None, "8 trailing bytes"),
    "extra key": ({"w": {**_entry(), "x": 1}}, 16, None, "exactly dtype, shape and"),
    "missing key": ({"w": {"dtype": "F32", "shape": [4]}}, 16, None, "exactly dtype"),
    "bad offsets": ({"w": _entry(offsets=(0,))}, 16, None, "data_offsets must be"),
    "bad metadata": ({"__metadata__": {"a": 1}, "w": _entry()}, 16, None, "strings to strings"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_headers_are_refused(tmp_path, case, monkeypatch):
    header, data_len, length, message = HOSTILE[case]
    if case == "header over the limit":
        monkeypatch.setattr("lowentropy.io.safetensors_files.MAX_HEADER", 10)
    path = _write(tmp_path / "h.safetensors", header, b"\0" * data_len, length)
    with pytest.raises(ValueError, match=message):
        read_safetensors(path)
    with pytest.raises(ValueError, match="invalid safetensors file"):
        load_network(path)


def test_too_short_and_truncated_files_are_refused(tmp_path):
    (tmp_path / "s.safetensors").write_bytes(b"\x02\0\0")
    with pytest.raises(ValueError, match="shorter than the 8-byte header"):
        load_network(tmp_path / "s.safetensors")
    st_numpy.save_file({"w": np.ones((8, 8), np.float32)}, str(tmp_path / "ok.safetensors"))
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="cut.safetensors: .*past the end of the data"):
        load_network(tmp_path / "cut.safetensors")
    (tmp_path / "head.safetensors").write_bytes(data[:40])
    with pytest.raises(ValueError, match="larger than the file"):
        load_network(tmp_path / "head.safetensors")


def test_skipped_dtypes_are_still_checked_and_empty_files_have_no_layers(tmp_path):
    path = _write(tmp_path / "i.safetensors",
                  {"i": _entry(dtype="I8", shape=(4,), offsets=(0, 4)),
                   "f4": _entry(dtype="F4", shape=(2, 3), offsets=(4, 7))}, b"\0" * 7)
    assert read_safetensors(path) == {}
    with pytest.raises(ValueError, match="no floating-point tensor"):
        load_network(path)
    bad = _write(tmp_path / "j.safetensors",
                 {"f4": _entry(dtype="F4", shape=(2, 3), offsets=(0, 4))}, b"\0" * 4)
    with pytest.raises(ValueError, match="takes 3 bytes"):
        read_safetensors(bad)


def test_a_large_file_is_mapped_not_read(tmp_path):
    rows, cols = 16384, 16384  # 1 GiB of float32, a sparse file on disk
    header = json.dumps({"w": _entry(shape=(rows, cols), offsets=(0, rows * cols * 4))})
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode())
        f.truncate(8 + len(header) + rows * cols * 4)
    before = resident_bytes()
    layer = load_network(path)["w"]
    assert layer.shape == (rows, cols) and is_memory_mapped(layer.weight)
    assert resident_bytes() - before < 64 * 2**20
    assert layer.weight[rows - 1, cols - 1] == 0
