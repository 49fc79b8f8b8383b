"""The memory budget: every step that allocates in proportion to the values (not the
shape) is refused above the budget, before it allocates, with the amount it needs."""

from __future__ import annotations

import numpy as np
import pytest

import lowentropy as le
from lowentropy.bench import time_formats
from lowentropy.memory import BUDGET_ENV, check_memory, format_size, parse_size


@pytest.fixture
def budget():
    """Set a budget for one test; the default comes back afterwards."""
    previous = []

    def set_(size):
        previous.append(le.set_memory_budget(size))

    yield set_
    le.set_memory_budget(previous[0] if previous else None)


def distinct(m: int, n: int) -> np.ndarray:
    """A matrix whose weights are all different (K = m·n): unquantized weights."""
    return (np.arange(m * n, dtype=np.float32) + 1).reshape(m, n)


@pytest.mark.parametrize(("text", "value"), [
    ("1000", 1000), (4096, 4096), ("1.5 GB", 3 * 2**29), ("64k", 65536), ("2GiB", 2**31),
    ("1e6", 10**6), (" 7 mb ", 7 * 2**20), (2.5e9, 2_500_000_000),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "lots", "5 parsecs", "-3 GB", "0", 0, -1, float("nan"),
                                 float("inf"), "1 GB 2"])
def test_parse_size_refuses_nonsense(bad):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(bad)
    with pytest.raises(TypeError):
        parse_size(True)


def test_budget_sources_in_order(budget, monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    default = le.memory_budget()
    assert 2**28 <= default  # half of the machine's memory
    monkeypatch.setenv(BUDGET_ENV, "3 GB")
    assert le.memory_budget() == 3 * 2**30
    budget("1 MB")
    assert le.memory_budget() == 2**20
    assert le.set_memory_budget(None) == 2**20
    assert le.memory_budget() == 3 * 2**30
    monkeypatch.setenv(BUDGET_ENV, "plenty")
    with pytest.raises(ValueError, match=f"environment variable {BUDGET_ENV}: not a memory"):
        le.memory_budget()


def test_check_memory_message(budget):
    budget(1000)
    check_memory(1000, "a step")
    with pytest.raises(le.MemoryBudgetError) as err:
        check_memory(3 * 2**30, "sorting a 9×9 matrix", "Quantize first")
    assert isinstance(err.value, MemoryError)
    assert (err.value.needed, err.value.budget) == (3 * 2**30, 1000)
    assert str(err.value) == (f"sorting a 9×9 matrix needs 3.0 GB, over the memory budget of "
                              f"1000 B. Quantize first, or raise the budget ({BUDGET_ENV} or "
                              "lowentropy.set_memory_budget).")
    assert format_size(1.5 * 2**20) == "1.5 MB" and format_size(300 * 2**30) == "300 GB"


def test_cer_padding_on_unquantized_weights_is_refused_before_allocating(budget):
    W = distinct(600, 600)  # CER needs ~10^8 padded groups: 825 MB of pointers
    st = le.stats(W)
    needed = 8 * (st.G_cer + 1)
    budget(needed - 1)
    with pytest.raises(le.MemoryBudgetError, match=(
            r"CER of a 600×600 matrix with 360,000 distinct values pads every row up to the "
            r"rank of its rarest value \([\d,]+ groups\) needs 825 MB")) as err:
        le.CER.from_dense(W)
    assert err.value.needed == needed
    # the same matrix in the other formats fits, and is exact
    for name in ("csr", "cser", "dense"):
        assert np.array_equal(le.FORMATS[name].from_dense(W).to_dense(), W)
    # the accounting needs no encoding at all
    assert le.CER.storage_for(st).total_bits > le.CSR.storage_for(st).total_bits


@pytest.mark.parametrize(("name", "W", "message"), [
    ("cser", distinct(300, 400), r"CSER of a 300×400 matrix with 119,999 groups needs"),
    ("csr", distinct(300, 400), r"CSR of a 300×400 matrix with 120,000 non-zeros needs"),
    ("dense", distinct(300, 400), r"a dense copy of a 300×400 matrix needs"),
    ("cer", np.tile(np.arange(400, dtype=np.float32) % 7, (300, 1)),
     r"listing the 102,600 entries of a 300×400 matrix"),
    ("cser", distinct(800, 400),
     r"ranking the values of a 800×400 matrix with more than 262,144 distinct values"),
])
def test_every_encoding_step_is_guarded(budget, name, W, message):
    # the steps before the one under test fit: listing the entries takes 10 bytes each
    budget(W.nbytes // 2 if "CSER" not in message else 10 * W.size + 1)
    with pytest.raises(le.MemoryBudgetError, match=message):
        le.FORMATS[name].from_dense(W)
    budget(None)
    assert np.array_equal(le.FORMATS[name].from_dense(W).to_dense(), W)


@pytest.mark.parametrize("name", sorted(le.FORMATS))
def test_decoding_a_huge_sparse_matrix_is_refused(budget, name):
    m = n = 1 << 20  # 4 TB dense; a sparse format of it is tiny
    W = np.zeros((1, 3), np.float32)
    W[0, 1] = 2.0
    f = le.FORMATS[name].from_dense(W)
    if name == "efr":  # rows hold words: row 0 coded for n columns, then empty sparse rows
        W = np.zeros((1, n), np.float32)
        W[0, 1] = 2.0
        arrays = dict(le.EFR.from_dense(W).arrays())
        empty_rows = np.full(m - 1, 0b10, np.uint64)  # mode bit 0, gamma(1): no groups
        arrays["bits"] = np.concatenate([arrays["bits"], empty_rows])
        arrays["row_ptr"] = np.concatenate([arrays["row_ptr"],
                                            arrays["row_ptr"][-1] + np.arange(1, m)])
        f = type(f)((m, n), np.float32, **arrays)
    elif "col_idx" in f.arrays():  # sparse formats: rows of ω_0 cost one pointer each
        arrays = dict(f.arrays())
        arrays["row_ptr"] = np.concatenate([arrays["row_ptr"],
                                            np.full(m - 1, arrays["row_ptr"][-1])])
        f = type(f)((m, n), np.float32, **arrays)
        with pytest.raises(le.MemoryBudgetError, match=r"the dense matrix of a 1048576×1048576 "
                                                       rf"{name} matrix needs 4.0 TB"):
            f.to_dense()
        assert np.array_equal(f @ np.ones(n, np.float32), np.r_[2.0, np.zeros(m - 1)])
    else:
        budget(4)
        with pytest.raises(le.MemoryBudgetError, match="needs 12 B"):
            f.to_dense()


def test_stats_and_benchmarks_respect_the_budget(budget):
    W = distinct(800, 400)
    budget(W.nbytes // 2)
    with pytest.raises(le.MemoryBudgetError, match="ranking the values"):
        le.stats(W)
    budget(None)
    st = le.stats(W)
    budget(8 * st.G_cer // 2)
    with pytest.raises(le.MemoryBudgetError, match="CER of a 800×400 matrix"):
        time_formats(W, formats=("dense", "cer"), rounds=1, include_scipy=False)


@pytest.mark.parametrize("W", [distinct(60, 70), np.tile(np.arange(70, dtype=np.float32) % 5,
                                                         (60, 1)), np.zeros((3, 4)),
                               distinct(5, 9).astype(np.float64)])
@pytest.mark.parametrize("name", sorted(le.FORMATS))
def test_encoding_bytes_matches_what_the_encoder_builds(W, name):
    from lowentropy.memory import encoding_bytes

    f = le.FORMATS[name].from_dense(W)
    held = sum(a.nbytes for a in f.arrays().values())
    # the ranks while sorting rows (EFR lists the entries the same way before coding them)
    extra = 8 * le.stats(W).N if name in ("cer", "cser", "efr") else 0
    if name in ("palette", "huffman"):
        extra = 4 * W.size  # the rank of every element while encoding
    assert encoding_bytes(le.stats(W), name) == held + extra
