"""Entropy-coded codes (``huffman``, SPEC §9): Deep Compression's last stage.

The code is canonical: lengths from an optimal prefix code over the counts of ``Ω``
(:func:`huffman_lengths`), code words assigned in order of (length, rank). The whole
matrix is one bitstream, row after row, most significant bit first; ``row_ptr`` gives
the bit where each row starts, so rows decode independently (in parallel).

Decoding is table driven: the next ``LOOKUP_BITS`` bits index a table of (rank, length);
longer codes (rare by construction) fall back to the canonical first-code comparison,
one length at a time, in a function of its own. A vector product decodes and multiplies
as it goes; a batch decodes tiles of 1024 rows × 4096 columns into values and multiplies
them with BLAS (:func:`~lowentropy.formats._packed.tiled_matmat`; each row's decoding
resumes where the previous column block stopped), four rows side by side: about 11
cycles per element on one core, 17 with two rows side by side (VGG-16 fc6 rows). The
decoding dominates a batch product: it is slower than dense's at batch 8 and 64.

What bounds the vector product: one row's decoding is a chain of dependent steps (load the
word holding bit ``p``, shift, look the code word up, ``p += length``), about 17-19 cycles
per element measured on one row at a time. The kernel decodes four rows side by side, four
independent chains: about 5.7 cycles per element on one core (16-level layer, AMD EPYC).
Calling the long-code path through an inlined helper returning a tuple cost 80-100
cycles per element (numba did not keep the fast path tight): it stays out of line.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int64, uint64

from .._huffman import MAX_CODE_LENGTH, canonical_code, huffman_lengths
from .._jit import kernel, prange, serial, use_threads
from .._values import count_values
from ..memory import check_memory
from ._checks import check_pointer, check_values, check_vector
from ._packed import check_omega_counts, element_ranks, tiled_matmat
from .base import ArraySpec, Format, Sizes

__all__ = ["Huffman", "huffman_lengths", "MAX_CODE_LENGTH"]

#: Longest code word: lengths are capped here only where the optimal code is longer.
#: Bits decoded by one table lookup (the table has ``2**LOOKUP_BITS`` entries).
LOOKUP_BITS = 11

_inline = numba.njit(inline="always", nogil=True)


# --- the code --------------------------------------------------------------------------------

def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code word of every rank (:func:`lowentropy._huffman.canonical_code`).

    Examples
    --------
    >>> [format(int(c), "b") for c in canonical_codes(np.array([1, 2, 3, 3]))]
    ['0', '10', '110', '111']
    """
    return canonical_code(lengths).codes


class Decoder:
    """Decoding tables of a canonical code with complete lengths (Kraft sum 1).

    ``lut_rank``/``lut_length``: for the next ``lookup`` bits, the rank and length of the
    code word they start with (length 0 when it is longer than ``lookup``). ``first``,
    ``count``, ``offset`` (by length) and ``by_code`` (ranks in code order) decode the
    longer ones.
    """

    def __init__(self, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, np.int64)
        code = canonical_code(lengths)
        self.max_length = code.max_length
        self.lookup = max(1, min(self.max_length, LOOKUP_BITS))
        self.by_code = code.by_code
        self.count, self.offset, self.first = code.count, code.offset, code.first
        codes = code.codes
        order = code.by_code
        size = 1 << self.lookup
        self.lut_rank = np.zeros(size, np.int64)
        self.lut_length = np.zeros(size, np.int64)
        for k in order[lengths[order] <= self.lookup]:
            length = int(lengths[k])
            lo = int(codes[k]) << (self.lookup - length)
            hi = (int(codes[k]) + 1) << (self.lookup - length)
            self.lut_rank[lo:hi] = k
            self.lut_length[lo:hi] = length

    def tables(self):
        return (self.lut_rank, self.lut_length, self.lookup, self.first, self.count,
                self.offset, self.by_code, self.max_length)


# --- kernels ---------------------------------------------------------------------------------

@_inline
def _peek(words, last, p):  # pragma: no cover - compiled
    """The 32 bits of the stream from bit ``p`` on (``p`` inside the stream; what follows
    its end is not a code word's business: every code word ends inside the stream)."""
    k = p >> uint64(5)
    hi = uint64(words[k])
    lo = uint64(words[min(k + uint64(1), last)])  # the last word again past the end
    return (((hi << uint64(32)) | lo) << (p & uint64(31))) >> uint64(32) & uint64(0xFFFFFFFF)


@kernel()
def _long_symbol(window, lookup, first, count, offset, by_code, max_length):
    """(rank, length) of a code word longer than the lookup table; (-1, 0) if none."""
    for length in range(lookup + 1, max_length + 1):
        d = int64(window >> uint64(32 - length)) - first[length]
        if d >= 0 and d < count[length]:
            return by_code[offset[length] + d], length
    return -1, 0


@kernel()
def _encode(ranks, m, n, lengths, codes, words):
    """Write the code words of every row, one after another (one thread: rows share the
    words at their boundaries)."""
    acc = uint64(0)
    held = 0
    w = 0
    for e in range(m * n):
        k = ranks[e]
        length = lengths[k]
        acc = (acc << uint64(length)) | codes[k]
        held += length
        if held >= 32:
            held -= 32
            words[w] = (acc >> uint64(held)) & uint64(0xFFFFFFFF)
            w += 1
            acc &= (uint64(1) << uint64(held)) - uint64(1)
    if held > 0:
        words[w] = (acc << uint64(32 - held)) & uint64(0xFFFFFFFF)


@kernel(parallel=True)
def _row_bits(ranks, m, n, lengths, out):
    for i in prange(m):
        s = 0
        for j in range(n):
            s += lengths[ranks[i * n + j]]
        out[i] = s


@kernel()
def _long_symbols(w0, w1, w2, w3, k0, l0, k1, l1, k2, l2, k3, l3, lookup, first, count, offset,
                  by_code, max_length):
    """The (rank, length) pairs of four windows, the long code words (length 0) decoded."""
    if l0 == 0:
        k0, l0 = _long_symbol(w0, lookup, first, count, offset, by_code, max_length)
    if l1 == 0:
        k1, l1 = _long_symbol(w1, lookup, first, count, offset, by_code, max_length)
    if l2 == 0:
        k2, l2 = _long_symbol(w2, lookup, first, count, offset, by_code, max_length)
    if l3 == 0:
        k3, l3 = _long_symbol(w3, lookup, first, count, offset, by_code, max_length)
    return k0, l0, k1, l1, k2, l2, k3, l3


@kernel(parallel=True)
def _decode_tile(words, pos, ncols, table, lut_rank, lut_length, lookup, first, count, offset,
                 by_code, max_length, r0, r1, out):
    """``out[i - r0, j] = table[rank]`` of the next ``ncols`` code words of rows
    ``r0 <= i < r1`` (valid streams), from bit ``pos[i]`` on; ``pos[i]`` moves past them.
    Four rows side by side (four independent decoding chains; a group of fewer rows
    decodes its last row again in the missing places)."""
    last = uint64(words.shape[0] - 1)
    shift = uint64(32 - lookup)
    for g in prange((r1 - r0 + 3) // 4):
        i = r0 + 4 * g
        rows = min(4, r1 - i)
        i1 = i + min(1, rows - 1)
        i2 = i + min(2, rows - 1)
        i3 = i + min(3, rows - 1)
        o0, o1, o2, o3 = out[i - r0], out[i1 - r0], out[i2 - r0], out[i3 - r0]
        p0, p1, p2, p3 = uint64(pos[i]), uint64(pos[i1]), uint64(pos[i2]), uint64(pos[i3])
        for j in range(ncols):
            w0 = _peek(words, last, p0)
            w1 = _peek(words, last, p1)
            w2 = _peek(words, last, p2)
            w3 = _peek(words, last, p3)
            k0 = lut_rank[w0 >> shift]
            k1 = lut_rank[w1 >> shift]
            k2 = lut_rank[w2 >> shift]
            k3 = lut_rank[w3 >> shift]
            l0 = lut_length[w0 >> shift]
            l1 = lut_length[w1 >> shift]
            l2 = lut_length[w2 >> shift]
            l3 = lut_length[w3 >> shift]
            if l0 == 0 or l1 == 0 or l2 == 0 or l3 == 0:  # rare: a long code word
                k0, l0, k1, l1, k2, l2, k3, l3 = _long_symbols(
                    w0, w1, w2, w3, k0, l0, k1, l1, k2, l2, k3, l3, lookup, first, count,
                    offset, by_code, max_length)
            o0[j] = table[k0]
            o1[j] = table[k1]
            o2[j] = table[k2]
            o3[j] = table[k3]
            p0 += uint64(l0)
            p1 += uint64(l1)
            p2 += uint64(l2)
            p3 += uint64(l3)
        pos[i], pos[i1], pos[i2], pos[i3] = p0, p1, p2, p3


@kernel(parallel=True)
def _matvec(words, row_ptr, n, omega, x, lut_rank, lut_length, lookup, first, count, offset,
            by_code, max_length, chunks, out):
    """Four rows at a time: decoding is a chain of dependent loads (the next code word
    starts where this one ends), so four independent chains keep the core busy."""
    last = uint64(words.shape[0] - 1)
    shift = uint64(32 - lookup)
    for c in prange(chunks.shape[0] - 1):
        i = chunks[c]
        end = chunks[c + 1]
        while i < end:
            rows = min(4, end - i)
            p0 = uint64(row_ptr[i])
            p1 = uint64(row_ptr[i + 1 if rows > 1 else i])
            p2 = uint64(row_ptr[i + 2 if rows > 2 else i])
            p3 = uint64(row_ptr[i + 3 if rows > 3 else i])
            a0 = a1 = a2 = a3 = x.dtype.type(0)
            for j in range(n):  # one accumulator per row, in column order
                xj = x[j]
                w0 = _peek(words, last, p0)
                w1 = _peek(words, last, p1)
                w2 = _peek(words, last, p2)
                w3 = _peek(words, last, p3)
                k0 = lut_rank[w0 >> shift]
                k1 = lut_rank[w1 >> shift]
                k2 = lut_rank[w2 >> shift]
                k3 = lut_rank[w3 >> shift]
                l0 = lut_length[w0 >> shift]
                l1 = lut_length[w1 >> shift]
                l2 = lut_length[w2 >> shift]
                l3 = lut_length[w3 >> shift]
                if l0 == 0 or l1 == 0 or l2 == 0 or l3 == 0:  # rare: a long code word
                    if l0 == 0:
                        k0, l0 = _long_symbol(w0, lookup, first, count, offset, by_code,
                                              max_length)
                    if l1 == 0:
                        k1, l1 = _long_symbol(w1, lookup, first, count, offset, by_code,
                                              max_length)
                    if l2 == 0:
                        k2, l2 = _long_symbol(w2, lookup, first, count, offset, by_code,
                                              max_length)
                    if l3 == 0:
                        k3, l3 = _long_symbol(w3, lookup, first, count, offset, by_code,
                                              max_length)
                a0 += omega[k0] * xj
                a1 += omega[k1] * xj
                a2 += omega[k2] * xj
                a3 += omega[k3] * xj
                p0 += uint64(l0)
                p1 += uint64(l1)
                p2 += uint64(l2)
                p3 += uint64(l3)
            out[i] = a0
            if rows > 1:
                out[i + 1] = a1
            if rows > 2:
                out[i + 2] = a2
            if rows > 3:
                out[i + 3] = a3
            i += rows


@kernel()
def _check_stream(words, row_ptr, n, K, lut_rank, lut_length, lookup, first, count, offset,
                  by_code, max_length, counts):
    """Decode every row with bounds checks; count the ranks. Returns (row, problem) of the
    first bad row (problem 1: a row runs past its end; 2: no code word; 3: a row ends
    before its end) or (-1, 0)."""
    last = uint64(max(words.shape[0] - 1, 0))
    shift = uint64(32 - lookup)
    for i in range(row_ptr.shape[0] - 1):
        p = uint64(row_ptr[i])
        end = uint64(row_ptr[i + 1])
        for _ in range(n):
            if p >= end:
                return i, 1
            window = _peek(words, last, p)
            e = window >> shift
            k = lut_rank[e]
            length = lut_length[e]
            if length == 0:
                k, length = _long_symbol(window, lookup, first, count, offset, by_code,
                                         max_length)
            if k < 0 or k >= K:
                return i, 2
            counts[k] += 1
            p += uint64(length)
        if p != end:
            return i, 3 if p < end else 1
    return -1, 0


_matvec_serial = serial(_matvec)
_decode_tile_serial = serial(_decode_tile)


# --- the format ------------------------------------------------------------------------------

class Huffman(Format):
    """Canonical Huffman codes of the elements' ranks (SPEC §9).

    Arrays
    ------
    omega : (K,) float32 or float64
        ``Ω``, distinct values by decreasing count, ties by ascending value.
    lengths : (K,) uint8
        Code length of every rank: :func:`huffman_lengths` of the counts (0 when
        ``K = 1``: nothing is coded).
    bits : (ceil(B/32),) uint32
        The code words of the whole matrix, row-major, concatenated, most significant
        bit of each word first; ``B = Σ_k count_k · ℓ_k``; the bits after ``B`` are 0.
    row_ptr : (m+1,) int64
        Row ``i`` is bits ``row_ptr[i]:row_ptr[i+1]``; ``row_ptr[m] = B``.

    Storage (SPEC §9): ``bits`` is ``B`` bits exactly (1 bit per entry under every
    policy), ``lengths`` and ``row_ptr`` are integer arrays sized by their largest entry,
    ``omega`` ``K·value_bits``. It needs at least one bit per element, so it loses to
    CER/CSER on very sparse matrices. Cost: as ``palette``, with ``m·n`` reads of
    ``bits`` (one decoded code each) and ``m+1`` of ``row_ptr``.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.Huffman.from_dense(np.array([[0., 2., 0., 3.], [2., 0., 2., 0.]]))
    >>> a = f.arrays()
    >>> a["lengths"].tolist(), a["row_ptr"].tolist(), f.storage().by_array["bits"]
    ([1, 2, 2], [0, 6, 12], 12)
    >>> f @ np.ones(4)
    array([5., 4.])
    """

    name = "huffman"
    array_names = ("omega", "lengths", "bits", "row_ptr")

    # --- conversion -------------------------------------------------------------------
    @classmethod
    def _encode(cls, W: np.ndarray) -> Huffman:
        m, n = W.shape
        values = count_values(W)
        lengths = huffman_lengths(values.counts)
        total = int(values.counts @ lengths) if lengths.size else 0
        check_memory(4 * m * n + total // 8 + 8 * m,
                     f"the Huffman code of a {m}×{n} matrix")
        ranks = element_ranks(W, values)
        per_row = np.zeros(m, np.int64)
        if m and n and values.K > 1:
            _row_bits(ranks, m, n, lengths, per_row)
        row_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(per_row, out=row_ptr[1:])
        words = np.zeros(-(-total // 32), np.uint32)
        if total:
            _encode(ranks, m, n, lengths, canonical_codes(lengths), words)
        return cls._trusted(W.shape, W.dtype, omega=values.omega,
                            lengths=lengths.astype(np.uint8), bits=words, row_ptr=row_ptr)

    def _decoder(self) -> Decoder:
        decoder = self.__dict__.get("_decoder_cache")
        if decoder is None:
            decoder = self._decoder_cache = Decoder(self._arrays["lengths"])
        return decoder

    def _decode(self, table: np.ndarray, r0: int, r1: int, out: np.ndarray,
                pos: np.ndarray | None = None) -> None:
        """``out = table[ranks]`` for rows ``r0:r1`` and the next ``out.shape[1]`` columns
        from bit ``pos[i]`` of each row (``row_ptr`` when ``None``; ``pos`` moves on)."""
        if self._arrays["omega"].size <= 1:
            out[...] = table[0] if table.size else 0
            return
        a = self._arrays
        if pos is None:
            pos = a["row_ptr"].astype(np.uint64)
        ncols = out.shape[1]
        run = _decode_tile if use_threads((r1 - r0) * ncols) else _decode_tile_serial
        run(a["bits"], pos, ncols, table, *self._decoder().tables(), r0, r1, out)

    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        m, n = self.shape
        W = np.empty((m, n), self.dtype)
        if m and n:
            self._decode(self._arrays["omega"], 0, m, W)
        return W

    # --- invariants -------------------------------------------------------------------
    def _check_arrays(self) -> None:
        m, n = self.shape
        a = self._arrays
        omega, lengths, bits, row_ptr = a["omega"], a["lengths"], a["bits"], a["row_ptr"]
        check_values("omega", omega, None, self.dtype)
        K = omega.size
        check_vector("lengths", lengths, K, "iu")
        check_vector("bits", bits, None, "iu")
        check_vector("row_ptr", row_ptr, m + 1, "iu")
        total = int(row_ptr[-1]) if row_ptr.size else 0
        check_pointer("row_ptr", row_ptr, m + 1, total)
        if bits.size != -(-total // 32):
            raise ValueError(f"bits must have ceil(row_ptr[-1] / 32) = {-(-total // 32)} "
                             f"words, got {bits.size}")
        if bits.size and (bits.min() < 0 or bits.max() > 0xFFFFFFFF):
            raise ValueError("bits must hold 32-bit words (entries in [0, 2**32))")
        a["bits"] = bits = bits.astype(np.uint32)
        if total % 32 and bits[-1] & ((1 << (32 - total % 32)) - 1):
            raise ValueError("bits must be 0 after the last code word")
        counts = self._check_code(lengths.astype(np.int64), bits, row_ptr.astype(np.int64))
        check_omega_counts(omega, counts, m * n)
        expected = huffman_lengths(counts)
        if not np.array_equal(lengths, expected):
            raise ValueError(f"lengths must be the Huffman code lengths of the counts "
                             f"{counts[:8].tolist()}...: expected {expected[:8].tolist()}..., "
                             f"got {lengths[:8].tolist()}...")

    def _check_code(self, lengths: np.ndarray, bits: np.ndarray, row_ptr: np.ndarray):
        """Counts of every rank, after checking that the lengths form a complete prefix
        code and that every row decodes into exactly ``n`` code words."""
        m, n = self.shape
        K = lengths.size
        if K <= 1:
            if lengths.size and lengths[0] != 0:
                raise ValueError("lengths must be [0] when K = 1 (nothing is coded)")
            if row_ptr[-1] != 0:
                raise ValueError("row_ptr must be all 0 when K <= 1 (nothing is coded)")
            return np.full(K, m * n, np.int64)
        if lengths.min() < 1 or lengths.max() > MAX_CODE_LENGTH:
            raise ValueError(f"lengths must lie in [1, {MAX_CODE_LENGTH}] when K > 1")
        kraft = int(np.left_shift(np.int64(1), MAX_CODE_LENGTH - lengths).sum())
        if kraft != 1 << MAX_CODE_LENGTH:
            raise ValueError("lengths must form a complete prefix code (Kraft sum 1)")
        counts = np.zeros(K, np.int64)
        row, problem = _check_stream(bits, row_ptr, n, K, *Decoder(lengths).tables(), counts)
        if row >= 0:
            what = {1: "runs past its end", 2: "holds no code word",
                    3: f"ends before its end (row_ptr[{row + 1}])"}[problem]
            raise ValueError(f"bits: row {row} {what}; every row must decode into n = {n} "
                             "code words exactly")
        return counts

    # --- products ---------------------------------------------------------------------
    def _row_work(self) -> np.ndarray:
        m, n = self.shape
        return np.arange(m + 1, dtype=np.int64) * max(n, 1)

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        omega = a["omega"].astype(x.dtype)
        if omega.size <= 1:
            out[...] = omega[0] * x.sum(dtype=x.dtype)
            return
        parallel, chunks = self._plan(1)
        run = _matvec if parallel else _matvec_serial
        run(a["bits"], a["row_ptr"], self.shape[1], omega, x, *self._decoder().tables(),
            chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        omega = self._arrays["omega"].astype(X.dtype)
        pos = self._arrays["row_ptr"].astype(np.uint64)  # where each row's next column starts

        def decode_tile(r0, r1, c0, c1, tile):
            self._decode(omega, r0, r1, tile, pos)

        tiled_matmat(decode_tile, self.shape, X, out)

    # --- accounting -------------------------------------------------------------------
    def _sizes(self) -> Sizes:
        a = self._arrays
        lengths = a["lengths"]
        return Sizes(self.shape, self.dtype, K=int(a["omega"].size),
                     extra={"bits": int(a["row_ptr"][-1]),
                            "max_length": int(lengths.max()) if lengths.size else 0})

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        lengths = huffman_lengths(stats.counts)
        return Sizes(stats.shape, stats.dtype, K=stats.K,
                     extra={"bits": int(stats.counts @ lengths) if lengths.size else 0,
                            "max_length": int(lengths.max()) if lengths.size else 0})

    @classmethod
    def _scratch_bytes_of(cls, stats) -> int:
        return 4 * stats.size  # the rank of every element (uint32) while encoding

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m, _ = sizes.shape
        total = sizes.extra["bits"]
        return [ArraySpec("omega", sizes.K, "value"),
                ArraySpec("lengths", sizes.K, "index", sizes.extra["max_length"]),
                ArraySpec("bits", total, "bits"),
                ArraySpec("row_ptr", m + 1, "index", total)]

    @classmethod
    def _memory_dtype_of(cls, spec: ArraySpec, sizes: Sizes) -> np.dtype:
        if spec.name == "lengths":
            return np.dtype(np.uint8)
        return super()._memory_dtype_of(spec, sizes)

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        m, n = sizes.shape
        return (m * n, m * n, {"omega": m * n, "lengths": sizes.K, "bits": m * n,
                               "row_ptr": m + 1}, m * n)
