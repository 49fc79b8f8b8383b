"""SPEC §2 worked example and padding case, arrays exact (and the references agree)."""

from __future__ import annotations

import numpy as np
import pytest
from reference import ref_cer, ref_cser, ref_dot, ref_omega_counts, tolerance

import lowentropy as le

pytestmark = pytest.mark.nojit

W_EXAMPLE = np.array([
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
], dtype=np.float64)

W_PADDING = W_EXAMPLE.copy()
W_PADDING[1] = [3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2]

OMEGA = [0.0, 4.0, 3.0, 2.0]
COL_IDX = [4, 9, 11, 1, 8, 3, 7, 0, 1, 5, 8, 9, 11, 0, 3, 7, 10, 11, 2, 3, 4, 5, 8, 9, 7]
PAD_COL_IDX = [4, 9, 11, 1, 8, 3, 7, 0, 1, 5, 11, 0, 3, 7, 10, 11, 2, 3, 4, 5, 8, 9, 7]

EXPECTED = {
    ("example", "cer"): {
        "omega": OMEGA,
        "col_idx": COL_IDX,
        "omega_ptr": [0, 3, 5, 7, 13, 18, 19, 24, 25],
        "row_ptr": [0, 3, 4, 6, 8],
    },
    ("example", "cser"): {
        "omega": OMEGA,
        "col_idx": COL_IDX,
        "omega_idx": [1, 2, 3, 1, 1, 2, 1, 2],
        "omega_ptr": [0, 3, 5, 7, 13, 18, 19, 24, 25],
        "row_ptr": [0, 3, 4, 6, 8],
    },
    ("padding", "cer"): {
        "omega": OMEGA,
        "col_idx": PAD_COL_IDX,
        "omega_ptr": [0, 3, 5, 7, 7, 10, 11, 16, 17, 22, 23],
        "row_ptr": [0, 3, 6, 8, 10],
    },
    ("padding", "cser"): {
        "omega": OMEGA,
        "col_idx": PAD_COL_IDX,
        "omega_idx": [1, 2, 3, 2, 3, 1, 2, 1, 2],
        "omega_ptr": [0, 3, 5, 7, 10, 11, 16, 17, 22, 23],
        "row_ptr": [0, 3, 5, 7, 9],
    },
}
MATRICES = {"example": W_EXAMPLE, "padding": W_PADDING}
CLASSES = {"cer": le.CER, "cser": le.CSER}


def _as_lists(arrays):
    return {name: np.asarray(a).tolist() for name, a in arrays.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case, fmt", sorted(EXPECTED))
def test_arrays_exact(case, fmt, dtype):
    W = MATRICES[case].astype(dtype)
    f = CLASSES[fmt].from_dense(W)
    arrays = f.arrays()
    expected = EXPECTED[case, fmt]
    assert list(arrays) == list(expected)  # names and order (SPEC §2)
    assert _as_lists(arrays) == expected
    assert arrays["omega"].dtype == np.dtype(dtype)
    f.check()
    assert f.K == 4
    assert f.N == len(expected["col_idx"])
    assert f.G == len(expected["omega_ptr"]) - 1
    out = f.to_dense()
    assert out.dtype == np.dtype(dtype)
    assert np.array_equal(out, W)


@pytest.mark.parametrize("case, fmt", sorted(EXPECTED))
def test_reference_encoders_reproduce_the_spec(case, fmt):
    """The references of tests/reference.py are checked against the SPEC itself."""
    ref = {"cer": ref_cer, "cser": ref_cser}[fmt](MATRICES[case])
    assert _as_lists(ref) == EXPECTED[case, fmt]


@pytest.mark.parametrize("case, fmt", sorted(EXPECTED))
def test_built_from_spec_arrays(case, fmt):
    """The constructor accepts the SPEC's arrays and decodes them to the matrix."""
    expected = EXPECTED[case, fmt]
    arrays = {k: np.array(v, dtype=np.float64 if k == "omega" else np.int64)
              for k, v in expected.items()}
    f = CLASSES[fmt]((4, 12), np.float64, **arrays)
    assert np.array_equal(f.to_dense(), MATRICES[case])
    assert _as_lists(f.arrays()) == expected


def test_example_statistics():
    s = le.stats(W_EXAMPLE)
    assert s.omega.tolist() == OMEGA
    assert s.counts.tolist() == [23, 19, 4, 2]
    assert dict(zip(s.omega.tolist(), s.counts.tolist(), strict=True)) == {
        0: 23, 4: 19, 3: 4, 2: 2}
    assert s.K == 4
    assert round(s.H, 4) == 1.5276
    assert s.N == 25
    assert s.nnz == 25
    assert s.zeros == 23
    assert s.p0 == pytest.approx(23 / 48)
    assert s.sparsity == pytest.approx(23 / 48)
    assert s.groups_cer.tolist() == [3, 1, 2, 2]
    assert s.groups_cser.tolist() == [3, 1, 2, 2]
    assert s.G_cer == s.G_cser == 8
    assert round(le.entropy(W_EXAMPLE), 4) == 1.5276
    omega, counts = ref_omega_counts(W_EXAMPLE)
    assert omega.tolist() == OMEGA and counts.tolist() == [23, 19, 4, 2]


def test_padding_statistics():
    s = le.stats(W_PADDING)
    assert s.omega.tolist() == OMEGA
    assert s.counts.tolist() == [25, 13, 7, 3]
    assert s.N == 23
    assert s.groups_cer.tolist() == [3, 3, 2, 2]
    assert s.groups_cser.tolist() == [3, 2, 2, 2]
    assert (s.G_cer, s.G_cser) == (10, 9)


@pytest.mark.parametrize("name", sorted(le.FORMATS))
@pytest.mark.parametrize("case", sorted(MATRICES))
def test_example_products(name, case):
    W = MATRICES[case]
    f = le.FORMATS[name].from_dense(W)
    x = np.linspace(-1.0, 2.0, 12)
    X = np.stack([x, x[::-1], np.ones(12)], axis=1)
    assert np.all(np.abs(f @ x - ref_dot(W, x)) <= tolerance(W, x))
    assert np.all(np.abs(f @ X - ref_dot(W, X)) <= tolerance(W, X))
    # integer data: exact
    xi = np.arange(12.0)
    assert np.array_equal(f @ xi, W @ xi)


def test_example_with_nonzero_omega0():
    """The example shifted by 1: ω_0 = 1 is implicit, 1 is not stored, products exact."""
    W = W_EXAMPLE + 1.0
    for cls in (le.CER, le.CSER):
        f = cls.from_dense(W)
        a = f.arrays()
        assert a["omega"].tolist() == [1.0, 5.0, 4.0, 3.0]
        assert a["col_idx"].tolist() == COL_IDX
        assert a["row_ptr"].tolist() == [0, 3, 4, 6, 8]
        assert np.array_equal(f.to_dense(), W)
        x = np.arange(12.0)
        assert np.array_equal(f @ x, W @ x)
