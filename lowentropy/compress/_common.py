"""Input checks and chunking shared by pruning and quantization."""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import _check_finite, weight_dtype

__all__ = ["as_weights", "as_fraction", "raise_nonfinite", "n_chunks", "KEY"]

# Per float width: (integer view dtype, mask that clears the sign bit, largest finite key).
# For a non-negative float, the bit pattern read as an integer grows with the value, so the
# masked bits order magnitudes: +0.0 and -0.0 share key 0, and NaN/inf have keys above the
# largest finite one.
KEY = {
    4: (np.dtype(np.int32), 0x7FFFFFFF, 0x7F7FFFFF),
    8: (np.dtype(np.int64), 0x7FFFFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF),
}


def as_weights(W, name: str = "W") -> np.ndarray:
    """``W`` as a C-contiguous float32/float64 array of any shape (may share memory).

    float32 and float64 are kept; other real dtypes convert as everywhere in the project
    (float16, bfloat16, bool and integers of at most 16 bits to float32, wider ones to
    float64).
    Finiteness is checked later, inside the kernels' first pass.
    """
    arr = np.asarray(W)
    bfloat16 = arr.dtype.name == "bfloat16" and arr.dtype.itemsize == 2
    if arr.dtype == object or (arr.dtype.kind not in "biuf" and not bfloat16):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=weight_dtype(arr.dtype), order="C")  # keeps 0-d arrays 0-d


def raise_nonfinite(arr: np.ndarray, name: str = "W") -> None:
    """Raise the project's ValueError for NaN/inf in ``arr`` (count and first position)."""
    _check_finite(arr, name)
    raise AssertionError("unreachable: a kernel reported a non-finite value")  # pragma: no cover


def as_fraction(fraction) -> float:
    """A pruning fraction: a real number in [0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise TypeError(f"fraction must be a real number in [0, 1], got {fraction!r}")
    value = float(fraction)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    return value


def n_chunks(n: int) -> int:
    """Chunks a flat array of ``n`` entries is cut into for the parallel kernels.

    A function of ``n`` alone: results never depend on the number of threads.
    """
    return int(min(16, max(1, n >> 17)))

