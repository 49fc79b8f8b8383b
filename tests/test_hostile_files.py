"""Crafted malicious model files: each is refused with a ValueError naming the problem
before anything large is read or any foreign code or file is touched."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from io_helpers import write_valid_files

import lowentropy as le
import lowentropy.io._common as common
import lowentropy.io.keras_files as keras_files
import lowentropy.io.numpy_files as numpy_files
from lowentropy.io import load_network, read_safetensors

h5py = pytest.importorskip("h5py")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")


def _no_inflating(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a member was decompressed")
    monkeypatch.setattr(zipfile.ZipExtFile, "read", refuse)


# --- zip archives ------------------------------------------------------------------------

def test_npz_bomb_of_real_zeros_is_refused_before_inflating(tmp_path, monkeypatch):
    zeros = np.zeros((8192, 8192), np.float32)  # 256 MiB of zeros deflate to ~250 KiB
    np.savez_compressed(tmp_path / "bomb.npz", w=zeros)
    del zeros
    assert os.path.getsize(tmp_path / "bomb.npz") < 2**20
    _no_inflating(monkeypatch)
    with pytest.raises(ValueError, match=r"bomb.npz: member 'w.npy'.* declare 268435584 "
                                         r"bytes decompressed \(ratio \d+:1"):
        load_network(tmp_path / "bomb.npz")


def _declare_size(path, size: int) -> None:
    """Make the (only) central directory entry declare ``size`` bytes inflated."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at + 24:at + 28] = struct.pack("<I", size)
    path.write_bytes(bytes(data))


def test_npz_member_declaring_4_gb_is_refused_before_inflating(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "big.npz", w=np.ones((4, 4), np.float32))
    _declare_size(tmp_path / "big.npz", 2**32 - 2)
    with zipfile.ZipFile(tmp_path / "big.npz") as zf:
        assert zf.getinfo("w.npy").file_size == 2**32 - 2
    _no_inflating(monkeypatch)
    with pytest.raises(ValueError, match=r"big.npz: member 'w.npy': \d+ compressed bytes "
                                         r"declare 4294967294 bytes decompressed \(ratio"):
        load_network(tmp_path / "big.npz")
    monkeypatch.setattr(common, "MAX_INFLATED_BYTES", 2**30)  # the absolute limit
    with pytest.raises(ValueError, match="big.npz: member 'w.npy': declares 4294967294 "
                                         "bytes once decompressed, over the limit of 1073741824"):
        load_network(tmp_path / "big.npz")


def _raw_zip(members: list[tuple[str, bytes, int]], data_at: dict[str, int] | None = None):
    """A stored zip; ``data_at`` makes a member's central entry point at another offset."""
    body, central, offsets = b"", b"", {}
    for name, data, _ in members:
        offsets[name] = len(body)
        local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, len(data),
                            len(data), len(name), 0)
        body += local + name.encode() + data
    for name, data, _ in members:
        offset = (data_at or {}).get(name, offsets[name])
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, len(data),
                               len(data), len(name), 0, 0, 0, 0, 0, offset) + name.encode()
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(body), 0)
    return body + central + end


def test_overlapping_zip_members_are_refused(tmp_path):
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones((3, 3), np.float32))
    npy = buf.getvalue()
    inner = _raw_zip([("b.npy", npy, 0)])[: 30 + 5 + len(npy)]  # b's local record
    # a.npy's data holds b's whole local record: b's central entry points inside a.
    data = _raw_zip([("a.npy", inner, 0), ("b.npy", npy, 0)], data_at={"b.npy": 30 + 5})
    (tmp_path / "overlap.npz").write_bytes(data)
    with pytest.raises(ValueError, match="overlap.npz: member 'a.npy' ends at byte .*"
                                         "overlapping or truncated members"):
        load_network(tmp_path / "overlap.npz")


def test_many_members_and_duplicate_names_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(numpy_files, "MAX_MEMBERS", 50)
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as zf:
        for i in range(60):
            zf.writestr(f"m{i}.npy", b"")
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: opened.append(1))
    with pytest.raises(ValueError, match="many.npz: the zip archive declares 60 members.*"
                                         "at most 50"):
        load_network(tmp_path / "many.npz")
    assert not opened  # refused from the end record, before reading the directory
    monkeypatch.undo()
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones((2, 2), np.float32))
    (tmp_path / "dup.npz").write_bytes(_raw_zip([("w.npy", buf.getvalue(), 0)] * 2))
    with pytest.raises(ValueError, match="dup.npz: member 'w.npy' appears twice"):
        load_network(tmp_path / "dup.npz")
    (tmp_path / "nameless.npz").write_bytes(_raw_zip([("", buf.getvalue(), 0)]))
    with pytest.raises(ValueError, match="nameless.npz: a member has an empty name"):
        load_network(tmp_path / "nameless.npz")
    le.save(tmp_path / "saved.npz", le.CSR.from_dense(np.eye(2)))
    data = (tmp_path / "saved.npz").read_bytes()
    start = data.rindex(b"PK\x01\x02")  # the last member's central directory entry
    data = data[:start + 28] + b"\x00\x00" + data[start + 30:]  # its name length: 0
    (tmp_path / "saved.npz").write_bytes(data)
    with pytest.raises(ValueError, match="saved.npz"):
        le.load(tmp_path / "saved.npz")


def _npy_header(shape, descr="<f4") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_member_with_an_absurd_shape_is_refused_before_allocating(tmp_path, compression):
    with zipfile.ZipFile(tmp_path / "shape.npz", "w", compression) as zf:
        zf.writestr("w.npy", _npy_header((10**6, 10**6)) + b"\0" * 64)
    with pytest.raises(ValueError, match=r"array 'w': truncated: shape \(1000000, 1000000\) "
                                         r"of float32 needs 4000000000000 bytes, 64 are there"):
        load_network(tmp_path / "shape.npz")


def test_npy_with_too_many_dimensions_or_a_non_numeric_dtype(tmp_path):
    (tmp_path / "dims.npy").write_bytes(_npy_header((1,) * 40) + b"\0" * 4)
    with pytest.raises(ValueError, match="dims.npy: unreadable shape.*more than 32"):
        load_network(tmp_path / "dims.npy")
    (tmp_path / "str.npy").write_bytes(_npy_header((2, 2), "<U0") + b"\0" * 4)
    with pytest.raises(ValueError, match="str.npy: dtype <U0 is not numeric"):
        load_network(tmp_path / "str.npy")


# --- safetensors ---------------------------------------------------------------------------

def _safetensors(path, header: bytes, data: bytes = b"") -> str:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return str(path)


def test_safetensors_duplicated_keys_deep_nesting_and_many_dimensions(tmp_path):
    entry = '{"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}'
    dup = _safetensors(tmp_path / "dup.safetensors", f'{{"w": {entry}, "w": {entry}}}'.encode(),
                       b"\0" * 16)
    with pytest.raises(ValueError, match="dup.safetensors: .*key 'w' appears twice"):
        read_safetensors(dup)
    deep = _safetensors(tmp_path / "deep.safetensors", b'{"w": ' + b"[" * 100_000 + b"]" * 100_000
                        + b"}")
    with pytest.raises(ValueError, match="deep.safetensors: .*nested too deeply"):
        read_safetensors(deep)
    dims = json.dumps({"w": {"dtype": "F32", "shape": [1] * 70, "data_offsets": [0, 4]}})
    many = _safetensors(tmp_path / "dims.safetensors", dims.encode(), b"\0" * 4)
    with pytest.raises(ValueError, match="dims.safetensors: .*at most 32"):
        read_safetensors(many)


# --- ONNX external data ----------------------------------------------------------------------

def _external_model(folder, location: str, offset: int = 0, length: int | None = None):
    from onnx import TensorProto, helper

    W = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [0.0] * 8)
    W.ClearField("float_data")
    W.data_location = TensorProto.EXTERNAL
    for key, value in [("location", location), ("offset", str(offset))] + (
            [("length", str(length))] if length is not None else []):
        entry = W.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [W])
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype=np.float32).tobytes())
    model = tmp_path / "model"
    model.mkdir()
    (model / "link.bin").symlink_to(secret)
    for location in ("../secret.bin", str(secret), "link.bin"):
        path = _external_model(model, location)
        with pytest.raises(ValueError, match="model.onnx: initializer 'W' points to external "
                                             "data .* outside the model's folder; refused"):
            load_network(path)
    (model / "ok.bin").write_bytes(np.arange(8, dtype=np.float32).tobytes())
    assert load_network(_external_model(model, "ok.bin"))["W"].shape == (2, 4)


def test_onnx_external_data_beyond_the_file_or_not_a_file_is_refused(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.arange(8, dtype=np.float32).tobytes())
    for offset, length in [(0, 10**12), (16, 32), (40, None)]:
        path = _external_model(tmp_path, "w.bin", offset, length)
        with pytest.raises(ValueError, match=f"model.onnx: initializer 'W' claims bytes "
                                             f"{offset} to .* which has 32 bytes; refused"):
            load_network(path)
    os.mkfifo(tmp_path / "pipe.bin")  # opening it would block forever
    with pytest.raises(ValueError, match="'pipe.bin' is not a regular file; refused"):
        load_network(_external_model(tmp_path, "pipe.bin"))


# --- PyTorch pickles ---------------------------------------------------------------------------

class Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_files(folder, marker):
    payload = {"fc.weight": torch.ones(2, 2), "x": Shell(marker)}
    torch.save(payload, folder / "zip.pt")
    torch.save(payload, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    for protocol in (2, 4, 5):
        with open(folder / f"raw{protocol}.pkl", "wb") as f:
            pickle.dump({"fc.weight": np.ones((2, 2)), "x": Shell(marker)}, f, protocol=protocol)
    # hand-written: GLOBAL builtins.exec called on a string
    code = f"open({str(marker)!r}, 'w')".encode()
    (folder / "exec.pkl").write_bytes(b"\x80\x02cbuiltins\nexec\nq\x00X" + struct.pack(
        "<I", len(code)) + code + b"\x85R.")


def test_pickles_that_would_run_code_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    _evil_files(tmp_path, marker)
    for name in ("zip.pt", "legacy.pt", "raw2.pkl", "raw4.pkl", "raw5.pkl", "exec.pkl"):
        with pytest.raises(ValueError, match=f"{name}: refused: the file holds Python objects"):
            load_network(tmp_path / name)
        assert not marker.exists(), name


# --- Keras HDF5 ----------------------------------------------------------------------------

def test_keras_external_links_files_and_virtual_datasets_are_refused(tmp_path):
    W = np.ones((3, 2), np.float32)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["w"] = W
    with h5py.File(tmp_path / "link.h5", "w") as f:
        f["layers/dense/vars/0"] = W
        f["layers/evil"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/w")
    with pytest.raises(ValueError, match="link.h5: .*external link to .*other.h5.*refused"):
        load_network(tmp_path / "link.h5")
    (tmp_path / "raw.bin").write_bytes(W.tobytes())
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("layers/dense/vars/0", (3, 2), "<f4",
                         external=[(str(tmp_path / "raw.bin"), 0, W.nbytes)])
    with pytest.raises(ValueError, match="ext.h5: .*keeps its data in external files.*raw.bin"):
        load_network(tmp_path / "ext.h5")
    layout = h5py.VirtualLayout((3, 2), "<f4")
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "w", shape=(3, 2))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("layers/dense/vars/0", layout)
    with pytest.raises(ValueError, match="vds.h5: .*virtual dataset"):
        load_network(tmp_path / "vds.h5")


def test_keras_absurd_shapes_cycles_and_non_float_types(tmp_path):
    with h5py.File(tmp_path / "huge.h5", "w") as f:
        f.create_dataset("layers/dense/vars/0", (10**6, 10**6), "<f4")  # no data stored
    with pytest.raises(ValueError, match=r"huge.h5: .*\(1000000, 1000000\) of float32\): "
                                         r"declares 4000000000000 bytes once decompressed"):
        load_network(tmp_path / "huge.h5")
    with h5py.File(tmp_path / "cycle.h5", "w") as f:
        group = f.create_group("layers/dense")
        group["vars/0"] = np.ones((3, 2), np.float32)
        group["loop"] = group  # a hard link to itself
        group["text"] = np.array([b"abc", b"de"])
        group["ints"] = np.arange(6).reshape(2, 3)
        group["pair"] = np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")])
    net = load_network(tmp_path / "cycle.h5")
    assert net.names == ["dense/0"] and net["dense/0"].shape == (2, 3)


def test_keras_reader_crash_or_hang_is_a_value_error(tmp_path, monkeypatch):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["layers/dense/vars/0"] = np.ones((3, 2), np.float32)
    monkeypatch.setattr(keras_files, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(keras_files, "_child_work", lambda *a: time.sleep(60))
    start = time.monotonic()
    with pytest.raises(ValueError, match="m.h5: .*took more than 1 s; stopped"):
        load_network(tmp_path / "m.h5")
    assert time.monotonic() - start < 10
    monkeypatch.setattr(keras_files, "_child_work",
                        lambda *a: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(ValueError, match="m.h5: .*the HDF5 library failed on it"):
        load_network(tmp_path / "m.h5")


def test_keras_archive_with_a_bombed_weights_member(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RATIO_FREE_BYTES", 2**16)
    with h5py.File(tmp_path / "model.weights.h5", "w") as f:
        f["layers/dense/vars/0"] = np.zeros((512, 512), np.float32)
    with zipfile.ZipFile(tmp_path / "m.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp_path / "model.weights.h5", "model.weights.h5")
    with pytest.raises(ValueError, match="m.keras: member 'model.weights.h5'.*ratio"):
        load_network(tmp_path / "m.keras")


# --- memory: large files are mapped, not read ------------------------------------------------

_RSS_SCRIPT = textwrap.dedent("""
    import sys
    import lowentropy as le

    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

    le.load_network(sys.argv[2])  # warm up imports on a small file
    before = rss()
    net = le.load_network(sys.argv[1])
    assert net.layers[0].weight.nbytes >= 400 * 2**20
    print(rss() - before)
""")


@pytest.mark.parametrize("kind", ["npy", "npz", "safetensors"])
def test_a_400_mb_file_loads_without_resident_memory_growing(tmp_path, kind):
    rows, cols = 10240, 10240  # 400 MiB of float32, sparse on disk
    nbytes = rows * cols * 4
    path = tmp_path / f"big.{kind}"
    if kind == "safetensors":
        head = json.dumps({"w": {"dtype": "F32", "shape": [rows, cols],
                                 "data_offsets": [0, nbytes]}}).encode()
        prefix = struct.pack("<Q", len(head)) + head
    else:
        prefix = _npy_header((rows, cols))
    with open(path if kind != "npz" else tmp_path / "w.npy", "wb") as f:
        f.write(prefix)
        f.truncate(len(prefix) + nbytes)
    if kind == "npz":
        with zipfile.ZipFile(path, "w") as zf:  # stored: mapped from the archive
            zf.write(tmp_path / "w.npy", "w.npy")
        os.remove(tmp_path / "w.npy")
    small = write_valid_files(tmp_path)[kind if kind != "npz" else "npz"]
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), small],
                         capture_output=True, text=True, timeout=120, check=True)
    assert int(out.stdout) < 32 * 2**20, out.stdout
