"""CSER, Compressed Shared Elements Row (SPEC §2)."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange, serial
from .._validate import omega_idx_dtype
from .._values import RowEntries
from ..memory import check_memory
from ._checks import ascending_within
from ._grouped import GroupedFormat
from ._sums import by_column_blocks, gather_sum, gather_sum8, gather_sum_rows

__all__ = ["CSER"]


@kernel(parallel=True)
def _cser_encode(entry_start, rank, row_ptr, omega_idx, omega_ptr):
    """One group per distinct rank of a row, in rank order."""
    m = entry_start.shape[0] - 1
    for i in prange(m):
        p = entry_start[i]
        end = entry_start[i + 1]
        g = row_ptr[i]
        while p < end:
            k = rank[p]
            omega_idx[g] = k
            omega_ptr[g] = p
            while p < end and rank[p] == k:
                p += 1
            g += 1


@kernel(parallel=True)
def _cser_matvec(deltas, col_idx, omega_idx, omega_ptr, row_ptr, x, offset, chunks, out):
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            acc = offset
            for g in range(row_ptr[i], row_ptr[i + 1]):
                acc += deltas[omega_idx[g]] * gather_sum(col_idx, x, omega_ptr[g],
                                                         omega_ptr[g + 1])
            out[i] = acc


@kernel(parallel=True)
def _cser_matmat(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, chunks, out):
    B = X.shape[1]
    for c in prange(chunks.shape[0] - 1):
        s = np.empty(B, X.dtype)
        for i in range(chunks[c], chunks[c + 1]):
            o = out[i]
            for b in range(B):
                o[b] = offset[b]
            for g in range(row_ptr[i], row_ptr[i + 1]):
                gather_sum_rows(col_idx, X, omega_ptr[g], omega_ptr[g + 1], s)
                d = deltas[omega_idx[g]]
                for b in range(B):
                    o[b] += d * s[b]

@kernel(parallel=True, vectorize=True)
def _cser_matmat8(deltas, col_idx, omega_idx, omega_ptr, row_ptr, X, offset, chunks, out,
                  B8):
    """Columns ``0..B8`` (a multiple of 8), 8 at a time: a row's groups are walked once
    per block of 8 columns (their column indices stay in L1), each sum a vector."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            for k in range(0, B8, 8):
                o0 = offset[k]
                o1 = offset[k + 1]
                o2 = offset[k + 2]
                o3 = offset[k + 3]
                o4 = offset[k + 4]
                o5 = offset[k + 5]
                o6 = offset[k + 6]
                o7 = offset[k + 7]
                for g in range(row_ptr[i], row_ptr[i + 1]):
                    s = gather_sum8(col_idx, X, k, omega_ptr[g], omega_ptr[g + 1])
                    d = deltas[omega_idx[g]]
                    o0 += d * s[0]
                    o1 += d * s[1]
                    o2 += d * s[2]
                    o3 += d * s[3]
                    o4 += d * s[4]
                    o5 += d * s[5]
                    o6 += d * s[6]
                    o7 += d * s[7]
                out[i, k] = o0
                out[i, k + 1] = o1
                out[i, k + 2] = o2
                out[i, k + 3] = o3
                out[i, k + 4] = o4
                out[i, k + 5] = o5
                out[i, k + 6] = o6
                out[i, k + 7] = o7


_cser_matvec_serial = serial(_cser_matvec)
_cser_matmat_serial = serial(_cser_matmat)
_cser_matmat8_serial = serial(_cser_matmat8)


class CSER(GroupedFormat):
    """Compressed Shared Elements Row storage (Wiedemann et al., SPEC §2).

    Like :class:`CER`, but a row owns one group per distinct value other than ``ω_0``
    that it holds (no empty groups), in ascending rank order, and every group names its
    value explicitly. ``G_CSER <= G_CER`` and ``G_CSER <= N``.

    Arrays
    ------
    omega : (K,) float32 or float64
        ``Ω``, distinct values by decreasing count, ties by ascending value.
    col_idx : (N,) uint16 or uint32
        Columns of the entries different from ``ω_0``, group by group, ascending within
        a group.
    omega_idx : (G,) uint8, uint16 or uint32
        Group ``g`` holds the value ``omega[omega_idx[g]]``; ``omega_idx >= 1``, strictly
        ascending within a row.
    omega_ptr : (G+1,) int64
        Group ``g`` is ``col_idx[omega_ptr[g]:omega_ptr[g+1]]`` (never empty);
        ``omega_ptr[G] = N``.
    row_ptr : (m+1,) int64
        Row ``i`` owns groups ``row_ptr[i]:row_ptr[i+1]``.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.CSER.from_dense(np.array([[2., 3., 2., 3.], [2., 0., 2., 2.]]))
    >>> for name, array in f.arrays().items():  # omega_0 = 2 is implicit
    ...     print(name, array.tolist())
    omega [2.0, 3.0, 0.0]
    col_idx [1, 3, 1]
    omega_idx [1, 2]
    omega_ptr [0, 2, 3]
    row_ptr [0, 1, 2]
    >>> f @ np.ones(4)
    array([10.,  6.])
    """

    name = "cser"
    _stats_groups = "G_cser"
    array_names = ("omega", "col_idx", "omega_idx", "omega_ptr", "row_ptr")

    @classmethod
    def _emit(cls, shape, dtype, omega: np.ndarray, entries: RowEntries) -> CSER:
        m = shape[0]
        row_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(entries.distinct, out=row_ptr[1:])
        G = int(row_ptr[-1])
        idx_dtype = np.dtype(omega_idx_dtype(omega.size))
        check_memory((G + 1) * (8 + idx_dtype.itemsize),
                     f"CSER of a {shape[0]}×{shape[1]} matrix with {G:,} groups")
        omega_idx = np.empty(G, idx_dtype)
        omega_ptr = np.empty(G + 1, np.int64)
        omega_ptr[-1] = entries.N
        _cser_encode(entries.start, entries.rank, row_ptr, omega_idx, omega_ptr)
        return cls._trusted(shape, dtype, omega=omega, col_idx=entries.col,
                            omega_idx=omega_idx, omega_ptr=omega_ptr, row_ptr=row_ptr)

    def _group_ranks(self) -> np.ndarray:
        return self._arrays["omega_idx"].astype(np.int64)

    def _check_groups(self) -> None:
        a = self._arrays
        omega_idx, omega_ptr = a["omega_idx"], a["omega_ptr"]
        G = omega_ptr.size - 1
        if omega_idx.ndim != 1 or omega_idx.dtype.kind not in "iu" or omega_idx.size != G:
            raise ValueError(
                f"omega_idx must be a 1-D integer array of length G = {G}, got "
                f"{omega_idx.dtype} of shape {omega_idx.shape}"
            )
        if (np.diff(omega_ptr.astype(np.int64)) <= 0).any():
            raise ValueError("CSER groups must not be empty (omega_ptr strictly increasing)")
        bad = ascending_within(omega_idx, a["row_ptr"])
        if bad >= 0:
            raise ValueError(f"omega_idx must be strictly ascending within a row (at {bad})")

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(x)
        parallel, chunks = self._plan(1)
        run = _cser_matvec if parallel else _cser_matvec_serial
        run(deltas, a["col_idx"], a["omega_idx"], a["omega_ptr"], a["row_ptr"], x,
            offset[()], chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(X)
        parallel, chunks = self._plan(X.shape[1])
        run = _cser_matmat if parallel else _cser_matmat_serial
        run8 = _cser_matmat8 if parallel else _cser_matmat8_serial
        arrays = (deltas, a["col_idx"], a["omega_idx"], a["omega_ptr"], a["row_ptr"])
        by_column_blocks(X, out, offset,
                         lambda X, off, out, B8: run8(*arrays, X, off, chunks, out, B8),
                         lambda X, off, out: run(*arrays, X, off, chunks, out))
