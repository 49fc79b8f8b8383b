"""Sharded safetensors checkpoints: lazy per-layer maps, index validation, bounded memory."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lowentropy as le
from lowentropy.io.sharded import (
    mapped_origin,
    open_checkpoint,
    release_pages,
)
from lowentropy.sweep import sweep

_CODES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}


def _encode(W: np.ndarray, dtype: str) -> bytes:
    if dtype == "BF16":  # round toward zero: exact reference below
        return (np.asarray(W, "<f4").view("<u4") >> 16).astype("<u2").tobytes()
    return np.asarray(W, _CODES[dtype]).tobytes()


def write_checkpoint(folder, layers: dict, shards: int = 2, dtype: str = "F32",
                     seed: int = 0, extra: dict | None = None) -> dict[str, np.ndarray]:
    """A Hugging Face style sharded checkpoint of random layers, written one tensor at a
    time (never more than one layer in memory). ``layers``: name → shape. Returns the
    expected float32 values only for small checkpoints (else an empty dict)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(layers)
    groups = np.array_split(np.arange(len(names)), shards)
    weight_map, expected = {}, {}
    small = sum(int(np.prod(s)) for s in layers.values()) < 10_000_000
    for k, idx in enumerate(groups):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        head, offset = {}, 0
        for i in idx:
            shape = layers[names[i]]
            nbytes = int(np.prod(shape)) * (4 if dtype == "F32" else 2)
            head[names[i]] = {"dtype": dtype, "shape": list(shape),
                              "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[names[i]] = file
        raw = json.dumps(head).encode()
        raw += b" " * (-len(raw) % 8)
        with open(os.path.join(folder, file), "wb") as fp:
            fp.write(struct.pack("<Q", len(raw)) + raw)
            for i in idx:
                W = rng.standard_normal(layers[names[i]], dtype=np.float32)
                fp.write(_encode(W, dtype))
                if small:
                    if dtype == "BF16":
                        W = (W.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
                    expected[names[i]] = W.astype(np.float16).astype(np.float32) \
                        if dtype == "F16" else W
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map, **(extra or {})}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fp:
        json.dump(index, fp)
    return expected


LAYERS = {f"model.layers.{i}.mlp.weight": (16 + i, 24) for i in (0, 1, 2, 10, 11)}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return str(folder), write_checkpoint(folder, LAYERS, shards=3)


def test_folder_and_index_give_the_mapped_layers_in_natural_order(ckpt):
    folder, expected = ckpt
    for source in (folder, os.path.join(folder, "model.safetensors.index.json")):
        net = le.load_network(source)
        assert net.names == sorted(expected, key=lambda n: int(n.split(".")[2]))
        for layer in net:
            assert layer.weight.dtype == np.float32 and not layer.weight.flags.writeable
            np.testing.assert_array_equal(layer.weight, expected[layer.name])
            assert mapped_origin(layer.weight) == (net.source, layer.name)
    from lowentropy.sweep._source import resolve_source

    assert resolve_source(le.load_network(folder)).kind == "checkpoint"  # sent as a path
    assert le.load_network(folder).name == os.path.basename(folder)
    assert le.load_network(folder, name="x").name == "x"


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_two_byte_shards_stay_two_byte_until_used(tmp_path, dtype):
    expected = write_checkpoint(tmp_path, {"a.weight": (8, 5), "b.weight": (3, 8)}, 2, dtype)
    net = le.load_network(tmp_path)
    name = "bfloat16" if dtype == "BF16" else "float16"
    assert [layer.weight.dtype.name for layer in net] == [name, name]
    for layer in net:
        np.testing.assert_array_equal(np.asarray(layer.weight, np.float32),
                                      expected[layer.name])
        s = le.stats(layer.matrix)  # converted for use
        assert s.dtype == np.float32 and s.K == len(np.unique(expected[layer.name]))
    table = sweep(tmp_path, prune=[0.5], bits=[4], workers=1, progress=False)
    assert set(table.column("source_dtype").tolist()) == {name}
    ref = le.compare(le.stats(le.quantize(le.prune(expected["a.weight"], 0.5), bits=4)))
    assert table.where(layer="a.weight").column("storage_bits").tolist() == \
        [r.storage_bits for r in ref]


def test_bias_and_integer_tensors(tmp_path):
    folder = tmp_path
    W = np.arange(6, dtype="<f4").reshape(3, 2)
    b = np.ones(3, "<f4")
    steps = np.arange(2, dtype="<i8")
    head = {"fc.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
            "fc.bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]},
            "steps": {"dtype": "I64", "shape": [2], "data_offsets": [36, 52]}}
    raw = json.dumps(head).encode()
    with open(folder / "m.safetensors", "wb") as fp:
        fp.write(struct.pack("<Q", len(raw)) + raw + W.tobytes() + b.tobytes()
                 + steps.tobytes())
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: "m.safetensors" for k in head}}))
    net = le.load_network(folder)
    assert net.names == ["fc.weight"]
    np.testing.assert_array_equal(net[0].bias, b)
    assert release_pages(net[0]) and not release_pages(np.zeros(3))
    np.testing.assert_array_equal(net[0].weight, W)  # read again after release


def _index(folder, weight_map, raw: str | None = None):
    path = folder / "model.safetensors.index.json"
    path.write_text(raw if raw is not None else json.dumps({"weight_map": weight_map}))
    return path


@pytest.mark.parametrize("shard, message", [
    ("../outside.safetensors", "plain relative path"),
    ("/etc/passwd", "plain relative path"),
    ("sub/../../x.safetensors", "plain relative path"),
    ("C:\\x.safetensors", "plain relative path"),
    ("", "invalid shard file name"),
])
def test_index_refuses_shards_outside_the_folder(tmp_path, shard, message):
    _index(tmp_path, {"w": shard})
    with pytest.raises(ValueError, match=message):
        le.load_network(tmp_path)


@pytest.mark.parametrize("raw, message", [
    ("{not json", "not a valid checkpoint index"),
    ('{"weight_map": {"a": "x", "a": "y"}}', "twice"),
    ('{"metadata": {}}', "'weight_map' object"),
    ('{"weight_map": {}}', "empty"),
    ('{"weight_map": {"a": 3}}', "shard file name"),
    ("[1]", "'weight_map' object"),
])
def test_index_must_be_a_valid_weight_map(tmp_path, raw, message):
    path = _index(tmp_path, None, raw)
    with pytest.raises(ValueError, match=message):
        le.load_network(path)


def test_missing_shard_and_missing_tensor_are_clear_errors(tmp_path, ckpt):
    folder, _ = ckpt
    index = json.loads(open(os.path.join(folder, "model.safetensors.index.json")).read())
    broken = dict(index["weight_map"], extra="model-00009-of-00009.safetensors")
    for name in set(index["weight_map"].values()):
        os.symlink(os.path.join(folder, name), tmp_path / name)
    _index(tmp_path, broken)
    with pytest.raises(FileNotFoundError, match="missing: model-00009-of-00009"):
        le.load_network(tmp_path)
    _index(tmp_path, dict(index["weight_map"], ghost="model-00001-of-00003.safetensors"))
    with pytest.raises(ValueError, match="not in their shard: ghost"):
        open_checkpoint(tmp_path)
    os.remove(tmp_path / "model.safetensors.index.json")
    with pytest.raises(ValueError, match="no '\\*.safetensors.index.json' for its 3"):
        le.load_network(tmp_path)


def test_a_modified_layer_is_not_taken_for_the_file(ckpt):
    folder, expected = ckpt
    net = le.load_network(folder)
    assert mapped_origin(net[0].weight.T) is None
    assert mapped_origin(net[0].weight[1:]) is None
    changed = le.Network(net.name, [net[0].with_weight(net[0].weight * 0)] + net.layers[1:],
                         net.source)
    table = sweep(changed, prune=[0.0], formats=["dense"], workers=1, progress=False)
    assert table.where(layer=net.names[0]).rows[0]["K"] == 1  # the zeros, not the file


# --- memory: a checkpoint far larger than what a report or sweep may hold -------------------

_PEAK = textwrap.dedent("""
    import sys
    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    import lowentropy, lowentropy.sweep  # baseline: interpreter, numpy, numba
    base = peak_mb()
    if sys.argv[1] == "sweep":
        from lowentropy.sweep import sweep
        t = sweep(sys.argv[2], prune=[0.5], bits=[4], workers=1, progress=False)
        assert len(t) == 24 * len(lowentropy.FORMATS), len(t)
    else:
        from lowentropy.__main__ import main
        assert main(["report", sys.argv[2], "--prune", "0.5", "--bits", "4",
                     "--format", "csv"]) == 0
    print(base, peak_mb(), file=sys.stderr)
""")


@pytest.mark.slow
def test_report_and_sweep_of_a_large_checkpoint_stay_near_one_layer(tmp_path):
    layers = {f"model.layers.{i}.self_attn.q_proj.weight": (4096, 4096) for i in range(24)}
    write_checkpoint(tmp_path, layers, shards=4)
    size_mb = sum(f.stat().st_size for f in tmp_path.iterdir()) / 2**20
    assert size_mb > 1500
    layer_mb = 4096 * 4096 * 4 / 2**20
    for mode in ("sweep", "report"):
        done = subprocess.run([sys.executable, "-c", _PEAK, mode, str(tmp_path)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        base, peak = map(float, done.stderr.split()[-2:])
        # working buffers of one layer (copy, pruned, quantized, statistics), not the file
        assert peak - base < 8 * layer_mb, (mode, base, peak, size_mb)
        assert peak < size_mb / 2, (mode, peak, size_mb)
