"""Bad input: clear errors, never a crash (SPEC §1, and every invariant of §2).

The corrupted-array cases each break exactly one invariant, chosen so that only the check
of that invariant can catch it (every other check still passes); ``match=`` pins the error
to that check, so a removed or weakened check makes its case fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import VALUE_ARRAYS, ref_cer, ref_cser

import lowentropy as le

pytestmark = pytest.mark.nojit

FORMAT_NAMES = list(le.FORMATS)
TARGETS = {
    **{name: le.FORMATS[name].from_dense for name in FORMAT_NAMES},
    "stats": le.stats,
    "entropy": le.entropy,
}

# SPEC §2 padding case: CER has an empty group (row 1, rank 1).
W_PAD = np.array([
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
], dtype=np.float64)
OMEGA = [0.0, 4.0, 3.0, 2.0]
# its groups, row by row: CER (one column list per rank 1..r_i) and CSER ((rank, columns))
CER_ROWS = [
    [[4, 9, 11], [1, 8], [3, 7]],
    [[], [0, 1, 5], [11]],
    [[0, 3, 7, 10, 11], [2]],
    [[3, 4, 5, 8, 9], [7]],
]
CSER_ROWS = [
    [(1, [4, 9, 11]), (2, [1, 8]), (3, [3, 7])],
    [(2, [0, 1, 5]), (3, [11])],
    [(1, [0, 3, 7, 10, 11]), (2, [2])],
    [(1, [3, 4, 5, 8, 9]), (2, [7])],
]
W_TIES = np.array([[0, 1, 2], [0, 2, 1], [0, 0, 0]], dtype=np.float64)  # counts 5, 2, 2


def cer_arrays(rows, omega=OMEGA) -> dict[str, np.ndarray]:
    col_idx, omega_ptr, row_ptr = [], [0], [0]
    for groups in rows:
        for cols in groups:
            col_idx += cols
            omega_ptr.append(len(col_idx))
        row_ptr.append(row_ptr[-1] + len(groups))
    return {"omega": np.array(omega, np.float64), "col_idx": np.array(col_idx, np.int64),
            "omega_ptr": np.array(omega_ptr, np.int64), "row_ptr": np.array(row_ptr, np.int64)}


def cser_arrays(rows, omega=OMEGA) -> dict[str, np.ndarray]:
    col_idx, omega_idx, omega_ptr, row_ptr = [], [], [0], [0]
    for groups in rows:
        for rank, cols in groups:
            omega_idx.append(rank)
            col_idx += cols
            omega_ptr.append(len(col_idx))
        row_ptr.append(row_ptr[-1] + len(groups))
    return {"omega": np.array(omega, np.float64), "col_idx": np.array(col_idx, np.int64),
            "omega_idx": np.array(omega_idx, np.int64),
            "omega_ptr": np.array(omega_ptr, np.int64), "row_ptr": np.array(row_ptr, np.int64)}


def valid_arrays(name: str, W=W_PAD) -> dict[str, np.ndarray]:
    """Writable copies of a valid format's arrays: index arrays as int64, values and
    packed arrays (codes, bitstreams: words) in their own dtypes."""
    f = le.FORMATS[name].from_dense(W)
    roles = f.storage().roles
    return {k: (v.astype(np.int64) if roles[k] == "index" else v.copy())
            for k, v in f.arrays().items()}


def test_group_helpers_build_the_padding_case():
    for name, arrays in (("cer", cer_arrays(CER_ROWS)), ("cser", cser_arrays(CSER_ROWS))):
        expected = valid_arrays(name)
        assert {k: v.tolist() for k, v in arrays.items()} == {
            k: v.tolist() for k, v in expected.items()}
        f = le.FORMATS[name](W_PAD.shape, np.float64, **arrays)
        assert np.array_equal(f.to_dense(), W_PAD)


# --- the matrix W -------------------------------------------------------------------------

def _with_bad(value, dtype=np.float64) -> np.ndarray:
    W = np.zeros((4, 5), dtype)
    W[0, 1] = 1.0
    for pos in ((1, 2), (2, 0), (3, 4)):
        W[pos] = value
    return W


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, "mixed"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_non_finite_weights(target, bad, dtype):
    if bad == "mixed":
        W = _with_bad(np.nan, dtype)
        W[2, 0], W[3, 4] = np.inf, -np.inf
    else:
        W = _with_bad(bad, dtype)
    with pytest.raises(ValueError) as info:
        TARGETS[target](W)
    msg = str(info.value)
    assert "3" in msg.replace("(1, 2)", ""), msg  # how many
    assert "(1, 2)" in msg, msg  # the first position (row-major order)


@pytest.mark.parametrize("target", list(TARGETS))
def test_single_non_finite_weight(target):
    W = np.ones((3, 3), np.float32)
    W[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"\b1\b.*\(2, 1\)"):
        TARGETS[target](W)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("W", [
    np.zeros(5), np.zeros((2, 3, 4)), np.float64(1.0), np.zeros((1, 1, 1)), [1.0, 2.0],
], ids=["1d", "3d", "0d", "1x1x1", "list1d"])
def test_weights_must_be_2d(target, W):
    with pytest.raises(ValueError, match="2-D"):
        TARGETS[target](W)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("W", [
    np.zeros((2, 3), np.complex128),
    np.ones((2, 2), np.complex64),
    np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object),
    np.array([["a", "b"], ["c", "d"]]),
    np.array([[b"a", b"b"]]),
    np.zeros((2, 2), "datetime64[s]"),
], ids=["complex128", "complex64", "object", "str", "bytes", "datetime"])
def test_weights_must_be_real(target, W):
    with pytest.raises(TypeError):
        TARGETS[target](W)


@pytest.mark.parametrize("target", list(TARGETS))
def test_int64_beyond_float64_precision(target):
    W = np.array([[2**53 + 1, 0], [0, 1]], dtype=np.int64)
    with pytest.raises(ValueError):
        TARGETS[target](W)


# --- the operand x ------------------------------------------------------------------------

@pytest.fixture(params=FORMAT_NAMES)
def f(request):
    return le.FORMATS[request.param].from_dense(W_PAD)


@pytest.mark.parametrize("x", [
    np.ones(11), np.ones(13), np.ones(0), np.ones((11, 2)), np.ones((13, 1)),
    np.ones((12, 2, 2)), np.ones((1, 12)), np.float64(1.0),
], ids=["short", "long", "empty", "batch_short", "batch_long", "3d", "row", "0d"])
def test_operand_shape(f, x):
    with pytest.raises(ValueError):
        f @ x
    with pytest.raises(ValueError):
        f.dot(x)


@pytest.mark.parametrize("x", [
    np.ones(12, np.complex128), np.ones((12, 2), np.complex64),
    np.array([1.0] * 12, dtype=object), np.array(["1"] * 12),
], ids=["complex", "complex_batch", "object", "str"])
def test_operand_must_be_real(f, x):
    with pytest.raises(TypeError):
        f @ x


# --- corrupted arrays ---------------------------------------------------------------------

def _set(key, index, value):
    def mutate(a):
        a[key] = a[key].copy()
        a[key][index] = value
        return a
    return mutate


def _replace(key, value):
    def mutate(a):
        a[key] = value(a[key]) if callable(value) else value
        return a
    return mutate


def _csr_row0_last(a):  # position of the last entry of row 0
    return int(a["row_ptr"][1]) - 1


# (format, case id, arrays or a mutation of valid_arrays(format), match)
CORRUPTIONS = [
    # Dense
    ("dense", "values_wrong_length", _replace("values", lambda v: v[:-1]), "length"),
    ("dense", "values_2d", _replace("values", lambda v: v.reshape(4, 12)), "1-D"),
    ("dense", "values_nan", _set("values", 5, np.nan), "NaN"),
    ("dense", "values_inf", _set("values", 5, -np.inf), "NaN or infinite"),
    ("dense", "values_wrong_dtype", _replace("values", lambda v: v.astype(np.float32)),
     "dtype"),
    ("dense", "values_integer", _replace("values", lambda v: v.astype(np.int64)), "floating"),
    # CSR
    ("csr", "col_idx_out_of_range", lambda a: _set("col_idx", _csr_row0_last(a), 12)(a),
     "out of range"),
    ("csr", "col_idx_negative", _set("col_idx", 0, -1), "out of range"),
    ("csr", "row_ptr_non_monotone", lambda a: _set("row_ptr", 1, a["row_ptr"][-1])(a),
     "non-decreasing"),
    ("csr", "row_ptr_first_not_0", _set("row_ptr", 0, 1), r"row_ptr\[0\]"),
    ("csr", "row_ptr_last_not_nnz", _replace("row_ptr", lambda p: np.append(p[:-1], p[-1] - 1)),
     r"row_ptr\[-1\]"),
    ("csr", "row_ptr_wrong_length", _replace("row_ptr", lambda p: np.append(p, p[-1])),
     "row_ptr must have length"),
    ("csr", "col_idx_wrong_length", _replace("col_idx", lambda c: np.append(c, 0)),
     "col_idx must have length"),
    ("csr", "zero_in_values", _set("values", 3, 0.0), "zeros"),
    ("csr", "negative_zero_in_values", _set("values", 3, -0.0), "zeros"),
    ("csr", "nan_in_values", _set("values", 3, np.nan), "NaN"),
    ("csr", "inf_in_values", _set("values", 3, np.inf), "NaN or infinite"),
    ("csr", "duplicate_column", lambda a: _set("col_idx", 1, a["col_idx"][0])(a),
     "strictly ascending"),
    ("csr", "columns_not_ascending",
     lambda a: _replace("col_idx", lambda c: np.concatenate([c[1::-1], c[2:]]))(a),
     "strictly ascending"),
    ("csr", "values_wrong_dtype", _replace("values", lambda v: v.astype(np.float32)), "dtype"),
    ("csr", "float_row_ptr", _replace("row_ptr", lambda p: p.astype(np.float64)),
     "integer dtype"),
]

_REF = {"cer": ref_cer, "cser": ref_cser}
_TWO_GROUPS = {  # row 0: column 9 in the groups of ranks 1 and 2 (column 8 dropped)
    "cer": cer_arrays([[[4, 9, 11], [1, 9], [3, 7]], *CER_ROWS[1:]]),
    "cser": cser_arrays([[(1, [4, 9, 11]), (2, [1, 9]), (3, [3, 7])], *CSER_ROWS[1:]]),
}

for fmt in ("cer", "cser"):
    CORRUPTIONS += [
        (fmt, "col_idx_out_of_range", _set("col_idx", 2, 12), "out of range"),
        (fmt, "col_idx_negative", _set("col_idx", 0, -1), "out of range"),
        (fmt, "col_idx_2d", _replace("col_idx", lambda c: c[None, :]), "1-D"),
        (fmt, "omega_ptr_non_monotone", _set("omega_ptr", 1, 6),  # [0, 6, 5, ...]
         "omega_ptr must be non-decreasing"),
        (fmt, "omega_ptr_first_not_0", _set("omega_ptr", 0, 1), r"omega_ptr\[0\] must be 0"),
        (fmt, "omega_ptr_last_not_N", _set("omega_ptr", -1, 24), r"omega_ptr\[-1\] must be 23"),
        (fmt, "col_idx_shorter_than_N", _replace("col_idx", lambda c: c[:-1]),
         r"omega_ptr\[-1\] must be 22"),
        (fmt, "omega_ptr_empty", _replace("omega_ptr", np.zeros(0, np.int64)), "omega_ptr"),
        (fmt, "row_ptr_non_monotone", _set("row_ptr", 1, 7), "row_ptr must be non-decreasing"),
        (fmt, "row_ptr_last_not_G", _set("row_ptr", -1, 7), r"row_ptr\[-1\] must be"),
        (fmt, "row_ptr_wrong_length", _replace("row_ptr", lambda p: np.append(p, p[-1])),
         "row_ptr must have length 5"),
        (fmt, "float_row_ptr", _replace("row_ptr", lambda p: p.astype(np.float64)),
         "integer dtype"),
        (fmt, "nan_in_omega", _set("omega", 3, np.nan), "NaN"),
        (fmt, "inf_in_omega", _set("omega", 2, np.inf), "NaN or infinite"),
        (fmt, "omega_wrong_dtype", _replace("omega", lambda o: o.astype(np.float32)), "dtype"),
        (fmt, "omega_2d", _replace("omega", lambda o: o[None, :]), "1-D"),
        (fmt, "omega_empty", _replace("omega", np.zeros(0)), "empty exactly when"),
        (fmt, "omega_repeated_value", _set("omega", 2, 4.0), "distinct"),
        (fmt, "omega_signed_zero_twice", _set("omega", 3, -0.0), "distinct"),
        (fmt, "omega_value_occurs_nowhere",  # a trailing value of count 0: order still holds
         _replace("omega", lambda o: np.append(o, 7.0)), "occurs nowhere"),
        (fmt, "omega_not_ordered_by_count",  # 3 (count 7) ranked before 4 (count 13)
         _REF[fmt](W_PAD, omega=[0.0, 3.0, 4.0, 2.0]), "decreasing count"),
        (fmt, "omega0_not_most_frequent",
         _REF[fmt](W_PAD, omega=[4.0, 0.0, 3.0, 2.0]), "decreasing count"),
        (fmt, "omega_ties_not_ascending",  # 1 and 2 both occur twice
         _REF[fmt](W_TIES, omega=[0.0, 2.0, 1.0]), "ties by ascending value"),
        (fmt, "column_in_two_groups_of_a_row", _TWO_GROUPS[fmt], "more than once"),
        (fmt, "columns_not_ascending_in_group", _set("col_idx", slice(0, 3), [9, 4, 11]),
         "strictly ascending within a group"),
        (fmt, "column_repeated_in_group", _set("col_idx", slice(0, 3), [4, 9, 9]),
         "strictly ascending within a group"),
    ]

CORRUPTIONS += [
    # CER: a row's last group is never empty (row 2 gets an empty rank-3 group)
    ("cer", "row_ends_with_empty_group",
     cer_arrays([*CER_ROWS[:2], [*CER_ROWS[2], []], CER_ROWS[3]]), "ends with an empty group"),
    # CER: row 0 with a group of rank 4 = K
    ("cer", "rank_beyond_K", cer_arrays([[[4, 9, 11], [1, 8], [3], [7]], *CER_ROWS[1:]]),
     r"rank must lie in \[1, 4\)"),
    # CSER
    ("cser", "empty_group",
     cser_arrays([CSER_ROWS[0], [(1, []), *CSER_ROWS[1]], *CSER_ROWS[2:]]),
     "must not be empty"),
    ("cser", "omega_idx_zero", cser_arrays([[(0, [4, 9, 11]), *CSER_ROWS[0][1:]], *CSER_ROWS[1:]]),
     r"rank must lie in \[1, 4\)"),
    ("cser", "omega_idx_negative",
     cser_arrays([[(-1, [4, 9, 11]), *CSER_ROWS[0][1:]], *CSER_ROWS[1:]]),
     r"rank must lie in \[1, 4\)"),
    ("cser", "omega_idx_equal_to_K",
     cser_arrays([[*CSER_ROWS[0][:2], (4, [3, 7])], *CSER_ROWS[1:]]),
     r"rank must lie in \[1, 4\)"),
    ("cser", "omega_idx_not_ascending_in_row",  # two groups of equal size swap values
     cser_arrays([[CSER_ROWS[0][0], (3, [1, 8]), (2, [3, 7])], *CSER_ROWS[1:]]),
     "strictly ascending within a row"),
    ("cser", "omega_idx_repeated_in_row",
     cser_arrays([[CSER_ROWS[0][0], (2, [1, 8]), (2, [3, 7])], *CSER_ROWS[1:]]),
     "strictly ascending within a row"),
    ("cser", "omega_idx_wrong_length", _replace("omega_idx", lambda o: o[:-1]), "omega_idx"),
    ("cser", "omega_idx_float", _replace("omega_idx", lambda o: o.astype(np.float64)),
     "omega_idx"),
]


def _build(case):
    """(format class, shape, arrays) of a corruption case."""
    name, case_id, spec, _ = case
    arrays = spec(valid_arrays(name)) if callable(spec) else {
        k: np.array(v) for k, v in spec.items()}
    shape = W_TIES.shape if "ties" in case_id else W_PAD.shape
    return le.FORMATS[name], shape, arrays


@pytest.mark.parametrize("case", CORRUPTIONS, ids=[f"{c[0]}-{c[1]}" for c in CORRUPTIONS])
def test_corrupted_arrays_rejected(case):
    F, shape, arrays = _build(case)
    with pytest.raises(ValueError, match=case[3]):
        F(shape, np.float64, **arrays)


@pytest.mark.parametrize("case", [c for c in CORRUPTIONS if c[1] in (
    "omega_not_ordered_by_count", "omega_ties_not_ascending", "column_in_two_groups_of_a_row",
    "omega_idx_not_ascending_in_row", "row_ends_with_empty_group", "empty_group",
)], ids=lambda c: f"{c[0]}-{c[1]}")
def test_corruptions_are_otherwise_consistent(case):
    """The hand-built corruptions break only their invariant: the arrays are well-formed
    and (except for the broken rule) describe a matrix."""
    _, _, arrays = _build(case)
    for name, arr in arrays.items():
        assert arr.ndim == 1
        if name not in VALUE_ARRAYS:
            assert arr.dtype.kind in "iu"
    assert arrays["omega_ptr"][-1] == arrays["col_idx"].size
    assert arrays["row_ptr"][-1] == arrays["omega_ptr"].size - 1
    assert np.all(np.diff(arrays["omega_ptr"]) >= 0)
    assert np.all((arrays["col_idx"] >= 0) & (arrays["col_idx"] < 12))


def test_omega_for_an_empty_matrix_rejected():
    for F in (le.CER, le.CSER):
        f = F.from_dense(np.zeros((0, 3)))
        arrays = dict(f.arrays())
        arrays["omega"] = np.array([1.0])
        with pytest.raises(ValueError, match="empty exactly when"):
            F((0, 3), np.float64, **arrays)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_bad_shape_and_dtype_arguments(name):
    F = le.FORMATS[name]
    arrays = valid_arrays(name)
    for shape in [(-4, 12), (4,), ("four", 12), None, (4, 12, 1)]:
        with pytest.raises(ValueError):
            F(shape, np.float64, **arrays)
    for dtype in [np.int64, np.complex128, object]:
        with pytest.raises(TypeError):
            F(W_PAD.shape, dtype, **arrays)
    # a shape that does not fit the arrays
    with pytest.raises(ValueError):
        F((5, 12), np.float64, **arrays)
    missing = dict(arrays)
    missing.pop(next(iter(missing)))
    with pytest.raises(TypeError):
        F(W_PAD.shape, np.float64, **missing)
    with pytest.raises(TypeError):
        F(W_PAD.shape, np.float64, **arrays, extra=np.zeros(1))


# --- valid but unusual arrays ---------------------------------------------------------------

_BYTESWAP_CASES = [(name, key) for name in FORMAT_NAMES
                   for key in le.FORMATS[name].array_names]


@pytest.mark.parametrize("name, key", _BYTESWAP_CASES, ids=[f"{n}-{k}" for n, k in _BYTESWAP_CASES])
def test_constructor_with_byteswapped_array(name, key):
    """A valid array in non-native byte order is accepted (same format) or refused with
    ValueError; it must never reach a kernel that cannot type it."""
    f = le.FORMATS[name].from_dense(W_PAD)
    arrays = dict(f.arrays())
    arrays[key] = arrays[key].astype(arrays[key].dtype.newbyteorder())
    try:
        g = le.FORMATS[name](f.shape, f.dtype, **arrays)
    except ValueError:
        return
    assert np.array_equal(g.to_dense(), W_PAD)
    x = np.arange(12.0)
    assert np.array_equal(g @ x, f @ x)


_NEGZERO_CASES = {
    "dense": lambda: {"values": np.array([-0.0, 1.0, 0.0, -0.0])},
    "csr": lambda: {"values": np.array([1.0, -0.0]), "col_idx": np.array([1, 0]),
                    "row_ptr": np.array([0, 1, 2])},
    "cer": lambda: {"omega": np.array([-0.0, 1.0]), "col_idx": np.array([1]),
                    "omega_ptr": np.array([0, 1]), "row_ptr": np.array([0, 1, 1])},
    "cser": lambda: {"omega": np.array([-0.0, 1.0]), "col_idx": np.array([1]),
                     "omega_idx": np.array([1]), "omega_ptr": np.array([0, 1]),
                     "row_ptr": np.array([0, 1, 1])},
}
_NEGZERO_RARE = {  # -0.0 as a stored (non-ω_0) value: W = [[1, -0.0], [1, 1]]
    "cer": lambda: {"omega": np.array([1.0, -0.0]), "col_idx": np.array([1]),
                    "omega_ptr": np.array([0, 1]), "row_ptr": np.array([0, 1, 1])},
    "cser": lambda: {"omega": np.array([1.0, -0.0]), "col_idx": np.array([1]),
                     "omega_idx": np.array([1]), "omega_ptr": np.array([0, 1]),
                     "row_ptr": np.array([0, 1, 1])},
}
_NEGZERO_ALL = [(k, v) for k, v in _NEGZERO_CASES.items()] + [
    (k + "-rare", v) for k, v in _NEGZERO_RARE.items()]


@pytest.mark.parametrize("case, make", _NEGZERO_ALL, ids=[c for c, _ in _NEGZERO_ALL])
def test_constructor_negative_zero_normalised_or_rejected(case, make):
    """SPEC §1: -0.0 and +0.0 are one value, normalised to +0.0. A constructor given
    -0.0 must store +0.0 or refuse the arrays; it must not hand -0.0 back."""
    name = case.split("-")[0]
    try:
        f = le.FORMATS[name]((2, 2), np.float64, **make())
    except ValueError:
        return
    for key, arr in f.arrays().items():
        if key in VALUE_ARRAYS:
            assert not np.signbit(arr[arr == 0]).any(), key
    out = f.to_dense()
    assert not np.signbit(out[out == 0]).any()
