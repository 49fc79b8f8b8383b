"""``le.Recipe``: normalisation, hashing, validation, and round trips through the command
line and the sweep's options."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowentropy as le
from lowentropy.__main__ import _parser, main, recipe_from_args, sweep_recipe_options
from lowentropy.recipe import parse_prune
from lowentropy.report import network_report
from lowentropy.sweep._settings import make_settings

FRACTIONS = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.8, 0.9, 0.95, 1.0]) | st.floats(0, 1)
LAYERS = ["fc1", "fc2", "fc3", "conv1"]


@st.composite
def recipes(draw) -> le.Recipe:
    if draw(st.booleans()):
        prune = draw(FRACTIONS)
        global_prune = draw(st.booleans())
    else:
        names = draw(st.lists(st.sampled_from(LAYERS), min_size=1, unique=True))
        prune = {n: draw(FRACTIONS) for n in names}
        global_prune = False
    quantizer = draw(st.sampled_from(["none", "uniform", "kmeans"]))
    bits = draw(st.integers(2, 32)) if quantizer == "uniform" else None
    clusters = draw(st.integers(1, 4096)) if quantizer == "kmeans" else None
    retrain = draw(st.booleans())
    seed = draw(st.integers(0, 2**31)) if retrain else 0
    return le.Recipe(prune, bits=bits, clusters=clusters, global_prune=global_prune,
                     retrain=retrain, seed=seed)


@given(recipes())
def test_round_trip_through_the_report_command_line(recipe):
    args = _parser().parse_args(["report", "lenet-5", *recipe.cli_args()])
    assert recipe_from_args(args) == recipe


@given(recipes())
def test_round_trip_through_the_sweep_command_line_and_options(recipe):
    args = _parser().parse_args(["sweep", "lenet-5", *recipe.cli_args(), "--out", "x.csv"])
    options = sweep_recipe_options(args)
    assert make_settings(**options) == [recipe]
    assert make_settings(**{"bits": None, "clusters": None, "method": None,
                            **recipe.options()}) == [recipe]


def test_mapping_prune_is_normalised_and_hashes():
    a = le.Recipe(prune={"fc2": 0.9, "fc1": 0.8}, clusters=32)
    b = le.Recipe(prune=[("fc1", 0.8), ("fc2", 0.9)], method="kmeans", clusters=32)
    assert a.prune == (("fc1", 0.8), ("fc2", 0.9))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != le.Recipe(prune={"fc1": 0.8, "fc2": 0.95}, clusters=32)
    assert le.Recipe(prune={}) == le.Recipe()  # an empty mapping prunes nothing
    assert a.fraction("fc2") == 0.9 and a.fraction("fc3") == 0.0
    assert le.Recipe(prune=np.float32(0.5)).prune == 0.5
    assert make_settings([{"fc1": 0.8, "fc2": 0.9}, {"fc2": 0.9, "fc1": 0.8}], None, [32],
                         None) == [a]


def test_quantizer_parameter_implies_the_method():
    assert le.Recipe(bits=4).method == "uniform"
    assert le.Recipe(clusters=8).method == "kmeans"
    assert (le.Recipe().quantizer, le.Recipe().levels) == ("none", 0)
    assert (le.Recipe(clusters=8).quantizer, le.Recipe(clusters=8).levels) == ("kmeans", 8)
    assert "k-means 8 values" in le.Recipe(0.9, clusters=8).describe()
    assert "pruned fc1 80%" in le.Recipe({"fc1": 0.8}).describe()
    assert "retrained (seed 3)" in le.Recipe(retrain=True, seed=3).describe()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(prune=1.5), ValueError, r"prune must be a fraction in \[0, 1\], got 1.5"),
    (dict(prune=-0.1), ValueError, r"fraction in \[0, 1\]"),
    (dict(prune=float("nan")), ValueError, r"fraction in \[0, 1\]"),
    (dict(prune={"fc1": 2.0}), ValueError, r"prune\['fc1'\] must be a fraction in \[0, 1\]"),
    (dict(prune="0.5"), TypeError, "fraction in"),
    (dict(prune={"fc1": 0.5}, global_prune=True), ValueError, "global_prune takes one"),
    (dict(bits=4, clusters=8), ValueError, "not both"),
    (dict(method="median"), ValueError, "method must be 'uniform', 'kmeans' or None"),
    (dict(method="uniform"), ValueError, r"takes bits= \(2..32\)"),
    (dict(method="kmeans", bits=4), ValueError, "takes clusters="),
    (dict(bits=1), ValueError, r"bits must be in \[2, 32\]"),
    (dict(clusters=0), ValueError, r"clusters must be in \[1, 65536\]"),
    (dict(bits=2.5), TypeError, "bits must be an integer"),
    (dict(retrain="yes"), TypeError, "retrain must be True or False"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer"),
])
def test_bad_recipes(kwargs, error, message):
    with pytest.raises(error, match=message):
        le.Recipe(**kwargs)


def test_frozen():
    with pytest.raises(AttributeError):
        le.Recipe().prune = 0.5  # type: ignore[misc]


def test_apply_to_a_matrix_is_prune_then_quantize():
    W = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    for r in (le.Recipe(0.7, bits=4), le.Recipe(0.5, clusters=6), le.Recipe(0.3),
              le.Recipe(bits=3)):
        expected = le.prune(W, r.prune) if r.prune else W
        if r.method:
            expected = le.quantize(expected, r.method, bits=r.bits, clusters=r.clusters)
        assert np.array_equal(r.apply(W), expected)
    assert r.apply(W) is not W
    assert le.Recipe().apply(W) is W


def test_apply_to_a_matrix_refuses_what_needs_a_network():
    W = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="prune mapping of layer names needs a network"):
        le.Recipe({"fc1": 0.5}).apply(W)
    with pytest.raises(ValueError, match="retrain=True needs a network"):
        le.Recipe(0.5, retrain=True).apply(W)


def test_apply_to_a_network():
    net = le.load_network("lenet-300-100")
    r = le.Recipe({"fc1": 0.8, "fc3": 0.5}, clusters=16)
    out = r.apply(net)
    assert out.names == net.names and out.source == net.source
    for layer, new in zip(net, out, strict=True):
        p = r.fraction(layer.name)
        W = le.prune(layer.weight, p) if p else layer.weight
        assert np.array_equal(new.weight, le.quantize(W, "kmeans", clusters=16))
        assert new.bias is layer.bias
    g = le.Recipe(0.9, global_prune=True).apply(net)
    pruned = le.prune_global(net, 0.9)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(g, pruned, strict=True))


def test_a_mapping_with_unknown_layers_lists_them():
    net = le.load_network("lenet-300-100")
    message = r"does not have: \['fc9', 'zz'\]; its layers are: fc1, fc2, fc3"
    with pytest.raises(ValueError, match=message):
        le.Recipe({"fc1": 0.5, "fc9": 0.5, "zz": 0.1}).apply(net)
    with pytest.raises(ValueError, match=message):
        le.sweep(net, prune={"fc1": 0.5, "fc9": 0.5, "zz": 0.1}, workers=1, progress=False)


def test_parse_prune():
    assert parse_prune(" 0.25 ") == 0.25
    assert parse_prune("fc2=0.9,fc1=0.8") == (("fc1", 0.8), ("fc2", 0.9))
    with pytest.raises(ValueError, match="is not NAME=FRACTION"):
        parse_prune("fc1=0.8,0.9")
    with pytest.raises(ValueError, match="not a fraction in"):
        parse_prune("lots")
    with pytest.raises(ValueError, match=r"--prune must be a fraction in \[0, 1\]"):
        parse_prune("2")


def test_cli_report_per_layer(capsys):
    assert main(["report", "lenet-300-100", "--prune", "fc1=0.9,fc2=0.5", "--clusters",
                 "16", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out.strip() + "\n")))
    p0 = {(r["layer"], r["format"]): float(r["p0"]) for r in rows}
    assert p0["fc1", "dense"] == pytest.approx(0.9, abs=1e-3)
    assert p0["fc2", "dense"] == pytest.approx(0.5, abs=1e-3)
    assert main(["report", "lenet-300-100", "--prune", "fc7=0.9"]) == 2
    assert "does not have: ['fc7']" in capsys.readouterr().err


def test_sweep_with_a_mapping_gives_each_layer_its_fraction():
    t = le.sweep("lenet-300-100", prune=[0.5, {"fc1": 0.9, "fc2": 0.5}], clusters=[8],
                 formats=["cser"], workers=1, progress=False)
    rows = {(r["layer"], r["prune"]): r for r in t.rows}
    assert len(t) == 6
    assert {p for (layer, p) in rows if layer == "fc3"} == {0.5, 0.0}
    net = le.load_network("lenet-300-100")
    acc = le.accuracy(le.Recipe({"fc1": 0.9, "fc2": 0.5}, clusters=8).apply(net))
    assert [r["prune"] for r in t.rows] == [0.5, 0.9, 0.5, 0.5, 0.5, 0.0]  # layer, then setting
    assert [r["accuracy"] for r in t.rows[1::2]] == [acc] * 3


def test_sweep_global_prune_matches_the_report(tmp_path):
    net = le.load_network("lenet-5")
    r = le.Recipe(0.9, clusters=32, global_prune=True)
    t = le.sweep(net, **r.options(), formats=["cer"], workers=1, progress=False,
                 out=tmp_path / "g.jsonl")
    rep = network_report(net, r, formats=["cer"])
    assert [row["storage_bits"] for row in t] == [row.storage_bits for row in rep.rows]
    assert t.rows[0]["accuracy"] == le.accuracy(r.apply(net))
    again = le.sweep(net, **r.options(), formats=["cer"], workers=1, progress=False,
                     out=tmp_path / "g.jsonl")
    assert again == t
    with pytest.raises(ValueError, match="other global_prune"):
        le.sweep(net, prune=0.9, clusters=32, formats=["cer"], workers=1, progress=False,
                 out=tmp_path / "g.jsonl")
