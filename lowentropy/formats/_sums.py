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
- batches of 8 columns and more go 16 columns at a time (then 8): the sums of a group
  are tuples of 8 scalars (two sets, for two entries in flight), which LLVM's SLP
  vectorizer turns into one vector addition per gathered row and 8 columns
  (``kernel(vectorize=True)``). Tiles of 16 columns read a whole 64-byte line of a row
  of ``X`` at once: at batch 64 on VGG-16 fc6 (one thread), 1.5× faster than tiles of 8,
  whose two halves of a line were fetched again from L2 a walk of the row apart; 32
  columns at once were another 10 % faster at batch 64 but no faster at 16.

The helpers are inlined into the kernels of each format; they are not kernels themselves.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64

__all__ = ["gather_sum", "gather_dot", "gather_sum_rows", "gather_dot_rows", "gather_sum8",
           "gather_sum16", "gather_sum32", "add8", "axpy8", "add_row8", "aligned_rows",
           "row_chunks", "by_column_blocks"]

_inline = numba.njit(inline="always", nogil=True)


@_inline
def gather_sum(col_idx, x, lo, hi):  # pragma: no cover - compiled
    """``sum(x[col_idx[lo:hi]])`` with 8 accumulators."""
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
    while p < e:
        s0 += x[col_idx[p]]
        p += uint64(1)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


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
def gather_sum8(col_idx, X, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+8].sum(axis=0)`` as a tuple of 8, four rows in flight (four
    chains of vector additions: two were bound by the adder's latency)."""
    k = uint64(k)
    z = X.dtype.type(0)
    s = t = u = v = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        s = add_row8(s, X, col_idx[p], k)
        t = add_row8(t, X, col_idx[p + uint64(1)], k)
        u = add_row8(u, X, col_idx[p + uint64(2)], k)
        v = add_row8(v, X, col_idx[p + uint64(3)], k)
        p += uint64(4)
    while p < e:
        s = add_row8(s, X, col_idx[p], k)
        p += uint64(1)
    return add8(add8(s, t), add8(u, v))


@_inline
def gather_sum16(col_idx, X, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+16].sum(axis=0)`` as two tuples of 8 (the same sums as two
    calls of :func:`gather_sum8`, in one walk: a gathered row of ``X`` is one 64-byte
    line instead of two halves fetched a walk apart), four rows in flight."""
    k = uint64(k)
    k8 = k + uint64(8)
    z = X.dtype.type(0)
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(4) <= e:
        j0 = col_idx[p]
        j1 = col_idx[p + uint64(1)]
        j2 = col_idx[p + uint64(2)]
        j3 = col_idx[p + uint64(3)]
        s0 = add_row8(s0, X, j0, k)
        t0 = add_row8(t0, X, j0, k8)
        s1 = add_row8(s1, X, j1, k)
        t1 = add_row8(t1, X, j1, k8)
        s2 = add_row8(s2, X, j2, k)
        t2 = add_row8(t2, X, j2, k8)
        s3 = add_row8(s3, X, j3, k)
        t3 = add_row8(t3, X, j3, k8)
        p += uint64(4)
    while p < e:
        j0 = col_idx[p]
        s0 = add_row8(s0, X, j0, k)
        t0 = add_row8(t0, X, j0, k8)
        p += uint64(1)
    return add8(add8(s0, s1), add8(s2, s3)), add8(add8(t0, t1), add8(t2, t3))


@_inline
def gather_sum32(col_idx, X, k, lo, hi):  # pragma: no cover - compiled
    """``X[col_idx[lo:hi], k:k+32].sum(axis=0)`` as four tuples of 8, two rows in flight
    (eight chains of vector additions): a gathered row of ``X`` is two neighbouring 64-byte
    lines, fetched together."""
    k = uint64(k)
    k1 = k + uint64(8)
    k2 = k + uint64(16)
    k3 = k + uint64(24)
    z = X.dtype.type(0)
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = (z, z, z, z, z, z, z, z)
    p = uint64(lo)
    e = uint64(hi)
    while p + uint64(2) <= e:
        j = col_idx[p]
        q = col_idx[p + uint64(1)]
        s0 = add_row8(s0, X, j, k)
        s1 = add_row8(s1, X, j, k1)
        s2 = add_row8(s2, X, j, k2)
        s3 = add_row8(s3, X, j, k3)
        t0 = add_row8(t0, X, q, k)
        t1 = add_row8(t1, X, q, k1)
        t2 = add_row8(t2, X, q, k2)
        t3 = add_row8(t3, X, q, k3)
        p += uint64(2)
    if p < e:
        j = col_idx[p]
        s0 = add_row8(s0, X, j, k)
        s1 = add_row8(s1, X, j, k1)
        s2 = add_row8(s2, X, j, k2)
        s3 = add_row8(s3, X, j, k3)
    return add8(s0, t0), add8(s1, t1), add8(s2, t2), add8(s3, t3)


def aligned_rows(X: np.ndarray, B8: int) -> np.ndarray:
    """A C-contiguous array whose rows start on 64-byte lines and whose first ``B8``
    columns are ``X[:, :B8]``: ``X`` itself when it is so, else a copy.

    The batch kernels read a gathered row of ``X`` 8, 16 or 32 columns at a time; a
    row that starts inside a cache line spreads every such read over two lines, which the
    gathers then fetch from L2 or L3 twice as often (numpy aligns arrays to 16 bytes
    only). Rows are padded to a multiple of 64 bytes (32 for rows of 8 float32 values).

    Examples
    --------
    >>> X = np.arange(30.0).reshape(3, 10)
    >>> A = aligned_rows(X, 8)
    >>> A.ctypes.data % 64, A.shape, np.array_equal(A[:, :8], X[:, :8])
    (0, (3, 8), True)
    """
    itemsize = X.dtype.itemsize
    per_line = (64 if B8 * itemsize >= 64 else 32) // itemsize
    stride = -(-B8 // per_line) * per_line
    if X.ctypes.data % 64 == 0 and X.shape[1] == stride and X.flags.c_contiguous:
        return X
    buffer = np.empty(X.shape[0] * stride + 64 // itemsize, X.dtype)
    start = (-buffer.ctypes.data % 64) // itemsize
    rows = buffer[start:start + X.shape[0] * stride].reshape(X.shape[0], stride)
    rows[:, :B8] = X[:, :B8]
    return rows


def by_column_blocks(X: np.ndarray, out: np.ndarray, offset: np.ndarray, blocked, generic):
    """Run a product over the columns of ``X``: ``blocked(X, offset, out, B8)`` computes
    the first ``B8`` columns (the largest multiple of 8, 8 at a time), ``generic(X_rest,
    offset_rest, out_rest)`` the others, on contiguous copies of them.

    Examples
    --------
    >>> calls = []
    >>> X, out = np.ones((3, 19)), np.zeros((2, 19))
    >>> by_column_blocks(X, out, np.zeros(19), lambda X, o, out, b: calls.append(b),
    ...                  lambda X, o, out: calls.append(X.shape))
    >>> calls
    [16, (3, 3)]
    """
    B = X.shape[1]
    B8 = B - B % 8
    if B8:
        blocked(aligned_rows(X, B8), offset, out, B8)
    if B8 < B:
        rest = np.zeros((out.shape[0], B - B8), out.dtype)
        generic(np.ascontiguousarray(X[:, B8:]), np.ascontiguousarray(offset[B8:]), rest)
        out[:, B8:] = rest


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
