"""What CER and CSER share: ``Ω``, the encoder's first passes, the invariants of
ranks and groups, ``to_dense`` and the ``ω_0`` term of the product (SPEC §2-3)."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .._codes import code_row_entries, code_values
from .._values import RowEntries, count_values, row_entries
from ..quantized import Quantized
from ._checks import (
    ascending_within,
    check_indices,
    check_no_repeated_columns,
    check_pointer,
    check_values,
    segment_ids,
)
from ._grouped_kernels import (
    GROUPED_TILES,
    grouped_matmat,
    grouped_matmat_serial,
    grouped_matvec,
    grouped_matvec_serial,
)
from ._sums import by_column_blocks, tile_runs, with_zero
from .base import ArraySpec, Format, Sizes

__all__ = ["GroupedFormat"]


class GroupedFormat(Format):
    """Base of the formats that group a row's columns by shared value (CER, CSER)."""

    @classmethod
    def _encode(cls, W: np.ndarray) -> GroupedFormat:
        values = count_values(W)
        entries = row_entries(W, values)
        return cls._emit(W.shape, W.dtype, values.omega, entries)

    @classmethod
    def _encode_codes(cls, q: Quantized) -> GroupedFormat:
        values = code_values(q)
        entries = code_row_entries(q, values)
        return cls._emit(q.shape, q.dtype, values.omega, entries)

    @classmethod
    @abstractmethod
    def _emit(cls, shape, dtype, omega: np.ndarray, entries: RowEntries) -> GroupedFormat:
        """Build the format from ``Ω`` and the rank-sorted entries of every row."""

    @abstractmethod
    def _group_ranks(self) -> np.ndarray:
        """The rank (index into ``omega``) of every group; pointers already valid."""

    # --- sizes -------------------------------------------------------------------------
    @property
    def K(self) -> int:
        """Number of distinct values, ``|Ω|``."""
        return int(self._arrays["omega"].size)

    @property
    def N(self) -> int:
        """Number of stored entries (different from ``ω_0``)."""
        return int(self._arrays["col_idx"].size)

    @property
    def G(self) -> int:
        """Number of groups."""
        return int(self._arrays["omega_ptr"].size) - 1

    # --- conversion back ---------------------------------------------------------------
    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        a = self._arrays
        omega = a["omega"]
        W = np.full(self.shape, omega[0] if omega.size else 0, self.dtype)
        sizes = np.diff(a["omega_ptr"])
        rows = np.repeat(segment_ids(a["row_ptr"]), sizes)
        W[rows, a["col_idx"]] = omega[np.repeat(self._group_ranks(), sizes)]
        return W

    # --- invariants --------------------------------------------------------------------
    def _check_arrays(self) -> None:
        m, n = self.shape
        a = self._arrays
        omega, col_idx, omega_ptr, row_ptr = a["omega"], a["col_idx"], a["omega_ptr"], a["row_ptr"]
        check_values("omega", omega, None, self.dtype)
        K = omega.size
        if (m * n == 0) != (K == 0):
            raise ValueError(
                f"omega must be empty exactly when the matrix is (K = {K}, shape {m}x{n})"
            )
        if np.unique(omega).size != K:
            raise ValueError("omega must hold distinct values")
        if omega_ptr.ndim != 1 or omega_ptr.size == 0:
            raise ValueError("omega_ptr must be 1-D with G + 1 >= 1 entries")
        check_pointer("omega_ptr", omega_ptr, omega_ptr.size, col_idx.size)
        check_pointer("row_ptr", row_ptr, m + 1, omega_ptr.size - 1)
        check_indices("col_idx", col_idx, col_idx.size, 0, n)
        self._check_groups()
        bad = ascending_within(col_idx, omega_ptr)
        if bad >= 0:
            raise ValueError(f"col_idx must be strictly ascending within a group (at {bad})")
        check_no_repeated_columns(col_idx, omega_ptr[row_ptr.astype(np.int64)], n)
        ranks = self._group_ranks()
        if ranks.size and (ranks.min() < 1 or ranks.max() >= K):
            raise ValueError(f"every group's rank must lie in [1, {K}), found {ranks.max()}")
        counts = np.bincount(np.repeat(ranks, np.diff(omega_ptr.astype(np.int64))), minlength=K)
        if K:
            counts[0] = m * n - col_idx.size
            if (counts < 1).any():
                k = int(np.argmax(counts < 1))
                raise ValueError(f"omega[{k}] = {omega[k]} occurs nowhere in the matrix")
        if (np.lexsort((omega, -counts)) != np.arange(K)).any():
            raise ValueError(
                "omega must be ordered by decreasing count, ties by ascending value "
                f"(counts {counts[:8].tolist()}...)"
            )

    @abstractmethod
    def _check_groups(self) -> None:
        """Format-specific rules on groups (pointers already valid)."""

    # --- products ----------------------------------------------------------------------
    def _row_work(self) -> np.ndarray:
        a = self._arrays
        row_ptr = a["row_ptr"]
        return a["omega_ptr"][row_ptr] + row_ptr + np.arange(row_ptr.size)

    def _omega_idx(self) -> np.ndarray | None:
        """Every group's rank, or ``None`` when a group's place in its row gives it (the
        kernels of :mod:`._grouped_kernels`)."""
        return None

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(x)
        parallel, chunks = self._plan(1)
        run = grouped_matvec if parallel else grouped_matvec_serial
        run(deltas, a["col_idx"], self._omega_idx(), a["omega_ptr"], a["row_ptr"], with_zero(x),
            offset[()], chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        deltas, offset = self._deltas_offset(X)
        parallel, chunks = self._plan(X.shape[1])
        run = grouped_matmat if parallel else grouped_matmat_serial
        arrays = (deltas, a["col_idx"], self._omega_idx(), a["omega_ptr"], a["row_ptr"])

        def blocked(Xf, sh, off, out, B8):
            for width, k0, k1 in tile_runs(B8):
                tiles = GROUPED_TILES[width][0 if parallel else 1]
                tiles(*arrays, Xf, sh, off, chunks, out, k0, k1)

        by_column_blocks(X, out, offset, blocked,
                         lambda X, off, out: run(*arrays, X, off, chunks, out))

    def _deltas_offset(self, x: np.ndarray):
        """``ω_k − ω_0`` in the result dtype, and ``ω_0 · Σ_j x_j`` (SPEC §3)."""
        omega = self._arrays["omega"]
        dtype = x.dtype
        deltas = (omega.astype(np.float64) - float(omega[0])).astype(dtype)
        if omega[0] == 0:
            offset = np.zeros(x.shape[1:], dtype)
        else:
            offset = (omega[0].astype(dtype) * x.sum(axis=0, dtype=dtype)).astype(dtype)
        return deltas, offset

    # --- accounting --------------------------------------------------------------------
    #: The Stats attribute that counts this format's groups.
    _stats_groups = ""

    def _sizes(self) -> Sizes:
        omega = self._arrays["omega"]
        return Sizes(self.shape, self.dtype, K=self.K, N=self.N, G=self.G,
                     omega0_nonzero=bool(omega.size and omega[0] != 0))

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        return Sizes(stats.shape, stats.dtype, K=stats.K, N=stats.N,
                     G=getattr(stats, cls._stats_groups),
                     omega0_nonzero=bool(stats.K and stats.omega[0] != 0))

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m, n = sizes.shape
        K, N, G = sizes.K, sizes.N, sizes.G
        specs = [
            ArraySpec("omega", K, "value"),
            ArraySpec("col_idx", N, "index", n - 1),
            ArraySpec("omega_idx", G, "index", K - 1),
            ArraySpec("omega_ptr", G + 1, "index", N),
            ArraySpec("row_ptr", m + 1, "index", G),
        ]
        return [s for s in specs if s.name in cls.array_names]

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        m, n = sizes.shape
        N, G = sizes.N, sizes.G
        nonzero_omega0 = sizes.omega0_nonzero
        adds = N + G + (n + m if nonzero_omega0 else 0)
        mults = G + (1 if nonzero_omega0 else 0)
        reads = {"omega": G, "col_idx": N, "omega_ptr": G + m, "row_ptr": m + 1}
        if "omega_idx" in cls.array_names:
            reads["omega_idx"] = G
        reads = {name: reads[name] for name in cls.array_names}
        return adds, mults, reads, N + (n if nonzero_omega0 else 0)
