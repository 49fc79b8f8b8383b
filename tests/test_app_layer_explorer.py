"""The layer explorer's logic, without a browser: set controls, check the views."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from dashboards.compression import Accounting, analyse, compress, compress_and_count, price
from dashboards.layer_explorer import ARRAY_COLORS, LayerExplorer

import lowentropy as le
from lowentropy.synthetic import synthetic_layer


def small_network() -> le.Network:
    rng = np.random.default_rng(0)
    return le.Network("demo", [
        le.Layer("fc1", rng.standard_normal((64, 256)).astype(np.float32)),
        le.Layer("conv1", rng.standard_normal((16, 4, 3, 3)).astype(np.float32), "conv",
                 uses_per_inference=100),
    ])


@pytest.fixture
def explorer():
    return LayerExplorer(small_network(), measure=False, synchronous=True)


def storage_bytes(ex: LayerExplorer) -> dict[str, float]:
    """Total bytes per format as drawn in the storage panel."""
    bars = [t for t in ex.fig.data if t.name in ARRAY_COLORS]
    names = list(bars[0].x)
    return {n: sum(t.y[i] for t in bars) for i, n in enumerate(names)}


def test_views_show_the_library_numbers_for_the_setting(explorer):
    ex = explorer
    W = ex.network["fc1"].matrix
    Wc = le.quantize(le.prune(W, 0.9), method="kmeans", clusters=32)
    drawn = storage_bytes(ex)
    for name in le.FORMATS:
        assert drawn[name] == le.get_format(name).from_dense(Wc).storage().total_bits / 8
    assert ex.analysis.stats.K == le.stats(Wc).K
    floor = next(t for t in ex.fig.data if t.name == "entropy floor")
    assert floor.y[0] == pytest.approx(le.stats(Wc).entropy_floor_bits(32) / 8)


def test_moving_the_pruning_slider_shrinks_sparse_storage(explorer):
    ex = explorer
    before = storage_bytes(ex)
    ex.prune_slider.value = 0.98
    after = storage_bytes(ex)
    assert after["csr"] < before["csr"] and after["cer"] < before["cer"]
    assert after["dense"] == before["dense"]
    assert "98% pruned" in ex.describe()


def test_quantizer_controls_follow_the_choice(explorer):
    ex = explorer
    ex.quantizer.value = "uniform"
    assert ex.bits_slider.layout.display is None
    assert ex.clusters_slider.layout.display == "none"
    ex.bits_slider.value = 3
    assert ex.analysis.stats.K <= 2**3 - 1
    ex.quantizer.value = "none"
    assert ex.analysis.stats.K > 1000  # only pruning: unquantized values


def test_value_bits_and_policy_change_the_accounting(explorer):
    ex = explorer
    before = storage_bytes(ex)
    ex.value_bits_picker.value = 8
    assert storage_bytes(ex)["dense"] == before["dense"] / 4
    ex.policy_picker.value = "fixed32"
    assert storage_bytes(ex)["cer"] > le.CER.from_dense(ex.analysis.matrix).storage(
        "minimal", 8).total_bits / 8


def test_switching_layer_reshapes_convolutions(explorer):
    ex = explorer
    ex.layer_picker.value = "conv1"
    assert ex.analysis.matrix.shape == (16, 36)
    heat = next(t for t in ex.fig.data if t.type == "heatmap")
    assert len(heat.z) == len(heat.x) == len(heat.y) == 16 * 36  # as columns (x, y, z)
    assert (max(heat.x), max(heat.y)) == (35, 15)
    W = ex.recipe.apply(ex.network["conv1"].matrix)
    omega0 = ex.analysis.stats.omega[0]
    for x, y, z in zip(heat.x, heat.y, heat.z, strict=True):
        assert np.isnan(z) if W[y, x] == omega0 else z == W[y, x]


def test_measured_time_fills_the_time_panel():
    ex = LayerExplorer(small_network(), measure=True, synchronous=True)
    bars = next(t for t in ex.fig.data if t.name == "measured")
    assert set(bars.x) >= set(le.FORMATS) and all(v > 0 for v in bars.y)
    limit = next(t for t in ex.fig.data if t.name == "bandwidth limit")
    assert len(limit.y) == len(bars.y)


def test_a_bad_file_path_shows_a_message_and_keeps_the_layer(explorer, tmp_path):
    ex = explorer
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    ex.path_text.value = str(bad)
    ex.path_button.click()
    assert "lowentropy-error" in ex.messages.widget.value
    assert ex.network.name == "demo" and ex.analysis is not None


def test_an_oversized_upload_is_refused(explorer, monkeypatch):
    import dashboards.layer_explorer as mod

    monkeypatch.setattr(mod, "MAX_UPLOAD_BYTES", 10)
    ex = explorer
    ex.messages.guard(ex.load_upload)([{"name": "big.npz", "size": 11, "content": b"x" * 11}])
    assert "upload limit" in ex.messages.widget.value


def test_nan_weights_are_refused_with_a_message():
    W = np.ones((4, 4), np.float32)
    W[1, 2] = np.nan
    ex = LayerExplorer(le.Network("nan", [le.Layer("fc", W)]), measure=False,
                       synchronous=True)
    assert "NaN" in ex.messages.widget.value


def test_analyse_equals_compress_then_library():
    W = synthetic_layer((64, 128), keep=1.0, levels=200, seed=3)
    recipe = le.Recipe(prune=0.5, method="uniform", bits=4)
    a = analyse(W, recipe, Accounting(policy="fixed32"))
    Wc = compress(W, recipe)
    assert np.array_equal(a.matrix, Wc)
    expected = le.compare(Wc, policy="fixed32")
    assert [r.storage_bits for r in a.rows] == [r.storage_bits for r in expected]


def test_the_matrix_is_written_from_the_codes_only_when_asked_for(monkeypatch):
    W = synthetic_layer((64, 160), keep=1.0, levels=300, seed=5)
    recipe = le.Recipe(prune=0.7, clusters=8)
    expected = compress(W, recipe)
    dense_calls = []
    real = le.Quantized.to_dense
    monkeypatch.setattr(le.Quantized, "to_dense",
                        lambda q: dense_calls.append(q.shape) or real(q))
    c = compress_and_count(W, recipe)
    a = price(c, Accounting())
    assert np.array_equal(a.corner(), expected[:64, :128])  # the picture: from the codes
    assert np.array_equal(a.corner(3, 5), expected[:3, :5])
    assert dense_calls == []
    assert np.array_equal(a.matrix, expected) and np.array_equal(c.matrix, expected)
    assert a.matrix is c.matrix and dense_calls == [(64, 160)]  # written once
    assert np.array_equal(a.corner(), expected[:64, :128])
    plain = compress_and_count(W, le.Recipe(prune=0.7))  # no quantizer: no codes
    assert plain.quantized is None and np.array_equal(plain.matrix, le.prune(W, 0.7))
    assert np.array_equal(price(plain).corner(2, 2), le.prune(W, 0.7)[:2, :2])


def test_a_move_writes_no_dense_matrix_before_the_timing_runs(monkeypatch):
    ex = LayerExplorer(small_network(), measure=True)  # timing in the background
    ex.timer.wait(60)
    dense_calls = []
    real = le.Quantized.to_dense
    monkeypatch.setattr(le.Quantized, "to_dense",
                        lambda q: dense_calls.append(q.shape) or real(q))
    started = threading.Event()
    monkeypatch.setattr(ex.timer, "start", lambda job, done, **kw: started.set())
    ex.prune_slider.value = 0.6
    ex.refresher.wait(60)
    assert started.is_set() and "60% pruned" in ex.describe()
    assert dense_calls == []  # drawn from the codes; the timing job writes it later


def test_a_move_after_a_pause_starts_at_once_a_burst_waits():
    import dashboards.layer_explorer as mod

    ex = LayerExplorer(small_network(), measure=False)
    delays = []
    real = ex.refresher.start

    def start(job, done, *, delay=0.0):
        delays.append(delay)
        real(job, done, delay=delay)

    ex.refresher.start = start
    ex.prune_slider.value = 0.5
    ex.prune_slider.value = 0.6  # within the throttle time of the first
    ex.refresher.wait(60)
    assert delays == [0.0, mod.THROTTLE_S]
    ex._last_refresh_start -= 10 * mod.THROTTLE_S  # as after a pause
    ex.prune_slider.value = 0.7
    ex.refresher.wait(60)
    assert delays[-1] == 0.0 and "70% pruned" in ex.describe()


# --- numerical edge cases --------------------------------------------------------------------

_rng = np.random.default_rng(7)
EDGE_LAYERS = {
    "all zeros": np.zeros((24, 40), np.float32),
    "one value": np.full((24, 40), -0.375, np.float32),
    "float16": _rng.standard_normal((24, 40)).astype(np.float16),
    "huge": (_rng.standard_normal((24, 40)) * 1e30).astype(np.float32),
    "subnormal": (_rng.standard_normal((24, 40)) * 1e-40).astype(np.float32),
    "subnormal float64": _rng.standard_normal((24, 40)) * 1e-310,
}


def finite_figure(fig) -> bool:
    """Every number the figure holds is finite (JSON has no NaN/inf: plotly would break),
    except NaN (a gap) in flat numeric arrays, which plotly sends as binary buffers."""
    for trace in fig.data:
        for key in ("x", "y", "z"):
            values = getattr(trace, key, None)
            if values is None:
                continue
            if isinstance(values, np.ndarray) and values.ndim == 1 and \
                    values.dtype.kind in "uif" and values.dtype not in (np.int64, np.uint64):
                if np.isinf(values).any():
                    return False
                continue
            flat = np.asarray(values, dtype=object).ravel()
            if isinstance(flat[0] if flat.size else None, (list, tuple)):
                flat = np.concatenate([np.asarray(v, dtype=object).ravel() for v in flat])
            nums = [v for v in flat if isinstance(v, (int, float, np.number))]
            if not np.isfinite(np.asarray(nums, dtype=float)).all():
                return False
    return True


@pytest.mark.parametrize("case", list(EDGE_LAYERS))
def test_every_view_renders_on_unusual_layers(case):
    W = EDGE_LAYERS[case]
    ex = LayerExplorer(le.Network(case, [le.Layer("fc", W)]), measure=True,
                       synchronous=True)
    for quantizer in ("none", "uniform", "kmeans"):
        ex.quantizer.value = quantizer
        for prune in (0.0, 0.5):
            ex.prune_slider.value = prune
            assert ex.messages.widget.value == "", (case, quantizer, prune)
            Wc = compress(W.astype(np.float32) if W.dtype == np.float16 else W, ex.recipe)
            s = le.stats(Wc)
            assert ex.analysis.stats.K == s.K and ex.analysis.stats.N == s.N
            drawn = storage_bytes(ex)
            for name in le.FORMATS:
                assert drawn[name] == le.get_format(name).storage_for(s).total_bits / 8
            assert finite_figure(ex.fig), (case, quantizer, prune)
            assert "nan" not in ex.cards.value.lower()
            bars = next(t for t in ex.fig.data if t.name == "measured")
            assert set(bars.x) >= set(le.FORMATS) and all(v > 0 for v in bars.y)


def test_unquantized_weights_explain_why_cer_and_cser_do_not_help():
    W = np.random.default_rng(1).standard_normal((500, 2000)).astype(np.float32)
    ex = LayerExplorer(le.Network("distinct", [le.Layer("fc", W)]), measure=False,
                       synchronous=True)
    ex.prune_slider.value = 0.0
    ex.quantizer.value = "none"
    assert ex.analysis.stats.K > 900_000 and ex.messages.widget.value == ""
    note = ex.notes.value
    assert "No shared values" in note and "Quantize" in note
    bits = {r.format: r.storage_bits for r in ex.analysis.rows}
    assert (bits["cer"] >= bits["csr"]) == ("CER" in note.split("here.")[0].split(
        "save.")[-1])
    ex.quantizer.value = "kmeans"
    assert ex.notes.value == ""  # shared values again: no note


def test_the_library_memory_budget_message_reaches_the_page():
    memory = pytest.importorskip("lowentropy.memory")
    W = np.random.default_rng(3).standard_normal((400, 1000)).astype(np.float32)
    ex = LayerExplorer(le.Network("m", [le.Layer("fc", W)]), measure=True, synchronous=True)
    previous = memory.set_memory_budget("4 MB")
    try:
        ex.quantizer.value = "none"  # 40,000 distinct values: CER pads to ~16M groups
        shown = ex.messages.widget.value + ex.notes.value
    finally:
        memory.set_memory_budget(previous)
    assert "CER not timed" in shown and "over the memory budget of 4.0 MB" in shown
    assert ex.analysis.recipe.quantizer == "none"  # the views show the setting
    ex.quantizer.value = "kmeans"  # shared values again: everything is timed
    assert ex.messages.widget.value == "" and "not timed" not in ex.notes.value


def test_a_memory_error_while_timing_leaves_the_other_formats_timed(monkeypatch):
    def refuse(cls, W):
        raise MemoryError("CER would need 9 GB, over the memory budget of 1 GB")

    monkeypatch.setattr(le.CER, "from_dense", classmethod(refuse))
    ex = LayerExplorer(small_network(), measure=True, synchronous=True)
    bars = next(t for t in ex.fig.data if t.name == "measured")
    assert "cer" not in bars.x and {"dense", "csr", "cser"} <= set(bars.x)
    assert "over the memory budget" in ex.notes.value and ex.messages.widget.value == ""


def test_live_timing_waits_for_a_pause_and_the_next_move_cancels_it():
    ex = LayerExplorer(small_network(), measure=True)  # timing in the background
    assert ex.timing_process is not None and ex.timing_process.alive  # in its worker
    calls = ex.timing_jobs
    ex.timer.wait(60)
    calls.clear()
    refreshes = dict(ex.refresher.counts)
    for value in (0.5, 0.6, 0.7):  # three moves in quick succession
        ex.prune_slider.value = value
    ex.refresher.wait(60)
    ex.timer.wait(60)
    assert len(calls) == 1  # only after the last move
    assert ex.refresher.counts["started"] - refreshes["started"] == 3
    # throttled: the first move starts at once, the next ones wait for the burst to end:
    # drawn once, or twice when the first refresh finished before the second move came
    assert 1 <= ex.refresher.counts["done"] - refreshes["done"] <= 2
    assert "70% pruned" in ex.describe()
    ex.timer.cancel()
    ex.batch_picker.value = 8  # the timing waits for a pause; a refresh cancels it
    ex.prune_slider.value = 0.8
    ex.refresher.wait(60)
    ex.timer.wait(60)
    assert calls[1:] == [8] and ex.timer.counts["cancelled"] >= 1
    bars = next(t for t in ex.fig.data if t.name == "measured")
    assert set(bars.x) >= set(le.FORMATS)
    assert "80% pruned" in ex.describe()


def test_a_file_the_page_refused_to_send_gets_a_message(explorer):
    ex = explorer
    ex.upload.receive({"name": "huge.safetensors", "size": 10**9, "type": "",
                       "refused": True}, [])
    assert "huge.safetensors is 1 GB; the upload limit" in ex.messages.widget.value
    assert ex.network.name == "demo"
    assert ex.upload.max_bytes == ex_module().MAX_UPLOAD_BYTES


def ex_module():
    import dashboards.layer_explorer as mod

    return mod


def test_every_array_of_every_format_has_a_colour_in_the_storage_panel():
    W = le.Recipe(prune=0.5, clusters=8).apply(small_network()["fc1"].matrix)
    s = le.stats(W)
    for name in le.FORMATS:
        assert set(le.get_format(name).storage_for(s).by_array) <= set(ARRAY_COLORS), name


def test_no_two_legend_entries_share_a_colour(explorer):
    def colour(trace):
        if trace.type == "bar" or trace.mode == "markers":
            return trace.marker.color
        return trace.line.color

    shown = [(t.name, colour(t)) for t in explorer.fig.data
             if t.type in ("bar", "scatter") and t.showlegend is not False]
    colours = [c for _, c in shown]
    assert len(shown) > 10 and len(set(colours)) == len(colours), shown


def test_each_kind_of_change_recomputes_only_what_it_should(monkeypatch):
    """Counted: statistics (compress_and_count), pricing (price), histograms, and the
    traces the figure sends."""
    import dashboards.layer_explorer as mod

    calls = {"compress_and_count": 0, "price": 0, "value_histogram": 0}
    for name in calls:
        real = getattr(mod, name)

        def counted(*args, _name=name, _real=real, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(mod, name, counted)
    ex = LayerExplorer(small_network(), measure=False, synchronous=True)
    assert calls == {"compress_and_count": 1, "price": 1, "value_histogram": 1}
    sent = []
    ex.fig._send_update_msg = lambda restyle_data, relayout_data, trace_indexes=None, \
        **kw: sent.append((set(restyle_data), sorted(trace_indexes or [])))

    def changed_traces() -> set[str]:
        names = {i: key for key, i in ex._t.items()}
        return {names[i] for _, indexes in sent for i in indexes}

    other_table = next(p for p in le.PRESETS if p != ex.table_picker.value)
    for control, value in ((ex.value_bits_picker, 8), (ex.policy_picker, "fixed32"),
                           (ex.table_picker, other_table)):
        calls.update(compress_and_count=0, price=0, value_histogram=0)
        sent.clear()
        control.value = value  # accounting only: no statistics, no histogram
        assert calls == {"compress_and_count": 0, "price": 1, "value_histogram": 0}
        assert len(sent) <= 1  # one batch
        assert not changed_traces() & {"histogram", "shared values", "matrix"}
    calls.update(compress_and_count=0, price=0, value_histogram=0)
    sent.clear()
    ex.prune_slider.value = 0.5  # the recipe: statistics again, not the histogram
    assert calls == {"compress_and_count": 1, "price": 1, "value_histogram": 0}
    assert len(sent) == 1 and "histogram" not in changed_traces()
    assert {"shared values", "matrix", "array col_idx"} <= changed_traces()
    calls.update(compress_and_count=0, price=0, value_histogram=0)
    ex.bits_slider.value = 3  # the hidden slider of the other quantizer: nothing to do
    assert calls == {"compress_and_count": 0, "price": 0, "value_histogram": 0}
    ex.layer_picker.value = "conv1"  # a new layer: its histogram, once
    assert calls == {"compress_and_count": 1, "price": 1, "value_histogram": 1}
    expected = le.stats(ex.recipe.apply(ex.network["conv1"].matrix))
    assert (ex.analysis.stats.K, ex.analysis.stats.N) == (expected.K, expected.N)
