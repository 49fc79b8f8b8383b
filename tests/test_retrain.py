"""Deep Compression's retraining (``Recipe(retrain=True)``) and the sensitivity analysis,
on the digits networks with short schedules (the full schedules are measured by
``benchmarks/retrain.py``)."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pytest

import lowentropy as le
from lowentropy.__main__ import main
from lowentropy.networks import training
from lowentropy.networks.training import Schedule, retrain

SHORT = Schedule(prune_steps=2, epochs_per_step=2, final_epochs=2, shared_epochs=2,
                 lr=5e-3, shared_lr=1e-3)


@pytest.fixture(autouse=True)
def short_schedules(monkeypatch):
    """Every retraining in these tests (through a Recipe, a report or a sweep) is short."""
    for name in training.SCHEDULES:
        monkeypatch.setitem(training.SCHEDULES, name, SHORT)


@pytest.fixture(scope="module")
def mlp() -> le.Network:
    return le.load_network("lenet-300-100")


def _nonzero_values(W: np.ndarray) -> np.ndarray:
    return np.unique(W[W != 0])


@pytest.mark.parametrize("name, recipe", [
    ("lenet-300-100", le.Recipe(0.9, clusters=32, retrain=True)),
    ("lenet-5", le.Recipe(0.9, clusters=32, global_prune=True, retrain=True)),
])
def test_retraining_beats_one_shot(name, recipe):
    net = le.load_network(name)
    one_shot = le.accuracy(le.Recipe(0.9, clusters=32, global_prune=recipe.global_prune)
                           .apply(net))
    retrained = le.accuracy(recipe.apply(net))
    assert one_shot < 0.35  # the case the retraining is for
    assert retrained > one_shot + 0.4, (one_shot, retrained)


def test_keeps_zero_pattern_and_value_count(mlp):
    recipe = le.Recipe({"fc1": 0.9, "fc2": 0.8, "fc3": 0.5}, clusters=16, retrain=True)
    out = recipe.apply(mlp)
    quantized_only = retrain(mlp, recipe, schedule=Schedule(**{**SHORT.__dict__,
                                                               "shared_epochs": 0}))
    for layer, before, after in zip(mlp, quantized_only, out, strict=True):
        zeros = round(recipe.fraction(layer.name) * layer.size)
        assert int((after.weight == 0).sum()) == zeros
        assert np.array_equal(after.weight == 0, before.weight == 0)  # pattern kept
        assert len(_nonzero_values(after.weight)) <= 16
        # the shared values moved, but the positions sharing a value still share one
        _, groups_before = np.unique(before.weight, return_inverse=True)
        pairs = set(zip(groups_before.ravel().tolist(), after.weight.ravel().tolist(),
                        strict=True))
        assert len(pairs) == len(set(groups_before.ravel().tolist()))
        assert not np.array_equal(after.weight, before.weight)
        assert after.weight.dtype == layer.weight.dtype and after.bias is not None


def test_uniform_keeps_a_uniform_grid(mlp):
    out = le.Recipe(0.8, bits=4, retrain=True).apply(mlp)
    for layer in out:
        values = _nonzero_values(layer.weight).astype(np.float64)
        assert len(values) <= 2**4 - 2
        step = np.abs(values).max() / 7
        assert np.allclose(values / step, np.rint(values / step), atol=1e-4)


def test_global_threshold_and_no_quantizer(mlp):
    out = le.Recipe(0.9, global_prune=True, retrain=True).apply(mlp)
    assert sum(int((la.weight == 0).sum()) for la in out) == round(0.9 * mlp.size)
    assert len(_nonzero_values(out["fc1"].weight)) > 1000  # not quantized


def test_deterministic_per_seed(mlp):
    a = le.Recipe(0.9, clusters=8, retrain=True, seed=3)
    first, second = a.apply(mlp), a.apply(mlp)
    other = le.Recipe(0.9, clusters=8, retrain=True, seed=4).apply(mlp)
    for x, y in zip(first, second, strict=True):
        assert np.array_equal(x.weight, y.weight) and np.array_equal(x.bias, y.bias)
    assert not all(np.array_equal(x.weight, z.weight) for x, z in zip(first, other,
                                                                      strict=True))


def test_progress_and_cancel(mlp):
    seen = []
    retrain(mlp, le.Recipe(0.5, clusters=8, retrain=True),
            progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, SHORT.epochs) for i in range(1, SHORT.epochs + 1)]
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(le.Cancelled, match="cancelled after 3 of"):
        le.Recipe(0.5, clusters=8, retrain=True).apply(mlp, cancelled=cancelled)
    event = threading.Event()
    done = []

    def progress(i: int, n: int) -> None:
        done.append(i)
        if i == 2:
            event.set()  # as another thread would

    with pytest.raises(le.Cancelled, match="cancelled after 2 of"):
        retrain(mlp, le.Recipe(0.5, retrain=True), progress=progress, cancelled=event)
    assert done == [1, 2]


def test_a_network_without_training_data_is_refused():
    net = le.Network("mine", [le.Layer("fc", np.ones((4, 4), np.float32))])
    with pytest.raises(ValueError, match="retraining needs the network's training data, "
                       "and network 'mine' has none: only the embedded digits networks "
                       r"\(lenet-300-100, lenet-5\)"):
        le.Recipe(0.5, retrain=True).apply(net)
    with pytest.raises(ValueError, match="training data"):
        le.sweep(net, prune=0.5, retrain=True, progress=False)


def test_report_sweep_and_cli_retrain_alike(mlp, tmp_path, capsys):
    from lowentropy.report import network_report

    recipe = le.Recipe(0.9, clusters=8, retrain=True, seed=1)
    expected = recipe.apply(mlp)
    rep = network_report(mlp, recipe, formats=["cser"])
    assert [r.K for r in rep.rows] == [le.stats(la.matrix).K for la in expected]
    t = le.sweep(mlp, **recipe.options(), formats=["cser"], progress=False,
                 out=tmp_path / "s.jsonl")
    assert [r["K"] for r in t] == [r.K for r in rep.rows]
    assert set(t.column("accuracy").tolist()) == {le.accuracy(expected)}
    again = le.sweep(mlp, **recipe.options(), formats=["cser"], progress=False,
                     out=tmp_path / "s.jsonl")  # resumed: nothing retrained, same rows
    assert again == t
    assert main(["report", "lenet-300-100", *recipe.cli_args(), "--format", "csv"]) == 0
    rows = csv.DictReader(io.StringIO(capsys.readouterr().out.strip() + "\n"))
    assert [int(r["K"]) for r in rows if r["format"] == "cser" and r["layer"] != "total"] \
        == [r.K for r in rep.rows]


# --- sensitivity ------------------------------------------------------------------------------

def test_sensitivity_calls_evaluate_once_per_row(mlp):
    seen = []

    def evaluate(network: le.Network) -> float:
        seen.append([float((la.weight == 0).mean()) for la in network])
        return len(seen)

    t = le.sensitivity(mlp, [0.0, 0.5, 0.9], evaluate=evaluate)
    assert len(seen) == len(t) == 3 * len(mlp)
    assert t.column("metric").tolist() == list(range(1, 10))
    for row, zeros in zip(t, seen, strict=True):  # only that layer pruned, to that share
        i = mlp.names.index(row["layer"])
        assert zeros[i] == pytest.approx(row["sparsity"], abs=1e-3)
        assert all(z < 0.01 for j, z in enumerate(zeros) if j != i)
    assert type(t).read_text(t.to_csv()) == t and type(t).read_text(t.to_json()) == t


def test_sensitivity_default_is_test_accuracy(mlp):
    t = le.sensitivity(mlp, [0.0, 0.95], layers=["fc2"])
    assert t.column("metric")[0] == le.accuracy(mlp)
    assert t.column("metric")[1] == le.accuracy(le.Recipe({"fc2": 0.95}).apply(mlp))


def test_choose_rates_takes_the_largest_sparsity_within_the_drop(mlp):
    def evaluate(network: le.Network) -> float:  # loses 0.1 per 10 % pruned in fc1 only
        return 1.0 - float((network["fc1"].weight == 0).mean())

    rates = le.choose_rates(mlp, max_drop=0.55, sparsities=[0.0, 0.5, 0.6, 0.9],
                            evaluate=evaluate)
    assert rates == {"fc1": 0.5, "fc2": 0.9, "fc3": 0.9}
    chosen = le.choose_rates(mlp, max_drop=0.02, sparsities=[0.0, 0.5, 0.9])
    assert set(chosen) == set(mlp.names)
    # a target share of all weights: the smallest drop that reaches it
    sizes = {la.name: la.size for la in mlp}  # fc1 19,200, fc2 30,000, fc3 1,000 weights
    rates = le.choose_rates(mlp, target=0.5, sparsities=[0.0, 0.5, 0.6, 0.9],
                            evaluate=evaluate)
    assert rates == {"fc1": 0.0, "fc2": 0.9, "fc3": 0.9}  # drop 0: 27,900 of 50,200
    rates = le.choose_rates(mlp, target=0.78, sparsities=[0.0, 0.5, 0.6, 0.9],
                            evaluate=evaluate)  # 0.5 in fc1 gives 37,500 < 39,156
    assert rates == {"fc1": 0.6, "fc2": 0.9, "fc3": 0.9}
    assert sum(rates[n] * sizes[n] for n in sizes) >= 0.78 * mlp.size
    with pytest.raises(ValueError, match="max_drop must be a non-negative number"):
        le.choose_rates(mlp, max_drop=-1)
    with pytest.raises(ValueError, match=r"target must be a fraction in \[0, 1\]"):
        le.choose_rates(mlp, target=2)


def test_sensitivity_reports_progress_and_choose_rates_reuses_a_table(mlp):
    calls, evaluations = [], []

    def evaluate(network: le.Network) -> float:
        evaluations.append(1)
        return 1.0 - float((network["fc1"].weight == 0).mean())

    grid = [0.0, 0.5, 0.6, 0.9]
    table = le.sensitivity(mlp, grid, evaluate, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 12) for i in range(1, 13)]
    evaluations.clear()
    rates = le.choose_rates(mlp, target=0.78, evaluate=evaluate, table=table)
    assert len(evaluations) == 1  # the unpruned network only; the rows come from the table
    assert rates == le.choose_rates(mlp, target=0.78, sparsities=grid, evaluate=evaluate)
    partial = le.sensitivity(mlp, grid, evaluate, layers=["fc1"])
    with pytest.raises(ValueError, match=r"no rows for layers \['fc2', 'fc3'\]"):
        le.choose_rates(mlp, target=0.5, evaluate=evaluate, table=partial)

    def stop(i, n):
        raise le.Cancelled("stopped")

    with pytest.raises(le.Cancelled):
        le.sensitivity(mlp, grid, evaluate, progress=stop)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(sparsities=[1.5]), ValueError, r"sparsities must be a fraction in \[0, 1\]"),
    (dict(sparsities=[]), ValueError, "sparsities is empty"),
    (dict(layers=["fc9"]), ValueError, r"does not have: \['fc9'\]"),
    (dict(evaluate=3), TypeError, "evaluate must be a callable"),
    (dict(evaluate=lambda n: "good"), TypeError, "evaluate must return a real number"),
])
def test_sensitivity_bad_input(mlp, kwargs, error, message):
    with pytest.raises(error, match=message):
        le.sensitivity(mlp, **{"sparsities": [0.5], **kwargs})
