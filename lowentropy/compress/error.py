"""How far a compressed tensor is from the original."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._jit import kernel, prange
from ..threads import threads_for
from ._common import KEY, as_weights, n_chunks, raise_nonfinite

__all__ = ["QuantizationError", "quantization_error"]


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


@kernel(parallel=True)
def _error_sums(a, b, a_bits, a_mask, a_max, b_bits, b_mask, b_max, nch,
                out):  # pragma: no cover - compiled
    """Per chunk: sum of squared errors, sum of squares of ``a``, largest error, and the
    number of non-finite entries in either (from the bit patterns: magnitude keys above
    the largest finite one)."""
    n = a.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        x = a[start:stop]
        y = b[start:stop]
        xb = a_bits[start:stop]
        yb = b_bits[start:stop]
        err2 = 0.0
        ref2 = 0.0
        peak = 0.0
        bad = 0
        for i in range(x.size):
            u = np.float64(x[i])
            d = u - np.float64(y[i])
            err2 += d * d
            ref2 += u * u
            e = abs(d)
            peak = e if e > peak else peak
            bad += ((xb[i] & a_mask) > a_max) | ((yb[i] & b_mask) > b_max)
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
    err2, ref2 = float(out[:, 0].sum()), float(out[:, 1].sum())
    mse = err2 / a.size
    if math.isinf(err2) or math.isinf(ref2):  # squares beyond float64: ratios from scaled sums
        scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
        x = a.astype(np.float64) / scale
        d = x - b.astype(np.float64) / scale
        err2, ref2 = float(np.sum(d * d)), float(np.sum(x * x))
    if err2 == 0.0:
        relative, snr = 0.0, math.inf
    elif ref2 == 0.0:
        relative, snr = math.inf, -math.inf
    else:
        relative = math.sqrt(err2 / ref2)
        snr = 10.0 * math.log10(ref2 / err2)
    return QuantizationError(mse, math.sqrt(mse), float(out[:, 2].max()), relative, snr)
