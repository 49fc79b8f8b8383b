"""The energy cost model (SPEC §5): table, width and tier rules, energy, compare."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import low_entropy_matrices

import lowentropy as le
from lowentropy.cost import (
    DEFAULT_TABLE,
    PRESETS,
    CostRow,
    EnergyReport,
    EnergyTable,
    compare,
    energy,
    get_table,
    table_text,
)

pytestmark = pytest.mark.nojit

# SPEC §2 worked example.
W_SPEC = np.array(
    [
        [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
        [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
        [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
        [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
    ],
    dtype=np.float32,
)

# SPEC §5 table, transcribed by hand (pJ).
ADD = {8: 0.2, 16: 0.4, 32: 0.9}
MULT = {8: 0.6, 16: 1.1, 32: 3.7}
MEM_8KB = {8: 1.25, 16: 2.5, 32: 5}
MEM_32KB = {8: 2.5, 16: 5, 32: 10}
MEM_1MB = {8: 12.5, 16: 25, 32: 50}
MEM_DRAM = {8: 250, 16: 500, 32: 1000}


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def pruned_quantized(shape=(64, 256), keep=0.1, levels=16, seed=0) -> np.ndarray:
    """A matrix with ``keep`` of its entries non-zero, drawn from ``levels`` values."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-1, 1, levels + 1, dtype=np.float32)
    grid = grid[grid != 0][:levels]
    W = rng.choice(grid, size=shape).astype(np.float32)
    W[rng.random(shape) >= keep] = 0
    return W


# --- the table ---------------------------------------------------------------------------------


def test_default_table_is_spec_table_exactly():
    t = DEFAULT_TABLE
    assert t is PRESETS["horowitz45nm"]
    assert t.name == "horowitz45nm"
    assert dict(t.add) == ADD
    assert dict(t.mult) == MULT
    assert [(mb, dict(c)) for mb, c in t.memory] == [
        (8192, MEM_8KB), (32768, MEM_32KB), (1048576, MEM_1MB), (math.inf, MEM_DRAM),
    ]
    for w in (8, 16, 32):
        assert t.add_cost(w) == ADD[w]
        assert t.mult_cost(w) == MULT[w]
        assert t.access_cost(w, 100) == MEM_8KB[w]
        assert t.access_cost(w, 10 * 1024) == MEM_32KB[w]
        assert t.access_cost(w, 100 * 1024) == MEM_1MB[w]
        assert t.access_cost(w, 10 * 1024**2) == MEM_DRAM[w]


@pytest.mark.parametrize(
    ("array_bytes", "tier", "cost32"),
    [
        (0, 0, 5), (1, 0, 5), (8192, 0, 5), (8192.125, 1, 10), (8193, 1, 10),
        (32768, 1, 10), (32769, 2, 50), (1048576, 2, 50), (1048576.125, 3, 1000),
        (1048577, 3, 1000), (1e15, 3, 1000),
    ],
)
def test_tier_boundaries_are_inclusive(array_bytes, tier, cost32):
    assert DEFAULT_TABLE.tier(array_bytes) == tier
    assert DEFAULT_TABLE.access_cost(32, array_bytes) == cost32


@pytest.mark.parametrize(
    ("bits", "tabulated", "scale"),
    [(1, 8, 1), (4, 8, 1), (8, 8, 1), (12, 16, 1), (16, 16, 1), (32, 32, 1), (64, 32, 2),
     (48, 32, 1.5)],
)
def test_width_rule(bits, tabulated, scale):
    t = DEFAULT_TABLE
    assert t.add_cost(bits) == approx(scale * ADD[tabulated])
    assert t.mult_cost(bits) == approx(scale * MULT[tabulated])
    assert t.access_cost(bits, 4096) == approx(scale * MEM_8KB[tabulated])
    assert t.access_cost(bits, 2 * 1024**2) == approx(scale * MEM_DRAM[tabulated])


def test_64_bit_costs_twice_32_bit():
    t = DEFAULT_TABLE
    assert t.add_cost(64) == approx(2 * 0.9)
    assert t.mult_cost(64) == approx(2 * 3.7)
    assert t.access_cost(64, 10**9) == approx(2000)


def test_extra_tabulated_width_is_used():
    t = DEFAULT_TABLE.with_costs(add={4: 0.05})
    assert t.add_cost(3) == 0.05
    assert t.add_cost(4) == 0.05
    assert t.add_cost(5) == 0.2


def test_fma_preset_multiply_costs_an_add():
    fma = PRESETS["fma"]
    for bits in (1, 4, 8, 12, 16, 32, 64):
        assert fma.mult_cost(bits) == fma.add_cost(bits) == DEFAULT_TABLE.add_cost(bits)
    assert fma.memory == DEFAULT_TABLE.memory


def test_compute_only_preset_has_free_memory():
    t = PRESETS["compute-only"]
    assert t.add == DEFAULT_TABLE.add and t.mult == DEFAULT_TABLE.mult
    for bits in (8, 32, 64):
        for size in (0, 8192, 1e6, 1e12):
            assert t.access_cost(bits, size) == 0
    counts = le.CSER.from_dense(W_SPEC).op_counts()
    report = energy(counts, "compute-only")
    assert report.total_pj == approx(33 * 0.9 + 8 * 3.7)
    assert report.by_kind()["reads"] == 0 and report.by_kind()["writes"] == 0


def test_presets_are_read_only_and_picklable():
    with pytest.raises(TypeError):
        DEFAULT_TABLE.add[32] = 0.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        DEFAULT_TABLE.name = "x"  # type: ignore[misc]
    for t in PRESETS.values():
        assert pickle.loads(pickle.dumps(t)) == t
        assert hash(EnergyTable.from_dict(t.to_dict())) == hash(t)
        assert eval(repr(t), {"EnergyTable": EnergyTable, "inf": math.inf}) == t


def test_to_dict_from_dict_round_trip_including_json():
    d = DEFAULT_TABLE.to_dict()
    assert d["add"] == ADD and d["mult"] == MULT
    assert d["memory"][0] == {"max_bytes": 8192, **MEM_8KB}
    assert d["memory"][-1]["max_bytes"] == math.inf
    assert EnergyTable.from_dict(d) == DEFAULT_TABLE
    via_json = json.loads(json.dumps(d))  # widths become strings, inf becomes Infinity
    assert EnergyTable.from_dict(via_json) == DEFAULT_TABLE
    d["memory"][-1]["max_bytes"] = None
    assert EnergyTable.from_dict(d) == DEFAULT_TABLE


# --- energy of the worked example ----------------------------------------------------------------


def test_energy_dense_worked_example_by_hand():
    # m = 4, n = 12, 32-bit values: every array is far below 8 KB.
    # adds m·n = 48 at 0.9, mults 48 at 3.7, reads values 48 and x 48 at 5 (32-bit, ≤ 8 KB),
    # writes y 4 at 5.
    expected = 48 * 0.9 + 48 * 3.7 + 48 * 5 + 48 * 5 + 4 * 5  # = 720.8
    report = energy(le.Dense.from_dense(W_SPEC).op_counts())
    assert isinstance(report, EnergyReport)
    assert report.format == "dense" and report.batch == 1 and report.table == "horowitz45nm"
    assert report.by_item == approx(
        {"adds": 48 * 0.9, "mults": 48 * 3.7, "read values": 48 * 5, "read x": 48 * 5,
         "write y": 4 * 5}
    )
    assert report.total_pj == approx(expected)
    assert report.total_pj == approx(720.8)


def test_energy_csr_worked_example_by_hand():
    # nnz = 25. values 32-bit; col_idx ≤ 11 and row_ptr ≤ 25 fit 8 bits (minimal policy).
    expected = (
        25 * 0.9 + 25 * 3.7  # adds, mults
        + 25 * 5  # read values (25 × 32 bit = 100 bytes)
        + 25 * 1.25  # read col_idx (8 bit)
        + 5 * 1.25  # read row_ptr, m + 1 = 5 (8 bit)
        + 25 * 5  # read x, one per stored entry
        + 4 * 5  # write y
    )  # = 422.5
    report = energy(le.CSR.from_dense(W_SPEC).op_counts())
    assert list(report.by_item) == [
        "adds", "mults", "read values", "read col_idx", "read row_ptr", "read x", "write y",
    ]
    assert report.total_pj == approx(expected)
    assert report.total_pj == approx(422.5)


def _grouped_expected(with_omega_idx: bool) -> float:
    # K = 4, N = 25, G = 8, m = 4, n = 12, ω_0 = 0.
    # adds N + G = 33, mults G = 8.
    # omega read G = 8 times (32 bit, 16 bytes); col_idx N = 25 (8 bit: n - 1 = 11);
    # omega_idx G = 8 (8 bit: K - 1 = 3); omega_ptr G + m = 12 (8 bit: N = 25);
    # row_ptr m + 1 = 5 (8 bit: G = 8); x N = 25 (32 bit); y written m = 4 times.
    return (
        33 * 0.9 + 8 * 3.7
        + 8 * 5
        + 25 * 1.25
        + (8 * 1.25 if with_omega_idx else 0)
        + 12 * 1.25
        + 5 * 1.25
        + 25 * 5
        + 4 * 5
    )


def test_energy_cer_worked_example_by_hand():
    report = energy(le.CER.from_dense(W_SPEC).op_counts())
    assert report.total_pj == approx(_grouped_expected(False))
    assert report.total_pj == approx(296.8)
    assert report.by_item["read omega_ptr"] == approx(12 * 1.25)


def test_energy_cser_worked_example_by_hand():
    expected = (
        33 * 0.9 + 8 * 3.7  # adds N + G, mults G
        + 8 * 5  # read omega, G times, 32 bit
        + 25 * 1.25  # read col_idx, N times, 8 bit
        + 8 * 1.25  # read omega_idx, G times, 8 bit
        + 12 * 1.25  # read omega_ptr, G + m times, 8 bit
        + 5 * 1.25  # read row_ptr, m + 1 times, 8 bit
        + 25 * 5  # read x, N times, 32 bit
        + 4 * 5  # write y, m times, 32 bit
    )  # = 306.8
    assert expected == approx(_grouped_expected(True))
    report = energy(le.CSER.from_dense(W_SPEC).op_counts())
    assert report.total_pj == approx(expected)
    assert report.total_pj == approx(306.8)
    kinds = report.by_kind()
    assert kinds == approx({
        "arithmetic": 33 * 0.9 + 8 * 3.7,
        "reads": 8 * 5 + 25 * 1.25 + 8 * 1.25 + 12 * 1.25 + 5 * 1.25 + 25 * 5,
        "writes": 4 * 5,
    })
    assert sum(kinds.values()) == approx(report.total_pj)


def test_energy_accepts_preset_names():
    counts = le.Dense.from_dense(W_SPEC).op_counts()
    # fma: 48 mults cost 0.9 instead of 3.7.
    assert energy(counts, "fma").total_pj == approx(720.8 - 48 * (3.7 - 0.9))
    assert energy(counts, "horowitz45nm").total_pj == energy(counts).total_pj


def test_value_width_and_index_policy_change_the_energy():
    f = le.CSER.from_dense(W_SPEC)
    r16 = energy(f.op_counts(value_bits=16))
    # 16-bit values: adds 0.4, mults 1.1, omega/x reads and y writes 2.5; indices unchanged.
    assert r16.total_pj == approx(
        33 * 0.4 + 8 * 1.1 + 8 * 2.5 + (25 + 8 + 12 + 5) * 1.25 + 25 * 2.5 + 4 * 2.5
    )
    r32 = energy(f.op_counts(policy="fixed32"))
    assert r32.by_item["read col_idx"] == approx(25 * 5)
    ideal = energy(f.op_counts(policy="ideal"))  # 2- to 5-bit indices cost as 8 bits
    assert ideal.total_pj == approx(306.8)


def test_edited_table_changes_the_result():
    counts = le.Dense.from_dense(W_SPEC).op_counts()
    base = energy(counts).total_pj
    cheaper_mult = DEFAULT_TABLE.with_costs(mult={32: 1.0})
    assert cheaper_mult.name == "horowitz45nm (edited)"
    assert cheaper_mult.mult_cost(8) == 0.6  # the other widths kept
    assert energy(counts, cheaper_mult).total_pj == approx(base - 48 * 2.7)
    assert energy(counts, cheaper_mult).table == "horowitz45nm (edited)"

    dearer_sram = DEFAULT_TABLE.with_costs(memory={8192: {32: 6}}, name="mine")
    assert dearer_sram.name == "mine"
    # 48 + 48 reads and 4 writes, all 32-bit in the ≤ 8 KB tier: +1 pJ each.
    assert energy(counts, dearer_sram).total_pj == approx(base + 100)

    d = DEFAULT_TABLE.to_dict()
    d["add"][32] = 0.0
    assert energy(counts, EnergyTable.from_dict(d)).total_pj == approx(base - 48 * 0.9)

    one_tier = DEFAULT_TABLE.replace(memory=((math.inf, {8: 1, 16: 1, 32: 1}),))
    assert energy(counts, one_tier).total_pj == approx(48 * 0.9 + 48 * 3.7 + 100)
    assert energy(counts).total_pj == approx(base)  # the original is untouched


def test_batch_lowers_per_vector_energy_of_array_reads():
    f = le.CSER.from_dense(W_SPEC)
    one = energy(f.op_counts(batch=1))
    four = energy(f.op_counts(batch=4))
    assert four.batch == 4
    for name in ("omega", "col_idx", "omega_idx", "omega_ptr", "row_ptr"):
        assert four.by_item[f"read {name}"] == approx(one.by_item[f"read {name}"] / 4)
        assert four.by_item[f"read {name}"] < one.by_item[f"read {name}"]
    for item in ("adds", "mults", "read x", "write y"):
        assert four.by_item[item] == approx(one.by_item[item])
    assert four.total_pj < one.total_pj


# --- compare ----------------------------------------------------------------------------------


def test_compare_dense_gains_exactly_one():
    rows = compare(W_SPEC)
    assert [r.format for r in rows] == list(le.FORMATS)
    dense = rows[0]
    assert isinstance(dense, CostRow)
    assert dense.storage_gain == dense.ops_gain == dense.energy_gain == 1.0
    assert dense.storage_bits == 4 * 12 * 32
    assert dense.energy_pj == approx(720.8)
    by_name = {r.format: r for r in rows}
    cser = by_name["cser"]
    assert cser.energy_pj == approx(306.8)
    assert cser.energy_gain == approx(720.8 / 306.8)
    assert cser.ops_gain == approx(96 / 41)
    assert cser.ops == 41
    assert cser.reads == 8 + 25 + 8 + 12 + 5 + 25
    assert cser.storage_gain == approx(
        1536 / le.CSER.from_dense(W_SPEC).storage().total_bits
    )


def test_compare_pruned_quantized_cer_cser_smaller_than_dense():
    W = pruned_quantized()
    assert le.stats(W).K == 17
    rows = {r.format: r for r in compare(W)}
    for name in ("cer", "cser"):
        assert rows[name].storage_gain > 1
        assert rows[name].energy_gain > 1
        assert rows[name].ops_gain > 1
    assert rows["dense"].storage_gain == 1.0


def test_compare_without_dense_still_uses_dense_as_reference():
    W = pruned_quantized(shape=(32, 64))
    everything = {r.format: r for r in compare(W)}
    some = compare(W, ["cser", "csr"])
    assert [r.format for r in some] == ["cser", "csr"]
    for r in some:
        assert r == everything[r.format]
    assert compare(W, "cer") == [everything["cer"]]


def test_compare_accepts_encoded_formats():
    W = pruned_quantized(shape=(32, 64))
    expected = {r.format: r for r in compare(W, batch=2, value_bits=16)}
    encoded = {"mine": le.CER.from_dense(W), "cser": le.CSER.from_dense(W)}
    rows = compare(encoded, batch=2, value_bits=16)
    assert [r.format for r in rows] == ["mine", "cser"]
    assert rows[0] == CostRow(**{**vars(expected["cer"]), "format": "mine"})
    assert rows[1] == expected["cser"]
    assert compare(le.CSER.from_dense(W), batch=2, value_bits=16) == [expected["cser"]]
    with_dense = compare({"d": le.Dense.from_dense(W)})
    assert with_dense[0].energy_gain == 1.0


def test_compare_table_and_policy_are_passed_on():
    rows = {r.format: r for r in compare(W_SPEC, table="compute-only", policy="fixed32")}
    assert rows["dense"].energy_pj == approx(48 * 0.9 + 48 * 3.7)
    assert rows["cser"].energy_pj == approx(33 * 0.9 + 8 * 3.7)
    assert rows["cser"].storage_bits == le.CSER.from_dense(W_SPEC).storage("fixed32").total_bits


def test_compare_gains_with_zero_counts():
    Z = np.zeros((3, 5), np.float32)
    rows = {r.format: r for r in compare(Z)}
    assert rows["cser"].ops_gain == math.inf  # no groups: no arithmetic at all
    empty = {r.format: r for r in compare(np.zeros((0, 4), np.float32))}
    assert all(r.ops_gain == 1.0 for r in empty.values())  # 0 / 0: equal, gain 1
    assert empty["dense"].energy_pj == 0 and empty["dense"].energy_gain == 1.0
    assert empty["csr"].energy_pj > 0 and empty["csr"].energy_gain == 0.0  # reads row_ptr


def test_table_text_is_aligned():
    rows = compare(W_SPEC, batch=3)
    text = table_text(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows)
    assert lines[0].split()[:3] == ["format", "storage", "bits"]
    assert len({len(line) for line in lines}) == 1  # numbers right-aligned to one width
    assert [line.split()[0] for line in lines[1:]] == list(le.FORMATS)
    assert "1.00" in lines[1]
    assert "inf" in table_text(compare(np.zeros((3, 5), np.float32)))
    assert table_text([]).split() == lines[0].split()


# --- bad inputs -------------------------------------------------------------------------------


def test_unknown_preset_name():
    counts = le.Dense.from_dense(W_SPEC).op_counts()
    with pytest.raises(KeyError, match="unknown energy table preset 'h45'.*horowitz45nm"):
        get_table("h45")
    with pytest.raises(KeyError, match="presets: horowitz45nm, fma, compute-only"):
        energy(counts, "h45")
    with pytest.raises(KeyError, match="unknown energy table preset"):
        compare(W_SPEC, table="nope")
    with pytest.raises(TypeError, match="EnergyTable or a preset name"):
        get_table(3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"add": {8: -0.1, 16: 0.4, 32: 0.9}}, r"add\[8\]: cost must be finite and >= 0"),
        ({"mult": {8: 0.6, 16: math.nan, 32: 3.7}}, r"mult\[16\]: cost must be finite"),
        ({"mult": {8: 0.6, 16: 1.1, 32: math.inf}}, r"mult\[32\]: cost must be finite"),
        ({"add": {8: 0.2, 32: 0.9}}, r"add: missing cost for width\(s\) \[16\]"),
        ({"add": {0: 0.1, 8: 0.2, 16: 0.4, 32: 0.9}}, "positive integer"),
        ({"add": {8.5: 0.1, 8: 0.2, 16: 0.4, 32: 0.9}}, "positive integer"),
        ({"add": {8: "cheap", 16: 0.4, 32: 0.9}}, "not a number"),
        ({"memory": ((8192, {8: 1, 16: 2, 32: -3}), (math.inf, MEM_DRAM))}, "tier 0"),
        ({"memory": ((8192, {8: 1, 16: 2}), (math.inf, MEM_DRAM))}, r"missing.*\[32\]"),
        ({"memory": ((8192, MEM_8KB), (1024, MEM_32KB), (math.inf, MEM_DRAM))}, "ascending"),
        ({"memory": ((8192, MEM_8KB), (1e6, MEM_1MB))}, "math.inf"),
        ({"memory": ()}, "non-empty"),
        ({"memory": (("big", MEM_8KB),)}, "pair"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_tables_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        DEFAULT_TABLE.replace(**changes)


def test_negative_cost_via_edit_or_dict():
    with pytest.raises(ValueError, match=r"add\[32\]: cost must be finite and >= 0"):
        DEFAULT_TABLE.with_costs(add={32: -1})
    with pytest.raises(ValueError, match=r"memory tier 3.*\[32\]"):
        DEFAULT_TABLE.with_costs(memory={math.inf: {32: -1}})
    with pytest.raises(ValueError, match="no memory tier with max_bytes 4096"):
        DEFAULT_TABLE.with_costs(memory={4096: {32: 1}})
    d = DEFAULT_TABLE.to_dict()
    d["memory"][1][16] = -5
    with pytest.raises(ValueError, match=r"memory tier 1.*\[16\]: cost must be finite and >= 0"):
        EnergyTable.from_dict(d)
    with pytest.raises(ValueError, match="unknown.*'colour'"):
        EnergyTable.from_dict({**DEFAULT_TABLE.to_dict(), "colour": "red"})


@pytest.mark.parametrize("bits", [0, -8, 2.5, True])
def test_bad_widths(bits):
    with pytest.raises(ValueError, match="bits must be a positive integer"):
        DEFAULT_TABLE.add_cost(bits)


def test_bad_sizes_and_arguments():
    with pytest.raises(ValueError, match="array_bytes must be >= 0"):
        DEFAULT_TABLE.access_cost(8, -1)
    with pytest.raises(ValueError, match="array_bytes must be >= 0"):
        DEFAULT_TABLE.access_cost(8, math.nan)
    with pytest.raises(TypeError, match="OpCounts"):
        energy(le.Dense.from_dense(W_SPEC))
    with pytest.raises(KeyError, match="unknown format 'coo'"):
        compare(W_SPEC, ["dense", "coo"])
    with pytest.raises(ValueError, match="no formats"):
        compare(W_SPEC, [])
    with pytest.raises(ValueError, match="shapes"):
        compare({"a": le.CER.from_dense(W_SPEC), "b": le.CER.from_dense(W_SPEC[:2])})
    with pytest.raises(TypeError, match="not a Format"):
        compare({"a": W_SPEC})
    with pytest.raises(TypeError, match="only with a dense matrix"):
        compare({"a": le.CER.from_dense(W_SPEC)}, ["cer"])
    with pytest.raises(ValueError, match="batch"):
        compare(W_SPEC, batch=0)
    with pytest.raises(ValueError, match="policy"):
        compare(W_SPEC, policy="tiny")


# --- accounting from statistics, without encoding --------------------------------------------

@given(W=low_entropy_matrices(), batch=st.integers(1, 9),
       policy=st.sampled_from(le.POLICIES), value_bits=st.sampled_from([4, 16, 32]))
def test_stats_give_the_same_accounting_as_encoded_formats(W, batch, policy, value_bits):
    s = le.stats(W)
    for cls in le.FORMATS.values():
        f = cls.from_dense(W)
        assert cls.storage_for(s, policy, value_bits) == f.storage(policy, value_bits)
        assert cls.op_counts_for(s, batch, policy, value_bits) == f.op_counts(batch, policy,
                                                                               value_bits)
    kw = dict(policy=policy, value_bits=value_bits, batch=batch)
    assert le.compare(s, **kw) == le.compare(W, **kw)
