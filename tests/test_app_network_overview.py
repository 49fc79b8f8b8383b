"""The network overview's logic, without a browser."""

from __future__ import annotations

import numpy as np
import pytest
from dashboards.network_overview import NetworkOverview

import lowentropy as le
from lowentropy.report import network_report


def demo() -> le.Network:
    rng = np.random.default_rng(2)
    return le.Network("demo", [
        le.Layer("conv", rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "conv",
                 uses_per_inference=36),
        le.Layer("fc", rng.standard_normal((10, 40)).astype(np.float32)),
    ])


def bars(view, name, panel):
    """The trace of format ``name`` in panel 0 (storage), 1 (gains) or 2 (energy)."""
    traces = [t for t in view.fig.data if t.name == name and t.type == "bar"]
    return traces[panel]


def test_storage_bars_are_the_report_numbers():
    view = NetworkOverview(demo(), synchronous=True)
    expected = network_report(demo(), le.Recipe(prune=0.9, method="kmeans", clusters=32))
    for row in expected.rows:
        trace = bars(view, row.format, 0)
        assert trace.y[list(trace.x).index(row.layer)] == row.storage_bits / 8
    assert "lowentropy-totals" in view.totals_table.value


def test_global_setting_changes_every_layer():
    view = NetworkOverview(demo(), synchronous=True)
    before = list(bars(view, "cser", 0).y)
    view.prune_slider.value = 0.99
    after = list(bars(view, "cser", 0).y)
    assert all(a < b for a, b in zip(after, before, strict=True))
    view.quantizer.value = "uniform"
    view.bits_slider.value = 2
    assert all(r.K <= 3 for r in view.report.rows)


def test_gains_over_dense():
    view = NetworkOverview(demo(), synchronous=True)
    assert list(bars(view, "dense", 1).y) == [1.0, 1.0, 1.0]
    totals = {t.format: t for t in view.report.totals()}
    assert bars(view, "cer", 1).y[0] == pytest.approx(
        totals["dense"].storage_bits / totals["cer"].storage_bits)


def test_embedded_network_shows_accuracy_after_compression():
    view = NetworkOverview("lenet-300-100", synchronous=True)
    before, after = view.accuracy.uncompressed, view.accuracy.compressed
    assert before > 0.9 and "test accuracy" in view.cards.value
    assert view.accuracy.retrained is None
    view.prune_slider.value = 0.99
    view.quantizer.value = "uniform"
    view.bits_slider.value = 2
    assert view.accuracy.compressed < after


def test_an_accounting_change_prices_the_same_statistics_again(monkeypatch):
    from dashboards import network_overview

    calls = []
    real = network_overview.network_stats

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(network_overview, "network_stats", counted)
    view = NetworkOverview(demo(), synchronous=True)
    assert len(calls) == 1
    before = bars(view, "cser", 0).y
    view.value_bits_picker.value = 8
    view.policy_picker.value = "fixed32"
    view.table_picker.value = sorted(le.PRESETS)[0]
    assert len(calls) == 1 and bars(view, "cser", 0).y != before
    expected = network_report(demo(), view.recipe, policy="fixed32", value_bits=8,
                              table=sorted(le.PRESETS)[0])
    assert [r.storage_bits for r in view.report.rows] == \
        [r.storage_bits for r in expected.rows]
    view.prune_slider.value = 0.5  # a new recipe: counted again
    assert len(calls) == 2 and calls[-1].prune == 0.5
