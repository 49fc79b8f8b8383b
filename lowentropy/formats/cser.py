"""CSER, Compressed Shared Elements Row (SPEC §2)."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from .._validate import omega_idx_dtype
from .._values import RowEntries
from ..memory import check_memory
from ._checks import ascending_within
from ._grouped import GroupedFormat

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

    def _omega_idx(self) -> np.ndarray:
        return self._arrays["omega_idx"]

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
