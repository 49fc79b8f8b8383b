"""The codebook formats in the format anatomy: palette, Huffman and EFR, code by code (HTML).

Each view is drawn from what :mod:`dashboards.anatomy_bits` reads back out of the format's
stored words (``f.arrays()``), so it shows what the library stores, not what it should:
every cell's code is a box coloured by the rank in ``Ω`` of the value it names (the colours
of :func:`dashboards.anatomy_boxes.rank_color`, as in CER and CSER), with a tip saying which
cell and value it is; below, the stored words themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import lowentropy as le

from .anatomy_bits import (
    CodedRow,
    Piece,
    code_words,
    efr_mode_bits,
    efr_rows,
    huffman_rows,
    palette_ranks,
    rows_to_ranks,
    stream_bits,
)
from .anatomy_boxes import (
    PAD_COLOR,
    box,
    line,
    num,
    panel,
    rank_color,
    row_group,
    sub,
    word_box,
)
from .ui import format_color

__all__ = ["CODEBOOK_FORMATS", "palette_html", "huffman_html", "efr_html", "codebook_html",
           "CODEBOOK_INTRO"]

#: The formats this section shows, in order.
CODEBOOK_FORMATS = ("palette", "huffman", "efr")

#: What the section is about, in plain words.
CODEBOOK_INTRO = (
    "<div style='font-size:12px;color:#444;margin:0 0 6px 0'>CER and CSER store where the "
    "values are; the codebook formats store, for <i>every</i> cell, a short code naming its "
    "value in Ω. <b>palette</b>: fixed-width codes into the table of values (GGML/llama.cpp "
    "quantization, Deep Compression's weight sharing). <b>huffman</b>: the same codes "
    "entropy-coded, shorter for frequent values (Deep Compression's last stage). <b>efr</b>: "
    "this project's format near the entropy floor — each row takes Huffman codes or, per "
    "value, its columns coded as small gaps (Elias–Fano), whichever is shorter. Same colours "
    "as above: a code's colour is the value it names. Every box is read back from the stored "
    "words below it; hover for details.</div>")


def _value(omega: np.ndarray, k: int) -> str:
    return f"ω{sub(k)} = {num(omega[k])}"


def _omega_line(omega: np.ndarray, labels: Sequence[str] | None = None) -> str:
    return line("omega", f"K = {omega.size}", [
        box(num(v), f"omega[{k}] = {_value(omega, k)}" + (
            f": code {labels[k] or '(none: the only value)'}" if labels is not None else ""),
            rank_color(k), k if labels is None else (labels[k] or "—"))
        for k, v in enumerate(omega)])


def _cell_box(piece: Piece, i: int, omega: np.ndarray) -> str:
    j, k = piece.cols[0], int(piece.rank)
    shown = piece.bits or "·"
    tip = f"W[{i}, {j}] = {_value(omega, k)}: code {piece.bits or '(empty: K = 1)'}"
    return box(shown, tip, rank_color(k), j, ghost=not piece.bits, row=i)


# --- palette -------------------------------------------------------------------------------

def _palette_word(word: int, index: int, b: int, n: int, first: tuple[int, int],
                  omega: np.ndarray) -> str:
    """A ``codes`` word as its bits, cut into codes from the highest bits (last column)
    down to the lowest (first column); unused high bits are padding."""
    i, j0 = first
    per = 32 // b
    used = min(per, n - j0)
    bits = format(word, "032b")
    segments = [(bits[:32 - used * b], PAD_COLOR, "padding after the row's last code",
                 False)] if used < per else []
    for s in range(used - 1, -1, -1):
        chunk = bits[32 - (s + 1) * b:32 - s * b]
        k = int(chunk, 2)
        name = _value(omega, k) if k < omega.size else "out of range"
        segments.append((chunk, rank_color(k), f"W[{i}, {j0 + s}] = {name}: code {chunk}",
                         False))
    tip = (f"codes[{index}] = {word} = 0x{word:08x}: row {i}, columns {j0}…{j0 + used - 1}. "
           f"A 32-bit word holds {per} codes of {b} bits, the first column in the lowest "
           "bits: read it right to left.")
    return word_box(segments, tip, f"[{index}] 0x{word:08x}")


def palette_html(f: le.Format) -> str:
    """Palette's arrays: ``Ω`` with the code of each value, every cell's code by row, and
    the ``codes`` words they are cut from.

    Examples
    --------
    >>> from dashboards.anatomy_walk import SPEC_EXAMPLE
    >>> page = palette_html(le.Palette.from_dense(SPEC_EXAMPLE))
    >>> "W[0, 1] = ω₂ = 3: code 10" in page, page.count("class='le-word'")
    (True, 4)
    """
    a = f.arrays()
    omega, words = np.asarray(a["omega"]), np.asarray(a["codes"]).astype(np.int64)
    m, n = f.shape
    b, ranks = palette_ranks(a, f.shape)
    labels = [format(k, f"0{b}b") for k in range(omega.size)]
    per, wpr = 32 // b, words.size // max(m, 1)
    cells, stored = [], []
    for i in range(m):
        cells.append(line(f"row {i}", f"{n} codes × {b} bits", [
            _cell_box(Piece("code", labels[int(k)], 0, int(k), (j,)), i, omega)
            for j, k in enumerate(ranks[i])]))
        stored.append(row_group(i, [_palette_word(int(words[i * wpr + w]), i * wpr + w, b, n,
                                                  (i, w * per), omega) for w in range(wpr)]))
    lines = [_omega_line(omega, labels), *cells,
             line("codes", f"{words.size} words × 32 bits", stored)]
    head = (f"b = {b} bit{'s' if b > 1 else ''} per code, {m * n} codes (zeros included), "
            f"{per} per 32-bit word")
    return panel("palette", format_color("palette"), head, lines)


# --- huffman -------------------------------------------------------------------------------

def _code_table_lines(omega: np.ndarray, lengths: np.ndarray) -> list[str]:
    words = code_words(lengths)
    return [_omega_line(omega, words),
            line("lengths", "ℓ per value", [
                box(str(int(ell)), f"lengths[{k}] = {int(ell)}: {_value(omega, k)} has a "
                    f"{int(ell)}-bit code word {words[k] or '(none)'}", rank_color(k), k)
                for k, ell in enumerate(lengths)])]


def _stream_segments(rows: Sequence[CodedRow], omega: np.ndarray) -> list[tuple]:
    """Every code of the stream as ``(start, colour, tip, starts a row)``, in order."""
    out = []
    for r in rows:
        for q, p in enumerate(r.pieces):
            if p.kind == "code" and p.bits:
                out.append((p.start, rank_color(int(p.rank)),
                            f"row {r.row}: W[{r.row}, {p.cols[0]}] = "
                            f"{_value(omega, int(p.rank))}: code {p.bits}", q == 0))
    return out


def _bit_words(stream: str, width: int, segments: list[tuple], end: int) -> list[str]:
    """The stream cut into ``width``-bit words, each cut where a code starts."""
    marks = sorted(segments + [(end, PAD_COLOR, "padding after the last code", False)])
    out = []
    for w in range(len(stream) // width):
        lo, hi = w * width, (w + 1) * width
        inside = [s for s in range(len(marks)) if lo < marks[s][0] < hi]
        first = max([s for s in range(len(marks)) if marks[s][0] <= lo], default=None)
        cuts = ([first] if first is not None else []) + inside
        segs = []
        for q, s in enumerate(cuts):
            a = max(marks[s][0], lo)
            z = marks[cuts[q + 1]][0] if q + 1 < len(cuts) else hi
            segs.append((stream[a:z], marks[s][1], marks[s][2], marks[s][3] and a == marks[s][0]))
        value = int(stream[lo:hi], 2)
        out.append(word_box(segs, f"bits[{w}] = {value} = 0x{value:08x}: stream bits "
                            f"{lo}…{hi - 1}, the first bit the highest", f"[{w}]"))
    return out


def huffman_html(f: le.Format) -> str:
    """Huffman's arrays: ``Ω``, the canonical code, every cell's code by row, ``row_ptr``
    and the ``bits`` words the codes are read from.

    Examples
    --------
    >>> from dashboards.anatomy_walk import SPEC_EXAMPLE
    >>> page = huffman_html(le.Huffman.from_dense(SPEC_EXAMPLE))
    >>> "W[0, 1] = ω₂ = 3: code 110" in page, page.count("class='le-word'")
    (True, 3)
    """
    a = f.arrays()
    omega, lengths = np.asarray(a["omega"]), np.asarray(a["lengths"]).astype(np.int64)
    row_ptr = np.asarray(a["row_ptr"]).astype(np.int64)
    m, n = f.shape
    rows = huffman_rows(a, f.shape)
    cells = [line(f"row {r.row}", f"{r.used_bits} bits from bit {int(row_ptr[r.row])}",
                  [_cell_box(p, r.row, omega) for p in r.pieces]) for r in rows]
    ptrs = [box(str(int(v)), f"row_ptr[{i}] = {int(v)}: " + (
        f"row {i} is bits {int(v)}…{int(row_ptr[i + 1]) - 1}" if i < m else
        "the total of bits, Σ count·ℓ"), "#ffffff", i) for i, v in enumerate(row_ptr)]
    stream = stream_bits(a["bits"], 32, lsb_first=False)
    total = int(row_ptr[-1])
    lines = _code_table_lines(omega, lengths) + cells + [
        line("row_ptr", "bit offsets", ptrs),
        line("bits", f"{len(stream) // 32} words × 32 bits",
             _bit_words(stream, 32, _stream_segments(rows, omega), total))]
    head = (f"{total} bits of codes ({total / max(m * n, 1):.2f} per weight), code words "
            f"of {int(lengths.min())}–{int(lengths.max())} bits")
    return panel("huffman", format_color("huffman"), head, lines)


# --- EFR -----------------------------------------------------------------------------------

def _efr_piece(p: Piece, i: int, omega: np.ndarray) -> str:
    """One piece of an EFR row as a box (a cell's code, a count, an Elias–Fano part)."""
    if p.kind == "code":
        return _cell_box(p, i, omega)
    if p.kind == "top":
        return box(p.bits, f"gamma({p.value + 1}) = {p.bits}: the row lists groups for "
                   f"ranks 1…{p.value}", "#ffffff", f"r={p.value}", row=i)
    k = int(p.rank)
    value = _value(omega, k)
    if p.kind == "count":
        return box(p.bits, f"gamma({p.value + 1}) = {p.bits}: {p.value} column"
                   f"{'s' if p.value != 1 else ''} hold {value}", rank_color(k),
                   f"c={p.value}", ghost=p.value == 0, row=i)
    if p.kind == "low":
        return box(p.bits or "·", f"low bits of column {p.cols[0]} (W[{i}, {p.cols[0]}] = "
                   f"{value}): {p.value}, lowest bit first", rank_color(k), f"lo {p.value}",
                   row=i)
    return box(p.bits, f"high parts of columns {', '.join(map(str, p.cols))} ({value}) in "
               "unary: the t-th one at bit high + t", rank_color(k),
               "→" + ",".join(map(str, p.cols)), row=i)


def _efr_row_line(r: CodedRow, omega: np.ndarray, lengths: np.ndarray, n: int) -> str:
    """A row: its mode bit, pieces and padding; the note says why this mode."""
    ranks = rows_to_ranks([CodedRow(0, r.pieces, r.dense)], n)[0]
    dense_bits, sparse_bits = efr_mode_bits(ranks, lengths)
    mode = "dense" if r.dense else "sparse"
    other = f"sparse would take {sparse_bits}" if r.dense else \
        f"dense would take {dense_bits}"
    what = ("one Huffman code per cell" if r.dense else
            "per value: how many columns, then their Elias–Fano low and high parts")
    boxes = [box(r.pieces[0].bits, f"mode bit {r.pieces[0].bits}: {mode} — {what} ({r.used_bits}"
                 f" bits; {other})", "#ffffff", mode, row=r.row)]
    pad = 0
    for p in r.pieces[1:]:
        if p.kind == "pad":
            pad = len(p.bits)
            boxes.append(box(f"0×{pad}", f"{pad} bits of padding to a whole 64-bit word",
                             PAD_COLOR, "pad", ghost=True, row=r.row))
        else:
            boxes.append(_efr_piece(p, r.row, omega))
    words = (r.used_bits + pad) // 64
    return line(f"row {r.row}", f"{mode}: {r.used_bits} bits ({other}); {words} word"
                f"{'s' if words != 1 else ''}", boxes)


def efr_html(f: le.Format) -> str:
    """EFR's arrays: ``Ω``, the code lengths, every row's mode and pieces, ``row_ptr`` and
    the ``bits`` words (hex; the tips give their bits in stream order).

    Examples
    --------
    >>> from dashboards.anatomy_walk import SPEC_EXAMPLE
    >>> page = efr_html(le.EFR.from_dense(SPEC_EXAMPLE))
    >>> "dense: 24 bits (sparse would take 48); 1 word" in page
    True
    """
    a = f.arrays()
    omega, lengths = np.asarray(a["omega"]), np.asarray(a["lengths"]).astype(np.int64)
    row_ptr = np.asarray(a["row_ptr"]).astype(np.int64)
    words = np.asarray(a["bits"]).view(np.uint64)
    m, n = f.shape
    rows = efr_rows(a, f.shape)
    row_lines = [_efr_row_line(r, omega, lengths, n) for r in rows]
    ptrs = [box(str(int(v)), f"row_ptr[{i}] = {int(v)}: " + (
        f"row {i} is bits[{int(v)}:{int(row_ptr[i + 1])}]" if i < m else "the number of "
        "words"), "#ffffff", i) for i, v in enumerate(row_ptr)]
    stored = []
    for i in range(m):
        boxes = []
        for w in range(int(row_ptr[i]), int(row_ptr[i + 1])):
            v = int(words[w])
            bits = format(v, "064b")[::-1]
            boxes.append(box(f"{v:016x}", f"bits[{w}] = 0x{v:016x}; from its lowest bit up "
                             f"(stream order): {bits}", "#ffffff", w, row=i))
        stored.append(row_group(i, boxes))
    dense = sum(r.dense for r in rows)
    lines = _code_table_lines(omega, lengths) + row_lines + [
        line("row_ptr", "word offsets", ptrs),
        line("bits", f"{words.size} words × 64 bits", stored)]
    head = (f"{dense} row{'s' if dense != 1 else ''} dense (Huffman codes), {m - dense} "
            f"sparse (Elias–Fano per value); {words.size} words of 64 bits")
    foot = "" if dense < m else (
        "<div style='font-size:12px;color:#555'>Every row is dense here. A row with few "
        "entries other than ω<sub>0</sub> goes sparse: try a random matrix with a larger "
        "share of 0, or more columns.</div>")
    return panel("efr", format_color("efr"), head, lines, foot)


_VIEWS = {"palette": palette_html, "huffman": huffman_html, "efr": efr_html}


def codebook_html(formats: dict[str, le.Format]) -> str:
    """The section: palette, Huffman and EFR side by side (those in ``formats``).

    Examples
    --------
    >>> from dashboards.anatomy_walk import SPEC_EXAMPLE
    >>> page = codebook_html({n: le.FORMATS[n].from_dense(SPEC_EXAMPLE)
    ...                       for n in CODEBOOK_FORMATS})
    >>> [n for n in CODEBOOK_FORMATS if f"le-arrays le-{n}'" in page]
    ['palette', 'huffman', 'efr']
    """
    panels = "".join(_VIEWS[n](formats[n]) for n in CODEBOOK_FORMATS if n in formats)
    return (f"<div class='le-codebook'>{CODEBOOK_INTRO}<div style='display:flex;"
            f"flex-flow:row wrap'>{panels}</div></div>")
