"""CER, Compressed Entropy Row (SPEC §2)."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange, serial
from .._values import RowEntries
from ..memory import check_memory
from ._grouped import GroupedFormat
from ._sums import by_column_blocks, gather_sum, gather_sum8, gather_sum_rows

__all__ = ["CER"]


@kernel(parallel=True)
def _cer_encode(entry_start, rank, row_ptr, omega_ptr):
    """Group pointers of every row: one group per rank 1..r_i, empty ones included."""
    m = entry_start.shape[0] - 1
    for i in prange(m):
        p = entry_start[i]
        end = entry_start[i + 1]
        g = row_ptr[i]
        for k in range(1, row_ptr[i + 1] - row_ptr[i] + 1):
            omega_ptr[g] = p
            while p < end and rank[p] == k:
                p += 1
            g += 1


@kernel(parallel=True)
def _cer_matvec(deltas, col_idx, omega_ptr, row_ptr, x, offset, chunks, out):
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            acc = offset
            g0 = row_ptr[i]
            for g in range(g0, row_ptr[i + 1]):  # empty groups add 0
                acc += deltas[g - g0 + 1] * gather_sum(col_idx, x, omega_ptr[g], omega_ptr[g + 1])
            out[i] = acc


@kernel(parallel=True)
def _cer_matmat(deltas, col_idx, omega_ptr, row_ptr, X, offset, chunks, out):
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
                    d = deltas[g - g0 + 1]
                    for b in range(B):
                        o[b] += d * s[b]

@kernel(parallel=True, vectorize=True)
def _cer_matmat8(deltas, col_idx, omega_ptr, row_ptr, X, offset, chunks, out, B8):
    """Columns ``0..B8`` (a multiple of 8), 8 at a time (as CSER's)."""
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            g0 = row_ptr[i]
            for k in range(0, B8, 8):
                o0 = offset[k]
                o1 = offset[k + 1]
                o2 = offset[k + 2]
                o3 = offset[k + 3]
                o4 = offset[k + 4]
                o5 = offset[k + 5]
                o6 = offset[k + 6]
                o7 = offset[k + 7]
                for g in range(g0, row_ptr[i + 1]):
                    if omega_ptr[g + 1] > omega_ptr[g]:
                        s = gather_sum8(col_idx, X, k, omega_ptr[g], omega_ptr[g + 1])
                        d = deltas[g - g0 + 1]
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


_cer_matvec_serial = serial(_cer_matvec)
_cer_matmat_serial = serial(_cer_matmat)
_cer_matmat8_serial = serial(_cer_matmat8)


class CER(GroupedFormat):
    """Compressed Entropy Row storage (Wiedemann et al., SPEC §2).

    Values are ranked by decreasing count: ``Ω = (ω_0, ω_1, …)``. Row ``i`` owns one
    group for every rank ``1..r_i`` (``r_i`` the largest rank in the row), empty groups
    included: this padding is what makes CER's size and cost follow the entropy, since
    rare values have high ranks. Each group lists the columns holding its value.

    Arrays
    ------
    omega : (K,) float32 or float64
        ``Ω``, distinct values by decreasing count, ties by ascending value.
    col_idx : (N,) uint16 or uint32
        Columns of the entries different from ``ω_0``, group by group, ascending within
        a group.
    omega_ptr : (G+1,) int64
        Group ``g`` is ``col_idx[omega_ptr[g]:omega_ptr[g+1]]``; ``omega_ptr[G] = N``.
    row_ptr : (m+1,) int64
        Row ``i`` owns groups ``row_ptr[i]:row_ptr[i+1]``, that is ``r_i`` of them; group
        ``g`` of row ``i`` has the value ``omega[g - row_ptr[i] + 1]``. The last group of a
        row is never empty.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.CER.from_dense(np.array([[0., 2., 0., 3.], [2., 0., 2., 0.]]))
    >>> for name, array in f.arrays().items():
    ...     print(name, array.tolist())
    omega [0.0, 2.0, 3.0]
    col_idx [1, 3, 0, 2]
    omega_ptr [0, 1, 2, 4]
    row_ptr [0, 2, 3]
    >>> f @ np.ones(4)
    array([5., 4.])
    """

    name = "cer"
    _stats_groups = "G_cer"
    array_names = ("omega", "col_idx", "omega_ptr", "row_ptr")

    @classmethod
    def _emit(cls, shape, dtype, omega: np.ndarray, entries: RowEntries) -> CER:
        m = shape[0]
        row_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(entries.max_rank, out=row_ptr[1:])
        G = int(row_ptr[-1])
        check_memory(8 * (G + 1),
                     f"CER of a {shape[0]}×{shape[1]} matrix with {omega.size:,} distinct values "
                     f"pads every row up to the rank of its rarest value ({G:,} groups)",
                     "Quantize the weights to few values first")
        omega_ptr = np.empty(G + 1, np.int64)
        omega_ptr[-1] = entries.N
        _cer_encode(entries.start, entries.rank, row_ptr, omega_ptr)
        return cls._trusted(shape, dtype, omega=omega, col_idx=entries.col,
                            omega_ptr=omega_ptr, row_ptr=row_ptr)

    def _group_ranks(self) -> np.ndarray:
        row_ptr = self._arrays["row_ptr"].astype(np.int64)
        return np.arange(row_ptr[-1]) - np.repeat(row_ptr[:-1], np.diff(row_ptr)) + 1

    def _check_groups(self) -> None:
        a = self._arrays
        row_ptr = a["row_ptr"].astype(np.int64)
        omega_ptr = a["omega_ptr"].astype(np.int64)
        rows = np.flatnonzero(np.diff(row_ptr) > 0)
        last = row_ptr[rows + 1] - 1
        empty_last = omega_ptr[last + 1] == omega_ptr[last]
        if empty_last.any():
            raise ValueError(
                f"row {rows[np.argmax(empty_last)]} ends with an empty group (CER pads only "
                "below the row's largest rank)"
            )

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(x)
        parallel, chunks = self._plan(1)
        run = _cer_matvec if parallel else _cer_matvec_serial
        run(deltas, a["col_idx"], a["omega_ptr"], a["row_ptr"], x, offset[()],
            chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(X)
        parallel, chunks = self._plan(X.shape[1])
        run = _cer_matmat if parallel else _cer_matmat_serial
        run8 = _cer_matmat8 if parallel else _cer_matmat8_serial
        arrays = (deltas, a["col_idx"], a["omega_ptr"], a["row_ptr"])
        by_column_blocks(X, out, offset,
                         lambda X, off, out, B8: run8(*arrays, X, off, chunks, out, B8),
                         lambda X, off, out: run(*arrays, X, off, chunks, out))


