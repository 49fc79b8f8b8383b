"""Retraining and sensitivity in the dashboards (``dashboards.retraining``, the retrain
switch of the layer explorer and the network overview, the sensitivity panel)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from dashboards import retraining
from dashboards.layer_explorer import LayerExplorer
from dashboards.network_overview import NetworkOverview
from dashboards.ui import Messages, Runner

import lowentropy as le
from lowentropy.networks import training


@pytest.fixture
def count_retraining(monkeypatch):
    """Forget cached results and count calls of the library's retraining."""
    retraining.clear()
    calls = []
    real = training.retrain

    def counted(network, recipe, **kwargs):
        calls.append(recipe)
        return real(network, recipe, **kwargs)

    monkeypatch.setattr(training, "retrain", counted)
    yield calls
    retraining.clear()


def test_retrained_is_the_librarys_and_is_cached_per_network_and_recipe(count_retraining):
    net = le.load_network("lenet-300-100")
    recipe = le.Recipe(prune=0.9, clusters=32)
    done = retraining.retrained(net, recipe)
    expected = dataclasses.replace(recipe, retrain=True).apply(net)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(done, expected, strict=True))
    assert retraining.retrained(net, recipe) is done  # the cache: no second retraining
    assert len(count_retraining) == 2  # ours once, and the reference above
    other = le.load_network("lenet-300-100")  # an equal network, another object
    assert retraining.retrained(other, recipe) is not done and len(count_retraining) == 3


def test_accuracy_gives_one_shot_and_retrained_side_by_side(count_retraining):
    net = le.load_network("lenet-300-100")
    recipe = le.Recipe(prune=0.9, clusters=32, retrain=True)
    acc = retraining.accuracy(net, recipe)
    assert acc.uncompressed == pytest.approx(le.accuracy(net))
    plain = dataclasses.replace(recipe, retrain=False)
    assert acc.one_shot == pytest.approx(le.accuracy(plain.apply(net)))
    assert acc.retrained == pytest.approx(le.accuracy(retraining.retrained(net, recipe)))
    assert acc.retrained > acc.one_shot + 0.3 and acc.compressed == acc.retrained
    assert retraining.accuracy(net, plain).retrained is None
    plain_net = le.Network("x", [le.Layer("fc", np.ones((3, 4), np.float32))])
    assert retraining.accuracy(plain_net, recipe) is None
    assert not retraining.can_retrain(plain_net) and retraining.can_retrain(net)


def test_a_cancelled_retraining_stops_within_an_epoch_and_caches_nothing(count_retraining):
    net = le.load_network("lenet-300-100")
    runner = Runner(Messages())
    epochs = []

    def job(task):
        original = task.progress

        def progress(i, total, *rest):
            epochs.append(i)
            original(i, total, *rest)

        task.progress = progress
        return retraining.retrained(net, le.Recipe(prune=0.8, clusters=16), task)

    results = []
    runner.start(job, results.append)
    deadline = time.monotonic() + 60
    while not epochs and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.cancel()
    started = time.monotonic()
    runner.thread.join(30)
    assert not runner.thread.is_alive() and time.monotonic() - started < 10
    assert results == [] and runner.counts["cancelled"] == 1 and runner.counts["failed"] == 0
    assert epochs and epochs[-1] < 20
    assert not any(retraining._caches.get("retrained", {}))


def test_the_overview_retrains_the_whole_network_and_shows_both_accuracies(count_retraining):
    view = NetworkOverview("lenet-300-100", synchronous=True)
    one_shot = view.accuracy.one_shot
    view.compression_controls.retrain_box.value = True
    acc = view.accuracy
    assert acc.one_shot == one_shot and acc.retrained > 0.9 > one_shot
    assert f"{acc.one_shot:.1%} → {acc.retrained:.1%}" in view.cards.value
    assert view.report.recipe.retrain and "retrained" in view.cards.value
    done = retraining.retrained(view.network, view.recipe)
    cser = {r.layer: r for r in view.report.rows if r.format == "cser"}
    for layer in done:  # the report counts the retrained weights
        assert cser[layer.name].K == len(np.unique(layer.weight))
    view.value_bits_picker.value = 16  # accounting only: no retraining again
    view.compression_controls.retrain_box.value = False
    view.compression_controls.retrain_box.value = True
    assert len(count_retraining) == 1


def test_the_sensitivity_panel_and_rates_from_sensitivity(count_retraining):
    view = NetworkOverview("lenet-5", synchronous=True)
    assert len(view.sensitivity.fig.data) == 0  # on request only
    view.sensitivity.button.click()
    names = [t.name for t in view.sensitivity.fig.data]
    assert names == view.network.names
    table = retraining.sensitivity(view.network)
    xs, ys = table.curve("fc1")
    assert list(view.sensitivity.fig.data[names.index("fc1")].y) == list(map(float, ys))
    view.prune_slider.value = 0.9
    view.compression_controls.sensitivity_box.value = True
    rates = dict(view.report.recipe.prune)
    assert rates == view.sensitivity.rates == retraining.rates_from_sensitivity(
        view.network, 0.9)
    assert sum(rates[x.name] * x.size for x in view.network) >= 0.9 * view.network.size
    stars = [t for t in view.sensitivity.fig.data if t.name.endswith(" chosen")]
    assert len(stars) == len(view.network.names)
    assert "chosen:" in view.sensitivity.summary.value


def test_networks_without_training_data_offer_neither(count_retraining):
    rng = np.random.default_rng(0)
    net = le.Network("x", [le.Layer("fc", rng.standard_normal((20, 30)).astype(np.float32))])
    view = NetworkOverview("lenet-300-100", synchronous=True)
    view.compression_controls.retrain_box.value = True
    view.set_network(net)
    c = view.compression_controls
    assert c.retrain_box.disabled and not c.retrain_box.value and view.sensitivity.button.disabled
    assert view.messages.last_error is None and not view.report.recipe.retrain
    assert len(count_retraining) == 1


def test_the_explorer_shows_the_chosen_layer_of_the_retrained_network(count_retraining):
    ex = LayerExplorer("lenet-300-100", measure=False, synchronous=True)
    assert ex._accuracy_after.retrained is None
    ex.compression_controls.retrain_box.value = True
    done = retraining.retrained(ex.network, ex.recipe)
    for name in ("fc1", "fc2"):
        ex.layer_picker.value = name
        assert np.array_equal(ex.analysis.matrix, done[name].matrix)
        assert ex.analysis.stats.K <= 33 and ex.analysis.recipe.retrain
    acc = ex._accuracy_after
    assert acc.retrained > 0.9 > acc.one_shot and "→" in ex.cards.value
    assert len(count_retraining) == 1  # another layer: the same retrained network
    ex.set_network(le.Network("x", [le.Layer("fc", np.ones((4, 6), np.float32))]))
    assert ex.compression_controls.retrain_box.disabled and ex.messages.last_error is None
    assert not ex.analysis.recipe.retrain


def test_the_runner_treats_the_librarys_cancellation_as_its_own():
    runner = Runner(Messages(), synchronous=True)

    def job(task):
        raise le.Cancelled("stopped between two epochs")

    runner.start(job, lambda result: None)
    assert runner.counts["cancelled"] == 1 and runner.counts["failed"] == 0
