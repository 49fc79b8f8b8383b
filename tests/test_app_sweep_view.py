"""The sweep view of the network overview, without a browser: what it draws is the sweep
table's numbers, and bad files become messages."""

from __future__ import annotations

import datetime
import math
import re

import pytest
from dashboards.network_overview import NetworkOverview
from dashboards.paths import ALLOWED_DIRS_ENV
from dashboards.sweep_view import WHOLE, SweepView, setting_label

from lowentropy.sweep import SweepTable, sweep


@pytest.fixture(scope="module")
def table() -> SweepTable:
    return sweep("lenet-300-100", prune=[0.5, 0.9], clusters=[4, 32], workers=1,
                 progress=False)


@pytest.fixture
def files(table, tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOWED_DIRS_ENV, str(tmp_path))
    table.to_csv(tmp_path / "s.csv")
    table.to_json(tmp_path / "s.json")
    return tmp_path


NOW = datetime.datetime.now(datetime.UTC)


def trace(view, name):
    return next(t for t in view.fig.data if t.name == name)


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_opening_a_sweep_draws_each_layers_ratios(table, files, suffix):
    view = SweepView()
    view.path_text.value = str(files / f"s.{suffix}")
    view.open_button.click()
    assert view.messages.widget.value == ""
    layers = list(dict.fromkeys(r["layer"] for r in table.rows))
    assert list(view.layer_picker.options) == [WHOLE, *layers]
    for layer in layers:
        for metric, column in (("storage", "ratio_to_dense"), ("energy", "energy_ratio")):
            view.layer_picker.value, view.metric.value = layer, metric
            for fmt in ("dense", "csr", "cer", "cser"):
                rows = table.where(layer=layer, format=fmt).rows
                assert list(trace(view, fmt).x) == [setting_label(r) for r in rows]
                assert list(trace(view, fmt).y) == pytest.approx([r[column] for r in rows])


def test_whole_network_sums_the_layers_and_plots_accuracy(table, files):
    view = SweepView()
    view.load(files / "s.csv")
    assert view.layer_picker.value == WHOLE
    settings = list(dict.fromkeys((r["prune"], r["levels"]) for r in table.rows))
    for i, (prune, levels) in enumerate(settings):
        def total(fmt, prune=prune, levels=levels):
            return sum(r["storage_bits"] for r in table.where(prune=prune, levels=levels,
                                                              format=fmt).rows)
        assert trace(view, "cser").y[i] == pytest.approx(total("dense") / total("cser"))
        best = max(total("dense") / total(f) for f in {r["format"] for r in table.rows})
        tradeoff = trace(view, "best format")
        assert tradeoff.x[i] == pytest.approx(best)
        accuracy = table.where(prune=prune, levels=levels).rows[0]["accuracy"]
        assert tradeoff.y[i] == pytest.approx(accuracy) and 0 < accuracy <= 1
    assert "accuracy" in view.summary.value and "4 settings" in view.summary.value


def test_bad_sweep_files_become_messages(files, tmp_path_factory):
    view = SweepView()
    (files / "bad.csv").write_text("layer,format\nfc1,cer\n")
    outside = tmp_path_factory.mktemp("elsewhere") / "s.csv"
    outside.write_text((files / "s.csv").read_text())
    for path, message in [("", "type the path"), (files / "bad.csv", "not a sweep table"),
                          (files / "none.csv", "no such file|does not exist|No such"),
                          (outside, "PathNotAllowed|outside")]:
        view.path_text.value = str(path)
        view.open_button.click()
        assert view.messages.widget.value, path
        assert re.search(message, view.messages.widget.value), (path, view.messages.widget.value)
    view.path_text.value = str(files / "s.json")
    view.open_button.click()  # still works afterwards
    assert view.rows and not view.messages.widget.value


def test_upload_and_the_overview_hosts_the_view(files):
    overview = NetworkOverview("lenet-300-100", synchronous=True)
    assert overview.sweep.widget in overview.widget.children
    content = (files / "s.json").read_bytes()
    overview.sweep.upload.value = ({"name": "s.json", "type": "", "size": len(content),
                                    "last_modified": NOW,
                                    "content": memoryview(content)},)
    assert overview.sweep.rows and overview.sweep.source == "s.json"
    assert all(math.isfinite(v) for v in trace(overview.sweep, "cer").y)
    overview.sweep.upload.value = ({"name": "s.txt", "type": "", "size": 3, "last_modified": NOW,
                                     "content": memoryview(b"abc")},)
    assert ".csv or .json" in overview.messages.widget.value


def test_before_any_sweep_the_view_shows_a_hint_not_empty_axes():
    view = SweepView()
    hint = [a for a in view.fig.layout.annotations if a.name == "hint"]
    assert hint and "sweep this network" in hint[0].text
    assert view.fig.layout.xaxis.showticklabels is False
    assert view.fig.layout.yaxis2.showgrid is False


def test_the_overview_sweeps_its_own_network_with_le_sweep(table):
    overview = NetworkOverview("lenet-300-100", synchronous=True)
    view = overview.sweep
    view.run_prune.value = "0.5, 0.9"
    view.run_method.value = "kmeans"
    view.run_levels.value = "4 32"
    view.run_button.click()
    assert view.messages.widget.value == "" and view.source == "lenet-300-100 (swept here)"
    assert view.runner.counts["done"] == 1 and view.runner.bar.max == 3 * 2 * 2
    key = ("layer", "prune", "quantizer", "levels", "format", "storage_bits")
    assert sorted(tuple(r[k] for k in key) for r in view.rows) == sorted(
        tuple(r[k] for k in key) for r in table.rows)
    assert view.fig.layout.xaxis.showticklabels is True
    assert not next(a for a in view.fig.layout.annotations if a.name == "hint").text
    assert len(trace(view, "cser").x) == 4  # 2 prunings × 2 levels


def test_a_running_sweep_stops_at_the_next_layer(monkeypatch):
    import threading

    import dashboards.sweep_view as mod

    overview = NetworkOverview("lenet-300-100", synchronous=True)
    view = overview.sweep
    view.runner.synchronous = False
    release, calls = threading.Event(), []
    real = mod.le.sweep

    def slow_sweep(*args, progress, **kwargs):
        def step(done, total, layer):
            calls.append(done)
            release.wait(10)
            progress(done, total, layer)

        return real(*args, progress=step, **kwargs)

    monkeypatch.setattr(mod.le, "sweep", slow_sweep)
    view.run_button.click()
    while not calls:
        threading.Event().wait(0.01)
    view.stop_button.click()
    release.set()
    view.runner.wait(30)
    assert len(calls) == 1 and view.rows == [] and view.runner.counts["cancelled"] == 1
    assert "sweep stopped" in view.messages.widget.value


@pytest.mark.parametrize(("field", "text", "message"), [
    ("run_prune", "", "pruning fractions: type at least one number"),
    ("run_levels", "8, many", "many&#x27; is not a whole number"),
    ("run_prune", "1.5", "fraction in [0, 1], got 1.5"),
])
def test_bad_sweep_settings_become_messages(field, text, message):
    overview = NetworkOverview("lenet-300-100", synchronous=True)
    getattr(overview.sweep, field).value = text
    overview.sweep.run_button.click()
    assert message in overview.messages.widget.value and overview.sweep.rows == []
