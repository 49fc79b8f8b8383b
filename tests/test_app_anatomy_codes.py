"""The format anatomy's codebook section: palette, Huffman and EFR read back from their
stored words, against the matrix they encode (what the boxes show) and the stored streams
(what the boxes are cut from)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from dashboards import anatomy_bits, anatomy_boxes, anatomy_codes
from dashboards.anatomy_bits import (
    efr_rows,
    huffman_rows,
    palette_ranks,
    rows_to_ranks,
    stream_bits,
)
from dashboards.anatomy_codes import codebook_html, efr_html, huffman_html, palette_html
from dashboards.anatomy_walk import SPEC_EXAMPLE, SPEC_PADDING_EXAMPLE, random_matrix
from dashboards.format_anatomy import FormatAnatomy
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import low_entropy_matrices

import lowentropy as le

few = settings(max_examples=30, deadline=None)
small = low_entropy_matrices(min_rows=1, min_cols=1, max_rows=6, max_cols=14, max_levels=5)
_DIGITS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_CELL = re.compile(r"class='le-box' title='W\[(\d+), (\d+)\] = ω([₀-₉]+) = [^:]*: "
                   r"code ?([01]*)")


def ranks_in_omega(W: np.ndarray) -> np.ndarray:
    """The rank of every cell's value in Ω, with Ω from the statistics (not the format)."""
    omega = le.stats(W).omega
    rank = {float(v) + 0.0: k for k, v in enumerate(omega)}
    return np.vectorize(lambda v: rank[float(v) + 0.0], otypes=[np.int64])(W)


def shown_cells(page: str, shape: tuple[int, int]) -> tuple[np.ndarray, dict]:
    """Rank and code bits of every cell box (``le-box`` with a ``W[i, j]`` tip) of a view."""
    ranks = np.full(shape, -1, np.int64)
    bits = {}
    for i, j, k, code in _CELL.findall(page):
        i, j = int(i), int(j)
        assert ranks[i, j] == -1, f"cell ({i}, {j}) shown twice"
        ranks[i, j] = int(k.translate(_DIGITS))
        bits[i, j] = code
    return ranks, bits


def word_texts(page: str) -> list[str]:
    """The bits of every ``le-word`` box, its segments joined."""
    words = re.findall(r"<span class='le-word'.*?'>(.*?)<div", page)
    return ["".join(re.findall(r">([01]*)</span>", w)) for w in words]


def encode(name: str, W: np.ndarray) -> le.Format:
    return le.FORMATS[name].from_dense(W)


# --- palette -------------------------------------------------------------------------------

def test_palette_on_the_worked_example_shows_spec_codes():
    f = encode("palette", SPEC_EXAMPLE)
    b, ranks = palette_ranks(f.arrays(), f.shape)
    assert b == 2
    assert ranks[0].tolist() == [0, 2, 0, 3, 1, 0, 0, 3, 2, 1, 0, 1]  # SPEC §9
    page = palette_html(f)
    shown, bits = shown_cells(page, f.shape)
    assert np.array_equal(shown, ranks_in_omega(SPEC_EXAMPLE))
    assert [bits[0, j] for j in range(4)] == ["00", "10", "00", "11"]


def check_palette(W: np.ndarray) -> None:
    f = encode("palette", W)
    a = f.arrays()
    expected = ranks_in_omega(W)
    b, ranks = palette_ranks(a, f.shape)
    assert np.array_equal(ranks, expected)
    page = palette_html(f)
    shown, bits = shown_cells(page, f.shape)
    assert np.array_equal(shown, expected)
    assert all(int(code, 2) == expected[ij] and len(code) == b for ij, code in bits.items())
    # the word boxes are the stored words, bit for bit, and hold the codes shown above
    words = np.asarray(a["codes"]).astype(np.int64)
    assert word_texts(page) == [format(int(v), "032b") for v in words]
    per, (m, n) = 32 // b, f.shape
    for i in range(m):
        row = "".join(bits[i, j] for j in range(n))
        wpr = words.size // m
        stored = "".join(format(int(v), "032b")[::-1] for v in words[i * wpr:(i + 1) * wpr])
        assert stored[:n * b] == "".join(c[::-1] for c in re.findall(f".{{{b}}}", row))
        assert set(stored[n * b:]) <= {"0"}
        assert wpr == -(-n // per)


@given(W=small)
@few
def test_palette_shows_every_cells_rank_and_the_stored_words(W):
    check_palette(W)


# --- huffman -------------------------------------------------------------------------------

def test_huffman_on_the_worked_example_shows_spec_codes():
    f = encode("huffman", SPEC_EXAMPLE)
    rows = huffman_rows(f.arrays(), f.shape)
    assert " ".join(p.bits for p in rows[0].pieces) == "0 110 0 111 10 0 0 111 110 10 0 10"
    assert [r.used_bits for r in rows] == [23, 18, 19, 19]  # row_ptr [0, 23, 41, 60, 79]
    page = huffman_html(f)
    assert all(f">{c}<" in page for c in ("0", "10", "110", "111"))
    assert np.array_equal(shown_cells(page, f.shape)[0], ranks_in_omega(SPEC_EXAMPLE))


def check_huffman(W: np.ndarray) -> None:
    f = encode("huffman", W)
    a = f.arrays()
    expected = ranks_in_omega(W)
    rows = huffman_rows(a, f.shape)
    assert np.array_equal(rows_to_ranks(rows, W.shape[1]), expected)
    page = huffman_html(f)
    shown, bits = shown_cells(page, f.shape)
    assert np.array_equal(shown, expected)
    # the codes shown row by row concatenate to the stored stream; row_ptr bounds them
    stream = stream_bits(a["bits"], 32, lsb_first=False)
    row_ptr = np.asarray(a["row_ptr"])
    shown_rows = ["".join(bits[i, j] for j in range(W.shape[1])) for i in range(W.shape[0])]
    total = int(row_ptr[-1])
    assert "".join(shown_rows) == stream[:total]
    assert set(stream[total:]) <= {"0"}
    assert [len(r) for r in shown_rows] == np.diff(row_ptr).tolist()
    assert "".join(word_texts(page)) == stream


@given(W=small)
@few
def test_huffman_shows_every_cells_rank_and_the_stored_stream(W):
    check_huffman(W)


# --- EFR -----------------------------------------------------------------------------------

def gamma_bits(v: int) -> int:
    return 2 * int(np.floor(np.log2(v))) + 1


def efr_costs(ranks: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """A row's bits dense and sparse by SPEC §9's definitions, from the matrix's ranks."""
    n = ranks.size
    counts = np.bincount(ranks, minlength=lengths.size)
    dense = 1 + sum(int(lengths[k]) * int(c) for k, c in enumerate(counts))
    r = max([k for k in range(1, counts.size) if counts[k]], default=0)
    sparse = 1 + gamma_bits(r + 1)
    for k in range(1, r + 1):
        c = int(counts[k])
        sparse += gamma_bits(c + 1)
        if c:
            low = (n // c).bit_length()
            sparse += c * low + c + ((n - 1) >> low)
    return dense, sparse


def check_efr(W: np.ndarray) -> list[bool]:
    f = encode("efr", W)
    a = f.arrays()
    expected = ranks_in_omega(W)
    rows = efr_rows(a, f.shape)
    assert np.array_equal(rows_to_ranks(rows, W.shape[1]), expected)
    row_ptr = np.asarray(a["row_ptr"])
    stream = stream_bits(np.asarray(a["bits"]), 64, lsb_first=True)
    lengths = np.asarray(a["lengths"]).astype(np.int64)
    page = efr_html(f)
    for r in rows:
        lo, hi = 64 * int(row_ptr[r.row]), 64 * int(row_ptr[r.row + 1])
        assert r.bits == stream[lo:hi]  # the pieces shown are the row's stored bits
        dense, sparse = efr_costs(expected[r.row], lengths)
        assert r.dense == (dense < sparse)
        assert r.used_bits == (dense if r.dense else sparse)
        assert hi - lo == 64 * -(-r.used_bits // 64)  # row_ptr: whole words, no more
        mode = "dense" if r.dense else "sparse"
        assert f"<code style='font-size:13px'>row {r.row}</code>" in page
        assert f"{mode}: {r.used_bits} bits" in page
    if f.shape[1]:
        assert np.array_equal(shown_cells(page, f.shape)[0][[r.dense for r in rows]],
                              expected[[r.dense for r in rows]])
    return [r.dense for r in rows]


def test_efr_on_the_worked_example_is_dense_as_in_the_spec():
    f = encode("efr", SPEC_EXAMPLE)
    rows = efr_rows(f.arrays(), f.shape)
    assert all(r.dense for r in rows)
    assert " ".join(p.bits for p in rows[0].pieces if p.kind != "pad") == \
        "1 0 110 0 111 10 0 0 111 110 10 0 10"
    assert check_efr(SPEC_EXAMPLE) == [True] * 4
    assert "dense: 24 bits (sparse would take 48); 1 word" in efr_html(f)


def test_efr_sparse_rows_show_counts_and_elias_fano_parts():
    W = np.zeros((2, 1000))
    W[0, [5, 17, 400]] = 1
    W[0, 700] = 2
    W[1, 999] = 2
    rows = efr_rows(encode("efr", W).arrays(), W.shape)
    assert " ".join(p.bits for p in rows[0].pieces if p.kind != "pad") == \
        "0 011 00100 010 101000000 100010000 000010011 0011110101 1110 1"  # SPEC §9
    assert [(p.kind, p.value) for p in rows[0].pieces[1:5]] == [("top", 2), ("count", 3),
                                                                 ("count", 1), ("low", 5)]
    assert check_efr(W) == [False, False]


def test_a_mixed_matrix_shows_both_modes():
    W = random_matrix(6, 24, values=3, zero_share=0.5, seed=3)
    W[0] = 0
    W[0, 7] = W[1:][W[1:] != 0][0]  # one entry: sparse
    modes = check_efr(W)
    assert True in modes and False in modes
    page = efr_html(encode("efr", W))
    assert "c=1" in page and "mode bit 0: sparse" in page and "mode bit 1: dense" in page


@given(W=small)
@few
def test_efr_rows_match_the_matrix_and_the_stored_row_ptr(W):
    check_efr(W)


@given(seed=st.integers(0, 2**16), zero_share=st.sampled_from([0.5, 0.8, 0.95]))
@settings(max_examples=15, deadline=None)
def test_random_anatomy_matrices_in_all_three_views(seed, zero_share):
    W = random_matrix(5, 24, values=4, zero_share=zero_share, seed=seed)
    check_palette(W)
    check_huffman(W)
    check_efr(W)


@pytest.mark.parametrize("W", [np.full((2, 3), 5.0), np.array([[-0.0, 0.0, 1.0]]),
                               np.arange(16 * 24, dtype=np.float32).reshape(16, 24),
                               np.eye(16, 24) * 3 - 1],
                         ids=["one value", "negative zero", "384 values", "non-zero ω0"])
def test_edge_matrices(W):
    check_palette(W)
    check_huffman(W)
    check_efr(W)


# --- streams that do not parse -------------------------------------------------------------

def test_a_bad_stream_is_refused_with_a_reason():
    a = dict(encode("huffman", SPEC_EXAMPLE).arrays())
    a["row_ptr"] = np.array([0, 22, 41, 60, 79])
    with pytest.raises(ValueError, match="row 0"):
        huffman_rows(a, (4, 12))
    e = dict(encode("efr", SPEC_EXAMPLE).arrays())
    e["bits"] = np.asarray(e["bits"]).copy()
    e["bits"][1] |= np.uint64(1 << 63)  # a one in row 1's padding
    with pytest.raises(ValueError, match="row 1: its padding"):
        efr_rows(e, (4, 12))


# --- the dashboard -------------------------------------------------------------------------

def panels(page: str) -> list[str]:
    return re.findall(r"le-arrays le-(\w+)'", page)


def test_the_dashboard_shows_the_codebook_section_and_follows_the_matrix():
    d = FormatAnatomy()
    assert panels(d.codebook.value) == ["palette", "huffman", "efr"]
    assert d.codebook.value == codebook_html(d.formats)
    spec = d.codebook.value
    W = random_matrix(3, 8, values=2, zero_share=0.5, seed=5)
    d.set_matrix(W)
    assert d.codebook.value != spec
    assert np.array_equal(shown_cells(palette_html(d.formats["palette"]), W.shape)[0],
                          ranks_in_omega(W))
    assert codebook_html({n: encode(n, W) for n in le.FORMATS}) == d.codebook.value
    d.source.value = "padding"
    assert np.array_equal(d.matrix, SPEC_PADDING_EXAMPLE)
    assert d.codebook.value == codebook_html({n: encode(n, SPEC_PADDING_EXAMPLE)
                                              for n in le.FORMATS})
    d.source.value = "random"
    assert d.codebook.value == codebook_html({n: encode(n, d.matrix) for n in le.FORMATS})


def test_the_page_names_the_codebook_formats_in_plain_words():
    d = FormatAnatomy()
    page = " ".join(_html_of(d.widget))
    for words in ("GGML/llama.cpp", "weight sharing", "last stage", "entropy floor",
                  "palette", "Huffman", "EFR"):
        assert words in page, words


def _html_of(widget) -> list[str]:
    out, todo = [], [widget]
    while todo:
        w = todo.pop()
        value = getattr(w, "value", None)
        if isinstance(value, str) and "<" in value:
            out.append(value)
        todo.extend(getattr(w, "children", ()))
    return out


def test_the_storage_table_counts_every_format():
    d = FormatAnatomy()
    for name in le.FORMATS:
        assert f">{name.upper()}</th>" in d.storage.value
    names = re.findall(r"<code>(\w+)</code></td>", d.storage.value)
    arrays = {a for f in d.formats.values() for a in f.arrays()}
    assert sorted(names) == sorted(arrays)  # one line per array name, shared or not


def test_the_codebook_modules_use_only_the_public_api():
    for module in (anatomy_bits, anatomy_boxes, anatomy_codes):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("lowentropy"):
                    assert not any(p.startswith("_") for p in name.split(".")), name
