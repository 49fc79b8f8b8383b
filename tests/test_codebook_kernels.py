"""The product kernels of ``palette`` and ``huffman`` against the float64 reference.

Variants: one thread and two (a row's sum is computed by one thread in a fixed order, so
the results must be bit-identical), every code width (1/2/4/8/16/32 bits), batch 1 and
batches around the unrolling and tile sizes, rows whose length is not a multiple of the
codes per word, small tiles (the batch products decode tiles of rows and columns for
BLAS, several column blocks per row block) and small column blocks of the vector
product's tables.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import tolerance

import lowentropy as le
from lowentropy import threads as thread_policy
from lowentropy.formats import _packed, palette
from lowentropy.threads import numba_threads

CODEBOOK_FORMATS = ["palette", "huffman"]
THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
BATCHES = [None, 1, 2, 3, 7, 8, 9, 16, 63, 64, 65]


@pytest.fixture(autouse=True)
def parallel_even_when_small(monkeypatch):
    """Small products normally run on one thread; here the parallel kernels run too."""
    monkeypatch.setattr(thread_policy, "PARALLEL_MIN_WORK", 0)
    previous = le.set_thread_policy("parallel")
    yield
    le.set_thread_policy(previous)


@contextlib.contextmanager
def small_tiles(rows: int, columns: int, table_words: int):
    """Batch tiles of ``rows × columns`` values and vector-product column blocks of
    ``table_words`` words (the defaults are sized for caches, far above test matrices)."""
    saved = (_packed.TILE_BYTES, _packed.TILE_COLUMNS, palette.TABLE_BLOCK_BYTES,
             palette.MIN_BLOCK_WORDS, palette.TABLE_MIN_ROWS)
    _packed.TILE_COLUMNS = columns
    _packed.TILE_BYTES = rows * columns * 4  # float32; float64 tiles get half the rows
    palette.TABLE_BLOCK_BYTES, palette.MIN_BLOCK_WORDS = 1, table_words
    palette.TABLE_MIN_ROWS = 2
    try:
        yield
    finally:
        (_packed.TILE_BYTES, _packed.TILE_COLUMNS, palette.TABLE_BLOCK_BYTES,
         palette.MIN_BLOCK_WORDS, palette.TABLE_MIN_ROWS) = saved


def check_products(W, x) -> None:
    """Every codebook format, one and two threads, against ``W @ x`` in float64."""
    exact = np.asarray(W, np.float64) @ np.asarray(x, np.float64)
    for name in CODEBOOK_FORMATS:
        f = le.FORMATS[name].from_dense(W)
        ys = {}
        for count in THREADS:
            with numba_threads(count):
                ys[count] = f @ x
        y1 = ys[THREADS[0]]
        err = np.abs(y1.astype(np.float64) - exact)
        assert np.all(err <= tolerance(W, x)), (name, f"{err.max():.3g}")
        for count, y in ys.items():
            assert np.array_equal(y, y1), f"{name}: {count} threads differ from 1 thread"


@st.composite
def codebook_cases(draw):
    """A matrix of ``K`` levels (code widths 1-16), an operand and tile sizes."""
    K = draw(st.sampled_from([1, 2, 3, 4, 5, 16, 17, 40, 257]))
    m = draw(st.integers(1, 24))
    n = draw(st.integers(1, 160))
    levels = np.array(draw(st.lists(st.floats(-4, 4, allow_nan=False, width=32),
                                    min_size=K, max_size=K)), np.float32)
    idx = draw(hnp.arrays(np.int64, (m, n), elements=st.integers(0, K - 1)))
    W = levels[idx].astype(draw(st.sampled_from([np.float32, np.float64])))
    batch = draw(st.sampled_from(BATCHES))
    shape = (n,) if batch is None else (n, batch)
    x = draw(hnp.arrays(draw(st.sampled_from([np.float32, np.float64])), shape,
                        elements=st.floats(-8, 8, width=32)))
    tiles = (draw(st.integers(1, 5)), draw(st.sampled_from([1, 32, 64, 4096])),
             draw(st.sampled_from([1, 2, 64])))
    return W, x, tiles


@settings(max_examples=150, deadline=None)
@given(case=codebook_cases())
def test_products_every_width_batch_tile_and_thread_count(case):
    W, x, tiles = case
    with small_tiles(*tiles):
        check_products(W, x)


@pytest.mark.parametrize("K, bits", [(2, 1), (3, 2), (5, 4), (17, 8), (257, 16),
                                     (65_537, 32)])
@pytest.mark.parametrize("batch", [None, 3, 8, 65])
def test_every_code_width_with_several_tiles(K, bits, batch):
    rng = np.random.default_rng(K)
    m = 5
    n = max(99, -(-K // m) + 7)  # odd, not a multiple of the codes per word (but 1 bit: 99)
    idx = rng.integers(0, K, m * n)
    idx[rng.permutation(m * n)[:K]] = np.arange(K)  # every value present
    W = (np.arange(K, dtype=np.float32) / np.float32(K) - np.float32(0.5))[idx].reshape(m, n)
    assert le.Palette.from_dense(W).code_bits == bits
    x = rng.standard_normal(n if batch is None else (n, batch)).astype(np.float32)
    with small_tiles(2, 64, 1):
        check_products(W, x)
    check_products(W, x)  # the default sizes: one tile


@pytest.mark.nojit
@pytest.mark.parametrize("name", CODEBOOK_FORMATS)
def test_tiles_of_several_row_and_column_blocks(name):
    """Row blocks of 2 rows, column blocks of 32 columns, the last ones partial; a huffman
    row's decoding resumes where the previous column block stopped."""
    rng = np.random.default_rng(3)
    W = rng.choice(np.array([0.0, 0.5, -1.25, 3.0, 7.5], np.float32), (5, 75),
                   p=[0.6, 0.2, 0.1, 0.06, 0.04])
    X = rng.standard_normal((75, 9)).astype(np.float32)
    f = le.FORMATS[name].from_dense(W)
    calls = []

    def decode_tile(r0, r1, c0, c1, tile):
        calls.append((r0, r1, c0, c1))
        tile[...] = W[r0:r1, c0:c1]

    out = np.empty((5, 9), np.float32)
    _packed.tiled_matmat(decode_tile, W.shape, X, out, rows=2, columns=32)
    assert calls == [(r0, min(r0 + 2, 5), c0, min(c0 + 32, 75))
                     for r0 in (0, 2, 4) for c0 in (0, 32, 64)]
    exact = W.astype(np.float64) @ X
    assert np.all(np.abs(out - exact) <= tolerance(W, X))
    with small_tiles(2, 32, 1):
        y = f @ X
        assert np.array_equal(f.to_dense(), W)
    assert np.all(np.abs(y - exact) <= tolerance(W, X))
