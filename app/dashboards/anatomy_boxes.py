"""The pieces the format anatomy draws arrays with: colours by rank, boxes, labelled lines.

Every stored entry is a small box (:func:`box`) coloured by the rank in ``Ω`` of the value
it encodes (:func:`rank_color`), with a tip explaining it; a packed word is a box of
coloured bit segments (:func:`word_box`). :mod:`dashboards.format_anatomy` draws CER and
CSER with them, :mod:`dashboards.anatomy_codes` the codebook formats.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["OMEGA0_COLOR", "RANK_COLORS", "HIGHLIGHT", "PAD_COLOR", "rank_color", "num", "sub",
           "box", "row_label", "row_group", "line", "word_box", "panel"]

#: Colour of ``ω_0``: pale and neutral, since CER and CSER leave its entries implicit.
OMEGA0_COLOR = "#eeeeee"
#: Colours of the ranks 1, 2, … of ``Ω`` (pastel, black text stays readable; they cycle).
RANK_COLORS = ("#80b1d3", "#fdb462", "#b3de69", "#fb8072", "#bebada", "#8dd3c7", "#fccde5",
               "#ffed6f", "#bc80bd", "#ccebc5")
#: Outline of what the current step reads.
HIGHLIGHT = "#000000"
#: Background of bits that encode nothing (a word's padding).
PAD_COLOR = "#ffffff"
_SUB = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")


def rank_color(rank: int) -> str:
    """The colour of the value of rank ``rank`` in ``Ω`` (``ω_0`` pale grey).

    Examples
    --------
    >>> rank_color(0) == OMEGA0_COLOR, rank_color(1) == rank_color(1 + len(RANK_COLORS))
    (True, True)
    """
    return OMEGA0_COLOR if rank == 0 else RANK_COLORS[(rank - 1) % len(RANK_COLORS)]


def num(v: float) -> str:
    """A number, short (4 significant digits, ``-0`` shown as ``0``).

    Examples
    --------
    >>> num(-0.0), num(2.5), num(1 / 3)
    ('0', '2.5', '0.3333')
    """
    return f"{float(v) + 0.0:.4g}"


def sub(k: int) -> str:
    """An integer as subscript digits.

    Examples
    --------
    >>> "ω" + sub(12)
    'ω₁₂'
    """
    return str(k).translate(_SUB)


def box(text: str, tip: str, color: str, index: int | str | None = None, *,
        ghost: bool = False, hot: bool = False, row: int | None = None) -> str:
    """One stored entry: a box showing ``text``, tip ``tip``, a small ``index`` below.

    ``ghost`` draws it dashed (something that stores nothing), ``hot`` outlines it, and
    ``row`` underlines it dark or light by the parity of its row.

    Examples
    --------
    >>> b = box("7", "col_idx[0] = 7", "#ffffff", 0)
    >>> "title='col_idx[0] = 7'" in b and ">7<" in b
    True
    """
    style = [f"background:{color}", "display:inline-block", "min-width:22px",
             "margin:2px 1px", "padding:1px 3px", "text-align:center", "border-radius:3px",
             "font-family:monospace", "font-size:14px", "line-height:1.15",
             "border:1px dashed #666" if ghost else "border:1px solid #aaa"]
    if hot:
        style.append(f"outline:3px solid {HIGHLIGHT};outline-offset:0")
    if row is not None:  # alternate dark/light underline: which row an entry belongs to
        style.append(f"border-bottom:3px solid {'#444' if row % 2 == 0 else '#bbb'}")
    small = "" if index is None else (
        f"<div style='font-size:9px;color:#666;line-height:1'>{html.escape(str(index))}</div>")
    cls = "le-box le-hot" if hot else "le-box"
    return (f"<span class='{cls}' title='{html.escape(tip, quote=True)}' "
            f"style='{';'.join(style)}'>{html.escape(text)}{small}</span>")


def row_label(i: int, text: str | None = None) -> str:
    """The label ``r{i}`` that starts row ``i``'s entries in a line of boxes."""
    shown = f"r{i}" if text is None else text
    return (f"<span title='row {i}' style='display:inline-block;margin:2px 2px 2px 8px;"
            "padding-left:3px;border-left:2px solid #333;font-size:10px;color:#555;"
            f"vertical-align:top'>{html.escape(shown)}</span>")


def row_group(i: int, boxes: Sequence[str], text: str | None = None) -> str:
    """Row ``i``'s label and boxes, the label kept on the line of the first box.

    Examples
    --------
    >>> row_group(2, ["<b>a</b>", "<b>b</b>"]).count("white-space:nowrap")
    1
    """
    first = boxes[0] if boxes else ""
    return (f"<span style='white-space:nowrap'>{row_label(i, text)}{first}</span>"
            + "".join(boxes[1:]))


def line(name: str, note: str, boxes: Sequence[str]) -> str:
    """A table row: an array's name and a note on the left, its boxes on the right."""
    return (f"<tr><td style='vertical-align:top;padding:4px 8px 0 0;white-space:nowrap'>"
            f"<code style='font-size:13px'>{name}</code><br><span style='font-size:10px;"
            f"color:#777'>{html.escape(note)}</span></td><td>{''.join(boxes)}</td></tr>")


def word_box(segments: Sequence[tuple[str, str, str, bool]], tip: str, index: str) -> str:
    """A stored word as its bits, in segments ``(bits, colour, tip, starts a row)``, with
    ``index`` below; a segment that starts a row has a dark bar on its left.

    Examples
    --------
    >>> w = word_box([("00", PAD_COLOR, "padding", False), ("10", rank_color(2), "ω₂", True)],
    ...              "w", "0")
    >>> w.count("<span title="), w.count("border-left:2px solid #333")
    (2, 1)
    """
    parts = "".join(
        f"<span title='{html.escape(t, quote=True)}' style='background:{c};padding:0 1px;"
        f"border-right:1px solid #fff{';border-left:2px solid #333' if mark else ''}'>"
        f"{html.escape(bits)}</span>"
        for bits, c, t, mark in segments)
    return (f"<span class='le-word' title='{html.escape(tip, quote=True)}' style='display:"
            "inline-block;margin:2px 2px;padding:1px 2px;border:1px solid #888;"
            "border-radius:3px;font-family:monospace;font-size:12px;line-height:1.2;"
            f"text-align:center;background:#fafafa'>{parts}<div style='font-size:9px;"
            f"color:#666;line-height:1'>{html.escape(index)}</div></span>")


def panel(name: str, color: str, headline: str, lines: Sequence[str], foot: str = "") -> str:
    """A format's arrays: a coloured top border, a headline and a table of lines."""
    return (f"<div class='le-arrays le-{name}' style='border-top:4px solid {color};"
            "padding:4px 6px;margin:0 6px 6px 0;flex:1 1 380px;min-width:360px'>"
            f"<div style='font-size:15px;margin-bottom:2px'><b>{name.upper()}</b> — "
            f"{headline}</div><table style='border-collapse:collapse'>{''.join(lines)}"
            f"</table>{foot}</div>")
