"""Whole-network reports and the ``lowentropy report`` command line."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

import lowentropy as le
from lowentropy.__main__ import main
from lowentropy.report import network_report


def tiny_network() -> le.Network:
    rng = np.random.default_rng(1)
    return le.Network("tiny", [
        le.Layer("conv", rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv",
                 uses_per_inference=49),
        le.Layer("fc", rng.standard_normal((10, 72)).astype(np.float32)),
    ])


def test_rows_are_the_formats_of_each_compressed_layer():
    net = tiny_network()
    c = le.Recipe(prune=0.7, method="uniform", bits=4)
    rep = network_report(net, c)
    assert len(rep.rows) == len(net) * len(le.FORMATS)
    for layer in net:
        M = c.apply(layer.weight).reshape(layer.weight.shape[0], -1)
        for row in (r for r in rep.rows if r.layer == layer.name):
            f = le.get_format(row.format).from_dense(M)
            assert row.storage_bits == f.storage().total_bits
            counts = f.op_counts()
            assert row.adds == counts.adds * layer.uses_per_inference
            assert row.mults == counts.mults * layer.uses_per_inference
            assert row.K == le.stats(M).K


def test_totals_sum_the_layers():
    rep = network_report(tiny_network(), le.Recipe(prune=0.5, method="kmeans", clusters=8))
    for total in rep.totals():
        rows = [r for r in rep.rows if r.format == total.format]
        assert total.storage_bits == sum(r.storage_bits for r in rows)
        assert total.energy_pj == pytest.approx(sum(r.energy_pj for r in rows))
        assert total.weights == sum(r.weights for r in rows)


def test_global_pruning_uses_one_threshold():
    net = tiny_network()
    rep = network_report(net, le.Recipe(prune=0.6, global_prune=True), formats=["dense"])
    zeros = sum(r.p0 * r.weights for r in rep.rows)
    assert zeros == pytest.approx(0.6 * net.size, abs=1)


def test_exports_parse_back():
    rep = network_report(tiny_network(), le.Recipe(prune=0.5, method="uniform", bits=3),
                         measure=True)
    rows = list(csv.DictReader(io.StringIO(rep.to_csv())))
    assert len(rows) == len(rep.rows) + len(le.FORMATS)
    assert all(float(r["time_s"]) > 0 for r in rows)
    data = json.loads(rep.to_json())
    assert data["compression"]["bits"] == 3 and len(data["rows"]) == len(rows)
    md = rep.to_markdown()
    assert md.count("\n| ") == len(rows) + 1 and "time ms" in md


def test_an_already_compressed_network_is_reported_as_it_is():
    net = tiny_network()
    recipe = le.Recipe(prune=0.8, clusters=8)
    done = recipe.apply(net)
    assert network_report(net, recipe, compressed=done).rows == \
        network_report(net, recipe).rows
    zeroed = le.Network("tiny", [la.with_weight(np.zeros_like(la.weight)) for la in net])
    rep = network_report(net, recipe, compressed=zeroed)
    assert rep.recipe == recipe and all(r.K == 1 for r in rep.rows)
    other = le.Network("tiny", [net.layers[0]])
    with pytest.raises(ValueError, match="compressed has other layers"):
        network_report(net, recipe, compressed=other)


def test_progress_is_called_per_layer():
    seen = []
    network_report(tiny_network(), progress=lambda i, n, name: seen.append((i, n, name)))
    assert seen == [(1, 2, "conv"), (2, 2, "fc")]


def test_cli_report_on_an_embedded_network(capsys):
    assert main(["report", "lenet-300-100", "--prune", "0.9", "--bits", "5",
                 "--method", "kmeans", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    totals = {r["format"]: r for r in rows if r["layer"] == "total"}
    assert int(totals["cser"]["K"]) <= 33
    assert float(totals["cer"]["storage_ratio"]) < float(totals["csr"]["storage_ratio"]) < 1


def test_cli_report_on_a_file(tmp_path, capsys):
    path = tmp_path / "weights.npz"
    np.savez(path, fc1=np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32))
    assert main(["report", str(path), "--prune", "0.5", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["network"]


@pytest.mark.parametrize("argv", [
    ["report", "no-such-model.npz"],
    ["report", "lenet-5", "--prune", "1.5"],
    ["report", "lenet-5", "--method", "kmeans"],
])
def test_cli_bad_input_exits_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowentropy: error: ") and err.count("\n") == 1


def test_the_text_table_prints_whole_layer_names():
    rng = np.random.default_rng(4)
    names = ["classifier.1.weight", "classifier.4.weight", "fc"]
    net = le.Network("long names", [le.Layer(n, rng.standard_normal((6, 8)).astype(
        np.float32)) for n in names])
    text = network_report(net, le.Recipe(prune=0.5, clusters=4)).text()
    lines = text.splitlines()
    for name in names:
        rows = [line for line in lines if line.split()[0] == name]
        assert len(rows) == len(le.FORMATS)
    header = lines[1]
    width = header.index("format") + len("format")
    assert all(len(line) == len(header) for line in lines[1:] if not line.startswith("note"))
    assert width > len("classifier.1.weight")


@pytest.mark.parametrize("recipe", [
    le.Recipe(prune=0.5, bits=4),
    le.Recipe(prune={"conv": 0.3, "fc": 0.9}, clusters=8),
    le.Recipe(prune=0.7),
    le.Recipe(prune=0.8, clusters=4, global_prune=True),
    le.Recipe(bits=3),
], ids=lambda r: r.describe())
def test_network_stats_are_those_of_the_compressed_matrices(recipe):
    from test_codes import assert_stats_equal

    from lowentropy.report import network_stats

    net = tiny_network()
    done = recipe.apply(net)
    got = network_stats(net, recipe)
    assert [layer.name for layer, _ in got] == net.names
    for (_, s), layer in zip(got, done, strict=True):
        assert_stats_equal(s, le.stats(np.asarray(layer.weight).reshape(layer.shape[0], -1)))


def test_a_report_from_given_stats_only_prices_them(monkeypatch):
    from lowentropy import report as report_module
    from lowentropy.report import network_stats

    net, recipe = tiny_network(), le.Recipe(prune=0.9, clusters=16)
    layer_stats = network_stats(net, recipe)
    monkeypatch.setattr(report_module, "stats", lambda *a, **k: pytest.fail("recounted"))
    for bits in (32, 16, 8):
        again = network_report(net, recipe, value_bits=bits, layer_stats=layer_stats)
        monkeypatch.undo()
        assert again.rows == network_report(net, recipe, value_bits=bits).rows
        monkeypatch.setattr(report_module, "stats", lambda *a, **k: pytest.fail("recounted"))
    with pytest.raises(ValueError, match="cannot start from layer_stats"):
        network_report(net, recipe, layer_stats=layer_stats, measure=True)
    with pytest.raises(ValueError, match="are not those of network"):
        network_report(net, recipe, layer_stats=layer_stats[:1])
