"""How far a compressed tensor is from the original."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba.extending import overload

from .._jit import kernel, prange
from ..threads import threads_for
from ._common import KEY, as_weights, n_chunks, raise_nonfinite
from ._lanes import lane_sums4, vector_lanes_apply

__all__ = ["QuantizationError", "quantization_error", "error_from_sums", "lane_sums", "BLOCK"]


@dataclass(frozen=True)
class QuantizationError:
    """Error of ``Wq`` as an approximation of ``W`` (all in float64).

    Attributes
    ----------
    mse : float
        Mean of ``(W - Wq)**2`` (0.0 for empty arrays).
    rmse : float
        ``sqrt(mse)``.
    max_abs : float
        Largest ``|W - Wq|``.
    relative : float
        ``||W - Wq||_F / ||W||_F``; 0.0 when both norms are 0, ``inf`` when only ``W`` is 0.
    snr_db : float
        ``10 log10(||W||² / ||W - Wq||²)``; ``inf`` when the error is 0 (exact), ``-inf``
        when only ``W`` is 0.
    """

    mse: float
    rmse: float
    max_abs: float
    relative: float
    snr_db: float


#: The error sums run over blocks of this many entries (see :func:`lane_sums`).
BLOCK = 1024


@kernel()
def lane_sums(a, b, n):  # pragma: no cover - compiled
    """``(Σ d², Σ a², max |d|)`` for ``d = a - b`` over the first ``n`` entries, in float64.

    Four interleaved partial sums (entry ``i`` goes to lane ``i % 4``, the entries after
    the last multiple of 4 to lane 0; the lanes are added pairwise at the end): four
    independent chains, where one running sum would wait for every addition. The order
    is fixed, so the result does not depend on the machine. Compiled, for 1-D contiguous
    float arrays, the four lanes are one 4-wide vector (:mod:`._lanes`): the same
    operations in the same order, hence the same result, about four times faster than
    the scalar chains numba makes of :func:`_lanes`.
    """
    return _lanes(a, b, n)


def _lanes(a, b, n):  # pragma: no cover - compiled (plain Python under NUMBA_DISABLE_JIT)
    """:func:`lane_sums` as four scalar chains: the definition of its order."""
    e0 = e1 = e2 = e3 = 0.0
    r0 = r1 = r2 = r3 = 0.0
    p0 = p1 = p2 = p3 = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        x0 = np.float64(a[i])
        x1 = np.float64(a[i + 1])
        x2 = np.float64(a[i + 2])
        x3 = np.float64(a[i + 3])
        d0 = x0 - np.float64(b[i])
        d1 = x1 - np.float64(b[i + 1])
        d2 = x2 - np.float64(b[i + 2])
        d3 = x3 - np.float64(b[i + 3])
        e0 += d0 * d0
        e1 += d1 * d1
        e2 += d2 * d2
        e3 += d3 * d3
        r0 += x0 * x0
        r1 += x1 * x1
        r2 += x2 * x2
        r3 += x3 * x3
        p0 = max(p0, abs(d0))
        p1 = max(p1, abs(d1))
        p2 = max(p2, abs(d2))
        p3 = max(p3, abs(d3))
    for i in range(n4, n):
        x = np.float64(a[i])
        d = x - np.float64(b[i])
        e0 += d * d
        r0 += x * x
        p0 = max(p0, abs(d))
    return (e0 + e1) + (e2 + e3), (r0 + r1) + (r2 + r3), max(max(p0, p1), max(p2, p3))


@overload(_lanes)
def _lanes_compiled(a, b, n):  # pragma: no cover - compiled
    if vector_lanes_apply(a, b):
        return lambda a, b, n: lane_sums4(a, b, n)
    return _lanes


@kernel(parallel=True)
def _error_sums(a, b, a_bits, a_mask, a_max, b_bits, b_mask, b_max, nch,
                out):  # pragma: no cover - compiled
    """Per chunk: sum of squared errors, sum of squares of ``a``, largest error (each
    block of :data:`BLOCK` entries by :func:`lane_sums`, the blocks added in order), and
    the number of non-finite entries in either (from the bit patterns: magnitude keys
    above the largest finite one)."""
    n = a.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        err2 = 0.0
        ref2 = 0.0
        peak = 0.0
        bad = 0
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            xb = a_bits[b0:b1]
            yb = b_bits[b0:b1]
            for i in range(xb.size):
                bad += ((xb[i] & a_mask) > a_max) | ((yb[i] & b_mask) > b_max)
            e, r, p = lane_sums(a[b0:b1], b[b0:b1], b1 - b0)
            err2 += e
            ref2 += r
            peak = max(peak, p)
        out[c, 0] = err2
        out[c, 1] = ref2
        out[c, 2] = peak
        out[c, 3] = bad


def quantization_error(W, Wq) -> QuantizationError:
    """Error measures of ``Wq`` (pruned and/or quantized) against the original ``W``.

    Parameters
    ----------
    W, Wq : array_like
        Same shape; real dtypes (compared in float64).

    Returns
    -------
    QuantizationError

    Raises
    ------
    ValueError
        If the shapes differ or either array holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[1.0, -2.0], [0.5, 0.0]])
    >>> e = quantization_error(W, np.array([[1.0, -2.0], [0.0, 0.0]]))
    >>> e.mse, e.max_abs, round(e.relative, 4), round(e.snr_db, 2)
    (0.0625, 0.5, 0.2182, 13.22)
    >>> quantization_error(W, W).snr_db
    inf
    """
    a = as_weights(W, "W")
    b = as_weights(Wq, "Wq")
    if a.shape != b.shape:
        raise ValueError(f"W and Wq must have the same shape; got {a.shape} and {b.shape}")
    if a.size == 0:
        return QuantizationError(0.0, 0.0, 0.0, 0.0, math.inf)
    nch = n_chunks(a.size)
    out = np.zeros((nch, 4))
    fa, fb = a.reshape(-1), b.reshape(-1)
    (a_int, a_mask, a_max), (b_int, b_mask, b_max) = KEY[a.itemsize], KEY[b.itemsize]
    with threads_for(a.size):
        _error_sums(fa, fb, fa.view(a_int), a_mask, a_max, fb.view(b_int), b_mask, b_max, nch,
                    out)
    if out[:, 3].any():
        name, arr = ("W", a) if not np.isfinite(a).all() else ("Wq", b)
        raise_nonfinite(arr, name)
    result = error_from_sums(out, a.size)
    if result is None:  # squares beyond float64: ratios from scaled sums
        scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
        x = a.astype(np.float64) / scale
        d = x - b.astype(np.float64) / scale
        err2, ref2 = float(np.sum(d * d)), float(np.sum(x * x))
        result = _measures(float(out[:, 0].sum()) / a.size, err2, ref2, float(out[:, 2].max()))
    return result


def error_from_sums(sums: np.ndarray, size: int) -> QuantizationError | None:
    """The measures from per-chunk sums (squared error, squared reference, largest error),
    or None when a sum overflowed float64 (the ratios then need scaled sums)."""
    err2, ref2 = float(sums[:, 0].sum()), float(sums[:, 1].sum())
    if math.isinf(err2) or math.isinf(ref2):
        return None
    return _measures(err2 / size, err2, ref2, float(sums[:, 2].max()))


def _measures(mse: float, err2: float, ref2: float, peak: float) -> QuantizationError:
    if err2 == 0.0:
        relative, snr = 0.0, math.inf
    elif ref2 == 0.0:
        relative, snr = math.inf, -math.inf
    else:
        relative = math.sqrt(err2 / ref2)
        snr = 10.0 * math.log10(ref2 / err2)
    return QuantizationError(mse, math.sqrt(mse), peak, relative, snr)
