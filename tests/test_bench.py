"""The benchmark API (lowentropy.bench) and the suite script: structure, not speed."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

import lowentropy as le
from lowentropy.bench import (
    SCIPY,
    BenchResult,
    Timing,
    bytes_read,
    read_bandwidth,
    time_formats,
)
from lowentropy.synthetic import synthetic_layer

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"name", "median_s", "speedup_vs_dense", "speedup_vs_scipy", "bytes_read",
            "GB_per_s"}


@pytest.fixture(scope="module")
def W():
    return synthetic_layer((24, 40), keep=0.3, levels=8, seed=1)


@pytest.fixture(scope="module")
def result(W):
    return time_formats(W, batch=3, budget=0.05)


def test_time_formats_times_every_registered_format_and_scipy(result, W):
    assert set(result.timings) == set(le.FORMATS) | {SCIPY}
    assert set(result.bytes_read) == set(result.timings)
    assert result.batch == 3 and result.shape == W.shape and result.dtype == "float32"
    assert result.rounds >= 3
    for name, t in result.timings.items():
        assert isinstance(t, Timing) and t.name == name
        assert len(t.times) == result.rounds
        assert all(s > 0 and math.isfinite(s) for s in t.times)


def test_rows_have_the_documented_keys(result):
    rows = result.rows()
    assert [r["name"] for r in rows] == list(result.timings)
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["median_s"] == result.median(row["name"])
        assert row["bytes_read"] == result.bytes_read[row["name"]]
        assert row["GB_per_s"] == pytest.approx(row["bytes_read"] / row["median_s"] / 1e9)
    assert next(r for r in rows if r["name"] == "dense")["speedup_vs_dense"] == 1.0
    assert next(r for r in rows if r["name"] == SCIPY)["speedup_vs_scipy"] == 1.0
    assert all(set(r) == ROW_KEYS | {"limit_share"} for r in result.rows(bandwidth=1e10))


def test_speedup_and_limit_share(result):
    dense, cer = result.median("dense"), result.median("cer")
    assert result.speedup("cer") == pytest.approx(dense / cer)
    assert result.speedup("cer", reference=SCIPY) == pytest.approx(result.median(SCIPY) / cer)
    bw = 2e10
    assert result.limit_share("cer", bw) == pytest.approx(result.bytes_read["cer"] / bw / cer)
    with pytest.raises(KeyError, match="not timed"):
        result.speedup("nope")
    with pytest.raises(ValueError):
        result.limit_share("cer", 0.0)


def test_rows_without_references_give_nan(W):
    r = time_formats(W, ["cser"], include_scipy=False, rounds=3)
    assert list(r.timings) == ["cser"] and r.rounds == 3
    (row,) = r.rows()
    assert math.isnan(row["speedup_vs_dense"]) and math.isnan(row["speedup_vs_scipy"])


def test_bytes_read_of_a_tiny_csr_by_hand():
    W = np.array([[0, 1, 0, 0], [2, 0, 3, 0], [0, 0, 0, 4]], dtype=np.float32)
    c = le.CSR.from_dense(W)
    arrays = 4 * 4 + 4 * c.arrays()["col_idx"].itemsize + 4 * 8  # values, col_idx, row_ptr
    assert sum(a.nbytes for a in c.arrays().values()) == arrays
    assert bytes_read(c) == arrays + 4 * 4 + 3 * 4  # + x (n=4) + y (m=3), float32
    assert bytes_read(c, batch=5) == arrays + 5 * (4 + 3) * 4
    assert bytes_read(c, batch=2, itemsize=8) == arrays + 2 * (4 + 3) * 8
    s = scipy.sparse.csr_array(W)
    assert bytes_read(s) == s.data.nbytes + s.indices.nbytes + s.indptr.nbytes + 7 * 4
    with pytest.raises(ValueError):
        bytes_read(c, batch=0)
    with pytest.raises(TypeError):
        bytes_read(W)


def test_result_bytes_match_bytes_read(W, result):
    cser = le.CSER.from_dense(W)
    assert result.bytes_read["cser"] == bytes_read(cser, batch=3)


def test_read_bandwidth_is_positive_and_finite():
    bw = read_bandwidth(4 * 2**20, rounds=3)
    assert isinstance(bw, float) and bw > 0 and math.isfinite(bw)
    with pytest.raises(ValueError):
        read_bandwidth(rounds=0)


def test_progress_is_called_after_every_round(W):
    calls = []
    r = time_formats(W, rounds=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls.clear()
    r = time_formats(W, budget=0.05, progress=lambda done, total: calls.append((done, total)))
    dones = [d for d, _ in calls]
    assert dones == list(range(1, len(calls) + 1))
    assert {t for _, t in calls} == {r.rounds} and dones[-1] == r.rounds


def test_budget_sets_the_number_of_rounds(W, monkeypatch):
    # A fake clock: every product "takes" 10 ms, so a round of n candidates takes n/100 s.
    import lowentropy.bench as bench

    now = [0.0]

    def tick():
        now[0] += 0.01  # a call reads the clock at its start and its end
        return now[0]

    monkeypatch.setattr(bench.time, "perf_counter", tick)
    r = time_formats(W, batch=4, budget=1.0)
    per_round = 0.01 * len(r.timings)
    assert r.rounds == max(3, int((1.0 - per_round) / per_round))
    assert all(t.median == pytest.approx(0.01) for t in r.timings.values())
    assert time_formats(W, budget=1e-6).rounds == 3  # at least 3
    assert time_formats(W, budget=1e6).rounds == 200  # at most 200


def test_given_input_and_pre_encoded_formats(W):
    x = np.random.default_rng(0).standard_normal((W.shape[1], 2)).astype(np.float32)
    encoded = {"csr": le.CSR.from_dense(W), SCIPY: scipy.sparse.csr_array(W)}
    r = time_formats(W, encoded, x=x, rounds=3)
    assert r.batch == 2 and set(r.timings) == {"csr", SCIPY}
    with pytest.raises(ValueError, match="shape"):
        time_formats(W, {"csr": le.CSR.from_dense(W[:-1])}, rounds=3)


def test_bad_input_raises():
    W = np.ones((4, 5), np.float32)
    W[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        time_formats(W, rounds=3)
    with pytest.raises(ValueError, match="NaN"):
        time_formats(W, include_scipy=True, formats=[], rounds=3)
    good = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError):
        time_formats(good, batch=0)
    with pytest.raises(ValueError):
        time_formats(good, budget=0)
    with pytest.raises(ValueError):
        time_formats(good, x=np.ones(4, np.float32))
    with pytest.raises(KeyError):
        time_formats(good, ["nope"])


def test_a_wrong_product_is_caught_before_timing():
    W = np.eye(3, dtype=np.float32)

    class Wrong:
        shape = (3, 3)
        dtype = np.dtype(np.float32)

        def arrays(self):
            return {}

        def __matmul__(self, x):
            return 2 * x

    with pytest.raises(AssertionError, match="differs"):
        time_formats(W, {"wrong": Wrong()}, rounds=3)


def test_bench_result_is_a_plain_dataclass():
    t = Timing("a", (1.0, 2.0, 3.0))
    r = BenchResult({"a": t, "dense": Timing("dense", (4.0,))}, {"a": 8, "dense": 16}, 1, (2, 2))
    assert r.speedup("a") == 2.0 and r.gb_per_s("a") == pytest.approx(4e-9)


def test_run_script_quick_smoke(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--cases", "conv",
         "--batches", "1,2", "--scale", "0.05", "--budget", "0.05", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "machine:" in proc.stdout and "of limit" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert [c["case"] for c in data["cases"]] == ["conv", "conv"]
    assert [c["batch"] for c in data["cases"]] == [1, 2]
    names = {row["name"] for row in data["cases"][0]["rows"]}
    torch_installed = importlib.util.find_spec("torch") is not None
    assert names == set(le.FORMATS) | {SCIPY} | ({"torch_csr"} if torch_installed else set())
    assert data["bandwidth"]["median"] > 0
    assert (out / "results.md").read_text().startswith("Machine: ")
    summary = data["cases"][0]["summary"]
    assert summary["best_ours"] in ("cer", "cser") and summary["lead_over_best_peer"] > 0
    assert 0 < summary["cser_bandwidth_share"] and summary["cer_minimal_bytes"] > 0
    assert "lead over the best peer" in proc.stdout
    assert data["mixed"] is None  # only with the vgg16_fc6 case


def test_mixed_process_script_reports_medians(tmp_path):
    W = synthetic_layer((64, 300), keep=0.1, levels=8)
    arrays = {"shape": np.array(W.shape)}
    for name in ("cer", "cser"):
        f = le.get_format(name).from_dense(W)
        arrays.update({f"{name}/{k}": v for k, v in f.arrays().items()})
    path = tmp_path / "arrays.npz"
    np.savez(path, **arrays)
    orders = ["clean"] + (["first", "last"] if importlib.util.find_spec("torch") else [])
    for order in orders:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "mixed.py"), order, str(path),
             "--rounds", "2", "--batches", "1,3", "--policies", "auto,serial"],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["order"] == order
        keys = {f"{f}/B{b}/{p}" for f in ("cer", "cser") for b in (1, 3)
                for p in ("auto", "serial")}
        assert keys <= set(result["median_ms"])
        assert all(v > 0 for v in result["median_ms"].values())
        assert ("torch_mm" in result["median_ms"]) is (order != "clean")
    if importlib.util.find_spec("torch"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "mixed.py"), "torch", str(path),
             "--rounds", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert set(result["median_ms"]) == {"torch_mm", "torch_mlp_b1"}


def test_run_script_rejects_unknown_case(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--cases", "nope",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2 and "unknown case" in proc.stderr
