"""Values, counts and ranks of a quantized matrix from its codes (SPEC §1), without
hashing floats: what :mod:`._values` does for a float matrix, for a :class:`Quantized`.

One pass over the codes fills a table of counts per (row, code) (``m × K`` integers,
small when ``K`` is); everything else comes from that table: the count of every code, of
every value (codes whose values collide are merged, codes that never occur dropped), ``Ω``
and the rank of every code, and per row the entries other than ``ω_0``, the largest rank
(CER's ``r_i``) and the number of distinct ranks (CSER's groups). When the table would be
large (many rows and many codes) a first pass counts the codes and a second one walks the
rows with the ranks.

:func:`code_row_entries` lists the entries different from ``ω_0`` row by row, sorted by
(rank, column), like :func:`._values.row_entries`: the encoders' input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._jit import kernel, prange, serial, use_threads
from ._validate import index_dtype
from ._values import RowEntries, _sort_rows, _sort_rows_serial
from .memory import check_memory
from .quantized import Quantized

__all__ = ["CodeValues", "code_values", "code_row_entries", "TABLE_LIMIT"]

#: The per-(row, code) table is used up to this many entries (8 bytes each).
TABLE_LIMIT = 1 << 22


@dataclass(frozen=True)
class CodeValues:
    """``Ω`` of a quantized matrix, counts, the rank of every code (``-1``: the code never
    occurs) and, per row, entries other than ``ω_0``, largest rank, distinct ranks."""

    omega: np.ndarray
    counts: np.ndarray
    rank_of_code: np.ndarray
    per_row: np.ndarray
    max_rank: np.ndarray
    distinct: np.ndarray
    rank_hist: np.ndarray | None = None  #: counts per (row, rank), when the table was used

    @property
    def N(self) -> int:
        return int(self.per_row.sum())


# --- kernels --------------------------------------------------------------------------------

@kernel(parallel=True)
def _code_table(codes, chunks, table):  # pragma: no cover - compiled
    """``table[i, k]`` = occurrences of code ``k`` in row ``i``.

    Eight partial histograms (column ``j`` counts into histogram ``j % 8``), added at the
    end of the row: consecutive equal codes then do not wait for each other's increment
    (with most codes equal, as in a pruned layer, four partial histograms took 14 ms on
    AlexNet fc6 and eight take 9 ms).
    """
    K = table.shape[1]
    for c in prange(chunks.shape[0] - 1):
        part = np.zeros(8 * K, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            row = codes[i]
            n8 = row.shape[0] - row.shape[0] % 8
            for j in range(0, n8, 8):
                for h in range(8):  # unrolled by the compiler
                    part[h * K + row[j + h]] += 1
            for j in range(n8, row.shape[0]):
                part[row[j]] += 1
            t = table[i]
            for k in range(K):
                total = 0
                for h in range(8):
                    total += part[h * K + k]
                    part[h * K + k] = 0
                t[k] = total


@kernel(parallel=True)
def _code_counts(codes, nch, counts):  # pragma: no cover - compiled
    """Per chunk of the flat codes, occurrences of every code."""
    n = codes.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = codes[start:min(n, start + chunk)]
        h = counts[c]
        for i in range(seg.size):
            h[seg[i]] += 1


@kernel(parallel=True)
def _table_groups(table, rank_of_code, n_ranks, chunks, per_row, max_rank,
                  distinct):  # pragma: no cover - compiled
    """Per row, from the table: entries other than ``ω_0``, largest rank, distinct ranks."""
    K = table.shape[1]
    for c in prange(chunks.shape[0] - 1):
        seen = np.zeros(n_ranks, np.int64)  # row + 1 of the last row that held each rank
        for i in range(chunks[c], chunks[c + 1]):
            cnt = 0
            top = 0
            d = 0
            for k in range(K):
                if table[i, k] > 0:
                    r = rank_of_code[k]
                    if r != 0:
                        cnt += table[i, k]
                        top = max(top, r)
                        if seen[r] != i + 1:
                            seen[r] = i + 1
                            d += 1
            per_row[i] = cnt
            max_rank[i] = top
            distinct[i] = d


@kernel(parallel=True)
def _code_groups(codes, rank_of_code, n_ranks, chunks, per_row, max_rank,
                 distinct):  # pragma: no cover - compiled
    """Per row, from the codes: entries other than ``ω_0``, largest rank, distinct ranks."""
    for c in prange(chunks.shape[0] - 1):
        seen = np.zeros(n_ranks, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            row = codes[i]
            cnt = 0
            top = 0
            d = 0
            for j in range(row.shape[0]):
                r = rank_of_code[row[j]]
                if r != 0:
                    cnt += 1
                    top = max(top, r)
                    if seen[r] != i + 1:
                        seen[r] = i + 1
                        d += 1
            per_row[i] = cnt
            max_rank[i] = top
            distinct[i] = d


@kernel(parallel=True)
def _code_fill(codes, rank_of_code, start, col, rank):  # pragma: no cover - compiled
    """Columns and ranks of the entries other than ``ω_0``, row by row, columns ascending."""
    for i in prange(codes.shape[0]):
        row = codes[i]
        p = start[i]
        for j in range(row.shape[0]):
            r = rank_of_code[row[j]]
            if r != 0:
                col[p] = j
                rank[p] = r
                p += 1


_code_table_serial = serial(_code_table)
_code_counts_serial = serial(_code_counts)
_table_groups_serial = serial(_table_groups)
_code_groups_serial = serial(_code_groups)
_code_fill_serial = serial(_code_fill)


# --- drivers --------------------------------------------------------------------------------

def _row_chunks(m: int, parallel: bool) -> np.ndarray:
    import numba

    parts = numba.get_num_threads() if parallel else 1
    return np.linspace(0, m, parts + 1).astype(np.int64)


def _ranks(codebook: np.ndarray, code_counts: np.ndarray):
    """``Ω``, its counts and the rank of every code (``-1`` for codes that never occur);
    codes with equal values share their value's rank."""
    values, value_of_code = np.unique(codebook, return_inverse=True)
    counts = np.zeros(values.size, np.int64)
    np.add.at(counts, value_of_code, code_counts)
    present = np.flatnonzero(counts)
    order = present[np.lexsort((values[present], -counts[present]))]
    rank_of_value = np.full(values.size, -1, np.int64)
    rank_of_value[order] = np.arange(order.size)
    return values[order], counts[order], rank_of_value[value_of_code]


def code_values(q: Quantized) -> CodeValues:
    """Counts, ``Ω``, ranks and row groups of a 2-D quantized matrix (see the module)."""
    codes = q.codes
    m, n = codes.shape
    K = q.K
    per_row = np.zeros(m, np.int64)
    max_rank = np.zeros(m, np.int64)
    distinct = np.zeros(m, np.int64)
    if codes.size == 0:
        empty = np.zeros(0, np.int64)
        return CodeValues(q.codebook[:0].copy(), empty, np.full(K, -1, np.int64), per_row,
                          max_rank, distinct)
    par = use_threads(codes.size)
    chunks = _row_chunks(m, par)
    if m * K <= TABLE_LIMIT:
        table = np.zeros((m, K), np.int64)
        (_code_table if par else _code_table_serial)(codes, chunks, table)
        omega, counts, rank_of_code = _ranks(q.codebook, table.sum(axis=0))
        groups = _table_groups if par else _table_groups_serial
        groups(table, rank_of_code, omega.size, chunks, per_row, max_rank, distinct)
        rank_hist = _rank_table(table, rank_of_code, omega.size)
    else:
        flat = codes.reshape(-1)
        nch = int(min(16, max(1, flat.size >> 17))) if par else 1
        check_memory(8 * nch * K, f"counting {K:,} codes")
        parts = np.zeros((nch, K), np.int64)
        (_code_counts if par else _code_counts_serial)(flat, nch, parts)
        omega, counts, rank_of_code = _ranks(q.codebook, parts.sum(axis=0))
        groups = _code_groups if par else _code_groups_serial
        groups(codes, rank_of_code, omega.size, chunks, per_row, max_rank, distinct)
        rank_hist = None
    return CodeValues(omega, counts, rank_of_code, per_row, max_rank, distinct, rank_hist)


def _rank_table(table: np.ndarray, rank_of_code: np.ndarray, n_ranks: int) -> np.ndarray:
    """Counts per (row, rank) from counts per (row, code): codes of one value added up."""
    used = np.flatnonzero(rank_of_code >= 0)
    ranks = rank_of_code[used]
    if np.unique(ranks).size == ranks.size:  # no two codes share a value: a permutation
        out = np.zeros((table.shape[0], n_ranks), np.int64)
        out[:, ranks] = table[:, used]
        return out
    out = np.zeros((n_ranks, table.shape[0]), np.int64)
    np.add.at(out, ranks, table[:, used].T)
    return np.ascontiguousarray(out.T)


def code_row_entries(q: Quantized, values: CodeValues) -> RowEntries:
    """The entries of a 2-D quantized matrix different from ``ω_0``, row by row, sorted by
    (rank, column): what :func:`._values.row_entries` gives for the dense matrix."""
    codes = q.codes
    m, n = codes.shape
    start = np.zeros(m + 1, np.int64)
    np.cumsum(values.per_row, out=start[1:])
    N = int(start[-1])
    col_dtype = index_dtype(max(n - 1, 0))
    check_memory(N * (col_dtype.itemsize + 8),
                 f"listing the {N:,} entries of a {m}×{n} matrix that differ from its most "
                 "frequent value")
    col = np.empty(N, col_dtype)
    rank = np.empty(N, np.int64)
    max_rank = np.zeros(m, np.int64)
    distinct = np.zeros(m, np.int64)
    if N:
        par = use_threads(codes.size)
        (_code_fill if par else _code_fill_serial)(codes, values.rank_of_code, start, col, rank)
        (_sort_rows if par else _sort_rows_serial)(start, col, rank, max_rank, distinct)
    return RowEntries(start, col, rank, max_rank, distinct)
