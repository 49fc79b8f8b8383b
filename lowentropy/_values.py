"""Distinct values of a matrix, their counts and their ranks (SPEC §1).

The rank of a value is its index in ``Ω``: values ordered by decreasing count, ties by
ascending value. Counting uses an open-addressing hash table over the values' bit
patterns (one pass, no sort of the matrix); matrices with very many distinct values
(unquantized weights) fall back to a sort. ``-0.0`` is counted as ``+0.0``.

Then :func:`row_entries` lists, row by row, the column and rank of every entry that is
not ``ω_0``, each row sorted by (rank, column): exactly the ``col_idx`` of CER and CSER.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from ._jit import kernel, prange, serial, use_threads
from ._validate import index_dtype
from .memory import check_memory

__all__ = ["ValueCounts", "count_values", "RowEntries", "row_entries"]

# Above this many distinct values the hash table is abandoned for a sort.
MAX_HASHED = 1 << 18


@dataclass(frozen=True)
class ValueCounts:
    """``Ω`` of a matrix with counts, and a lookup from bit pattern to rank."""

    omega: np.ndarray
    counts: np.ndarray
    # hash table: keys (bit patterns), rank per slot (-1 = empty), shift of the hash
    keys: np.ndarray | None
    slot_rank: np.ndarray | None
    shift: int
    # fallback for many distinct values: the rank of every element (flat, C order)
    element_rank: np.ndarray | None = None

    @property
    def K(self) -> int:
        return int(self.omega.size)

    @property
    def size(self) -> int:
        return int(self.counts.sum())


def _bits(W: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """The matrix as unsigned integers of its width, and the bit pattern of -0.0."""
    if W.dtype == np.float32:
        return W.reshape(-1).view(np.uint32), np.uint64(1 << 31)
    return W.reshape(-1).view(np.uint64), np.uint64(1 << 63)


@kernel()
def _slot(key, shift):
    """Fibonacci hash of a 64-bit pattern: its top ``64 - shift`` bits. The product
    wraps modulo 2**64 by design (numpy warns of it when the kernels run as plain Python
    under ``NUMBA_DISABLE_JIT=1``; the result is the same)."""
    return np.intp((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift))


@kernel()
def _hash_counts(bits, negzero, max_distinct):
    """Count the bit patterns of ``bits`` (``-0.0`` as ``+0.0``).

    Returns the distinct patterns, their counts and False when there are more than
    ``max_distinct`` of them (the counts are then incomplete).
    """
    log_cap = 10
    cap = 1 << log_cap
    keys = np.zeros(cap, np.uint64)
    counts = np.zeros(cap, np.int64)
    used = np.zeros(cap, np.bool_)
    n_distinct = 0
    zeros = 0
    for e in range(bits.shape[0]):
        key = np.uint64(bits[e])
        if key == 0 or key == negzero:
            zeros += 1
            continue
        s = _slot(key, 64 - log_cap)
        while used[s] and keys[s] != key:
            s = (s + 1) & (cap - 1)
        if not used[s]:
            if n_distinct >= max_distinct:
                return keys[:0], counts[:0], False
            used[s] = True
            keys[s] = key
            n_distinct += 1
            if 2 * n_distinct > cap:  # grow to keep the load factor under 1/2
                log_cap += 1
                cap = 1 << log_cap
                keys, counts, used = _rehash(keys, counts, used, log_cap)
                s = _slot(key, 64 - log_cap)
                while keys[s] != key or not used[s]:
                    s = (s + 1) & (cap - 1)
        counts[s] += 1
    slots = np.flatnonzero(used)
    out_keys = np.empty(slots.size + 1, np.uint64)
    out_counts = np.empty(slots.size + 1, np.int64)
    out_keys[0] = 0
    out_counts[0] = zeros
    out_keys[1:] = keys[slots]
    out_counts[1:] = counts[slots]
    return out_keys, out_counts, True


@kernel()
def _rehash(keys, counts, used, log_cap):
    cap = 1 << log_cap
    new_keys = np.zeros(cap, np.uint64)
    new_counts = np.zeros(cap, np.int64)
    new_used = np.zeros(cap, np.bool_)
    for t in range(keys.shape[0]):
        if used[t]:
            r = _slot(keys[t], 64 - log_cap)
            while new_used[r]:
                r = (r + 1) & (cap - 1)
            new_used[r] = True
            new_keys[r] = keys[t]
            new_counts[r] = counts[t]
    return new_keys, new_counts, new_used


@kernel()
def _build_table(keys):
    """A hash table (keys, rank per slot, shift) mapping ``keys[r]`` to ``r``."""
    log_cap = 4
    while (1 << log_cap) < 2 * keys.shape[0]:
        log_cap += 1
    cap = 1 << log_cap
    table = np.zeros(cap, np.uint64)
    slot_rank = np.full(cap, -1, np.int64)
    for r in range(keys.shape[0]):
        s = _slot(keys[r], 64 - log_cap)
        while slot_rank[s] >= 0:
            s = (s + 1) & (cap - 1)
        table[s] = keys[r]
        slot_rank[s] = r
    return table, slot_rank, 64 - log_cap


@kernel()
def _lookup(keys, slot_rank, shift, key):
    s = _slot(key, shift)
    while keys[s] != key:
        s = (s + 1) & (keys.shape[0] - 1)
    return slot_rank[s]


def _rank_order(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Permutation sorting distinct values by decreasing count, ties by ascending value."""
    return np.lexsort((values, -counts))


def count_values(W: np.ndarray, threads: int | None = None) -> ValueCounts:
    """Count the distinct values of a validated float32/float64 matrix ``W``.

    The count runs in ``threads`` chunks in parallel (the kernels release the GIL; by
    default as many as numba's threads in the calling thread) and the chunk tables are
    merged.
    """
    if threads is None:
        threads = numba.get_num_threads()
    bits, negzero = _bits(W)
    float_dtype = W.dtype
    uint_dtype = bits.dtype
    chunks = np.array_split(bits, max(1, min(threads, bits.size // (1 << 20))))
    if len(chunks) == 1:
        parts = [_hash_counts(chunks[0], negzero, MAX_HASHED)]
    else:
        with ThreadPoolExecutor(len(chunks)) as pool:
            parts = list(pool.map(lambda c: _hash_counts(c, negzero, MAX_HASHED), chunks))
    if all(ok for _, _, ok in parts):
        keys, where = np.unique(np.concatenate([k for k, _, _ in parts]), return_inverse=True)
        counts = np.bincount(where, weights=np.concatenate([c for _, c, _ in parts]),
                             minlength=keys.size).astype(np.int64)
        present = counts > 0  # the zero slot of each chunk is there even with no zeros
        keys, counts = keys[present], counts[present]
        values = keys.astype(uint_dtype).view(float_dtype)
        order = _rank_order(values, counts)
        table, slot_rank, shift = _build_table(keys[order])
        return ValueCounts(values[order], counts[order], table, slot_rank, int(shift))
    # Many distinct values: sort once, rank every element.
    m, n = W.shape
    check_memory((2 * bits.itemsize + 33) * bits.size,
                 f"ranking the values of a {m}×{n} matrix with more than {MAX_HASHED:,} "
                 "distinct values (a sort of all its weights)",
                 "Quantize the weights first")
    normalized = np.where(bits == negzero, uint_dtype.type(0), bits)
    uniq, inverse, uniq_counts = np.unique(normalized, return_inverse=True, return_counts=True)
    values = uniq.view(float_dtype)
    order = _rank_order(values, uniq_counts)
    rank_of_unique = np.empty(order.size, np.int64)
    rank_of_unique[order] = np.arange(order.size)
    return ValueCounts(
        values[order], uniq_counts[order], None, None, 0,
        element_rank=rank_of_unique[inverse.reshape(-1)],
    )


@dataclass(frozen=True)
class RowEntries:
    """The entries different from ``ω_0``, row by row, each row sorted by (rank, column).

    ``start[i]:start[i+1]`` indexes row ``i`` in ``col`` and ``rank``; ``max_rank[i]`` is
    ``r_i`` (CER's group count of the row) and ``distinct[i]`` the number of distinct
    ranks in it (CSER's group count).
    """

    start: np.ndarray
    col: np.ndarray
    rank: np.ndarray
    max_rank: np.ndarray
    distinct: np.ndarray

    @property
    def N(self) -> int:
        return int(self.start[-1])


@kernel(parallel=True)
def _count_other(bits, omega0, negzero, m, n, out):
    for i in prange(m):
        c = 0
        for j in range(n):
            key = np.uint64(bits[i * n + j])
            if key == negzero:
                key = np.uint64(0)
            if key != omega0:
                c += 1
        out[i] = c


@kernel(parallel=True)
def _fill_hashed(bits, omega0, negzero, m, n, keys, slot_rank, shift, start, col, rank):
    for i in prange(m):
        p = start[i]
        for j in range(n):
            key = np.uint64(bits[i * n + j])
            if key == negzero:
                key = np.uint64(0)
            if key != omega0:
                col[p] = j
                rank[p] = _lookup(keys, slot_rank, shift, key)
                p += 1


@kernel(parallel=True)
def _fill_ranked(element_rank, m, n, start, col, rank):
    for i in prange(m):
        p = start[i]
        for j in range(n):
            r = element_rank[i * n + j]
            if r != 0:
                col[p] = j
                rank[p] = r
                p += 1


@kernel(parallel=True)
def _sort_rows(start, col, rank, max_rank, distinct):
    """Sort every row segment by rank (stable, so columns stay ascending)."""
    m = start.shape[0] - 1
    for i in prange(m):
        a = start[i]
        b = start[i + 1]
        length = b - a
        if length == 0:
            continue
        top = 0
        for p in range(a, b):
            if rank[p] > top:
                top = rank[p]
        max_rank[i] = top
        if top <= 4 * length + 64:  # counting sort
            hist = np.zeros(top + 2, np.int64)
            for p in range(a, b):
                hist[rank[p] + 1] += 1
            d = 0
            for k in range(1, top + 2):
                if hist[k] > 0:
                    d += 1
                hist[k] += hist[k - 1]
            distinct[i] = d
            seg_col = col[a:b].copy()
            seg_rank = rank[a:b].copy()
            for q in range(length):
                k = seg_rank[q]
                dest = a + hist[k]
                hist[k] += 1
                col[dest] = seg_col[q]
                rank[dest] = k
        else:
            order = np.argsort(rank[a:b], kind="mergesort")
            seg_col = col[a:b].copy()
            seg_rank = rank[a:b].copy()
            d = 0
            for q in range(length):
                k = seg_rank[order[q]]
                col[a + q] = seg_col[order[q]]
                rank[a + q] = k
                if q == 0 or k != rank[a + q - 1]:
                    d += 1
            distinct[i] = d


@kernel(parallel=True)
def _row_groups(bits, omega0, negzero, m, n, keys, slot_rank, shift, K, chunks, count,
                max_rank, distinct):
    """Per row: entries other than ``ω_0``, largest rank, distinct ranks (no sorting)."""
    for c in prange(chunks.shape[0] - 1):
        seen = np.zeros(K, np.int64)  # row stamp + 1 of the last row that held each rank
        for i in range(chunks[c], chunks[c + 1]):
            cnt = 0
            top = 0
            d = 0
            for j in range(n):
                key = np.uint64(bits[i * n + j])
                if key == negzero:
                    key = np.uint64(0)
                if key != omega0:
                    cnt += 1
                    r = _lookup(keys, slot_rank, shift, key)
                    if r > top:
                        top = r
                    if seen[r] != i + 1:
                        seen[r] = i + 1
                        d += 1
            count[i] = cnt
            max_rank[i] = top
            distinct[i] = d


_row_groups_serial = serial(_row_groups)


def row_groups(W: np.ndarray, values: ValueCounts) -> tuple[int, np.ndarray, np.ndarray]:
    """``(N, max_rank, distinct)`` per row without listing the entries (what the statistics
    need); falls back to :func:`row_entries` for matrices with very many distinct values."""
    m, n = W.shape
    if values.element_rank is not None or W.size == 0:
        entries = row_entries(W, values)
        return entries.N, entries.max_rank, entries.distinct
    bits, negzero = _bits(W)
    omega0 = np.uint64(np.asarray(values.omega[:1]).view(bits.dtype)[0])
    count = np.zeros(m, np.int64)
    max_rank = np.zeros(m, np.int64)
    distinct = np.zeros(m, np.int64)
    par = use_threads(W.size)
    parts = numba.get_num_threads() if par else 1
    chunks = np.linspace(0, m, parts + 1).astype(np.int64)
    (_row_groups if par else _row_groups_serial)(
        bits, omega0, negzero, m, n, values.keys, values.slot_rank, values.shift,
        values.omega.size, chunks, count, max_rank, distinct)
    return int(count.sum()), max_rank, distinct


_count_other_serial = serial(_count_other)
_fill_hashed_serial = serial(_fill_hashed)
_fill_ranked_serial = serial(_fill_ranked)
_sort_rows_serial = serial(_sort_rows)


def row_entries(W: np.ndarray, values: ValueCounts) -> RowEntries:
    """List the entries of ``W`` different from ``ω_0``, row by row, sorted by rank."""
    m, n = W.shape
    bits, negzero = _bits(W)
    per_row = np.zeros(m, np.int64)
    start = np.zeros(m + 1, np.int64)
    col = np.empty(0, index_dtype(max(n - 1, 0)))
    rank = np.empty(0, np.int64)
    max_rank = np.zeros(m, np.int64)
    distinct = np.zeros(m, np.int64)
    if W.size == 0:
        return RowEntries(start, col, rank, max_rank, distinct)
    omega0 = np.uint64(np.asarray(values.omega[:1]).view(bits.dtype)[0])
    par = use_threads(W.size)
    if values.element_rank is None:
        (_count_other if par else _count_other_serial)(bits, omega0, negzero, m, n, per_row)
    else:
        per_row = np.count_nonzero(values.element_rank.reshape(m, n), axis=1).astype(np.int64)
    np.cumsum(per_row, out=start[1:])
    N = int(start[-1])
    check_memory(N * (col.itemsize + rank.itemsize),
                 f"listing the {N:,} entries of a {m}×{n} matrix that differ from its most "
                 "frequent value")
    col = np.empty(N, col.dtype)
    rank = np.empty(N, np.int64)
    if values.element_rank is None:
        fill = _fill_hashed if par else _fill_hashed_serial
        fill(bits, omega0, negzero, m, n, values.keys, values.slot_rank, values.shift, start,
             col, rank)
    else:
        (_fill_ranked if par else _fill_ranked_serial)(values.element_rank, m, n, start, col, rank)
    (_sort_rows if par else _sort_rows_serial)(start, col, rank, max_rank, distinct)
    return RowEntries(start, col, rank, max_rank, distinct)
