"""Every product kernel variant against the float64 reference.

Variants: one thread and every thread (a row's sum is computed by one thread in a fixed
order, so the results must be bit-identical), every in-memory index dtype (``col_idx``
uint16/uint32, CSER's ``omega_idx`` uint8/uint16/uint32), batch 1 and ``B`` (including
``B`` that are not multiples of the unrolling), long groups that run through the
unrolled loops and their remainders, and rows of very different work (the row split).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import tolerance

import lowentropy as le
from lowentropy import threads as thread_policy
from lowentropy.formats._sums import row_chunks
from lowentropy.threads import numba_threads

KERNEL_FORMATS = ["csr", "cer", "cser"]
MAX_THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def parallel_even_when_small(monkeypatch):
    """Small products normally run on one thread; here every thread count is used (and
    the policy is "parallel" whatever pools the test process loaded first)."""
    monkeypatch.setattr(thread_policy, "PARALLEL_MIN_WORK", 0)
    previous = le.set_thread_policy("parallel")
    yield
    le.set_thread_policy(previous)


def products(f, x) -> dict[int, np.ndarray]:
    """``f @ x`` with one thread (the serial kernels) and with every thread (parallel)."""
    out = {}
    for count in sorted({1, MAX_THREADS}):
        with numba_threads(count):
            out[count] = f @ x
    return out


def check_all(W, x) -> None:
    for name in KERNEL_FORMATS:
        f = le.FORMATS[name].from_dense(W)
        ys = products(f, x)
        y1 = ys[1]
        err = np.abs(y1.astype(np.float64) - np.asarray(W, np.float64) @ np.asarray(x, np.float64))
        assert np.all(err <= tolerance(W, x)), (name, err.max())
        for count, y in ys.items():
            assert np.array_equal(y, y1), f"{name}: {count} threads differ from 1 thread"


@st.composite
def long_group_matrices(draw):
    """Rows with long runs of a few values: groups of 0 to ~300 entries."""
    m = draw(st.integers(1, 9))
    n = draw(st.integers(1, 300))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    levels = np.array(draw(st.lists(
        st.floats(-4, 4, allow_nan=False, width=32), min_size=1, max_size=4)), dtype)
    idx = draw(hnp.arrays(np.int64, (m, n), elements=st.integers(0, len(levels) - 1)))
    empty_rows = draw(st.lists(st.integers(0, m - 1), max_size=m))
    W = levels[idx]
    W[empty_rows] = 0  # rows without entries between full rows (uneven row work)
    return W


@st.composite
def matrix_and_operand(draw):
    W = draw(long_group_matrices())
    batch = draw(st.sampled_from([None, 1, 3, 4, 8, 9, 16, 17]))
    shape = (W.shape[1],) if batch is None else (W.shape[1], batch)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(-8, 8, width=32)))
    return W, x


@given(Wx=matrix_and_operand())
def test_long_groups_every_thread_count_and_batch(Wx):
    check_all(*Wx)


@pytest.mark.parametrize("batch", [None, 1, 5, 16])
def test_col_idx_uint32_when_more_than_65536_columns(batch):
    rng = np.random.default_rng(batch or 0)
    n = 70_001
    W = np.zeros((5, n), np.float32)
    cols = rng.choice(n, size=(5, 40), replace=False)
    W[np.arange(5)[:, None], cols] = rng.choice([0.5, -1.5, 2.0], size=(5, 40))
    W[:, -1] = 2.0  # the last column, index 70000
    x = rng.standard_normal(n if batch is None else (n, batch)).astype(np.float32)
    for name in KERNEL_FORMATS:
        assert le.FORMATS[name].from_dense(W).arrays()["col_idx"].dtype == np.uint32
    check_all(W, x)


@pytest.mark.parametrize(("K", "dtype"), [(200, np.uint8), (3000, np.uint16),
                                          (70_000, np.uint32)])
@pytest.mark.parametrize("batch", [None, 3])
def test_every_omega_idx_dtype(K, dtype, batch):
    rng = np.random.default_rng(K)
    n = 1000
    m = -(-2 * K // n)  # every value twice: K distinct values
    values = np.repeat(np.arange(1, K + 1, dtype=np.float64), 2) / 64
    W = np.zeros(m * n)
    W[rng.choice(m * n, values.size, replace=False)] = rng.permutation(values)
    W = W.reshape(m, n)
    f = le.CSER.from_dense(W)
    assert f.arrays()["omega_idx"].dtype == dtype
    assert f.storage().memory_dtypes["omega_idx"] == np.dtype(dtype).name
    x = rng.standard_normal(n if batch is None else (n, batch))
    check_all(W, x)


@pytest.mark.parametrize("name", sorted(le.FORMATS))
def test_storage_reports_in_memory_dtypes(name):
    W = np.zeros((3, 70_000), np.float32)
    W[0, 5] = W[2, 69_999] = 1.5
    f = le.FORMATS[name].from_dense(W)
    dtypes = f.storage().memory_dtypes
    assert dtypes == {k: str(v.dtype) for k, v in f.arrays().items()}
    if "col_idx" in dtypes:
        assert dtypes["col_idx"] == "uint32"
        assert le.FORMATS[name].from_dense(W[:, :65536]).storage().memory_dtypes[
            "col_idx"] == "uint16"


@given(work=hnp.arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 1000)),
       parts=st.integers(1, 9))
def test_row_chunks_cover_rows_in_balanced_runs(work, parts):
    cum = np.concatenate(([0], np.cumsum(work)))
    bounds = row_chunks(cum, parts)
    m = work.size
    assert bounds[0] == 0 and bounds[-1] == m
    assert np.all(np.diff(bounds) > 0) and bounds.size - 1 <= parts
    # no run does more than its share plus one row's work
    per_run = cum[bounds[1:]] - cum[bounds[:-1]]
    assert per_run.max() <= cum[-1] / parts + work.max()


def test_small_products_run_serially_and_agree(monkeypatch):
    W = np.zeros((6, 9))
    W[::2, ::3] = 2.0
    f = le.CSR.from_dense(W)
    monkeypatch.setattr(thread_policy, "PARALLEL_MIN_WORK", 1 << 16)
    assert f._plan(1)[0] is False
    monkeypatch.setattr(thread_policy, "PARALLEL_MIN_WORK", 0)
    if MAX_THREADS > 1:
        assert f._plan(1)[0] is True


# --- the thread strategies (lowentropy.threads) ------------------------------------------------

STRATEGY_BATCHES = [1, 2, 3, 7, 8, 9, 16, 63, 64, 65]


@pytest.mark.parametrize("batch", STRATEGY_BATCHES)
@pytest.mark.parametrize("n", [300, 70_001], ids=["uint16-columns", "uint32-columns"])
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_serial_and_parallel_strategies_match_the_reference(batch, n, seed, dtype):
    """Both strategies of the thread policy, on 1 and on every thread, give the same bits,
    within the SPEC §3 tolerance of the float64 reference."""
    rng = np.random.default_rng(seed)
    m = 7
    W = np.zeros((m, n), dtype)
    for i in range(m):
        cols = rng.choice(n, size=int(rng.integers(0, 120)), replace=False)
        W[i, cols] = rng.choice(np.array([0.5, -1.25, 3.0, 7.5], dtype), size=cols.size)
    x = rng.standard_normal(n if batch == 1 else (n, batch)).astype(dtype)
    reference = W.astype(np.float64) @ x.astype(np.float64)
    for name in KERNEL_FORMATS:
        f = le.FORMATS[name].from_dense(W)
        assert f.arrays()["col_idx"].dtype == (np.uint16 if n <= 65_536 else np.uint32)
        results = []
        for policy in ("serial", "parallel"):
            le.set_thread_policy(policy)
            results += products(f, x).values()
        le.set_thread_policy("parallel")
        err = np.abs(results[0].astype(np.float64) - reference)
        assert np.all(err <= tolerance(W, x)), (name, err.max())
        for y in results[1:]:
            assert np.array_equal(y, results[0]), name


@pytest.mark.parametrize("width", [32, 16, 8])
def test_the_batch_kernels_of_eight_columns_are_vectorized(width):
    """The batch kernels' rows (tiles of 32, 16 and 8 columns, one kernel each) compile with
    LLVM's SLP vectorizer: on x86-64 their sums are packed additions (one per gathered row
    of X and 8 columns), and without it they are not. Compiled afresh here, on CER's
    arguments (``omega_idx`` None) and CSER's: code loaded from numba's cache cannot be
    inspected, and a kernel called from a cached caller is never compiled on its own."""
    import platform

    from lowentropy._jit import _with_slp
    from lowentropy.formats import _grouped_kernels
    from lowentropy.formats._sums import aligned_rows

    W = np.zeros((4, 40), np.float32)
    W[:, ::3] = 2.0
    X = np.ones((40, 2 * width), np.float32)  # two tiles
    kernel = getattr(_grouped_kernels, f"tiles{width}_of_row")
    assert kernel.lowentropy_slp
    if platform.machine() not in ("x86_64", "AMD64"):
        return
    for name in ("cer", "cser"):
        f = le.FORMATS[name].from_dense(W)
        a = f.arrays()
        deltas, offset = f._deltas_offset(X)
        out = np.zeros((W.shape[0], X.shape[1]), np.float32)
        rows = aligned_rows(X, X.shape[1])
        args = (deltas, a["col_idx"], f._omega_idx(), a["omega_ptr"], a["row_ptr"],
                rows.reshape(-1), rows.shape[1].bit_length() - 1, offset, out, 0,
                X.shape[1], 0)
        packed = {}
        for slp in (True, False):
            fresh = numba.njit(nogil=True)(kernel.py_func)
            fresh = _with_slp(fresh) if slp else fresh
            fresh(*args)
            packed[slp] = fresh.inspect_asm(fresh.signatures[0]).count("addps")
        assert np.array_equal(out[0], W[0] @ X), name
        assert packed[True] >= 3 and packed[False] == 0, (name, packed)


# --- the rows of X the batch kernels gather (aligned to cache lines) ---------------------------


def _at_byte_offset(X: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of ``X`` whose data start ``offset`` bytes past a 64-byte line."""
    buffer = np.empty(X.nbytes + 128, np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    Y = buffer[start:start + X.nbytes].view(X.dtype).reshape(X.shape)
    Y[...] = X
    return Y


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B8", [8, 16, 24, 32, 64])
@pytest.mark.parametrize("offset", [0, 16, 32, 48])
def test_aligned_rows_start_on_cache_lines(dtype, B8, offset):
    from lowentropy.formats._sums import aligned_rows

    X = _at_byte_offset(np.arange(5.0 * (B8 + 3)).reshape(5, B8 + 3).astype(dtype), offset)
    A = aligned_rows(X, B8)
    line = 64 if B8 * A.itemsize >= 64 else 32
    assert A.flags.c_contiguous and A.ctypes.data % 64 == 0
    assert A.strides[0] % line == 0 and A.shape[1] >= B8
    assert np.array_equal(A[:, :B8], X[:, :B8])
    assert A.shape[1] & (A.shape[1] - 1) == 0  # a power of two: a row's offset is a shift
    exact = _at_byte_offset(np.ones((5, A.shape[1]), dtype), 0)
    assert aligned_rows(exact, B8) is exact  # already so: no copy


@pytest.mark.nojit
@pytest.mark.parametrize("batch", [8, 24, 40, 64, 65])
@pytest.mark.parametrize("offset", [16, 32, 48])
def test_operands_off_cache_lines_give_the_same_bits(batch, offset):
    """The batch kernels read an aligned copy of an operand that starts inside a cache
    line: the same sums, in the same order, as from an aligned operand."""
    rng = np.random.default_rng(batch + offset)
    W = rng.choice(np.array([0, 0, 0, 0.5, -1.25, 3.0], np.float32), size=(6, 90))
    X = rng.standard_normal((90, batch)).astype(np.float32)
    reference = W.astype(np.float64) @ X.astype(np.float64)
    for name in ("cer", "cser"):
        f = le.FORMATS[name].from_dense(W)
        aligned = f @ _at_byte_offset(X, 0)
        assert np.array_equal(f @ _at_byte_offset(X, offset), aligned), name
        assert np.all(np.abs(aligned - reference) <= tolerance(W, X)), name
