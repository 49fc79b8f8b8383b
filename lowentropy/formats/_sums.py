"""Inner loops shared by the product kernels, and how rows are split between threads.

Chosen by measurement (``benchmarks/run.py``; AMD EPYC, 2 cores):

- entries are walked with unsigned positions, so that numba emits no wrap-around test
  for negative indices (about 30 % of a CER/CSER product);
- a group's sum uses 8 independent accumulators (4 for a weighted CSR sum): one chain of
  dependent additions is limited by the adder's latency, several chains by the loads;
- batches add four gathered rows of ``X`` together before touching the accumulator row,
  so the accumulator (in memory) is updated once per four entries;
- ``fastmath`` stays off: letting LLVM vectorize the gathers made them slower here. So
  was an explicit AVX2 gather (``vgatherdps`` of 8 columns through an LLVM intrinsic,
  Zen 3): 2.4 cycles per entry against 1.5 for the 8 scalar loads, on VGG-16 fc6 groups;
- batches of 8 columns and more go 32 columns at a time, then 16, then 8, one kernel
  (one pass over the rows) per width (:func:`tile_runs`; with the three widths in one
  function LLVM ran out of registers, and the tiles of 8 were 10-20 % slower): the sums of
  a group are tuples of 8 scalars, which LLVM's SLP vectorizer turns into one vector
  addition per gathered row and 8 columns (``kernel(vectorize=True)``). Tiles of 16
  columns read a whole 64-byte line of a row of ``X`` at once (1.5× faster than tiles of
  8 at batch 64, whose two halves of a line were fetched again a walk of the row apart),
  tiles of 32 two neighbouring lines. Four gathered rows are in flight in tiles of 8 and
  16, two in tiles of 32 (four, eight and eight chains of vector additions; with half as
  many, a tile was bound by the adder's latency);
- the rows of ``X`` the batch kernels gather start on 64-byte lines and are a power of
  two long (:func:`aligned_rows`, a copy when ``X`` is not so): numpy aligns arrays to
  16 bytes only, and a row starting inside a line made every read of 8-32 columns touch
  two lines (one thread, VGG-16 fc6, X 16 bytes into a line: 27 % slower at batch 8,
  30-47 % at batch 64); a row's offset is then a shift rather than a multiplication;
- the last entries of a group are read without a test of how many are left: 1-7 read
  as seven at batch 1 (those past the group at a 0 appended to ``x``,
  :func:`with_zero`), 1-3 as three rows at 8 and 16 columns (masked by :func:`select`,
  one ``vpandn`` a row): a loop over them mispredicted its exit about once a group
  (one thread, VGG-16 fc6: batch 1 1.49 -> 1.35 cycles per entry, batch 8 2.62 ->
  2.37). The masks are ``min`` and a call of :func:`select`, and the tail is a loop
  that runs once: an ``if`` or a conditional expression in a helper
  that numba inlines left reference-count updates of the kernel's arrays in the row
  loop (30-35 % slower; the same happened to the earlier branch-free attempts);
- tried and not kept (one thread, VGG-16 fc6): at batch 8 and 64, software prefetch
  (``llvm.prefetch``) of the gathered rows 4-32 entries ahead and of the column indices
  (non-temporal), column blocks that keep a part of ``X`` in L2 (the threads on
  different halves of the columns, or one thread walking them in turn), 8 rows in
  flight at batch 8, 64 columns at a time at batch 64 (slower: one row in flight), the
  masked tail in tiles of 32 (at most one entry left; equal within the noise); at
  batch 1, software prefetch of ``x`` 16-64 entries ahead or of the next group's first
  entries (±1 %), four 16-bit column indices read with one unaligned 64-bit load and
  taken apart with shifts (1.41 against 1.36 cycles per entry), a float select for the
  masked entries (compiled to branches: 1.74), the last entries 4 then 3 at a time
  (1.59).

The helpers are inlined into the kernels of each format; they are not kernels themselves.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64

__all__ = ["gather_sum", "gather_dot", "gather_sum_rows", "gather_dot_rows", "gather_sum8",
           "gather_sum16", "gather_sum32", "add8", "axpy8", "add_row8", "add_at8", "aligned_rows",
           "row_chunks", "by_column_blocks", "tile_runs", "with_zero", "select", "row8"]

_inline = numba.njit(inline="always", nogil=True)


@numba.njit(nogil=True)
def select(condition, a, b):  # pragma: no cover - compiled
    """``a if condition else b``, for scalars or tuples: a function of its own, not
    inlined by numba (LLVM inlines it, as a select), since a branch in a helper that numba
    inlines kept its reference counts of the kernel's arrays from being pruned (one
    increment and decrement per row, 35 % slower)."""
    return a if condition else b


@_inline
def _masked_index(col_idx, q, e, last, zero):  # pragma: no cover - compiled
    """``col_idx[q]`` when ``q < e``, else ``zero``; without a branch (``col_idx`` is read
    at ``min(q, last)``, inside the group; the select is a ``cmov``)."""
    return select(q < e, uint64(col_idx[min(q, last)]), zero)


@_inline
def gather_sum(col_idx, x, lo, hi, zero):  # pragma: no cover - compiled
    """``sum(x[col_idx[lo:hi]])`` with 8 accumulators; ``x[zero]`` is 0.

    The last 1-7 entries of a group are read as seven, those past the group at
    ``x[zero]``: no test of how many are left (a loop over them mispredicted its exit
    about once a group)."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(8) <= e:
        s0 += x[col_idx[p]]
        s1 += x[col_idx[p + uint64(1)]]
        s2 += x[col_idx[p + uint64(2)]]
        s3 += x[col_idx[p + uint64(3)]]
        s4 += x[col_idx[p + uint64(4)]]
        s5 += x[col_idx[p + uint64(5)]]
        s6 += x[col_idx[p + uint64(6)]]
        s7 += x[col_idx[p + uint64(7)]]
        p += uint64(8)
    while p < e:  # once (a loop, not an if: see select)
        last = e - uint64(1)
        s0 += x[col_idx[p]]
        s1 += x[_masked_index(col_idx, p + uint64(1), e, last, zero)]
        s2 += x[_masked_index(col_idx, p + uint64(2), e, last, zero)]
        s3 += x[_masked_index(col_idx, p + uint64(3), e, last, zero)]
        s4 += x[_masked_index(col_idx, p + uint64(4), e, last, zero)]
        s5 += x[_masked_index(col_idx, p + uint64(5), e, last, zero)]
        s6 += x[_masked_index(col_idx, p + uint64(6), e, last, zero)]
        p = e
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def with_zero(x: np.ndarray) -> np.ndarray:
    """``x`` followed by one 0 (the entry :func:`gather_sum` reads past a group's end).

    Examples
    --------
    >>> with_zero(np.array([1.5, 2.0], np.float32))
    array([1.5, 2. , 0. ], dtype=float32)
    """
    padded = np.empty(x.shape[0] + 1, x.dtype)
    padded[:-1] = x
    padded[-1] = 0
    return padded


@_inline
def gather_dot(values, col_idx, x, lo, hi):  # pragma: no cover - compiled
    """``values[lo:hi] @ x[col_idx[lo:hi]]`` with 4 accumulators."""
    z = x.dtype.type(0)
    s0 = s1 = s2 = s3 = z
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        s0 += values[p] * x[col_idx[p]]
        s1 += values[p + uint64(1)] * x[col_idx[p + uint64(1)]]
        s2 += values[p + uint64(2)] * x[col_idx[p + uint64(2)]]
        s3 += values[p + uint64(3)] * x[col_idx[p + uint64(3)]]
        p += uint64(4)
    while p < e:
        s0 += values[p] * x[col_idx[p]]
        p += uint64(1)
    return (s0 + s1) + (s2 + s3)


@_inline
def gather_sum_rows(col_idx, X, lo, hi, s):  # pragma: no cover - compiled
    """``s[:] = X[col_idx[lo:hi]].sum(axis=0)``, four rows of ``X`` at a time."""
    B = X.shape[1]
    for b in range(B):
        s[b] = 0
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        x0 = X[col_idx[p]]
        x1 = X[col_idx[p + uint64(1)]]
        x2 = X[col_idx[p + uint64(2)]]
        x3 = X[col_idx[p + uint64(3)]]
        for b in range(B):
            s[b] += (x0[b] + x1[b]) + (x2[b] + x3[b])
        p += uint64(4)
    while p < e:
        x0 = X[col_idx[p]]
        for b in range(B):
            s[b] += x0[b]
        p += uint64(1)


@_inline
def gather_dot_rows(values, col_idx, X, lo, hi, o):  # pragma: no cover - compiled
    """``o[:] += values[lo:hi] @ X[col_idx[lo:hi]]``, four rows of ``X`` at a time."""
    B = X.shape[1]
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        v0 = values[p]
        v1 = values[p + uint64(1)]
        v2 = values[p + uint64(2)]
        v3 = values[p + uint64(3)]
        x0 = X[col_idx[p]]
        x1 = X[col_idx[p + uint64(1)]]
        x2 = X[col_idx[p + uint64(2)]]
        x3 = X[col_idx[p + uint64(3)]]
        for b in range(B):
            o[b] += (v0 * x0[b] + v1 * x1[b]) + (v2 * x2[b] + v3 * x3[b])
        p += uint64(4)
    while p < e:
        v0 = values[p]
        x0 = X[col_idx[p]]
        for b in range(B):
            o[b] += v0 * x0[b]
        p += uint64(1)


@_inline
def add_row8(s, X, j, k):  # pragma: no cover - compiled
    """``s + X[j, k:k+8]`` on a tuple of 8 sums (``k`` unsigned: a signed index gets a
    wrap-around test that keeps LLVM from seeing the 8 loads as one)."""
    return (s[0] + X[j, k], s[1] + X[j, k + uint64(1)], s[2] + X[j, k + uint64(2)],
            s[3] + X[j, k + uint64(3)], s[4] + X[j, k + uint64(4)],
            s[5] + X[j, k + uint64(5)], s[6] + X[j, k + uint64(6)],
            s[7] + X[j, k + uint64(7)])


@_inline
def add_at8(s, Xf, o):  # pragma: no cover - compiled
    """``s + Xf[o:o+8]`` on a tuple of 8 (``o`` unsigned)."""
    return (s[0] + Xf[o], s[1] + Xf[o + uint64(1)], s[2] + Xf[o + uint64(2)],
            s[3] + Xf[o + uint64(3)], s[4] + Xf[o + uint64(4)], s[5] + Xf[o + uint64(5)],
            s[6] + Xf[o + uint64(6)], s[7] + Xf[o + uint64(7)])


@_inline
def row8(Xf, o):  # pragma: no cover - compiled
    """``Xf[o:o+8]`` as a tuple (``o`` unsigned)."""
    return (Xf[o], Xf[o + uint64(1)], Xf[o + uint64(2)], Xf[o + uint64(3)], Xf[o + uint64(4)],
            Xf[o + uint64(5)], Xf[o + uint64(6)], Xf[o + uint64(7)])


@_inline
def _masked_row(col_idx, sh, q, e, last):  # pragma: no cover - compiled
    """Whether entry ``q`` is in the group (``q < e``), and the offset of its row of ``X``
    (of entry ``min(q, last)``: a row of the group either way, read without a branch)."""
    return q < e, uint64(col_idx[min(q, last)]) << sh


@_inline
def add8(s, t):  # pragma: no cover - compiled
    """``s + t`` on tuples of 8."""
    return (s[0] + t[0], s[1] + t[1], s[2] + t[2], s[3] + t[3], s[4] + t[4], s[5] + t[5],
            s[6] + t[6], s[7] + t[7])


@_inline
def axpy8(o, d, s):  # pragma: no cover - compiled
    """``o + d·s`` on tuples of 8."""
    return (o[0] + d * s[0], o[1] + d * s[1], o[2] + d * s[2], o[3] + d * s[3],
            o[4] + d * s[4], o[5] + d * s[5], o[6] + d * s[6], o[7] + d * s[7])


@_inline
def gather_sum8(col_idx, Xf, sh, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+8].sum(axis=0)`` as a tuple of 8, ``X`` given as its flat
    array ``Xf`` and the log2 ``sh`` of its row length (:func:`aligned_rows`: a shift
    where a row's offset would take a multiplication). Four rows in flight (four chains
    of vector additions: two were bound by the adder's latency)."""
    k = uint64(k)
    sh = uint64(sh)
    z = Xf.dtype.type(0)
    s = t = u = v = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        s = add_at8(s, Xf, (uint64(col_idx[p]) << sh) + k)
        t = add_at8(t, Xf, (uint64(col_idx[p + uint64(1)]) << sh) + k)
        u = add_at8(u, Xf, (uint64(col_idx[p + uint64(2)]) << sh) + k)
        v = add_at8(v, Xf, (uint64(col_idx[p + uint64(3)]) << sh) + k)
        p += uint64(4)
    while p < e:  # once: the last 1-3 entries read as three, masked (as gather_sum)
        z8 = (z, z, z, z, z, z, z, z)
        last = e - uint64(1)
        s = add_at8(s, Xf, (uint64(col_idx[p]) << sh) + k)
        m1, j1 = _masked_row(col_idx, sh, p + uint64(1), e, last)
        m2, j2 = _masked_row(col_idx, sh, p + uint64(2), e, last)
        t = add8(t, select(m1, row8(Xf, j1 + k), z8))
        u = add8(u, select(m2, row8(Xf, j2 + k), z8))
        p = e
    return add8(add8(s, t), add8(u, v))


@_inline
def gather_sum16(col_idx, Xf, sh, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+16].sum(axis=0)`` as two tuples of 8 (as
    :func:`gather_sum8`; one walk for both halves: a gathered row of ``X`` is one 64-byte
    line instead of two halves fetched a walk apart), four rows in flight."""
    k = uint64(k)
    k8 = k + uint64(8)
    sh = uint64(sh)
    z = Xf.dtype.type(0)
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        j0 = uint64(col_idx[p]) << sh
        j1 = uint64(col_idx[p + uint64(1)]) << sh
        j2 = uint64(col_idx[p + uint64(2)]) << sh
        j3 = uint64(col_idx[p + uint64(3)]) << sh
        s0 = add_at8(s0, Xf, j0 + k)
        t0 = add_at8(t0, Xf, j0 + k8)
        s1 = add_at8(s1, Xf, j1 + k)
        t1 = add_at8(t1, Xf, j1 + k8)
        s2 = add_at8(s2, Xf, j2 + k)
        t2 = add_at8(t2, Xf, j2 + k8)
        s3 = add_at8(s3, Xf, j3 + k)
        t3 = add_at8(t3, Xf, j3 + k8)
        p += uint64(4)
    while p < e:  # once: the last 1-3 entries read as three, masked (as gather_sum8)
        z8 = (z, z, z, z, z, z, z, z)
        last = e - uint64(1)
        j0 = uint64(col_idx[p]) << sh
        s0 = add_at8(s0, Xf, j0 + k)
        t0 = add_at8(t0, Xf, j0 + k8)
        m1, j1 = _masked_row(col_idx, sh, p + uint64(1), e, last)
        m2, j2 = _masked_row(col_idx, sh, p + uint64(2), e, last)
        s1 = add8(s1, select(m1, row8(Xf, j1 + k), z8))
        t1 = add8(t1, select(m1, row8(Xf, j1 + k8), z8))
        s2 = add8(s2, select(m2, row8(Xf, j2 + k), z8))
        t2 = add8(t2, select(m2, row8(Xf, j2 + k8), z8))
        p = e
    return add8(add8(s0, s1), add8(s2, s3)), add8(add8(t0, t1), add8(t2, t3))


@_inline
def gather_sum32(col_idx, Xf, sh, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+32].sum(axis=0)`` as four tuples of 8 (as
    :func:`gather_sum8`), two rows in flight (eight chains of vector additions): a
    gathered row of ``X`` is two neighbouring 64-byte lines, fetched together."""
    k = uint64(k)
    k1 = k + uint64(8)
    k2 = k + uint64(16)
    k3 = k + uint64(24)
    sh = uint64(sh)
    z = Xf.dtype.type(0)
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(2) <= e:
        j = uint64(col_idx[p]) << sh
        q = uint64(col_idx[p + uint64(1)]) << sh
        s0 = add_at8(s0, Xf, j + k)
        s1 = add_at8(s1, Xf, j + k1)
        s2 = add_at8(s2, Xf, j + k2)
        s3 = add_at8(s3, Xf, j + k3)
        t0 = add_at8(t0, Xf, q + k)
        t1 = add_at8(t1, Xf, q + k1)
        t2 = add_at8(t2, Xf, q + k2)
        t3 = add_at8(t3, Xf, q + k3)
        p += uint64(2)
    if p < e:
        j = uint64(col_idx[p]) << sh
        s0 = add_at8(s0, Xf, j + k)
        s1 = add_at8(s1, Xf, j + k1)
        s2 = add_at8(s2, Xf, j + k2)
        s3 = add_at8(s3, Xf, j + k3)
    return add8(s0, t0), add8(s1, t1), add8(s2, t2), add8(s3, t3)


def aligned_rows(X: np.ndarray, B8: int) -> np.ndarray:
    """A C-contiguous array whose rows start on cache lines, are a power of two long and
    begin with ``X[:, :B8]``: ``X`` itself when it is so, else a copy.

    The batch kernels read a gathered row of ``X`` 8, 16 or 32 columns at a time. A row
    that starts inside a 64-byte line spreads every such read over two lines, which the
    gathers then fetch from L2 or L3 twice as often (numpy aligns arrays to 16 bytes
    only); a power-of-two row length makes a row's offset a shift (one multiplication per
    gathered row less). Rows hold at least 32 bytes; the copy is at most twice ``X``.

    Examples
    --------
    >>> X = np.arange(36.0).reshape(3, 12)
    >>> A = aligned_rows(X, 8)
    >>> A.ctypes.data % 64, A.shape, np.array_equal(A[:, :8], X[:, :8])
    (0, (3, 8), True)
    >>> aligned_rows(np.ones((3, 24), np.float32), 24).shape
    (3, 32)
    """
    itemsize = X.dtype.itemsize
    stride = 1 << (max(B8, 32 // itemsize) - 1).bit_length()
    if X.ctypes.data % 64 == 0 and X.shape[1] == stride and X.flags.c_contiguous:
        return X
    buffer = np.empty(X.shape[0] * stride + 64 // itemsize, X.dtype)
    start = (-buffer.ctypes.data % 64) // itemsize
    rows = buffer[start:start + X.shape[0] * stride].reshape(X.shape[0], stride)
    rows[:, :B8] = X[:, :B8]
    return rows


def by_column_blocks(X: np.ndarray, out: np.ndarray, offset: np.ndarray, blocked, generic):
    """Run a product over the columns of ``X``: ``blocked(Xf, sh, offset, out, B8)``
    computes the first ``B8`` columns (the largest multiple of 8, 8 at a time) from
    :func:`aligned_rows` as a flat array ``Xf`` with rows of ``2**sh`` entries,
    ``generic(X_rest, offset_rest, out_rest)`` the others, on contiguous copies of them.

    Examples
    --------
    >>> calls = []
    >>> X, out = np.ones((3, 19)), np.zeros((2, 19))
    >>> by_column_blocks(X, out, np.zeros(19), lambda Xf, sh, o, out, b: calls.append((sh, b)),
    ...                  lambda X, o, out: calls.append(X.shape))
    >>> calls
    [(4, 16), (3, 3)]
    """
    B = X.shape[1]
    B8 = B - B % 8
    if B8:
        rows = aligned_rows(X, B8)
        blocked(rows.reshape(-1), rows.shape[1].bit_length() - 1, offset, out, B8)
    if B8 < B:
        rest = np.zeros((out.shape[0], B - B8), out.dtype)
        generic(np.ascontiguousarray(X[:, B8:]), np.ascontiguousarray(offset[B8:]), rest)
        out[:, B8:] = rest


def tile_runs(B8: int) -> list[tuple[int, int, int]]:
    """How the batch kernels cover columns ``0..B8`` (a multiple of 8): ``(width, k0, k1)``
    runs of tiles of 32 columns, then at most one of 16 and one of 8, each run one pass of
    its own kernel over the rows.

    Examples
    --------
    >>> tile_runs(8), tile_runs(64)
    ([(8, 0, 8)], [(32, 0, 64)])
    >>> tile_runs(56)
    [(32, 0, 32), (16, 32, 48), (8, 48, 56)]
    """
    k32 = B8 - B8 % 32
    runs = [(32, 0, k32)] if k32 else []
    if B8 - k32 >= 16:
        runs.append((16, k32, k32 + 16))
    if B8 % 16:
        runs.append((8, B8 - 8, B8))
    return runs


def row_chunks(work: np.ndarray, parts: int) -> np.ndarray:
    """Split rows into ``parts`` runs of about equal work.

    Parameters
    ----------
    work : (m+1,) int array
        Cumulative work up to each row (e.g. entries plus groups plus rows), from 0.
    parts : int
        Number of runs wanted (the number of threads).

    Returns
    -------
    (k+1,) int64 array
        Row boundaries ``0 = c_0 <= ... <= c_k = m`` of ``k <= parts`` non-empty runs.

    Examples
    --------
    >>> row_chunks(np.array([0, 10, 11, 12, 22]), 2).tolist()   # rows of work 10, 1, 1, 10
    [0, 2, 4]
    """
    work = np.asarray(work, np.int64)
    m = work.size - 1
    targets = np.linspace(0, work[-1], max(int(parts), 1) + 1)[1:-1]
    inner = np.searchsorted(work, targets, side="left")
    bounds = np.unique(np.concatenate(([0], np.clip(inner, 0, m), [m])))
    return bounds.astype(np.int64)
