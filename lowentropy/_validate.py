"""Input validation shared by the formats, the statistics and the cost model.

Public functions validate here, then hand plain contiguous arrays to the kernels:
a kernel never sees an array whose shape, dtype or finiteness was not checked.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_weight_matrix", "weight_dtype", "as_operand", "index_dtype", "omega_idx_dtype"]

_EXACT_IN_FLOAT32 = {np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16)}


def weight_dtype(dtype: np.dtype) -> np.dtype:
    """The floating dtype a weight matrix of ``dtype`` is stored in.

    float32 and float64 are kept. Other real dtypes are converted: float16, bfloat16
    (``ml_dtypes``, as PyTorch, JAX and ONNX hand it out), bool and integers of at most 16
    bits to float32 (exact); wider integers to float64 (exact up to 2**53, checked); long
    double to float64 (rounded). Anything else is a TypeError.
    """
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16" and dtype.itemsize == 2:
        return np.dtype(np.float32)
    dtype = dtype.newbyteorder("=")
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.float16 or dtype in _EXACT_IN_FLOAT32:
        return np.dtype(np.float32)
    if dtype.kind in "iu" or dtype.kind == "f":
        return np.dtype(np.float64)
    raise TypeError(
        f"weights must be real numbers (float32 or float64, or a real dtype that converts to "
        f"them); got dtype {dtype}"
    )


def as_weight_matrix(W, *, name: str = "W") -> np.ndarray:
    """Validate ``W`` and return it as a C-contiguous float32/float64 matrix.

    The result may share memory with ``W`` (no copy when ``W`` is already a contiguous
    float32/float64 array); callers that keep it must copy.

    Raises
    ------
    TypeError
        If ``W`` is not real-valued.
    ValueError
        If ``W`` is not 2-D, or holds NaN or infinite values (the message gives how many
        and the first position), or holds integers too large to convert exactly.
    """
    arr = np.asarray(W)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix; got a {arr.ndim}-D array of shape {arr.shape}"
        )
    dtype = weight_dtype(arr.dtype)
    out = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and out.size:
        if not np.array_equal(out.astype(arr.dtype), arr):
            raise ValueError(f"{name} holds integers beyond 2**53 that float64 cannot hold exactly")
    _check_finite(out, name)
    return out


def _check_finite(arr: np.ndarray, name: str) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    raise ValueError(
        f"{name} holds {len(bad)} NaN or infinite value(s); the first is {arr[first]} at "
        f"position {first}"
    )


def as_operand(x, n: int, dtype: np.dtype) -> tuple[np.ndarray, np.dtype]:
    """Validate the right-hand side of ``W @ x`` for a matrix of ``n`` columns.

    Returns ``x`` as a C-contiguous array of the result dtype (numpy's rule for
    ``dtype`` and ``x.dtype``) and that dtype.
    """
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real numeric array; got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"x must be a vector of length n={n} or an n x B matrix; got a {arr.ndim}-D array "
            f"of shape {arr.shape}"
        )
    if arr.shape[0] != n:
        raise ValueError(
            f"x has {arr.shape[0]} rows but the matrix has n={n} columns (shape of x: {arr.shape})"
        )
    out_dtype = np.result_type(dtype, arr.dtype)
    if out_dtype not in (np.float32, np.float64):
        out_dtype = np.dtype(np.float64)
    return np.ascontiguousarray(arr, dtype=out_dtype), out_dtype


def index_dtype(max_entry: int) -> np.dtype:
    """The narrowest in-memory integer dtype for a column-index array.

    uint16 when every entry is at most 65535, else uint32; larger is refused (a row of
    more than 2**32 columns does not fit in memory anyway).
    """
    if max_entry <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if max_entry <= np.iinfo(np.uint32).max:
        return np.dtype(np.uint32)
    raise ValueError(f"index {max_entry} does not fit in 32 bits")


def omega_idx_dtype(K: int) -> np.dtype:
    """The in-memory dtype of CSER's ``omega_idx`` for ``K`` values: uint8 when
    ``K <= 256``, uint16 when ``K <= 65536``, else uint32."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if K - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"K = {K} distinct values do not fit a 32-bit omega_idx")
