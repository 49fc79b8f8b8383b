"""The contract every registered format keeps (SPEC §1-§4), parametrized over ``le.FORMATS``.

A format added to the registry is tested here without any change to this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import SPEC_ARRAYS, VALUE_ARRAYS, as_matrix, ref_dot, tolerance

import lowentropy as le

FORMAT_NAMES = list(le.FORMATS)
DTYPES = [np.float32, np.float64]

EXAMPLE = [
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
]


@pytest.fixture(params=FORMAT_NAMES)
def F(request):
    """Each registered format class in turn."""
    return le.FORMATS[request.param]


def _cases(dtype) -> dict[str, np.ndarray]:
    """Named small matrices covering the edge cases of the contract."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(20240611)
    padding = np.array(EXAMPLE, float)
    padding[1] = [3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2]
    nonzero_omega0 = np.full((6, 9), 0.75)
    nonzero_omega0[rng.random((6, 9)) < 0.3] = 0.0
    nonzero_omega0[0, 0] = -0.0
    nonzero_omega0[2, 5] = -2.0
    nonzero_omega0[4, 1:4] = 3.5
    quantized = rng.choice([0.0, 0.5, -0.5, 1.25, -3.0], p=[0.6, 0.15, 0.15, 0.05, 0.05],
                           size=(9, 17))
    many = np.round(rng.standard_normal((20, 30)) * 40) / 8  # K > 256: omega_idx not 8-bit
    many[rng.random((20, 30)) < 0.3] = 0.0
    cases = {
        "example": np.array(EXAMPLE, float),
        "padding": padding,
        "empty_rows": np.array([[0, 0, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0], [0, 3, 0, 0],
                                [0, 0, 0, 0]], float),
        "all_zero": np.zeros((3, 5)),
        "all_omega0_nonzero": np.full((3, 5), 2.5),
        "K1_zero_1x1": np.zeros((1, 1)),
        "K1_nonzero_1x1": np.full((1, 1), -7.25),
        "K1_negative": np.full((4, 3), -0.5),
        "row_1xn": np.array([[0, 1.5, 0, 0, -2, 1.5, 0, 0, 0]]),
        "column_mx1": np.array([[0], [2.0], [0], [0], [-1.0], [2.0], [0]]),
        "rows_0xn": np.zeros((0, 5)),
        "cols_mx0": np.zeros((4, 0)),
        "empty_0x0": np.zeros((0, 0)),
        "ties": np.array([[1, 2, 1, 2], [2, 1, 2, 1]], float),
        "ties_negative": np.array([[-1, 3, 0], [3, 0, -1], [0, -1, 3]], float),
        "ties_rare": np.array([[0, 4, 0, -4], [1, 0, 0, 0], [0, -4, 1, 4]], float),
        "negative_zero": np.array([[-0.0, 1, 0.0], [-0.0, -0.0, 2], [0.0, 1, -0.0]]),
        "negative_zero_only": np.full((2, 3), -0.0),
        "nonzero_omega0_with_zeros": nonzero_omega0,
        "negative_omega0": np.where(rng.random((5, 7)) < 0.7, -1.5, 0.25),
        "quantized": quantized,
        "many_values": many,
        "unquantized": rng.standard_normal((5, 6)),
    }
    return {k: v.astype(dtype) for k, v in cases.items()}


CASE_NAMES = list(_cases(np.float64))


def _extremes(dtype) -> np.ndarray:
    info = np.finfo(dtype)
    sub = np.nextafter(dtype(0), dtype(1))  # smallest subnormal
    return np.array([[info.max, -info.max, sub, -sub, 0.0],
                     [-0.0, info.tiny, -info.tiny, info.eps, sub],
                     [0.0, 0.0, info.max, 1.0, 0.0]], dtype=dtype)


def _bits(a: np.ndarray) -> np.ndarray:
    """Bit patterns of a float array (to compare bit for bit)."""
    return np.ascontiguousarray(a).view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _assert_round_trip(f, W) -> None:
    W = np.asarray(W)
    out = f.to_dense()
    assert isinstance(out, np.ndarray)
    assert out.dtype == W.dtype
    assert out.shape == W.shape
    assert np.array_equal(out, W)
    # bit for bit, once -0.0 is normalised to +0.0 (SPEC §1)
    assert np.array_equal(_bits(out), _bits(as_matrix(W)))
    assert not np.signbit(out[out == 0]).any()


def _assert_within_tolerance(y, W, x) -> None:
    W = np.asarray(W)
    expected = ref_dot(W, x)
    assert y.shape == expected.shape
    assert y.dtype == np.result_type(W.dtype, np.asarray(x).dtype)
    err = np.abs(y.astype(np.float64) - expected)
    tol = tolerance(W, x)
    assert np.all(err <= tol), f"max error {err.max()} exceeds tolerance {tol.max()}"


# --- registry ---------------------------------------------------------------------------

@pytest.mark.nojit
def test_registry_names_and_classes():
    assert {"dense", "csr", "cer", "cser"} <= set(le.FORMATS)
    assert le.FORMATS["dense"] is le.Dense
    assert le.FORMATS["csr"] is le.CSR
    assert le.FORMATS["cer"] is le.CER
    assert le.FORMATS["cser"] is le.CSER
    for name, cls in le.FORMATS.items():
        assert le.get_format(name) is cls
    with pytest.raises(KeyError):
        le.get_format("coo")


# --- round trip -------------------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_round_trip_bit_exact(F, case, dtype):
    W = _cases(dtype)[case]
    f = F.from_dense(W)
    assert f.shape == W.shape
    assert all(type(s) is int for s in f.shape)
    assert f.dtype == np.dtype(dtype)
    f.check()
    _assert_round_trip(f, W)
    for name, arr in f.arrays().items():  # -0.0 is stored as +0.0
        if name in VALUE_ARRAYS:
            assert arr.dtype == np.dtype(dtype)
            assert not np.signbit(arr[arr == 0]).any()


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_extreme_values(F, dtype):
    W = _extremes(dtype)
    f = F.from_dense(W)
    f.check()
    _assert_round_trip(f, W)


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_zero_stored_as_positive_zero(F, dtype):
    W = np.array([[-0.0, 1.0, -0.0], [0.0, -0.0, -2.0]], dtype)
    out = F.from_dense(W).to_dense()
    assert np.array_equal(out, W)
    assert not np.signbit(out[out == 0]).any()
    assert np.signbit(out[1, 2])


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_non_contiguous_inputs(F, dtype):
    W = _cases(dtype)["nonzero_omega0_with_zeros"]
    reference = F.from_dense(np.ascontiguousarray(W))
    big = np.zeros((2 * W.shape[0], 3 * W.shape[1]), dtype)
    big[::2, 1::3] = W
    views = {
        "fortran": np.asfortranarray(W),
        "strided": big[::2, 1::3],
        "transposed": np.ascontiguousarray(W.T).T,
        "reversed": W[::-1].copy()[::-1],
        "read_only": W.copy(),
    }
    views["read_only"].flags.writeable = False
    for label, V in views.items():
        assert np.array_equal(V, W), label
        f = F.from_dense(V)
        _assert_round_trip(f, W)
        for name, arr in f.arrays().items():
            assert np.array_equal(arr, reference.arrays()[name]), (label, name)


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_byteswapped_input(F, dtype):
    """A float32/float64 matrix in non-native byte order is still float32/float64: the
    dtype is kept (SPEC §2: dtype kept) and the values are exact."""
    W = _cases(dtype)["example"]
    swapped = W.astype(W.dtype.newbyteorder())
    assert np.array_equal(swapped, W)
    f = F.from_dense(swapped)
    assert f.dtype == np.dtype(dtype)
    _assert_round_trip(f, W)


@pytest.mark.nojit
@pytest.mark.parametrize("src, expected", [
    (np.bool_, np.float32), (np.int8, np.float32), (np.uint8, np.float32),
    (np.int16, np.float32), (np.uint16, np.float32), (np.float16, np.float32),
    (np.int32, np.float64), (np.int64, np.float64), (np.uint32, np.float64),
])
def test_other_real_dtypes_converted(F, src, expected):
    W = np.array(EXAMPLE).astype(src)
    f = F.from_dense(W)
    assert f.dtype == np.dtype(expected)
    out = f.to_dense()
    assert out.dtype == np.dtype(expected)
    assert np.array_equal(out, W.astype(expected))


@pytest.mark.nojit
def test_nested_lists_accepted(F):
    f = F.from_dense(EXAMPLE)
    assert f.dtype == np.float64
    assert np.array_equal(f.to_dense(), np.array(EXAMPLE, float))


# --- products ---------------------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_products_within_tolerance(F, case, dtype):
    W = _cases(dtype)[case]
    m, n = W.shape
    f = F.from_dense(W)
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, n).astype(dtype)
    y = f @ x
    assert y.shape == (m,)
    _assert_within_tolerance(y, W, x)
    assert np.array_equal(f.dot(x), y)
    for B in (1, 3):
        X = rng.uniform(-2, 2, (n, B)).astype(dtype)
        Y = f @ X
        assert Y.shape == (m, B)
        _assert_within_tolerance(Y, W, X)
    # a batch of one column agrees with the vector product
    assert np.all(np.abs((f @ x[:, None])[:, 0] - y) <= 2 * tolerance(W, x))


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["example", "ties", "K1_nonzero_1x1", "all_omega0_nonzero",
                                  "negative_omega0", "empty_rows"])
def test_products_exact_on_integer_data(F, case, dtype):
    """Small integers and dyadic values: every partial sum is exact, so is the product."""
    W = _cases(dtype)[case]
    x = (np.arange(W.shape[1]) % 7 - 3).astype(dtype)
    assert np.array_equal(F.from_dense(W) @ x, (W.astype(np.float64) @ x).astype(dtype))


@pytest.mark.nojit
@pytest.mark.parametrize("w_dtype", DTYPES)
@pytest.mark.parametrize("x_dtype", [np.float16, np.float32, np.float64, np.int8, np.int16,
                                     np.int32, np.int64, np.uint8, np.bool_])
def test_output_dtype_follows_numpy(F, w_dtype, x_dtype):
    W = _cases(w_dtype)["quantized"]
    f = F.from_dense(W)
    x = (np.arange(W.shape[1]) % 3).astype(x_dtype)
    expected = np.result_type(np.dtype(w_dtype), np.dtype(x_dtype))
    assert expected == (W @ x).dtype  # numpy's own rule
    y = f @ x
    assert y.dtype == expected
    _assert_within_tolerance(y, W, x)
    X = np.stack([x, x[::-1]], axis=1)
    Y = f @ X
    assert Y.dtype == expected
    _assert_within_tolerance(Y, W, X)


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
def test_products_with_non_contiguous_operands(F, dtype):
    W = _cases(dtype)["nonzero_omega0_with_zeros"]
    m, n = W.shape
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, n).astype(dtype)
    X = rng.uniform(-1, 1, (n, 4)).astype(dtype)
    f = F.from_dense(W)
    y, Y = f @ x, f @ X
    x_big = np.zeros(2 * n, dtype)
    x_big[::2] = x
    X_big = np.zeros((n, 8), dtype)
    X_big[:, ::2] = X
    x_ro = x.copy()
    x_ro.flags.writeable = False
    for label, v in {"strided": x_big[::2], "reversed": x[::-1].copy()[::-1],
                     "read_only": x_ro, "list": x.tolist()}.items():
        out = f @ v
        if label == "list":  # a list of Python floats is float64
            _assert_within_tolerance(out, W, np.asarray(v))
        else:
            assert np.array_equal(out, y), label
    for label, V in {"fortran": np.asfortranarray(X), "strided": X_big[:, ::2],
                     "transposed": np.ascontiguousarray(X.T).T}.items():
        assert np.array_equal(f @ V, Y), label
    # the matrix itself Fortran-ordered or strided: same products
    g = F.from_dense(np.asfortranarray(W))
    assert np.array_equal(g @ x, y)
    assert np.array_equal(g @ X, Y)


@pytest.mark.nojit
@pytest.mark.parametrize("case", ["example", "rows_0xn", "cols_mx0", "empty_0x0",
                                  "K1_zero_1x1"])
def test_empty_batch(F, case):
    W = _cases(np.float32)[case]
    m, n = W.shape
    f = F.from_dense(W)
    for x_dtype in (np.float32, np.float64):
        Y = f @ np.zeros((n, 0), x_dtype)
        assert Y.shape == (m, 0)
        assert Y.dtype == np.result_type(np.float32, x_dtype)


@pytest.mark.nojit
@pytest.mark.parametrize("case", ["rows_0xn", "cols_mx0", "empty_0x0"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_products_of_empty_matrices(F, case, dtype):
    W = _cases(dtype)[case]
    m, n = W.shape
    f = F.from_dense(W)
    y = f @ np.ones(n, dtype)
    assert y.shape == (m,) and y.dtype == np.dtype(dtype)
    assert np.array_equal(y, np.zeros(m))
    Y = f @ np.ones((n, 3), dtype)
    assert Y.shape == (m, 3) and np.array_equal(Y, np.zeros((m, 3)))


# --- arrays -------------------------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("case", ["example", "padding", "cols_mx0", "many_values",
                                  "nonzero_omega0_with_zeros"])
def test_arrays_names_order_and_read_only(F, case):
    W = _cases(np.float64)[case]
    f = F.from_dense(W)
    arrays = f.arrays()
    assert isinstance(arrays, dict)
    assert F.name in SPEC_ARRAYS, "every registered format has its SPEC arrays in reference.py"
    assert tuple(arrays) == SPEC_ARRAYS[F.name]
    assert tuple(arrays) == tuple(F.array_names)
    for name, arr in arrays.items():
        assert isinstance(arr, np.ndarray) and arr.ndim == 1, name
        assert not arr.flags.writeable, name
        if arr.size:
            with pytest.raises(ValueError):
                arr[0] = arr[0]
        if name in VALUE_ARRAYS:
            assert arr.dtype == f.dtype
        else:
            assert arr.dtype.kind in "iu", name
    _assert_round_trip(f, W)


@pytest.mark.nojit
def test_arrays_cannot_be_made_writeable(F):
    """The views of ``arrays()`` are read-only for good: numpy lets the writeable flag of
    a view be switched back on when its base is writeable, and a write through it would
    bypass every invariant the constructor checked (the kernels index without bounds
    checks)."""
    f = F.from_dense(np.array(EXAMPLE, float))
    for name, arr in f.arrays().items():
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        assert not arr.flags.writeable, name


@pytest.mark.nojit
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_rebuild_from_own_arrays(F, case, dtype):
    W = _cases(dtype)[case]
    f = F.from_dense(W)
    g = F(f.shape, f.dtype, **f.arrays())
    assert g.shape == f.shape and g.dtype == f.dtype
    fa, ga = f.arrays(), g.arrays()
    assert list(fa) == list(ga)
    for name in fa:
        assert fa[name].dtype == ga[name].dtype, name
        assert np.array_equal(fa[name], ga[name]), name
        assert not np.shares_memory(fa[name], ga[name]), name  # the constructor copies
    g.check()
    _assert_round_trip(g, W)
    n = W.shape[1]
    x = np.linspace(-1, 1, n).astype(dtype)
    X = np.stack([x, -x, np.ones(n, dtype)], axis=1)
    assert np.array_equal(g @ x, f @ x)
    assert np.array_equal(g @ X, f @ X)


@pytest.mark.nojit
def test_rebuild_from_plain_int64_arrays(F):
    """Integer and packed arrays in any integer dtype are accepted (and stored in the
    library's own)."""
    W = _cases(np.float64)["padding"]
    f = F.from_dense(W)
    roles = f.storage().roles
    assert set(roles) == set(f.arrays())
    arrays = {k: (v if roles[k] == "value" else v.astype(np.int64))
              for k, v in f.arrays().items()}
    g = F(f.shape, f.dtype, **arrays)
    for name, arr in g.arrays().items():
        assert arr.dtype == f.arrays()[name].dtype
    _assert_round_trip(g, W)


@pytest.mark.nojit
def test_source_mutation_does_not_leak(F):
    for dtype in DTYPES:
        W = _cases(dtype)["nonzero_omega0_with_zeros"]
        source = W.copy()
        f = F.from_dense(source)
        source[...] = 99
        source[0, 0] = np.nan
        _assert_round_trip(f, W)
        # arrays handed to the constructor are copied too
        arrays = {k: v.copy() for k, v in f.arrays().items()}
        g = F(f.shape, f.dtype, **arrays)
        for arr in arrays.values():
            arr[...] = 0
        _assert_round_trip(g, W)
        g.check()


# --- storage and cost reports -------------------------------------------------------------

@pytest.mark.nojit
@pytest.mark.parametrize("policy", ["minimal", "fixed32", "ideal"])
@pytest.mark.parametrize("case", ["example", "padding", "cols_mx0", "rows_0xn",
                                  "many_values", "all_omega0_nonzero"])
def test_storage_total_is_sum_of_arrays(F, case, policy):
    W = _cases(np.float32)[case]
    f = F.from_dense(W)
    for value_bits in (4, 16, 32):
        report = f.storage(policy=policy, value_bits=value_bits)
        assert list(report.by_array) == list(f.arrays())
        assert report.total_bits == sum(report.by_array.values())
        assert all(isinstance(b, int) and b >= 0 for b in report.by_array.values())
        assert report.dense_bits == W.shape[0] * W.shape[1] * value_bits
    assert f.storage().total_bits == f.storage("minimal", 32).total_bits


@pytest.mark.nojit
def test_storage_and_op_counts_reject_bad_arguments(F):
    f = F.from_dense(np.array(EXAMPLE, float))
    with pytest.raises(ValueError):
        f.storage(policy="compressed")
    with pytest.raises(ValueError):
        f.storage(value_bits=0)
    with pytest.raises(ValueError):
        f.op_counts(batch=0)
    with pytest.raises(ValueError):
        f.op_counts(policy="bogus")


@pytest.mark.nojit
def test_op_counts_shape(F):
    W = np.array(EXAMPLE, float)
    f = F.from_dense(W)
    ops = f.op_counts()
    assert list(ops.reads) == [*f.arrays(), "x"]
    assert ops.writes == W.shape[0]
    assert set(ops.access_bits) == set(ops.reads)
    assert set(ops.array_bytes) == set(ops.reads)
    report = f.storage()
    for name in f.arrays():
        assert ops.array_bytes[name] == report.by_array[name] / 8
        assert ops.access_bits[name] == report.bits_per_entry[name]


# --- larger shapes (compiled kernels) -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_wide_matrix_needs_32_bit_columns(F, dtype):
    """n > 65536: column indices above 16 bits survive encoding and products."""
    rng = np.random.default_rng(11)
    W = rng.choice(np.array([0.0, 1.5, -2.0, 0.25], dtype), p=[0.9, 0.05, 0.03, 0.02],
                   size=(3, 70_001))
    W[:, -1] = [1.5, -2.0, 0.0]
    f = F.from_dense(W)
    f.check()
    _assert_round_trip(f, W)
    if "col_idx" in f.arrays():
        assert f.arrays()["col_idx"].max() == 70_000
    x = rng.uniform(-1, 1, 70_001).astype(dtype)
    _assert_within_tolerance(f @ x, W, x)
    X = rng.uniform(-1, 1, (70_001, 2)).astype(dtype)
    _assert_within_tolerance(f @ X, W, X)


@pytest.mark.parametrize("dtype", DTYPES)
def test_medium_matrix_products(F, dtype):
    rng = np.random.default_rng(5)
    levels = np.array([0.3, 0.0, -0.6, 1.2, -2.4, 0.15], dtype)
    W = levels[rng.choice(6, p=[0.55, 0.2, 0.1, 0.08, 0.05, 0.02], size=(300, 500))]
    f = F.from_dense(W)
    _assert_round_trip(f, W)
    x = rng.uniform(-1, 1, 500).astype(dtype)
    _assert_within_tolerance(f @ x, W, x)
    X = rng.uniform(-1, 1, (500, 16)).astype(dtype)
    _assert_within_tolerance(f @ X, W, X)
