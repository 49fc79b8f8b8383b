"""Format anatomy: how the formats store a small matrix and how CER and CSER compute ``y = W x``.

A teaching dashboard (``app/format_anatomy.ipynb``). Pick a small matrix (SPEC §2's worked
example, its padding case, a random low-entropy one or one typed in); see it as a grid
coloured by the rank of each value in ``Ω``, the arrays of CER and CSER coloured the same
way, the codes of the codebook formats (palette, Huffman, EFR) read back from their stored
words, the storage of every format next to the entropy, and walk through the dot product
group by group, with the additions and multiplications counted against ``f.op_counts()``.
The step logic is :mod:`dashboards.anatomy_walk`, the codebook views
:mod:`dashboards.anatomy_codes`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

import lowentropy as le

from .anatomy_boxes import HIGHLIGHT as _HIGHLIGHT
from .anatomy_boxes import OMEGA0_COLOR, RANK_COLORS, rank_color
from .anatomy_boxes import box as _box
from .anatomy_boxes import line as _line
from .anatomy_boxes import num as _num
from .anatomy_boxes import row_label as _row_label
from .anatomy_boxes import sub as _sub
from .anatomy_codes import codebook_html
from .anatomy_walk import (
    MAX_COLS,
    MAX_ROWS,
    SPEC_EXAMPLE,
    SPEC_PADDING_EXAMPLE,
    Group,
    Step,
    build_steps,
    groups_of,
    parse_matrix,
    progress,
    random_matrix,
)
from .controls import AccountingControls
from .ui import Messages, add_trace, card, dashboard_page, figure_widget, format_color, main_layout

__all__ = ["FormatAnatomy", "OMEGA0_COLOR", "RANK_COLORS", "rank_color", "arrays_html",
           "storage_html", "describe_step", "matrix_text"]

_SOURCES = [("SPEC worked example", "spec"), ("SPEC padding case", "padding"),
            ("random", "random"), ("typed in", "typed")]
_ARRAY_ORDER = ("values", "omega", "col_idx", "omega_idx", "omega_ptr", "row_ptr")


def matrix_text(W: np.ndarray) -> str:
    """A matrix as text that :func:`dashboards.anatomy_walk.parse_matrix` reads back.

    Examples
    --------
    >>> print(matrix_text(np.array([[0., 2.5], [3., 0.]])))
    0 2.5
    3 0
    """
    return "\n".join(" ".join(_num(v) for v in row) for row in np.asarray(W))


# --- the arrays, coloured ------------------------------------------------------------------

def arrays_html(f: le.Format, step: Step | None = None) -> str:
    """The arrays of a CER or CSER matrix as coloured boxes (HTML).

    Every entry has the colour of the value it encodes (:func:`rank_color`): ``omega`` by
    rank, ``col_idx`` by its group's value, ``omega_idx`` and ``omega_ptr`` by their
    group's value. Entries of ``col_idx``, ``omega_idx`` and ``omega_ptr`` are split by
    row (labels ``r0``, ``r1``, …) and underlined dark/light by row; CER's empty padding
    groups appear as dashed ``∅`` boxes in ``col_idx`` (they store nothing) and dashed
    ``omega_ptr`` entries. The entries that ``step`` reads are outlined.

    Examples
    --------
    >>> page = arrays_html(le.CER.from_dense(SPEC_PADDING_EXAMPLE))
    >>> page.count("∅")  # row 1 holds 3 and 2 but no 4: one padding group
    1
    """
    a = {k: np.asarray(v) for k, v in f.arrays().items()}
    omega, col_idx, row_ptr = a["omega"], a["col_idx"], a["row_ptr"]
    omega_ptr, omega_idx = a["omega_ptr"], a.get("omega_idx")
    groups = groups_of(a)
    m = row_ptr.size - 1
    G, N, K = len(groups), col_idx.size, omega.size
    group = step.group if step is not None else None
    row = step.row if step is not None else -2
    hot_rank = (group.rank if group is not None else 0) if step is not None else -1

    lines = []
    lines.append(_line("omega", f"K = {K}", [
        _box(_num(v), f"omega[{k}] = ω{_sub(k)} = {_num(v)}"
             + (" (most frequent: its entries are implicit)" if k == 0 else ""),
             rank_color(k), k, hot=k == hot_rank)
        for k, v in enumerate(omega)]))

    by_row: list[list[Group]] = [[] for _ in range(m)]
    for g in groups:
        by_row[g.row].append(g)
    cols, ptrs, idxs = [], [], []
    for i in range(m):
        for part in (cols, ptrs, idxs):
            part.append(_row_label(i))
        for g in by_row[i]:
            hot = group is not None and g.index == group.index
            color = rank_color(g.rank)
            value = _num(omega[g.rank])
            if g.empty:
                cols.append(_box("∅", f"group {g} of row {i}: empty (CER padding for "
                                 f"ω{_sub(g.rank)} = {value}, absent from the row)", color,
                                 ghost=True, hot=hot, row=i))
            for p in range(g.start, g.stop):
                cols.append(_box(str(int(col_idx[p])), f"col_idx[{p}] = {int(col_idx[p])}: "
                                 f"W[{i}, {int(col_idx[p])}] = ω{_sub(g.rank)} = {value} "
                                 f"(group {g.index})", color, p, hot=hot, row=i))
            cols.append("<span style='display:inline-block;width:5px'></span>")
            ptrs.append(_box(str(int(omega_ptr[g.index])),
                             f"omega_ptr[{g.index}] = {int(omega_ptr[g.index])}: group "
                             f"{g.index} (row {i}, ω{_sub(g.rank)} = {value}) is col_idx["
                             f"{g.start}:{g.stop}]" + (" — empty" if g.empty else ""),
                             color, g.index, ghost=g.empty, hot=hot, row=i))
            if omega_idx is not None:
                idxs.append(_box(str(int(omega_idx[g.index])),
                                 f"omega_idx[{g.index}] = {g.rank}: group {g.index} holds "
                                 f"ω{_sub(g.rank)} = {value}", color, g.index, hot=hot,
                                 row=i))
    end_hot = group is not None and group.index == G - 1
    ptrs.append(_row_label(m).replace(f">r{m}<", ">end<"))
    ptrs.append(_box(str(int(omega_ptr[G])), f"omega_ptr[{G}] = N = {N}: end of the last "
                     "group", "#ffffff", G, hot=end_hot))
    lines.append(_line("col_idx", f"N = {N}", cols))
    if omega_idx is not None:
        lines.append(_line("omega_idx", f"G = {G}", idxs))
    lines.append(_line("omega_ptr", f"G + 1 = {G + 1}", ptrs))
    lines.append(_line("row_ptr", f"m + 1 = {m + 1}", [
        _box(str(int(v)), f"row_ptr[{i}] = {int(v)}" + (
            f": row {i} owns groups {int(v)}…{int(row_ptr[i + 1]) - 1} "
            f"({int(row_ptr[i + 1] - v)} of them)" if i < m else ": G, the end"),
            "#ffffff", i, hot=i in (row, row + 1) and step is not None and step.row >= 0,
            row=i if i < m else None)
        for i, v in enumerate(row_ptr)]))
    name = f.name.upper()
    color = format_color(f.name)
    return (f"<div class='le-arrays le-{f.name}' style='border-top:4px solid {color};"
            "padding:4px 6px;margin:0 6px 6px 0'>"
            f"<div style='font-size:15px;margin-bottom:2px'><b style='color:{color}'>{name}"
            f"</b> — {G} groups, {N} stored entries, {K} values in Ω</div>"
            f"<table style='border-collapse:collapse'>{''.join(lines)}</table></div>")


_LEGEND = (
    "<div style='font-size:12px;color:#444;margin:0 0 6px 0'>Colour = the value an entry "
    "encodes (its rank in Ω; ω<sub>0</sub> pale: CER and CSER store nothing for its "
    "cells). <b>r0, r1, …</b> and the dark/light underline: the row an entry belongs to "
    "(row_ptr splits the groups into rows). Dashed <b>∅</b>: an empty CER group, padding "
    "for a rank the row lacks. Small grey numbers: positions in the array. Outlined: "
    "what the current step reads. Hover an entry for its meaning. The codebook formats "
    "(palette, Huffman, EFR) store a code for every cell instead, shown in the section "
    "below.</div>")


def storage_html(formats: dict[str, le.Format], stats: le.Stats, policy: str = "minimal",
                 value_bits: int = 32) -> str:
    """A table: bits of every array of every format (``f.storage()``), totals, operations
    per product (``f.op_counts()``) and the entropy floor.

    Examples
    --------
    >>> fs = {n: F.from_dense(SPEC_EXAMPLE) for n, F in le.FORMATS.items()}
    >>> "1,536" in storage_html(fs, le.stats(SPEC_EXAMPLE))  # dense: 48 × 32 bits
    True
    """
    reports = {n: f.storage(policy, value_bits) for n, f in formats.items()}
    ops = {n: f.op_counts() for n, f in formats.items()}
    names = list(formats)
    arrays = [a for a in _ARRAY_ORDER if any(a in r.by_array for r in reports.values())]
    arrays = list(dict.fromkeys(arrays + [a for r in reports.values() for a in r.by_array]))
    cell = "padding:3px 10px;text-align:right;border-bottom:1px solid #ddd"
    head = "".join(
        f"<th style='{cell};border-bottom:4px solid {format_color(n)};font-size:15px'>"
        f"{n.upper()}</th>"
        for n in names)
    rows = []
    for a in arrays:
        tds = []
        for n in names:
            r = reports[n]
            if a in r.by_array:
                bits, per = r.by_array[a], r.bits_per_entry.get(a, 0)
                length = bits // per if per else 0
                tds.append(f"<td style='{cell}' title='{length} entries × {per} bits'>"
                           f"{bits:,}<span style='color:#888;font-size:11px'> = {length}×"
                           f"{per}</span></td>")
            else:
                tds.append(f"<td style='{cell};color:#bbb'>—</td>")
        rows.append(f"<tr><td style='{cell};text-align:left'><code>{a}</code></td>"
                    f"{''.join(tds)}</tr>")
    dense_bits = stats.size * value_bits
    floor = stats.entropy_floor_bits(value_bits)
    total = "".join(f"<td style='{cell}'><b>{reports[n].total_bits:,}</b></td>" for n in names)
    ratio = "".join(
        f"<td style='{cell}'>{reports[n].total_bits / dense_bits:.0%}</td>" if dense_bits
        else f"<td style='{cell}'>—</td>" for n in names)
    per_weight = "".join(
        f"<td style='{cell}'>{reports[n].bits_per_weight:.2f}</td>" for n in names)
    adds = "".join(f"<td style='{cell}'>{ops[n].adds:g}</td>" for n in names)
    mults = "".join(f"<td style='{cell}'>{ops[n].mults:g}</td>" for n in names)
    label = f"style='{cell};text-align:left'"
    rows += [
        f"<tr><td {label}><b>total bits</b></td>{total}</tr>",
        f"<tr><td {label}>of dense</td>{ratio}</tr>",
        f"<tr><td {label}>bits per weight</td>{per_weight}</tr>",
        f"<tr><td {label}>additions per W x</td>{adds}</tr>",
        f"<tr><td {label}>multiplications per W x</td>{mults}</tr>",
    ]
    m, n = stats.shape
    note = (f"Index bits: <b>{html.escape(policy)}</b>; values: {value_bits} bits. "
            f"Entropy H = <b>{stats.H:.4f}</b> bits per weight; entropy floor m·n·H + "
            f"K·{value_bits} = {m}·{n}·{stats.H:.3f} + {stats.K}·{value_bits} = "
            f"<b>{floor:,.0f}</b> bits ({floor / dense_bits:.0%} of dense).") if dense_bits \
        else "Empty matrix."
    return (f"<div class='le-storage'><div style='font-size:15px;font-weight:600;"
            f"margin:4px 0'>Storage in bits per array (f.storage()) and operations "
            f"(f.op_counts())</div><table style='border-collapse:collapse;font-size:13px'>"
            f"<tr><th style='{cell};text-align:left'>array</th>{head}</tr>{''.join(rows)}"
            f"</table><div style='font-size:12px;color:#444;margin-top:4px'>{note}</div>"
            "</div>")


# --- the walk, in words --------------------------------------------------------------------

def _terms(terms: Sequence[float], columns: Sequence[int], limit: int = 8) -> tuple[str, str]:
    names = [f"x<sub>{j}</sub>" for j in columns]
    values = [_num(t) for t in terms]
    if len(names) > limit:
        names = names[:limit - 2] + ["…", names[-1]]
        values = values[:limit - 2] + ["…", values[-1]]
    return " + ".join(names), " + ".join(values)


def describe_step(step: Step | None, count: int, total: int, fmt: str) -> str:
    """One step of the walk in words (HTML).

    Examples
    --------
    >>> steps = build_steps(le.CER.from_dense(SPEC_EXAMPLE).arrays(), np.ones(12))
    >>> "x<sub>4</sub> + x<sub>9</sub> + x<sub>11</sub>" in describe_step(steps[0], 1, 8, "cer")
    True
    """
    if step is None:
        if total == 0:
            return "Every entry is ω<sub>0</sub> = 0: nothing to compute, y = 0."
        return (f"Before the first step: y = 0. Press <b>Next</b> (or move the slider): "
                f"{fmt.upper()} computes y = W x in {total} steps, one per group.")
    head = f"<b>Step {count} of {total}</b> · "
    if step.kind == "offset":
        names, values = _terms(step.terms, step.columns)
        return (head + f"ω<sub>0</sub> = {_num(step.value)} ≠ 0, so first S = Σ x<sub>j</sub>"
                f" = {values} = <b>{_num(step.partial)}</b> ({len(step.terms)} additions), "
                f"then ω<sub>0</sub>·S = {_num(step.factor)} × {_num(step.partial)} = "
                f"<b>{_num(step.product)}</b> (1 multiplication). Every row starts from it.")
    i = step.row
    if step.kind == "row":
        return (head + f"row {i} starts at y<sub>{i}</sub> = ω<sub>0</sub>·S = "
                f"<b>{_num(step.product)}</b> (1 addition).")
    g = step.group
    k = g.rank
    where = (f"row {i}, group g = {g.index} = col_idx[{g.start}:{g.stop}], value "
             f"ω<sub>{k}</sub> = {_num(step.value)}: ")
    before = _num(step.y - step.product)
    plus = f"{'−' if step.product < 0 else '+'} {_num(abs(step.product))}"
    if g.empty:
        return (head + where + f"<b>empty</b> — CER's padding (row {i} holds no "
                f"{_num(step.value)}, but a value of higher rank). The sum is 0; the group "
                f"still costs 1 multiplication: (ω<sub>{k}</sub> − ω<sub>0</sub>) × 0 = 0, "
                f"and 1 addition: y<sub>{i}</sub> = {before} + 0 = <b>{_num(step.y)}</b>.")
    names, values = _terms(step.terms, step.columns)
    return (head + where + f"add {names} = {values} = <b>{_num(step.partial)}</b> "
            f"({len(step.terms)} addition{'s' if len(step.terms) != 1 else ''}); multiply once"
            f" by ω<sub>{k}</sub> − ω<sub>0</sub> = {_num(step.factor)} → "
            f"<b>{_num(step.product)}</b> (1 multiplication); y<sub>{i}</sub> = {before} {plus} = "
            f"<b>{_num(step.y)}</b> (1 addition).")


def _outline(cells: Sequence[tuple[int, int]], pad: float = 0.46) -> tuple[list, list]:
    """x and y of closed squares around (row, column) cells, None between them."""
    xs: list = []
    ys: list = []
    for i, j in cells:
        xs += [j - pad, j + pad, j + pad, j - pad, j - pad, None]
        ys += [i - pad, i - pad, i + pad, i + pad, i - pad, None]
    return xs, ys


def _band(i: int, n: int) -> tuple[list, list]:
    return [-0.5, n - 0.5, n - 0.5, -0.5, -0.5], [i - 0.5, i - 0.5, i + 0.5, i + 0.5, i - 0.5]


def _discrete_scale(colors: Sequence[str]) -> list:
    k = len(colors)
    if k <= 1:
        c = colors[0] if colors else OMEGA0_COLOR
        return [[0.0, c], [1.0, c]]
    scale = []
    for r, c in enumerate(colors):
        scale += [[r / k, c], [(r + 1) / k, c]]
    return scale


#: Label width of the control column.
_STYLE = {"description_width": "90px"}


class FormatAnatomy:
    """The format anatomy dashboard; ``.widget`` is what to display.

    Parameters
    ----------
    matrix : array_like, optional
        A matrix to start from (shown as "typed in"); SPEC §2's worked example by default.

    Attributes
    ----------
    matrix : numpy.ndarray
        The matrix shown.
    formats : dict
        Every format of ``le.FORMATS`` encoding ``matrix``.
    x : numpy.ndarray
        The input of the walk.
    steps : list of Step
        The walk of ``y = W x`` in the chosen format.
    fig : plotly.graph_objects.FigureWidget
        Matrix, input ``x`` and output ``y``.

    Examples
    --------
    >>> d = FormatAnatomy()
    >>> d.next_button.click()  # the first group: row 0's entries equal to 4
    >>> d.steps[0].columns, d.steps[0].value
    ((4, 9, 11), 4.0)
    >>> d.go_to_end()
    >>> d.y.tolist() == (d.walk_format @ d.x).tolist()
    True
    """

    def __init__(self, matrix: ArrayLike | None = None) -> None:
        self._init_state()
        self._build_matrix_controls()
        self._build_walk_controls()
        self._build_views()
        # the figure is drawn complete before it becomes a FigureWidget (voila keeps no
        # change made between a widget's creation and the page connecting to it)
        self.fig = self._build_figure()
        self._connect()
        self._start_from(matrix)
        self.fig = figure_widget(self.fig)
        self.widget = self._build_page()

    def _init_state(self) -> None:
        """What is shown, empty until the first matrix is set."""
        self.messages = Messages()
        self.matrix = np.zeros((0, 0))
        self.formats: dict[str, le.Format] = {}
        self.stats: le.Stats | None = None
        self.x = np.zeros(0)
        self.steps: list[Step] = []
        self._hold_steps = False

    def _build_matrix_controls(self) -> None:
        """Where the matrix comes from: the worked example, a random one, typed text."""
        style, wide = _STYLE, w.Layout(width="290px")
        self.source = w.RadioButtons(options=_SOURCES, value="spec", description="matrix",
                                     style=style, layout=wide)
        self.rows_slider = w.IntSlider(value=4, min=1, max=MAX_ROWS, description="rows",
                                       continuous_update=False, style=style, layout=wide)
        self.cols_slider = w.IntSlider(value=12, min=1, max=MAX_COLS, description="columns",
                                       continuous_update=False, style=style, layout=wide)
        self.values_slider = w.IntSlider(value=3, min=1, max=8, description="values ≠ 0",
                                         continuous_update=False, style=style, layout=wide)
        self.zeros_slider = w.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05,
                                          description="share of 0", readout_format=".0%",
                                          continuous_update=False, style=style, layout=wide)
        self.seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed",
                                     style=style, layout=w.Layout(width="190px"))
        self.new_random_button = w.Button(description="new random", icon="refresh",
                                          layout=w.Layout(width="96px"))
        self.random_box = w.VBox([self.rows_slider, self.cols_slider, self.values_slider,
                                  self.zeros_slider,
                                  w.HBox([self.seed, self.new_random_button])])
        self.text_input = w.Textarea(
            value="", placeholder="one row per line, e.g.\n0 2 0 3\n2 0 0 2",
            continuous_update=False, layout=w.Layout(width="290px", height="130px"))
        self.apply_text_button = w.Button(description="use this matrix",
                                          layout=w.Layout(width="140px"))
        self.typed_box = w.VBox([
            w.HTML("<span style='font-size:12px;color:#555'>Rows on lines; numbers "
                   "separated by spaces or commas.</span>"),
            self.text_input, self.apply_text_button])

    def _build_walk_controls(self) -> None:
        """The format and input of the walk, and the storage accounting."""
        style, wide = _STYLE, w.Layout(width="290px")
        self.format_picker = w.ToggleButtons(options=[("CER", "cer"), ("CSER", "cser")],
                                             value="cer", description="format",
                                             style=style)
        self.format_picker.style.button_width = "90px"
        self.x_picker = w.RadioButtons(options=[("1, 2, …, n", "range"),
                                                ("random small integers", "random")],
                                       value="range", description="input x", style=style,
                                       layout=wide)
        self.new_x_button = w.Button(description="new x", icon="refresh",
                                     layout=w.Layout(width="96px"))
        self.x_seed = 0
        self.accounting_controls = AccountingControls(width="290px", label_width="90px",
                                                      table=False, batch=False)
        acc = self.accounting_controls
        self.policy_picker, self.value_bits_picker = acc.policy_picker, acc.value_bits_picker

    def _build_views(self) -> None:
        """The step buttons and the HTML views (cards, arrays, codebook, storage)."""
        self.prev_button = w.Button(description="Prev", icon="step-backward",
                                    layout=w.Layout(width="90px"))
        self.next_button = w.Button(description="Next", icon="step-forward",
                                    button_style="primary", layout=w.Layout(width="90px"))
        self.step_slider = w.IntSlider(value=0, min=0, max=0, description="step",
                                       style={"description_width": "40px"},
                                       layout=w.Layout(width="420px"))
        self.step_html = w.HTML(layout=w.Layout(width="100%", min_height="48px"))
        self.counters = w.HTML()
        self.cards = w.HTML()
        self.cer_html = w.HTML(layout=w.Layout(flex="1 1 0", min_width="360px"))
        self.cser_html = w.HTML(layout=w.Layout(flex="1 1 0", min_width="360px"))
        self.codebook = w.HTML()
        self.storage = w.HTML()

    def _connect(self) -> None:
        """Observe every control (each callback guarded)."""
        g = self.messages.guard
        self.source.observe(g(self._on_source), "value")
        for control in (self.rows_slider, self.cols_slider, self.values_slider,
                        self.zeros_slider, self.seed):
            control.observe(g(self._on_random), "value")
        self.new_random_button.on_click(g(self._on_new_random))
        self.text_input.observe(g(self._on_text), "value")
        self.apply_text_button.on_click(g(self._on_apply_text))
        self.format_picker.observe(g(self._on_walk_setting), "value")
        self.x_picker.observe(g(self._on_walk_setting), "value")
        self.new_x_button.on_click(g(self._on_new_x))
        self.accounting_controls.on_change(g(self._on_storage))
        self.step_slider.observe(g(self._on_step), "value")
        self.prev_button.on_click(g(self._on_prev))
        self.next_button.on_click(g(self._on_next))

    def _start_from(self, matrix: ArrayLike | None) -> None:
        """Show ``matrix`` as typed in, or SPEC §2's worked example (also when
        ``matrix`` does not parse)."""
        g = self.messages.guard
        self._sync_source_controls()
        if matrix is None:
            g(self.set_matrix)(SPEC_EXAMPLE)
        else:
            self.text_input.value = matrix_text(np.asarray(matrix, dtype=np.float64))
            self.source.value = "typed"  # fires _on_source: parses the text
            if not self.formats:  # it did not parse: start from the worked example
                g(self.set_matrix)(SPEC_EXAMPLE)

    def _build_page(self) -> w.Widget:
        """The page: title, the control column, and the walk, figure and arrays."""
        controls = w.VBox([
            w.HTML("<b>The matrix W</b>"), self.source, self.random_box, self.typed_box,
            w.HTML("<b>The walk through y = W x</b>"), self.format_picker, self.x_picker,
            self.new_x_button,
            w.HTML("<b>Storage accounting</b>"), self.accounting_controls.widget,
        ], layout=w.Layout(width="310px", min_width="310px"))
        walk = w.VBox([
            w.HBox([self.prev_button, self.step_slider, self.next_button]),
            self.step_html, self.counters,
        ], layout=w.Layout(border="1px solid #ddd", padding="4px 8px", margin="4px 0"))
        main = w.VBox([
            self.cards, self.messages.widget, walk, self.fig,
            w.HTML("<div style='font-size:16px;font-weight:600;margin-top:6px'>The stored "
                   "arrays (f.arrays()), side by side</div>"),
            w.HBox([self.cer_html, self.cser_html], layout=w.Layout(flex_flow="row wrap")),
            w.HTML(_LEGEND),
            w.HTML("<div style='font-size:16px;font-weight:600;margin-top:6px'>The codebook "
                   "formats: palette, Huffman, EFR (their stored words read back code by "
                   "code)</div>"),
            self.codebook, self.storage,
        ], layout=main_layout())
        title = w.HTML(
            "<h2 style='margin:4px 0'>lowentropy · format anatomy</h2>"
            "<div style='color:#555;font-size:14px'>How CER and CSER (Wiedemann et al., arXiv "
            "1805.10692) store a small matrix: Ω lists the distinct values by decreasing "
            "count; the most frequent, ω<sub>0</sub>, is left implicit; every row keeps, per "
            "shared value, the group of columns holding it. A product W x then adds the "
            "x<sub>j</sub> of a group and multiplies once per group. The codebook formats "
            "give every cell a short code naming its value in Ω instead: <b>palette</b>, "
            "fixed-width codes into the table of values (GGML/llama.cpp, Deep Compression's "
            "weight sharing); <b>Huffman</b>, shorter codes for frequent values (Deep "
            "Compression's last stage); <b>EFR</b>, the project's own format near the "
            "entropy floor (per row, Huffman codes or the columns of each value as small "
            "gaps, whichever is shorter).</div>")
        return dashboard_page("format-anatomy", title, controls, main)

    # --- figure --------------------------------------------------------------------------
    def _build_figure(self) -> go.Figure:
        fig = make_subplots(
            rows=2, cols=2, column_widths=[0.9, 0.1], row_heights=[0.84, 0.16],
            horizontal_spacing=0.025, vertical_spacing=0.09,
            specs=[[{}, {}], [{}, None]],
            subplot_titles=("W: each cell shows its value; colour = the value's rank in Ω",
                            "y = W x", "input x (entries summed in this step outlined)"),
        )
        t: dict[str, int] = {}
        self._t = t
        add_trace(fig, t, "W", go.Heatmap(
            name="W", z=[[0]], text=[[""]], texttemplate="%{text}",
            textfont=dict(size=15, color="#000"), colorscale=_discrete_scale([OMEGA0_COLOR]),
            zmin=-0.5, zmax=0.5, xgap=2, ygap=2, showscale=True,
            colorbar=dict(title=dict(text="Ω (by count)"), thickness=14, len=0.8, y=0.58,
                          x=1.02, tickfont=dict(size=13)),
            hovertemplate="row %{y}, column %{x}<br>W = %{text}<br>rank %{z} in Ω"
                          "<extra></extra>"), row=1, col=1)
        add_trace(fig, t, "current row", go.Scatter(
            name="current row", x=[], y=[], mode="lines", hoverinfo="skip",
            line=dict(color="#555", width=2, dash="dash")), row=1, col=1)
        add_trace(fig, t, "current group", go.Scatter(
            name="current group", x=[], y=[], mode="lines", hoverinfo="skip",
            line=dict(color=_HIGHLIGHT, width=4)), row=1, col=1)
        add_trace(fig, t, "x", go.Heatmap(
            name="x", z=[[0]], text=[[""]], texttemplate="%{text}",
            textfont=dict(size=14, color="#000"),
            colorscale=[[0, "#ffffff"], [1, "#ffffff"]], zmin=0, zmax=1, xgap=2, ygap=2,
            showscale=False, hovertemplate="x[%{x}] = %{text}<extra></extra>"), row=2, col=1)
        add_trace(fig, t, "x summed", go.Scatter(
            name="x summed", x=[], y=[], mode="lines", hoverinfo="skip", showlegend=False,
            line=dict(color=_HIGHLIGHT, width=3)), row=2, col=1)
        add_trace(fig, t, "y", go.Heatmap(
            name="y", z=[[0]], text=[[""]], texttemplate="%{text}",
            textfont=dict(size=14, color="#000"),
            colorscale=[[0, "#ffffff"], [0.5, "#dcebf7"], [1, "#ffe08a"]], zmin=0, zmax=2,
            xgap=2, ygap=2, showscale=False,
            hovertemplate="y[%{y}] = %{text}<extra></extra>"), row=1, col=2)
        add_trace(fig, t, "y written", go.Scatter(
            name="y written", x=[], y=[], mode="lines", hoverinfo="skip", showlegend=False,
            line=dict(color=_HIGHLIGHT, width=3)), row=1, col=2)
        fig.update_layout(
            height=520, template="plotly_white", font=dict(size=13),
            margin=dict(l=60, r=30, t=40, b=40), uirevision="keep",
            legend=dict(orientation="h", y=-0.1, x=0),
        )
        fig.update_yaxes(autorange="reversed", title_text="row i", dtick=1, row=1, col=1)
        fig.update_xaxes(title_text="", dtick=1, showticklabels=True, row=1, col=1)
        fig.update_xaxes(matches="x", dtick=1, title_text="column j", row=2, col=1)
        fig.update_yaxes(tickvals=[0], ticktext=["x"], row=2, col=1)
        fig.update_yaxes(matches="y", showticklabels=False, row=1, col=2)
        fig.update_xaxes(tickvals=[0], ticktext=["y"], row=1, col=2)
        for axis in ("xaxis", "yaxis", "xaxis2", "yaxis2", "xaxis3", "yaxis3"):
            fig.layout[axis].showgrid = False
            fig.layout[axis].zeroline = False
        return fig

    # --- the matrix ----------------------------------------------------------------------
    def _sync_source_controls(self) -> None:
        src = self.source.value
        self.random_box.layout.display = None if src == "random" else "none"
        self.typed_box.layout.display = None if src == "typed" else "none"

    def _on_source(self, change=None) -> None:
        self._sync_source_controls()
        src = self.source.value
        if src == "typed" and not self.text_input.value.strip() and self.matrix.size:
            self.text_input.value = matrix_text(self.matrix)  # fires _on_text
            return
        self._load_source()

    def _on_random(self, change=None) -> None:
        if self.source.value == "random":
            self._load_source()

    def _on_new_random(self, _button=None) -> None:
        self.seed.value = (self.seed.value + 1) % (2**31 - 1)  # fires _on_random
        if self.source.value != "random":
            self.source.value = "random"

    def _on_text(self, change=None) -> None:
        if self.source.value == "typed":
            self._load_source()

    def _on_apply_text(self, _button=None) -> None:
        if self.source.value != "typed":
            self.source.value = "typed"  # fires _on_source
        else:
            self._load_source()

    def _load_source(self) -> None:
        src = self.source.value
        if src == "spec":
            W = SPEC_EXAMPLE
        elif src == "padding":
            W = SPEC_PADDING_EXAMPLE
        elif src == "random":
            W = random_matrix(self.rows_slider.value, self.cols_slider.value,
                              values=self.values_slider.value,
                              zero_share=self.zeros_slider.value, seed=self.seed.value)
        else:
            W = parse_matrix(self.text_input.value)  # a ValueError keeps the old matrix
        self.set_matrix(W)

    def set_matrix(self, W: ArrayLike) -> None:
        """Show a matrix: encode it in every format and redraw everything."""
        W = np.array(W, dtype=np.float64)
        if W.ndim != 2 or W.size == 0:
            raise ValueError(f"the matrix must be 2-D and not empty, got shape {W.shape}")
        if W.shape[0] > MAX_ROWS or W.shape[1] > MAX_COLS:
            raise ValueError(f"the matrix is {W.shape[0]} × {W.shape[1]}; the walk shows at "
                             f"most {MAX_ROWS} × {MAX_COLS}")
        formats = {name: F.from_dense(W) for name, F in le.FORMATS.items()}
        self.matrix, self.formats, self.stats = W, formats, le.stats(W)
        self.messages.clear()
        self._make_x()
        self._draw_matrix()
        self._draw_cards()
        self.codebook.value = codebook_html(formats)
        self._on_storage()
        self._rebuild_steps(keep=False)

    # --- the walk ------------------------------------------------------------------------
    @property
    def walk_format(self) -> le.Format:
        """The format the walk goes through (CER or CSER)."""
        return self.formats[self.format_picker.value]

    def _make_x(self) -> None:
        n = self.matrix.shape[1]
        if self.x_picker.value == "range":
            self.x = np.arange(1, n + 1, dtype=np.float64)
        else:
            rng = np.random.default_rng(self.x_seed)
            self.x = rng.integers(-5, 6, n).astype(np.float64)

    def _on_walk_setting(self, change=None) -> None:
        if not self.formats:
            return
        keep = change is not None and change.get("owner") is self.x_picker
        self._make_x()
        self._rebuild_steps(keep=keep)

    def _on_new_x(self, _button=None) -> None:
        self.x_seed += 1
        if self.x_picker.value != "random":
            self.x_picker.value = "random"  # fires _on_walk_setting
        else:
            self._on_walk_setting({"owner": self.x_picker})

    def _rebuild_steps(self, keep: bool) -> None:
        """New steps for the matrix, format and x; back to step 0 unless ``keep``."""
        self.steps = build_steps(self.walk_format.arrays(), self.x)
        count = min(self.step_slider.value, len(self.steps)) if keep else 0
        self._hold_steps = True
        try:
            self.step_slider.max = len(self.steps)
            self.step_slider.value = count
        finally:
            self._hold_steps = False
        self._draw_step()

    def _on_step(self, change=None) -> None:
        if not self._hold_steps:
            self._draw_step()

    def _on_prev(self, _button=None) -> None:
        self.step_slider.value = max(self.step_slider.value - 1, 0)

    def _on_next(self, _button=None) -> None:
        self.step_slider.value = min(self.step_slider.value + 1, self.step_slider.max)

    def go_to_end(self) -> None:
        """Jump to the last step (all of ``y`` computed)."""
        self.step_slider.value = self.step_slider.max

    @property
    def y(self) -> np.ndarray:
        """``y`` as far as the walk has got."""
        return progress(self.steps, self.step_slider.value, self.matrix.shape[0]).y

    # --- drawing -------------------------------------------------------------------------
    def _draw_matrix(self) -> None:
        W, s = self.matrix, self.stats
        m, n = W.shape
        rank_of = {float(v): k for k, v in enumerate(s.omega)}
        ranks = np.vectorize(lambda v: rank_of[float(v) + 0.0])(W)
        shown = min(s.K, 24)
        with self.fig.batch_update():
            heat = self.fig.data[self._t["W"]]
            heat.z = ranks
            heat.text = [[_num(v) for v in row] for row in W]
            heat.textfont.size = 15 if n <= 14 else 12
            heat.colorscale = _discrete_scale([rank_color(k) for k in range(s.K)])
            heat.zmin, heat.zmax = -0.5, s.K - 0.5
            heat.colorbar.tickvals = list(range(shown))
            heat.colorbar.ticktext = [
                f"ω{_sub(k)} = {_num(v)}" + (" (implicit)" if k == 0 else "")
                for k, v in enumerate(s.omega[:shown])]
            self.fig.layout.annotations[0].text = (
                f"W ({m} × {n}): each cell shows its value; colour = the value's rank in Ω")

    def _draw_step(self) -> None:
        count = self.step_slider.value
        p = progress(self.steps, count, self.matrix.shape[0])
        step = p.step
        m, n = self.matrix.shape
        f = self.walk_format
        status = np.where(np.arange(m) < p.row, 1, 0)
        if 0 <= p.row < m:
            status[p.row] = 2
        y_text = [[_num(p.y[i]) if status[i] else ""] for i in range(m)]
        x_hot = np.zeros(n)
        color = OMEGA0_COLOR
        group_cells: list[tuple[int, int]] = []
        if step is not None and step.kind != "row":
            x_hot[list(step.columns)] = 1
            if step.group is not None:
                color = rank_color(step.group.rank)
                group_cells = [(step.row, j) for j in step.columns]
            else:
                color = "#dddddd"
        here = 0 <= p.row < m and step is not None
        with self.fig.batch_update():
            d, t = self.fig.data, self._t
            d[t["current row"]].x, d[t["current row"]].y = _band(p.row, n) if here else ([], [])
            d[t["current group"]].x, d[t["current group"]].y = _outline(group_cells)
            d[t["x"]].update(z=[x_hot.tolist()], text=[[_num(v) for v in self.x]],
                             colorscale=[[0, "#ffffff"], [1, color]])
            d[t["x summed"]].x, d[t["x summed"]].y = _outline(
                [(0, j) for j in np.flatnonzero(x_hot)])
            d[t["y"]].update(z=status[:, None].tolist(), text=y_text)
            d[t["y written"]].x, d[t["y written"]].y = _outline([(p.row, 0)]) if here \
                else ([], [])
        text = describe_step(step, count, len(self.steps), f.name)
        if count == len(self.steps):
            ref = f @ self.x
            # equal up to the order of the additions inside a group (SPEC §3 tolerance)
            scale = (np.abs(self.matrix) + abs(float(self.stats.omega[0]))) @ np.abs(self.x)
            same = bool(np.all(np.abs(p.y - ref) <= 4 * (n + 2) * np.finfo(ref.dtype).eps
                               * scale))
            text += (f"<div style='margin-top:4px'>{'✓' if same else '✗'} Done: y = "
                     f"[{', '.join(_num(v) for v in p.y)}] — the library's f @ x = "
                     f"[{', '.join(_num(v) for v in ref)}]</div>")
        self.step_html.value = f"<div style='font-size:15px'>{text}</div>"
        ops = f.op_counts()
        self.counters.value = (
            card("additions so far", f"{p.adds} / {ops.adds:g}",
                 f"total: {f.name.upper()} op_counts()")
            + card("multiplications so far", f"{p.mults} / {ops.mults:g}",
                   f"dense would need {m * n}")
            + card("steps", f"{count} / {len(self.steps)}",
                   f"{f.name.upper()}: G = {len(groups_of(f.arrays()))} groups"))
        self._draw_arrays(step)

    def _draw_arrays(self, step: Step | None) -> None:
        walk = self.format_picker.value
        self.cer_html.value = arrays_html(self.formats["cer"], step if walk == "cer" else None)
        self.cser_html.value = arrays_html(self.formats["cser"],
                                           step if walk == "cser" else None)

    def _draw_cards(self) -> None:
        s = self.stats
        self.cards.value = "".join([
            card("shape", f"{s.shape[0]} × {s.shape[1]}", f"{s.size} weights"),
            card("ω₀ (most frequent)", _num(s.omega[0]), f"p₀ = {s.p0:.0%} of the cells"),
            card("distinct values K", str(s.K), "|Ω|"),
            card("entropy H", f"{s.H:.3f} bits", "per weight"),
            card("stored entries N", str(s.N), "cells ≠ ω₀"),
            card("groups G", f"{s.G_cer} / {s.G_cser}", "CER / CSER"),
        ])

    def _on_storage(self, change=None) -> None:
        if self.stats is not None:
            self.storage.value = storage_html(self.formats, self.stats,
                                              self.policy_picker.value,
                                              int(self.value_bits_picker.value))

    def describe(self) -> str:
        """One line about what is shown (for logs and tests)."""
        m, n = self.matrix.shape
        return (f"{self.source.value} {m}×{n}, {self.format_picker.value}, step "
                f"{self.step_slider.value}/{len(self.steps)}")

