"""The layer explorer's logic, without a browser: set controls, check the views."""

from __future__ import annotations

import numpy as np
import pytest
from dashboards.compression import Setting, analyse, compress
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
    assert np.asarray(heat.z).shape == (16, 36)


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
    setting = Setting(prune=0.5, quantizer="uniform", bits=4)
    a = analyse(W, setting)
    Wc = compress(W, setting)
    assert np.array_equal(a.matrix, Wc)
    assert [r.storage_bits for r in a.rows] == [r.storage_bits for r in le.compare(Wc)]
