"""save / load: bit-exact round trips, and tampered files that must be refused."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from io_helpers import is_memory_mapped, same_bits
from strategies import low_entropy_matrices

import lowentropy as le
from lowentropy.io import load, load_network, save
from lowentropy.io.store import checksum
from lowentropy.networks import Layer, Network


@given(W=low_entropy_matrices(), name=st.sampled_from(sorted(le.FORMATS)))
def test_formats_round_trip_bit_exact(W, name):
    f = le.FORMATS[name].from_dense(W)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.npz")
        save(path, f)
        g = load(path)
    assert type(g) is type(f) and g.shape == f.shape and g.dtype == f.dtype
    assert list(g.arrays()) == list(f.arrays())
    for key, arr in f.arrays().items():
        assert same_bits(g.arrays()[key], arr), key
    assert same_bits(g.to_dense(), f.to_dense())


def _network():
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((5, 36))
    fc[0, 0] = np.nan  # data, kept as it is
    half = rng.standard_normal((2, 5)).astype(np.float16)
    return Network("tiny", [
        Layer("conv1", conv, "conv", 64, bias=rng.standard_normal(4).astype(np.float32)),
        Layer("fc/1 ü", np.asfortranarray(fc), "fc", 1),
        Layer("tok", half, "embedding", 12, synthetic=True),
    ], source="embedded:tiny", description="a test network")


def test_networks_round_trip(tmp_path):
    net = _network()
    save(tmp_path / "net.npz", net)
    got = load(tmp_path / "net.npz")
    assert (got.name, got.source, got.description) == (net.name, net.source, net.description)
    assert got.names == net.names and got.synthetic
    for a, b in zip(got, net, strict=True):
        assert (a.kind, a.uses_per_inference, a.synthetic) == (b.kind, b.uses_per_inference,
                                                               b.synthetic)
        assert same_bits(a.weight, b.weight)
        assert (a.bias is None) == (b.bias is None)
        if a.bias is not None:
            assert same_bits(a.bias, b.bias)
        assert is_memory_mapped(a.weight) and not a.weight.flags.writeable
    again = load_network(tmp_path / "net.npz", name="renamed")
    assert again.name == "renamed" and again.names == net.names


def test_a_saved_format_reads_as_a_one_layer_network(tmp_path):
    W = np.array([[0, 1, 1], [2, 0, 0]], np.float32)
    save(tmp_path / "w.npz", le.CER.from_dense(W))
    net = load_network(tmp_path / "w.npz")
    assert net.names == ["w"] and same_bits(net["w"].weight, W)


def test_save_refuses_other_objects_and_leaves_no_partial_file(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="format .*or a Network, got ndarray"):
        save(tmp_path / "x.npz", np.ones((2, 2)))
    f = le.CSR.from_dense(np.eye(3))
    save(tmp_path / "keep.npz", f)
    before = (tmp_path / "keep.npz").read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("numpy.lib.format.write_array", fail)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "keep.npz", le.CSR.from_dense(np.ones((3, 3))))
    assert (tmp_path / "keep.npz").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.npz"]


# --- tampered files ----------------------------------------------------------------------------

def _read_members(path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("lowentropy.json"))
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist()
                  if n.endswith(".npy")}
    return meta, arrays


def _write_members(path, meta, arrays: dict[str, np.ndarray], raw: dict[str, bytes] = (),
                   restamp: bool = True) -> None:
    """Write an archive by hand; ``restamp`` records the arrays' dtypes, shapes and
    checksums in the metadata, as a deliberate forger would."""
    if restamp and isinstance(meta, dict):
        meta = {**meta, "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape),
                                       "sha256": checksum(a) if a.dtype != object else ""}
                                   for k, a in arrays.items()}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lowentropy.json", meta if isinstance(meta, bytes) else json.dumps(meta))
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=True)
            zf.writestr(f"{name}.npy", buf.getvalue())
        for name, data in dict(raw).items():
            zf.writestr(name, data)


W_SMALL = np.array([[0.0, 0.5, 0.5, 0.0], [0.5, 0.0, -1.0, -1.0], [0.0, 0.0, 0.0, 2.0]])

INDEX_ARRAYS = [(name, key) for name, cls in le.FORMATS.items() for key in cls.array_names
                if key.endswith(("_idx", "_ptr"))]


@pytest.mark.parametrize(("name", "key"), INDEX_ARRAYS)
def test_out_of_range_indices_are_refused_before_any_kernel(tmp_path, monkeypatch, name, key):
    calls = []
    monkeypatch.setattr("lowentropy.formats._checks._first_repeated_column",
                        lambda *a: calls.append(a) or -1)
    for F in le.FORMATS.values():  # no product may run either
        monkeypatch.setattr(F, "_matvec", lambda *a: calls.append(a))
    path = tmp_path / "t.npz"
    save(path, le.FORMATS[name].from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    bad = arrays[key].astype(np.int64)
    bad[-1] = 10**6
    arrays[key] = bad
    _write_members(path, meta, arrays)
    with pytest.raises(ValueError, match=f"t.npz: the stored {name} arrays are invalid"):
        load(path)
    # a kernel may have run on arrays already checked, never on the tampered one
    assert not any(isinstance(a, np.ndarray) and (a == 10**6).any() for c in calls for a in c)


@pytest.mark.parametrize(("name", "key"), [("palette", "codes"), ("huffman", "bits"),
                                           ("huffman", "lengths")])
def test_tampered_packed_arrays_are_refused(tmp_path, name, key):
    """A changed code word or code length, in an archive whose checksums were rewritten to
    match: the format's own checks refuse it."""
    path = tmp_path / "t.npz"
    save(path, le.FORMATS[name].from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    bad = arrays[key].copy()
    bad[-1] ^= 1 << 31 if key != "lengths" else 3
    _write_members(path, meta, {**arrays, key: bad})
    with pytest.raises(ValueError, match=f"t.npz: the stored {name} arrays are invalid"):
        load(path)


@pytest.mark.parametrize("name", sorted(le.FORMATS))
def test_non_finite_values_are_refused(tmp_path, name):
    path = tmp_path / "t.npz"
    save(path, le.FORMATS[name].from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    key = "values" if "values" in arrays else "omega"
    arrays[key] = arrays[key].copy()
    arrays[key][0] = np.nan
    _write_members(path, meta, arrays)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load(path)


def _tamper(meta, arrays):
    cases = {
        "unknown format": ({**meta, "format": "coo"}, arrays, {}, "unknown format 'coo'"),
        "shape": ({**meta, "shape": [3, -4]}, arrays, {}, "two non-negative integers"),
        "shape mismatch": ({**meta, "shape": [4, 3]}, arrays, {}, "arrays are invalid"),
        "dtype": ({**meta, "dtype": "float16"}, arrays, {}, "float32 or float64"),
        "dtype mismatch": ({**meta, "dtype": "float32"}, arrays, {}, "must have dtype float32"),
        "missing array": (meta, {k: v for k, v in arrays.items() if k != "row_ptr"}, {},
                          r"missing \['row_ptr'\]"),
        "extra array": (meta, {**arrays, "spare": np.zeros(2)}, {}, r"unexpected \['spare'\]"),
        "object array": (meta, {**arrays, "row_ptr": np.array([None] * 4, dtype=object)}, {},
                         "Python objects"),
        "2-D array": (meta, {**arrays, "row_ptr": arrays["row_ptr"].reshape(2, 2)}, {},
                      "must be 1-D"),
        "float index": (meta, {**arrays, "col_idx": arrays["col_idx"].astype(float)}, {},
                        "integer dtype"),
        "version": ({**meta, "lowentropy_file": 99}, arrays, {}, "version 99 is not supported"),
        "object kind": ({**meta, "object": "pickle"}, arrays, {}, "'format' or 'network'"),
        "not JSON": (b"{oops", arrays, {}, "not UTF-8 JSON"),
        "JSON list": (b"[1]", arrays, {}, "JSON object"),
        "stray member": (meta, arrays, {"notes.txt": b"hi"}, "not a .npy array"),
        "bad npy": (meta, arrays, {"omega.npy": b"\x93NUMPY garbage"}, "not a valid .npy"),
    }
    return cases


CASES = list(_tamper({}, {"row_ptr": np.zeros(4), "col_idx": np.zeros(1)}))  # the names only


@pytest.mark.parametrize("case", CASES)
def test_tampered_metadata_and_members_are_refused(tmp_path, case):
    path = tmp_path / "t.npz"
    save(path, le.CSER.from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    new_meta, new_arrays, raw, message = _tamper(meta, arrays)[case]
    if case == "bad npy":
        new_arrays = {k: v for k, v in new_arrays.items() if k != "omega"}
    _write_members(path, new_meta, new_arrays, raw)
    with pytest.raises(ValueError, match=message):
        load(path)


def test_tampered_networks_are_refused(tmp_path):
    path = tmp_path / "n.npz"
    save(path, _network())
    meta, arrays = _read_members(path)
    cases = [
        (dict(meta, layers=[dict(meta["layers"][0], kind="lstm")] + meta["layers"][1:]),
         arrays, "kind must be one of"),
        (dict(meta, layers=[dict(meta["layers"][0], uses_per_inference=0)]
              + meta["layers"][1:]), arrays, "uses_per_inference must be >= 1"),
        (dict(meta, layers=[dict(meta["layers"][0], uses_per_inference=True)]
              + meta["layers"][1:]), arrays, "must be a int"),
        (dict(meta, layers=[dict(meta["layers"][0], shape=[4, 27])] + meta["layers"][1:]),
         arrays, "the metadata says"),
        (dict(meta, layers=[meta["layers"][1]] * 3),
         {f"layer{i}.weight": arrays["layer1.weight"] for i in range(3)},
         "duplicate layer names"),
        (meta, {**arrays, "layer0.bias": np.ones(3, np.float32)}, "bias must be"),
        (meta, {**arrays, "layer1.weight": np.arange(180).reshape(5, 36)}, "weight is int64"),
        (meta, {k: v for k, v in arrays.items() if k != "layer2.weight"}, "missing"),
        (dict(meta, name=None), arrays, "'name' must be a str"),
    ]
    for new_meta, new_arrays, message in cases:
        _write_members(path, new_meta, new_arrays)
        with pytest.raises(ValueError, match=message):
            load(path)


def test_files_that_are_not_lowentropy_archives(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a file written by lowentropy.save"):
        load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable lowentropy archive"):
        load(tmp_path / "text.npz")
    save(tmp_path / "ok.npz", le.CSER.from_dense(W_SMALL))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) - 30])
    with pytest.raises(ValueError, match="cut.npz"):
        load(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


# --- checksums, layout version, compressed networks, interrupted saves -------------------------

def _member_offset(path, member: str) -> tuple[int, int]:
    """Offset and length of a stored member's array data in the file."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        info = zf.getinfo(member)
        raw.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(raw.read(4), "<u2")
        start = info.header_offset + 30 + int(name_len) + int(extra_len)
        data = zf.read(member)
    header = len(data) - len(np.load(io.BytesIO(data)).tobytes())
    return start + header, info.file_size - header


@pytest.mark.parametrize("name", ["cer", "cser"])
def test_a_flipped_bit_in_an_array_is_a_checksum_error(tmp_path, name):
    path = tmp_path / "f.npz"
    save(path, le.FORMATS[name].from_dense(W_SMALL))
    start, _ = _member_offset(path, "omega.npy")
    data = bytearray(path.read_bytes())
    data[start + 8] ^= 0x01  # lowest mantissa bit of omega[1]: still a valid matrix
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="array 'omega': (checksum mismatch|corrupt member)"):
        load(path)
    # the same change in an archive whose zip CRCs are right: only the checksum sees it
    save(path, le.FORMATS[name].from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    omega = arrays["omega"].copy()
    omega.view(np.uint64)[1] ^= 1
    _write_members(path, meta, {**arrays, "omega": omega}, restamp=False)
    with pytest.raises(ValueError, match="array 'omega': checksum mismatch"):
        load(path)


def test_recorded_dtype_and_shape_must_match(tmp_path):
    path = tmp_path / "f.npz"
    save(path, le.CSR.from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    for field, value, message in [("dtype", "<u4", "metadata says '<u4'"),
                                  ("shape", [7], "of shape \\[7\\]"),
                                  ("sha256", 5, "'sha256' must be a str")]:
        bad = json.loads(json.dumps(meta))
        bad["arrays"]["col_idx"][field] = value
        _write_members(path, bad, arrays, restamp=False)
        with pytest.raises(ValueError, match=message):
            load(path)
    _write_members(path, {k: v for k, v in meta.items() if k != "arrays"}, arrays,
                   restamp=False)
    with pytest.raises(ValueError, match="'arrays' must be a dict"):
        load(path)


def test_files_of_another_layout_version_are_refused(tmp_path):
    path = tmp_path / "f.npz"
    save(path, le.CSR.from_dense(W_SMALL))
    meta, arrays = _read_members(path)
    _write_members(path, {**meta, "lowentropy_file": 1}, arrays)
    with pytest.raises(ValueError, match="version 1 is not supported .*reads version 2"):
        load(path)


def _pruned_network():
    rng = np.random.default_rng(1)
    levels = np.array([0, 0, 0, 0, 0.25, -0.5, 1.0], np.float32)
    return Network("small", [
        Layer("conv", rng.choice(levels, (8, 3, 3, 3)), "conv", 16,
              bias=np.ones(8, np.float32)),
        Layer("fc", rng.choice(levels, (10, 216)).astype(np.float64), "fc"),
        Layer("half", rng.choice(levels, (4, 10)).astype(np.float16), "fc"),
    ])


@pytest.mark.parametrize("fmt", [*sorted(le.FORMATS), "best"])
def test_compressed_networks_round_trip(tmp_path, fmt):
    net = _pruned_network()
    save(tmp_path / "net.npz", net, format=fmt)
    got = load(tmp_path / "net.npz")
    assert got.names == net.names
    for a, b in zip(got, net, strict=True):
        assert a.shape == b.shape and a.kind == b.kind
        assert a.uses_per_inference == b.uses_per_inference
        assert np.array_equal(a.weight, b.weight)
        want = b.weight.dtype if b.weight.dtype != np.float16 else np.float32
        assert a.weight.dtype == want
        assert (a.bias is None) == (b.bias is None)
    with zipfile.ZipFile(tmp_path / "net.npz") as zf:
        stored = json.loads(zf.read("lowentropy.json"))["layers"]
    if fmt == "best":
        for entry, layer in zip(stored, net, strict=True):
            st_ = le.stats(layer.matrix)
            sizes = {n: le.FORMATS[n].storage_for(st_).total_bits for n in le.FORMATS}
            assert sizes[entry["format"]] == min(sizes.values())
    else:
        assert {entry["format"] for entry in stored} == {fmt}


def test_a_compressed_network_is_smaller_and_refuses_bad_input(tmp_path):
    net = _pruned_network()
    save(tmp_path / "dense.npz", net)
    save(tmp_path / "cser.npz", net, format="cser")
    assert (tmp_path / "cser.npz").stat().st_size < (tmp_path / "dense.npz").stat().st_size
    with pytest.raises(ValueError, match="unknown format 'coo'"):
        save(tmp_path / "x.npz", net, format="coo")
    with pytest.raises(TypeError, match="format= applies to networks"):
        save(tmp_path / "x.npz", le.CSR.from_dense(W_SMALL), format="cer")
    nan_net = Network("nan", [Layer("fc", np.array([[np.nan, 1.0]]))])
    with pytest.raises(ValueError, match="layer 'fc': cannot store it as cer: .*NaN"):
        save(tmp_path / "x.npz", nan_net, format="cer")
    assert not (tmp_path / "x.npz").exists()


def test_tampered_compressed_layers_are_refused(tmp_path):
    path = tmp_path / "n.npz"
    save(path, _pruned_network(), format="cer")
    meta, arrays = _read_members(path)
    bad = dict(arrays)
    bad["layer1.col_idx"] = arrays["layer1.col_idx"].astype(np.int64) + 1000
    _write_members(path, meta, bad)
    with pytest.raises(ValueError, match="layer 1: the stored cer arrays are invalid"):
        load(path)
    layers = [dict(meta["layers"][0], format="coo")] + meta["layers"][1:]
    _write_members(path, dict(meta, layers=layers), arrays)
    with pytest.raises(ValueError, match="unexpected"):
        load(path)
    layers = [dict(meta["layers"][0], dtype="<f2")] + meta["layers"][1:]
    _write_members(path, dict(meta, layers=layers), arrays)
    with pytest.raises(ValueError, match="must be float32 or float64, got float16"):
        load(path)


_SAVE_AND_HANG = """
import sys, time, numpy as np
from numpy.lib import format as npformat
from lowentropy.io import save
from lowentropy.networks import Layer, Network
real = npformat.write_array
def slow(fp, arr, **kw):
    real(fp, arr, **kw)
    print("written", flush=True)
    time.sleep(60)
npformat.write_array = slow
net = Network("big", [Layer(f"fc{i}", np.ones((512, 512), np.float32)) for i in range(4)])
save(sys.argv[1], net)
"""


def test_a_killed_save_leaves_the_previous_file(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "net.npz"
    save(path, le.CSR.from_dense(W_SMALL))
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_AND_HANG, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"  # mid-way through the archive
    finally:
        proc.kill()
        proc.wait()
    assert path.read_bytes() == before
    assert isinstance(load(path), le.CSR)
