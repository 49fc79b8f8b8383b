"""Invariant checks shared by the formats, written so that malformed arrays cannot
crash them: bounds are checked with numpy before any index is used."""

from __future__ import annotations

import numpy as np

from .._jit import kernel

__all__ = [
    "check_vector", "check_pointer", "check_indices", "check_values",
    "ascending_within", "segment_ids", "check_no_repeated_columns",
]


def check_vector(name: str, arr: np.ndarray, length: int | None, kind: str) -> None:
    """``arr`` is 1-D, of ``length`` (when given) and of dtype kind ``kind`` ("f" or "iu")."""
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in kind:
        what = "floating" if kind == "f" else "integer"
        raise ValueError(f"{name} must have a {what} dtype, got {arr.dtype}")
    if length is not None and arr.size != length:
        raise ValueError(f"{name} must have length {length}, got {arr.size}")


def check_pointer(name: str, ptr: np.ndarray, length: int, last: int) -> None:
    """A pointer array: ``length`` entries, starts at 0, non-decreasing, ends at ``last``."""
    check_vector(name, ptr, length, "iu")
    if ptr[0] != 0:
        raise ValueError(f"{name}[0] must be 0, got {ptr[0]}")
    if ptr[-1] != last:
        raise ValueError(f"{name}[-1] must be {last}, got {ptr[-1]}")
    steps = np.diff(ptr.astype(np.int64))
    if (steps < 0).any():
        at = int(np.argmax(steps < 0))
        raise ValueError(f"{name} must be non-decreasing; {name}[{at + 1}] < {name}[{at}]")


def check_indices(name: str, idx: np.ndarray, length: int, low: int, high: int) -> None:
    """An index array: ``length`` integers, each in ``[low, high)``."""
    check_vector(name, idx, length, "iu")
    if idx.size and (idx.min() < low or idx.max() >= high):
        bad = int(np.argmax((idx < low) | (idx >= high)))
        raise ValueError(f"{name}[{bad}] = {idx[bad]} is out of range [{low}, {high})")


def check_values(name: str, values: np.ndarray, length: int | None, dtype: np.dtype) -> None:
    """A value array of the format's dtype, finite."""
    check_vector(name, values, length, "f")
    if values.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {values.dtype}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values")


def segment_ids(ptr: np.ndarray) -> np.ndarray:
    """For a valid pointer array, the segment number of every position it covers."""
    return np.repeat(np.arange(ptr.size - 1), np.diff(ptr.astype(np.int64)))


def ascending_within(values: np.ndarray, ptr: np.ndarray) -> int:
    """First position ``p`` where ``values[p] <= values[p-1]`` inside one segment of
    ``ptr``, or -1 when every segment is strictly ascending."""
    if values.size < 2:
        return -1
    seg = segment_ids(ptr)
    bad = (np.diff(values.astype(np.int64)) <= 0) & (seg[1:] == seg[:-1])
    return int(np.argmax(bad)) + 1 if bad.any() else -1


@kernel()
def _first_repeated_column(col_idx, entry_ptr, n):
    seen = np.full(n, -1, np.int64)
    for i in range(entry_ptr.shape[0] - 1):
        for p in range(entry_ptr[i], entry_ptr[i + 1]):
            j = col_idx[p]
            if seen[j] == i:
                return i
            seen[j] = i
    return -1


def check_no_repeated_columns(col_idx: np.ndarray, entry_ptr: np.ndarray, n: int) -> None:
    """No column appears twice in one row (call only after bounds were checked)."""
    row = _first_repeated_column(col_idx, entry_ptr.astype(np.int64), n)
    if row >= 0:
        raise ValueError(f"row {row} lists a column more than once")
