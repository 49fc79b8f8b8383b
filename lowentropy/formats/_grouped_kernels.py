"""The products of CER and CSER (SPEC §3): one set of kernels for both.

A group's ``ω_k − ω_0`` is the only thing the two formats find differently: CSER names
the rank of every group (``omega_idx``), CER's follows from the group's place in its row
(``rank = g − row_ptr[i] + 1``). The kernels take ``omega_idx``, or ``None`` for CER;
the choice is made when a kernel is compiled (one machine code for each format).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._jit import kernel, prange, serial
from ._sums import axpy8, gather_sum, gather_sum8, gather_sum16, gather_sum32, gather_sum_rows

__all__ = ["grouped_matvec", "grouped_matmat", "grouped_matmat8", "tiles_of_row"]

_inline = numba.njit(inline="always", nogil=True)

def _delta(deltas, omega_idx, g, g0):
    """``ω_k − ω_0`` of group ``g``, the first group of its row being ``g0`` (its rank is
    ``omega_idx[g]``, or its place in the row when ``omega_idx`` is ``None``)."""
    if omega_idx is None:
        return deltas[g - g0 + 1]
    return deltas[omega_idx[g]]


@overload(_delta, inline="always")
def _delta_compiled(deltas, omega_idx, g, g0):  # pragma: no cover - compiled
    if isinstance(omega_idx, types.NoneType):
        return lambda deltas, omega_idx, g, g0: deltas[g - g0 + 1]
    return lambda deltas, omega_idx, g, g0: deltas[omega_idx[g]]


@kernel(parallel=True)
def grouped_matvec(deltas, col_idx, omega_idx, omega_ptr, row_ptr, x, offset, chunks, out):
    """``out = W @ x``: per row, one gathered sum per group and one multiplication."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            acc = offset
            g0 = row_ptr[i]
            for g in range(g0, row_ptr[i + 1]):  # empty groups add 0
                acc += _delta(deltas, omega_idx, g, g0) * gather_sum(
                    col_idx, x, omega_ptr[g], omega_ptr[g + 1])
            out[i] = acc


@kernel(parallel=True)
def grouped_matmat(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, chunks, out):
    """``out = W @ X`` for any number of columns: a group's sum is a row of sums."""
    B = X.shape[1]
    for c in prange(chunks.shape[0] - 1):
        s = np.empty(B, X.dtype)
        for i in range(chunks[c], chunks[c + 1]):
            o = out[i]
            for b in range(B):
                o[b] = offset[b]
            g0 = row_ptr[i]
            for g in range(g0, row_ptr[i + 1]):
                if omega_ptr[g + 1] > omega_ptr[g]:
                    gather_sum_rows(col_idx, X, omega_ptr[g], omega_ptr[g + 1], s)
                    d = _delta(deltas, omega_idx, g, g0)
                    for b in range(B):
                        o[b] += d * s[b]


@_inline
def _store8(out, i, k, o):  # pragma: no cover - compiled
    for b in range(8):
        out[i, k + b] = o[b]


@_inline
def _offset8(offset, k):  # pragma: no cover - compiled
    """``offset[k:k+8]`` as a tuple."""
    return (offset[k], offset[k + 1], offset[k + 2], offset[k + 3], offset[k + 4],
            offset[k + 5], offset[k + 6], offset[k + 7])


@_inline
def _tile32(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i,
            k):  # pragma: no cover - compiled
    """Columns ``k..k+32`` of row ``i`` (:func:`gather_sum32`)."""
    g0 = row_ptr[i]
    o0 = _offset8(offset, k)
    o1 = _offset8(offset, k + 8)
    o2 = _offset8(offset, k + 16)
    o3 = _offset8(offset, k + 24)
    for g in range(g0, row_ptr[i + 1]):
        if omega_ptr[g + 1] > omega_ptr[g]:
            s0, s1, s2, s3 = gather_sum32(col_idx, Xf, sh, k, omega_ptr[g], omega_ptr[g + 1])
            d = _delta(deltas, omega_idx, g, g0)
            o0 = axpy8(o0, d, s0)
            o1 = axpy8(o1, d, s1)
            o2 = axpy8(o2, d, s2)
            o3 = axpy8(o3, d, s3)
    _store8(out, i, k, o0)
    _store8(out, i, k + 8, o1)
    _store8(out, i, k + 16, o2)
    _store8(out, i, k + 24, o3)


@_inline
def _tile16(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i,
            k):  # pragma: no cover - compiled
    """Columns ``k..k+16`` of row ``i`` (:func:`gather_sum16`)."""
    g0 = row_ptr[i]
    o = _offset8(offset, k)
    q = _offset8(offset, k + 8)
    for g in range(g0, row_ptr[i + 1]):
        if omega_ptr[g + 1] > omega_ptr[g]:
            s, t = gather_sum16(col_idx, Xf, sh, k, omega_ptr[g], omega_ptr[g + 1])
            d = _delta(deltas, omega_idx, g, g0)
            o = axpy8(o, d, s)
            q = axpy8(q, d, t)
    _store8(out, i, k, o)
    _store8(out, i, k + 8, q)


@_inline
def _tile8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i,
            k):  # pragma: no cover - compiled
    """Columns ``k..k+8`` of row ``i`` (:func:`gather_sum8`)."""
    g0 = row_ptr[i]
    o = _offset8(offset, k)
    for g in range(g0, row_ptr[i + 1]):
        if omega_ptr[g + 1] > omega_ptr[g]:
            s = gather_sum8(col_idx, Xf, sh, k, omega_ptr[g], omega_ptr[g + 1])
            o = axpy8(o, _delta(deltas, omega_idx, g, g0), s)
    _store8(out, i, k, o)


@kernel(vectorize=True)
def tiles_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, B8, i):
    """Row ``i`` of ``W @ X[:, :B8]`` (``B8`` a multiple of 8; ``X`` given as the flat
    array ``Xf`` of rows of ``2**sh`` entries, :func:`._sums.aligned_rows`), 32 columns at
    a time, then 16, then 8: the row's groups are walked once per tile (their column
    indices stay in L1), each sum a few vectors of 8. A function of its own, called by the parallel
    kernel: numba's analysis of parallel loops rejects its tuples."""
    k = 0
    while k + 32 <= B8:
        _tile32(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)
        k += 32
    if k + 16 <= B8:
        _tile16(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)
        k += 16
    if k < B8:
        _tile8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)


@kernel(parallel=True)
def grouped_matmat8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, chunks,
                    out, B8):
    """Columns ``0..B8`` (a multiple of 8) of ``out = W @ X``, row by row
    (:func:`tiles_of_row`)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            tiles_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, B8,
                         i)


grouped_matvec_serial = serial(grouped_matvec)
grouped_matmat_serial = serial(grouped_matmat)
grouped_matmat8_serial = serial(grouped_matmat8)
