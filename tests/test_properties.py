"""Property tests: every format against the naive references of tests/reference.py.

Example counts come from the Hypothesis profiles of conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import (
    SPEC_ARRAYS,
    VALUE_ARRAYS,
    as_matrix,
    ref_arrays,
    ref_dot,
    ref_entropy,
    ref_op_counts,
    ref_stats,
    ref_storage,
    tolerance,
)
from strategies import low_entropy_matrices, matrix_and_batch, matrix_and_vector

import lowentropy as le

pytestmark = pytest.mark.nojit

FORMAT_NAMES = list(le.FORMATS)
SPEC_FORMATS = FORMAT_NAMES  # every registered format has its reference (test below)
POLICIES = ["minimal", "fixed32", "ideal"]


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _check_product(y, W, x) -> None:
    expected = ref_dot(W, x)
    assert y.shape == expected.shape
    assert y.dtype == np.result_type(W.dtype, x.dtype)
    err = np.abs(y.astype(np.float64) - expected)
    tol = tolerance(W, x)
    assert np.all(err <= tol), f"error {err.max()} > tolerance {tol.max()}"


@pytest.mark.parametrize("name", SPEC_FORMATS)
@given(W=low_entropy_matrices())
def test_arrays_equal_reference(name, W):
    f = le.FORMATS[name].from_dense(W)
    got = f.arrays()
    expected = ref_arrays(name, W)
    assert list(got) == list(expected)
    for key, ref in expected.items():
        arr = got[key]
        if key in VALUE_ARRAYS:
            assert arr.dtype == W.dtype, key
            assert np.array_equal(_bits(arr), _bits(ref)), key  # bit for bit, no -0.0
        else:
            assert arr.dtype.kind in "iu", key
            assert arr.tolist() == ref.tolist(), key


@pytest.mark.parametrize("name", FORMAT_NAMES)
@given(W=low_entropy_matrices())
def test_round_trip_and_rebuild(name, W):
    F = le.FORMATS[name]
    f = F.from_dense(W)
    f.check()
    out = f.to_dense()
    assert out.dtype == W.dtype and out.shape == W.shape
    assert np.array_equal(_bits(out), _bits(as_matrix(W)))
    g = F(f.shape, f.dtype, **f.arrays())
    assert np.array_equal(_bits(g.to_dense()), _bits(out))


@pytest.mark.parametrize("name", FORMAT_NAMES)
@given(Wx=matrix_and_vector())
def test_vector_product_within_tolerance(name, Wx):
    W, x = Wx
    _check_product(le.FORMATS[name].from_dense(W) @ x, W, x)


@pytest.mark.parametrize("name", FORMAT_NAMES)
@given(WX=matrix_and_batch())
def test_batch_product_within_tolerance(name, WX):
    W, X = WX
    f = le.FORMATS[name].from_dense(W)
    Y = f @ X
    _check_product(Y, W, X)
    for b in range(X.shape[1]):  # column b of the batch is the product with X[:, b]
        y = f @ X[:, b]
        assert np.all(np.abs(Y[:, b] - y) <= 2 * tolerance(W, X[:, b]))


@given(W=low_entropy_matrices())
def test_stats_equal_reference(W):
    s = le.stats(W)
    ref = ref_stats(W)
    assert s.shape == ref["shape"]
    assert s.dtype == ref["dtype"]
    assert s.omega.dtype == W.dtype
    assert np.array_equal(_bits(s.omega), _bits(ref["omega"]))
    assert s.counts.tolist() == ref["counts"].tolist()
    assert s.K == ref["K"]
    assert s.H == pytest.approx(ref["H"], rel=1e-12, abs=1e-12)
    assert le.entropy(W) == pytest.approx(ref_entropy(W), rel=1e-12, abs=1e-12)
    assert s.H >= 0.0
    assert s.p0 == pytest.approx(ref["p0"])
    assert s.N == ref["N"]
    assert s.zeros == ref["zeros"]
    assert s.nnz == ref["nnz"]
    assert s.sparsity == pytest.approx(ref["sparsity"])
    assert s.groups_cer.tolist() == ref["groups_cer"]
    assert s.groups_cser.tolist() == ref["groups_cser"]
    assert s.G_cer == ref["G_cer"]
    assert s.G_cser == ref["G_cser"]
    for value_bits in (8, 32):
        expected = W.size * ref["H"] + ref["K"] * value_bits
        assert s.entropy_floor_bits(value_bits) == pytest.approx(expected, rel=1e-12)


@given(W=low_entropy_matrices())
def test_group_bounds(W):
    s = le.stats(W)
    assert s.G_cser <= s.G_cer
    assert s.G_cser <= s.N
    assert s.N <= W.size
    assert s.N == W.size - (s.counts[0] if s.K else 0)
    cer, cser = le.CER.from_dense(W), le.CSER.from_dense(W)
    assert (cer.K, cer.N, cer.G) == (s.K, s.N, s.G_cer)
    assert (cser.K, cser.N, cser.G) == (s.K, s.N, s.G_cser)


@pytest.mark.parametrize("name", SPEC_FORMATS)
@given(W=low_entropy_matrices(), value_bits=st.sampled_from([1, 4, 8, 16, 32, 64]))
def test_storage_per_spec(name, W, value_bits):
    f = le.FORMATS[name].from_dense(W)
    arrays = ref_arrays(name, W)
    for policy in POLICIES:
        report = f.storage(policy=policy, value_bits=value_bits)
        expected = ref_storage(name, arrays, W.shape, policy, value_bits)
        assert report.by_array == expected, policy
        assert list(report.by_array) == list(expected)
        assert report.total_bits == sum(expected.values())
        assert report.dense_bits == W.size * value_bits


@pytest.mark.parametrize("name", SPEC_FORMATS)
@given(W=low_entropy_matrices(), batch=st.integers(1, 64))
def test_op_counts_per_spec(name, W, batch):
    f = le.FORMATS[name].from_dense(W)
    st_ = ref_stats(W)
    one = f.op_counts()
    many = f.op_counts(batch=batch)
    for B, ops in ((1, one), (batch, many)):
        expected = ref_op_counts(name, st_, B)
        assert ops.adds == expected["adds"]
        assert ops.mults == expected["mults"]
        assert ops.writes == expected["writes"]
        assert list(ops.reads) == list(expected["reads"])
        for key, count in expected["reads"].items():
            assert ops.reads[key] == pytest.approx(count, rel=1e-12), key
    # per input vector: the format's arrays are read once per batch, x once per vector
    for key in SPEC_ARRAYS[name]:
        assert many.reads[key] == pytest.approx(one.reads[key] / batch, rel=1e-12)
    assert many.reads["x"] == one.reads["x"]
    assert (many.adds, many.mults, many.writes) == (one.adds, one.mults, one.writes)
