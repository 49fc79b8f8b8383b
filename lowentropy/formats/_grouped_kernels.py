"""The products of CER and CSER (SPEC §3): one set of kernels for both.

A group's ``ω_k − ω_0`` is the only thing the two formats find differently: CSER names
the rank of every group (``omega_idx``), CER's follows from the group's place in its row
(``rank = g − row_ptr[i] + 1``). The kernels take ``omega_idx``, or ``None`` for CER;
the choice is made when a kernel is compiled (one machine code for each format).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types, uint64
from numba.extending import overload

from .._jit import kernel, prange, serial
from ._sums import axpy8, gather_sum, gather_sum8, gather_sum16, gather_sum32, gather_sum_rows

__all__ = ["grouped_matvec", "grouped_matmat", "grouped_matmat8", "grouped_matmat16",
           "grouped_matmat32", "tiles8_of_row", "tiles16_of_row", "tiles32_of_row", "GROUPED_TILES"]

_inline = numba.njit(inline="always", nogil=True)

def _delta(deltas, omega_idx, g, g0):
    """``ω_k − ω_0`` of group ``g``, the first group of its row being ``g0`` (its rank is
    ``omega_idx[g]``, or its place in the row when ``omega_idx`` is ``None``)."""
    if omega_idx is None:
        return deltas[g - g0 + 1]  # unsigned in the kernels
    return deltas[omega_idx[g]]


@overload(_delta, inline="always")
def _delta_compiled(deltas, omega_idx, g, g0):  # pragma: no cover - compiled
    if isinstance(omega_idx, types.NoneType):
        return lambda deltas, omega_idx, g, g0: deltas[g - g0 + uint64(1)]
    return lambda deltas, omega_idx, g, g0: deltas[omega_idx[g]]


@_inline
def _groups_of_row(row_ptr, omega_ptr, i):  # pragma: no cover - compiled
    """First and end group of row ``i`` and the first entry of its first group, unsigned
    (a signed index gets a wrap-around test at every access)."""
    g0 = uint64(row_ptr[i])
    return g0, uint64(row_ptr[i + 1]), uint64(omega_ptr[g0])


@kernel(parallel=True)
def grouped_matvec(deltas, col_idx, omega_idx, omega_ptr, row_ptr, x, offset, chunks, out):
    """``out = W @ x[:-1]``: per row, one gathered sum per group and one multiplication
    (``x`` ends with a 0, :func:`._sums.with_zero`)."""
    zero = uint64(x.shape[0] - 1)
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            acc = offset
            g0, g1, lo = _groups_of_row(row_ptr, omega_ptr, i)
            g = g0
            while g < g1:  # empty groups add 0
                hi = uint64(omega_ptr[g + uint64(1)])
                acc += _delta(deltas, omega_idx, g, g0) * gather_sum(col_idx, x, lo, hi, zero)
                lo = hi
                g += uint64(1)
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
            g0, g1, lo = _groups_of_row(row_ptr, omega_ptr, i)
            g = g0
            while g < g1:
                hi = uint64(omega_ptr[g + uint64(1)])
                if hi > lo:
                    gather_sum_rows(col_idx, X, lo, hi, s)
                    d = _delta(deltas, omega_idx, g, g0)
                    for b in range(B):
                        o[b] += d * s[b]
                lo = hi
                g += uint64(1)


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
    g0, g1, lo = _groups_of_row(row_ptr, omega_ptr, i)
    o0 = _offset8(offset, k)
    o1 = _offset8(offset, k + 8)
    o2 = _offset8(offset, k + 16)
    o3 = _offset8(offset, k + 24)
    g = g0
    while g < g1:
        hi = uint64(omega_ptr[g + uint64(1)])
        if hi > lo:
            s0, s1, s2, s3 = gather_sum32(col_idx, Xf, sh, k, lo, hi)
            d = _delta(deltas, omega_idx, g, g0)
            o0 = axpy8(o0, d, s0)
            o1 = axpy8(o1, d, s1)
            o2 = axpy8(o2, d, s2)
            o3 = axpy8(o3, d, s3)
        lo = hi
        g += uint64(1)
    _store8(out, i, k, o0)
    _store8(out, i, k + 8, o1)
    _store8(out, i, k + 16, o2)
    _store8(out, i, k + 24, o3)


@_inline
def _tile16(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i,
            k):  # pragma: no cover - compiled
    """Columns ``k..k+16`` of row ``i`` (:func:`gather_sum16`)."""
    g0, g1, lo = _groups_of_row(row_ptr, omega_ptr, i)
    o = _offset8(offset, k)
    q = _offset8(offset, k + 8)
    g = g0
    while g < g1:
        hi = uint64(omega_ptr[g + uint64(1)])
        if hi > lo:
            s, t = gather_sum16(col_idx, Xf, sh, k, lo, hi)
            d = _delta(deltas, omega_idx, g, g0)
            o = axpy8(o, d, s)
            q = axpy8(q, d, t)
        lo = hi
        g += uint64(1)
    _store8(out, i, k, o)
    _store8(out, i, k + 8, q)


@_inline
def _tile8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i,
            k):  # pragma: no cover - compiled
    """Columns ``k..k+8`` of row ``i`` (:func:`gather_sum8`)."""
    g0, g1, lo = _groups_of_row(row_ptr, omega_ptr, i)
    o = _offset8(offset, k)
    g = g0
    while g < g1:
        hi = uint64(omega_ptr[g + uint64(1)])
        if hi > lo:
            s = gather_sum8(col_idx, Xf, sh, k, lo, hi)
            o = axpy8(o, _delta(deltas, omega_idx, g, g0), s)
        lo = hi
        g += uint64(1)
    _store8(out, i, k, o)


@kernel(vectorize=True)
def tiles32_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, k0, k1,
                   i):
    """Columns ``k0..k1`` (a multiple of 32 apart) of row ``i`` of ``W @ X``, 32 at a time
    (``X`` given as the flat array ``Xf`` of rows of ``2**sh`` entries,
    :func:`._sums.aligned_rows`): the row's groups are walked once per tile (their column
    indices stay in L1), each sum four vectors of 8. A function of its own, called by the
    parallel kernel: numba's analysis of parallel loops rejects its tuples."""
    k = k0
    while k < k1:
        _tile32(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)
        k += 32


@kernel(vectorize=True)
def tiles16_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, k0, k1,
                   i):
    """As :func:`tiles32_of_row`, 16 columns at a time."""
    k = k0
    while k < k1:
        _tile16(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)
        k += 16


@kernel(vectorize=True)
def tiles8_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, k0, k1,
                  i):
    """As :func:`tiles32_of_row`, 8 columns at a time."""
    k = k0
    while k < k1:
        _tile8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out, i, k)
        k += 8


# One parallel kernel per tile width, each with the code of one width only: with the three
# widths in one function (a branch per row), LLVM's registers did not go round and the
# tiles of 8 ran 15-20 % slower (VGG-16 fc6, batch 8, one thread).

@kernel(parallel=True)
def grouped_matmat32(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, chunks,
                     out, k0, k1):
    """Columns ``k0..k1`` (a multiple of 32 apart) of ``out = W @ X``, row by row
    (:func:`tiles32_of_row`)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            tiles32_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out,
                           k0, k1, i)


@kernel(parallel=True)
def grouped_matmat16(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, chunks,
                     out, k0, k1):
    """Columns ``k0..k1`` (a multiple of 16 apart) of ``out = W @ X``
    (:func:`tiles16_of_row`)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            tiles16_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out,
                           k0, k1, i)


@kernel(parallel=True)
def grouped_matmat8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, chunks,
                    out, k0, k1):
    """Columns ``k0..k1`` (a multiple of 8 apart) of ``out = W @ X``
    (:func:`tiles8_of_row`)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            tiles8_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, Xf, sh, offset, out,
                          k0, k1, i)


grouped_matvec_serial = serial(grouped_matvec)
grouped_matmat_serial = serial(grouped_matmat)
#: The batch kernels by tile width, parallel and serial (:func:`._sums.tile_runs`).
GROUPED_TILES = {32: (grouped_matmat32, serial(grouped_matmat32)),
                 16: (grouped_matmat16, serial(grouped_matmat16)),
                 8: (grouped_matmat8, serial(grouped_matmat8))}
