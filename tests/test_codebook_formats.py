"""The codebook formats of SPEC §9: ``palette`` (packed codes) and ``huffman`` (canonical
Huffman codes), against the naive references of ``reference.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import (
    ref_code_width,
    ref_huffman,
    ref_huffman_lengths,
    ref_optimal_cost,
    ref_palette,
    ref_storage,
    tolerance,
)

import lowentropy as le
from lowentropy.formats.huffman import LOOKUP_BITS, MAX_CODE_LENGTH, huffman_lengths

EXAMPLE = np.array([
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
], dtype=np.float64)

descending_counts = st.lists(st.integers(1, 10**6), min_size=0, max_size=60).map(
    lambda c: sorted(c, reverse=True))


# --- the worked example (docs/SPEC.md §9) --------------------------------------------------

@pytest.mark.nojit
def test_palette_worked_example():
    f = le.Palette.from_dense(EXAMPLE)
    a = f.arrays()
    assert a["omega"].tolist() == [0, 4, 3, 2]
    # ranks of row 0: 0 2 0 3 1 0 0 3 2 1 0 1 -> 2-bit codes, first code lowest
    row0 = [0, 2, 0, 3, 1, 0, 0, 3, 2, 1, 0, 1]
    assert a["codes"][0] == sum(k << (2 * j) for j, k in enumerate(row0))
    assert a["codes"].tolist() == [4637128, 4523013, 5259361, 361792]
    assert a["codes"].dtype == np.uint32
    assert f.storage().by_array == {"omega": 128, "codes": 96}
    assert f.storage("ideal").by_array == {"omega": 128, "codes": 96}
    assert f.storage("fixed32").by_array == {"omega": 128, "codes": 48 * 32}


@pytest.mark.nojit
def test_huffman_worked_example():
    f = le.Huffman.from_dense(EXAMPLE)
    a = f.arrays()
    assert a["lengths"].tolist() == [1, 2, 3, 3]  # counts 23, 19, 4, 2
    # code words 0, 10, 110, 111; row 0 = 0 110 0 111 10 0 0 111 110 10 0 10
    row0 = "0" "110" "0" "111" "10" "0" "0" "111" "110" "10" "0" "10"
    assert format(int(a["bits"][0]), "032b").startswith(row0)
    assert a["row_ptr"].tolist() == [0, 23, 41, 60, 79]
    assert a["bits"].tolist() == [1737467202, 692914337, 1397751808]
    assert f.storage().by_array == {"omega": 128, "lengths": 32, "bits": 79, "row_ptr": 40}
    assert f.storage("ideal").by_array == {"omega": 128, "lengths": 8, "bits": 79,
                                           "row_ptr": 35}


# --- references ----------------------------------------------------------------------------

def _cases():
    rng = np.random.default_rng(1)
    out = {"example": EXAMPLE, "K1": np.full((3, 4), 0.5), "empty": np.zeros((0, 3))}
    for K in (2, 3, 5, 17, 300):  # code widths 1, 2, 4, 8, 16
        W = rng.integers(0, K, (7, 37)).astype(np.float32)
        W[0, :K] = np.arange(K)[: W.shape[1]] if K <= 37 else W[0, :K]
        out[f"K{K}"] = W
    geometric = np.repeat(np.arange(24.0), 2 ** np.arange(24)[::-1] // 2 ** 8 + 1)
    out["long_codes"] = rng.permutation(geometric)[: 60 * 1092].reshape(60, -1)
    return out


@pytest.mark.parametrize("name, case", [(n, c) for n in ("palette", "huffman")
                                        for c in _cases()])
def test_arrays_and_storage_equal_reference(name, case):
    W = _cases()[case]
    f = le.FORMATS[name].from_dense(W)
    expected = (ref_palette if name == "palette" else ref_huffman)(W)
    assert list(f.arrays()) == list(expected)
    for key, arr in f.arrays().items():
        assert arr.tolist() == expected[key].tolist(), key
    for policy in le.POLICIES:
        assert f.storage(policy).by_array == ref_storage(name, expected, W.shape, policy)
    assert np.array_equal(f.to_dense(), W)
    x = np.linspace(-1, 1, W.shape[1])
    assert np.all(np.abs(f @ x - W @ x) <= tolerance(W, x))
    X = np.stack([x, x[::-1], np.ones_like(x)], axis=1)
    assert np.all(np.abs(f @ X - W @ X) <= tolerance(W, X))
    assert le.FORMATS[name].storage_for(le.stats(W)) == f.storage()


def test_long_codes_use_the_slow_path():
    lengths = le.Huffman.from_dense(_cases()["long_codes"]).arrays()["lengths"]
    assert lengths.max() > LOOKUP_BITS


@pytest.mark.nojit
@pytest.mark.parametrize("K, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8),
                                     (256, 8), (257, 16), (65536, 16), (65537, 32)])
def test_code_widths(K, bits):
    assert ref_code_width("minimal", K) == bits
    assert le.formats.base.code_bits("minimal", K - 1) == bits
    assert le.formats.base.code_bits("ideal", K - 1) == ref_code_width("ideal", K)
    assert le.formats.base.code_bits("fixed32", K - 1) == 32


def test_palette_with_32_bit_codes():
    W = np.arange(70_000, dtype=np.float32).reshape(2, -1) % 65_537
    f = le.Palette.from_dense(W)
    assert f.code_bits == 32 and f.arrays()["codes"].size == W.size
    assert np.array_equal(f.to_dense(), W)
    x = np.ones(W.shape[1], np.float32)
    assert np.all(np.abs(f @ x - W.astype(np.float64) @ x) <= tolerance(W, x))
    assert f.storage().by_array["codes"] == 32 * W.size


# --- Huffman code lengths ----------------------------------------------------------------------

@pytest.mark.nojit
@given(counts=descending_counts)
def test_huffman_bits_equal_the_optimal_prefix_code_cost(counts):
    lengths = huffman_lengths(counts)
    assert lengths.tolist() == ref_huffman_lengths(counts)
    if len(counts) > 1:
        assert int(np.dot(counts, lengths)) == ref_optimal_cost(counts)
        assert sum(2.0 ** -int(v) for v in lengths) == 1.0  # complete: Kraft sum 1
    else:
        assert lengths.tolist() == [0] * len(counts)


@given(W=st.integers(0, 2**32 - 1).flatmap(
    lambda seed: st.just(np.random.default_rng(seed).geometric(0.3, (6, 25)).astype(float))))
def test_huffman_storage_is_the_optimal_cost(W):
    st_ = le.stats(W)
    f = le.Huffman.from_dense(W)
    bits = f.storage().by_array["bits"]
    assert bits == (ref_optimal_cost(st_.counts) if st_.K > 1 else 0)
    assert bits >= W.size * st_.H - 1e-6 * W.size  # never below the entropy
    assert bits <= W.size * (st_.H + 1) + 1e-6 * W.size  # within one bit per element


@pytest.mark.nojit
def test_lengths_are_capped_only_where_the_optimal_code_is_longer():
    fibonacci = [1, 1]
    while len(fibonacci) < 40:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    counts = fibonacci[::-1]
    assert max(ref_huffman_lengths(counts)) == 39 > MAX_CODE_LENGTH
    lengths = huffman_lengths(counts)
    assert lengths.max() == MAX_CODE_LENGTH
    assert sum(2.0 ** -int(v) for v in lengths) == 1.0
    assert int(np.dot(counts, lengths)) >= ref_optimal_cost(counts)
    short = counts[-30:]
    assert huffman_lengths(short).tolist() == ref_huffman_lengths(short)  # not capped


# --- bad arrays --------------------------------------------------------------------------------

def _arrays(name, W=EXAMPLE):
    return {k: v.astype(np.int64) if k != "omega" else v.copy()
            for k, v in le.FORMATS[name].from_dense(W).arrays().items()}


def _set(arrays, key, value):
    return {**arrays, key: np.asarray(value)}


def _palette_corruptions():
    a = _arrays("palette")
    three = _arrays("palette", np.where(EXAMPLE == 2, 3, EXAMPLE))  # K = 3, 2-bit codes
    codes = a["codes"]
    big = codes.copy()
    big[0] |= 1 << 31  # 2-bit code 3 at column 15: past the row's 12 codes (padding)
    wrong_rank = codes.copy()
    wrong_rank[3] |= 0b111111  # elements (3, 0..2): 0 -> 2.0, more 2.0s than 3.0s
    return [
        ("padding", _set(a, "codes", big), "0 after the last code"),
        ("length", _set(a, "codes", codes[:-1]), "codes must have length 4"),
        ("not_words", _set(a, "codes", codes - 2**32), "not a 32-bit word"),
        ("float_codes", _set(a, "codes", codes.astype(float)), "integer dtype"),
        ("order", _set(a, "codes", wrong_rank), "decreasing count"),
        ("omega_unused", _set(three, "omega", np.r_[three["omega"], 9.0]), "occurs nowhere"),
    ]


def _huffman_corruptions():
    a = _arrays("huffman")
    bits, row_ptr = a["bits"], a["row_ptr"]
    tail = bits.copy()
    tail[-1] |= 1  # bit 95, after the 79 bits of code words
    shifted = row_ptr.copy()
    shifted[1] += 1  # row 0 would end one bit later
    flipped = bits.copy()
    flipped[0] ^= 1 << 31  # first code word 0 -> 1..., row 0 decodes differently
    return [
        ("padding", _set(a, "bits", tail), "0 after the last code word"),
        ("words", _set(a, "bits", bits[:-1]), "ceil"),
        ("row_end", _set(a, "row_ptr", shifted), "row 0"),
        ("flipped", _set(a, "bits", flipped), "row 0|decreasing count"),
        ("lengths_incomplete", _set(a, "lengths", [1, 2, 3, 4]), "Kraft"),
        ("lengths_not_huffman", _set(a, "lengths", [2, 2, 2, 2]), "row"),
        ("lengths_zero", _set(a, "lengths", [0, 2, 3, 3]), r"\[1, 32\]"),
        ("lengths_long", _set(a, "lengths", [1, 2, 3, 40]), r"\[1, 32\]"),
        ("row_ptr_last", _set(a, "row_ptr", np.r_[row_ptr[:-1], 200]), "ceil"),
        ("row_ptr_decreasing", _set(a, "row_ptr", row_ptr[[0, 2, 1, 3, 4]]),
         "non-decreasing"),
        ("K1_lengths", {"omega": np.array([2.0]), "lengths": np.array([1]),
                        "bits": np.zeros(0, np.uint32), "row_ptr": np.zeros(5, np.int64)},
         r"\[0\] when K = 1"),
    ]


CORRUPTIONS = ([("palette", *c) for c in _palette_corruptions()]
               + [("huffman", *c) for c in _huffman_corruptions()])


@pytest.mark.nojit
@pytest.mark.parametrize("case", CORRUPTIONS, ids=[f"{c[0]}-{c[1]}" for c in CORRUPTIONS])
def test_corrupted_arrays_rejected(case):
    name, _, arrays, match = case
    shape = (4, 12) if "K1" in case[1] else EXAMPLE.shape
    with pytest.raises(ValueError, match=match):
        le.FORMATS[name](shape, np.float64, **arrays)


@pytest.mark.nojit
@pytest.mark.parametrize("name", ["palette", "huffman"])
def test_valid_rebuild_from_int64_arrays(name):
    f = le.FORMATS[name](EXAMPLE.shape, np.float64, **_arrays(name))
    assert np.array_equal(f.to_dense(), EXAMPLE)
