"""The bit codes of the EFR format and the row statistics that price it.

EFR (:mod:`lowentropy.formats.efr`) stores every row as a run of 64-bit words, either
*sparse* (per value, Elias–Fano coded columns) or *dense* (one canonical Huffman code per
element). How many bits a row takes follows from its counts per rank alone, so the same
arithmetic serves the encoder and the statistics (:func:`efr_sizes`, run by
:func:`lowentropy.stats`): ``EFR.storage_for(stats) == EFR.from_dense(W).storage()``.

Bits are numbered from the least significant bit of word 0 up: bit ``p`` is
``(words[p >> 6] >> (p & 63)) & 1``. Codes used:

- ``gamma(v)`` for ``v >= 1`` (Elias gamma, ``2·floor(log2 v) + 1`` bits): ``z =
  floor(log2 v)`` zero bits, a one, then the ``z`` low bits of ``v``, least significant
  first;
- Elias–Fano of ``c`` ascending columns below ``n``: ``L = floor(log2(n // c)) + 1`` low
  bits of each column (``c·L`` bits, column after column), and the high parts in unary:
  bit ``(col_t >> L) + t`` set for the ``t``-th column, in a field of exactly
  ``c + ((n - 1) >> L)`` bits (a sparse row holds the low parts of all its lists, then
  all their high fields);
- Huffman codes are canonical over the ranks (shorter codes first, ties by rank), each
  written most significant bit first, so that 64 bits read from a code's position, least
  significant first, index a lookup table by their low bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import int64, uint64
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros
from numba.extending import overload

from ._huffman import MAX_CODE_LENGTH, canonical_code, huffman_lengths
from ._jit import kernel, prange, serial, use_threads
from ._values import _bits, _lookup

__all__ = [
    "MAX_CODE_LENGTH", "EFRSizes", "huffman_lengths", "canonical_tables", "efr_sizes",
    "efr_sizes_from_hist", "row_costs", "ctz", "floor_log2", "peek", "put", "gamma_bits",
    "ef_low", "ef_bits", "tally",
]

_inline = numba.njit(inline="always", nogil=True)


# --- bit helpers: plain Python under NUMBA_DISABLE_JIT, one instruction compiled --------

def ctz(w):
    """Trailing zero bits of a non-zero 64-bit word."""
    w = int(w)
    return (w & -w).bit_length() - 1


@overload(ctz, inline="always")
def _ctz_compiled(w):  # pragma: no cover - compiled
    def impl(w):
        return int64(trailing_zeros(uint64(w)))
    return impl


def floor_log2(v):
    """``floor(log2 v)`` of an integer ``v >= 1``."""
    return int(v).bit_length() - 1


@overload(floor_log2, inline="always")
def _floor_log2_compiled(v):  # pragma: no cover - compiled
    def impl(v):
        return 63 - int64(leading_zeros(uint64(v)))
    return impl


@_inline
def peek(words, pos):  # pragma: no cover - compiled
    """The 64 bits from bit ``pos`` on (bit ``pos`` lowest). Bits past the last word are
    unspecified: callers use only bits inside their row."""
    w = pos >> 6
    s = uint64(pos & 63)
    nxt = words[min(w + 1, words.shape[0] - 1)]
    return (words[w] >> s) | ((nxt << uint64(1)) << (uint64(63) - s))


@_inline
def put(words, pos, value, nbits):  # pragma: no cover - compiled
    """OR ``value`` (below ``2**nbits``, ``nbits <= 64``) into the bits from ``pos`` on."""
    if nbits > 0:
        w = pos >> 6
        s = pos & 63
        words[w] |= uint64(value) << uint64(s)
        if s + nbits > 64:
            words[w + 1] |= uint64(value) >> uint64(64 - s)


@_inline
def low_mask(nbits):  # pragma: no cover - compiled
    """``2**nbits - 1`` as a 64-bit word, ``nbits < 64``."""
    return (uint64(1) << uint64(nbits)) - uint64(1)


@_inline
def gamma_bits(v):  # pragma: no cover - compiled
    """Bits of ``gamma(v)``, ``v >= 1``."""
    return 2 * floor_log2(v) + 1


@_inline
def ef_low(n, c):  # pragma: no cover - compiled
    """Low bits per column of an Elias–Fano list of ``1 <= c <= n`` columns below ``n``:
    ``floor(log2(n // c)) + 1``, the bits of ``n // c``, without a division (``n // c >=
    2**d`` exactly when ``c << d <= n``). One bit more than the textbook choice: the
    unary high field is about half as long (``c + ((n − 1) >> L) < 2c`` bits), which
    halves the product's pass over it, for a list about as long (SPEC §9)."""
    d = floor_log2(n) - floor_log2(c)
    return d + 1 if (c << d) <= n else d


@_inline
def ef_bits(n, c):  # pragma: no cover - compiled
    """Bits of an Elias–Fano list of ``1 <= c <= n`` columns below ``n``."""
    L = ef_low(n, c)
    return c * L + c + ((n - 1) >> L)


@_inline
def read_gamma(words, pos):  # pragma: no cover - compiled
    """``(v, pos after the code)`` of the gamma code at ``pos`` (trusted stream; the code
    fits one 64-bit read: ``v < 2**32``)."""
    w = peek(words, pos)
    z = ctz(w)
    v = (int64(1) << z) | int64((w >> uint64(z + 1)) & low_mask(z))
    return v, pos + 2 * z + 1


@_inline
def write_gamma(words, pos, v):  # pragma: no cover - compiled
    """Write ``gamma(v)`` at ``pos``; returns the position after it."""
    z = floor_log2(v)
    put(words, pos + z, 1, 1)
    put(words, pos + z + 1, v & ((int64(1) << z) - 1), z)
    return pos + 2 * z + 1


@_inline
def row_costs(hist, touched, nt, n, lengths):  # pragma: no cover - compiled
    """Bits of a row in each mode, from its counts per rank.

    ``hist[touched[:nt]]`` are the counts of the ranks other than 0 present in the row.
    Returns ``(dense_bits, sparse_bits, entries, max_rank)``; both costs include the mode
    bit. Dense: ``1 + Σ_k c_k·ℓ_k`` (rank 0 included). Sparse: ``1 + gamma(r + 1) +
    Σ_{k=1..r} gamma(c_k + 1) + Σ_{c_k > 0} EF(c_k)``, with ``r`` the largest rank.
    """
    entries = 0
    r = 0
    dense = 1
    sparse = 1
    for q in range(nt):
        k = touched[q]
        c = hist[k]
        entries += c
        if k > r:
            r = k
        dense += c * lengths[k]
        sparse += gamma_bits(c + 1) + ef_bits(n, c)
    if n > entries:
        dense += (n - entries) * lengths[0]
    sparse += gamma_bits(r + 1) + (r - nt)  # an empty group is gamma(1), one bit
    return dense, sparse, entries, r


# --- canonical decoding tables (the code lengths: lowentropy._huffman) ------------------

@dataclass(frozen=True)
class CanonicalTables:
    """Encoding and decoding tables of the canonical code with given lengths.

    ``codes[k]``: the code word of rank ``k`` bit-reversed (as written, least significant
    bit first). ``lut``: for every ``lut_bits``-bit window, ``rank·64 + length`` of the
    code it starts with, or -1 when that code is longer than the window. ``first``,
    ``count``, ``index`` (by length) and ``ranks`` (ranks in code order) are those of
    :class:`lowentropy._huffman.CanonicalCode` (``index`` its ``offset``); they decode
    the longer codes bit by bit.
    """

    lengths: np.ndarray
    codes: np.ndarray
    lut: np.ndarray
    lut_bits: int
    first: np.ndarray
    count: np.ndarray
    index: np.ndarray
    ranks: np.ndarray
    max_length: int


def _reverse(code: int, length: int) -> int:
    return int(f"{code:0{length}b}"[::-1], 2) if length else 0


def canonical_tables(lengths, lut_bits: int = 11) -> CanonicalTables:
    """Tables of the canonical code with these lengths (a complete code, or ``[0]``)."""
    lengths = np.asarray(lengths, np.int64)
    K = lengths.size
    code = canonical_code(lengths)
    max_length = code.max_length
    codes = np.array([_reverse(int(c), int(length))
                      for c, length in zip(code.codes, lengths, strict=True)], np.uint64)
    lut_bits = max(1, min(lut_bits, max_length))
    lut = np.full(1 << lut_bits, -1, np.int64)
    if K == 1:
        lut[:] = 0  # rank 0, length 0
    for k in range(K if K > 1 else 0):
        length = int(lengths[k])
        if length <= lut_bits:
            lut[int(codes[k]) + (np.arange(1 << (lut_bits - length)) << length)] = k * 64 + length
    return CanonicalTables(lengths, codes, lut, lut_bits, code.first, code.count, code.offset,
                           code.by_code, max_length)


@_inline
def decode_symbol(words, pos, lut, lut_bits, first, count, index, ranks,
                  max_length):  # pragma: no cover - compiled
    """``(rank, length)`` of the code at ``pos`` (a complete code; trusted stream)."""
    v = peek(words, pos)
    e = lut[int64(v & low_mask(lut_bits))]
    if e >= 0:
        return e >> 6, e & 63
    code = int64(0)
    for length in range(1, max_length + 1):
        code = 2 * code + int64((v >> uint64(length - 1)) & uint64(1))
        d = code - first[length]
        if d >= 0 and d < count[length]:
            return ranks[index[length] + d], length
    return -1, 0  # not reached on a complete code


# --- the statistics pass ------------------------------------------------------------------

@dataclass(frozen=True)
class EFRSizes:
    """What EFR's storage and operation counts depend on beyond ``Ω`` and its counts.

    Attributes
    ----------
    words : int
        64-bit words of the bitstream (every row padded to whole words).
    dense_rows : int
        Rows coded dense (one Huffman code per element).
    sparse_entries : int
        Entries different from ``ω_0`` in the sparse rows.
    sparse_groups : int
        Groups of the sparse rows, ``Σ r_i`` (empty ones included).
    sparse_nonempty : int
        Non-empty groups of the sparse rows (one multiplication each).
    max_length : int
        Longest Huffman code (the largest entry of ``lengths``).
    """

    words: int = 0
    dense_rows: int = 0
    sparse_entries: int = 0
    sparse_groups: int = 0
    sparse_nonempty: int = 0
    max_length: int = 0


@_inline
def tally(hist, touched, nt, r):  # pragma: no cover - compiled
    """Count one element of rank ``r`` in a row: ``hist[r] += 1``, and the ``nt`` ranks
    seen so far in ``touched`` (so that only they are read and cleared). Returns the new
    ``nt``."""
    if hist[r] == 0:
        touched[nt] = r
        nt += 1
    hist[r] += 1
    return nt


@_inline
def _finish_row(i, hist, touched, nt, n, lengths, words, dense, entries, groups,
                nonempty):  # pragma: no cover - compiled
    d, s, N, r = row_costs(hist, touched, nt, n, lengths)
    is_dense = d < s
    entries[i, 1] = d
    entries[i, 2] = s
    words[i] = ((d if is_dense else s) + 63) >> 6
    dense[i] = is_dense
    entries[i, 0] = N
    groups[i] = r
    nonempty[i] = nt
    for q in range(nt):
        hist[touched[q]] = 0


@kernel(parallel=True)
def _rows_hashed(bits, omega0, negzero, m, n, keys, slot_rank, shift, lengths, chunks,
                 words, dense, entries, groups, nonempty):
    """Every row's EFR cost from the matrix's bit patterns and the rank hash table."""
    K = lengths.shape[0]
    for c in prange(chunks.shape[0] - 1):
        hist = np.zeros(K, np.int64)
        touched = np.empty(K, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            nt = 0
            for j in range(n):
                key = np.uint64(bits[i * n + j])
                if key == negzero:
                    key = np.uint64(0)
                if key != omega0:
                    nt = tally(hist, touched, nt, _lookup(keys, slot_rank, shift, key))
            _finish_row(i, hist, touched, nt, n, lengths, words, dense, entries, groups,
                        nonempty)


@kernel(parallel=True)
def _rows_ranked(element_rank, m, n, lengths, chunks, words, dense, entries, groups, nonempty):
    """Every row's EFR cost from the rank of every element."""
    K = lengths.shape[0]
    for c in prange(chunks.shape[0] - 1):
        hist = np.zeros(K, np.int64)
        touched = np.empty(K, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            nt = 0
            for j in range(n):
                r = element_rank[i * n + j]
                if r != 0:
                    nt = tally(hist, touched, nt, r)
            _finish_row(i, hist, touched, nt, n, lengths, words, dense, entries, groups,
                        nonempty)


@kernel(parallel=True)
def _rows_from_hist(hist_rows, n, lengths, chunks, words, dense, entries, groups, nonempty):
    """Every row's EFR cost from an ``m × K`` matrix of counts per rank."""
    K = lengths.shape[0]
    for c in prange(chunks.shape[0] - 1):
        hist = np.zeros(K, np.int64)
        touched = np.empty(K, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            nt = 0
            for k in range(1, K):
                if hist_rows[i, k] > 0:
                    hist[k] = hist_rows[i, k]
                    touched[nt] = k
                    nt += 1
            _finish_row(i, hist, touched, nt, n, lengths, words, dense, entries, groups,
                        nonempty)


_rows_hashed_serial = serial(_rows_hashed)
_rows_ranked_serial = serial(_rows_ranked)
_rows_from_hist_serial = serial(_rows_from_hist)


@dataclass(frozen=True)
class RowPlan:
    """Per row: words, dense or not, (entries other than ``ω_0``, bits dense, bits
    sparse), groups (largest rank), non-empty groups."""

    words: np.ndarray
    dense: np.ndarray
    entries: np.ndarray
    groups: np.ndarray
    nonempty: np.ndarray

    @property
    def dense_bits(self) -> np.ndarray:
        """Bits of every row coded dense (mode bit included, before padding)."""
        return self.entries[:, 1]

    @property
    def sparse_bits(self) -> np.ndarray:
        """Bits of every row coded sparse (mode bit included, before padding)."""
        return self.entries[:, 2]

    def sizes(self, lengths: np.ndarray) -> EFRSizes:
        sparse = ~self.dense
        return EFRSizes(
            words=int(self.words.sum()), dense_rows=int(self.dense.sum()),
            sparse_entries=int(self.entries[sparse, 0].sum()),
            sparse_groups=int(self.groups[sparse].sum()),
            sparse_nonempty=int(self.nonempty[sparse].sum()),
            max_length=int(lengths.max()) if lengths.size else 0,
        )


def _plan_rows(m: int, work: int, run) -> RowPlan:
    par = use_threads(work)
    parts = numba.get_num_threads() if par else 1
    chunks = np.linspace(0, m, parts + 1).astype(np.int64)
    plan = RowPlan(np.zeros(m, np.int64), np.zeros(m, np.bool_), np.zeros((m, 3), np.int64),
                   np.zeros(m, np.int64), np.zeros(m, np.int64))
    run(par, chunks, plan)
    return plan


def plan_rows(W: np.ndarray, values) -> RowPlan:
    """Per-row EFR costs of a validated matrix, from its :class:`ValueCounts`."""
    m, n = W.shape
    lengths = huffman_lengths(values.counts)

    def run(par, chunks, plan):
        out = (plan.words, plan.dense, plan.entries, plan.groups, plan.nonempty)
        if W.size == 0:  # no columns: one dense word of a lone mode bit per row
            plan.words[:] = 1
            plan.dense[:] = True
            plan.entries[:, 1] = 1
            plan.entries[:, 2] = 2
        elif values.element_rank is not None:
            (_rows_ranked if par else _rows_ranked_serial)(
                values.element_rank, m, n, lengths, chunks, *out)
        else:
            bits, negzero = _bits(W)
            omega0 = np.uint64(np.asarray(values.omega[:1]).view(bits.dtype)[0])
            (_rows_hashed if par else _rows_hashed_serial)(
                bits, omega0, negzero, m, n, values.keys, values.slot_rank, values.shift,
                lengths, chunks, *out)

    return _plan_rows(m, W.size, run)


def efr_sizes(W: np.ndarray, values) -> EFRSizes:
    """:class:`EFRSizes` of a validated matrix (one pass over it, no sort, ``O(m + K)``
    memory per thread); what :func:`lowentropy.stats` records for EFR."""
    return plan_rows(W, values).sizes(huffman_lengths(values.counts))


def efr_sizes_from_hist(hist: np.ndarray, counts: np.ndarray, n: int) -> EFRSizes:
    """:class:`EFRSizes` from the counts per row of every rank (``m × K``, columns in the
    order of ``Ω``), for statistics computed without the matrix."""
    hist = np.ascontiguousarray(hist, dtype=np.int64)
    lengths = huffman_lengths(counts)

    def run(par, chunks, plan):
        (_rows_from_hist if par else _rows_from_hist_serial)(
            hist, int(n), lengths, chunks, plan.words, plan.dense, plan.entries, plan.groups,
            plan.nonempty)

    return _plan_rows(hist.shape[0], hist.size, run).sizes(lengths)
