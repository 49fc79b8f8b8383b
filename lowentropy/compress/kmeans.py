"""1-D k-means weight sharing (SPEC §6; Deep Compression's Lloyd with linear
initialisation), fast on tens of millions of weights.

The non-zero weights are summarised as sorted weighted *points* ``(x, count, sum)``:

- at most ``EXACT_LIMIT`` non-zero weights: their distinct values (``np.unique``), so
  Lloyd's iterations are exactly those on the weights themselves;
- more: ``BINS`` equal-width bins over ``[min, max]`` of the non-zero weights, each with its
  count and the sum of its weights (one parallel pass), the point sitting at the bin's mean.

Lloyd's iterations then cost ``O(k log(P/k) log k)`` each: in one dimension every cluster
is a run of consecutive points, found by galloping search, and its sum comes from
(compensated) prefix sums. The final assignment is exact for every weight: each non-zero
weight takes the value of its nearest final centroid (distances in float64, ties to the
smaller centroid), through a table indexed by the top 18 (float32) or 20 (float64) bits
of the weight's bit pattern, with an exact search for the few weights near a boundary
between two cells. The assignment writes codes into a codebook (the centroids' values in
the weights' dtype, and 0) and sums the error, in one pass.

Pruning can be applied on the fly: every pass takes the rule ``(t, cut)`` of
:func:`lowentropy.compress._select.select_threshold` and treats the entries it prunes as 0.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from ..quantized import code_dtype
from ._common import KEY, n_chunks
from .error import BLOCK, lane_sums

__all__ = ["kmeans_codes", "kmeans_centroids", "nonzero_range", "NO_PRUNING", "EXACT_LIMIT",
           "BINS", "MAX_CLUSTERS"]

EXACT_LIMIT = 1 << 16
BINS = 1 << 16
MAX_CLUSTERS = 1 << 16


# --- nearest centroid (the one rule used everywhere) ---------------------------------------

@kernel()
def _nearest(c, x):  # pragma: no cover - compiled
    """Index of the centroid nearest to ``x`` among sorted ``c``: the smallest index ``j``
    minimising ``abs(x - c[j])`` in float64 (what ``argmin`` over all of them gives)."""
    k = c.size
    lo, hi = 0, k  # first index with c[index] > x, by bisection
    while lo < hi:
        mid = (lo + hi) // 2
        if c[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return 0
    j = lo - 1  # c[j] <= x: distances grow to the left of j and to the right of j + 1
    if lo < k and abs(x - c[lo]) < abs(x - c[j]):
        return lo
    d = abs(x - c[j])
    while j > 0 and abs(x - c[j - 1]) == d:  # equal distances: the smaller index wins
        j -= 1
    return j


# --- summarising the weights ---------------------------------------------------------------

# The pruning rule ``(t, cut)`` prunes the entries of magnitude key below ``t + 1`` up to
# position ``cut`` and below ``t`` after it; zeros go too. So each kernel splits its range
# at ``cut + 1`` and keeps, on each side, the keys at or above one bound (``max(t + 1, 1)``
# and ``max(t, 1)``): one comparison per entry, no branch.

@kernel()
def _range_segment(bits, mask, maxfinite, below, start, stop, acc):  # pragma: no cover
    big = np.int64(0x7FFFFFFFFFFFFFFF)
    lo = acc[0]
    hi = acc[1]
    nnz = acc[2]
    bad = acc[3]
    seg = bits[start:stop]  # a slice: indices numba knows are not negative
    for i in range(seg.size):
        b = np.int64(seg[i])
        mag = b & mask
        key = b ^ ((b >> 63) & mask)
        nz = mag >= below
        lo = min(lo, key if nz else big)
        hi = max(hi, key if nz else -big)
        nnz += nz
        bad += mag > maxfinite
    acc[0] = lo
    acc[1] = hi
    acc[2] = nnz
    acc[3] = bad


@kernel(parallel=True)
def _nonzero_range(bits, mask, maxfinite, t, cut, nch, out):  # pragma: no cover - compiled
    """Per chunk: smallest and largest *signed key* of the entries that are neither zero
    nor pruned (magnitude key below ``t``, or ``t`` at a position up to ``cut``), their
    number, and the number of non-finite entries.

    The signed key ``b ^ ((b >> 63) & mask)`` of the bit pattern ``b`` (sign-extended to
    64 bits) orders floats as integers; integer min/max vectorize where float ones do not.
    """
    n = bits.size
    chunk = (n + nch - 1) // nch
    big = np.int64(0x7FFFFFFFFFFFFFFF)
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        mid = min(max(cut + 1, start), stop)
        acc = np.array([big, -big, 0, 0], np.int64)
        _range_segment(bits, mask, maxfinite, max(t + 1, 1), start, mid, acc)
        _range_segment(bits, mask, maxfinite, max(t, 1), mid, stop, acc)
        out[c] = acc


@kernel()
def _kept(bits, mask, below, start, stop, kept, p):  # pragma: no cover - compiled
    """Append to ``kept`` (from ``p``) the positions in ``[start, stop)`` whose magnitude
    key is at least ``below``, without branching; returns the new end.

    The loop runs over a slice with an unsigned end: indices numba knows are not
    negative, so it adds no wrap-around test for negative indices (2.9 -> 1.6 cycles per
    entry)."""
    seg = bits[start:stop]
    q = np.uint64(p)
    for i in range(seg.size):
        kept[q] = start + i
        q += np.uint64((seg[i] & mask) >= below)
    return np.int64(q)


@kernel(parallel=True)
def _bin_weights(w, bits, mask, t, cut, lo, pre, scale, nch, counts,
                 sums):  # pragma: no cover - compiled
    """Per chunk, count and sum of the entries neither zero nor pruned (as in
    :func:`_nonzero_range`) in each of ``counts.shape[1]`` equal bins: bin
    ``(pre * x - pre * lo) * scale`` (``pre`` is 0.5 when ``max - min`` overflows, else
    1), clipped to the bins. The kept positions of each block are listed first."""
    n = w.size
    nbins = counts.shape[1]
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        cnt = counts[c]
        sm = sums[c]
        kept = np.empty(BLOCK, np.uint64)  # unsigned: no wrap-around tests
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            mid = min(max(cut + 1, b0), b1)
            p = _kept(bits, mask, max(t + 1, 1), b0, mid, kept, 0)
            p = _kept(bits, mask, max(t, 1), mid, b1, kept, p)
            for q in range(p):
                x = np.float64(w[kept[q]])
                b = np.uint64(min(max(np.int64((pre * x - pre * lo) * scale), 0), nbins - 1))
                cnt[b] += 1
                sm[b] += x


# --- Lloyd -----------------------------------------------------------------------------

@kernel()
def _lloyd(x, prefix_n, prefix_hi, prefix_lo, c, max_iter):  # pragma: no cover - compiled
    """Lloyd's iterations on sorted points ``x`` with prefix sums of their counts and of
    their sums (the latter compensated: ``prefix_hi + prefix_lo``, so that a small cluster
    next to large ones keeps its digits).

    ``c`` (sorted) is updated in place; empty clusters keep their centroid; returns the
    number of iterations run (fewer than ``max_iter`` when a fixed point was reached).
    """
    k = c.size
    p = x.size
    bounds = np.empty(k + 1, np.int64)
    new = np.empty(k)
    for it in range(max_iter):
        # cluster j holds the points bounds[j]:bounds[j+1] (nearest centroid is monotone in x)
        bounds[0] = 0
        bounds[k] = p
        for j in range(k - 1):  # first point whose nearest centroid is beyond j:
            lo = bounds[j]  # galloping from the previous bound, then bisection
            probe = lo
            step = 1
            while probe < p and _nearest(c, x[probe]) <= j:
                lo = probe + 1
                probe = lo + step
                step *= 2
            hi = min(probe, p)
            while lo < hi:
                mid = (lo + hi) // 2
                if _nearest(c, x[mid]) <= j:
                    lo = mid + 1
                else:
                    hi = mid
            bounds[j + 1] = lo
        for j in range(k):
            a = bounds[j]
            b = bounds[j + 1]
            cnt = prefix_n[b] - prefix_n[a]
            total = (prefix_hi[b] - prefix_hi[a]) + (prefix_lo[b] - prefix_lo[a])
            new[j] = total / cnt if cnt > 0 else c[j]
        new.sort()
        same = True
        for j in range(k):
            if new[j] != c[j]:
                same = False
            c[j] = new[j]
        if same:
            return it
    return max_iter


@kernel()
def _compensated_prefix(s, hi, lo):  # pragma: no cover - compiled
    """Prefix sums of ``s`` as ``hi + lo`` (Knuth's TwoSum: ``lo`` gathers the rounding
    errors of ``hi``): ``hi[i] + lo[i]`` is ``sum(s[:i])`` to about twice float64's
    precision."""
    h = 0.0
    e = 0.0
    hi[0] = 0.0
    lo[0] = 0.0
    for i in range(s.size):
        x = s[i]
        t = h + x
        v = t - h
        e += (h - (t - v)) + (x - v)
        h = t
        hi[i + 1] = h
        lo[i + 1] = e


# --- final assignment ------------------------------------------------------------------

@kernel(parallel=True)
def _assign(w, bits, mask, t, cut, flip, top, lut, centroids, code_of_centroid, zero_code,
            codebook, nch, codes, sums):  # pragma: no cover - compiled
    """``codes[i]`` = code of the centroid nearest to ``w[i]``; zero and pruned entries
    (as in :func:`_nonzero_range`) take ``zero_code``. Per chunk, the error sums against
    ``w``, block by block (four lanes each) as :func:`lowentropy.compress.error._error_sums`
    does.

    Each block is first filled with ``zero_code`` while its kept positions are listed
    (no branch), then the kept entries are assigned: ``lut`` maps the top bits of the
    order-preserving key of the bit pattern ``b`` (sign-extended to 64 bits: ``b ^ ((b >>
    63) | flip)``, ``flip`` the float's sign bit as a negative number; ``top`` the right
    shift that keeps the top bits) to the code of the centroid whose cell holds the bin's
    whole range of values, or to -1 when that range comes near a cell boundary; those
    weights go through :func:`_nearest`. Every weight gets its exact nearest centroid.
    """
    n = w.size
    chunk = (n + nch - 1) // nch
    lut_mask = lut.size - 1
    zero_value = codebook[zero_code]
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        values = np.empty(BLOCK, w.dtype)
        kept = np.empty(BLOCK, np.uint64)  # unsigned: no wrap-around tests
        err2 = 0.0
        ref2 = 0.0
        peak = 0.0
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            block = codes[b0:b1]  # a slice: the fill vectorizes (1.6 -> 0.2 cycles)
            for i in range(block.size):
                block[i] = zero_code
                values[i] = zero_value
            mid = min(max(cut + 1, b0), b1)
            p = _kept(bits, mask, max(t + 1, 1), b0, mid, kept, 0)
            p = _kept(bits, mask, max(t, 1), mid, b1, kept, p)
            first = np.uint64(b0)
            for q in range(p):
                i = kept[q]
                b = np.int64(bits[i])
                k = lut[np.uint64(((b ^ ((b >> 63) | flip)) >> top) & lut_mask)]
                if k < 0:
                    k = code_of_centroid[_nearest(centroids, np.float64(w[i]))]
                codes[i] = k
                values[i - first] = codebook[k]
            e, r, pk = lane_sums(w[b0:b1], values, b1 - b0)
            err2 += e
            ref2 += r
            peak = max(peak, pk)
        sums[c, 0] = err2
        sums[c, 1] = ref2
        sums[c, 2] = peak


@kernel()
def _kept_values(w, bits, mask, t, cut, out):  # pragma: no cover - compiled
    """The entries neither zero nor pruned, in order, into ``out`` (sized for them)."""
    p = 0
    for i in range(w.size):
        mag = bits[i] & mask
        if mag != 0 and not (mag < t or (mag == t and i <= cut)):
            out[p] = w[i]
            p += 1


# --- driver ----------------------------------------------------------------------------

#: The pruning rule ``(t, cut)`` of :func:`lowentropy.compress._select.select_threshold`
#: that prunes nothing.
NO_PRUNING = (0, -1)


def _points(flat: np.ndarray, lo: float, hi: float, nnz: int, rule: tuple[int, int]):
    """Sorted points with their counts and sums."""
    int_dtype, mask, _ = KEY[flat.dtype.itemsize]
    t, cut = rule
    if nnz <= EXACT_LIMIT:
        kept = np.empty(nnz, flat.dtype)
        _kept_values(flat, flat.view(int_dtype), mask, t, cut, kept)
        x, n = np.unique(kept.astype(np.float64), return_counts=True)
        return x, n.astype(np.float64), x * n
    pre = 1.0 if np.isfinite(hi - lo) else 0.5
    scale = BINS / (pre * hi - pre * lo) if hi > lo else 0.0
    nch = _hist_chunks(flat.size)
    counts = np.zeros((nch, BINS), np.int64)
    sums = np.zeros((nch, BINS), np.float64)
    _bin_weights(flat, flat.view(int_dtype), mask, t, cut, lo, pre, scale, nch, counts, sums)
    n = counts.sum(axis=0)
    s = sums.sum(axis=0)
    keep = n > 0
    n, s = n[keep].astype(np.float64), s[keep]
    x = np.clip(s / n, lo, hi)  # a bin's mean lies in the bin: clipping only fixes rounding
    return x, n, s


def _hist_chunks(n: int) -> int:
    """Histogram copies for ``n`` entries: a function of ``n`` alone (the bin sums do not
    depend on the number of threads), few (each is 1 MB)."""
    return int(min(4, max(1, n >> 20)))


def nonzero_range(flat: np.ndarray,
                  rule: tuple[int, int] = NO_PRUNING) -> tuple[float, float, int, bool]:
    """``(min, max, count)`` of the entries of a flat float32/float64 array that are
    neither zero nor pruned by ``rule``, and whether all its entries are finite
    (``(0.0, 0.0, 0, ...)`` when none is left)."""
    int_dtype, mask, maxfinite = KEY[flat.dtype.itemsize]
    nch = n_chunks(flat.size)
    out = np.zeros((nch, 4), np.int64)
    _nonzero_range(flat.view(int_dtype), mask, maxfinite, rule[0], rule[1], nch, out)
    nnz = int(out[:, 2].sum())
    finite = not out[:, 3].any()
    if nnz == 0:
        return 0.0, 0.0, 0, finite
    keys = np.array([out[:, 0].min(), out[:, 1].max()], np.int64)
    keys ^= (keys >> 63) & mask  # the signed key transform is its own inverse
    lo, hi = keys.astype(int_dtype).view(flat.dtype).astype(np.float64)
    return float(lo), float(hi), nnz, finite


def kmeans_centroids(flat: np.ndarray, clusters: int, max_iter: int,
                     info: tuple[float, float, int],
                     rule: tuple[int, int] = NO_PRUNING) -> np.ndarray:
    """Final sorted centroids (float64, ``clusters`` of them) for the entries of ``flat``
    neither zero nor pruned by ``rule``; ``info`` is ``(min, max, count)`` of those
    entries (count > 0)."""
    lo, hi, nnz = info
    x, n, s = _points(flat, lo, hi, nnz, rule)
    c = np.linspace(lo, hi, clusters)
    prefix_n = np.concatenate(([0.0], np.cumsum(n)))
    prefix_hi = np.empty(s.size + 1)
    prefix_lo = np.empty(s.size + 1)
    _compensated_prefix(s, prefix_hi, prefix_lo)
    _lloyd(x, prefix_n, prefix_hi, prefix_lo, c, max_iter)
    return c


# Table of the final assignment: bins of the top bits of the bit pattern (sign, exponent and
# the leading mantissa bits: 9 of them for float32, 8 for float64, i.e. bins 0.2 % / 0.4 %
# wide in relative terms); a 1 MB / 4 MB table.
_LUT_BITS = {4: 18, 8: 20}


def _key_bin(values: np.ndarray) -> np.ndarray:
    """The bins of :func:`_assign`'s table for float values (same formula as the kernel)."""
    width = values.dtype.itemsize * 8
    bits = _LUT_BITS[values.dtype.itemsize]
    b = values.view(KEY[values.dtype.itemsize][0]).astype(np.int64)
    key = b ^ ((b >> 63) | -(1 << (width - 1)))
    return (key >> (width - bits)) & ((1 << bits) - 1)


def _lookup_table(u: np.ndarray, code_of_centroid: np.ndarray, dtype: np.dtype,
                  scale: float) -> np.ndarray:
    """The table of :func:`_assign`: code of the cell holding each key bin, -1 for bins
    that come within a margin of a cell boundary (midpoint between centroids)."""
    mids = 0.5 * u[:-1] + 0.5 * u[1:]
    # distances are exact to ~1e-16 * scale; float32 bounds round by ~6e-8 * scale
    margin = (1e-6 if dtype == np.float32 else 1e-12) * scale
    zone_lo = _key_bin(np.asarray(mids - margin).astype(dtype))
    zone_hi = _key_bin(np.asarray(mids + margin).astype(dtype))
    lut = np.empty(1 << _LUT_BITS[dtype.itemsize], np.int32)
    starts = np.concatenate(([0], zone_hi + 1))
    stops = np.concatenate((zone_lo, [lut.size]))
    for j in range(u.size):
        lut[starts[j]:stops[j]] = code_of_centroid[j]
    for a, b in zip(zone_lo, zone_hi, strict=True):
        lut[a:b + 1] = -1
    return lut


def kmeans_codebook(u: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, int]:
    """The codebook of sorted distinct centroids ``u``: their values rounded to ``dtype``
    and 0, ascending and distinct (centroids whose values collide share a code); the code
    of every centroid; the code of 0."""
    values = u.astype(dtype) + dtype.type(0)  # rounded to the dtype, -0.0 as +0.0
    codebook = np.unique(np.concatenate((values, np.zeros(1, dtype))))
    return (codebook, np.searchsorted(codebook, values).astype(np.int64),
            int(np.searchsorted(codebook, 0.0)))


def assign_codes(flat: np.ndarray, u: np.ndarray, rule: tuple[int, int], scale: float):
    """Codes of the nearest of the sorted distinct centroids ``u`` (0 for zero and pruned
    entries), with the codebook and the error sums per chunk (see :func:`_assign`)."""
    dtype = flat.dtype
    codebook, code_of_centroid, zero_code = kmeans_codebook(u, dtype)
    lut = _lookup_table(u, code_of_centroid, dtype, scale)
    width = dtype.itemsize * 8
    int_dtype, mask, _ = KEY[dtype.itemsize]
    nch = n_chunks(flat.size)
    codes = np.empty(flat.size, code_dtype(codebook.size))
    sums = np.zeros((nch, 4))
    _assign(flat, flat.view(int_dtype), mask, rule[0], rule[1], -(1 << (width - 1)),
            width - _LUT_BITS[dtype.itemsize], lut, u, code_of_centroid, zero_code, codebook,
            nch, codes, sums)
    return codes, codebook, sums


def kmeans_codes(flat: np.ndarray, clusters: int, max_iter: int,
                 info: tuple[float, float, int], rule: tuple[int, int] = NO_PRUNING):
    """Weight sharing of the entries of a flat finite array that are neither zero nor
    pruned by ``rule`` (``info``: their ``(min, max, count)``, count > 0): codes,
    codebook, error sums per chunk."""
    lo, hi, _ = info
    u = np.unique(kmeans_centroids(flat, clusters, max_iter, info, rule))
    scale = max(abs(lo), abs(hi), float(np.abs(u).max()))
    return assign_codes(flat, u, rule, scale)
