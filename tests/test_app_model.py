"""The dashboards' logic without widgets (``dashboards.model``)."""

from __future__ import annotations

import numpy as np
import pytest
from dashboards.model import (
    MAX_TIMING_BYTES,
    accuracy_or_none,
    shared_values_note,
    time_within_limits,
    with_layer,
)

import lowentropy as le


def test_formats_too_big_to_time_are_left_out_with_a_reason():
    W = np.random.default_rng(2).standard_normal((300, 2000)).astype(np.float32)
    s = le.stats(W)
    need = le.CER.storage_for(s).by_array["omega_ptr"] // 8
    assert need > 0
    result, notes = time_within_limits(W, s, batch=1, budget=0.02, limit=need)
    assert "cer" in notes and "not timed" in notes["cer"] and "cer" not in result.timings
    assert {"dense", "csr"} <= set(result.timings)
    assert MAX_TIMING_BYTES >= 2**20


def test_timing_stops_when_check_raises():
    W = np.ones((8, 8), np.float32)
    seen = []

    def check():
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        time_within_limits(W, le.stats(W), batch=1, budget=0.01, check=check)
    assert len(seen) == 2  # before the second encoding


def test_the_shared_values_note_names_the_formats_that_lose_to_csr():
    W = np.random.default_rng(1).standard_normal((200, 400)).astype(np.float32)
    s = le.stats(W)
    rows = le.compare(s)
    note = shared_values_note(s, rows)
    bits = {r.format: r.storage_bits for r in rows}
    assert "No shared values" in note and f"{s.K - 1:,} distinct values" in note
    for name in ("cer", "cser"):
        assert (name.upper() in note.split("save.")[-1]) == (bits[name] >= bits["csr"])
    q = le.stats(le.quantize(W, method="uniform", bits=4))
    assert shared_values_note(q, le.compare(q)) == ""


def test_accuracy_before_and_with_one_layer_replaced():
    net = le.load_network("lenet-300-100")
    before = accuracy_or_none(net)
    assert before == pytest.approx(le.accuracy(net))
    layer = net.layers[1]
    zero = np.zeros_like(layer.matrix)
    changed = with_layer(net, layer.name, zero)
    assert [x.name for x in changed] == net.names and changed.name == net.name
    assert not changed[layer.name].weight.any() and changed.layers[0] is net.layers[0]
    assert le.accuracy(changed) < 0.3  # a hidden layer zeroed: chance level
    plain = le.Network("plain", [le.Layer("fc", np.ones((3, 4), np.float32))])
    assert accuracy_or_none(plain) is None
