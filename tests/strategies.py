"""Hypothesis strategies: low-entropy matrices and the vectors they multiply.

A matrix is drawn as a shape (0 rows and 0 columns included), a dtype (float32 or
float64), a short list of *levels* (the distinct values) and a matrix of level indices.
The index matrix is mostly one "background" level (so that ``ω_0`` dominates, as after
pruning), or dense (so that counts tie and ``ω_0`` is barely the most frequent). Levels
may hold ``0.0`` and ``-0.0`` together (one value for the SPEC), a non-zero background
(``ω_0 ≠ 0``, a matrix quantized without pruning), negative values, and values of very
different magnitudes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "FLOAT_DTYPES", "levels", "low_entropy_matrices", "vectors", "batches",
    "matrix_and_vector", "matrix_and_batch",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

MAX_ROWS = 12
MAX_COLS = 40

# Values worth having as levels: zeros of both signs, small integers (exact sums), a
# non-dyadic value, and magnitudes far apart.
_NICE = (0.0, -0.0, 1.0, -1.0, 0.5, -0.25, 2.0, 3.0, -3.5, 0.1, -0.7, 1e-3, 7.0, 250.0,
         -1024.0)

level_values = st.one_of(
    st.sampled_from(_NICE),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32),
)


def levels(max_levels: int = 6) -> st.SearchStrategy[list[float]]:
    """A short list of level values (duplicates allowed: they make ties and merges)."""
    return st.lists(level_values, min_size=1, max_size=max_levels)


@st.composite
def low_entropy_matrices(draw, *, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS,
                         min_rows: int = 0, min_cols: int = 0, dtypes=FLOAT_DTYPES,
                         max_levels: int = 6) -> np.ndarray:
    """A C-ordered float32/float64 matrix with few distinct values."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    m = draw(st.integers(min_rows, max_rows))
    n = draw(st.integers(min_cols, max_cols))
    lv = draw(levels(max_levels))
    n_levels = len(lv)
    sparse = draw(st.booleans())
    idx = draw(hnp.arrays(
        np.int64, (m, n),
        elements=st.integers(0, n_levels - 1),
        fill=st.just(0) if sparse else None,
    ))
    return np.array(lv, dtype=dtype)[idx]


def vectors(n: int, dtype=np.float64) -> st.SearchStrategy[np.ndarray]:
    """An input vector of length ``n`` with moderate entries."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        width = 32 if dtype.itemsize <= 4 else 64
        elements = st.floats(-8, 8, allow_nan=False, allow_infinity=False, width=width)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        elements = st.integers(-100, 100) if dtype.kind == "i" else st.integers(0, 100)
    return hnp.arrays(dtype, n, elements=elements)


def batches(n: int, dtype=np.float64, max_batch: int = 4) -> st.SearchStrategy[np.ndarray]:
    """An ``n × B`` input matrix, ``B`` from 0 to ``max_batch``."""
    dtype = np.dtype(dtype)
    width = 32 if dtype.itemsize <= 4 else 64
    return st.integers(0, max_batch).flatmap(lambda B: hnp.arrays(
        dtype, (n, B),
        elements=st.floats(-8, 8, allow_nan=False, allow_infinity=False, width=width),
    ))


x_dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def matrix_and_vector(draw, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """A matrix from :func:`low_entropy_matrices` and a matching vector (float32/64)."""
    W = draw(low_entropy_matrices(**kwargs))
    x = draw(vectors(W.shape[1], draw(x_dtypes)))
    return W, x


@st.composite
def matrix_and_batch(draw, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """A matrix and a matching ``n × B`` batch (float32/64, ``B`` may be 0)."""
    W = draw(low_entropy_matrices(**kwargs))
    X = draw(batches(W.shape[1], draw(x_dtypes)))
    return W, X
