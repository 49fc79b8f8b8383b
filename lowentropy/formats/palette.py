"""The codebook form (``palette``, SPEC §9): packed fixed-width codes and a table of values.

Kernels (chosen by measurement, ``benchmarks/run.py``; AMD EPYC Milan, 2 cores):

- vector product, codes of at most 8 bits: for every column ``j`` a table
  ``T[j, c] = ω_c · x_j`` of ``2**b`` entries is built once per product (``n · 2**b``
  multiplications, shared by all rows; 64 bytes a column for 4-bit float32 codes). A row
  is then one lookup and one addition per element, the code's bits extracted from the
  word by shifts (unrolled for 4-bit codes: one ``bextr`` and one load-and-add per
  element in the generated code). The rows of a thread's run walk the columns in blocks
  whose tables fill L1 (32 KB). 4-bit codes go four rows side by side, sharing the
  tables' addresses and the loop: on the 4096 × 8192 16-level layer, one thread, 0.77-0.79×
  the time of one row at a time (two rows: 0.82-0.86×), about 1.05 cycles per element at
  the nominal 3 GHz. What bounds it is the instructions per element (extract, load, add),
  not memory (the codes are 1/8 of dense float32): dense float32 is bound by memory
  bandwidth, and palette's product measured 1.8-2.2× dense's time on 2 threads before the
  four-row loop (idle machine: 11.7 ms against 5.4 ms). With another job on the second
  core, two threads took as long as one (12.8-13.1 ms, 2.9× dense, before and after the
  four-row loop): the rows are split in two equal runs, and the run on the busy core sets
  the time. Tried and slower: tables of one
  entry per byte of codes (two 4-bit elements per lookup, 256 entries per column pair,
  byte loads from the codes): 1.5-1.9× slower even in blocks of 32 pairs (32 KB), the
  tables (4 MB for 8192 columns) cost more than the halved lookups save; ``K``
  accumulators per row (``Σ_k ω_k · Σ x_j`` over the codes equal to ``k``), whose
  scattered additions depend on each other; eight accumulators per row with LLVM's SLP
  vectorizer: 0.9× (the adds become vector adds of scalar loads; LLVM emits no gathers
  for AMD cores). Going further needs SIMD lookups (gathers, or ``vpermps`` over a
  16-entry ``ω`` with 8 rows' codes transposed), which numba does not emit;
- vector product, 16/32-bit codes (or few rows): codes are unpacked from their words and
  ``ω[code] · x_j`` accumulated;
- batch products: tiles of 16 MB (1024 rows × 4096 columns of float32) are decoded to
  values and multiplied by BLAS (:func:`~lowentropy.formats._packed.tiled_matmat`), so a
  batch costs one decode of the matrix (about 1.2 cycles per element for 8-bit codes) plus
  a dense product. Tiles of 2 rows (the first design, 256 KB) took 8.5× dense's time at
  batch 8 and 11.8× at batch 64 on VGG-16 fc6: BLAS re-read all of ``X`` every two rows.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64

from .._jit import kernel, prange, serial, use_threads
from .._values import count_values
from ..memory import check_memory
from ._checks import check_values, check_vector
from ._packed import check_omega_counts, element_ranks, tiled_matmat
from .base import ArraySpec, Format, Sizes, code_bits

__all__ = ["Palette"]

_inline = numba.njit(inline="always", nogil=True)

#: Bytes of the column tables that all rows of a run walk before the next columns (L1).
TABLE_BLOCK_BYTES = 1 << 15
#: Words of a row walked at least per block (wide tables: L2 rather than a short loop).
MIN_BLOCK_WORDS = 64
#: Fewer rows than this: tables would cost more than they save.
TABLE_MIN_ROWS = 16


def words_per_row(n: int, b: int) -> int:
    """``uint32`` words holding one row of ``n`` codes of ``b`` bits (rows start on a word)."""
    return -(-n * b // 32)


@kernel(parallel=True)
def _pack(ranks, m, n, b, wpr, out):
    per = 32 // b
    for i in prange(m):
        for w in range(wpr):
            word = uint64(0)
            for s in range(per):
                j = w * per + s
                if j < n:
                    word |= uint64(ranks[i * n + j]) << uint64(s * b)
            out[i * wpr + w] = word


@_inline
def _decode_words(row, b, table, w_end, o):  # pragma: no cover - compiled
    """``o[w·per + s] = table[code s of row[w]]`` for the whole words ``w < w_end`` (the
    common widths unrolled: one load of a word, then shifts and masks)."""
    w_end = uint64(w_end)
    w = uint64(0)
    if b == 4:
        while w < w_end:
            v = uint64(row[w])
            j = w << uint64(3)
            for s in range(8):
                o[j + uint64(s)] = table[(v >> uint64(4 * s)) & uint64(15)]
            w += uint64(1)
    elif b == 8:
        while w < w_end:
            v = uint64(row[w])
            j = w << uint64(2)
            for s in range(4):
                o[j + uint64(s)] = table[(v >> uint64(8 * s)) & uint64(255)]
            w += uint64(1)
    elif b == 2:
        while w < w_end:
            v = uint64(row[w])
            j = w << uint64(4)
            for s in range(16):
                o[j + uint64(s)] = table[(v >> uint64(2 * s)) & uint64(3)]
            w += uint64(1)
    else:
        per = uint64(32 // b)
        mask = (uint64(1) << uint64(b)) - uint64(1)
        while w < w_end:
            v = uint64(row[w])
            j = w * per
            for s in range(per):
                o[j + uint64(s)] = table[(v >> uint64(s * b)) & mask]
            w += uint64(1)


@kernel(parallel=True)
def _decode_tile(codes, b, wpr, table, r0, r1, c0, c1, out):
    """``out[i - r0, j - c0] = table[code(i, j)]`` for rows ``r0 <= i < r1`` and columns
    ``c0 <= j < c1``, ``c0`` a multiple of ``32 / b`` (a word boundary)."""
    per = 32 // b
    mask = (uint64(1) << uint64(b)) - uint64(1)
    full = (c1 - c0) // per
    rest = (c1 - c0) - full * per
    for i in prange(r0, r1):
        o = out[i - r0]
        row = codes[i * wpr + c0 // per: (i + 1) * wpr]
        _decode_words(row, b, table, full, o)
        if rest:
            v = uint64(row[full])
            for s in range(rest):
                o[full * per + s] = table[(v >> uint64(s * b)) & mask]


@kernel(parallel=True)
def _matvec_direct(codes, n, b, wpr, omega, x, chunks, out):
    per = 32 // b
    mask = (uint64(1) << uint64(b)) - uint64(1)
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            acc = x.dtype.type(0)  # in column order, like a plain dot product
            base = i * wpr
            for w in range(wpr):
                word = uint64(codes[base + w])
                j0 = w * per
                for s in range(min(per, n - j0)):
                    acc += omega[(word >> uint64(s * b)) & mask] * x[j0 + s]
            out[i] = acc


@kernel(parallel=True)
def _column_tables(omega_padded, x_padded, tables):
    """``tables[j·L + c] = ω_c · x_j`` for every column ``j`` and code ``c < L``."""
    L = omega_padded.shape[0]
    for j in prange(x_padded.shape[0]):
        xj = x_padded[j]
        for c in range(L):
            tables[j * L + c] = omega_padded[c] * xj


@_inline
def _word4(t, v):  # pragma: no cover - compiled
    """The contributions of the eight 4-bit codes of word ``v``, in two sums (``t``: the
    tables of the word's 8 columns, 16 entries each)."""
    a = ((t[v & uint64(15)] + t[uint64(16) + ((v >> uint64(4)) & uint64(15))])
         + (t[uint64(32) + ((v >> uint64(8)) & uint64(15))]
            + t[uint64(48) + ((v >> uint64(12)) & uint64(15))]))
    b = ((t[uint64(64) + ((v >> uint64(16)) & uint64(15))]
          + t[uint64(80) + ((v >> uint64(20)) & uint64(15))])
         + (t[uint64(96) + ((v >> uint64(24)) & uint64(15))]
            + t[uint64(112) + (v >> uint64(28))]))
    return a, b


@_inline
def _four_rows4(codes, wpr, tables, i, w0, w1, out):  # pragma: no cover - compiled
    """``out[i:i+4] +=`` the sums of words ``w0:w1`` of rows ``i`` to ``i+3`` (4-bit
    codes): four rows side by side share the tables' addresses and the loop."""
    ra = codes[uint64(i) * uint64(wpr):]
    rb = codes[uint64(i + 1) * uint64(wpr):]
    rc = codes[uint64(i + 2) * uint64(wpr):]
    rd = codes[uint64(i + 3) * uint64(wpr):]
    z = tables.dtype.type(0)
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = z
    w = uint64(w0)
    while w < w1:
        t = tables[w << uint64(7):]
        pa, qa = _word4(t, uint64(ra[w]))
        pb, qb = _word4(t, uint64(rb[w]))
        pc, qc = _word4(t, uint64(rc[w]))
        pd, qd = _word4(t, uint64(rd[w]))
        a0 += pa
        a1 += qa
        b0 += pb
        b1 += qb
        c0 += pc
        c1 += qc
        d0 += pd
        d1 += qd
        w += uint64(1)
    out[i] += a0 + a1
    out[i + 1] += b0 + b1
    out[i + 2] += c0 + c1
    out[i + 3] += d0 + d1


@_inline
def _one_row(codes, wpr, b, L, tables, i, w0, w1):  # pragma: no cover - compiled
    """The sum of words ``w0:w1`` of row ``i``."""
    per = 32 // b
    mask = uint64((1 << b) - 1)
    row = codes[uint64(i) * uint64(wpr):]
    z = tables.dtype.type(0)
    s0 = s1 = s2 = s3 = z
    w = uint64(w0)
    if b == 4:
        while w < w1:
            s0, s1 = _word4(tables[w << uint64(7):], uint64(row[w]))
            s2 += s0
            s3 += s1
            w += uint64(1)
        return s2 + s3
    if b == 8:
        stride = uint64(L)
        while w < w1:
            v = uint64(row[w])
            base = w * uint64(4 * L)
            s0 += tables[base + (v & uint64(255))]
            s1 += tables[base + stride + ((v >> uint64(8)) & uint64(255))]
            s2 += tables[base + uint64(2) * stride + ((v >> uint64(16)) & uint64(255))]
            s3 += tables[base + uint64(3) * stride + (v >> uint64(24))]
            w += uint64(1)
        return (s0 + s1) + (s2 + s3)
    while w < w1:
        v = uint64(row[w])
        base = w * uint64(per * L)
        for _ in range(0, per, 2):
            s0 += tables[base + (v & mask)]
            s1 += tables[base + uint64(L) + ((v >> uint64(b)) & mask)]
            v >>= uint64(2 * b)
            base += uint64(2 * L)
        w += uint64(1)
    return s0 + s1


@kernel(parallel=True)
def _matvec_tables(codes, wpr, b, L, tables, block, chunks, out):
    """Rows of a run walk ``block`` words at a time, so that those columns' tables (``L``
    entries each, 16 for 4-bit codes) stay in L1; 4-bit codes go four rows side by side
    with an unrolled inner loop."""
    for c in prange(chunks.shape[0] - 1):
        r0 = chunks[c]
        r1 = chunks[c + 1]
        for i in range(r0, r1):
            out[i] = 0
        for w0 in range(0, wpr, block):
            w1 = uint64(min(w0 + block, wpr))
            i = r0
            if b == 4:
                while i + 4 <= r1:
                    _four_rows4(codes, wpr, tables, i, w0, w1, out)
                    i += 4
            while i < r1:
                out[i] += _one_row(codes, wpr, b, L, tables, i, w0, w1)
                i += 1


_matvec_direct_serial = serial(_matvec_direct)
_matvec_tables_serial = serial(_matvec_tables)
_decode_tile_serial = serial(_decode_tile)
_column_tables_serial = serial(_column_tables)


class Palette(Format):
    """The codebook form: every element is a ``b``-bit code naming its value in ``Ω``
    (SPEC §9), as in GGML/llama.cpp quantization and Deep Compression's weight sharing.

    Arrays
    ------
    omega : (K,) float32 or float64
        ``Ω``, distinct values by decreasing count, ties by ascending value.
    codes : (m · ceil(n·b/32),) uint32
        The rank of every element in ``Ω``, ``b`` bits each, ``b`` the smallest of
        1, 2, 4, 8, 16, 32 holding ``K - 1``. Row ``i`` starts at word
        ``i · ceil(n·b/32)``; within a word, column ``j`` of the row occupies bits
        ``(j mod 32/b)·b`` upward (least significant first). The bits after a row's last
        code are 0.

    Storage (SPEC §9): ``m·n·b`` bits of codes (``b`` by the policy: ``ceil(log2 K)``
    ideal, the width above minimal, 32 fixed) plus ``K·value_bits``; the padding of rows
    to whole words is memory, not storage. Cost: ``m·n`` additions, multiplications,
    reads of ``codes``, of ``omega`` (a table lookup) and of ``x``.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.Palette.from_dense(np.array([[0., 2., 0., 3.], [2., 0., 2., 0.]]))
    >>> f.arrays()["omega"].tolist(), [bin(w) for w in f.arrays()["codes"]]
    ([0.0, 2.0, 3.0], ['0b10000100', '0b10001'])
    >>> f.storage().by_array
    {'omega': 96, 'codes': 16}
    >>> f @ np.ones(4)
    array([5., 4.])
    """

    name = "palette"
    array_names = ("omega", "codes")

    # --- conversion -------------------------------------------------------------------
    @classmethod
    def _encode(cls, W: np.ndarray) -> Palette:
        m, n = W.shape
        values = count_values(W)
        b = code_bits("minimal", values.K - 1)
        wpr = words_per_row(n, b)
        check_memory(4 * m * n + 4 * m * wpr, f"the palette codes of a {m}×{n} matrix")
        ranks = element_ranks(W, values)
        codes = np.empty(m * wpr, np.uint32)
        _pack(ranks, m, n, b, wpr, codes)
        return cls._trusted(W.shape, W.dtype, omega=values.omega, codes=codes)

    @property
    def code_bits(self) -> int:
        """Bits of one code in memory (the ``"minimal"`` width)."""
        return code_bits("minimal", self._arrays["omega"].size - 1)

    def _decode(self, table: np.ndarray, r0: int, r1: int, out: np.ndarray,
                c0: int = 0, c1: int | None = None) -> None:
        """``out = table[codes]`` for rows ``r0:r1`` and columns ``c0:c1`` (``c0`` on a
        word boundary)."""
        n = self.shape[1]
        c1 = n if c1 is None else c1
        b = self.code_bits
        parallel = use_threads((r1 - r0) * (c1 - c0))
        run = _decode_tile if parallel else _decode_tile_serial
        run(self._arrays["codes"], b, words_per_row(n, b), table, r0, r1, c0, c1, out)

    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        m, n = self.shape
        W = np.empty((m, n), self.dtype)
        if m and n:
            self._decode(self._arrays["omega"], 0, m, W)
        return W

    def _ranks(self) -> np.ndarray:
        """The code of every element, ``(m, n)`` int64 (``codes`` of the right length)."""
        m, n = self.shape
        b = self.code_bits
        out = np.empty((m, n), np.int64)
        if m and n:
            if b <= 16:
                self._decode(np.arange(1 << b, dtype=np.int64), 0, m, out)
            else:  # one code per word
                out[...] = self._arrays["codes"].reshape(m, -1)[:, :n]
        return out

    # --- invariants -------------------------------------------------------------------
    def _check_arrays(self) -> None:
        m, n = self.shape
        omega, codes = self._arrays["omega"], self._arrays["codes"]
        check_values("omega", omega, None, self.dtype)
        K = omega.size
        b = code_bits("minimal", K - 1)
        check_vector("codes", codes, m * words_per_row(n, b), "iu")
        if codes.size and (codes.min() < 0 or codes.max() > 0xFFFFFFFF):
            bad = int(np.argmax((codes < 0) | (codes > 0xFFFFFFFF)))
            raise ValueError(f"codes[{bad}] = {codes[bad]} is not a 32-bit word")
        self._arrays["codes"] = codes = codes.astype(np.uint32)
        ranks = self._ranks()
        if ranks.size and ranks.max() >= K:
            i, j = np.unravel_index(int(np.argmax(ranks >= K)), ranks.shape)
            raise ValueError(f"the code of element ({i}, {j}) is {ranks[i, j]}, out of "
                             f"range [0, {K})")
        repacked = np.empty_like(codes)
        if codes.size:
            _pack(ranks.reshape(-1).astype(np.uint32), m, n, b, words_per_row(n, b), repacked)
        if not np.array_equal(repacked, codes):
            raise ValueError("codes must be 0 after the last code of each row (word padding)")
        check_omega_counts(omega, np.bincount(ranks.reshape(-1), minlength=K), m * n)

    # --- products ---------------------------------------------------------------------
    def _row_work(self) -> np.ndarray:
        m, n = self.shape
        return np.arange(m + 1, dtype=np.int64) * max(n, 1)

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        m, n = self.shape
        b = self.code_bits
        omega = self._arrays["omega"].astype(x.dtype)
        codes = self._arrays["codes"]
        parallel, chunks = self._plan(1)
        wpr = words_per_row(n, b)
        if b > 8 or m < TABLE_MIN_ROWS:
            run = _matvec_direct if parallel else _matvec_direct_serial
            run(codes, n, b, wpr, omega, x, chunks, out)
            return
        per = 32 // b
        L = 16 if b == 4 else omega.size  # table entries per column (codes are < K)
        omega_padded = np.zeros(L, x.dtype)
        omega_padded[:omega.size] = omega
        x_padded = np.zeros(wpr * per, x.dtype)
        x_padded[:n] = x
        tables = np.empty(x_padded.size * L, x.dtype)
        (_column_tables if parallel else _column_tables_serial)(omega_padded, x_padded, tables)
        block = max(MIN_BLOCK_WORDS, TABLE_BLOCK_BYTES // (per * L * x.dtype.itemsize))
        run = _matvec_tables if parallel else _matvec_tables_serial
        run(codes, wpr, b, L, tables, block, chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        omega = self._arrays["omega"].astype(X.dtype)

        def decode_tile(r0, r1, c0, c1, tile):
            self._decode(omega, r0, r1, tile, c0, c1)

        tiled_matmat(decode_tile, self.shape, X, out)

    # --- accounting -------------------------------------------------------------------
    def _sizes(self) -> Sizes:
        return Sizes(self.shape, self.dtype, K=int(self._arrays["omega"].size))

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        return Sizes(stats.shape, stats.dtype, K=stats.K)

    @classmethod
    def _scratch_bytes_of(cls, stats) -> int:
        return 4 * stats.size  # the rank of every element (uint32) while encoding

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m, n = sizes.shape
        return [ArraySpec("omega", sizes.K, "value"),
                ArraySpec("codes", m * n, "code", max(sizes.K - 1, 0))]

    @classmethod
    def _memory_bytes_of(cls, spec: ArraySpec, sizes: Sizes) -> int:
        if spec.name != "codes":
            return super()._memory_bytes_of(spec, sizes)
        m, n = sizes.shape
        return 4 * m * words_per_row(n, code_bits("minimal", spec.max_entry))

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        m, n = sizes.shape
        return m * n, m * n, {"omega": m * n, "codes": m * n}, m * n
