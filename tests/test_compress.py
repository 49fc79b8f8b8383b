"""Pruning and quantization (SPEC §6) against naive references.

The references here are the most direct numpy readings of the documented rules:
``argsort(kind="stable")`` for the pruning order, the uniform quantizer's formula, a
Lloyd loop with a full distance matrix for k-means and plain sums for the error measures.
The fast paths of the library (sampling, histogram narrowing, tie quotas, binned Lloyd,
the assignment table) are forced on small inputs through their private knobs.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowentropy.compress import (
    METHODS,
    QuantizationError,
    prune,
    prune_global,
    quantization_error,
    quantize,
)
from lowentropy.compress import kmeans as km
from lowentropy.compress._select import _RUN, _SAMPLE
from lowentropy.compress._select import prune_flat as _prune_flat
from lowentropy.networks.model import Layer, Network

FLOATS = (np.float32, np.float64)

# --- naive references ---------------------------------------------------------------------


def ref_prune_flat(flat: np.ndarray, k: int) -> np.ndarray:
    """Zero the ``k`` smallest ``|w|``, ties by position (a stable argsort); ``-0.0`` -> 0."""
    out = flat.copy()
    out[np.argsort(np.abs(flat), kind="stable")[:k]] = 0
    out[out == 0] = 0
    return out


def ref_prune(W: np.ndarray, fraction: float) -> np.ndarray:
    return ref_prune_flat(W.ravel(), round(fraction * W.size)).reshape(W.shape)


def ref_uniform(W: np.ndarray, bits: int) -> np.ndarray:
    L = 2 ** (bits - 1) - 1
    w = W.astype(np.float64)
    peak = np.abs(w).max() if w.size else 0.0
    if peak == 0:
        return np.zeros_like(W)
    k = np.clip(np.rint(w * (L / peak)), -L, L)
    return (k * (peak / L) + 0.0).astype(W.dtype)


def ref_lloyd(W: np.ndarray, k: int, max_iter: int = 100):
    """Lloyd on the non-zero weights: linspace start, argmin assignment (first minimum),
    means, empty clusters kept, centroids sorted, stop at a fixed point."""
    w = W.astype(np.float64).ravel()
    v = w[w != 0]
    if v.size == 0:
        return np.zeros_like(W), None
    c = np.linspace(v.min(), v.max(), k)
    for _ in range(max_iter):
        a = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
        new = np.array([v[a == j].mean() if (a == j).any() else c[j] for j in range(k)])
        new.sort()
        if np.array_equal(new, c):
            break
        c = new
    out = np.zeros_like(w)
    out[w != 0] = c[np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)]
    return (out + 0.0).astype(W.dtype).reshape(W.shape), c


def nearest_values(W: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Every non-zero weight replaced by its nearest centroid (float64 distances, ties to
    the first), rounded to ``W.dtype``; zeros stay 0."""
    w = W.astype(np.float64).ravel()
    j = np.argmin(np.abs(w[:, None] - centroids[None, :]), axis=1)
    out = centroids[j].astype(W.dtype) + W.dtype.type(0)
    out[w == 0] = 0
    return out.reshape(W.shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bit patterns (tells ``-0.0`` from ``+0.0``)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --- strategies ---------------------------------------------------------------------------

_TIES = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 1e-3, -3.0, 0.1)


@st.composite
def tensors(draw, max_side: int = 9, min_size: int = 0) -> np.ndarray:
    """Any-dimensional float32/float64 arrays of at most a few hundred entries: tie-heavy
    (a few levels, both zeros) or general floats over many magnitudes."""
    dtype = draw(st.sampled_from(FLOATS))
    ndim = draw(st.integers(0, 4))
    side = max(1, max_side - 2 * ndim)
    shape = tuple(draw(st.integers(0, side)) for _ in range(ndim))
    if draw(st.booleans()):
        levels = draw(st.lists(st.sampled_from(_TIES), min_size=1, max_size=4))
        elements = st.sampled_from(levels)
    else:
        width = 32 if dtype == np.float32 else 64
        elements = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=width)
    W = draw(hnp.arrays(dtype, shape, elements=elements))
    if W.size < min_size:
        W = np.resize(W if W.size else np.ones(1, dtype), min_size)
    return W


fractions = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.91]), st.floats(0, 1))


# --- prune --------------------------------------------------------------------------------

@given(tensors(), fractions)
def test_prune_equals_stable_argsort(W, fraction):
    out = prune(W, fraction)
    assert same_bits(out, ref_prune(W, fraction))
    assert np.count_nonzero(out == 0) >= round(fraction * W.size)


@settings(max_examples=80)
@given(tensors(max_side=20, min_size=1), st.data())
def test_every_selection_path_is_exact(W, data):
    """Sampling (tiny samples mislead it: both sides), histogram narrowing down to a single
    key (tie quotas per chunk) and candidate resolution all give the reference."""
    flat = W.ravel()
    k = data.draw(st.integers(0, flat.size), label="k")
    cand_limit = data.draw(st.sampled_from([0, 1, 3, 10**9]), label="cand_limit")
    sample = data.draw(st.sampled_from([0, 1, 2, 3]), label="sample")
    (out,) = _prune_flat([flat], k, cand_limit=cand_limit, sample=sample)
    assert same_bits(out, ref_prune_flat(flat, k))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("cand_limit", [3, 40, 10**9])
def test_threshold_among_candidates(dtype, cand_limit):
    """Candidates left after narrowing (a counting pass over their key range) and from the
    whole key range (a partial sort)."""
    rng = np.random.default_rng(cand_limit)
    flat = rng.standard_normal(500).astype(dtype)
    for k in (1, 137, 499):
        (out,) = _prune_flat([flat], k, cand_limit=cand_limit, sample=0)
        assert same_bits(out, ref_prune_flat(flat, k))


@pytest.mark.parametrize("dtype", FLOATS)
def test_prune_large_arrays_use_the_sample(dtype):
    """Big enough for the real sampling path (and 16 chunks), continuous and tied data."""
    rng = np.random.default_rng(7)
    W = rng.standard_normal((1030, 1024)).astype(dtype)
    for fraction in (0.91, 0.3):
        assert same_bits(prune(W, fraction), ref_prune(W, fraction))
    T = rng.integers(-3, 4, size=(1030, 1024)).astype(dtype)  # 1/7 of entries per level
    for fraction in (0.5, 0.2):
        assert same_bits(prune(T, fraction), ref_prune(T, fraction))


@pytest.mark.parametrize("dtype", FLOATS)
def test_prune_survives_a_misleading_sample(dtype):
    """The sampled entries (runs of 8 at evenly spaced positions) differ from all others,
    so the sample's range misses the threshold, below and above it."""
    n = 16 * _SAMPLE + 1000  # the smallest size that samples
    runs = _SAMPLE // _RUN
    starts = (np.arange(runs) * (n - _RUN)) // runs
    sampled = np.zeros(n, bool)
    sampled[(starts[:, None] + np.arange(_RUN)).ravel()] = True
    for inside, outside in ((2.0, 1.0), (0.5, 1.0)):
        W = np.where(sampled, inside, outside).astype(dtype)
        W[::1000] *= -1  # signs do not matter
        for fraction in (0.3, 0.97):
            assert same_bits(prune(W, fraction), ref_prune(W, fraction))


def test_prune_ties_lower_flat_index_first():
    W = np.array([[3.0, -1.0], [1.0, -1.0]])
    assert same_bits(prune(W, 0.25), np.array([[3.0, 0.0], [1.0, -1.0]]))
    assert same_bits(prune(W, 0.5), np.array([[3.0, 0.0], [0.0, -1.0]]))
    assert same_bits(prune(W, 0.75), np.array([[3.0, 0.0], [0.0, 0.0]]))


def test_prune_keeps_shape_dtype_and_input():
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((6, 3, 5, 5)).astype(np.float32)
    before = conv.copy()
    out = prune(conv, 0.5)
    assert out.shape == conv.shape and out.dtype == np.float32
    assert np.count_nonzero(out) == conv.size - round(0.5 * conv.size)
    assert np.array_equal(conv, before) and out is not conv


def test_prune_edge_fractions_and_zeros():
    W = np.array([-0.0, 2.0, 0.0, -1.0], dtype=np.float32)
    assert same_bits(prune(W, 0), np.array([0.0, 2.0, 0.0, -1.0], np.float32))
    assert same_bits(prune(W, 1), np.zeros(4, np.float32))
    assert prune(np.zeros((0, 3)), 0.5).shape == (0, 3)
    assert same_bits(prune(np.float64(-2.5), 0.0), np.array(-2.5))  # 0-d


def test_prune_converts_other_real_dtypes():
    assert prune(np.array([[1, -3, 2]], np.int16), 1 / 3).dtype == np.float32
    assert prune(np.array([1, 2], np.int64), 0.5).tolist() == [0.0, 2.0]
    assert prune(np.array([0.5, 0.25], np.float16), 0.5).dtype == np.float32


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_prune_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        prune(np.ones(3), fraction)


@pytest.mark.parametrize("fraction", ["0.5", None, True, 1j])
def test_prune_rejects_non_real_fraction(fraction):
    with pytest.raises(TypeError, match="fraction"):
        prune(np.ones(3), fraction)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", FLOATS)
def test_prune_rejects_non_finite(bad, dtype):
    W = np.ones((3, 4), dtype)
    W[1, 2] = bad
    W[2, 0] = bad
    with pytest.raises(ValueError, match=r"2 NaN or infinite.*\(1, 2\)"):
        prune(W, 0.5)


def test_prune_rejects_non_numeric():
    with pytest.raises(TypeError, match="real numbers"):
        prune(np.array(["a", "b"]), 0.5)


# --- prune_global -------------------------------------------------------------------------

@given(st.lists(tensors(max_side=7), min_size=1, max_size=4), fractions)
def test_prune_global_is_prune_of_the_concatenation(arrays, fraction):
    arrays = [a.astype(arrays[0].dtype) for a in arrays]
    flat = np.concatenate([a.ravel() for a in arrays])
    expected = ref_prune_flat(flat, round(fraction * flat.size))
    out = prune_global(arrays, fraction)
    assert isinstance(out, list) and len(out) == len(arrays)
    assert same_bits(np.concatenate([o.ravel() for o in out]), expected)
    assert [o.shape for o in out] == [a.shape for a in arrays]


@settings(max_examples=30)
@given(st.lists(tensors(max_side=20, min_size=1), min_size=2, max_size=3), st.data())
def test_global_selection_paths_span_arrays(arrays, data):
    """Tie quotas and candidates that straddle several arrays."""
    arrays = [a.ravel().astype(np.float32) for a in arrays]
    flat = np.concatenate(arrays)
    k = data.draw(st.integers(0, flat.size), label="k")
    cand_limit = data.draw(st.sampled_from([0, 2, 10**9]), label="cand_limit")
    outs = _prune_flat(arrays, k, cand_limit=cand_limit,
                       sample=data.draw(st.sampled_from([0, 2]), label="sample"))
    assert same_bits(np.concatenate(outs), ref_prune_flat(flat, k))


def test_prune_global_containers():
    a = np.array([[4.0, -1.0]], np.float32)
    b = np.array([0.5, 3.0, -2.0], np.float32)
    expected = [np.array([[4.0, 0.0]], np.float32), np.array([0.0, 3.0, -2.0], np.float32)]
    as_dict = prune_global({"a": a, "b": b}, 0.4)
    assert list(as_dict) == ["a", "b"]
    assert all(same_bits(x, y) for x, y in zip(as_dict.values(), expected, strict=True))
    as_tuple = prune_global((a, b), 0.4)
    assert isinstance(as_tuple, tuple)
    assert all(same_bits(x, y) for x, y in zip(as_tuple, expected, strict=True))
    assert prune_global([], 0.5) == []


def test_prune_global_network():
    rng = np.random.default_rng(1)
    net = Network("net", [Layer("conv", rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
                                "conv", uses_per_inference=9),
                          Layer("fc", rng.standard_normal((5, 72)).astype(np.float32))],
                  source="test", description="two layers")
    out = prune_global(net, 0.6)
    assert isinstance(out, Network) and out.names == net.names
    assert out["conv"].uses_per_inference == 9 and out["conv"].kind == "conv"
    flat = np.concatenate([layer.weight.ravel() for layer in net])
    got = np.concatenate([layer.weight.ravel() for layer in out])
    assert same_bits(got, ref_prune_flat(flat, round(0.6 * flat.size)))


def test_prune_global_mixed_dtypes_compares_in_float64():
    small = np.array([0.1], np.float32)  # 0.100000001490116... in float64
    exact = np.array([0.1], np.float64)
    out = prune_global([small, exact], 0.5)
    assert out[0].dtype == np.float32 and out[1].dtype == np.float64
    assert out[0][0] == np.float32(0.1) and out[1][0] == 0.0  # the float64 0.1 is smaller


def test_prune_global_rejects_bad_input():
    with pytest.raises(TypeError, match="dict of arrays"):
        prune_global(np.ones(3), 0.5)
    with pytest.raises(TypeError, match="dict of arrays"):
        prune_global("abc", 0.5)
    with pytest.raises(ValueError, match=r"weights\['b'\] holds 1 NaN"):
        prune_global({"a": np.ones(2), "b": np.array([1.0, np.nan])}, 0.5)


# --- quantize: uniform --------------------------------------------------------------------

@given(tensors(), st.integers(2, 12))
def test_uniform_equals_formula(W, bits):
    out = quantize(W, "uniform", bits=bits)
    assert same_bits(out, ref_uniform(W, bits))


@given(tensors(min_size=1), st.integers(2, 8))
def test_uniform_properties(W, bits):
    out = quantize(W, bits=bits)
    L = 2 ** (bits - 1) - 1
    w = W.astype(np.float64)
    peak = np.abs(w).max()
    assert np.all(out[W == 0] == 0)
    assert len(np.unique(out)) <= 2 * L + 1
    if peak > 0:
        step = peak / L
        k = out.astype(np.float64) / step
        tol = 1e-6 if W.dtype == np.float32 else 1e-9
        assert np.allclose(k, np.round(k), atol=tol * L + tol)  # on the grid
        assert np.all(np.abs(w - out) <= step / 2 * (1 + tol) + peak * tol)
    assert same_bits(quantize(-W, bits=bits), (-out + W.dtype.type(0)).astype(W.dtype))


def test_uniform_levels_example():
    W = np.array([-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 0.75, 1.0])
    assert quantize(W, "uniform", bits=2).tolist() == [-1, 0, 0, 0, 0, 0, 1, 1]  # half: even
    assert quantize(W, "uniform", bits=3).tolist() == pytest.approx(
        [-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 2 / 3, 1])


def test_uniform_zero_and_empty():
    assert same_bits(quantize(np.zeros((2, 2), np.float32), bits=4), np.zeros((2, 2), np.float32))
    assert quantize(np.zeros((0,)), bits=4).shape == (0,)


@pytest.mark.parametrize("bits", [1, 0, 33, -2])
def test_uniform_rejects_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"bits must be in \[2, 32\]"):
        quantize(np.ones(3), "uniform", bits=bits)


@pytest.mark.parametrize("bits", [None, 2.5, "4", True])
def test_uniform_rejects_bits_not_integer(bits):
    with pytest.raises(ValueError, match=r"needs bits= an integer in \[2, 32\]"):
        quantize(np.ones(3), "uniform", bits=bits)


# --- quantize: kmeans ---------------------------------------------------------------------

@st.composite
def continuous(draw) -> np.ndarray:
    """Random continuous weights (no ties to speak of), some exact zeros."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 300))
    W = (rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 50.0])))
    W[rng.random(n) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0
    return W.astype(draw(st.sampled_from(FLOATS)))


@given(continuous(), st.integers(1, 20))
def test_kmeans_equals_naive_lloyd(W, clusters):
    out = quantize(W, "kmeans", clusters=clusters)
    expected, c = ref_lloyd(W, clusters)
    rtol = 1e-5 if W.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=0)
    assert np.array_equal(out == 0, W == 0)
    if c is not None:
        mine = _centroids(W, clusters)
        np.testing.assert_allclose(mine, c, rtol=1e-10, atol=1e-12 * np.abs(c).max())


def _centroids(W: np.ndarray, clusters: int, max_iter: int = 100) -> np.ndarray:
    flat = np.ascontiguousarray(W).ravel()
    lo, hi, nnz, _ = km.nonzero_range(flat)
    return km.kmeans_centroids(flat, clusters, max_iter, (lo, hi, nnz))


@given(tensors(min_size=1), st.integers(1, 9))
def test_kmeans_assignment_is_exact_nearest(W, clusters):
    """With ties everywhere: each weight takes its nearest centroid exactly, zeros stay
    0, at most ``clusters + 1`` values, and the centroids are Lloyd fixed points (run to
    convergence)."""
    out = quantize(W, "kmeans", clusters=clusters, max_iter=100_000)
    assert out.dtype == W.dtype and out.shape == W.shape
    assert np.all(out[W == 0] == 0) and not np.signbit(out[out == 0]).any()
    assert len(np.unique(out)) <= clusters + 1
    if np.any(W != 0):
        c = _centroids(W, clusters, max_iter=100_000)
        assert same_bits(out, nearest_values(W, c))
        v = W.astype(np.float64).ravel()
        v = v[v != 0]
        a = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
        for j in np.unique(a):  # each used centroid is the mean of its weights
            assert c[j] == pytest.approx(v[a == j].mean(), rel=1e-9, abs=1e-12)


@contextlib.contextmanager
def binned():
    """Make the histogram path of k-means run on small inputs."""
    saved = km.EXACT_LIMIT, km.BINS
    km.EXACT_LIMIT, km.BINS = 8, 4096
    try:
        yield
    finally:
        km.EXACT_LIMIT, km.BINS = saved


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.sampled_from(FLOATS))
def test_binned_kmeans_equals_lloyd_when_bins_separate_values(seed, clusters, dtype):
    """Distinct values at least two bin widths apart: each bin holds one value, so the
    histogram path is Lloyd on the weights themselves."""
    rng = np.random.default_rng(seed)
    values = rng.choice(np.arange(-200, 201), size=30, replace=False) / 8.0  # 4096 bins
    W = rng.choice(values, size=(20, 30)).astype(dtype)
    with binned():
        out = quantize(W, "kmeans", clusters=clusters)
    expected, _ = ref_lloyd(W, clusters)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@settings(max_examples=25)
@given(tensors(min_size=1), fractions)
def test_the_pruning_pass_gives_the_kmeans_range_exactly(W, fraction):
    """The counting pass of the pruning also finds the smallest and largest non-zero
    entries and the zeros; when both extremes survive the pruning, the k-means quantizer
    takes its (min, max, count) from there instead of a pass of its own: the same as
    that pass, whenever it answers."""
    from lowentropy.compress import quantization as qz

    flat = W.reshape(-1)
    extremes: list = []
    rule = qz._prune_rule(flat, fraction, extremes)
    if fraction == 0:
        assert extremes == []  # no pruning pass
        return
    nonzero = flat[flat != 0]
    assert extremes[0][2] == flat.size - nonzero.size
    if nonzero.size:  # the extremes, as signed keys, are those of min and max
        lo_hi = qz._kept_range(flat, (0, -1), extremes[0], 0)
        assert lo_hi[:2] == (float(nonzero.min()), float(nonzero.max()))
    known = qz._kept_range(flat, rule, extremes[0], qz._pruned_count(flat.size, fraction))
    if known is not None:
        assert known == km.nonzero_range(flat, rule)
    q = quantize(W, "kmeans", clusters=3, prune=fraction)
    assert same_bits(q, quantize(prune(W, fraction), "kmeans", clusters=3))


@given(tensors(max_side=20, min_size=9), st.integers(1, 9))
def test_binned_kmeans_assignment_is_exact_nearest(W, clusters):
    with binned():
        out = quantize(W, "kmeans", clusters=clusters)
        c = _centroids(W, clusters) if np.any(W != 0) else None
    if c is not None:
        assert same_bits(out, nearest_values(W, c))
    else:
        assert not out.any()


@pytest.mark.parametrize("dtype", FLOATS)
def test_kmeans_table_boundaries(dtype):
    """Weights on and next to the midpoints between centroids (the table's NaN zones and
    the exact fallback) and far outside them."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        u = np.unique(rng.standard_normal(12).astype(dtype).astype(np.float64))
        mids = (0.5 * u[:-1] + 0.5 * u[1:]).astype(dtype)
        near = np.concatenate([np.nextafter(mids, -np.inf), mids, np.nextafter(mids, np.inf)])
        W = np.concatenate([near, u.astype(dtype), rng.standard_normal(200).astype(dtype) * 3,
                            np.zeros(5, dtype)])
        values = u.astype(dtype) + dtype(0)
        assert same_bits(_assign_with(W, u, values), nearest_values(W, u))


def _assign_with(W: np.ndarray, u: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Run the final assignment of k-means with given centroids (their values in the
    dtype are ``values``)."""
    scale = max(float(np.abs(W).max()), float(np.abs(u).max()))
    codes, codebook, _ = km.assign_codes(W, u, km.NO_PRUNING, scale)
    assert np.array_equal(codebook, np.unique(np.append(values, 0)))
    return codebook[codes]


def test_kmeans_examples_and_edge_cases():
    W = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 10.0]], np.float32)
    # init [1, 10]; 2 and 3 go to 1 -> centroid 2; then 2 and 3... fixed point {2, 10}
    assert quantize(W, "kmeans", clusters=2).tolist() == [[0, 2, 2], [2, 0, 10]]
    assert quantize(W, "kmeans", clusters=1).tolist() == [[0, 4, 4], [4, 0, 4]]
    assert same_bits(quantize(W, "kmeans", clusters=9), W)  # more clusters than values
    assert same_bits(quantize(np.zeros(4), "kmeans", clusters=3), np.zeros(4))
    assert same_bits(quantize(np.full(5, -2.5), "kmeans", clusters=3), np.full(5, -2.5))
    many = quantize(W, "kmeans", clusters=65536)  # most clusters empty; quick all the same
    assert same_bits(many, W)
    assert quantize(np.zeros((0, 2)), "kmeans", clusters=3).shape == (0, 2)
    # max_iter=0: nearest of the linear start {1, 5.5, 10}; 3 is nearer to 1 than to 5.5
    assert quantize(W, "kmeans", clusters=3, max_iter=0).tolist() == [[0, 1, 1], [1, 0, 10]]


def test_kmeans_mixed_signs_can_share_zero_centroid():
    out = quantize(np.array([-1.0, 1.0, 0.0]), "kmeans", clusters=1)
    assert same_bits(out, np.zeros(3))  # one cluster, mean 0: written as +0.0


def test_kmeans_is_deterministic_on_a_large_input():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((300, 400)).astype(np.float32)  # > EXACT_LIMIT: binned path
    a = quantize(W, "kmeans", clusters=16)
    assert same_bits(a, quantize(W.copy(), "kmeans", clusters=16))
    c = _centroids(W, 16)
    assert same_bits(a, nearest_values(W, c))
    assert len(np.unique(a)) == 16
    flat = W.ravel()
    saved = km.EXACT_LIMIT
    km.EXACT_LIMIT = flat.size  # the same Lloyd on the weights themselves
    try:
        exact = _centroids(W, 16)
    finally:
        km.EXACT_LIMIT = saved
    np.testing.assert_allclose(c, exact, atol=1e-3)  # bins are ~1.3e-4 wide


@pytest.mark.parametrize("clusters", [0, -1, 65537])
def test_kmeans_rejects_clusters_out_of_range(clusters):
    with pytest.raises(ValueError, match=r"clusters must be in \[1, 65536\]"):
        quantize(np.ones(3), "kmeans", clusters=clusters)


@pytest.mark.parametrize("clusters", [None, 2.0, "8"])
def test_kmeans_rejects_clusters_not_integer(clusters):
    with pytest.raises(ValueError, match=r"needs clusters= an integer"):
        quantize(np.ones(3), "kmeans", clusters=clusters)


def test_quantize_rejects_bad_method_and_mixed_arguments():
    with pytest.raises(ValueError, match=r"one of \('uniform', 'kmeans'\)"):
        quantize(np.ones(3), "lloyd", clusters=3)
    with pytest.raises(ValueError, match="takes bits=, not clusters="):
        quantize(np.ones(3), "uniform", clusters=3)
    with pytest.raises(ValueError, match="or max_iter="):
        quantize(np.ones(3), "uniform", bits=3, max_iter=5)
    with pytest.raises(ValueError, match="takes clusters=, not bits="):
        quantize(np.ones(3), "kmeans", bits=3, clusters=3)
    with pytest.raises(ValueError, match=r"max_iter must be in"):
        quantize(np.ones(3), "kmeans", clusters=3, max_iter=-1)
    assert METHODS == ("uniform", "kmeans")


@pytest.mark.parametrize("method, kw", [("uniform", {"bits": 4}), ("kmeans", {"clusters": 4})])
@pytest.mark.parametrize("dtype", FLOATS)
def test_quantize_rejects_non_finite(method, kw, dtype):
    W = np.zeros((2, 3), dtype)
    W[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite.*\(1, 1\)"):
        quantize(W, method, **kw)


def test_quantize_converts_and_keeps_input():
    W = np.array([[1, -2], [3, 0]], np.int8)
    assert quantize(W, bits=3).dtype == np.float32
    assert quantize(W, "kmeans", clusters=2).dtype == np.float32
    F = np.array([0.3, -0.7], np.float32)
    before = F.copy()
    quantize(F, "kmeans", clusters=1)
    assert np.array_equal(F, before)


# --- quantization_error -------------------------------------------------------------------

@given(tensors(), st.data())
def test_error_equals_numpy(W, data):
    Wq = data.draw(hnp.arrays(W.dtype, W.shape, elements=st.sampled_from([0.0, 1.0, -2.5])))
    e = quantization_error(W, Wq)
    a, b = W.astype(np.float64).ravel(), Wq.astype(np.float64).ravel()
    d = a - b
    err2, ref2 = float(np.sum(d * d)), float(np.sum(a * a))
    assert isinstance(e, QuantizationError)
    if W.size == 0:
        assert (e.mse, e.max_abs, e.relative, e.snr_db) == (0.0, 0.0, 0.0, math.inf)
        return
    assert e.mse == pytest.approx(err2 / W.size, rel=1e-9)
    assert e.rmse == pytest.approx(math.sqrt(err2 / W.size), rel=1e-9)
    assert e.max_abs == np.abs(d).max()
    if err2 == 0:
        assert (e.relative, e.snr_db) == (0.0, math.inf)
    elif ref2 == 0:
        assert (e.relative, e.snr_db) == (math.inf, -math.inf)
    else:
        assert e.relative == pytest.approx(math.sqrt(err2 / ref2), rel=1e-9)
        assert e.snr_db == pytest.approx(10 * math.log10(ref2 / err2), rel=1e-9, abs=1e-9)


def test_error_when_squares_overflow():
    e = quantization_error(np.array([1e308, 0.0]), np.array([-1e308, 0.0]))
    assert (e.mse, e.max_abs) == (math.inf, math.inf)  # beyond float64
    assert e.relative == 2.0 and e.snr_db == pytest.approx(-20 * math.log10(2))


def test_error_is_frozen_and_checks_input():
    e = quantization_error(np.ones(4), np.zeros(4))
    assert (e.relative, e.snr_db) == (1.0, 0.0)
    e = quantization_error(np.zeros(2), np.array([0.0, 0.5]))
    assert (e.mse, e.relative, e.snr_db) == (0.125, math.inf, -math.inf)
    with pytest.raises(AttributeError):
        e.mse = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="same shape"):
        quantization_error(np.ones((2, 2)), np.ones(4))
    with pytest.raises(ValueError, match=r"Wq holds 1 NaN"):
        quantization_error(np.ones(3), np.array([1.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match=r"W holds 2 NaN"):
        quantization_error(np.array([np.nan, -np.inf]), np.ones(2))


# --- threads ------------------------------------------------------------------------------

def test_small_inputs_run_on_one_thread_and_restore_the_setting():
    import numba

    from lowentropy.threads import PARALLEL_MIN_ELEMENTS as PARALLEL_MIN
    from lowentropy.threads import set_thread_policy, threads_for

    before = numba.get_num_threads()
    previous = set_thread_policy("parallel")
    with threads_for(PARALLEL_MIN - 1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with threads_for(PARALLEL_MIN):
        assert numba.get_num_threads() == before
    with pytest.raises(ValueError), threads_for(10):
        quantize(np.array([np.nan]), bits=3)
    assert numba.get_num_threads() == before
    set_thread_policy("serial")
    with threads_for(PARALLEL_MIN):
        assert numba.get_num_threads() == 1
    set_thread_policy(previous)
    assert numba.get_num_threads() == before
