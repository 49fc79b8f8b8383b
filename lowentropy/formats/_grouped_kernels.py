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
from ._sums import axpy8, gather_sum, gather_sum8, gather_sum16, gather_sum_rows

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


@kernel(vectorize=True)
def tiles_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, out, B8, i):
    """Row ``i`` of ``W @ X[:, :B8]`` (``B8`` a multiple of 8), 16 columns at a time and
    the last 8 alone: the row's groups are walked once per tile (their column indices
    stay in L1), each sum a pair of vectors. A function of its own, called by the
    parallel kernel: numba's analysis of parallel loops rejects its tuples."""
    B16 = B8 - B8 % 16
    g0 = row_ptr[i]
    for k in range(0, B16, 16):
        o = (offset[k], offset[k + 1], offset[k + 2], offset[k + 3], offset[k + 4],
             offset[k + 5], offset[k + 6], offset[k + 7])
        q = (offset[k + 8], offset[k + 9], offset[k + 10], offset[k + 11], offset[k + 12],
             offset[k + 13], offset[k + 14], offset[k + 15])
        for g in range(g0, row_ptr[i + 1]):
            if omega_ptr[g + 1] > omega_ptr[g]:
                s, t = gather_sum16(col_idx, X, k, omega_ptr[g], omega_ptr[g + 1])
                d = _delta(deltas, omega_idx, g, g0)
                o = axpy8(o, d, s)
                q = axpy8(q, d, t)
        _store8(out, i, k, o)
        _store8(out, i, k + 8, q)
    if B16 < B8:
        k = B16
        o = (offset[k], offset[k + 1], offset[k + 2], offset[k + 3], offset[k + 4],
             offset[k + 5], offset[k + 6], offset[k + 7])
        for g in range(g0, row_ptr[i + 1]):
            if omega_ptr[g + 1] > omega_ptr[g]:
                s = gather_sum8(col_idx, X, k, omega_ptr[g], omega_ptr[g + 1])
                o = axpy8(o, _delta(deltas, omega_idx, g, g0), s)
        _store8(out, i, k, o)


@kernel(parallel=True)
def grouped_matmat8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, chunks, out,
                    B8):
    """Columns ``0..B8`` (a multiple of 8) of ``out = W @ X``, row by row
    (:func:`tiles_of_row`)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            tiles_of_row(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, out, B8, i)


grouped_matvec_serial = serial(grouped_matvec)
grouped_matmat_serial = serial(grouped_matmat)
grouped_matmat8_serial = serial(grouped_matmat8)
