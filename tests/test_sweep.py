"""Sweeps: the table, local and Dask execution, killed workers, resume, the CLI."""

from __future__ import annotations

import functools
import json
import os
import sys
import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_streaming import write_checkpoint

import lowentropy as le
from lowentropy.__main__ import main
from lowentropy.sweep import COLUMNS, SweepTable, _tasks, sweep

LAYERS = {f"blocks.{i}.proj.weight": (48 + 8 * i, 40) for i in range(5)}
SETTINGS = dict(prune=[0.5, 0.8], bits=[3, None])
N_SETTINGS = 4


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("sweep_ckpt")
    write_checkpoint(folder, LAYERS, shards=2, seed=1)
    return str(folder)


@pytest.fixture(scope="module")
def reference(ckpt) -> SweepTable:
    return sweep(ckpt, **SETTINGS, workers=1, progress=False)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hooks below
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


# --- task hooks (run inside worker processes) ---------------------------------------------

_run_task = _tasks.run_task


def _counting(folder: str, task):
    """Run the task and leave one file per execution."""
    rows = _run_task(task)
    with open(os.path.join(folder, f"{task.layer.name}.{uuid.uuid4().hex}"), "w"):
        pass
    return rows


def _kill_once(folder: str, victim: str, task):
    """Kill the worker process the first time the task of layer ``victim`` runs."""
    marker = os.path.join(folder, "killed")
    if task.layer.name == victim and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return _counting(folder, task)


def _stop_after(folder: str, n: int, task):
    """Fail once ``n`` tasks have finished (an interruption)."""
    if len(os.listdir(folder)) >= n:
        raise KeyboardInterrupt("stopped by the test")
    return _counting(folder, task)


def _executions(folder) -> list[str]:
    return sorted(name.rsplit(".", 1)[0] for name in os.listdir(folder) if name != "killed")


# --- the table ----------------------------------------------------------------------------

def test_rows_columns_and_order(reference):
    t = reference
    assert t.columns == COLUMNS and len(t) == len(LAYERS) * N_SETTINGS * len(le.FORMATS)
    keys = [(r["layer"], r["prune"], r["quantizer"], r["levels"], r["format"]) for r in t]
    expected = [(name, p, "none" if b is None else "uniform", b or 0, f)
                for name in LAYERS for p in SETTINGS["prune"] for b in SETTINGS["bits"]
                for f in le.FORMATS]  # by default every registered format, in its order
    assert keys == expected
    row = t.where(layer="blocks.2.proj.weight", format="dense", prune=0.5, levels=3).rows[0]
    assert (row["rows"], row["cols"], row["weights"], row["source_dtype"]) == \
        (64, 40, 2560, "float32")
    assert row["ratio_to_dense"] == 1.0 and row["energy_ratio"] == 1.0
    assert row["time_ms"] is None and row["accuracy"] is None
    assert t.column("storage_bits").dtype == np.int64
    assert np.isnan(t.column("accuracy")).all()
    assert t.column("layer").tolist()[:1] == ["blocks.0.proj.weight"]


def test_csv_json_and_log_round_trips(reference, tmp_path):
    for name, write in (("t.csv", reference.to_csv), ("t.json", reference.to_json)):
        write(tmp_path / name)
        back = SweepTable.read(tmp_path / name)
        assert back == reference and back.rows == reference.rows
    assert SweepTable.read_text(reference.to_json()) == reference
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a sweep table"):
        SweepTable.read(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="unknown column"):
        reference.where(colour="red")
    with pytest.raises(ValueError, match="unknown column"):
        reference.column("colour")


@given(W=st.integers(0, 2**32 - 1).map(lambda s: np.random.default_rng(s).standard_normal(
           (int(s % 13) + 1, int(s % 7) + 2)).astype(np.float32)),
       p=st.sampled_from([0.0, 0.3, 0.9]), b=st.sampled_from([2, 5, None]),
       c=st.sampled_from([None, 3]))
def test_rows_equal_compare_of_stats_of_the_compressed_layer(W, p, b, c):
    net = le.Network("n", [le.Layer("w", W)])
    kwargs = dict(clusters=[c]) if c else dict(bits=[b])
    t = sweep(net, prune=[p], **kwargs, workers=1, progress=False, policy="fixed32")
    Wc = le.prune(W, p) if p > 0 else W
    if c:
        Wc = le.quantize(Wc, method="kmeans", clusters=c)
    elif b:
        Wc = le.quantize(Wc, method="uniform", bits=b)
    s = le.stats(Wc)
    ref = le.compare(s, policy="fixed32")  # every registered format, as sweep's default
    assert len(t) == len(ref)
    for row, r in zip(t, ref, strict=True):
        assert (row["format"], row["storage_bits"], row["adds"], row["mults"], row["reads"],
                row["energy_pj"], row["ratio_to_dense"], row["energy_ratio"]) == \
            (r.format, r.storage_bits, r.adds, r.mults, r.reads, r.energy_pj,
             r.storage_gain, r.energy_gain)
        assert (row["K"], row["entropy_bits"], row["p0"]) == (s.K, s.H, s.p0)


def test_accuracy_for_the_digits_networks():
    t = sweep("lenet-5", prune=[0.0, 0.7], bits=[4], formats=["cser"], workers=1,
              progress=False)
    net = le.load_network("lenet-5")
    for p in (0.0, 0.7):
        values = set(t.where(prune=p).column("accuracy").tolist())
        assert len(values) == 1
        compressed = le.Network(net.name, [la.with_weight(le.quantize(
            le.prune(la.weight, p) if p else la.weight, bits=4)) for la in net], net.source)
        assert values == {le.accuracy(compressed)}
    assert sweep(le.load_network("lenet-5"), prune=[0.7], bits=[4], formats=["cser"],
                 workers=1, progress=False) == t.where(prune=0.7)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(bits=[4], clusters=[8]), ValueError, "not both"),
    (dict(bits=[1]), ValueError, "bits must be in"),
    (dict(bits=[2.5]), TypeError, "integer"),
    (dict(prune=[1.5]), ValueError, "fraction"),
    (dict(bits=[]), ValueError, "bits is empty"),
    (dict(method="kmeans", bits=[4]), ValueError, "takes clusters"),
    (dict(method="median"), ValueError, "method must be"),
    (dict(formats=["coo"]), KeyError, "coo"),
    (dict(formats=[]), ValueError, "formats is empty"),
    (dict(policy="tight"), ValueError, "policy"),
    (dict(workers=0), ValueError, "workers"),
    (dict(progress="yes"), TypeError, "progress"),
])
def test_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        sweep("lenet-300-100", **kwargs)


def test_bad_network():
    with pytest.raises(TypeError, match="network must be"):
        sweep(42)
    with pytest.raises(FileNotFoundError):
        sweep("no-such-model.safetensors")


# --- execution: local processes, Dask, killed workers, resume -----------------------------

def test_local_processes_give_the_same_table(ckpt, reference):
    assert sweep(ckpt, **SETTINGS, workers=2, progress=False) == reference


def test_a_network_in_memory_is_sent_as_arrays(ckpt, reference):
    net = le.load_network(ckpt)
    copied = le.Network(net.name, [la.with_weight(np.array(la.weight)) for la in net])
    assert sweep(copied, **SETTINGS, workers=2, progress=False) == reference


def test_dask_gives_the_same_table(client, ckpt, reference):
    seen = []
    t = sweep(ckpt, **SETTINGS, client=client, progress=lambda *a: seen.append(a))
    assert t == reference
    assert seen[-1][:2] == (len(LAYERS) * N_SETTINGS, len(LAYERS) * N_SETTINGS)


def test_dask_worker_killed_mid_sweep_loses_and_duplicates_nothing(client, ckpt, reference,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setattr(_tasks, "run_task",
                        functools.partial(_kill_once, str(tmp_path), "blocks.3.proj.weight"))
    out = tmp_path.parent / f"{tmp_path.name}.jsonl"
    t = sweep(ckpt, **SETTINGS, client=client, out=out, progress=False)
    assert os.path.exists(tmp_path / "killed")
    assert t == reference
    entries = [json.loads(line) for line in open(out)][1:]
    assert sum(len(e["rows"]) for e in entries) == len(reference)  # each pair logged once
    assert sorted(set(_executions(tmp_path))) == sorted(LAYERS)


def test_local_worker_killed_mid_sweep_is_run_again(ckpt, reference, tmp_path, monkeypatch):
    monkeypatch.setattr(_tasks, "run_task",
                        functools.partial(_kill_once, str(tmp_path), "blocks.1.proj.weight"))
    assert sweep(ckpt, **SETTINGS, workers=2, progress=False) == reference
    assert os.path.exists(tmp_path / "killed")


def test_resume_skips_finished_tasks(ckpt, reference, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    out = tmp_path / "sweep.jsonl"
    monkeypatch.setattr(_tasks, "run_task", functools.partial(_stop_after, str(runs), 2))
    with pytest.raises(KeyboardInterrupt):
        sweep(ckpt, **SETTINGS, workers=1, out=out, progress=False)
    first = _executions(runs)
    assert len(first) == 2
    with open(out, "a") as fp:
        fp.write('{"rows": [{"layer": "cut sh')  # a line cut short by the interruption
    monkeypatch.setattr(_tasks, "run_task", functools.partial(_counting, str(runs)))
    t = sweep(ckpt, **SETTINGS, workers=1, out=out, progress=False)
    assert t == reference
    assert len(_executions(runs)) == len(LAYERS)  # one task per layer, none run twice
    assert sorted(_executions(runs)) == sorted(LAYERS)
    # a finished log: nothing runs again, and its rows are the table's
    assert sweep(ckpt, **SETTINGS, workers=1, out=out, progress=False) == reference
    assert len(_executions(runs)) == len(LAYERS)
    assert len(SweepTable.read(out)) == len(reference)


def test_resume_refuses_a_log_of_other_options(ckpt, tmp_path):
    out = tmp_path / "s.jsonl"
    sweep(ckpt, prune=[0.5], bits=[3], workers=1, out=out, progress=False)
    with pytest.raises(ValueError, match="other formats"):
        sweep(ckpt, prune=[0.5], bits=[3], formats=["csr"], workers=1, out=out,
              progress=False)
    (tmp_path / "x.jsonl").write_text('{"rows": []}\n')
    with pytest.raises(ValueError, match="not a sweep log"):
        sweep(ckpt, prune=[0.5], bits=[3], workers=1, out=tmp_path / "x.jsonl",
              progress=False)


# --- command line -------------------------------------------------------------------------

def test_cli_writes_csv_or_json_and_resumes(ckpt, reference, tmp_path, capsys):
    out = tmp_path / "s.csv"
    args = ["sweep", ckpt, "--prune", "0.5,0.8", "--bits", "3,none", "--workers", "1",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert SweepTable.read(out) == reference
    log = tmp_path / "s.csv.log.jsonl"
    assert len(SweepTable.read(log)) == len(reference)
    assert main(args[:-3] + ["--out", str(tmp_path / "s.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["columns"] == list(COLUMNS)
    assert main(["sweep", "lenet-300-100", "--method", "kmeans", "--bits", "3",
                 "--workers", "1", "--out", str(tmp_path / "k.csv")]) == 0
    assert set(SweepTable.read(tmp_path / "k.csv").column("levels").tolist()) == {8}


@pytest.mark.parametrize("extra, message", [
    (["--bits", "4", "--out", "x.txt"], "must end in .csv or .json"),
    (["--bits", "four", "--out", "x.csv"], "not an integer"),
    (["--prune", "2", "--bits", "4", "--out", "x.csv"], "fraction"),
    (["--bits", "4", "--clusters", "8", "--out", "x.csv"], "not both"),
    (["--bits", "4", "--workers", "0", "--out", "x.csv"], "workers"),
])
def test_cli_bad_input_exits_2_with_one_line(extra, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "lenet-300-100", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
