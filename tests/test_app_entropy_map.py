"""The entropy map without a browser: the grid's statistics against the library's, the
figure against ``le.compare``, controls, measured time and the network overlay."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from dashboards.entropy_grid import (
    cell_stats,
    cost_grid,
    entropy_rows,
    levels_axis,
    sparsity_axis,
    stats_grid,
    time_cells,
    winners,
)
from dashboards.entropy_map import EntropyMap
from hypothesis import given
from hypothesis import strategies as st

import lowentropy as le
from lowentropy.synthetic import synthetic_layer

SHAPE = (128, 512)


def library_stats(shape, sparsity, levels, seed=0) -> le.Stats:
    return le.stats(synthetic_layer(shape, keep=1 - sparsity, levels=levels, seed=seed))


def assert_same_stats(a: le.Stats, b: le.Stats) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.omega.dtype == b.omega.dtype
    np.testing.assert_array_equal(a.omega, b.omega)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert (a.H, a.N, a.zeros, a.K) == (b.H, b.N, b.zeros, b.K)
    np.testing.assert_array_equal(a.groups_cer, b.groups_cer)
    np.testing.assert_array_equal(a.groups_cser, b.groups_cser)
    assert a.efr == b.efr


def cheapest(rows, metric: str) -> str:
    key = {"storage": lambda r: r.storage_bits, "ops": lambda r: r.ops,
           "energy": lambda r: r.energy_pj}[metric]
    return min(rows, key=key).format  # first of equals, in le.FORMATS order


# --- the grid computation ----------------------------------------------------------------


@given(m=st.integers(1, 12), n=st.integers(1, 24),
       sparsity=st.one_of(st.just(0.0), st.floats(0.0, 0.999)),
       levels=st.integers(2, 40), seed=st.integers(0, 3))
def test_cell_stats_equal_le_stats_of_synthetic_layer(m, n, sparsity, levels, seed):
    assert_same_stats(cell_stats((m, n), sparsity, levels, seed),
                      library_stats((m, n), sparsity, levels, seed))


@pytest.mark.parametrize(("sparsity", "levels"), [(0.0, 2), (0.0, 256), (0.5, 3), (0.9, 17),
                                                  (0.98, 256), (1e-9, 5)])
def test_cell_stats_equal_le_stats_at_dashboard_size(sparsity, levels):
    shape = (256, 1024)
    assert_same_stats(cell_stats(shape, sparsity, levels), library_stats(shape, sparsity, levels))


def test_stats_grid_is_cell_stats_and_reports_progress():
    calls = []
    sparsities, levels = [0.0, 0.6, 0.95], [2, 9, 64]
    grid = stats_grid((16, 40), sparsities, levels, seed=2,
                      progress=lambda i, total: calls.append((i, total)))
    assert grid.shape == (3, 3)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for i, k in enumerate(levels):
        for j, s in enumerate(sparsities):
            assert_same_stats(grid[i, j], library_stats((16, 40), s, k, seed=2))


@pytest.mark.parametrize("options", [
    dict(),
    dict(policy="fixed32", value_bits=8, batch=8, table="fma"),
    dict(policy="ideal", value_bits=16, batch=64, table="compute-only"),
])
def test_cost_grid_matches_le_compare(options):
    sparsities, levels = [0.0, 0.7, 0.97], [2, 16, 200]
    grid = stats_grid((32, 64), sparsities, levels)
    costs = cost_grid(grid, **options)
    assert costs.formats == list(le.FORMATS)
    for i, k in enumerate(levels):
        for j, s in enumerate(sparsities):
            rows = le.compare(library_stats((32, 64), s, k), **options)
            for f, row in enumerate(rows):
                assert costs.values["storage"][f, i, j] == row.storage_bits
                assert costs.values["ops"][f, i, j] == row.ops
                assert costs.values["energy"][f, i, j] == pytest.approx(row.energy_pj)
            for metric in ("storage", "ops", "energy"):
                assert costs.formats[costs.winner(metric)[i, j]] == cheapest(rows, metric)


@given(st.lists(st.lists(st.one_of(st.none(), st.floats(0, 100)), min_size=3, max_size=3),
                min_size=1, max_size=5))
def test_winners_is_first_minimum_ignoring_nan(columns):
    values = np.array([[np.nan if v is None else v for v in col] for col in columns]).T
    got = winners(values)
    for j, col in enumerate(columns):
        present = [(v, f) for f, v in enumerate(col) if v is not None]
        assert got[j] == (min(present)[1] if present else -1)


def test_entropy_rows_picks_the_nearest_entropy_within_half_a_bin():
    grid = stats_grid((16, 64), [0.0, 0.5, 0.95], [2, 3, 5, 9, 17, 33, 65])
    bins = np.linspace(0.25, 6.25, 13)
    rows = entropy_rows(grid, bins)
    half = (bins[1] - bins[0]) / 2
    for b, centre in enumerate(bins):
        for j in range(3):
            H = [grid[i, j].H for i in range(grid.shape[0])]
            gaps = [abs(h - centre) for h in H]
            best = int(np.argmin(gaps))
            assert rows[b, j] == (best if gaps[best] <= half + 1e-12 else -1)


def test_axes_and_bad_input():
    assert sparsity_axis(5)[0] == 0.0 and sparsity_axis(5)[-1] == 0.98
    ax = levels_axis(12)
    assert ax[0] == 2 and ax[-1] == 256 and np.all(np.diff(ax) > 0)
    with pytest.raises(ValueError, match="resolution"):
        sparsity_axis(1)
    with pytest.raises(ValueError, match="levels"):
        cell_stats((4, 4), 0.5, 1)
    with pytest.raises(ValueError, match="sparsity"):
        cell_stats((4, 4), 1.0, 4)
    with pytest.raises(ValueError, match="shape"):
        cell_stats((0, 4), 0.5, 4)
    with pytest.raises(ValueError, match="2-D"):
        cost_grid(np.empty(3, dtype=object))
    with pytest.raises(ValueError, match="ascending"):
        entropy_rows(stats_grid((4, 4), [0.0], [2]), [2.0, 1.0])
    with pytest.raises(ValueError, match="budget"):
        time_cells((4, 4), [(0.5, 4)], budget=0)


def test_time_cells_measure_each_cell_once():
    cache: dict = {}
    first = time_cells((16, 32), [(0.5, 4), (0.9, 8)], budget=0.005, cache=cache)
    assert set(first) == {(0.5, 4), (0.9, 8)} and len(cache) == 2
    assert set(first[(0.5, 4)]) == set(le.FORMATS) | {"scipy_csr"}
    assert all(v > 0 for t in first.values() for v in t.values())
    again = time_cells((16, 32), [(0.5, 4)], budget=0.005, cache=cache)
    assert again[(0.5, 4)] is first[(0.5, 4)]


# --- the dashboard -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_map():
    return EntropyMap(shape=SHAPE, resolution=6, synchronous=True, time_budget=0.005,
                      time_cells=2)


@pytest.fixture
def emap(base_map):
    """The module's map, with its controls back at their defaults after each test."""
    yield base_map
    base_map.messages.clear()
    for control, value in ((base_map.metric_picker, "storage"), (base_map.y_toggle, "K"),
                           (base_map.resolution_slider, 6), (base_map.policy_picker, "minimal"),
                           (base_map.value_bits_picker, 32), (base_map.batch_picker, 1),
                           (base_map.table_picker, "horowitz45nm"),
                           (base_map.format_picker, "cer"),
                           (base_map.shape_picker, SHAPE)):
        control.value = value


def trace(emap: EntropyMap, key: str):
    return emap.fig.data[emap._t[key]]


def drawn_winners(emap: EntropyMap) -> dict[tuple[float, int], str]:
    """(sparsity, levels) → format name, as the winner heatmap shows it (K mode)."""
    t = trace(emap, "winner")
    formats = list(le.FORMATS)
    out = {}
    for a, y in enumerate(t.y):
        for b, x in enumerate(t.x):
            z = t.z[a][b]
            if z is not None and not (isinstance(z, float) and math.isnan(z)):
                out[(float(x), int(round(2 ** y)))] = formats[int(z)]
    return out


@pytest.mark.parametrize("metric", ["storage", "ops", "energy"])
def test_winner_per_cell_agrees_with_le_compare(emap, metric):
    emap.metric_picker.value = metric
    emap.policy_picker.value = "ideal"
    emap.value_bits_picker.value = 16
    drawn = drawn_winners(emap)
    assert len(drawn) == 6 * len(levels_axis(6))
    rng = np.random.default_rng(1)
    cells = list(drawn)
    for k in rng.choice(len(cells), size=4, replace=False):
        s, levels = cells[k]
        rows = le.compare(library_stats(SHAPE, s, levels), policy="ideal", value_bits=16,
                          batch=1, table="horowitz45nm")
        assert drawn[(s, levels)] == cheapest(rows, metric)


def test_gain_panel_shows_the_chosen_format_over_dense(emap):
    emap.format_picker.value = "cser"
    t = trace(emap, "gain")
    s, levels = float(t.x[-1]), int(round(2 ** t.y[0]))
    rows = {r.format: r for r in le.compare(library_stats(SHAPE, s, levels))}
    assert 2 ** t.z[0][-1] == pytest.approx(rows["cser"].storage_gain)
    assert "CSER" in emap.fig.layout.annotations[1].text
    assert "×" in t.hovertext[0][-1]
    emap.format_picker.value = "csr"
    assert 2 ** trace(emap, "gain").z[0][-1] == pytest.approx(rows["csr"].storage_gain)


def test_controls_update_the_figure(emap):
    before = np.array(trace(emap, "gain").z, dtype=float)
    emap.value_bits_picker.value = 8
    after = np.array(trace(emap, "gain").z, dtype=float)
    assert not np.allclose(before, after, equal_nan=True)

    emap.metric_picker.value = "ops"
    assert "operations" in emap.fig.layout.annotations[0].text
    assert emap.fig.layout.yaxis3.title.text == "operations per weight"
    assert "kops" in trace(emap, "winner").hovertext[0][0] or "ops" in \
        trace(emap, "winner").hovertext[0][0]

    emap.resolution_slider.value = 8
    assert len(trace(emap, "winner").x) == 8
    assert len(emap.slice_picker.options) == 8

    emap.y_toggle.value = "H"
    assert emap.fig.layout.yaxis.title.text.startswith("entropy H")
    y = np.array(trace(emap, "winner").y)
    assert len(y) == 8 and np.all(np.diff(y) > 0)
    # every filled cell sits in the entropy bin of its matrix
    half = (y[1] - y[0]) / 2
    for a, b in zip(*np.nonzero(emap.row_of >= 0), strict=True):
        s = emap.grid[emap.row_of[a, b], b]
        assert abs(s.H - y[a]) <= half + 1e-9
    assert emap.messages.last_error is None


def test_slice_panel_explains_with_bits_per_weight_and_the_floor(emap):
    emap.slice_picker.value = 4
    s = emap.sparsities[4]
    assert f"{s:.1%}" in emap.fig.layout.annotations[2].text
    m, n = SHAPE
    cer = trace(emap, "line cer")
    floor = trace(emap, "floor")
    for levels in emap.levels:
        st_ = library_stats(SHAPE, s, int(levels))
        i = int(np.argmin(np.abs(np.array(cer.x) - st_.H)))
        assert cer.x[i] == pytest.approx(st_.H)
        assert cer.y[i] == pytest.approx(le.CER.storage_for(st_).total_bits / (m * n))
        assert floor.y[i] == pytest.approx(st_.entropy_floor_bits(32) / (m * n))
    assert list(trace(emap, "slice 1").x) == [s, s]
    emap.metric_picker.value = "energy"
    assert trace(emap, "floor").visible is False


def test_measured_time_fills_a_coarse_grid(emap):
    emap.metric_picker.value = "time"
    t = trace(emap, "winner")
    assert len(t.x) == 2 and len(t.y) == 2
    assert all(z is not None for row in t.z for z in row)
    assert "scipy_csr" in t.hovertext[0][0]
    for s, levels in emap.time_cells_wanted():
        measured = emap.measured(s, levels)
        assert set(measured) >= set(le.FORMATS)
    assert "measuring" not in emap.fig.layout.annotations[0].text
    assert emap.messages.last_error is None


def demo_network() -> le.Network:
    W1 = synthetic_layer((64, 96), keep=0.2, levels=8, seed=5)
    W2 = synthetic_layer((16, 72), keep=0.5, levels=15, seed=6)
    return le.Network("demo", [le.Layer("fc", W1),
                               le.Layer("conv", W2.reshape(16, 8, 3, 3), kind="conv")])


def test_network_overlay_puts_a_point_per_layer(emap):
    net = demo_network()
    emap.add_network(net)
    expected = [le.stats(layer.matrix) for layer in net.layers]
    for key in ("layers 1", "layers 2"):
        t = trace(emap, key)
        assert list(t.x) == pytest.approx([s.sparsity for s in expected])
        assert list(t.y) == pytest.approx([math.log2(s.K) for s in expected])
        assert "fc" in t.hovertext[0] and "conv" in t.hovertext[1]
    emap.y_toggle.value = "H"
    assert list(trace(emap, "layers 1").y) == pytest.approx([s.H for s in expected])
    assert "demo" in emap.cards.value
    with pytest.raises(TypeError, match="Network"):
        emap.add_network(net.layers)


def test_network_picker_lists_the_library_networks(emap):
    values = [v for _, v in emap.network_picker.options]
    assert values[0] == ""
    if not hasattr(le, "list_networks"):
        assert values == [""]
        return
    assert values[1:] == list(le.list_networks())
    small = "lenet-5" if "lenet-5" in values else values[1]
    emap.network_picker.value = small
    net = le.load_network(small)
    assert len(trace(emap, "layers 1").x) == len(net.layers)
    emap.network_picker.value = ""
    assert len(trace(emap, "layers 1").x) == 0


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        EntropyMap(shape=(3, 3), synchronous=True)


def test_dashboard_uses_only_the_public_api():
    root = Path(__file__).resolve().parents[1] / "app" / "dashboards"
    for name in ("entropy_map.py", "entropy_grid.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                if module.startswith("lowentropy"):
                    assert not any(part.startswith("_") for part in module.split(".")), module
