"""Symmetric uniform quantization (SPEC §6): ``b`` bits, 0 always a level, step from
max |w|."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from ..quantized import code_dtype
from ._common import KEY, n_chunks

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


@kernel(parallel=True)
def _uniform_codes(w, bits, mask, t, cut, step, levels, code_of_level, value_of_code, nch,
                   codes, counts, sums):  # pragma: no cover - compiled
    """``codes[i]`` = code of the level ``clip(rint(w / step), -levels, levels)`` (in
    float64; pruned entries, as in :mod:`.kmeans`, count as 0); per chunk the occurrences
    of every code and the error sums against ``w`` (as :mod:`.error` computes them)."""
    n = w.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        src = w[start:stop]
        seg = bits[start:stop]
        dst = codes[start:stop]
        cnt = counts[c]
        err2 = 0.0
        ref2 = 0.0
        peak = 0.0
        for i in range(src.size):
            x = np.float64(src[i])
            mag = seg[i] & mask
            kept = 0.0 if (mag < t or (mag == t and start + i <= cut)) else x
            k = np.rint(kept / step)
            k = min(max(k, -levels), levels)
            code = code_of_level[np.int64(k + levels)]
            dst[i] = code
            cnt[code] += 1
            d = x - np.float64(value_of_code[code])
            err2 += d * d
            ref2 += x * x
            e = abs(d)
            peak = e if e > peak else peak
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
    by the pruning ``rule`` is ``maxabs`` (``bits <= CODE_BITS``): codes, codebook
    (ascending, distinct: levels whose values collide in the dtype share a code),
    occurrences of every code and the error sums per chunk."""
    dtype = flat.dtype
    levels = 2 ** (bits - 1) - 1
    step = maxabs / levels if maxabs > 0 else 1.0
    k = np.arange(-levels, levels + 1, dtype=np.float64)
    values = ((k * step + 0.0) if maxabs > 0 else 0.0 * k).astype(dtype) + dtype.type(0)
    codebook = np.unique(values)
    code_of_level = np.searchsorted(codebook, values).astype(np.int64)
    int_dtype, mask, _ = KEY[dtype.itemsize]
    nch = n_chunks(flat.size)
    codes = np.empty(flat.size, code_dtype(codebook.size))
    counts = np.zeros((nch, codebook.size), np.int64)
    sums = np.zeros((nch, 4))
    _uniform_codes(flat, flat.view(int_dtype), mask, rule[0], rule[1], step, float(levels),
                   code_of_level, codebook, nch, codes, counts, sums)
    return codes, codebook, counts.sum(axis=0), sums


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
