"""Symmetric uniform quantization (SPEC §6): ``b`` bits, 0 always a level, step from
max |w|."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from ..quantized import code_dtype
from ._common import KEY, n_chunks
from .error import BLOCK, lane_sums

__all__ = ["quantize_uniform", "uniform_codes", "max_abs", "MIN_BITS", "MAX_BITS", "CODE_BITS"]

MIN_BITS = 2
MAX_BITS = 32
#: Up to this many bits the quantizer writes codes directly (at most 65535 levels, uint16
#: codes); beyond, a ``bincount`` of the levels would be too large and codes come from
#: the distinct values of the quantized weights.
CODE_BITS = 16


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


@kernel()
def _uniform_segment(w, bits, mask, below, step, levels, start, stop, codes,
                     values):  # pragma: no cover - compiled
    """``codes[i] = k + levels`` for the level ``k`` of ``w[i]`` (0 where the magnitude
    key is below ``below``), ``values[i - start]`` the level's value in the dtype, for
    ``i`` in ``[start, stop)``. Branch-free loops, which the compiler vectorizes (the
    kept entries are multiplied by 1, the others by 0)."""
    src = w[start:stop]  # slices: indices numba knows are not negative
    key = bits[start:stop]
    out = codes[start:stop]
    if below <= 0:  # nothing pruned
        for i in range(src.size):
            k = min(max(np.rint(np.float64(src[i]) / step), -levels), levels)
            out[i] = k + levels
            values[i] = k * step + 0.0  # the value, rounded to the dtype
        return
    for i in range(src.size):
        x = np.float64((key[i] & mask) >= below) * np.float64(src[i])
        k = min(max(np.rint(x / step), -levels), levels)
        out[i] = k + levels
        values[i] = k * step + 0.0


@kernel(parallel=True)
def _uniform_codes(w, bits, mask, t, cut, step, levels, nch, codes,
                   sums):  # pragma: no cover - compiled
    """Codes of the uniform quantizer with the pruning rule ``(t, cut)`` (entries of key
    below ``t``, or ``t`` at a position up to ``cut``, count as 0: below ``t + 1`` up to
    ``cut``, below ``t`` after it); per chunk the error sums against ``w``, block by
    block (four lanes each) as :func:`.error._error_sums` does."""
    n = w.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        values = np.empty(BLOCK, w.dtype)
        err2 = 0.0
        ref2 = 0.0
        peak = 0.0
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            mid = min(max(cut + 1, b0), b1)
            _uniform_segment(w, bits, mask, t + 1, step, levels, b0, mid, codes, values)
            _uniform_segment(w, bits, mask, t, step, levels, mid, b1, codes,
                             values[mid - b0:])
            e, r, p = lane_sums(w[b0:b1], values, b1 - b0)
            err2 += e
            ref2 += r
            peak = max(peak, p)
        sums[c, 0] = err2
        sums[c, 1] = ref2
        sums[c, 2] = peak


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


def max_abs(flat: np.ndarray, rule: tuple[int, int] = (0, -1)) -> tuple[float, bool]:
    """``max |w|`` of a flat float32/float64 array and whether every entry is finite;
    with a pruning ``rule`` (:mod:`._select`), the largest magnitude it leaves."""
    int_dtype, mask, maxfinite = KEY[flat.dtype.itemsize]
    nch = n_chunks(flat.size)
    out = np.zeros(nch, np.int64)
    _max_key(flat.view(int_dtype), mask, nch, out)
    key = int(out.max()) if flat.size else 0
    if key < rule[0]:
        key = 0  # everything pruned (entries of the largest key go last)
    value = np.array([key], dtype=int_dtype).view(flat.dtype)[0]
    return float(value), key <= maxfinite


def uniform_codes(flat: np.ndarray, bits: int, maxabs: float, rule: tuple[int, int]):
    """Codes of the uniform quantizer of a flat finite array whose largest magnitude left
    by the pruning ``rule`` is ``maxabs`` (``bits <= CODE_BITS``): codes (level ``k`` is
    code ``k + L``), the codebook (the levels' values in the dtype, ascending; they may
    collide when ``maxabs`` is tiny) and the error sums per chunk."""
    dtype = flat.dtype
    levels = 2 ** (bits - 1) - 1
    step = maxabs / levels if maxabs > 0 else 1.0
    k = np.arange(-levels, levels + 1, dtype=np.float64)
    values = ((k * step + 0.0) if maxabs > 0 else 0.0 * k).astype(dtype) + dtype.type(0)
    int_dtype, mask, _ = KEY[dtype.itemsize]
    nch = n_chunks(flat.size)
    codes = np.empty(flat.size, code_dtype(values.size))
    sums = np.zeros((nch, 4))
    _uniform_codes(flat, flat.view(int_dtype), mask, rule[0], rule[1], step, float(levels),
                   nch, codes, sums)
    return codes, values, sums


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
