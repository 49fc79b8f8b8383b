"""Mutated bytes of valid model files: every loader gives a usable network (or format) or
a ValueError naming the file; never another exception, a crash or a hang.

The valid files are written once by the real libraries; hypothesis flips and overwrites
bytes at drawn positions, truncates, inserts and splices. A hang turns into a crash with
a traceback (faulthandler), so it fails the run instead of blocking it.
"""

from __future__ import annotations

import faulthandler
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_helpers import check_loaded, write_valid_files

import lowentropy as le
import lowentropy.io.keras_files as keras_files

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("h5py")
pytest.importorskip("safetensors")

#: Examples per loader; ~4 300 in all. Keras files cost a process fork each (the HDF5
#: library is sandboxed), hence fewer.
EXAMPLES = {
    "npy": 500, "npz": 500, "npz_deflated": 400, "safetensors": 500, "onnx": 500,
    "torch": 400, "torch_legacy": 400, "keras_h5": 250, "keras": 200, "le_format": 400,
    "le_network": 400,
}
HANG_SECONDS = 60
RAN: dict[str, Counter] = {kind: Counter() for kind in EXAMPLES}


class ValidFiles(dict):
    """The valid files' bytes by kind (a short repr for failure reports)."""

    def __repr__(self) -> str:
        return f"ValidFiles({sorted(self)})"


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    saved = keras_files.READ_TIMEOUT
    keras_files.READ_TIMEOUT = 5.0  # a damaged file the HDF5 library loops on: 5 s, not 300
    yield ValidFiles((kind, open(path, "rb").read())
                     for kind, path in write_valid_files(folder).items())
    keras_files.READ_TIMEOUT = saved
    print("\nfuzzed cases per loader (usable / ValueError):")
    for kind, counts in RAN.items():
        print(f"  {kind:13s} {sum(counts.values()):5d}  ({counts['ok']} / {counts['error']})")


_positions = st.integers(0, 2**31)
_edits = st.one_of(
    st.tuples(st.just("flip"), _positions, st.integers(0, 7)),
    st.tuples(st.just("overwrite"), _positions, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("extreme"), _positions, st.sampled_from([0, 0x7F, 0x80, 0xFF])),
    st.tuples(st.just("truncate"), _positions),
    st.tuples(st.just("insert"), _positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("splice"), _positions, _positions, st.integers(1, 64)),
)
mutations = st.lists(_edits, min_size=1, max_size=4)


def mutate(data: bytes, edits) -> bytes:
    """Apply the drawn edits in turn (positions taken modulo the current length)."""
    buf = bytearray(data)
    for op, pos, *args in edits:
        if not buf:
            break
        i = pos % len(buf)
        if op == "flip":
            buf[i] ^= 1 << args[0]
        elif op == "overwrite":
            buf[i:i + len(args[0])] = args[0]
        elif op == "extreme":
            buf[i] = args[0]
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = args[0]
        else:  # splice: copy a run of the file over another place
            src, n = args[0] % len(buf), args[1]
            buf[i:i + n] = buf[src:src + n]
    return bytes(buf)


def outcome(kind: str, path) -> str:
    """Load ``path``; "ok" for a usable result, "error" for a ValueError naming the file."""
    load = le.load if kind.startswith("le_") else le.load_network
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        obj = load(path)
    except ValueError as exc:
        assert os.path.basename(path) in str(exc), f"the message does not name the file: {exc}"
        return "error"
    finally:
        faulthandler.cancel_dump_traceback_later()
    check_loaded(obj)
    return "ok"


def _fuzz(kind: str):
    @settings(max_examples=EXAMPLES[kind],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(edits=mutations)
    def test(valid_files, tmp_path, edits):
        suffix = {"keras": ".keras", "keras_h5": ".h5", "onnx": ".onnx",
                  "safetensors": ".safetensors", "npy": ".npy"}.get(kind, ".npz")
        if kind.startswith("torch"):
            suffix = ".pt"
        path = tmp_path / f"case{suffix}"
        path.write_bytes(mutate(valid_files[kind], edits))
        RAN[kind][outcome(kind, path)] += 1

    test.__name__ = f"test_mutated_{kind}_files"
    return test


def test_the_valid_files_load(valid_files, tmp_path):
    for kind, data in valid_files.items():
        path = tmp_path / f"{kind}.bin"
        path.write_bytes(data)
        assert outcome(kind, path) == "ok", kind


test_mutated_npy_files = _fuzz("npy")
test_mutated_npz_files = _fuzz("npz")
test_mutated_npz_deflated_files = _fuzz("npz_deflated")
test_mutated_safetensors_files = _fuzz("safetensors")
test_mutated_onnx_files = _fuzz("onnx")
test_mutated_keras_h5_files = _fuzz("keras_h5")
test_mutated_keras_files = _fuzz("keras")
test_mutated_torch_files = _fuzz("torch")
test_mutated_torch_legacy_files = _fuzz("torch_legacy")
test_mutated_le_format_files = _fuzz("le_format")
test_mutated_le_network_files = _fuzz("le_network")
