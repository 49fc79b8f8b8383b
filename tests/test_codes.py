"""Quantization that carries its codes: ``le.Quantized``, ``quantize(return_codes=True,
prune=)``, statistics from the codes and every format built from them.

The reference for everything here is the float path: the dense tensor of the codes must
be bit for bit what ``quantize(prune(W))`` writes, and the statistics and the formats of a
``Quantized`` must equal those of its dense matrix exactly (same arrays, same dtypes).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowentropy as le
from lowentropy import _codes
from lowentropy.compress import error as err
from lowentropy.compress import kmeans as km

FLOATS = (np.float32, np.float64)
_LEVELS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, 1e-300, 3.0]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    width = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.array_equal(np.ascontiguousarray(a).view(width), np.ascontiguousarray(b).view(width))


@st.composite
def matrices(draw, max_side: int = 12) -> np.ndarray:
    """2-D float32/float64 matrices: tie-heavy (a few levels) or general floats."""
    dtype = draw(st.sampled_from(FLOATS))
    shape = (draw(st.integers(0, max_side)), draw(st.integers(0, max_side)))
    if draw(st.booleans()):
        levels = draw(st.lists(st.sampled_from(_LEVELS), min_size=1, max_size=5))
        elements = st.sampled_from(levels)
    else:
        width = 32 if dtype == np.float32 else 64
        elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=width)
    return draw(hnp.arrays(dtype, shape, elements=elements))


settings_ = st.one_of(
    st.tuples(st.just("uniform"), st.integers(2, 9)),
    st.tuples(st.just("kmeans"), st.integers(1, 12)),
)
fractions = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 1.0]), st.floats(0, 1))


def _quantize(W, setting, fraction, **kw):
    method, level = setting
    key = "bits" if method == "uniform" else "clusters"
    return le.quantize(W, method, prune=fraction, **{key: level}, **kw)


def assert_stats_equal(a: le.Stats, b: le.Stats) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert same_bits(a.omega, b.omega)
    assert a.counts.dtype == b.counts.dtype and np.array_equal(a.counts, b.counts)
    assert a.H == b.H and a.N == b.N and a.zeros == b.zeros
    assert a.groups_cer.dtype == b.groups_cer.dtype
    assert np.array_equal(a.groups_cer, b.groups_cer)
    assert np.array_equal(a.groups_cser, b.groups_cser)


def assert_formats_equal(q: le.Quantized, W: np.ndarray) -> None:
    for name, F in le.FORMATS.items():
        from_codes, from_dense = F.from_dense(q).arrays(), F.from_dense(W).arrays()
        assert list(from_codes) == list(from_dense)
        for array_name, arr in from_codes.items():
            ref = from_dense[array_name]
            assert arr.dtype == ref.dtype, (name, array_name)
            assert np.array_equal(arr, ref), (name, array_name)
            if arr.dtype.kind == "f":
                assert same_bits(arr, ref), (name, array_name)


# --- the quantizers ----------------------------------------------------------------------

@given(matrices(), settings_, fractions)
def test_codes_are_the_float_path(W, setting, fraction):
    """The codes' tensor is bit for bit ``quantize(prune(W))``; the error is the one
    ``quantization_error`` measures against ``W``, exactly."""
    q = _quantize(W, setting, fraction, return_codes=True)
    expected = _quantize(le.prune(W, fraction), setting, 0.0)
    dense = q.to_dense()
    assert same_bits(dense, expected)
    assert same_bits(_quantize(W, setting, fraction), expected)  # the array result too
    assert q.codes.shape == W.shape
    assert q.codes.dtype == (np.uint8 if q.K <= 256 else np.uint16)
    assert q.codebook.dtype == W.dtype
    assert np.all(np.diff(q.codebook) > 0)  # ascending, distinct
    assert not np.signbit(q.codebook[q.codebook == 0]).any()
    assert q.error == le.quantization_error(W, dense)


@given(matrices(), settings_, fractions)
def test_statistics_and_formats_from_codes_equal_the_float_path(W, setting, fraction):
    q = _quantize(W, setting, fraction, return_codes=True)
    dense = q.to_dense()
    assert_stats_equal(le.stats(q), le.stats(dense))
    assert le.entropy(q) == le.entropy(dense)
    assert_formats_equal(q, dense)


@settings(max_examples=20)
@given(matrices(max_side=30), settings_, fractions)
def test_two_pass_statistics_equal_the_table(W, setting, fraction):
    """Many rows times many codes: the counts and the row groups come from two passes
    over the codes instead of the (row, code) table; the same statistics."""
    q = _quantize(W, setting, fraction, return_codes=True)
    saved = _codes.TABLE_LIMIT
    _codes.TABLE_LIMIT = 0
    try:
        assert_stats_equal(le.stats(q), le.stats(q.to_dense()))
    finally:
        _codes.TABLE_LIMIT = saved


def test_large_layer_uses_the_histogram_path_and_parallel_kernels():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((700, 400)).astype(np.float32)  # > EXACT_LIMIT non-zeros
    for method, kw in (("kmeans", {"clusters": 32}), ("uniform", {"bits": 6})):
        q = le.quantize(W, method, prune=0.7, return_codes=True, **kw)
        dense = le.quantize(le.prune(W, 0.7), method, **kw)
        assert same_bits(q.to_dense(), dense)
        assert q.error == le.quantization_error(W, dense)
        assert_stats_equal(le.stats(q), le.stats(dense))
        assert_formats_equal(q, dense)


def test_pruning_ties_cut_at_the_right_position():
    """Many equal magnitudes around the threshold: the pruning rule's tie position."""
    W = np.tile(np.array([0.5, -0.5, 0.25, -0.25, 1.0], np.float32), 60_000).reshape(600, 500)
    for fraction in (0.3, 0.5, 0.55, 0.61):
        q = le.quantize(W, "kmeans", clusters=3, prune=fraction, return_codes=True)
        assert same_bits(q.to_dense(), le.quantize(le.prune(W, fraction), "kmeans",
                                                   clusters=3))


# --- edge cases ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_all_pruned(dtype):
    W = np.arange(1, 13, dtype=dtype).reshape(3, 4)
    for method, kw in (("kmeans", {"clusters": 4}), ("uniform", {"bits": 4})):
        q = le.quantize(W, method, prune=1.0, return_codes=True, **kw)
        assert same_bits(q.to_dense(), np.zeros_like(W))
        s = le.stats(q)
        assert s.omega.tolist() == [0.0] and s.counts.tolist() == [12] and s.N == 0
        assert q.error == le.quantization_error(W, np.zeros_like(W))
        assert_formats_equal(q, q.to_dense())


def test_one_cluster_and_one_value():
    W = np.array([[0.0, 2.0, 4.0], [0.0, 0.0, -3.0]])
    q = le.quantize(W, "kmeans", clusters=1, return_codes=True)
    assert q.to_dense().tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]
    assert le.stats(q).omega.tolist() == [0.0, 1.0]
    q = le.quantize(np.full((2, 3), 7.0, np.float32), "kmeans", clusters=5, return_codes=True)
    s = le.stats(q)  # the codebook holds 0, which no weight took: dropped from Ω
    assert q.codebook.tolist() == [0.0, 7.0]
    assert s.omega.tolist() == [7.0] and s.K == 1 and s.N == 0
    assert_stats_equal(s, le.stats(q.to_dense()))
    assert_formats_equal(q, q.to_dense())


def test_empty_and_tiny_layers():
    for shape in [(0, 0), (0, 5), (4, 0), (1, 1)]:
        W = np.ones(shape, np.float32)
        q = le.quantize(W, "uniform", bits=3, return_codes=True)
        assert q.shape == shape and same_bits(q.to_dense(), le.quantize(W, "uniform", bits=3))
        assert_stats_equal(le.stats(q), le.stats(q.to_dense()))
        assert_formats_equal(q, q.to_dense())
    q = le.quantize(np.zeros((0, 3)), "kmeans", clusters=2, return_codes=True)
    assert q.error.mse == 0.0 and q.error.snr_db == math.inf


def test_other_real_dtypes_are_converted():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 7)).astype(ml_dtypes.bfloat16)
    q = le.quantize(W, "kmeans", clusters=4, prune=0.3, return_codes=True)
    W32 = W.astype(np.float32)
    assert q.dtype == np.float32
    assert same_bits(q.to_dense(), le.quantize(le.prune(W32, 0.3), "kmeans", clusters=4))
    assert q.error == le.quantization_error(W32, q.to_dense())
    q16 = le.quantize(np.arange(-6, 6, dtype=np.int16).reshape(3, 4), "uniform", bits=3,
                      return_codes=True)
    assert q16.dtype == np.float32


def test_convolution_kernels_keep_their_shape():
    W = np.random.default_rng(2).standard_normal((4, 3, 2, 2)).astype(np.float32)
    q = le.quantize(W, "kmeans", clusters=5, return_codes=True)
    assert q.shape == (4, 3, 2, 2)
    with pytest.raises(ValueError, match="2-D"):
        le.stats(q)
    with pytest.raises(ValueError, match="2-D"):
        le.CSER.from_dense(q)
    m = q.reshape(4, -1)
    assert m.error is q.error and m.shape == (4, 12)
    assert_stats_equal(le.stats(m), le.stats(q.to_dense().reshape(4, -1)))
    assert_formats_equal(m, q.to_dense().reshape(4, -1))


def test_uniform_with_many_bits_takes_the_general_path():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((30, 40)).astype(np.float64)
    q = le.quantize(W, "uniform", bits=20, prune=0.2, return_codes=True)
    dense = le.quantize(le.prune(W, 0.2), "uniform", bits=20)
    assert same_bits(q.to_dense(), dense)
    assert q.codes.dtype == np.uint16  # K <= 1200 distinct values
    assert np.array_equal(q.codebook, np.unique(dense))
    assert q.error == le.quantization_error(W, dense)
    assert_stats_equal(le.stats(q), le.stats(dense))
    assert le.quantize(W, "uniform", bits=16, return_codes=True).codes.dtype == np.uint16
    assert le.quantize(W, "uniform", bits=8, return_codes=True).codes.dtype == np.uint8


def test_levels_that_collide_in_the_dtype_share_a_code():
    """A tiny largest magnitude: many levels round to the same float32 (or to 0)."""
    W = np.array([[1e-45, -1e-45, 0.0, 3e-45]], np.float32)
    q = le.quantize(W, "uniform", bits=8, return_codes=True)
    assert same_bits(q.to_dense(), le.quantize(W, "uniform", bits=8))
    assert np.all(np.diff(q.codebook) > 0)
    assert_stats_equal(le.stats(q), le.stats(q.to_dense()))


def test_huge_float64_weights_are_scaled_for_kmeans():
    W = np.array([[1e306, -1e306, 0.0], [5e305, 2e306, -3e305]])
    q = le.quantize(W, "kmeans", clusters=2, return_codes=True)
    assert same_bits(q.to_dense(), le.quantize(W, "kmeans", clusters=2))
    assert q.error == le.quantization_error(W, q.to_dense())


def test_memory_budget_applies_to_codes_and_dense():
    W = np.ones((100, 100), np.float32)
    previous = le.set_memory_budget(5000)
    try:
        with pytest.raises(le.MemoryBudgetError, match="codes"):
            le.quantize(W, "kmeans", clusters=4, return_codes=True)
    finally:
        le.set_memory_budget(previous)
    q = le.quantize(W, "kmeans", clusters=4, return_codes=True)
    previous = le.set_memory_budget(20_000)
    try:
        with pytest.raises(le.MemoryBudgetError, match="dense"):
            q.to_dense()
    finally:
        le.set_memory_budget(previous)


def test_quantize_rejects_bad_prune():
    with pytest.raises(ValueError, match="prune"):
        le.quantize(np.ones(3), "uniform", bits=3, prune=1.5)
    with pytest.raises(TypeError, match="prune"):
        le.quantize(np.ones(3), "uniform", bits=3, prune="half")
    with pytest.raises(ValueError, match="NaN"):
        le.quantize(np.array([1.0, np.nan]), "kmeans", clusters=2, prune=0.5,
                    return_codes=True)


# --- the type ------------------------------------------------------------------------------

@given(st.integers(0, 6), st.integers(0, 6), st.lists(st.sampled_from(_LEVELS), min_size=1,
                                                       max_size=6),
       st.sampled_from([np.uint8, np.uint16, np.uint32]), st.sampled_from(FLOATS), st.data())
def test_general_codebooks_repeat_and_unused_values(m, n, levels, code_type, dtype, data):
    """Repeated values (also -0.0 next to 0.0) are merged and unused ones dropped, so the
    statistics and the formats are those of the dense matrix."""
    codebook = np.array(levels, dtype)
    codes = data.draw(hnp.arrays(code_type, (m, n), elements=st.integers(0, len(levels) - 1)))
    q = le.Quantized(codes, codebook)
    dense = q.to_dense()
    assert same_bits(dense, (codebook[codes.astype(np.int64)] + dtype(0)).reshape(m, n))
    assert same_bits(np.asarray(q), dense)
    assert_stats_equal(le.stats(q), le.stats(dense))
    assert_formats_equal(q, dense)


def test_quantized_validates_and_is_read_only():
    codes = np.array([[0, 1], [1, 2]], np.uint8)
    q = le.Quantized(codes, [0.0, -0.0, 1.5])
    codes[0, 0] = 2  # the caller's array is copied
    assert q.codes[0, 0] == 0 and not q.codes.flags.writeable
    assert not np.signbit(q.codebook).any() and not q.codebook.flags.writeable
    assert q.error is None and "K=3" in repr(q)
    with pytest.raises(TypeError, match="uint8, uint16 or uint32"):
        le.Quantized(codes.astype(np.int64), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="below the codebook's size 2"):
        le.Quantized(codes, [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        le.Quantized(codes, [0.0, np.inf, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        le.Quantized(codes, np.zeros((3, 1)))
    with pytest.raises(TypeError, match="real numbers"):
        le.Quantized(codes, ["a", "b", "c"])
    assert le.Quantized(codes, np.arange(3, dtype=np.int16)).dtype == np.float32


def test_quantized_works_wherever_a_matrix_does():
    q = le.quantize(np.array([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]]), "uniform", bits=3,
                    return_codes=True)
    rows = le.compare(q)
    assert [r.format for r in rows] == [r.format for r in le.compare(q.to_dense())]
    assert le.quantization_error(q.to_dense(), q).mse == 0.0


# --- the error sums ------------------------------------------------------------------------

@given(hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-1e3, 1e3)),
       st.integers(0, 2**32 - 1))
def test_lane_sums_equal_a_naive_reference(a, seed):
    b = a + np.random.default_rng(seed).standard_normal(a.size)
    e, r, p = err.lane_sums(a, b, a.size)
    d = a - b
    assert e == pytest.approx(float(np.sum(d * d)), rel=1e-12, abs=1e-300)
    assert r == pytest.approx(float(np.sum(a * a)), rel=1e-12, abs=1e-300)
    assert p == (float(np.abs(d).max()) if a.size else 0.0)


def _lanes_reference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """The documented order: entry ``i`` into lane ``i % 4`` (the tail after the last
    multiple of 4 into lane 0), lanes added pairwise."""
    e, r, p = [0.0] * 4, [0.0] * 4, [0.0] * 4
    n4 = a.size - a.size % 4
    for i in range(a.size):
        lane = i % 4 if i < n4 else 0
        d = float(a[i]) - float(b[i])
        e[lane] += d * d
        r[lane] += float(a[i]) ** 2
        p[lane] = max(p[lane], abs(d))
    return (e[0] + e[1]) + (e[2] + e[3]), (r[0] + r[1]) + (r[2] + r[3]), max(p)


@given(hnp.arrays(np.float64, st.integers(0, 60),
                  elements=st.sampled_from([1e16, -1e16, 1.0, 3.0, 1e-8, 0.0])))
def test_lane_sums_follow_their_fixed_order_exactly(a):
    """Values whose sums depend on the order (1e16 + 1 rounds): the lanes' order, bit
    for bit, on every machine."""
    b = a[::-1].copy()
    assert err.lane_sums(a, b, a.size) == _lanes_reference(a, b)


@given(hnp.arrays(np.float64, st.integers(0, 70), elements=st.floats(-2e38, 2e38)),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**32 - 1), st.booleans())
def test_lane_sums_vector_lanes_equal_the_scalar_chains(a, a_dtype, b_dtype, seed, strided):
    """The compiled 4-wide vector (contiguous float32/float64 operands, either mixed) and
    the scalar fallback (strided operands) give the scalar definition's result, bit for
    bit, at every length and tail (subnormal and huge values included)."""
    rng = np.random.default_rng(seed)
    b = (a * rng.uniform(0.5, 1.5, a.size) + rng.standard_normal(a.size)).astype(b_dtype)
    a = a.astype(a_dtype)
    if strided:
        a, b = np.repeat(a, 2)[::2], np.repeat(b, 2)[::2]
    assert err.lane_sums(a, b, a.size) == err._lanes(a, b, a.size)


def test_kmeans_codebook_merges_colliding_centroids():
    u = np.array([1.0, 1.0 + 1e-12, 2.0])
    codebook, code_of_centroid, zero = km.kmeans_codebook(u, np.dtype(np.float32))
    assert codebook.tolist() == [0.0, 1.0, 2.0]
    assert code_of_centroid.tolist() == [1, 1, 2] and zero == 0
