"""Symmetric uniform quantization (SPEC §6): ``b`` bits, 0 always a level, step from
max |w|."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from ._common import KEY, n_chunks

__all__ = ["quantize_uniform", "MIN_BITS", "MAX_BITS"]

MIN_BITS = 2
MAX_BITS = 32


@kernel(parallel=True)
def _max_key(bits, mask, nch, out):  # pragma: no cover - compiled
    """Per chunk, the largest ``bits & mask`` (the largest magnitude, as a key)."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = bits[start:min(n, start + chunk)]
        m = 0
        for i in range(seg.size):
            m = max(m, seg[i] & mask)
        out[c] = m


@kernel(parallel=True)
def _uniform_quantize(w, step, levels, nch, out):  # pragma: no cover - compiled
    """``out = clip(rint(w / step), -levels, levels) * step``, in float64, ``-0.0`` as 0."""
    n = w.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        src = w[start:stop]
        dst = out[start:stop]
        for i in range(src.size):
            k = np.rint(np.float64(src[i]) / step)
            k = min(max(k, -levels), levels)
            dst[i] = k * step + 0.0


def max_abs(flat: np.ndarray) -> tuple[float, bool]:
    """``max |w|`` of a flat float32/float64 array and whether every entry is finite."""
    int_dtype, mask, maxfinite = KEY[flat.dtype.itemsize]
    nch = n_chunks(flat.size)
    out = np.zeros(nch, np.int64)
    _max_key(flat.view(int_dtype), mask, nch, out)
    key = int(out.max()) if flat.size else 0
    value = np.array([key], dtype=int_dtype).view(flat.dtype)[0]
    return float(value), key <= maxfinite


def quantize_uniform(flat: np.ndarray, bits: int, maxabs: float) -> np.ndarray:
    """Quantize a flat finite array whose largest magnitude is ``maxabs``."""
    levels = 2 ** (bits - 1) - 1
    out = np.empty_like(flat)
    if maxabs == 0.0:
        out.fill(0)
        return out
    step = maxabs / levels
    _uniform_quantize(flat, step, float(levels), n_chunks(flat.size), out)
    return out
