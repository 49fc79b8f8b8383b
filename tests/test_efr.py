"""EFR, the project's own format near the entropy floor (SPEC §9).

The contract suite (``test_contract.py``) covers EFR through the registry; here: the
arrays against the naive encoder of ``reference.py``, the storage that equals the bits
of the arrays and stays within 1.25× the entropy floor, the accounting from statistics,
``check()`` on malformed arrays, and save/load.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_capped_lengths, ref_efr, ref_efr_decode, tolerance
from strategies import low_entropy_matrices

import lowentropy as le
import lowentropy.threads as thread_policy
from lowentropy._huffman import huffman_lengths
from lowentropy.formats._efr_sparse import (
    block_cols16,
    block_sums16,
    tail_sum16,
    unary_zeros,
)
from lowentropy.formats.base import code_bits
from lowentropy.io import load, save
from lowentropy.synthetic import synthetic_layer
from lowentropy.threads import numba_threads

EXAMPLE = np.array([
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
], float)

#: The three kinds of layer of SPEC §9 at test sizes: (shape, share kept, levels).
KINDS = {
    "vgg16_fc6_like": ((64, 6272), 0.04, 32),
    "alexnet_fc6_like": ((128, 2304), 0.09, 32),
    "conv_unpruned": ((64, 512), 1.0, 16),
}


def _arrays_equal(f, expected: dict) -> None:
    got = f.arrays()
    assert list(got) == list(expected)
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name


def _bits_of_arrays(f, value_bits: int = 32) -> dict[str, int]:
    """What each array holds: words of the bitstream, minimal-width integers, values."""
    a = f.arrays()
    lengths, row_ptr = a["lengths"], a["row_ptr"]
    width = {8: 8, 16: 16, 32: 32, 64: 64}

    def minimal(v: int) -> int:
        return next(w for w in width if v < 1 << w)

    return {
        "omega": a["omega"].size * value_bits,
        "lengths": lengths.size * minimal(int(lengths.max()) if lengths.size else 0),
        "bits": a["bits"].size * 64,
        "row_ptr": row_ptr.size * minimal(int(row_ptr[-1])),
    }


# --- the worked example and the reference encoder --------------------------------------------

@pytest.mark.nojit
def test_worked_example():
    f = le.EFR.from_dense(EXAMPLE)
    a = f.arrays()
    assert a["omega"].tolist() == [0.0, 4.0, 3.0, 2.0]
    assert a["lengths"].tolist() == [1, 2, 3, 3]  # counts 23, 19, 4, 2
    assert a["row_ptr"].tolist() == [0, 1, 2, 3, 4]  # every row fits one word
    _arrays_equal(f, ref_efr(EXAMPLE))
    # row 1 (4 4 0 0 0 4 0 0 4 4 0 4) is dense: mode bit 1, then the canonical codes
    # 0 -> "0", 4 -> "10" (3 -> "110", 2 -> "111"), then zero padding
    row1 = format(int(a["bits"][1]), "064b")[::-1]
    assert row1 == "1" + "10 10 0 0 0 10 0 0 10 10 0 10".replace(" ", "") + "0" * 45
    # row 0 too: 24 bits dense against 48 sparse (mode bit, gamma(4) = "00100", per rank
    # c = 3, 2, 2: gamma(c + 1), then their Elias-Fano lists of 13, 9, 9 bits)
    assert (a["bits"] & np.uint64(1)).tolist() == [1, 1, 1, 1]
    row0 = format(int(a["bits"][0]), "064b")[::-1]
    assert row0[:24] == "1" + "0 110 0 111 10 0 0 111 110 10 0 10".replace(" ", "")
    assert np.array_equal(ref_efr_decode(a, EXAMPLE.shape), EXAMPLE)
    x = np.arange(12.0)
    assert np.array_equal(f @ x, EXAMPLE @ x)


@pytest.mark.nojit
@pytest.mark.parametrize("kind", ["example_padding", "all_dense", "all_sparse", "K1"])
def test_reference_encoder_small(kind):
    W = {
        "example_padding": np.vstack([EXAMPLE[:1], [[3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2]],
                                      EXAMPLE[2:]]),
        "all_dense": synthetic_layer((5, 40), keep=1.0, levels=8, seed=3).astype(float),
        "all_sparse": synthetic_layer((4, 300), keep=0.03, levels=6, seed=2).astype(float),
        "K1": np.full((3, 4), -0.5),
    }[kind]
    f = le.EFR.from_dense(W)
    _arrays_equal(f, ref_efr(W))
    assert np.array_equal(ref_efr_decode(f.arrays(), W.shape), W)
    assert np.array_equal(f.to_dense(), W)


@settings(max_examples=30, deadline=None)
@given(W=low_entropy_matrices(max_rows=8, max_cols=70))
def test_arrays_match_reference(W):
    f = le.EFR.from_dense(W)
    _arrays_equal(f, ref_efr(W))
    assert np.array_equal(f.to_dense(), W)
    assert np.array_equal(ref_efr_decode(f.arrays(), W.shape), f.to_dense())


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 10**6), min_size=0, max_size=40))
def test_huffman_lengths_match_heap_reference(counts):
    counts = sorted(counts, reverse=True)
    lengths = huffman_lengths(np.array(counts, np.int64))
    assert lengths.tolist() == ref_capped_lengths(counts)
    if len(counts) > 1:  # optimal: no prefix code is cheaper (Kraft sum exactly 1)
        assert sum(2.0 ** -v for v in lengths) == 1.0


def test_huffman_lengths_capped_at_32_bits():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(sorted(fib, reverse=True), np.int64)
    lengths = huffman_lengths(counts)
    assert lengths.max() == 32
    assert sum(2.0 ** -int(v) for v in lengths) == 1.0
    assert lengths.tolist() == ref_capped_lengths(counts.tolist())


# --- storage: what the arrays hold, near the floor, priced from statistics --------------------

@settings(max_examples=40, deadline=None)
@given(W=low_entropy_matrices())
def test_storage_is_the_bits_of_the_arrays_and_statistics_price_it(W):
    f = le.EFR.from_dense(W)
    report = f.storage()
    assert report.by_array == _bits_of_arrays(f)
    s = le.stats(W)
    for policy in le.POLICIES:
        for value_bits in (16, 32):
            assert le.EFR.storage_for(s, policy, value_bits) == f.storage(policy, value_bits)
            assert le.EFR.op_counts_for(s, 4, policy, value_bits) == f.op_counts(
                4, policy, value_bits)
    g = le.EFR(f.shape, f.dtype, **f.arrays())  # sizes recomputed from checked arrays
    assert g.storage() == report
    assert g.op_counts() == f.op_counts()


@settings(max_examples=6, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 2**16))
def test_within_a_quarter_of_the_entropy_floor(kind, seed):
    shape, keep, levels = KINDS[kind]
    W = synthetic_layer(shape, keep=keep, levels=levels, seed=seed)
    s = le.stats(W)
    bits = le.EFR.storage_for(s).total_bits
    assert bits <= 1.25 * s.entropy_floor_bits(32)
    assert bits < le.CER.storage_for(s).total_bits
    f = le.EFR.from_dense(W)
    assert f.storage().total_bits == bits
    assert np.array_equal(f.to_dense(), W)
    x = np.random.default_rng(seed).standard_normal(W.shape[1]).astype(np.float32)
    assert np.all(np.abs(f @ x - W.astype(np.float64) @ x) <= tolerance(W, x))


@pytest.mark.nojit
def test_packed_roles():
    assert [code_bits("minimal", v) for v in (0, 1, 2, 3, 4, 15, 16, 255, 256, 70000)] == [
        1, 1, 2, 2, 4, 4, 8, 8, 16, 32]
    assert code_bits("ideal", 5) == 3 and code_bits("fixed32", 1) == 32
    f = le.EFR.from_dense(EXAMPLE)
    for policy in le.POLICIES:
        r = f.storage(policy)
        assert r.bits_per_entry["bits"] == 1
        assert r.by_array["bits"] == 64 * f.arrays()["bits"].size
        assert r.memory_dtypes["bits"] == "uint64"


def test_memory_estimate_counts_words():
    W = synthetic_layer((64, 512), keep=0.1, levels=8)
    s = le.stats(W)
    f = le.EFR.from_dense(W)
    estimate = le.memory.encoding_bytes(s, "efr")
    assert estimate >= f.nbytes
    assert estimate <= f.nbytes + 8 * s.N


def test_statistics_from_counts_per_row():
    """``efr_sizes_from_hist``: the same sizes from an m × K table of counts per row."""
    from lowentropy._rowcodes import efr_sizes_from_hist

    W = synthetic_layer((40, 700), keep=0.2, levels=8, seed=5)
    s = le.stats(W)
    rank = {float(v): k for k, v in enumerate(s.omega)}
    hist = np.zeros((W.shape[0], s.K), np.int64)
    for i, row in enumerate(W.tolist()):
        for v in row:
            hist[i, rank[v + 0.0]] += 1
    assert efr_sizes_from_hist(hist, s.counts, W.shape[1]) == s.efr


# --- check(): no malformed array reaches a kernel -------------------------------------------------

def _valid():
    W = np.zeros((5, 300))
    W[0, [3, 40, 41, 299]] = [1.5, -2.0, 1.5, 1.5]
    W[2] = np.resize([0.0, 1.5, -2.0, 0.0, 0.25], 300)  # a dense row
    W[3, 7] = 0.25
    f = le.EFR.from_dense(W)
    assert (f.arrays()["bits"][f.arrays()["row_ptr"][:-1]] & 1).tolist() == [0, 0, 1, 0, 0]
    return W, {k: v.copy() for k, v in f.arrays().items()}


def _flip(arrays, word, bit):
    a = {k: v.copy() for k, v in arrays.items()}
    a["bits"][word] ^= np.uint64(1) << np.uint64(bit)
    return a


def test_check_accepts_valid_arrays():
    W, arrays = _valid()
    g = le.EFR(W.shape, W.dtype, **arrays)
    assert np.array_equal(g.to_dense(), W)


@pytest.mark.parametrize("mutate, match", [
    (lambda a: {**a, "row_ptr": np.r_[a["row_ptr"][:2], a["row_ptr"][1], a["row_ptr"][3:]]},
     "row 1 has no words|non-decreasing"),
    (lambda a: {**a, "row_ptr": a["row_ptr"][:-1]}, "row_ptr must have length"),
    (lambda a: {**a, "bits": a["bits"][:-1]}, r"row_ptr\[-1\] must be"),
    (lambda a: {**a, "bits": a["bits"].astype(np.uint32)}, "64-bit words"),
    (lambda a: {**a, "bits": np.r_[a["bits"], np.uint64(0)],
                "row_ptr": np.r_[a["row_ptr"][:-1], a["row_ptr"][-1] + 1]},
     "padding bits or unused words"),
    (lambda a: {**a, "lengths": np.r_[a["lengths"][:-1], 40]}, r"lengths must lie in \[1, 32\]"),
    (lambda a: {**a, "lengths": a["lengths"] + 1}, "Kraft"),
    (lambda a: {**a, "lengths": a["lengths"][:-1]}, "lengths must have length"),
    (lambda a: {**a, "omega": np.r_[a["omega"][:-1], a["omega"][0]]}, "distinct"),
    (lambda a: {**a, "omega": np.r_[a["omega"][:-1], np.nan]}, "NaN or infinite"),
])
def test_check_rejects_malformed_arrays(mutate, match):
    W, arrays = _valid()
    with pytest.raises(ValueError, match=match):
        le.EFR(W.shape, W.dtype, **mutate(arrays))


def test_check_rejects_values_out_of_order():
    """Swapping two values of equal count breaks the tie rule (ascending value)."""
    W = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 2.0, 0.0, 1.0]])
    a = {k: v.copy() for k, v in le.EFR.from_dense(W).arrays().items()}
    assert a["omega"].tolist() == [0.0, 1.0, 2.0]
    a["omega"] = a["omega"][[0, 2, 1]]
    with pytest.raises(ValueError, match="ties by ascending value"):
        le.EFR(W.shape, W.dtype, **a)


def test_every_single_bit_flip_is_rejected_or_canonical():
    """Each row is the one canonical encoding of its entries: a flipped bit is either
    rejected or yields the encoding of another matrix (a moved column, another value),
    whose arrays then re-encode identically."""
    W, arrays = _valid()
    accepted = 0
    for word in range(arrays["bits"].size):
        for bit in range(64):
            bad = _flip(arrays, word, bit)
            try:
                g = le.EFR(W.shape, W.dtype, **bad)
            except ValueError as exc:
                assert str(exc).startswith(("EFR row", "omega", "lengths")), exc
                continue
            accepted += 1
            again = le.EFR.from_dense(g.to_dense())
            assert np.array_equal(again.arrays()["bits"], bad["bits"])
    assert 0 < accepted < 64 * arrays["bits"].size / 2


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_check_never_crashes_on_random_words(data):
    W, arrays = _valid()
    words = data.draw(st.lists(st.integers(0, 2**64 - 1), min_size=arrays["bits"].size,
                               max_size=arrays["bits"].size))
    bad = {**arrays, "bits": np.array(words, np.uint64)}
    try:
        g = le.EFR(W.shape, W.dtype, **bad)
    except ValueError:
        return
    g.to_dense()


def test_check_rejects_a_non_canonical_mode():
    """The same entries coded in the dearer mode are refused (storage would be wrong)."""
    W = np.zeros((1, 64))
    W[0, 5] = 2.0  # sparse is far cheaper than 64 Huffman codes
    f = le.EFR.from_dense(np.vstack([W, np.resize([0.0, 2.0], (1, 64))]))
    a = {k: v.copy() for k, v in f.arrays().items()}
    # row 0 re-coded dense: mode bit, then "1" for ω_0 = ... lengths are [1, 1]
    codes = {0: "0", 1: "1"} if a["omega"][0] == 0 else {0: "1", 1: "0"}
    bits = "1" + "".join(codes[int(v != 0)] for v in W[0])
    a["bits"] = np.r_[np.uint64(int(bits[:64][::-1], 2)), np.uint64(int(bits[64:][::-1], 2)),
                      a["bits"][1:]]
    a["row_ptr"] = a["row_ptr"] + np.array([0, 1, 1])
    with pytest.raises(ValueError, match="row 0 is not EFR's encoding"):
        le.EFR((2, 64), np.float64, **a)


# --- save and load -----------------------------------------------------------------------------

def test_save_load_round_trip_and_corruption(tmp_path):
    W = synthetic_layer((30, 400), keep=0.1, levels=8)
    f = le.EFR.from_dense(W)
    path = tmp_path / "w.npz"
    save(path, f)
    g = load(path)
    assert isinstance(g, le.EFR)
    assert np.array_equal(g.to_dense(), W)
    for name, arr in f.arrays().items():
        assert np.array_equal(g.arrays()[name], arr)
        assert g.arrays()[name].dtype == arr.dtype


def test_load_refuses_a_corrupted_bitstream(tmp_path):
    from test_io_store import _read_members, _write_members

    W = synthetic_layer((30, 400), keep=0.1, levels=8)
    path = tmp_path / "w.npz"
    save(path, le.EFR.from_dense(W))
    meta, arrays = _read_members(path)
    bits = arrays["bits"].copy()
    bits[3] ^= np.uint64(0xF0F0)
    arrays["bits"] = bits
    _write_members(path, meta, arrays)
    with pytest.raises(ValueError, match="w.npz: the stored efr arrays are invalid"):
        load(path)


def test_statistics_of_codes_price_efr_like_the_matrix():
    """``le.stats`` of a ``Quantized`` matrix (counted from its codes) gives the same EFR
    sizes as the statistics of its dense matrix, and both price the encoded format."""
    W = synthetic_layer((50, 600), keep=0.1, levels=32, seed=4)
    q = le.quantize(W, method="uniform", bits=4, return_codes=True)
    dense = np.asarray(q.to_dense())
    s_codes, s_dense = le.stats(q), le.stats(dense)
    assert s_codes.efr == s_dense.efr
    assert le.EFR.storage_for(s_codes) == le.EFR.from_dense(dense).storage()


@pytest.mark.nojit
def test_the_column_decoder_stops_at_its_last_column_at_the_end_of_the_stream():
    """A group's unary high parts share their word with the next groups' bits: decoding
    stops after the group's last column instead of reading on, which had run past the end
    of the stream on the last row (seen by the no-JIT pass, which checks bounds)."""
    W = np.zeros((10, 35), np.float32)
    W[0, 0] = -1.0
    W[9, [0, 1, 19, 23]] = [0.5, -1.0, 1.0, 0.5]
    f = le.FORMATS["efr"].from_dense(W)
    assert f.arrays()["bits"].size == 10  # the last row ends in the stream's last word
    x = np.arange(35, dtype=np.float32)
    assert np.array_equal(f @ x, W @ x)
    X = np.stack([x, 2 * x + 1, -x], axis=1)
    assert np.array_equal(f @ X, W @ X)


@pytest.mark.nojit
def test_dense_rows_four_at_a_time_with_codes_longer_than_the_table(monkeypatch):
    """Dense rows decode four side by side (vector and batch products), with the rare
    codes longer than the lookup table on their own path: a matrix whose value counts
    grow like Fibonacci numbers has codes of up to 13 bits; sparse rows sit between dense
    ones, and the number of dense rows in a run is not a multiple of four."""
    rng = np.random.default_rng(3)
    fib = [1, 1]
    while len(fib) < 14:
        fib.append(fib[-1] + fib[-2])
    values = np.repeat(np.arange(1, len(fib) + 1, dtype=np.float32), fib[::-1])
    rng.shuffle(values)
    W = np.ones((31, 80), np.float32)  # 1 is the most frequent value, ω_0
    dense_rows = [i for i in range(31) if i % 4 != 3]
    W[dense_rows] = np.resize(values, (len(dense_rows), 80))
    W[3::4, ::17] = 5.0  # sparse rows: a few entries each
    f = le.EFR.from_dense(W)
    modes = f.arrays()["bits"][f.arrays()["row_ptr"][:-1]] & np.uint64(1)
    assert int(f.arrays()["lengths"].max()) > 11  # codes longer than the table
    assert modes.sum() == len(dense_rows) and 0 < modes.size - modes.sum()
    x = rng.standard_normal(80).astype(np.float32)
    X = rng.standard_normal((80, 3)).astype(np.float32)
    monkeypatch.setattr(thread_policy, "PARALLEL_MIN_WORK", 0)
    previous = le.set_thread_policy("parallel")
    try:
        for count in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            for v in (x, X):
                with numba_threads(count):
                    y = f @ v
                assert np.all(np.abs(y - W.astype(np.float64) @ v) <= tolerance(W, v)), count
    finally:
        le.set_thread_policy(previous)


@pytest.mark.nojit
@pytest.mark.parametrize("n", [4093, 32768, 32769, 40000])
def test_sparse_rows_either_side_of_the_16_bit_decoder(n):
    """Rows of at most 2**15 columns decode ``z`` in 16 bits and four columns per 64-bit
    word; wider rows keep 32-bit ``z``. Groups of 1 to 40 columns (full blocks of 8 and
    every tail), low parts narrow (four per read) and wide (``L > 14``), columns up to
    ``n − 1``, and ``ω_0 ≠ 0``."""
    rng = np.random.default_rng(n)
    W = np.full((6, n), 0.25, np.float32)
    for i in range(6):
        for v, c in enumerate([1, 3, 7, 8, 9, 15, 16, 17, 40][i:i + 5]):
            W[i, rng.choice(n, c, replace=False)] = v + 1.0
    W[0, n - 1] = 7.5
    W[5, :3] = 2.0
    f = le.EFR.from_dense(W)
    assert not (f.arrays()["bits"][f.arrays()["row_ptr"][:-1]] & np.uint64(1)).any()
    x = rng.standard_normal(n).astype(np.float32)
    X = rng.standard_normal((n, 3)).astype(np.float32)
    for v in (x, X):
        y = f @ v
        assert np.all(np.abs(y - W.astype(np.float64) @ v) <= tolerance(W, v))


@pytest.mark.nojit
def test_spread4_puts_four_low_parts_in_16_bit_lanes():
    """``pdep`` where the CPU has it, shifts and masks otherwise: both as the plain
    definition, for every width the product uses."""
    from lowentropy.formats._efr_sparse import spread4, spread4_shifts

    @numba.njit
    def both(v, L, lanes):
        return spread4(v, L, lanes), spread4_shifts(v, L, lanes)

    rng = np.random.default_rng(0)
    for L in range(1, 15):
        lanes = np.uint64(((1 << L) - 1) * 0x0001000100010001)
        for v in rng.integers(0, 2**63, 20, dtype=np.uint64):
            expected = sum((((int(v) >> (q * L)) & ((1 << L) - 1)) << (16 * q)) for q in range(4))
            assert [int(r) for r in both(v, L, lanes)] == [expected, expected]


def _packed_columns(cols, L, shift, Z, slack_words=3):
    """``(words, z)`` holding ``cols`` as a group of :func:`block_sums16` reads it: low
    parts from bit ``shift`` of byte 0, ``z = (col >> L) + Z``; ``slack_words`` words
    after the low parts (the vector path reads 16 bytes from a block's first byte)."""
    bits = shift + len(cols) * L
    words = np.zeros(bits // 64 + 1 + slack_words, np.uint64)
    for t, col in enumerate(cols):
        low = int(col) & ((1 << L) - 1)
        for q in range(L):
            if low >> q & 1:
                b = shift + t * L + q
                words[b >> 6] |= np.uint64(1 << (b & 63))
    z = np.zeros(len(cols) + 16, np.uint16)
    z[:len(cols)] = (np.asarray(cols, np.int64) >> L) + Z
    z[len(cols):] = np.random.default_rng(len(cols)).integers(0, 2**16, 16)  # past the group
    return words, z


@numba.njit
def _group_sums_compiled(words, L, shift, z, blocks, rem, Z, x):
    s = block_sums16(words, 0, shift, L, z, 0, blocks, Z, x)
    return s, tail_sum16(words, blocks * L, shift, L, z, 16 * blocks, rem, Z, x, s[0])


#: The plain definitions compiled as they are (not through their vector overloads).
_scalar_blocks = numba.njit(block_sums16)
_scalar_tail = numba.njit(tail_sum16)
_scalar_unary = numba.njit(unary_zeros)
_scalar_cols = numba.njit(block_cols16)


@numba.njit
def _cols_compiled(words, L, shift, z, blocks, Z, cols):
    block_cols16(words, 0, shift, L, z, 0, blocks, Z, cols)


@numba.njit
def _unary_compiled(words, high, end_word, z):
    return unary_zeros(words, high, end_word, z)

_SPECIAL = [1e30, -1e30, 1.0, 3.0, -0.0, 0.0, 1e-40, 2.5e-8, np.inf, -np.inf, np.nan]


@settings(max_examples=40, deadline=None)
@given(L=st.integers(1, 14), shift=st.integers(0, 7), blocks=st.integers(0, 5),
       rem=st.integers(0, 7), Z=st.integers(0, 2**15), dtype=st.sampled_from([np.float32,
                                                                             np.float64]),
       seed=st.integers(0, 2**32 - 1), specials=st.booleans())
def test_vector_columns_equal_the_scalar_definition_bit_for_bit(L, shift, blocks, rem, Z,
                                                                 dtype, seed, specials):
    """Compiled, :func:`block_sums16`, :func:`tail_sum16` and :func:`block_cols16` (the
    batches' columns) take 8 columns at once in an AVX2 vector where the CPU has it
    (:mod:`lowentropy.formats._efr_lanes`); their plain definitions (run as Python, and
    compiled as they are) give the same sums and columns bit for bit:
    every low width, bit offset, number of blocks and tail, values whose sums depend on
    the order (1e30 + 1 rounds), −0.0, subnormals, infinities and NaN. ``x`` ends with the
    ``+0.0`` that the vector tail adds for the lanes past the group's end."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2**15 + 1))
    c = 8 * blocks + rem
    cols = rng.integers(0, n, c)
    Z = min(Z, 2**16 - 1 - (n >> L))
    words, z = _packed_columns(cols, L, shift, Z)
    x = np.zeros(n + 1, dtype)
    x[:n] = (rng.choice(_SPECIAL, n) if specials else rng.standard_normal(n) * 1e3)
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf in the sums
        expected_blocks = block_sums16(words, 0, shift, L, z, 0, blocks, Z, x)
        expected = (expected_blocks,
                    tail_sum16(words, blocks * L, shift, L, z, 16 * blocks, rem, Z, x,
                               expected_blocks[0]))
    scalar = (_scalar_blocks(words, 0, shift, L, z, 0, blocks, Z, x),)
    scalar += (_scalar_tail(words, blocks * L, shift, L, z, 16 * blocks, rem, Z, x,
                            dtype(scalar[0][0])),)  # numba returns a Python float
    got = _group_sums_compiled(words, L, shift, z, blocks, rem, Z, x)
    as_bits = np.uint32 if dtype is np.float32 else np.uint64

    def bits(result):
        return np.array([*result[0], result[1]], dtype).view(as_bits)

    # compiled, vector and scalar: the same bits
    assert np.array_equal(bits(got), bits(scalar))
    # and the plain definition's values (−0.0 apart from 0.0; numpy's NaN may differ in
    # sign from the CPU's)
    nan = np.isnan(np.array([*expected[0], expected[1]], dtype))
    assert np.array_equal(np.isnan(np.array([*got[0], got[1]], dtype)), nan)
    assert np.array_equal(bits(got)[~nan], bits(expected)[~nan])
    # the batches' columns (block_cols16): the same, and those of the group
    for run in (block_cols16, _scalar_cols, _cols_compiled):
        out = np.full(8 * blocks + 8, 2**32 - 1, np.uint32)
        if run is _cols_compiled:
            run(words, L, shift, z, blocks, Z, out)
        else:
            run(words, 0, shift, L, z, 0, blocks, Z, out)
        assert np.array_equal(out[:8 * blocks], cols[:8 * blocks])
        assert (out[8 * blocks:] == 2**32 - 1).all()
    # and the sums are those of the columns: lane k the columns 8b + k, the tail in lane 0
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(8):
            s = dtype(0)
            for b in range(blocks):
                s = dtype(s + x[cols[8 * b + k]])
            assert np.array_equal(np.array(s, dtype), np.array(expected[0][k], dtype),
                                  equal_nan=True)


@pytest.mark.nojit
def test_rows_next_to_the_end_of_the_stream_with_full_blocks():
    """The vector path reads 16 bytes from a block's first low part: the rows ending less
    than two words before the end of ``bits`` are decoded from a copy with two zero words
    more (here the second-to-last row, its groups of 8 and more columns, before a
    one-word row)."""
    rng = np.random.default_rng(3)
    W = np.zeros((3, 4000), np.float32)
    for i in (0, 1):
        for v, c in enumerate((8, 17, 30)):
            W[i, rng.choice(4000, c, replace=False)] = v + 1.0
    f = le.EFR.from_dense(W)
    row_ptr = f.arrays()["row_ptr"]
    assert row_ptr[-1] - row_ptr[-2] == 1 and row_ptr[-1] - row_ptr[-3] > 2
    x = rng.standard_normal(4000).astype(np.float32)
    assert np.array_equal(f @ x, (W.astype(np.float64) @ x).astype(np.float32)) or np.all(
        np.abs(f @ x - W.astype(np.float64) @ x) <= tolerance(W, x))


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=5),
       high=st.integers(0, 5 * 64 - 1), density=st.sampled_from([0.05, 0.3, 0.5, 0.95]),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.uint16, np.int32]))
def test_unary_pass_vector_equals_the_scalar_definition(words, high, density, seed, dtype):
    """Compiled into 16-bit ``z`` on a CPU with AVX2, :func:`unary_zeros` keeps its running
    ``zeros − k`` in a vector (:mod:`lowentropy.formats._efr_lanes`); it writes the same
    slots as its plain definition (run as Python, and compiled as it is), past the last
    one too, and counts the same ones: every start bit, sparse and dense fields."""
    rng = np.random.default_rng(seed)
    w = np.array(words, np.uint64)
    keep = rng.random((w.size, 64)) < density
    w &= np.packbits(keep, axis=1, bitorder="little").view(np.uint64).ravel()
    end_word = w.size
    high = min(high, 64 * end_word)
    results = []
    for run in (unary_zeros, _scalar_unary, _unary_compiled):
        z = np.full(64 * end_word + 16, 7, dtype)
        with np.errstate(over="ignore"):
            k = run(w, high, end_word, z)
        results.append((int(k), z))
    ones = sum(bin(int(v)).count("1") for v in w) - sum(
        bin(int(w[b >> 6]) >> (b & 63) & 1).count("1") for b in range(high))
    for k, z in results:
        assert k == (ones if high < 64 * end_word else 0)
        assert np.array_equal(z, results[0][1])
