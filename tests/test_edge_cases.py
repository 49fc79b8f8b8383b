"""Numerical edge cases end to end: every format exact, statistics, compression, files and
the command line on layers of all zeros, one value, millions of distinct values, float16
and bfloat16, huge and tiny magnitudes and subnormals."""

from __future__ import annotations

import json
import re

import ml_dtypes
import numpy as np
import pytest
from io_helpers import same_bits

import lowentropy as le
from lowentropy.__main__ import main

# sums of huge weights overflow to inf in float arithmetic, as they should
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

TINY32 = np.float32(1e-45)  # the smallest subnormal
BIG32 = np.float32(3.4e38)


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    one = np.full((6, 9), -0.375, np.float32)
    mixed32 = rng.choice(np.array([0, 0, 0, BIG32, -BIG32, TINY32, -TINY32, 1.5e-40, 1.0],
                                  np.float32), (7, 11))
    mixed64 = rng.choice(np.array([0, 0, 5e-324, -5e-324, 2.2e-308, 1.7e308, -1.7e308, 1.0]),
                         (5, 13))
    half = (rng.standard_normal((8, 10)) * 100).astype(np.float16)
    half[0, :4] = [65504, -65504, 6e-8, -6e-8]  # float16's extremes and subnormals
    return {
        "all zeros": np.zeros((5, 7), np.float32),
        "one value": one,
        "huge and tiny float32": mixed32,
        "huge and tiny float64": mixed64,
        "float16": half,
        "bfloat16": (rng.standard_normal((6, 8)) * 1e30).astype(ml_dtypes.bfloat16),
    }


CASES = _cases()


def _reference(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    return W.astype(np.float64) @ x.astype(np.float64)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", sorted(le.FORMATS))
def test_every_format_is_exact(case, name):
    W = CASES[case]
    W32 = W.astype(le.FORMATS[name].from_dense(W).dtype)  # float16/bfloat16 → float32, exact
    assert np.array_equal(W32.astype(W.dtype), W)
    f = le.FORMATS[name].from_dense(W)
    assert same_bits(f.to_dense(), W32 + W32.dtype.type(0))  # -0.0 is stored as +0.0
    f.check()
    x = np.linspace(-1, 1, W.shape[1]).astype(W32.dtype)
    y = f @ x
    ref = _reference(W32, x)
    scale = np.abs(W32).astype(np.float64) @ np.abs(x).astype(np.float64)
    finite = np.isfinite(ref) & (scale < np.finfo(W32.dtype).max / 8)
    # each output is a sum rounded in the result's dtype, so it errs by at most a few ulps
    # of the sum of magnitudes
    eps = np.finfo(W32.dtype).eps
    assert (np.abs(y[finite] - ref[finite]) <= 8 * W.shape[1] * eps * scale[finite]
            + np.finfo(W32.dtype).smallest_subnormal).all()
    assert not np.isnan(y).any()


@pytest.mark.parametrize("case", CASES)
def test_statistics_compression_and_files(case, tmp_path):
    W = CASES[case]
    st = le.stats(W)
    assert st.K == np.unique(W.astype(np.float64) + 0.0).size
    assert 0 <= st.H <= np.log2(max(st.K, 1)) + 1e-12
    rows = le.compare(st)
    assert {r.format for r in rows} == set(le.FORMATS)
    for r in rows:
        assert r.storage_bits == le.FORMATS[r.format].from_dense(W).storage().total_bits
    for Wq in (le.prune(W, 0.5), le.quantize(W, bits=3), le.quantize(W, "kmeans", clusters=3)):
        assert Wq.shape == W.shape and np.isfinite(Wq).all()
        assert np.unique(Wq).size <= st.K + 1  # pruning may add the value 0
        err = le.quantization_error(W, Wq)
        assert err.relative >= 0 and not np.isnan(err.relative)
    net = le.Network("edge", [le.Layer("w", W)])
    for fmt in (None, "cer", "best"):
        le.save(tmp_path / "e.npz", net, format=fmt)
        back = le.load(tmp_path / "e.npz")["w"].weight
        assert np.array_equal(back, W.astype(back.dtype)) and back.dtype.kind == "f"


def test_k_in_the_millions_every_format_exact():
    """Unquantized weights: 1.2 million distinct values, still exact in every format."""
    W = np.random.default_rng(3).standard_normal((2, 600_000)).astype(np.float32)
    st = le.stats(W)
    assert st.K == np.unique(W).size > 1_000_000
    x = np.random.default_rng(4).standard_normal(W.shape[1]).astype(np.float32)
    ref = _reference(W, x)
    for name, cls in le.FORMATS.items():
        f = cls.from_dense(W)
        assert same_bits(f.to_dense(), W), name
        assert np.allclose(f @ x, ref, rtol=1e-4, atol=1e-2), name
        assert f.storage().total_bits == cls.storage_for(st).total_bits
    # without shared values the paper's formats cost more than CSR, and a report says why
    sizes = {r.format: r.storage_bits for r in le.compare(st)}
    assert sizes["cer"] > sizes["csr"] and sizes["cser"] > sizes["csr"]
    from lowentropy.report import network_report

    report = network_report(le.Network("u", [le.Layer("fc", W)]), le.Recipe())
    assert report.notes() and "not quantized" in report.notes()[0]
    assert re.search(r"note: fc: 1,\d{3},\d{3} distinct values", report.text())
    quantized = network_report(le.Network("q", [le.Layer("fc", W)]),
                               le.Recipe(bits=4))
    assert quantized.notes() == []


def test_cli_on_edge_case_files(tmp_path, capsys):
    from safetensors.numpy import save_file

    tensors = {name.replace(" ", "_"): np.ascontiguousarray(W.astype(np.float32)
                                                             if W.dtype.kind != "f" else W)
               for name, W in CASES.items() if W.dtype != np.float64}
    save_file(tensors, str(tmp_path / "edge.safetensors"))
    assert main(["report", str(tmp_path / "edge.safetensors"), "--prune", "0.5", "--bits",
                 "4", "--format", "json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["layer"] for r in rows} >= set(tensors)
    assert all(np.isfinite(r["storage_bits"]) for r in rows)
    np.save(tmp_path / "distinct.npy", (np.arange(300 * 500, dtype=np.float32) + 1)
            .reshape(300, 500))
    assert main(["report", str(tmp_path / "distinct.npy"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "not quantized" in out


def test_cli_refuses_a_layer_over_the_memory_budget(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "distinct.npy", (np.arange(800 * 400, dtype=np.float32) + 1)
            .reshape(800, 400))
    monkeypatch.setenv(le.memory.BUDGET_ENV, "100 kB")
    assert main(["report", str(tmp_path / "distinct.npy"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "over the memory budget of 100 kB" in err[0]
