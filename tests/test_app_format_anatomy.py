"""The format anatomy dashboard without a browser: the walk's step logic against the
library, and the dashboard's views as controls are set."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from dashboards import anatomy_walk, format_anatomy
from dashboards.anatomy_walk import (
    MAX_COLS,
    MAX_ROWS,
    SPEC_EXAMPLE,
    SPEC_PADDING_EXAMPLE,
    build_steps,
    groups_of,
    parse_matrix,
    progress,
    random_matrix,
)
from dashboards.format_anatomy import FormatAnatomy, matrix_text
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import tolerance
from strategies import matrix_and_vector

import lowentropy as le

ROOT = Path(__file__).resolve().parents[1]
GROUPED = {"cer": le.CER, "cser": le.CSER}
# encoding a matrix dominates these property tests: fewer examples keep the file fast
few = settings(max_examples=25)


# --- the step logic ------------------------------------------------------------------------

def test_the_spec_example_is_the_one_in_the_spec():
    spec = (ROOT / "docs" / "SPEC.md").read_text(encoding="utf-8")
    text = re.search(r"W = (\[\[.*?\]\])", spec, re.S).group(1)
    assert np.array_equal(parse_matrix(text), SPEC_EXAMPLE)
    padding = SPEC_EXAMPLE.copy()
    row = re.search(r"replace row 1 by `(\[.*?\])`", spec).group(1)
    padding[1] = parse_matrix(row)[0]
    assert np.array_equal(padding, SPEC_PADDING_EXAMPLE)


@pytest.mark.parametrize("name", GROUPED)
@given(data=matrix_and_vector(max_rows=8, max_cols=14))
@few
def test_groups_rebuild_the_matrix(name, data):
    W, _ = data
    f = GROUPED[name].from_dense(W)
    a = f.arrays()
    omega = np.asarray(a["omega"])
    rebuilt = np.full(W.shape, omega[0] if omega.size else 0, W.dtype)
    for g in groups_of(a):
        rebuilt[g.row, np.asarray(a["col_idx"][g.start:g.stop], np.int64)] = omega[g.rank]
    assert np.array_equal(rebuilt, f.to_dense())
    assert len(groups_of(a)) == a["omega_ptr"].size - 1
    if name == "cser":
        assert not any(g.empty for g in groups_of(a))


@pytest.mark.parametrize("name", GROUPED)
@given(data=matrix_and_vector(max_rows=8, max_cols=14))
@few
def test_steps_add_up_to_the_product(name, data):
    W, x = data
    f = GROUPED[name].from_dense(W)
    steps = build_steps(f.arrays(), x)
    m = W.shape[0]
    y = f @ x
    p = progress(steps, len(steps), m)
    tol = tolerance(W, x)
    assert np.all(np.abs(p.y - y) <= tol)
    # each row's y is the sum of what its steps add
    for i in range(m):
        parts = [s.product for s in steps if s.row == i]
        assert abs(sum(parts) - y[i]) <= 2 * tol[i] + 1e-12 * sum(map(abs, parts))
    # the operations are those op_counts derives from the array lengths
    ops = f.op_counts()
    assert sum(s.adds for s in steps) == ops.adds
    assert sum(s.mults for s in steps) == ops.mults
    assert p.adds == ops.adds and p.mults == ops.mults


@given(rows=st.integers(1, 9), cols=st.integers(1, 14), values=st.integers(1, 8),
       zero_share=st.floats(0, 1), seed=st.integers(0, 2**16), x_seed=st.integers(0, 99))
@few
def test_steps_on_integer_matrices_are_exact(rows, cols, values, zero_share, seed, x_seed):
    W = random_matrix(rows, cols, values=values, zero_share=zero_share, seed=seed)
    x = np.random.default_rng(x_seed).integers(-5, 6, cols).astype(np.float64)
    for F in GROUPED.values():
        f = F.from_dense(W)
        steps = build_steps(f.arrays(), x)
        assert np.array_equal(progress(steps, len(steps), rows).y, f @ x)
        assert np.array_equal(f @ x, W @ x)
        ops = f.op_counts()
        assert (sum(s.adds for s in steps), sum(s.mults for s in steps)) == (ops.adds,
                                                                           ops.mults)


def test_zero_omega0_walks_one_step_per_group():
    for W in (SPEC_EXAMPLE, SPEC_PADDING_EXAMPLE):
        for F in GROUPED.values():
            f = F.from_dense(W)
            steps = build_steps(f.arrays(), np.arange(1.0, 13.0))
            assert [s.kind for s in steps] == ["group"] * f.G
            assert [s.group.index for s in steps] == list(range(f.G))
            assert all(s.adds == s.group.size + 1 and s.mults == 1 for s in steps)
    cer = build_steps(le.CER.from_dense(SPEC_PADDING_EXAMPLE).arrays(), np.ones(12))
    empty = [s for s in cer if s.group.empty]
    assert [(s.row, s.value, s.partial, s.product) for s in empty] == [(1, 4.0, 0.0, 0.0)]


def test_nonzero_omega0_starts_with_the_sum_of_x():
    W = np.array([[2.0, 2.0, 5.0], [2.0, 2.0, 2.0], [0.0, 2.0, 2.0]])
    x = np.array([1.0, 2.0, 4.0])
    f = le.CSER.from_dense(W)
    steps = build_steps(f.arrays(), x)
    assert steps[0].kind == "offset" and steps[0].partial == 7.0 and steps[0].product == 14.0
    assert steps[0].adds == 3 and steps[0].mults == 1
    rows = [s for s in steps if s.kind == "row"]
    assert [s.row for s in rows] == [0, 1, 2] and all(s.y == 14.0 for s in rows)
    assert np.array_equal(progress(steps, len(steps), 3).y, f @ x)
    assert np.array_equal(progress(steps, len(steps), 3).y, W @ x)


def test_progress_counts_and_rows():
    f = le.CER.from_dense(SPEC_EXAMPLE)
    steps = build_steps(f.arrays(), np.arange(1.0, 13.0))
    start = progress(steps, 0, 4)
    assert start.row == -1 and start.step is None and not start.y.any()
    p = progress(steps, 4, 4)  # row 0 has 3 groups: the 4th step is row 1's first
    assert p.row == 1 and p.step is steps[3]
    assert p.adds == sum(s.adds for s in steps[:4])
    assert p.y[0] == (f @ np.arange(1.0, 13.0))[0] and p.y[2:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="count must be between"):
        progress(steps, len(steps) + 1, 4)


def test_build_steps_refuses_bad_input():
    a = le.CSER.from_dense(SPEC_EXAMPLE).arrays()
    with pytest.raises(ValueError, match="x has 3 entries"):
        build_steps(a, np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        build_steps(a, np.ones((12, 2)))
    with pytest.raises(ValueError, match="finite"):
        build_steps(a, np.full(12, np.nan))
    with pytest.raises(ValueError, match="missing"):
        build_steps({"omega": a["omega"]}, np.ones(12))
    with pytest.raises(TypeError, match="f.arrays"):
        groups_of([1, 2])


@given(rows=st.integers(1, 12), cols=st.integers(1, 16), values=st.integers(1, 8),
       zero_share=st.floats(0, 0.95), seed=st.integers(0, 2**20))
def test_random_matrix_follows_its_settings(rows, cols, values, zero_share, seed):
    W = random_matrix(rows, cols, values=values, zero_share=zero_share, seed=seed)
    assert W.shape == (rows, cols) and W.dtype == np.float64
    zeros = round(zero_share * rows * cols)
    assert (W == 0).sum() == zeros
    assert len(np.unique(W[W != 0])) == min(values, rows * cols - zeros)
    assert np.array_equal(W, np.round(W)) and np.abs(W).max() <= 9
    assert np.array_equal(W, random_matrix(rows, cols, values=values, zero_share=zero_share,
                                           seed=seed))


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows=0, cols=3), "at least 1"),
    (dict(rows=2, cols=3, values=0), "values must be between"),
    (dict(rows=2, cols=3, zero_share=1.5), "zero_share"),
])
def test_random_matrix_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_matrix(**kwargs)


@given(st.lists(st.lists(st.integers(-20, 20).map(lambda v: v / 2), min_size=3, max_size=3),
                min_size=1, max_size=5))
def test_typed_text_round_trips(rows):
    W = np.array(rows, dtype=np.float64)
    assert np.array_equal(parse_matrix(matrix_text(W)), W)
    commas = "\n".join(", ".join(str(v) for v in row) for row in rows)
    assert np.array_equal(parse_matrix(commas), W)


@pytest.mark.parametrize("text, match", [
    ("", "at least one row"),
    ("1 2\n3 x", r"row 1, entry 1: 'x' is not a number"),
    ("1 2 3\n4 5", "row 1 has 2 numbers but row 0 has 3"),
    ("1 nan", "not a finite number"),
    ("[[1, 2], [3", "unbalanced brackets"),
    ("[[1, 2]] 3", "inside a row"),
    ("1 " * (MAX_COLS + 1), "at most"),
    ("1\n" * (MAX_ROWS + 1), "at most"),
])
def test_bad_text_is_refused_with_a_reason(text, match):
    with pytest.raises(ValueError, match=match):
        parse_matrix(text)


# --- the dashboard -------------------------------------------------------------------------

@pytest.fixture
def dash():
    return FormatAnatomy()


def trace(d: FormatAnatomy, name: str):
    return next(t for t in d.fig.data if t.name == name)


def shown_matrix(d: FormatAnatomy) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in trace(d, "W").text])


def shown_y(d: FormatAnatomy) -> list[float | None]:
    return [float(row[0]) if row[0] else None for row in trace(d, "y").text]


def outlined_cells(t) -> set[tuple[int, int]]:
    """Centres of the squares an outline trace draws (5 points and a gap each)."""
    xs, ys = list(t.x), list(t.y)
    return {(round((ys[k] + ys[k + 2]) / 2), round((xs[k] + xs[k + 2]) / 2))
            for k in range(0, len(xs), 6)}


def test_it_opens_on_the_worked_example(dash):
    d = dash
    assert isinstance(d.fig, go.FigureWidget)
    assert np.array_equal(shown_matrix(d), SPEC_EXAMPLE)
    s = le.stats(SPEC_EXAMPLE)
    rank = {v: k for k, v in enumerate(s.omega.tolist())}
    assert np.array_equal(np.asarray(trace(d, "W").z), np.vectorize(rank.get)(SPEC_EXAMPLE))
    assert list(trace(d, "W").colorbar.ticktext)[1] == "ω₁ = 4"
    assert "lowentropy-error" not in d.messages.widget.value
    for name, F in le.FORMATS.items():
        assert f"{F.from_dense(SPEC_EXAMPLE).storage().total_bits:,}" in d.storage.value, name
    assert f"{s.H:.4f}" in d.storage.value
    cer = le.CER.from_dense(SPEC_EXAMPLE).arrays()
    boxes = re.findall(r"title='col_idx\[(\d+)\] = (\d+)", d.cer_html.value)
    assert [int(v) for _, v in boxes] == cer["col_idx"].tolist()
    assert "omega_idx" in d.cser_html.value and "omega_idx" not in d.cer_html.value


def test_source_and_size_controls_redraw_the_views(dash):
    d = dash
    fig, traces = d.fig, len(d.fig.data)
    before = (d.cer_html.value, d.cser_html.value, d.storage.value)
    d.source.value = "random"
    W = random_matrix(4, 12, values=3, zero_share=0.5, seed=0)
    assert np.array_equal(shown_matrix(d), W)
    assert (d.cer_html.value, d.cser_html.value, d.storage.value) != before
    d.rows_slider.value = 7
    d.cols_slider.value = 5
    assert shown_matrix(d).shape == (7, 5) and np.asarray(trace(d, "W").z).shape == (7, 5)
    assert len(trace(d, "x").text[0]) == 5 and len(trace(d, "y").text) == 7
    W = random_matrix(7, 5, values=3, zero_share=0.5, seed=0)
    assert np.array_equal(d.matrix, W)
    total = le.CSER.from_dense(W).storage().total_bits
    assert f"<b>{total:,}</b>" in d.storage.value
    d.values_slider.value = 1
    d.zeros_slider.value = 0.2
    assert len(np.unique(d.matrix[d.matrix != 0])) == 1
    assert (d.matrix == 0).sum() == 7
    old = d.matrix.copy()
    d.new_random_button.click()
    assert d.seed.value == 1 and not np.array_equal(d.matrix, old)
    d.source.value = "padding"
    assert np.array_equal(shown_matrix(d), SPEC_PADDING_EXAMPLE)
    assert d.cer_html.value.count("∅") == 1 and "∅" not in d.cser_html.value
    assert d.fig is fig and len(d.fig.data) == traces  # one figure, updated in place


def test_index_policy_and_value_bits_change_the_storage_table(dash):
    d = dash
    d.policy_picker.value = "fixed32"
    d.value_bits_picker.value = 8
    for F in le.FORMATS.values():
        bits = F.from_dense(SPEC_EXAMPLE).storage("fixed32", 8).total_bits
        assert f"<b>{bits:,}</b>" in d.storage.value


@pytest.mark.parametrize("source", ["spec", "padding", "random"])
@pytest.mark.parametrize("fmt", ["cer", "cser"])
@pytest.mark.parametrize("x_mode", ["range", "random"])
def test_stepping_to_the_end_gives_f_at_x(dash, source, fmt, x_mode):
    d = dash
    if source == "random":
        d.zeros_slider.value = 0.0  # ω_0 ≠ 0: the walk starts with ω_0 · Σ x
    d.source.value = source
    d.format_picker.value = fmt
    d.x_picker.value = x_mode
    f = d.formats[fmt]
    y = f @ d.x
    assert np.array_equal(y, d.matrix @ d.x)
    assert d.step_slider.max == len(d.steps)
    while d.step_slider.value < d.step_slider.max:
        d.next_button.click()
    assert np.array_equal(d.y, y)
    assert shown_y(d) == y.tolist()
    ops = f.op_counts()
    assert f"{ops.adds:g} / {ops.adds:g}" in d.counters.value
    assert f"{ops.mults:g} / {ops.mults:g}" in d.counters.value
    assert "✓ Done" in d.step_html.value
    if source == "random":
        assert "ω<sub>0</sub>·S" in describe_first_step(d)


def describe_first_step(d: FormatAnatomy) -> str:
    d.step_slider.value = 1
    return d.step_html.value


def test_each_step_highlights_its_group(dash):
    d = dash
    f = d.formats["cer"]
    a = f.arrays()
    x = np.arange(1.0, 13.0)
    d.next_button.click()
    g = groups_of(a)[0]
    cols = a["col_idx"][g.start:g.stop].tolist()
    assert outlined_cells(trace(d, "current group")) == {(0, j) for j in cols}
    assert np.flatnonzero(np.asarray(trace(d, "x").z[0])).tolist() == cols
    assert set(SPEC_EXAMPLE[0, cols]) == {4.0}  # ω_1 = 4, ω_0 = 0
    assert shown_y(d)[0] == 4 * x[cols].sum()
    assert d.cer_html.value.count("le-hot") == len(cols) + 4  # col_idx, ptrs, omega, row_ptr
    assert "le-hot" not in d.cser_html.value
    adds = len(cols) + 1
    assert f"{adds} / {f.op_counts().adds:g}" in d.counters.value
    d.next_button.click()
    d.next_button.click()
    assert d.step_slider.value == 3
    d.prev_button.click()
    assert d.step_slider.value == 2
    g = groups_of(a)[1]
    cols = a["col_idx"][g.start:g.stop].tolist()
    assert outlined_cells(trace(d, "current group")) == {(0, j) for j in cols}
    assert f"value ω<sub>{g.rank}</sub>" in d.step_html.value
    d.format_picker.value = "cser"
    assert d.step_slider.value == 0 and "le-hot" not in d.cser_html.value
    d.step_slider.value = 2
    assert "le-hot" in d.cser_html.value and "le-hot" not in d.cer_html.value


def test_new_x_keeps_the_step_and_changes_the_input(dash):
    d = dash
    d.step_slider.value = 3
    d.new_x_button.click()
    assert d.x_picker.value == "random" and d.step_slider.value == 3
    assert [float(v) for v in trace(d, "x").text[0]] == d.x.tolist()
    d.go_to_end()
    assert np.array_equal(d.y, d.formats["cer"] @ d.x)


@pytest.mark.parametrize("text, match", [
    ("0 1 2\n3 four 5", "'four' is not a number"),
    ("1 2 3\n4 5", "every row needs the same count"),
    ("  \n ", "at least one row"),
])
def test_bad_typed_text_shows_an_error_and_keeps_the_matrix(dash, text, match):
    d = dash
    d.source.value = "typed"  # starts from the matrix shown, as text
    assert np.array_equal(parse_matrix(d.text_input.value), SPEC_EXAMPLE)
    before = (shown_matrix(d), d.cer_html.value, d.storage.value)
    d.text_input.value = text
    assert "lowentropy-error" in d.messages.widget.value
    assert re.search(match, d.messages.widget.value.replace("&#x27;", "'"))
    assert np.array_equal(d.matrix, SPEC_EXAMPLE)
    assert np.array_equal(before[0], shown_matrix(d))
    assert before[1:] == (d.cer_html.value, d.storage.value)
    d.text_input.value = "[[0, 7, 0], [7, 0, -1]]"
    d.apply_text_button.click()
    assert "lowentropy-error" not in d.messages.widget.value
    assert np.array_equal(shown_matrix(d), [[0, 7, 0], [7, 0, -1]])


def test_a_matrix_given_to_the_constructor_is_shown_as_typed():
    W = np.array([[1.0, 1.0, 3.0], [1.0, 0.0, 1.0]])
    d = FormatAnatomy(W)
    assert d.source.value == "typed" and np.array_equal(d.matrix, W)
    d.go_to_end()
    assert np.array_equal(d.y, W @ d.x)


def test_the_dashboards_use_only_the_public_api():
    for module in (anatomy_walk, format_anatomy):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("lowentropy"):
                    assert not any(p.startswith("_") for p in name.split(".")), name
