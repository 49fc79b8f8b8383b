"""The codebook formats' stored words read back, code by code, for the format anatomy.

What :mod:`dashboards.anatomy_codes` draws comes from here, and everything here comes
from a format's ``arrays()`` (the stored words), never from the matrix: the palette codes
are cut out of the ``codes`` words, the Huffman codes read off the ``bits`` stream with
the canonical code of the stored ``lengths``, and EFR's rows parsed from its ``bits``
words (SPEC §9) into their pieces (mode bit, counts, Elias–Fano low and high parts,
Huffman codes, padding). A stream that does not parse raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowentropy.formats.huffman import canonical_codes

__all__ = ["Piece", "CodedRow", "stream_bits", "code_words", "palette_ranks",
           "huffman_rows", "efr_rows", "efr_mode_bits", "rows_to_ranks"]


@dataclass(frozen=True)
class Piece:
    """One item of a coded row: its bits in stream order and what they encode.

    ``kind`` is ``"code"`` (the code of one cell), ``"mode"`` (EFR's mode bit), ``"top"``
    (EFR's ``gamma(r + 1)``, the number of groups), ``"count"`` (``gamma(c + 1)``, a
    group's number of columns), ``"low"`` (a column's low bits), ``"high"`` (a group's
    unary field of high parts) or ``"pad"`` (padding to a whole word). ``rank`` is the
    rank in ``Ω`` it concerns (``None`` for mode, top and padding), ``cols`` the columns
    it gives, ``value`` the number it encodes, ``start`` its first bit in the stream.
    """

    kind: str
    bits: str
    start: int
    rank: int | None = None
    cols: tuple[int, ...] = ()
    value: int = 0


@dataclass(frozen=True)
class CodedRow:
    """A row as stored: its pieces, the bits they use and, for EFR, its mode."""

    row: int
    pieces: tuple[Piece, ...]
    dense: bool = True

    @property
    def used_bits(self) -> int:
        """Bits of the row's codes (padding excluded)."""
        return sum(len(p.bits) for p in self.pieces if p.kind != "pad")

    @property
    def bits(self) -> str:
        """The row's bits in stream order (padding included)."""
        return "".join(p.bits for p in self.pieces)


def stream_bits(words: np.ndarray, width: int, lsb_first: bool) -> str:
    """The bits of ``width``-bit ``words`` in stream order, as a string of 0 and 1.

    ``lsb_first``: a word's least significant bit comes first (EFR); otherwise its most
    significant (Huffman).

    Examples
    --------
    >>> stream_bits(np.array([6], np.uint32), 4, False), stream_bits(np.array([6]), 4, True)
    ('0110', '0110')
    >>> stream_bits(np.array([1, 8], np.uint64), 4, True)
    '10000001'
    """
    out = [format(int(v), f"0{width}b") for v in np.asarray(words)]
    return "".join(s[::-1] for s in out) if lsb_first else "".join(out)


def code_words(lengths: np.ndarray) -> list[str]:
    """The canonical code word of every rank, as bits (most significant first).

    Examples
    --------
    >>> code_words(np.array([1, 2, 3, 3]))
    ['0', '10', '110', '111']
    >>> code_words(np.array([0]))  # one value: nothing is coded
    ['']
    """
    lengths = np.asarray(lengths, np.int64)
    codes = canonical_codes(lengths)
    return [format(int(c), f"0{int(ell)}b") if ell else ""
            for c, ell in zip(codes, lengths, strict=True)]


def palette_ranks(arrays: dict, shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Code width ``b`` and the code of every cell, ``(m, n)``, cut out of palette's
    ``codes`` words (row ``i`` starts at word ``i·ceil(n·b/32)``, first code lowest).

    Examples
    --------
    >>> import lowentropy as le
    >>> f = le.Palette.from_dense(np.array([[0., 2., 0., 3.], [2., 0., 2., 0.]]))
    >>> b, ranks = palette_ranks(f.arrays(), f.shape)
    >>> b, ranks.tolist()
    (2, [[0, 1, 0, 2], [1, 0, 1, 0]])
    """
    m, n = shape
    K = np.asarray(arrays["omega"]).size
    b = next(w for w in (1, 2, 4, 8, 16, 32) if (1 << w) >= K)
    per = 32 // b
    wpr = -(-n * b // 32)
    words = np.asarray(arrays["codes"]).astype(np.int64)
    j = np.arange(n)
    ranks = np.zeros((m, n), np.int64)
    for i in range(m):
        ranks[i] = (words[i * wpr + j // per] >> ((j % per) * b)) & ((1 << b) - 1)
    return b, ranks


class _Reader:
    """Reads a string of bits from a position on, refusing to read past ``end``."""

    def __init__(self, bits: str, pos: int, end: int, row: int) -> None:
        self.bits, self.pos, self.end, self.row = bits, pos, end, row

    def take(self, count: int) -> str:
        if self.pos + count > self.end:
            raise ValueError(f"row {self.row}: the codes run past the row's end (bit "
                             f"{self.end})")
        out = self.bits[self.pos:self.pos + count]
        self.pos += count
        return out

    def code(self, table: dict[str, int], longest: int) -> str:
        """The next code word of a prefix code ``table`` (bits → rank)."""
        start = self.pos
        while self.pos - start <= longest:
            word = self.bits[start:self.pos]
            if word in table:
                return word
            self.take(1)
        raise ValueError(f"row {self.row}: bits {start}… start no code word")

    def gamma(self) -> tuple[str, int]:
        """The next Elias gamma code: ``z`` zeros, a one, ``z`` low bits (lowest first)."""
        start = self.pos
        while self.take(1) == "0":
            pass
        z = self.pos - start - 1
        low = self.take(z)
        return self.bits[start:self.pos], (1 << z) | int(low[::-1] or "0", 2)


def _cells(reader: _Reader, lengths: np.ndarray, n: int) -> list[Piece]:
    """``n`` canonical Huffman codes, one per cell."""
    words = code_words(lengths)
    table = {word: k for k, word in enumerate(words)}
    longest = max((len(c) for c in words), default=0)
    out = []
    for j in range(n):
        start = reader.pos
        word = reader.code(table, longest)
        out.append(Piece("code", word, start, table[word], (j,), table[word]))
    return out


def huffman_rows(arrays: dict, shape: tuple[int, int]) -> list[CodedRow]:
    """Every row of a Huffman matrix, decoded from ``bits`` between its ``row_ptr`` bits.

    Examples
    --------
    >>> import lowentropy as le
    >>> from dashboards.anatomy_walk import SPEC_EXAMPLE
    >>> rows = huffman_rows(le.Huffman.from_dense(SPEC_EXAMPLE).arrays(), (4, 12))
    >>> " ".join(p.bits for p in rows[0].pieces)  # SPEC §9's worked example
    '0 110 0 111 10 0 0 111 110 10 0 10'
    """
    m, n = shape
    row_ptr = np.asarray(arrays["row_ptr"]).astype(np.int64)
    lengths = np.asarray(arrays["lengths"]).astype(np.int64)
    stream = stream_bits(arrays["bits"], 32, lsb_first=False)
    rows = []
    for i in range(m):
        reader = _Reader(stream, int(row_ptr[i]), int(row_ptr[i + 1]), i)
        cells = _cells(reader, lengths, n)
        if reader.pos != reader.end:
            raise ValueError(f"row {i}: its codes end at bit {reader.pos}, row_ptr says "
                             f"{reader.end}")
        rows.append(CodedRow(i, tuple(cells)))
    return rows


def _ef_lows(reader: _Reader, c: int, n: int) -> tuple[int, list[tuple[int, str, int]]]:
    """A group's ``c`` low parts: ``L`` and ``(start, bits, value)`` of each."""
    low_bits = (n // c).bit_length()
    lows = []
    for _ in range(c):
        start = reader.pos
        bits = reader.take(low_bits)
        lows.append((start, bits, int(bits[::-1] or "0", 2)))
    return low_bits, lows


def _ef_high(reader: _Reader, k: int, n: int, low_bits: int,
             lows: list[tuple[int, str, int]]) -> tuple[list[Piece], Piece]:
    """A group's unary high field, after its low parts: the low parts' pieces (with their
    columns) and the field's piece."""
    c = len(lows)
    start = reader.pos
    field = reader.take(c + ((n - 1) >> low_bits))
    ones = [p for p, bit in enumerate(field) if bit == "1"]
    if len(ones) != c:
        raise ValueError(f"row {reader.row}: a high field of {len(ones)} ones for {c} columns")
    cols = [((p - t) << low_bits) | low
            for t, (p, (_, _, low)) in enumerate(zip(ones, lows, strict=True))]
    if cols != sorted(set(cols)) or cols[-1] >= n:
        raise ValueError(f"row {reader.row}: columns {cols} are not ascending below {n}")
    low_pieces = [Piece("low", bits, s, k, (col,), low)
                  for (s, bits, low), col in zip(lows, cols, strict=True)]
    return low_pieces, Piece("high", field, start, k, tuple(cols), len(ones))


def _sparse(reader: _Reader, n: int) -> list[Piece]:
    """A sparse EFR row after its mode bit: ``gamma(r + 1)``, the groups' ``gamma(c + 1)``
    for ranks ``1..r``, then every non-empty group's low parts, then every one's high
    field."""
    start = reader.pos
    bits, top = reader.gamma()
    out = [Piece("top", bits, start, None, (), top - 1)]
    counts = []
    for k in range(1, top):
        start = reader.pos
        bits, c = reader.gamma()
        out.append(Piece("count", bits, start, k, (), c - 1))
        counts.append((k, c - 1))
    groups = [(k, *_ef_lows(reader, c, n)) for k, c in counts if c > 0]
    highs = []
    for k, low_bits, lows in groups:
        low_pieces, high = _ef_high(reader, k, n, low_bits, lows)
        out += low_pieces
        highs.append(high)
    return out + highs


def efr_rows(arrays: dict, shape: tuple[int, int]) -> list[CodedRow]:
    """Every row of an EFR matrix, parsed from its ``bits`` words (``row_ptr`` in words).

    Examples
    --------
    >>> import lowentropy as le
    >>> W = np.zeros((2, 1000)); W[0, [5, 17, 400]] = 1; W[0, 700] = 2; W[1, 999] = 2
    >>> rows = efr_rows(le.EFR.from_dense(W).arrays(), W.shape)
    >>> " ".join(p.bits for p in rows[1].pieces if p.kind != "pad")  # SPEC §9's case
    '0 011 1 010 1110011111 1'
    >>> [p.cols for p in rows[0].pieces if p.kind == "high"]
    [(5, 17, 400), (700,)]
    """
    m, n = shape
    row_ptr = np.asarray(arrays["row_ptr"]).astype(np.int64)
    lengths = np.asarray(arrays["lengths"]).astype(np.int64)
    stream = stream_bits(np.asarray(arrays["bits"]).view(np.uint64), 64, lsb_first=True)
    rows = []
    for i in range(m):
        start, end = 64 * int(row_ptr[i]), 64 * int(row_ptr[i + 1])
        reader = _Reader(stream, start, end, i)
        mode = reader.take(1)
        pieces = [Piece("mode", mode, start)]
        pieces += _cells(reader, lengths, n) if mode == "1" else _sparse(reader, n)
        if reader.pos < end:
            pad_start = reader.pos
            pad = reader.take(end - pad_start)
            if "1" in pad:
                raise ValueError(f"row {i}: its padding holds ones")
            pieces.append(Piece("pad", pad, pad_start))
        rows.append(CodedRow(i, tuple(pieces), dense=mode == "1"))
    return rows


def rows_to_ranks(rows: list[CodedRow], n: int) -> np.ndarray:
    """The rank of every cell from decoded rows (cells a sparse row does not list: 0).

    Examples
    --------
    >>> rows_to_ranks([CodedRow(0, (Piece("high", "1", 0, 2, (1,)),), dense=False)], 3)
    array([[0, 2, 0]])
    """
    ranks = np.zeros((len(rows), n), np.int64)
    for r in rows:
        for p in r.pieces:
            if p.kind in ("code", "high"):
                ranks[r.row, list(p.cols)] = p.rank
    return ranks


def _gamma_bits(v: int) -> int:
    return 2 * (v.bit_length() - 1) + 1


def efr_mode_bits(ranks: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """Bits a row would take dense and sparse (mode bit included), from its ranks: dense
    ``1 + Σ ℓ_k``; sparse ``1 + gamma(r + 1) + Σ_k gamma(c_k + 1) + Σ_{c_k > 0} EF(c_k)``.

    Examples
    --------
    >>> efr_mode_bits(np.array([0, 3, 0, 2, 1, 0, 0, 2, 3, 1, 0, 1]), np.array([1, 2, 3, 3]))
    (24, 48)
    """
    ranks = np.asarray(ranks, np.int64)
    lengths = np.asarray(lengths, np.int64)
    n = ranks.size
    dense = 1 + int(lengths[ranks].sum()) if n else 1
    counts = np.bincount(ranks, minlength=lengths.size)
    top = int(np.flatnonzero(counts)[-1]) if n and ranks.max() > 0 else 0
    sparse = 1 + _gamma_bits(top + 1)
    for c in counts[1:top + 1].tolist():
        sparse += _gamma_bits(c + 1)
        if c:
            low = (n // c).bit_length()
            sparse += c * low + c + ((n - 1) >> low)
    return dense, sparse
