"""CER, Compressed Entropy Row (SPEC §2)."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from .._values import RowEntries
from ..memory import check_memory
from ._grouped import GroupedFormat

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


