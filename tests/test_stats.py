"""Statistics (SPEC §1, §4 entropy floor) on hand examples, conversions, and a matrix with
very many distinct values (the sort fallback of the value count)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from reference import (
    as_matrix,
    ref_cer,
    ref_cser,
    ref_dot,
    ref_omega_counts,
    ref_stats,
    tolerance,
)

import lowentropy as le


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _assert_stats_equal_reference(s, W) -> None:
    ref = ref_stats(W)
    assert s.shape == ref["shape"]
    assert s.dtype == ref["dtype"]
    assert np.array_equal(_bits(s.omega), _bits(ref["omega"]))
    assert np.array_equal(s.counts, ref["counts"])
    assert s.K == ref["K"]
    assert s.H == pytest.approx(ref["H"], rel=1e-10, abs=1e-12)
    assert s.p0 == pytest.approx(ref["p0"], rel=1e-12)
    assert s.N == ref["N"]
    assert s.zeros == ref["zeros"]
    assert s.nnz == ref["nnz"]
    assert s.sparsity == pytest.approx(ref["sparsity"], rel=1e-12)
    assert np.array_equal(s.groups_cer, ref["groups_cer"])
    assert np.array_equal(s.groups_cser, ref["groups_cser"])
    assert s.G_cer == ref["G_cer"]
    assert s.G_cser == ref["G_cser"]


# --- hand examples -------------------------------------------------------------------------

@pytest.mark.nojit
def test_small_example():
    s = le.stats(np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]))
    assert s.omega.tolist() == [0.0, 1.0, 2.0]
    assert s.counts.tolist() == [3, 2, 1]
    assert (s.K, s.N, s.zeros, s.nnz) == (3, 3, 3, 3)
    expected_H = -(0.5 * math.log2(0.5) + (1 / 3) * math.log2(1 / 3) + (1 / 6) * math.log2(1 / 6))
    assert s.H == pytest.approx(expected_H, rel=1e-12)
    assert round(s.H, 4) == 1.4591
    assert s.p0 == 0.5 and s.sparsity == 0.5
    assert s.groups_cer.tolist() == [1, 2]
    assert s.groups_cser.tolist() == [1, 1]
    assert (s.G_cer, s.G_cser) == (3, 2)


@pytest.mark.nojit
def test_nonzero_omega0_sparsity_differs_from_p0():
    """A quantized, unpruned matrix: ω_0 = 0.5 is not zero; sparsity counts exact zeros."""
    W = np.array([[0.5, 0.5, 0.0, 0.5], [0.5, -1.0, 0.5, -0.0], [0.5, 0.5, 0.5, 2.0]])
    s = le.stats(W)
    assert s.omega.tolist() == [0.5, 0.0, -1.0, 2.0]
    assert s.counts.tolist() == [8, 2, 1, 1]
    assert s.p0 == pytest.approx(8 / 12)
    assert s.zeros == 2
    assert s.sparsity == pytest.approx(2 / 12)
    assert s.nnz == 10
    assert s.N == 4
    assert s.groups_cer.tolist() == [1, 2, 3]
    assert s.groups_cser.tolist() == [1, 2, 1]
    _assert_stats_equal_reference(s, W)


@pytest.mark.nojit
def test_ties_ordered_by_ascending_value():
    s = le.stats(np.array([[3.0, -1.0, 2.0], [2.0, 3.0, -1.0]]))
    assert s.omega.tolist() == [-1.0, 2.0, 3.0]
    assert s.counts.tolist() == [2, 2, 2]
    assert s.H == pytest.approx(math.log2(3), rel=1e-12)
    s = le.stats(np.array([[0.0, 0.0, 5.0, -5.0, 1.0, 1.0, -5.0, 5.0]]))
    assert s.omega.tolist() == [-5.0, 0.0, 1.0, 5.0]


@pytest.mark.nojit
def test_negative_zero_counted_as_zero():
    W = np.array([[-0.0, 0.0, 1.0], [-0.0, 1.0, -0.0]], np.float32)
    s = le.stats(W)
    assert s.omega.tolist() == [0.0, 1.0]
    assert not np.signbit(s.omega[0])
    assert s.counts.tolist() == [4, 2]
    assert s.zeros == 4 and s.nnz == 2
    assert le.entropy(W) == pytest.approx(le.entropy(np.abs(W)))


@pytest.mark.nojit
@pytest.mark.parametrize("shape", [(0, 0), (0, 4), (3, 0)])
def test_empty_matrix(shape):
    s = le.stats(np.zeros(shape))
    assert s.K == 0 and s.N == 0 and s.omega.size == 0 and s.counts.size == 0
    assert s.H == 0.0 and s.p0 == 0.0 and s.sparsity == 0.0 and s.nnz == 0
    assert s.groups_cer.tolist() == [0] * shape[0]
    assert s.groups_cser.tolist() == [0] * shape[0]
    assert s.entropy_floor_bits(32) == 0
    assert le.entropy(np.zeros(shape)) == 0.0


@pytest.mark.nojit
@pytest.mark.parametrize("value", [0.0, 3.25, -1e-300])
def test_single_value(value):
    W = np.full((3, 4), value)
    s = le.stats(W)
    assert s.K == 1 and s.N == 0 and s.H == 0.0 and s.p0 == 1.0
    assert s.G_cer == s.G_cser == 0
    assert s.sparsity == (1.0 if value == 0 else 0.0)
    assert s.entropy_floor_bits(16) == 16


@pytest.mark.nojit
@pytest.mark.parametrize("K", [2, 4, 5, 16])
def test_uniform_distribution_entropy(K):
    W = np.tile(np.arange(K, dtype=np.float64), (3, 2))
    assert le.entropy(W) == pytest.approx(math.log2(K), rel=1e-12)
    assert le.stats(W).H == pytest.approx(math.log2(K), rel=1e-12)


@pytest.mark.nojit
@pytest.mark.parametrize("value_bits", [1, 8, 32, 64])
def test_entropy_floor(value_bits):
    W = np.array([
        [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
        [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
        [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
        [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
    ], float)
    s = le.stats(W)
    assert s.entropy_floor_bits(value_bits) == pytest.approx(48 * s.H + 4 * value_bits)
    assert s.entropy_floor_bits() == pytest.approx(48 * s.H + 4 * 32)
    # every format is a lossless code of the matrix: none beats the floor by much
    # (this matrix has the codebook overhead K·value_bits of every grouped format)
    for F in (le.CER, le.CSER):
        assert F.from_dense(W).storage("ideal", value_bits).total_bits >= 48 * s.H


@pytest.mark.nojit
def test_as_dict():
    s = le.stats(np.array([[0.5, 0.5, 0.0], [0.5, 2.0, 0.5]]))
    d = s.as_dict()
    assert d["m"] == 2 and d["n"] == 3 and d["K"] == 3 and d["N"] == 2
    assert d["omega0"] == 0.5 and d["nnz"] == 5


# --- conversions -------------------------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("src, expected", [
    (np.float16, np.float32), (np.int8, np.float32), (np.uint8, np.float32),
    (np.int16, np.float32), (np.uint16, np.float32), (np.bool_, np.float32),
    (np.int32, np.float64), (np.uint32, np.float64), (np.int64, np.float64),
    (np.uint64, np.float64), (np.float32, np.float32), (np.float64, np.float64),
])
def test_dtype_conversion(src, expected):
    base = np.array([[0, 1, 1, 0], [3, 0, 1, 0], [0, 0, 0, 1]])
    W = (base > 0) if src is np.bool_ else base.astype(src)
    s = le.stats(W)
    assert s.dtype == np.dtype(expected)
    assert s.omega.dtype == np.dtype(expected)
    _assert_stats_equal_reference(s, W)
    for F in le.FORMATS.values():
        f = F.from_dense(W)
        assert f.dtype == np.dtype(expected)
        assert np.array_equal(f.to_dense(), W.astype(expected))


@pytest.mark.nojit
def test_float16_values_exact_in_float32():
    W = np.array([[0.1, 0.1, 0.0], [65504.0, -6e-8, 0.1]], np.float16)  # max, subnormal
    s = le.stats(W)
    assert s.dtype == np.float32
    assert set(s.omega.tolist()) == set(W.astype(np.float32).ravel().tolist())
    assert np.array_equal(le.CSER.from_dense(W).to_dense(), W.astype(np.float32))


@pytest.mark.nojit
def test_int64_conversion_is_exact():
    W = np.array([[2**53, -(2**53), 0], [7, 0, 0]], np.int64)
    s = le.stats(W)
    assert s.dtype == np.float64
    assert sorted(s.omega.tolist()) == [-(2**53), 0, 7, 2**53]
    assert np.array_equal(le.CER.from_dense(W).to_dense(), W.astype(np.float64))


# --- many distinct values: the sort fallback ------------------------------------------------

def _many_distinct_threshold() -> int:
    """Distinct values above which lowentropy stops hashing (2**18 when written)."""
    from lowentropy import _values

    return int(getattr(_values, "MAX_HASHED", 1 << 18))


@pytest.mark.slow
def test_unquantized_600x600_stats_and_cser():
    """600×600 standard normal float64: K = 360000 distinct values, all of count 1.

    CSER and the statistics round-trip exactly. (CER is not built here: with every
    count 1 the ranks follow the value order and each row owns ~K groups, so
    G_CER ≈ 2·10^8 — that is the point of CER's padding, tested below on a shape where
    it fits in memory.)
    """
    rng = np.random.default_rng(600)
    W = rng.standard_normal((600, 600))
    assert np.unique(W).size == W.size > _many_distinct_threshold()
    s = le.stats(W)
    assert s.K == 360_000
    assert s.counts.max() == 1
    assert s.omega[0] == W.min()  # all counts tie: ω_0 is the smallest value
    assert np.all(np.diff(s.omega) > 0)
    assert s.H == pytest.approx(math.log2(360_000), rel=1e-12)
    assert s.N == 359_999
    assert s.G_cser == 359_999
    _assert_stats_equal_reference(s, W)
    f = le.CSER.from_dense(W)
    f.check()
    assert np.array_equal(f.to_dense(), W)
    ref = ref_cser(W)
    for key, arr in f.arrays().items():
        assert np.array_equal(arr, ref[key]), key
    assert f.arrays()["omega_idx"].max() == 359_999  # needs more than 16 bits
    x = rng.standard_normal(600)
    assert np.all(np.abs(f @ x - ref_dot(W, x)) <= tolerance(W, x, float(s.omega[0])))
    for F in (le.Dense, le.CSR):
        assert np.array_equal(F.from_dense(W).to_dense(), W)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cer", "cser"])
def test_many_distinct_values_with_dominant_omega0(name):
    """Sort fallback with a non-zero ω_0, zeros of both signs and columns beyond 2**16:
    arrays equal the reference, exact round trip, products within tolerance."""
    rng = np.random.default_rng(70)
    m, n = 4, 80_000
    W = rng.standard_normal((m, n))
    W[rng.random((m, n)) < 0.125] = 1.5  # ω_0
    zeros = rng.random((m, n)) < 0.01
    W[zeros] = np.where(rng.random(zeros.sum()) < 0.5, 0.0, -0.0)
    s = le.stats(W)
    assert s.K > _many_distinct_threshold()
    assert s.omega[0] == 1.5 and s.omega[1] == 0.0 and not np.signbit(s.omega[1])
    _assert_stats_equal_reference(s, W)
    f = le.FORMATS[name].from_dense(W)
    f.check()
    out = f.to_dense()
    assert np.array_equal(out, W)
    assert np.array_equal(_bits(out), _bits(as_matrix(W)))
    ref = (ref_cer if name == "cer" else ref_cser)(W)
    for key, arr in f.arrays().items():
        assert np.array_equal(arr, ref[key]), key
    x = rng.uniform(-1, 1, n)
    assert np.all(np.abs(f @ x - ref_dot(W, x)) <= tolerance(W, x, 1.5))
    X = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    assert np.all(np.abs(f @ X - ref_dot(W, X)) <= tolerance(W, X, 1.5))


@pytest.mark.slow
def test_large_matrix_counted_in_parallel_chunks():
    """More than 2**21 entries: the value count runs in chunks whose tables are merged."""
    rng = np.random.default_rng(2048)
    levels = np.array([0.0, -0.0, 0.125, -0.125, 0.5, -0.75, 1.0, 3.0, -2.5, 0.0625],
                      np.float32)
    W = levels[rng.choice(levels.size, p=[0.3, 0.3, 0.1, 0.1, 0.06, 0.05, 0.04, 0.02,
                                           0.02, 0.01], size=(1500, 1500))]
    W[0, :8] = [0.25, 0.25, -4.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # rare values in one chunk only
    W[-1, -3:] = [8.0, 8.0, 8.0]
    s = le.stats(W)
    omega, counts = ref_omega_counts(W)
    assert np.array_equal(_bits(s.omega), _bits(omega))
    assert np.array_equal(s.counts, counts)
    assert s.zeros == counts[0] and s.N == W.size - counts[0]
    for F in (le.CER, le.CSER):
        f = F.from_dense(W)
        assert np.array_equal(_bits(f.to_dense()), _bits(as_matrix(W)))
        assert f.N == s.N


def _seconds(fn, *args) -> float:
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.slow
def test_counting_many_distinct_values_is_fast_for_every_bit_pattern():
    """Counting K distinct values costs about the same whatever their bit patterns.

    Random float64 values spread over all 64 bits; float32 patterns fit in 32 bits, and
    integer-valued or dyadic float64 values have 32 low bits of zero. A hash whose slot
    is not a mixing function of every bit (e.g. the top bits of a product that cannot
    wrap) maps such keys to long runs of neighbouring slots, and linear probing turns
    the count quadratic.
    """
    rng = np.random.default_rng(50)
    K = 50_000
    le.stats(np.ones((2, 2), np.float32))  # compile both dtypes before timing
    le.stats(np.ones((2, 2)))
    baseline = _seconds(le.stats, rng.standard_normal((1, K)))  # best of two
    limit = max(0.5, 30 * baseline)
    cases = {
        "float32 normal": rng.standard_normal((1, K)).astype(np.float32),
        "float64 integers": rng.permutation(K).astype(np.float64)[None, :],
        "float64 multiples of 2**-16": (rng.permutation(K) / 65536.0)[None, :],
    }
    times = {}
    for label, W in cases.items():
        t0 = time.perf_counter()
        le.stats(W)
        times[label] = time.perf_counter() - t0
    slow = {label: round(t, 3) for label, t in times.items() if t > limit}
    assert not slow, f"{slow} s vs {baseline:.3f} s for random float64 (limit {limit:.2f} s)"
